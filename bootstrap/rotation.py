"""`invoke verify.rotation SERVICE/SECRET`: prove rotation end to end on a live cluster.

Writes a new version of the secret with a sentinel value for every key, waits until the
Kubernetes Secret's bytes change to it and every restart target's restart annotation changes,
then writes the original values back and waits again. The original is restored whatever
happens, Ctrl-C included; the sentinel is random and never printed."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from bootstrap import conventions as conv
from bootstrap.catalog import Catalog
from bootstrap.errors import UsageError
from bootstrap.kube import Kube
from bootstrap.kv import read_kv
from bootstrap.nudge import fast_refresh
from bootstrap.render import Sync, syncs
from bootstrap.status import API_FOR_KIND, RESTART_ANNOTATION
from bootstrap.vault import Api
from bootstrap.waits import Pending, WaitSettings, wait_for

log = logging.getLogger(__name__)
Say = Callable[[str], None]


def find_sync(catalog: Catalog, ref: str) -> Sync:
    """SERVICE/SECRET (or SERVICE/shared/NAME) -> the sync it names."""
    service, _, secret = ref.partition("/")
    for s in syncs(catalog):
        if s.service == service and (secret in (s.secret, s.destination, s.kv_path)):
            return s
    names = ", ".join(f"{s.service}/{s.secret}" for s in syncs(catalog))
    raise UsageError(f"{ref!r} names no secret of the catalog; one of: {names}")


def _annotations(kube: Kube, s: Sync) -> dict[str, str]:
    out = {}
    for t in s.restart:
        obj = kube.get(API_FOR_KIND[t.kind], t.kind, t.name, s.namespace) or {}
        meta = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        out[f"{t.kind}/{t.name}"] = (meta.get("annotations") or {}).get(RESTART_ANNOTATION, "")
    return out


def _write(api: Api, path: str, data: dict[str, str]) -> int:
    _, version = read_kv(api, path)
    resp = api.write(f"{conv.KV_MOUNT}/data/{path}", {"options": {"cas": version}, "data": data})
    return int(((resp or {}).get("data") or {}).get("version") or version + 1)


def _await(
    kube: Kube, s: Sync, want: dict[str, str], before: dict[str, str], what: str, ws: WaitSettings
) -> None:
    def probe() -> None:
        got = kube.read_secret(s.namespace, s.destination) or {}
        if {k: v.decode(errors="replace") for k, v in got.items()} != want:
            raise Pending(f"Secret {s.namespace}/{s.destination} not updated yet")
        now = _annotations(kube, s)
        same = [k for k in now if now[k] == before.get(k)]
        if same:
            raise Pending(f"restart annotation unchanged on {', '.join(same)}")

    wait_for(probe, what, ws)


def rotation_test(
    catalog: Catalog, ref: str, kube: Kube, api: Api, ws: WaitSettings, say: Say
) -> dict[str, Any]:
    s = find_sync(catalog, ref)
    original, _ = read_kv(api, s.kv_path)
    if not original:
        raise UsageError(f"{s.kv_path} has no value in Vault yet; run the bootstrap first")
    sentinel = {k: f"rotation-test-{secrets.token_hex(8)}" for k in original}
    # reconcile now and every second while the test runs; the spec is restored after
    with fast_refresh(kube, [(s.namespace, s.destination)]):
        before = _annotations(kube, s)
        try:
            say(f"writing a sentinel version of {s.kv_path}")
            _write(api, s.kv_path, sentinel)
            _await(
                kube, s, sentinel, before, f"{s.namespace}/{s.destination} to take the sentinel", ws
            )
            say("sentinel synced and restart targets restarted")
            mid = _annotations(kube, s)
        finally:  # the original goes back whatever happened, Ctrl-C included
            say(f"restoring the original value of {s.kv_path}")
            version = _write(api, s.kv_path, original)
        _await(kube, s, original, mid, f"{s.namespace}/{s.destination} to be restored", ws)
    say("original value synced back; catalog settings restored")
    return {
        "secret": f"{s.namespace}/{s.destination}",
        "vault_path": s.kv_path,
        "restored_version": version,
        "restart_targets": sorted(before),
    }
