"""`invoke verify.rotation SERVICE/SECRET`: prove rotation end to end on a live cluster.

Writes a new version of the secret with a sentinel value for every key, waits until the
Kubernetes Secret holds it (Vault's keys; the operator's ``_raw`` is ignored) and every restart
target was restarted (the operator's restart annotation changed -- with ESO, Stakater
Reloader's -- and the workload's controller rolled out a new revision), then writes the
original values back and waits for both again. The original is restored whatever happens,
Ctrl-C included; the sentinel is random and never printed."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.clients.vault import Api
from bootstrap.core.errors import BootstrapError, UsageError
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import Sync, syncs
from bootstrap.model.operator_api import OperatorApi
from bootstrap.runtime import vso
from bootstrap.runtime.nudge import nudged

log = logging.getLogger(__name__)
Say = Callable[[str], None]
Rollouts = dict[str, vso.Rollout]


def find_sync(catalog: Catalog, ref: str) -> Sync:
    """SERVICE/SECRET (or SERVICE/shared/NAME) -> the sync it names."""
    service, _, secret = ref.partition("/")
    for s in syncs(catalog):
        if s.service == service and (secret in (s.secret, s.destination, s.kv_path)):
            return s
    names = ", ".join(f"{s.service}/{s.secret}" for s in syncs(catalog))
    raise UsageError(f"{ref!r} names no secret of the catalog; one of: {names}")


def _rollouts(kube: Kube, s: Sync) -> Rollouts:
    out: Rollouts = {}
    absent = []
    for t in s.restart:
        r = vso.rollout(kube, t, s.namespace)
        if r is None:
            absent.append(f"{t.kind}/{t.name}")
        else:
            out[r.target] = r
    if absent:
        raise UsageError(
            f"restart target(s) {', '.join(absent)} do not exist in namespace {s.namespace}; "
            "the rotation test needs every restart target of the catalog deployed"
        )
    return out


def _write(api: Api, path: str, data: dict[str, str]) -> int:
    _, version = read_kv(api, path)
    resp = api.write(f"{conv.KV_MOUNT}/data/{path}", {"options": {"cas": version}, "data": data})
    return int(((resp or {}).get("data") or {}).get("version") or version + 1)


def _await(
    kube: Kube, s: Sync, want: dict[str, str], before: Rollouts, what: str, ws: WaitSettings
) -> Rollouts:
    """Until the Secret holds ``want`` and every restart target has a new restart annotation
    and a new revision rolled out by its controller; returns the rollouts then."""

    def probe() -> Rollouts:
        got = kube.read_secret(s.namespace, s.destination)
        if vso.classify(want, got) != "synced":
            raise Pending(f"Secret {s.namespace}/{s.destination} not updated yet")
        now = _rollouts(kube, s)
        same = [k for k, r in now.items() if r.restarted_at == before[k].restarted_at]
        if same:
            raise Pending(f"restart annotation unchanged on {', '.join(same)}")
        unrolled = [k for k, r in now.items() if not r.revision or r.revision == before[k].revision]
        if unrolled:
            raise Pending(f"no new revision rolled out yet for {', '.join(unrolled)}")
        return now

    return wait_for(probe, what, ws)


def _after_restart_second(rollouts: Rollouts) -> None:
    """The operator stamps restarts with whole seconds: a second restart within the same
    second writes the same annotation and restarts nothing. Let that second pass."""
    stamps = []
    for r in rollouts.values():
        try:
            stamps.append(dt.datetime.fromisoformat(r.restarted_at).timestamp())
        except ValueError:
            continue
    if stamps:
        delay = max(stamps) + 1.1 - time.time()
        if delay > 0:
            time.sleep(min(delay, 2.0))


@dataclass(frozen=True)
class RotationResult:
    """What a rotation test proved: the Secret (``namespace/name``), its Vault path, the
    version the original value was restored as, and each restart target's revisions (before,
    after the sentinel, after the restore)."""

    secret: str
    vault_path: str
    restored_version: int
    revisions: dict[str, list[str]]


def rotation_test(
    catalog: Catalog,
    ref: str,
    kube: Kube,
    api: Api,
    ws: WaitSettings,
    say: Say,
    engine: str = "vso",
) -> RotationResult:
    s = find_sync(catalog, ref)
    original, _ = read_kv(api, s.kv_path)
    if not original:
        raise UsageError(f"{s.kv_path} has no value in Vault yet; run the bootstrap first")
    before = _rollouts(kube, s)
    sentinel = {k: f"rotation-test-{secrets.token_hex(8)}" for k in original}
    vss = (s.namespace, s.destination)
    # after each write, a nudge makes the operator read it now (as the cluster's operator
    # takes one: a VSO 1.4.1 spec change would restart the targets by itself)
    operator = (
        OperatorApi(installed=True, engine="eso") if engine == "eso" else vso.operator_api(kube)
    )
    with nudged(kube, [], operator) as nudger:
        mid = before
        try:
            say(f"writing a sentinel version of {s.kv_path}")
            _write(api, s.kv_path, sentinel)
            nudger.nudge([vss])
            mid = _await(
                kube, s, sentinel, before, f"{s.namespace}/{s.destination} to take the sentinel", ws
            )
            say(
                "sentinel synced; restarted "
                + (", ".join(f"{k} (revision {r.revision})" for k, r in mid.items()) or "nothing")
            )
        finally:  # the original goes back whatever happened, Ctrl-C included
            try:
                _after_restart_second(_rollouts(kube, s))
            except BootstrapError:
                _after_restart_second(mid)
            say(f"restoring the original value of {s.kv_path}")
            version = _write(api, s.kv_path, original)
            nudger.nudge([vss])
        after = _await(kube, s, original, mid, f"{s.namespace}/{s.destination} to be restored", ws)
    say("original value synced back; catalog settings restored")
    return RotationResult(
        secret=f"{s.namespace}/{s.destination}",
        vault_path=s.kv_path,
        restored_version=version,
        revisions={k: [before[k].revision, mid[k].revision, after[k].revision] for k in before},
    )
