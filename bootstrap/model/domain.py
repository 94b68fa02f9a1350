"""The domain objects the catalog implies, below every renderer, phase and command: which Vault
path syncs into which Secret of which namespace (:class:`Sync`), every KV path with its keys'
sources, and the names the Vault Secrets Operator and Kubernetes use for what the product
manages (the operator's API group, its restart annotation, the workload kinds it restarts)."""

from __future__ import annotations

from dataclasses import dataclass

from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, RestartTarget, Source

#: The operator's API group and version (VaultAuth, VaultStaticSecret, VaultConnection).
VSO_API = "secrets.hashicorp.com/v1beta1"


@dataclass(frozen=True)
class Sync:
    """One Vault KV secret synced into one Kubernetes Secret of one namespace."""

    service: str
    namespace: str
    kv_path: str  # logical path below the KV mount, e.g. "webapp/config" or "shared/ovh-dns"
    destination: str  # Kubernetes Secret name (and VaultStaticSecret name)
    keys: tuple[str, ...]
    refresh_after: str
    restart: tuple[RestartTarget, ...]
    owner: str  # service name or "shared"/"infrastructure"; first part of placeholders
    secret: str  # secret name within the owner

    @property
    def private(self) -> bool:
        return self.owner == self.service


#: syncs() of the catalogs last asked, by identity (a catalog is frozen); each entry keeps its
#: catalog alive, so an id is not reused while it is cached.
_SYNCS: dict[int, tuple[Catalog, tuple[Sync, ...]]] = {}
_SYNCS_KEPT = 4


def syncs(catalog: Catalog) -> list[Sync]:
    """Every (service, Vault path, destination Secret) the operator must keep in sync. Worked
    out once per catalog (at 500 services, several phases asked for it, 25 ms each)."""
    hit = _SYNCS.get(id(catalog))
    if hit is not None and hit[0] is catalog:
        return list(hit[1])
    out = _syncs(catalog)
    if len(_SYNCS) >= _SYNCS_KEPT:
        _SYNCS.pop(next(iter(_SYNCS)))
    _SYNCS[id(catalog)] = (catalog, tuple(out))
    return out


def _syncs(catalog: Catalog) -> list[Sync]:
    out: list[Sync] = []
    for svc in catalog.services:
        for name, spec in svc.secrets.items():
            out.append(
                Sync(
                    service=svc.name,
                    namespace=svc.namespace,
                    kv_path=conv.kv_path(svc.name, name),
                    destination=spec.destination or name,
                    keys=tuple(spec.keys),
                    refresh_after=catalog.refresh_after(svc, spec),
                    restart=tuple(svc.restart),
                    owner=svc.name,
                    secret=name,
                )
            )
        for read in svc.reads:
            scoped = catalog.scoped(read.scope)[read.name]
            out.append(
                Sync(
                    service=svc.name,
                    namespace=svc.namespace,
                    kv_path=read.path,
                    destination=read.destination or read.name,
                    keys=tuple(scoped.keys),
                    refresh_after=catalog.refresh_after(svc),
                    restart=tuple(svc.restart),
                    owner=read.scope,
                    secret=read.name,
                )
            )
    return out


#: The pod-template annotation the operator stamps on a rollout restart (RFC 3339).
RESTART_ANNOTATION = "vso.secrets.hashicorp.com/restartedAt"
#: What Stakater Reloader (``--reload-strategy=annotations``) stamps on a pod template when it
#: rolls a workload out: JSON naming the Secret, its data's hash and ``observedAt`` (Unix
#: seconds). With the sync engine ``eso`` it stands for the operator's restart stamp.
RELOADER_RESTART_ANNOTATION = "reloader.stakater.com/last-reloaded-from"


def restart_stamp(annotations: dict[str, str] | None) -> str:
    """Pure: a pod template's restart stamp, VSO's or Reloader's ("" when neither)."""
    have = annotations or {}
    return str(have.get(RESTART_ANNOTATION) or have.get(RELOADER_RESTART_ANNOTATION) or "")


#: A Deployment's revision annotation: a new revision is a rollout the controller made.
DEPLOYMENT_REVISION = "deployment.kubernetes.io/revision"
#: apiVersion of each workload kind the operator may restart.
WORKLOAD_API = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}


def kv_secrets(catalog: Catalog) -> list[tuple[str, dict[str, Source | None]]]:
    """Every KV path the catalog declares, with its keys' sources (each path once)."""
    out = []
    for scope in conv.RESERVED_PREFIXES:
        for name, spec in sorted(catalog.scoped(scope).items()):
            out.append((f"{scope}/{name}", dict(spec.keys)))
    for svc in catalog.services:
        for name, sspec in svc.secrets.items():
            out.append((conv.kv_path(svc.name, name), dict(sspec.keys)))
    return out
