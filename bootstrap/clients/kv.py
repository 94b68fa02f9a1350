"""KV v2 reads shared by populate, status, verify and rotation."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from bootstrap.clients.vault import Api
from bootstrap.model import conventions as conv


@dataclass(frozen=True)
class KvValue:
    """The latest version of a KV v2 secret: its data as text, its number, when written."""

    data: dict[str, str]
    version: int
    written: dt.datetime | None


def read_kv_value(api: Api, path: str, mount: str = conv.KV_MOUNT) -> KvValue:
    status, body = api.request("GET", f"{mount}/data/{path}")
    data = (body or {}).get("data") or {}
    meta = data.get("metadata") or {}
    version = int(meta.get("version") or 0)
    written = None
    if meta.get("created_time"):
        try:
            written = dt.datetime.fromisoformat(str(meta["created_time"]).replace("Z", "+00:00"))
        except ValueError:
            written = None
    if status == 404:
        return KvValue({}, version, written)
    return KvValue({k: kv_text(v) for k, v in (data.get("data") or {}).items()}, version, written)


def read_kv(api: Api, path: str) -> tuple[dict[str, str], int]:
    value = read_kv_value(api, path)
    return value.data, value.version


def kv_text(value: Any) -> str:
    """A KV value as the operator writes it into a Secret: a string as it is, anything else
    as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
