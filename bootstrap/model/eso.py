"""The External Secrets Operator's objects for a catalog (the sync engine ``eso``).

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
from bootstrap.core.output import short
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, Service
from bootstrap.model.domain import VSO_API, Sync, syncs
from bootstrap.model.operator_api import OperatorApi
from bootstrap.model.render import labels, render_service_account

ESO_API = "external-secrets.io/v1"
CreationPolicy = Literal["Owner", "Merge"]
#: The ExternalSecret CRD's name.
ES_CRD = "externalsecrets.external-secrets.io"
#: The annotation ESO's own documentation changes to make an ExternalSecret refresh now (any
#: change of its annotations does: it refreshes when they differ from those it last synced).
FORCE_SYNC = "force-sync"
#: The label ESO puts on every Secret it writes (its Secret cache selects on it) and the
#: annotation holding the hash of the data it wrote.
MANAGED_LABEL = "reconcile.external-secrets.io/managed"
DATA_HASH_ANNOTATION = "reconcile.external-secrets.io/data-hash"
#: The kinds the product writes for ESO, in apply order (a store before what reads it).
KINDS = (("v1", "ServiceAccount"), (ESO_API, "SecretStore"), (ESO_API, "ExternalSecret"))


def sync_object(engine: str) -> tuple[str, str]:
    """Pure: (apiVersion, kind) of the object per destination Secret a sync engine reads and
    records its events on: ESO's ExternalSecret, or VSO's VaultStaticSecret."""
    return (ESO_API, "ExternalSecret") if engine == "eso" else (VSO_API, "VaultStaticSecret")


def read_crd(crd: JsonObject | None) -> OperatorApi:
    """Pure: ESO as its ExternalSecret CRD (as JSON; None when absent) shows it: installed
    when the CRD serves the version the product writes (``v1``)."""
    want = ESO_API.split("/")[1]
    versions = (crd or {}).get("spec", {}).get("versions") or []
    served = any(
        isinstance(v, dict) and v.get("name") == want and v.get("served") for v in versions
    )
    return OperatorApi(installed=served, engine="eso")


def handed_by_merge(es: JsonObject | None, destination: str, catalog_name: str) -> bool:
    """Pure: an ExternalSecret of this catalog merges into ``destination`` already (the
    product handed that Secret over), so the Secret is not someone else's."""
    meta = (es or {}).get("metadata") or {}
    have = meta.get("labels") or {}
    mine = (
        have.get(conv.MANAGED_BY_LABEL) == conv.MANAGED_BY_VALUE
        and have.get(conv.CATALOG_LABEL) == catalog_name
    )
    target = ((es or {}).get("spec") or {}).get("target") or {}
    return mine and target.get("name") == destination and target.get("creationPolicy") == "Merge"


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
            # a template (ESO's defaults, written out) so that ESO copies none of this
            # object's labels and annotations onto the Secret: without one it copies them all
            # (the product's labels over the operator-cache labels Terraform set, a nudge's
            # annotation), and OpenTofu would take them off again on every run
            "target": {
                "name": sync.destination,
                "creationPolicy": creation,
                "template": {"engineVersion": "v2", "mergePolicy": "Replace"},
            },
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


def render_catalog(catalog: Catalog, vault_addr: str) -> dict[str, list[JsonObject]]:
    """Every namespace's objects with ESO as the sync engine, by namespace: each service's
    ServiceAccount (the same as VSO's), then :func:`render_namespace`'s, every destination
    handed over by ``Merge`` (the placeholders phase makes each one first)."""
    every = frozenset(s.destination for s in syncs(catalog))
    return {
        ns: [
            *(
                render_service_account(catalog, svc)
                for svc in catalog.services
                if svc.namespace == ns
            ),
            *render_namespace(catalog, ns, vault_addr, every),
        ]
        for ns in catalog.namespaces
    }


# -- restarts: Stakater Reloader on the catalog's restart targets ------------------------------

#: The annotation on a workload that Stakater Reloader acts on: a comma-separated list of the
#: Secrets (of the workload's namespace) whose change of data rolls it out.
RELOAD_ANNOTATION = "secret.reloader.stakater.com/reload"
#: The field manager the product writes that annotation with.
RELOAD_FIELD_MANAGER = "cluster-secrets-bootstrap-reload"
Target = tuple[str, str, str]  # (namespace, kind, name)
#: The annotation on a Secret that makes Stakater Reloader skip a change of it: the product
#: puts it on each placeholder before ESO's first write (the hand-over) and takes it off once
#: the Secret holds Vault's values. Reloader reads it from the Secret as each change left it,
#: however late it processes the change, so the first fill restarts nothing.
RELOADER_IGNORE = "reloader.stakater.com/ignore"


def reload_targets(wanted: list[Sync]) -> dict[Target, tuple[str, ...]]:
    """Pure: each restart target of the catalog, and the destination Secrets (sorted) whose
    change must roll it out."""
    out: dict[Target, set[str]] = {}
    for s in wanted:
        for t in s.restart:
            out.setdefault((s.namespace, t.kind, t.name), set()).add(s.destination)
    return {key: tuple(sorted(names)) for key, names in sorted(out.items())}


def reload_value(existing: str | None, ours: tuple[str, ...]) -> str | None:
    """Pure: the annotation's new value, the Secrets already named first (someone else's
    included, kept as they are), then ours that are missing; None when none is missing."""
    have = [n.strip() for n in (existing or "").split(",") if n.strip()]
    missing = [n for n in ours if n not in have]
    return ",".join([*have, *missing]) if missing else None


# -- what ESO's status says ---------------------------------------------------------------------


def condition(obj: JsonObject | None, kind: str = "Ready") -> JsonObject | None:
    """Pure: a status condition of an ESO object (as JSON), if it has one."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def ready(obj: JsonObject | None) -> str | None:
    """Pure: the reason of a Ready condition that is True (``Valid`` for a store,
    ``SecretSynced`` for an ExternalSecret); None when it is not Ready (or unknown)."""
    cond = condition(obj)
    return str(cond.get("reason") or "Ready") if cond and cond.get("status") == "True" else None


def why_not_synced(es: JsonObject | None, store: JsonObject | None) -> str:
    """Pure: why an ExternalSecret has not synced, from its own and its store's Ready
    conditions ("" when neither says anything). ESO's message is generic ("could not get
    secret data from provider"); Vault's reason (a 403) is in ESO's log and event only."""
    if es is None:
        return "its ExternalSecret does not exist"
    out = []
    cond = condition(es)
    if cond is not None and cond.get("status") != "True":
        out.append(f"{cond.get('reason') or 'not Ready'}: {short(cond.get('message') or '')}")
    scond = condition(store)
    if store is None:
        out.append("its SecretStore does not exist")
    elif scond is not None and scond.get("status") != "True":
        out.append(
            f"SecretStore {scond.get('reason') or 'not Ready'}: {short(scond.get('message') or '')}"
        )
    return "; ".join(out)


def paths_read(es: JsonObject) -> list[str]:
    """Pure: the Vault paths an ExternalSecret reads (``data[].remoteRef.key`` and
    ``dataFrom[].extract.key``), in order, each once."""
    spec = es.get("spec") or {}
    keys = [((d or {}).get("remoteRef") or {}).get("key") for d in spec.get("data") or []]
    keys += [((d or {}).get("extract") or {}).get("key") for d in spec.get("dataFrom") or []]
    return list(dict.fromkeys(str(k) for k in keys if k))


# -- what breaks isolation ---------------------------------------------------------------------


def object_label(obj: JsonObject) -> str:
    """Pure: ``Kind namespace/name`` (``Kind name`` for a cluster-wide object), as every
    finding of this module starts."""
    return _where(obj)


def _where(obj: JsonObject) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name', '')}".replace(
        " /", " "
    )


def vault_provider(store: JsonObject | None) -> JsonObject:
    """Pure: a SecretStore's vault provider block ({} when it has none)."""
    provider = ((store or {}).get("spec") or {}).get("provider") or {}
    vault = provider.get("vault") if isinstance(provider, dict) else None
    return vault if isinstance(vault, dict) else {}


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
    "DATA_HASH_ANNOTATION",
    "ESO_API",
    "ES_CRD",
    "FORCE_SYNC",
    "KINDS",
    "MANAGED_LABEL",
    "RELOADER_IGNORE",
    "RELOAD_ANNOTATION",
    "condition",
    "handed_by_merge",
    "isolation_findings",
    "paths_read",
    "read_crd",
    "ready",
    "reload_targets",
    "reload_value",
    "render_external_secret",
    "render_namespace",
    "render_secret_store",
    "store_name",
    "sync_object",
    "vault_provider",
    "why_not_synced",
]
