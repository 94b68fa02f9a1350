"""Phase 7, verify: wait until every destination Secret holds Vault's value instead of the
placeholder. Placeholder state is "pending", not a failure; past the deadline the phase fails
with a list of what is stuck and why (the operator's last event, and what in Vault or the
cluster stands in the way: role bindings, policies, the path's value). It never passes on a
Secret whose bytes it has not compared with Vault's, so without a running operator it fails.

Speed-up without changing the catalog's settings: the operator re-reads a secret every
refreshAfter. So the phase nudges each pending VaultStaticSecret (see ``runtime.nudge``: on a
current operator a new annotation, on VSO v0.1.0 refreshAfter one second longer, re-applied
as it was afterwards, always, even on failure or Ctrl-C): the operator reconciles it now,
once; those whose last attempt failed are nudged again, with backoff.

Quiet after a hand-over: once the Secrets it waited for are synced, the phase watches their
restart targets (those that exist) for one refresh period and fails, naming the target, if
the operator restarts one with no change in Vault (a restart storm: VSO 1.4.1 with a
destination its Secret cache cannot see does that on every refresh). When the operator phase
changed something in this run, every restart target of the catalog is watched, counted from
before that phase applied (a rebuild, where Vault holds the values before the operator's
objects exist, syncs before this phase even looks). A stale Secret (Vault moved on) is no
hand-over: its restart has a reason, and it is not watched. It costs the longest
``refreshAfter`` of those targets' VaultStaticSecrets plus a few seconds, said when it starts;
targets refreshed less often than ``vso.QUIET_LIMIT`` (two minutes) are not watched (said), and
``bootstrap --skip-quiet-check`` skips it. A storm already going on (seen in the targets'
rollout history, see ``model.restarts``) is planned as a check of its own: watched the same
way, it fails the phase unless it has stopped."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field, replace

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import KvValue, read_kv_value
from bootstrap.core import failpoints
from bootstrap.core.errors import BootstrapError, WaitTimeout
from bootstrap.core.parallel import in_parallel
from bootstrap.core.waits import Pending, wait_for
from bootstrap.model import eso
from bootstrap.model.actions import Action
from bootstrap.model.domain import VSO_API, WORKLOAD_API, Sync, syncs
from bootstrap.model.operator_api import OperatorApi
from bootstrap.model.restarts import Storm
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


def _observe(
    t: Target, wanted: list[Sync], vault_data: VaultData, engine: str = "vso"
) -> vso.Observed:
    """The destination Secrets of the wanted namespaces (a list each), and the operator's
    events of only those namespaces where a Secret is not synced: a state reads events only
    then, and after a bootstrap they are many (23 000 at 500 services, 3 s of client CPU to
    read, on every probe)."""
    present = sorted({s.namespace for s in wanted} & t.kube.namespaces())
    secrets = dict(zip(present, in_parallel(t.kube.list_secrets, present, 8), strict=True))

    def synced(s: Sync) -> bool:
        secret = secrets[s.namespace].get(s.destination)
        return vso.classify(vault_data[s.kv_path].data, secret) == "synced"

    unsynced = sorted({s.namespace for s in wanted if s.namespace in secrets and not synced(s)})
    evs = in_parallel(lambda ns: vso.events(t.kube, ns, eso.sync_object(engine)[1]), unsynced, 8)
    return vso.Observed(secrets, dict(zip(unsynced, evs, strict=True)))


def _states(
    t: Target, wanted: list[Sync], vault_data: VaultData, engine: str = "vso"
) -> tuple[list[SecretState], vso.Observed]:
    seen = _observe(t, wanted, vault_data, engine)
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


def _renudge(nudger: Nudger, left: list[SecretState], attempted: Kube | None = None) -> None:
    """Nudge again those whose last attempt failed (the operator retries them only after
    refreshAfter, or with its own backoff), backing off 2, 4, 8, then 15 seconds. With
    ``attempted`` (a current operator), only those its status shows it reconciled at
    their current spec (see :func:`vso.tried_already`)."""
    now = time.monotonic()
    again = [
        st.ref
        for st in left
        if st.failing
        and now - nudger.last.get(st.ref, 0.0)
        >= min(2.0 ** nudger.times.get(st.ref, 0), RENUDGE_MAX)
    ]
    if again and attempted is not None:
        again = vso.tried_already(attempted, again)
    if again:
        log.info("nudging %d %s(s) again after a failed sync", len(again), nudger.kind)
        nudger.nudge(again)


def _operator_silent(
    t: Target, waiting: list[Sync], seen: vso.Observed, since: float, engine: str = "vso"
) -> bool:
    """No event on any awaited VaultStaticSecret (ExternalSecret) since ``since`` (wall
    clock), and no VaultAuth (SecretStore) of theirs ever accepted: no operator is at work
    here."""
    floor = since - 1.0  # event times are whole seconds
    for s in waiting:
        if any(
            e.last_seen.timestamp() >= floor for e in seen.events_of(s.namespace, s.destination)
        ):
            return False
    for ns, name in sorted({(s.namespace, s.service) for s in waiting}):
        if engine == "eso":
            store = t.kube.get(eso.ESO_API, "SecretStore", eso.store_name(name), ns)
            if eso.ready(store) is not None:
                return False
            continue
        auth = t.kube.get(VSO_API, "VaultAuth", name, ns) or {}
        if (auth.get("status") or {}).get("valid"):
            return False
    return True


@dataclass(frozen=True)
class AwaitSync(Action):
    """Wait until the operator has put Vault's value into this Secret; as a ``check``, the
    Secret cannot be verified: Vault holds nothing at its path (keys put there by hand).
    ``handover``: the Secret does not hold an earlier real value (it is a placeholder, or
    missing): its sync is a hand-over, and its targets are watched afterwards; a stale one
    (Vault moved on) restarts its targets for a reason, and is not."""

    sync: Sync
    handover: bool = True

    @property
    def unverifiable(self) -> bool:
        return self.verb == "check"


@dataclass(frozen=True)
class AwaitQuiet(Action):
    """A restart storm going on: watch the target for one refresh period; the phase fails
    unless it stays quiet."""

    watched: vso.Watched


@dataclass(frozen=True)
class AnnotateTarget(Action):
    """ESO: annotate a restart target for Stakater Reloader (after its Secrets hold Vault's
    values, so the hand-over itself restarts nothing, as with VSO)."""

    namespace: str
    kind_: str
    name: str
    value: str


@dataclass(frozen=True)
class UnguardSecret(Action):
    """ESO: take Reloader's ignore mark off a Secret once it holds Vault's values (the
    operator phase put it on for the hand-over)."""

    namespace: str
    name: str


@dataclass
class VerifyFacts:
    states: list[SecretState]
    #: restart storms going on, of the catalog's restart targets that exist
    storms: list[tuple[vso.Watched, Storm, str]] = field(default_factory=list)
    #: ESO: each restart target's Reloader annotation as the cluster has it ("" when it has
    #: none; absent targets left out), and the Secrets it must name
    reload: dict[eso.Target, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: ESO: destination Secrets still marked for Reloader to ignore
    guarded: set[tuple[str, str]] = field(default_factory=set)


def plan_reload(reload: dict[eso.Target, tuple[str, tuple[str, ...]]]) -> list[Action]:
    """Pure: the restart targets whose Reloader annotation lacks some of their Secrets."""
    out: list[Action] = []
    for (ns, kind, name), (have, ours) in sorted(reload.items()):
        value = eso.reload_value(have, ours)
        if value is None:
            continue
        out.append(
            AnnotateTarget(
                "update",
                f"{kind} {ns}/{name}",
                f"{eso.RELOAD_ANNOTATION}={value}: Stakater Reloader rolls it out when ESO "
                "changes these Secrets' data (annotated once they hold Vault's values)",
                namespace=ns,
                kind_=kind,
                name=name,
                value=value,
            )
        )
    return out


def plan_unguard(guarded: set[tuple[str, str]]) -> list[Action]:
    """Pure: the Secrets whose Reloader ignore mark goes once they hold Vault's values."""
    return [
        UnguardSecret(
            "update",
            f"Secret {ns}/{name}",
            f"annotation {eso.RELOADER_IGNORE} off once it holds Vault's values: Stakater "
            "Reloader follows its changes from then on",
            namespace=ns,
            name=name,
        )
        for ns, name in sorted(guarded)
    ]


def plan_verify(facts: VerifyFacts) -> list[Action]:
    """Pure: the Secrets to await, the Reloader marks to take off and the restart targets to
    annotate for Reloader (ESO), then the restart storms to watch."""
    actions = plan_states(facts.states) + plan_unguard(facts.guarded) + plan_reload(facts.reload)
    for w, storm, cause in facts.storms:
        reason = storm.describe() + (f"; {cause}" if cause else "")
        actions.append(
            AwaitQuiet("update", w.name, f"{reason}: watched for one refresh period", watched=w)
        )
    return actions


def _too_slow(w: vso.Watched) -> str:
    return (
        f"not watched after its hand-over: its refresh period ({w.refresh_seconds:.0f} s) is "
        f"longer than the quiet check's {vso.QUIET_LIMIT:.0f} s; 'invoke status' names a "
        "restart storm there"
    )


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
            actions.append(
                AwaitSync("update", target, reason, sync=st.sync, handover=st.state != "stale")
            )
    return actions


def _guarded(kube: Kube, wanted: list[Sync]) -> set[tuple[str, str]]:
    """The destination Secrets marked for Reloader to ignore (metadata lists, one per
    namespace: no Secret's data read)."""
    present = sorted({s.namespace for s in wanted} & kube.namespaces())
    metas = in_parallel(
        lambda ns: kube.list_metadata(f"/api/v1/namespaces/{ns}/secrets", "Secrets"), present, 8
    )
    listed = dict(zip(present, metas, strict=True))
    out = set()
    for s in wanted:
        meta = listed.get(s.namespace, {}).get(s.destination) or {}
        if (meta.get("annotations") or {}).get(eso.RELOADER_IGNORE) is not None:
            out.add((s.namespace, s.destination))
    return out


def _reload_facts(
    kube: Kube, wanted: list[Sync], say_absent: bool = True
) -> dict[eso.Target, tuple[str, tuple[str, ...]]]:
    """Each restart target that exists, its Reloader annotation and the Secrets it must
    name; those absent are said in one log line (``say_absent``): a re-run once they are
    deployed annotates them."""
    out = {}
    absent = []
    for (ns, kind, name), ours in eso.reload_targets(wanted).items():
        obj = kube.get(WORKLOAD_API[kind], kind, name, ns)
        if obj is None:
            absent.append(f"{kind} {ns}/{name}")
            continue
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        out[(ns, kind, name)] = (str(annotations.get(eso.RELOAD_ANNOTATION) or ""), ours)
    if absent and say_absent:
        log.info(
            "verify: %d restart target(s) not deployed yet, so not annotated for Reloader "
            "(%s); a re-run once they are deployed annotates them: %s",
            len(absent),
            eso.RELOAD_ANNOTATION,
            ", ".join(absent),
        )
    return out


class Verify(PhaseBase[VerifyFacts], name="verify", summary=SUMMARY):
    def __init__(self) -> None:
        #: when this run last proved the restart targets quiet: storms before it are over
        self._quiet_since: dt.datetime | None = None

    def facts(self, ctx: RunContext) -> VerifyFacts:
        t = ctx.target
        wanted = syncs(ctx.catalog)
        # the convergence check compares with Vault as it is after the wait
        vault_data = _vault_data(ctx, wanted, fresh=ctx.converging)
        states = _states(t, wanted, vault_data, ctx.settings.sync_engine)[0]
        eso_engine = ctx.settings.sync_engine == "eso"
        reload = _reload_facts(t.kube, wanted, say_absent=not ctx.converging) if eso_engine else {}
        guarded = _guarded(t.kube, wanted) if eso_engine else set()
        return VerifyFacts(states, self._storms(ctx, wanted), reload, guarded)

    def _storms(self, ctx: RunContext, wanted: list[Sync]) -> list[tuple[vso.Watched, Storm, str]]:
        """Restart storms going on (and newer than this run's last quiet proof)."""
        kube = ctx.target.kube
        history = vso.RolloutHistory(kube)
        out = []
        for w in vso.watched_targets(wanted, lambda ns, t: history.workload(t, ns) is not None):
            storm = vso.storm_of(
                history, ctx.vault, w.target, w.namespace, list(w.paths), w.refresh_seconds
            )
            if storm is None or not storm.ongoing:
                continue
            if self._quiet_since is not None and storm.last < self._quiet_since:
                continue
            out.append((w, storm, vso.storm_cause(kube, w.namespace, w.target)))
        return out

    def plan(self, ctx: RunContext, facts: VerifyFacts) -> list[Action]:
        return plan_verify(facts)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        awaited = [a for a in actions if isinstance(a, AwaitSync)]
        empty = [a for a in awaited if a.unverifiable]
        pending = [a.sync for a in awaited if not a.unverifiable]
        # a stale Secret (Vault moved on) is no hand-over: its restart has a reason
        handing = [a.sync for a in awaited if not a.unverifiable and a.handover]
        storming = [a.watched for a in actions if isinstance(a, AwaitQuiet)]
        t = ctx.target
        handed: list[vso.Watched] = []
        baseline = ctx.restart_baseline
        if ctx.quiet_check and (handing or baseline is not None):
            # a hand-over in this run: every restart target of the catalog that exists when
            # the operator phase changed something, else those of what is pending; counted
            # from before the hand-over, so that a restart by the first fill itself is seen
            found = vso.existing_targets(t.kube, syncs(ctx.catalog) if baseline else handing)
            for w in found:
                if w.refresh_seconds > vso.QUIET_LIMIT:
                    log.info("verify: %s %s", w.name, _too_slow(w))
                else:
                    handed.append(w)
            if baseline is None:
                baseline = vso.take_baseline(t.kube, handed)
        elif handing:
            log.info("verify: quiet check skipped (--skip-quiet-check)")
        if pending:
            # what is awaited is compared with Vault as it is now
            operator = (
                OperatorApi(installed=True, engine="eso")
                if ctx.settings.sync_engine == "eso"
                else vso.operator_api(t.kube)
            )
            self._wait(ctx, t, pending, _vault_data(ctx, pending, fresh=True), operator)
        # ESO, once the Secrets hold Vault's values: Reloader's ignore marks off (a change of
        # metadata only: Reloader restarts nothing for it), then the restart targets name
        # their Secrets; the quiet check below then watches with Reloader armed
        unfilled = {(a.sync.namespace, a.sync.destination) for a in empty}
        for a in actions:
            if isinstance(a, UnguardSecret) and (a.namespace, a.name) not in unfilled:
                t.kube.merge_patch(
                    "v1",
                    "Secret",
                    a.name,
                    a.namespace,
                    {"metadata": {"annotations": {eso.RELOADER_IGNORE: None}}},
                )
        for a in actions:
            if isinstance(a, AnnotateTarget):
                t.kube.merge_patch(
                    WORKLOAD_API[a.kind_],
                    a.kind_,
                    a.name,
                    a.namespace,
                    {"metadata": {"annotations": {eso.RELOAD_ANNOTATION: a.value}}},
                    field_manager=eso.RELOAD_FIELD_MANAGER,
                )
        if handed or storming:
            self._quiet(ctx, handed, storming, baseline)
        if empty:
            raise BootstrapError(
                f"{len(empty)} Secret(s) not verified, Vault holds no value for them:\n"
                + "\n".join(f"  {a.target}: {a.reason}" for a in empty)
            )

    def _quiet(
        self,
        ctx: RunContext,
        handed: list[vso.Watched],
        storming: list[vso.Watched],
        baseline: vso.Baseline | None,
    ) -> None:
        """Watch the restart targets of the Secrets just handed over (counting from before
        the hand-over, ``baseline``), and those of storms going on, for one refresh period
        (see the module's docstring)."""
        kube = ctx.target.kube
        seen = {(w.namespace, w.target) for w in storming}
        watched = storming + [w for w in handed if (w.namespace, w.target) not in seen]
        if not watched:
            return
        # a write that filled an empty path (a first fill) excuses no restart; a spec change
        # the operator answers with a restart (the plan said so) excuses one
        watched = [
            replace(
                w,
                paths=tuple(p for p in w.paths if p not in ctx.first_fill),
                allowed=ctx.expected_restarts.get(w.key, 0),
            )
            for w in watched
        ]
        now = vso.take_baseline(kube, storming)
        start = vso.Baseline(
            baseline.at if baseline else now.at,
            {**(baseline.known if baseline else {}), **now.known},
        )
        seconds = vso.quiet_seconds(watched)
        log.info(
            "verify: watching %d restart target(s) for %.0f s (one refreshAfter) to prove the "
            "operator restarts nothing while Vault is unchanged%s: %s",
            len(watched),
            seconds,
            "" if storming else "; --skip-quiet-check skips it",
            ", ".join(w.name for w in watched),
        )
        began = dt.datetime.now(dt.UTC)
        vso.watch_quiet(
            kube, ctx.vault, watched, seconds, lambda msg: log.info("verify: %s", msg), start
        )
        self._quiet_since = began

    def _wait(
        self,
        ctx: RunContext,
        t: Target,
        waiting: list[Sync],
        vault_data: VaultData,
        operator: OperatorApi,
    ) -> None:
        ws = ctx.waits(maximum=1.0)
        refs = [(s.namespace, s.destination) for s in waiting]
        engine = operator.engine
        # VSO: only what the operator has tried (a nudge before its first try is lost)
        tries = operator.nudge_by_annotation and engine == "vso"
        if tries:
            refs = vso.tried_already(t.kube, refs)
        began = time.time()
        with nudged(t.kube, refs if ctx.settings.verify_nudge else [], operator) as nudger:
            failpoints.point("verify:nudged")
            unsynced = list(waiting)

            def probe() -> None:
                # only what is still pending is read again (each namespace once per probe)
                states, _ = _states(t, unsynced, vault_data, engine)
                left = [st for st in states if st.state != "synced"]
                unsynced[:] = [st.sync for st in left]
                if not left:
                    return
                if ctx.settings.verify_nudge:
                    _renudge(nudger, left, t.kube if tries else None)
                raise Pending(
                    f"{len(left)} of {len(waiting)} pending: "
                    + ", ".join(st.line() for st in left[:3])
                )

            try:
                wait_for(probe, f"{len(waiting)} Secret(s) to hold Vault's values", ws)
            except WaitTimeout as exc:
                report = self._stuck_report(ctx, t, waiting, vault_data, exc, began, operator)
                raise BootstrapError(report) from None

    def _stuck_report(
        self,
        ctx: RunContext,
        t: Target,
        waiting: list[Sync],
        vault_data: VaultData,
        exc: WaitTimeout,
        began: float,
        operator: OperatorApi,
    ) -> str:
        engine = operator.engine
        states, seen = _states(t, waiting, vault_data, engine)
        stuck = [st for st in states if st.state != "synced"]
        lines = [f"timed out after {exc.elapsed:.0f}s: {len(stuck)} Secret(s) not synced"]
        if _operator_silent(t, waiting, seen, began, engine):
            lines.append(
                "no External Secrets Operator answered: no event on any of these "
                "ExternalSecrets since verify began and no SecretStore of theirs Ready "
                "(is the operator running, and does it reach this cluster?)"
                if engine == "eso"
                else "no Vault Secrets Operator answered: no event on any of these "
                "VaultStaticSecrets since verify began and no VaultAuth of theirs accepted "
                "(is the operator running, and does it reach this cluster?)"
            )
        if not operator.installed:
            lines.append(operator.describe())
        if engine == "eso":
            for st in stuck[:DIAGNOSE_MAX]:
                s = st.sync
                why = eso.why_not_synced(
                    t.kube.get(eso.ESO_API, "ExternalSecret", s.destination, s.namespace),
                    t.kube.get(eso.ESO_API, "SecretStore", eso.store_name(s.service), s.namespace),
                )
                lines.append(f"  {st.line()}" + (f"; {why}" if why else ""))
            lines += [f"  {st.line()}" for st in stuck[DIAGNOSE_MAX:]]
            return "\n".join(lines)
        blockers = vso.missing_auths(t.kube, ctx.settings.operator_namespace)
        if blockers:
            why = (
                "they fail to log in"
                if operator.current
                else "VSO v0.1.0 holds up every sync for 30 s looking for it, again and again"
            )
            lines.append(
                f"{len(blockers)} VaultStaticSecret(s) name a VaultAuth that does not exist "
                f"({why}): " + ", ".join(blockers[:10])
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
