"""The External Secrets Operator's objects for a catalog (issue 27, first slice: rendering
only; no task uses it yet).

The seed's pattern maps onto ESO one to one: per service a namespaced ``SecretStore`` (the
vault provider, KV v2 at the product's mount, kubernetes auth with the service's own role and
ServiceAccount and the catalog's audience), per destination Secret an ``ExternalSecret``
(``dataFrom.extract`` of the secret's KV path through its service's store, the refresh period
of the catalog). Nothing here is cluster-wide: no ``ClusterSecretStore``, no store in another
namespace, no ``serviceAccountRef.namespace``; so a namespace reads only what its services'
roles allow, as with VSO.

Facts from ESO 2.9.0's CRDs (``deploy/crds/bundle.yaml``): ``external-secrets.io/v1`` is the
only version served; the vault provider's kubernetes auth requires ``mountPath`` and ``role``;
``target.creationPolicy`` is one of Owner (default), Orphan, Merge, None, CreateOrMerge.

Hand-over (a first choice, to be proven against ESO as issue 27 asks): a destination the
placeholders phase writes gets ``Merge`` (ESO writes Vault's keys into the Secret OpenTofu
made and owns nothing; a placeholder key Vault lacks stays); one without a placeholder gets
``Owner``, as a VaultStaticSecret with ``create: true`` does.
"""

from __future__ import annotations

from typing import Literal

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, Service
from bootstrap.model.domain import Sync, syncs
from bootstrap.model.render import labels

ESO_API = "external-secrets.io/v1"
CreationPolicy = Literal["Owner", "Merge"]


def store_name(service: str) -> str:
    """The SecretStore of a service: named after it, in its namespace."""
    return service


def render_secret_store(catalog: Catalog, svc: Service, vault_addr: str) -> JsonObject:
    """The service's SecretStore: Vault at ``vault_addr`` (as the operator's pod reaches it),
    KV v2 at the product's mount, kubernetes auth as the service's role and ServiceAccount."""
    return {
        "apiVersion": ESO_API,
        "kind": "SecretStore",
        "metadata": {
            "name": store_name(svc.name),
            "namespace": svc.namespace,
            "labels": labels(catalog, svc.name),
        },
        "spec": {
            "provider": {
                "vault": {
                    "server": vault_addr,
                    "path": conv.KV_MOUNT,
                    "version": "v2",
                    "auth": {
                        "kubernetes": {
                            "mountPath": conv.AUTH_MOUNT,
                            "role": conv.role_name(svc.name),
                            "serviceAccountRef": {
                                "name": conv.service_account_name(svc.name),
                                "audiences": [catalog.defaults.audience],
                            },
                        }
                    },
                }
            }
        },
    }


def render_external_secret(
    catalog: Catalog, sync: Sync, creation: CreationPolicy = "Merge"
) -> JsonObject:
    """The ExternalSecret of one destination Secret: every key of its KV path, through its
    service's SecretStore, every ``refreshAfter``."""
    return {
        "apiVersion": ESO_API,
        "kind": "ExternalSecret",
        "metadata": {
            "name": sync.destination,
            "namespace": sync.namespace,
            "labels": labels(catalog, sync.service),
        },
        "spec": {
            "refreshInterval": sync.refresh_after,
            "secretStoreRef": {"name": store_name(sync.service), "kind": "SecretStore"},
            "target": {"name": sync.destination, "creationPolicy": creation},
            "dataFrom": [{"extract": {"key": sync.kv_path}}],
        },
    }


def render_namespace(
    catalog: Catalog, namespace: str, vault_addr: str, placeholders: frozenset[str]
) -> list[JsonObject]:
    """A namespace's ESO objects: each service's SecretStore, then one ExternalSecret per
    destination (``Merge`` where ``placeholders`` holds the destination's name, else
    ``Owner``). The ServiceAccounts are the same as for VSO (``render_service_account``)."""
    out = [
        render_secret_store(catalog, svc, vault_addr)
        for svc in sorted(catalog.services, key=lambda s: s.name)
        if svc.namespace == namespace
    ]
    for sync in syncs(catalog):
        if sync.namespace == namespace:
            policy: CreationPolicy = "Merge" if sync.destination in placeholders else "Owner"
            out.append(render_external_secret(catalog, sync, policy))
    return out


# -- what breaks isolation ---------------------------------------------------------------------


def _where(obj: JsonObject) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name', '')}".replace(
        " /", " "
    )


def _store_findings(store: JsonObject, server: str) -> list[str]:
    where = _where(store)
    namespace = (store.get("metadata") or {}).get("namespace", "")
    provider = (store.get("spec") or {}).get("provider") or {}
    vault = provider.get("vault")
    if set(provider) != {"vault"} or not isinstance(vault, dict):
        return [f"{where}: a provider other than vault ({', '.join(sorted(provider)) or 'none'})"]
    out = []
    if vault.get("server") != server:
        out.append(f"{where}: server {vault.get('server')!r} is not the Vault of this catalog")
    if vault.get("namespace"):
        out.append(
            f"{where}: a Vault namespace ({vault.get('namespace')!r}) the product never uses"
        )
    auth = vault.get("auth") or {}
    kube = auth.get("kubernetes")
    if set(auth) != {"kubernetes"} or not isinstance(kube, dict):
        out.append(f"{where}: authenticates otherwise than with kubernetes auth ({sorted(auth)})")
        return out
    ref = kube.get("serviceAccountRef") or {}
    if kube.get("secretRef") or not ref:
        out.append(f"{where}: kubernetes auth without a serviceAccountRef (a token from a Secret)")
    if ref.get("namespace") not in (None, namespace):
        out.append(f"{where}: serviceAccountRef into another namespace ({ref.get('namespace')!r})")
    if ref.get("name") and kube.get("role") != conv.role_name(str(ref.get("name"))):
        out.append(
            f"{where}: role {kube.get('role')!r} is not the role of ServiceAccount "
            f"{ref.get('name')!r}"
        )
    return out


def _external_findings(es: JsonObject) -> list[str]:
    where = _where(es)
    spec = es.get("spec") or {}
    refs = [spec.get("secretStoreRef") or {}]
    refs += [((d.get("sourceRef") or {}).get("storeRef") or {}) for d in spec.get("data") or []]
    refs += [((d.get("sourceRef") or {}).get("storeRef") or {}) for d in spec.get("dataFrom") or []]
    out = [
        f"{where}: reads through a ClusterSecretStore ({ref.get('name')!r})"
        for ref in refs
        if ref.get("kind") == "ClusterSecretStore"
    ]
    if any("find" in d for d in spec.get("dataFrom") or []):
        out.append(f"{where}: dataFrom.find reads every path its store's role may list")
    return out


def isolation_findings(objects: list[JsonObject], server: str) -> list[str]:
    """What in ESO objects (rendered, or found in a cluster) opens a namespace to others:
    any ClusterSecretStore or ClusterExternalSecret, a store with another provider, server,
    Vault namespace or auth method, a ServiceAccount in another namespace or a role not the
    ServiceAccount's own, an ExternalSecret reading through a ClusterSecretStore or finding
    paths by pattern. Empty: none."""
    out: list[str] = []
    for obj in objects:
        kind = obj.get("kind")
        if kind in ("ClusterSecretStore", "ClusterExternalSecret"):
            out.append(f"{_where(obj)}: cluster-wide, it serves every namespace")
        elif kind == "SecretStore":
            out += _store_findings(obj, server)
        elif kind == "ExternalSecret":
            out += _external_findings(obj)
    return out


__all__ = [
    "ESO_API",
    "isolation_findings",
    "render_external_secret",
    "render_namespace",
    "render_secret_store",
    "store_name",
]
