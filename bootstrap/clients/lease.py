"""coordination.k8s.io Leases, the one kind of object the run's lock is made of: create,
read, take over, renew and delete, each with the resourceVersion precondition that keeps two
runs from both believing they hold it. Typed answers; the kubernetes package stays here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bootstrap.clients.kube import Kube, translated


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Lease:
    holder: str
    #: the last renewal (or the acquisition), None when the Lease has neither
    renewed: dt.datetime | None
    duration: int
    resource_version: str
    uid: str

    @property
    def expires(self) -> dt.datetime | None:
        return None if self.renewed is None else self.renewed + dt.timedelta(seconds=self.duration)


def _lease(obj: Any) -> Lease:
    spec, meta = obj.spec, obj.metadata
    return Lease(
        holder=spec.holder_identity or "",
        renewed=spec.renew_time or spec.acquire_time,
        duration=int(spec.lease_duration_seconds or 0),
        resource_version=meta.resource_version or "",
        uid=meta.uid or "",
    )


class Leases:
    """The Leases of one namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self._api = client.CoordinationV1Api(kube.api)
        self.namespace = namespace

    def _body(
        self, name: str, holder: str, duration: int, labels: dict[str, str], rv: str | None
    ) -> Any:
        now = _now()
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=name, namespace=self.namespace, labels=labels, resource_version=rv
            ),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=duration,
                acquire_time=now,
                renew_time=now,
            ),
        )

    def create(self, name: str, holder: str, duration: int, labels: dict[str, str]) -> bool:
        """Create the Lease held by ``holder``; False when one of that name exists."""
        with translated(f"creating Lease {self.namespace}/{name}"):
            try:
                self._api.create_namespaced_lease(
                    self.namespace, self._body(name, holder, duration, labels, None)
                )
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    def read(self, name: str) -> Lease | None:
        with translated(f"reading Lease {self.namespace}/{name}"):
            try:
                return _lease(self._api.read_namespaced_lease(name, self.namespace))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def take_over(
        self, name: str, seen: Lease, holder: str, duration: int, labels: dict[str, str]
    ) -> None:
        """Replace the Lease as ``seen``, for ``holder``: a KubernetesError (409) when it
        changed since."""
        with translated(f"taking over Lease {self.namespace}/{name}"):
            self._api.replace_namespaced_lease(
                name,
                self.namespace,
                self._body(name, holder, duration, labels, seen.resource_version),
            )

    def renew(self, name: str, holder: str) -> Literal["renewed", "lost", "changed"]:
        """Renew the Lease if ``holder`` holds it: "lost" when another does, "changed" when
        it was deleted or moved under us (try again)."""
        try:
            obj: Any = self._api.read_namespaced_lease(name, self.namespace)
            if (obj.spec.holder_identity or "") != holder:
                return "lost"
            obj.spec.renew_time = _now()
            self._api.replace_namespaced_lease(name, self.namespace, obj)  # rv precondition
        except ApiException as exc:
            if exc.status in (404, 409):
                return "changed"
            raise
        return "renewed"

    def delete(self, name: str, seen: Lease) -> None:
        """Delete the Lease only if it is still as ``seen`` (gone or changed: nothing)."""
        with translated(f"deleting Lease {self.namespace}/{name}"):
            try:
                self._api.delete_namespaced_lease(
                    name,
                    self.namespace,
                    body=client.V1DeleteOptions(
                        preconditions=client.V1Preconditions(
                            resource_version=seen.resource_version, uid=seen.uid
                        )
                    ),
                )
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
