"""The cluster-wide bootstrap lock: a coordination.k8s.io Lease, so two bootstraps never
run against one cluster at once. Released at the end of a run, failed or not; a lock left
by a killed run expires after its duration."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bootstrap import conventions as conv
from bootstrap.errors import BootstrapError
from bootstrap.kube import Kube, translated

log = logging.getLogger(__name__)

LEASE_NAME = conv.PRODUCT
DURATION = 900


class LockHeld(BootstrapError):
    pass


def _dead_local(holder: str) -> bool:
    """A holder '<this host>-<pid>' whose process is gone: a run that was killed here."""
    host, _, pid = holder.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextmanager
def cluster_lock(
    kube: Kube, namespace: str, duration: int = DURATION, holder: str | None = None
) -> Iterator[str]:
    coord = client.CoordinationV1Api(kube.api)
    holder = holder or f"{socket.gethostname()}-{os.getpid()}"
    kube.ensure_namespace(namespace, {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE})
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(
            name=LEASE_NAME,
            namespace=namespace,
            labels={conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE},
        ),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
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
            if held_by and held_by != holder and expires > _now() and not _dead_local(held_by):
                raise LockHeld(
                    f"another bootstrap holds the lock: Lease {namespace}/{LEASE_NAME} held by "
                    f"{spec.holder_identity} until {expires:%Y-%m-%d %H:%M:%S} UTC"
                ) from None
            log.info(
                "taking over the bootstrap lock from %s (expired, or its process on this "
                "host is gone)",
                spec.holder_identity,
            )
            body.metadata.resource_version = current.metadata.resource_version  # type: ignore[union-attr]
            coord.replace_namespaced_lease(LEASE_NAME, namespace, body)
    try:
        yield holder
    finally:
        try:
            with translated("releasing the bootstrap lock"):
                held: Any = coord.read_namespaced_lease(LEASE_NAME, namespace)
                if held.spec.holder_identity == holder:
                    coord.delete_namespaced_lease(LEASE_NAME, namespace)
        except BootstrapError as exc:
            log.warning("%s", exc)
