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

from bootstrap.clients.kube import Kube
from bootstrap.clients.lease import Leases
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


def _renew(leases: Leases, held: Held, period: float) -> None:
    """Keep the Lease ours while the run lives; mark it lost if someone else took it."""
    while not held.stop.wait(period):
        try:
            if leases.renew(LEASE_NAME, held.holder) == "lost":
                seen = leases.read(LEASE_NAME)
                log.error("the bootstrap lock was taken over by %s", seen.holder if seen else "?")
                held.lost.set()
                return
        except Exception as exc:  # a renewal must never kill the run
            log.warning("renewing the bootstrap lock: %s", type(exc).__name__)


@contextmanager
def cluster_lock(
    kube: Kube, namespace: str, duration: int = DURATION, holder: str | None = None
) -> Iterator[Held]:
    held = Held(holder or identity())
    labels = {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE}
    kube.ensure_namespace(namespace, labels)
    leases = Leases(kube, namespace)
    if not leases.create(LEASE_NAME, held.holder, duration, labels):
        current = leases.read(LEASE_NAME)
        if current is not None:
            expires = current.expires
            held_by = current.holder
            if (
                held_by
                and held_by != held.holder
                and expires is not None
                and expires > _now()
                and not dead_here(held_by)
            ):
                raise LockHeld(
                    f"another bootstrap holds the lock: Lease {namespace}/{LEASE_NAME} held by "
                    f"{held_by} until {expires:%Y-%m-%d %H:%M:%S} UTC"
                )
            log.info(
                "taking over the bootstrap lock from %s (expired, or its process on this "
                "machine is gone)",
                held_by,
            )
            leases.take_over(LEASE_NAME, current, held.holder, duration, labels)  # 409: moved
        elif not leases.create(LEASE_NAME, held.holder, duration, labels):
            raise LockHeld(f"the bootstrap lock Lease {namespace}/{LEASE_NAME} changed hands")
    renewer = threading.Thread(target=_renew, args=(leases, held, duration / 3), daemon=True)
    renewer.start()
    try:
        yield held
    finally:
        held.stop.set()
        renewer.join(timeout=10)
        _release(leases, held.holder)


def _release(leases: Leases, holder: str) -> None:
    try:
        seen = leases.read(LEASE_NAME)
        if seen is not None and seen.holder == holder:
            leases.delete(LEASE_NAME, seen)
    except BootstrapError as exc:
        log.warning("%s", exc)
