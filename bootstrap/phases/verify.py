"""Phase 7, verify: wait until every destination Secret holds Vault's value instead of the
placeholder. Placeholder state is "pending", not a failure; past the deadline the phase fails
with a list of what is stuck and why (the operator's last event, and what in Vault or the
cluster stands in the way: role bindings, policies, the path's value). It never passes on a
Secret whose bytes it has not compared with Vault's, so without a running operator it fails.

Speed-up without changing the catalog's settings: VSO v0.1.0 re-reads a secret every
refreshAfter, at once only when a VaultStaticSecret's spec changes, and never again after a
failed read until the spec changes. So the phase nudges each pending VaultStaticSecret (the
same spec, refreshAfter one second longer: VSO reconciles it now, once), nudges again (with
backoff) any whose last attempt failed, and once done re-applies the catalog's spec, always,
even on failure or Ctrl-C."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bootstrap.clients.kv import KvValue, read_kv_value
from bootstrap.core import failpoints
from bootstrap.core.errors import BootstrapError, WaitTimeout
from bootstrap.core.waits import Pending, wait_for
from bootstrap.model.actions import Action
from bootstrap.model.domain import VSO_API, Sync, syncs
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import vso
from bootstrap.runtime.nudge import Nudger, nudged
from bootstrap.runtime.target import Target

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "wait, tolerant of placeholders, until every Secret holds Vault's value"

#: Longest pause between two nudges of a VaultStaticSecret whose last read failed.
RENUDGE_MAX = 15.0
#: Stuck Secrets diagnosed in detail in a failure report (the rest are listed).
DIAGNOSE_MAX = 20


@dataclass
class SecretState:
    sync: Sync
    state: str
    detail: str = ""
    #: Vault holds nothing at the path: no operator can sync it (keys put by hand).
    empty: bool = False
    #: The operator's last attempt on it failed (maybe before Vault's latest write).
    failing: bool = False
    #: Vault's latest version at its path, as read for this state.
    kv: KvValue = field(default_factory=lambda: KvValue({}, 0, None))

    @property
    def ref(self) -> tuple[str, str]:
        return (self.sync.namespace, self.sync.destination)

    def line(self) -> str:
        s = self.sync
        text = f"{s.namespace}/{s.destination} <- {s.kv_path}: {self.state}"
        return text + (f" ({self.detail})" if self.detail else "")


VaultData = dict[str, KvValue]


def _vault_data(ctx: RunContext, wanted: list[Sync], fresh: bool = False) -> VaultData:
    """Vault's latest version per path (each path read once); unless ``fresh``, as this run
    last read it where it has (populate, just before: see ``RunContext.kv_seen``)."""
    api = ctx.vault
    paths = sorted({s.kv_path for s in wanted})
    known = {} if fresh else {p: ctx.kv_seen[p] for p in paths if p in ctx.kv_seen}
    unread = [p for p in paths if p not in known]
    read = zip(unread, api.parallel(lambda p: read_kv_value(api, p), unread), strict=True)
    return {**known, **dict(read)}


def _observe(t: Target, wanted: list[Sync], vault_data: VaultData) -> vso.Observed:
    """The destination Secrets of the wanted namespaces (a list each), and the operator's
    events of only those namespaces where a Secret is not synced: a state reads events only
    then, and after a bootstrap they are many (23 000 at 500 services, 3 s of client CPU to
    read, on every probe)."""
    present = sorted({s.namespace for s in wanted} & t.kube.namespaces())
    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = dict(zip(present, pool.map(t.kube.list_secrets, present), strict=True))

        def synced(s: Sync) -> bool:
            secret = secrets[s.namespace].get(s.destination)
            return vso.classify(vault_data[s.kv_path].data, secret) == "synced"

        unsynced = sorted({s.namespace for s in wanted if s.namespace in secrets and not synced(s)})
        evs = pool.map(lambda ns: vso.events(t.kube, ns), unsynced)
        return vso.Observed(secrets, dict(zip(unsynced, evs, strict=True)))


def _states(
    t: Target, wanted: list[Sync], vault_data: VaultData
) -> tuple[list[SecretState], vso.Observed]:
    seen = _observe(t, wanted, vault_data)
    out = []
    for s in wanted:
        kv = vault_data[s.kv_path]
        evs = seen.events_of(s.namespace, s.destination)
        secret = seen.secret(s.namespace, s.destination)
        state, detail = vso.state_of(kv.data, secret, evs, kv.written)
        outcome = vso.latest_outcome(evs)
        failing = state != "synced" and outcome is not None and outcome.error
        out.append(SecretState(s, state, detail, not kv.data, failing, kv))
    return out, seen


def _renudge(nudger: Nudger, left: list[SecretState]) -> None:
    """Nudge again those whose last attempt failed (the operator retries them only after
    refreshAfter, or with its own backoff), backing off 2, 4, 8, then 15 seconds."""
    now = time.monotonic()
    again = [
        st.ref
        for st in left
        if st.failing
        and now - nudger.last.get(st.ref, 0.0)
        >= min(2.0 ** nudger.times.get(st.ref, 0), RENUDGE_MAX)
    ]
    if again:
        log.info("nudging %d VaultStaticSecret(s) again after a failed sync", len(again))
        nudger.nudge(again)


def _operator_silent(t: Target, waiting: list[Sync], seen: vso.Observed, since: float) -> bool:
    """No event on any awaited VaultStaticSecret since ``since`` (wall clock), and no
    VaultAuth of theirs ever accepted: no operator is at work here."""
    floor = since - 1.0  # event times are whole seconds
    for s in waiting:
        if any(
            e.last_seen.timestamp() >= floor for e in seen.events_of(s.namespace, s.destination)
        ):
            return False
    for ns, name in sorted({(s.namespace, s.service) for s in waiting}):
        auth = t.kube.get(VSO_API, "VaultAuth", name, ns) or {}
        if (auth.get("status") or {}).get("valid"):
            return False
    return True


@dataclass(frozen=True)
class AwaitSync(Action):
    """Wait until the operator has put Vault's value into this Secret; as a ``check``, the
    Secret cannot be verified: Vault holds nothing at its path (keys put there by hand)."""

    sync: Sync

    @property
    def unverifiable(self) -> bool:
        return self.verb == "check"


def plan_states(facts: list[SecretState]) -> list[Action]:
    """Pure: every Secret not synced is awaited, unless Vault holds nothing for it."""
    actions: list[Action] = []
    for st in facts:
        if st.state == "synced":
            continue
        target = f"Secret {st.sync.namespace}/{st.sync.destination}"
        if st.empty:
            actions.append(
                AwaitSync(
                    "check",
                    target,
                    f"cannot be verified: no value in Vault at {st.sync.kv_path} "
                    "(keys without a source are put there by hand)",
                    sync=st.sync,
                )
            )
        else:
            reason = f"pending: {st.state}" + (f" ({st.detail})" if st.detail else "")
            actions.append(AwaitSync("update", target, reason, sync=st.sync))
    return actions


class Verify(PhaseBase, name="verify", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> list[SecretState]:
        t = ctx.target
        wanted = syncs(ctx.catalog)
        # the convergence check compares with Vault as it is after the wait
        return _states(t, wanted, _vault_data(ctx, wanted, fresh=ctx.converging))[0]

    def plan(self, ctx: RunContext, facts: list[SecretState]) -> list[Action]:
        return plan_states(facts)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        awaited = [a for a in actions if isinstance(a, AwaitSync)]
        empty = [a for a in awaited if a.unverifiable]
        pending = [a.sync for a in awaited if not a.unverifiable]
        t = ctx.target
        if pending:
            # what is awaited is compared with Vault as it is now
            self._wait(ctx, t, pending, _vault_data(ctx, pending, fresh=True))
        if empty:
            raise BootstrapError(
                f"{len(empty)} Secret(s) not verified, Vault holds no value for them:\n"
                + "\n".join(f"  {a.target}: {a.reason}" for a in empty)
            )

    def _wait(self, ctx: RunContext, t: Target, waiting: list[Sync], vault_data: VaultData) -> None:
        ws = ctx.waits(maximum=1.0)
        refs = [(s.namespace, s.destination) for s in waiting]
        began = time.time()
        with nudged(t.kube, refs if ctx.settings.verify_nudge else []) as nudger:
            failpoints.point("verify:nudged")
            unsynced = list(waiting)

            def probe() -> None:
                # only what is still pending is read again (each namespace once per probe)
                states, _ = _states(t, unsynced, vault_data)
                left = [st for st in states if st.state != "synced"]
                unsynced[:] = [st.sync for st in left]
                if not left:
                    return
                if ctx.settings.verify_nudge:
                    _renudge(nudger, left)
                raise Pending(
                    f"{len(left)} of {len(waiting)} pending: "
                    + ", ".join(st.line() for st in left[:3])
                )

            try:
                wait_for(probe, f"{len(waiting)} Secret(s) to hold Vault's values", ws)
            except WaitTimeout as exc:
                report = self._stuck_report(ctx, t, waiting, vault_data, exc, began)
                raise BootstrapError(report) from None

    def _stuck_report(
        self,
        ctx: RunContext,
        t: Target,
        waiting: list[Sync],
        vault_data: VaultData,
        exc: WaitTimeout,
        began: float,
    ) -> str:
        states, seen = _states(t, waiting, vault_data)
        stuck = [st for st in states if st.state != "synced"]
        lines = [f"timed out after {exc.elapsed:.0f}s: {len(stuck)} Secret(s) not synced"]
        if _operator_silent(t, waiting, seen, began):
            lines.append(
                "no Vault Secrets Operator answered: no event on any of these "
                "VaultStaticSecrets since verify began and no VaultAuth of theirs accepted "
                "(is the operator running, and does it reach this cluster?)"
            )
        blockers = vso.missing_auths(t.kube, ctx.settings.operator_namespace)
        if blockers:
            lines.append(
                f"{len(blockers)} VaultStaticSecret(s) name a VaultAuth that does not exist, and "
                "VSO v0.1.0 holds up every sync for 30 s looking for it, again and again: "
                + ", ".join(blockers[:10])
            )
        api = ctx.vault
        for st in stuck[:DIAGNOSE_MAX]:
            vss = t.kube.get(VSO_API, "VaultStaticSecret", st.sync.destination, st.sync.namespace)
            why = vso.diagnose(
                api,
                t.kube,
                st.sync.namespace,
                st.sync.destination,
                vss,
                ctx.settings.operator_namespace,
            )
            lines.append(f"  {st.line()}" + (f"; {why}" if why else ""))
        for st in stuck[DIAGNOSE_MAX:]:
            lines.append(f"  {st.line()}")
        return "\n".join(lines)
