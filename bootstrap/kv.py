"""KV v2 reads shared by populate, status, verify and rotation."""

from __future__ import annotations

from bootstrap import conventions as conv
from bootstrap.catalog import Catalog, Source
from bootstrap.vault import Api


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


def read_kv(api: Api, path: str) -> tuple[dict[str, str], int]:
    status, body = api.request("GET", f"{conv.KV_MOUNT}/data/{path}")
    data = (body or {}).get("data") or {}
    version = int((data.get("metadata") or {}).get("version") or 0)
    if status == 404:
        return {}, version
    return {k: str(v) for k, v in (data.get("data") or {}).items()}, version
