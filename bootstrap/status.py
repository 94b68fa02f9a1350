"""`invoke status`: per service and secret, what Vault holds and what the cluster shows.

Secret states: missing (no Kubernetes Secret), placeholder (still the bootstrap marker),
synced (same data as Vault's latest version), stale (real data, but not Vault's latest).
Works on any cluster the kubeconfig points at; reads only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bootstrap import conventions as conv
from bootstrap.catalog import Catalog
from bootstrap.kube import Kube
from bootstrap.kv import read_kv
from bootstrap.render import VSO_API, syncs
from bootstrap.vault import Api

RESTART_ANNOTATION = "vso.secrets.hashicorp.com/restartedAt"
API_FOR_KIND = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}


@dataclass
class Row:
    service: str
    namespace: str
    secret: str
    vault_path: str
    vault_version: int
    state: str
    last_sync: str
    restarts: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(vault_data: dict[str, str], secret: dict[str, bytes] | None) -> str:
    """Pure: the state of one destination Secret against Vault's latest data."""
    if secret is None:
        return "missing"
    if not secret or any(conv.is_placeholder(v) for v in secret.values()):
        return "placeholder"
    if {k: v.decode(errors="replace") for k, v in secret.items()} == vault_data:
        return "synced"
    return "stale"


def collect(catalog: Catalog, kube: Kube, api: Api) -> list[Row]:
    rows = []
    all_syncs = syncs(catalog)
    paths = sorted({s.kv_path for s in all_syncs})
    kv = dict(zip(paths, api.parallel(lambda p: read_kv(api, p), paths), strict=True))
    for s in all_syncs:
        data, version = kv[s.kv_path]
        secret = kube.read_secret(s.namespace, s.destination)
        vss = kube.get(VSO_API, "VaultStaticSecret", s.destination, s.namespace) or {}
        status = vss.get("status") or {}
        last = str(status.get("lastGeneration") or status.get("secretMAC") or "")
        restarts = []
        for t in s.restart:
            obj = kube.get(API_FOR_KIND[t.kind], t.kind, t.name, s.namespace)
            ann = (((obj or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
            at = (ann.get("annotations") or {}).get(RESTART_ANNOTATION, "never")
            restarts.append(f"{t.kind}/{t.name}: {at if obj else 'absent'}")
        rows.append(
            Row(
                s.service,
                s.namespace,
                s.destination,
                s.kv_path,
                version,
                classify(data, secret),
                last or "not seen",
                "; ".join(restarts),
            )
        )
    return rows
