"""Phase 7, verify: wait until every destination Secret holds Vault's value instead of the
placeholder. Placeholder state is "pending", not a failure; past the deadline the phase fails
with a table of what is stuck and the likely reason (VaultAuth/VaultStaticSecret status, recent
events).

Speed-up without changing the catalog's settings: VSO v0.1.0 re-reads a secret every
refreshAfter, and at once only when a VaultStaticSecret's spec changes. So the phase applies,
for each pending VaultStaticSecret, the same spec with refreshAfter "1s" (a spec change: VSO
reconciles now and then every second), and once the Secret holds the value re-applies the
catalog's spec, always, even on failure or Ctrl-C."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bootstrap.errors import BootstrapError, WaitTimeout
from bootstrap.kv import read_kv
from bootstrap.nudge import fast_refresh
from bootstrap.phases.vault_config import api_for
from bootstrap.pipeline import Action, RunContext
from bootstrap.render import Sync, syncs
from bootstrap.status import classify
from bootstrap.target import Target
from bootstrap.waits import Pending, WaitSettings, wait_for

log = logging.getLogger(__name__)


@dataclass
class Pending_:
    sync: Sync
    state: str


def _vault_data(ctx: RunContext) -> dict[str, dict[str, str]]:
    """Vault's latest data per path (each path read once)."""
    api = api_for(ctx)
    paths = sorted({s.kv_path for s in syncs(ctx.catalog)})
    return dict(zip(paths, api.parallel(lambda p: read_kv(api, p)[0], paths), strict=True))


def _states(ctx: RunContext, vault_data: dict[str, dict[str, str]]) -> list[Pending_]:
    t: Target = ctx.shared["target"]
    out = []
    for s in syncs(ctx.catalog):
        data = vault_data[s.kv_path]
        state = classify(data, t.kube.read_secret(s.namespace, s.destination))
        if not data:
            state = "no value in Vault"
        out.append(Pending_(s, state))
    return out


def _reason(t: Target, s: Sync) -> str:
    """The likely reason a Secret is stuck: VSS/VaultAuth status and recent events."""
    from bootstrap.render import VSO_API

    parts = []
    vss = t.kube.get(VSO_API, "VaultStaticSecret", s.destination, s.namespace)
    if vss is None:
        parts.append("no VaultStaticSecret")
    else:
        st = vss.get("status") or {}
        parts.append(f"VaultStaticSecret status: {st or 'never reconciled'}")
    auth = t.kube.get(VSO_API, "VaultAuth", s.service, s.namespace)
    if auth is not None and auth.get("status"):
        parts.append(f"VaultAuth status: {auth['status']}")
    try:
        events = t.kube.core.list_namespaced_event(
            s.namespace, field_selector=f"involvedObject.name={s.destination}"
        ).items
        for ev in events[-3:]:
            parts.append(f"event {ev.reason}: {ev.message}")
    except Exception as exc:
        parts.append(f"events unreadable ({type(exc).__name__})")
    return "; ".join(str(p)[:200] for p in parts)


class Verify:
    name = "verify"
    summary = "wait, tolerant of placeholders, until every Secret holds Vault's value"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> list[Pending_]:
        return _states(ctx, _vault_data(ctx))

    def plan(self, ctx: RunContext, facts: list[Pending_]) -> list[Action]:
        t: Target = ctx.shared["target"]
        pending = [p for p in facts if p.state != "synced"]
        if pending and t.sandbox is not None and t.sandbox.vso != "running":
            return [
                Action(
                    "check",
                    f"Secret {p.sync.namespace}/{p.sync.destination}",
                    f"{p.state}; not verified: no operator runs in this sandbox",
                )
                for p in pending
            ]
        return [
            Action(
                "update",
                f"Secret {p.sync.namespace}/{p.sync.destination}",
                f"pending: {p.state}",
                payload=("wait", p.sync),
            )
            for p in pending
        ]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        waiting = [a.payload[1] for a in actions if a.changes and a.payload]
        if not waiting:
            return
        t: Target = ctx.shared["target"]
        ws: WaitSettings = ctx.shared.get("wait") or WaitSettings(timeout=ctx.settings.wait_timeout)
        vault_data = _vault_data(ctx)  # Vault does not change while we wait; Secrets do
        nudge = [(s.namespace, s.destination) for s in waiting] if ctx.settings.verify_nudge else []
        with fast_refresh(t.kube, nudge):

            def probe() -> None:
                left = [p for p in _states(ctx, vault_data) if p.state != "synced"]
                if left:
                    raise Pending(
                        f"{len(left)} pending: "
                        + ", ".join(
                            f"{p.sync.namespace}/{p.sync.destination} ({p.state})" for p in left[:5]
                        )
                    )

            try:
                wait_for(probe, f"{len(waiting)} Secret(s) to hold Vault's values", ws)
            except WaitTimeout as exc:
                stuck = [p for p in _states(ctx, vault_data) if p.state != "synced"]
                table = "\n".join(
                    f"  {p.sync.namespace}/{p.sync.destination} <- {p.sync.kv_path}: "
                    f"{p.state}; {_reason(t, p.sync)}"
                    for p in stuck
                )
                raise BootstrapError(f"{exc}\nstuck:\n{table}") from None
