"""The cluster-wide bootstrap lock: a coordination.k8s.io Lease, so two bootstraps never
run against one cluster at once.

- The holder identity names the host, the process and the process's own identity (kernel boot,
  pid namespace, start time), so a lock left by a killed run on this machine is recognised as
  dead, and a live run in another container that shares the host name is not.
- While a run lives, a thread renews the Lease every third of its duration; a renewal that
  finds another holder marks the lock lost (:attr:`Held.lost`), and the run stops before its
  next phase.
- Release deletes the Lease only if it is still ours, with a resourceVersion precondition, so it
  can never delete the next holder's lock. A lock left by a killed run expires after its
  duration, or at once when its process is known dead.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bootstrap.clients.kube import Kube, translated
from bootstrap.clients.procs import start_time
from bootstrap.core.errors import BootstrapError
from bootstrap.model import conventions as conv

log = logging.getLogger(__name__)

LEASE_NAME = conv.PRODUCT
DURATION = 900


class LockHeld(BootstrapError):
    pass


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return ""


def identity(pid: int | None = None) -> str:
    """'<host> pid <pid> (boot <id>, pidns <n>, started <ticks>)': readable, and unique to one
    process on one kernel in one pid namespace."""
    pid = pid or os.getpid()
    boot = _read("/proc/sys/kernel/random/boot_id")[:8]
    return (
        f"{socket.gethostname()} pid {pid} "
        f"(boot {boot}, pidns {_pid_namespace()}, started {start_time(pid)})"
    )


def dead_here(holder: str) -> bool:
    """Whether ``holder`` names a process of this kernel and pid namespace that is gone (a run
    killed here). Anything else (another machine, another container, unreadable) is alive."""
    try:
        host, rest = holder.split(" pid ", 1)
        pid_text, rest = rest.split(" (boot ", 1)
        boot, rest = rest.split(", pidns ", 1)
        pidns, started = rest.removesuffix(")").split(", started ", 1)
        pid = int(pid_text)
    except ValueError:
        return False
    same_place = (
        host == socket.gethostname()
        and boot == _read("/proc/sys/kernel/random/boot_id")[:8]
        and pidns == _pid_namespace()
    )
    return same_place and start_time(pid) != started


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Held:
    holder: str
    #: set when a renewal found the Lease taken by another holder
    lost: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


def _renew(coord: Any, namespace: str, held: Held, period: float) -> None:
    """Keep the Lease ours while the run lives; mark it lost if someone else took it."""
    while not held.stop.wait(period):
        try:
            lease: Any = coord.read_namespaced_lease(LEASE_NAME, namespace)
            if lease.spec.holder_identity != held.holder:
                log.error("the bootstrap lock was taken over by %s", lease.spec.holder_identity)
                held.lost.set()
                return
            lease.spec.renew_time = _now()
            coord.replace_namespaced_lease(LEASE_NAME, namespace, lease)  # rv precondition
        except ApiException as exc:
            if exc.status in (404, 409):  # deleted or changed under us: check again
                continue
            log.warning("renewing the bootstrap lock: HTTP %s", exc.status)
        except Exception as exc:  # a renewal must never kill the run
            log.warning("renewing the bootstrap lock: %s", type(exc).__name__)


@contextmanager
def cluster_lock(
    kube: Kube, namespace: str, duration: int = DURATION, holder: str | None = None
) -> Iterator[Held]:
    coord = client.CoordinationV1Api(kube.api)
    held = Held(holder or identity())
    kube.ensure_namespace(namespace, {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE})
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(
            name=LEASE_NAME,
            namespace=namespace,
            labels={conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE},
        ),
        spec=client.V1LeaseSpec(
            holder_identity=held.holder,
            lease_duration_seconds=duration,
            acquire_time=_now(),
            renew_time=_now(),
        ),
    )
    with translated(f"taking the bootstrap lock (Lease {namespace}/{LEASE_NAME})"):
        try:
            coord.create_namespaced_lease(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current: Any = coord.read_namespaced_lease(LEASE_NAME, namespace)
            spec: Any = current.spec
            renewed = spec.renew_time or spec.acquire_time
            expires = renewed + dt.timedelta(seconds=spec.lease_duration_seconds or 0)
            held_by = spec.holder_identity or ""
            if held_by and held_by != held.holder and expires > _now() and not dead_here(held_by):
                raise LockHeld(
                    f"another bootstrap holds the lock: Lease {namespace}/{LEASE_NAME} held by "
                    f"{held_by} until {expires:%Y-%m-%d %H:%M:%S} UTC"
                ) from None
            log.info(
                "taking over the bootstrap lock from %s (expired, or its process on this "
                "machine is gone)",
                held_by,
            )
            assert body.metadata is not None and current.metadata is not None  # made above
            body.metadata.resource_version = current.metadata.resource_version
            coord.replace_namespaced_lease(LEASE_NAME, namespace, body)  # 409 if it moved
    renewer = threading.Thread(
        target=_renew, args=(coord, namespace, held, duration / 3), daemon=True
    )
    renewer.start()
    try:
        yield held
    finally:
        held.stop.set()
        renewer.join(timeout=10)
        _release(coord, namespace, held.holder)


def _release(coord: Any, namespace: str, holder: str) -> None:
    try:
        with translated("releasing the bootstrap lock"):
            lease: Any = coord.read_namespaced_lease(LEASE_NAME, namespace)
            if lease.spec.holder_identity != holder:
                return
            try:
                coord.delete_namespaced_lease(
                    LEASE_NAME,
                    namespace,
                    body=client.V1DeleteOptions(
                        preconditions=client.V1Preconditions(
                            resource_version=lease.metadata.resource_version,
                            uid=lease.metadata.uid,
                        )
                    ),
                )
            except ApiException as exc:
                if exc.status not in (404, 409):  # gone, or no longer the one we read
                    raise
    except BootstrapError as exc:
        log.warning("%s", exc)
