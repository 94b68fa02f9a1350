"""`invoke status`: per service and secret, what Vault holds and what the cluster shows.

Secret states: missing (no Kubernetes Secret), placeholder (still the bootstrap marker),
synced (Vault's keys with Vault's latest values), stale (real data, but not Vault's latest),
error (not synced, and the operator's last attempt failed: the detail gives its reason; or a
restart storm: a restart target of the secret was rolled out again, twice or more in a
row, with no change in Vault to explain it, recently, see ``model.restarts``).
VaultStaticSecrets in the catalog's namespaces that the catalog does not declare (written by
hand, or by another tool) are listed too, as service "-", so a stuck or hostile one is seen.
Works on any cluster the kubeconfig points at, with VSO 1.4.1 or v0.1.0; reads only.

With the sync engine ``eso`` the same from ESO's side: its events and the ``Ready`` condition
of each ExternalSecret, and the ExternalSecrets the catalog does not declare, with what each
reads (a store's role reading another service's path gets a 403 from Vault: its event says
so), and the ways out of a namespace ESO's objects open (``model.eso.isolation_findings``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import KvValue, read_kv_value
from bootstrap.clients.vault import Api, VaultRequestError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model import eso
from bootstrap.model.catalog import Catalog, RestartTarget, duration_seconds
from bootstrap.model.domain import VSO_API, Sync, syncs
from bootstrap.model.restarts import Storm
from bootstrap.runtime import vso


@dataclass
class Row:
    service: str
    namespace: str
    secret: str
    vault_path: str
    vault_version: int
    state: str
    detail: str
    last_sync: str
    restarts: str

    def as_dict(self) -> JsonObject:
        return asdict(self)


def storms(
    kube: Kube, api: Api, all_syncs: list[Sync], exists: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[Storm, str]]:
    """Restart storms of the catalog's restart targets that exist, by (namespace, kind,
    name), each with its likely cause (""): see ``model.restarts``."""
    by_target: dict[tuple[str, str, str], list[Sync]] = defaultdict(list)
    for s in all_syncs:
        for t in s.restart:
            by_target[(s.namespace, t.kind, t.name)].append(s)
    history = vso.RolloutHistory(kube)
    out: dict[tuple[str, str, str], tuple[Storm, str]] = {}
    for key, ss in sorted(by_target.items()):
        if key not in exists:
            continue
        ns, kind, name = key
        target = RestartTarget(kind=kind, name=name)
        refresh = max(duration_seconds(s.refresh_after) for s in ss)
        storm = vso.storm_of(history, api, target, ns, [s.kv_path for s in ss], refresh)
        if storm is not None:
            out[key] = (storm, vso.storm_cause(kube, ns, target) if storm.ongoing else "")
    return out


def collect(catalog: Catalog, kube: Kube, api: Api, engine: str = "vso") -> list[Row]:
    rows = []
    all_syncs = syncs(catalog)
    paths = sorted({s.kv_path for s in all_syncs})
    kv = dict(zip(paths, api.parallel(lambda p: read_kv_value(api, p), paths), strict=True))
    api_version, kind = eso.sync_object(engine)
    seen_now = vso.observe(kube, [s.namespace for s in all_syncs], kind)
    vss = {
        (ns, o["metadata"]["name"]): o
        for ns in sorted(seen_now.secrets)
        for o in kube.list_objects(api_version, kind, ns)
    }
    stores = (
        {
            (ns, o["metadata"]["name"]): o
            for ns in sorted(seen_now.secrets)
            for o in kube.list_objects(eso.ESO_API, "SecretStore", ns)
        }
        if engine == "eso"
        else {}
    )
    rollouts: dict[tuple[str, str, str], vso.Rollout | None] = {}
    for s in all_syncs:
        for t in s.restart:
            key = (s.namespace, t.kind, t.name)
            if key not in rollouts:
                rollouts[key] = vso.rollout(kube, t, s.namespace)
    found_storms = storms(kube, api, all_syncs, {k for k, r in rollouts.items() if r})
    for s in all_syncs:
        value = kv[s.kv_path]
        evs = seen_now.events_of(s.namespace, s.destination)
        secret = seen_now.secret(s.namespace, s.destination)
        obj = vss.get((s.namespace, s.destination))
        if engine == "eso":
            state, detail = vso.state_of(value.data, secret, evs, value.written, obj, "Ready")
            if state != "synced":
                store = stores.get((s.namespace, eso.store_name(s.service)))
                why = eso.why_not_synced(obj, store)
                if why and why not in detail:
                    detail = "; ".join(x for x in (detail, why) if x)
        else:
            state, detail = vso.state_of(value.data, secret, evs, value.written, obj)
            if state == "error":
                detail = _explained(api, kube, s.namespace, s.destination, detail, obj)
            elif state != "synced" and not detail:
                detail = vso.unreconciled(obj)
        seen = vso.last_sync(evs)
        restarts = []
        for t in s.restart:
            key = (s.namespace, t.kind, t.name)
            r = rollouts[key]
            if r is None:
                restarts.append(f"{t.kind}/{t.name}: absent")
                continue
            rev = f" (revision {r.revision})" if r.revision else ""
            text = f"{r.target}: {r.restarted_at or 'never'}{rev}"
            if key in found_storms:
                storm, cause = found_storms[key]
                if storm.ongoing:
                    state = "error"
                    detail = "; ".join(x for x in (detail, storm.describe(), cause) if x)
                else:
                    text += f" ({storm.describe()})"
            restarts.append(text)
        rows.append(
            Row(
                s.service,
                s.namespace,
                s.destination,
                s.kv_path,
                value.version,
                state,
                detail,
                f"{seen.last_seen.isoformat()} {seen.reason}" if seen else "not seen",
                "; ".join(restarts),
            )
        )
    ours = {(s.namespace, s.destination) for s in all_syncs}
    foreign = {k: o for k, o in vss.items() if k not in ours}
    if engine == "eso":
        rows += _foreign_eso(api, foreign, stores, seen_now)
    else:
        rows += _foreign(kube, api, foreign, seen_now)
    return rows


def _foreign_eso(
    api: Api,
    foreign: dict[tuple[str, str], JsonObject],
    stores: dict[tuple[str, str], JsonObject],
    seen_now: vso.Observed,
) -> list[Row]:
    """Rows for the ExternalSecrets of the catalog's namespaces that it does not declare:
    what each reads (compared with Vault as the product reads it), ESO's last word on it
    (Vault's 403 when its store's role may not read the path), and any way out of the
    namespace it or its store opens."""
    rows = []
    # Vault as the product's own stores name it: a store sending its token elsewhere is a leak
    servers = {
        str(eso.vault_provider(o).get("server") or "")
        for o in stores.values()
        if ((o.get("metadata") or {}).get("labels") or {}).get(conv.MANAGED_BY_LABEL)
        == conv.MANAGED_BY_VALUE
    }
    server = next(iter(servers)) if len(servers) == 1 else ""
    for (ns, name), es in sorted(foreign.items()):
        spec = es.get("spec") or {}
        target = str((spec.get("target") or {}).get("name") or name)
        store_ref = spec.get("secretStoreRef") or {}
        store = stores.get((ns, str(store_ref.get("name") or "")))
        mount = str(eso.vault_provider(store).get("path") or conv.KV_MOUNT)
        paths = eso.paths_read(es)
        value = _read_foreign(api, mount, paths[0]) if len(paths) == 1 else KvValue({}, 0, None)
        evs = seen_now.events_of(ns, name)
        state, detail = vso.state_of(
            value.data, seen_now.secret(ns, target), evs, value.written, es, "Ready"
        )
        findings = eso.isolation_findings([es, *([store] if store else [])], server)
        if not server:  # no store of the product's to compare with
            findings = [f for f in findings if "is not the Vault of this catalog" not in f]
        if findings:
            state = "error"
            detail = "; ".join([detail, *findings]) if detail else "; ".join(findings)
        seen = vso.last_sync(evs)
        rows.append(
            Row(
                "-",
                ns,
                target,
                f"{mount}/{', '.join(paths) or '?'} (not in the catalog: ExternalSecret {name})",
                value.version,
                state,
                detail,
                f"{seen.last_seen.isoformat()} {seen.reason}" if seen else "not seen",
                "",
            )
        )
    return rows


def _explained(
    api: Api,
    kube: Kube,
    ns: str,
    name: str,
    detail: str,
    vss: JsonObject | None = None,
) -> str:
    """The operator's last error, and the cause found in Vault (VSO v0.1.0 loses the Vault
    error of a failed kv-v2 read: its event only says the secret was empty)."""
    if vss is None:
        vss = kube.get(VSO_API, "VaultStaticSecret", name, ns)
    why = vso.diagnose(api, kube, ns, name, vss)
    return f"{detail}; {why}" if why else detail


def _read_foreign(api: Api, mount: str, path: str) -> KvValue:
    """Vault's value at a path a foreign VaultStaticSecret names (empty when unreadable)."""
    try:
        return read_kv_value(api, path, mount)
    except VaultRequestError:
        return KvValue({}, 0, None)


def _foreign(
    kube: Kube,
    api: Api,
    foreign: dict[tuple[str, str], JsonObject],
    seen_now: vso.Observed,
) -> list[Row]:
    """Rows for the VaultStaticSecrets of the catalog's namespaces that it does not declare
    (as listed by :func:`collect`)."""
    rows = []
    for (ns, name), vss in sorted(foreign.items()):
        spec = vss.get("spec") or {}
        mount = str(spec.get("mount") or conv.KV_MOUNT)
        path = str(spec.get("path") or "")
        dest = str((spec.get("destination") or {}).get("name") or name)
        value = _read_foreign(api, mount, path)
        evs = seen_now.events_of(ns, name)
        state, detail = vso.state_of(value.data, seen_now.secret(ns, dest), evs, value.written, vss)
        if state == "error":
            detail = _explained(api, kube, ns, name, detail, vss)
        seen = vso.last_sync(evs)
        rows.append(
            Row(
                "-",
                ns,
                dest,
                f"{mount}/{path} (not in the catalog: VaultStaticSecret {name})",
                value.version,
                state,
                detail,
                f"{seen.last_seen.isoformat()} {seen.reason}" if seen else "not seen",
                "",
            )
        )
    return rows
