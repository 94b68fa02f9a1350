"""One phase mechanism for the whole bootstrap: facts -> plan -> apply, then plan again.

A phase reads what exists into a facts snapshot, computes a plan as data (a list of
:class:`Action`, each with a reason; an empty plan states "no change"), and an executor
applies it. After applying, the runner plans again and fails if anything is left, so every
phase proves it converged: on facts read again, or, for a phase with a ``facts_after(ctx,
facts, applied)`` method, on the facts that method gives from what it reads again, the facts
of the first plan and the actions applied (vault-config: it does not read back every role it
has just written). ``invoke plan`` stops after the first plan of each phase.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

from bootstrap.clients.kv import KvValue
from bootstrap.clients.vault import Api
from bootstrap.core import failpoints
from bootstrap.core.errors import BootstrapError, ConvergenceError, UsageError
from bootstrap.core.waits import WaitSettings
from bootstrap.model.actions import Action
from bootstrap.model.catalog import Catalog
from bootstrap.model.settings import Settings
from bootstrap.model.snapshot import RestoreRequest
from bootstrap.runtime.credentials import Session
from bootstrap.runtime.target import Target
from bootstrap.runtime.vso import Baseline

log = logging.getLogger(__name__)

#: Phases that run only in one command, and which: named to another command, a message says so.
ONLY_IN = {"dr-restore": "invoke dr.restore"}


@dataclass
class RunContext:
    """What every phase of a run shares: the settings, the catalog, the target (cluster or
    sandbox, resolved once per run), how long waits poll, and one lazy Vault session."""

    settings: Settings
    catalog: Catalog
    dry_run: bool = False
    #: The cluster and Vault the run talks to; resolved by the registry before phases run.
    target_: Target | None = None
    #: How phases poll (Vault answering, unsealing, Secrets syncing); None: from settings.
    wait: WaitSettings | None = None
    #: Asked before each phase: a reason to stop the run (e.g. the cluster lock was lost).
    stop_reason: Callable[[], str | None] | None = None
    #: True while the runner re-plans after applying, to prove the phase converged: one-shot
    #: requests (``rotate``) are then not asked again, only the state is checked.
    converging: bool = False
    #: Set by 'invoke dr.restore': the snapshot to restore first, and with what.
    restore: RestoreRequest | None = None
    #: KV v2 paths as this run last read them (populate's facts), so that verify, right
    #: after, does not read them all again; a path populate writes is dropped until read.
    kv_seen: dict[str, KvValue] = field(default_factory=dict, repr=False)
    #: verify proves a hand-over quiet (no restart target restarted for one refresh period);
    #: off only with ``bootstrap --skip-quiet-check``, never from a setting.
    quiet_check: bool = True
    #: The restarts of the catalog's restart targets just before the operator phase applied
    #: (a ``runtime.vso.Baseline``): verify's quiet check counts from there.
    restart_baseline: Baseline | None = field(default=None, repr=False)
    #: KV paths populate wrote in this run that held nothing before (a first fill): their
    #: writes excuse no restart (the first fill of a placeholder restarts nothing).
    first_fill: set[str] = field(default_factory=set)
    #: (namespace, kind, name) -> restarts the operator owes a target in this run: one per
    #: VaultStaticSecret of it whose spec the operator phase changed on an operator that
    #: answers a spec change with a restart (the plan says so)
    expected_restarts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: A Vault client given by the caller (the populate Job's, logged in with kubernetes
    #: auth): used instead of the target's session, and no target is needed for it.
    vault_api: Api | None = field(default=None, repr=False)
    _session: Session | None = field(default=None, repr=False)

    @property
    def target(self) -> Target:
        if self.target_ is None:
            raise UsageError("this phase needs a target (a cluster or the sandbox); none resolved")
        return self.target_

    @property
    def session(self) -> Session:
        if self._session is None or self._session.target is not self.target:
            self._session = Session(self.target)
        return self._session

    @property
    def vault(self) -> Api:
        """The run's Vault client (made on first use, token from :mod:`credentials`), or the
        one the caller gave."""
        if self.vault_api is not None:
            return self.vault_api
        return self.session.api

    def waits(self, maximum: float | None = None) -> WaitSettings:
        if self.wait is not None:
            return self.wait
        if maximum is None:
            return WaitSettings(timeout=self.settings.wait_timeout)
        return WaitSettings(timeout=self.settings.wait_timeout, maximum=maximum)


#: What a phase reads before it plans: its own type per phase (ReadyFacts, OperatorFacts, ...).
FactsT = TypeVar("FactsT")


class Phase(Protocol[FactsT]):
    """Read facts, plan from them alone (no command, file or prompt), apply the plan."""

    name: str
    summary: str
    #: Tools (by name in bootstrap.tooling.tools) this phase needs; preflight checks them.
    tools: tuple[str, ...]

    def facts(self, ctx: RunContext) -> FactsT: ...

    def plan(self, ctx: RunContext, facts: FactsT) -> list[Action]: ...

    def apply(self, ctx: RunContext, actions: list[Action]) -> None: ...


class PhaseBase(Generic[FactsT]):
    """A base for the product's phases: the facts' type as its parameter, name, summary and
    tools as class keywords, ``class Finish(PhaseBase[FinishFacts], name="finish", ...):``."""

    name: str
    summary: str
    tools: tuple[str, ...] = ()

    def __init_subclass__(
        cls, *, name: str, summary: str, tools: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name
        cls.summary = summary
        cls.tools = tools


@dataclass
class PhaseResult:
    name: str
    status: Literal["no-change", "applied", "planned", "skipped", "failed"]
    actions: list[Action]
    seconds: float
    error: str | None = None
    #: Wall-clock end of the phase (epoch seconds); 0 when it did not run.
    ended_at: float = 0.0
    #: The type of the unexpected exception the phase crashed with, if it did.
    crash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "actions": [a.as_dict() for a in self.actions],
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "ended_at": round(self.ended_at, 3),
            "crash": self.crash,
        }


def select(
    registered: Sequence[str],
    only: Sequence[str] = (),
    start: str | None = None,
    skip: Sequence[str] = (),
) -> list[str]:
    """Which registered phases run, in order. Unknown names are a usage error."""
    names = list(registered)
    for n in [*only, *([start] if start else []), *skip]:
        if n not in names:
            known = ", ".join(names)
            if n in ONLY_IN:
                raise UsageError(f"phase {n!r} runs only in '{ONLY_IN[n]}'; here: {known}")
            raise UsageError(f"unknown phase {n!r}; available: {known}")
    if only and start:
        raise UsageError("--only and --start cannot be combined")
    chosen = [n for n in names if n in only] if only else names
    if start:
        chosen = chosen[chosen.index(start) :]
    return [n for n in chosen if n not in skip]


Listener = Callable[[str, str], None]


def run(
    phases: Sequence[Phase[Any]],
    ctx: RunContext,
    selected: Sequence[str],
    on_event: Listener | None = None,
    results: list[PhaseResult] | None = None,
) -> list[PhaseResult]:
    """Run the selected phases in order; stop at the first failure (and say so).

    Results are appended to ``results`` (when given) as each phase ends, so that a caller
    holding the list still has them when an unexpected exception escapes: the phase it
    escaped from is recorded as failed with the exception's type (never its message, which
    may hold anything), and the exception propagates."""
    notify = on_event or (lambda phase, msg: None)
    results = [] if results is None else results
    failed = False
    for phase in phases:
        if phase.name not in selected or failed:
            results.append(PhaseResult(phase.name, "skipped", [], 0.0))
            continue
        started = time.monotonic()
        notify(phase.name, "reading facts")
        try:
            results.append(_run_phase(phase, ctx, results, notify, started))
        except BootstrapError as exc:
            results.append(_failed(phase.name, started, str(exc)))
            notify(phase.name, "failed")
            failed = True
        except BaseException as exc:
            results.append(_failed(phase.name, started, crash_text(exc), type(exc).__name__))
            notify(phase.name, "crashed")
            raise
    return results


def crash_text(exc: BaseException) -> str:
    """What a report says of an unexpected exception: its type only."""
    return f"crashed: {type(exc).__name__} (an unexpected error; run with debug for details)"


def _failed(name: str, started: float, error: str, crash: str | None = None) -> PhaseResult:
    return PhaseResult(
        name, "failed", [], time.monotonic() - started, error, time.time(), crash=crash
    )


@dataclass(frozen=True)
class Planned(Generic[FactsT]):
    """The facts a plan was made from; none when the phase was only noted in a plan (it
    waits for an earlier phase's changes)."""

    facts: FactsT | None


#: Phases that read the Vault a restore replaces: in a dr.restore plan they are planned only
#: once the restore has applied (before it, they would plan against the empty new Vault).
READS_RESTORED_VAULT = frozenset({"vault-ready", "vault-config", "populate", "verify", "finish"})


def _plan(
    phase: Phase[FactsT], ctx: RunContext, results: Sequence[PhaseResult]
) -> tuple[Planned[FactsT], list[Action]]:
    """The phase's facts (None when it was not asked) and its plan."""
    if ctx.dry_run and ctx.restore is not None and phase.name in READS_RESTORED_VAULT:
        restore = next((r for r in results if r.name == "dr-restore"), None)
        if restore is not None and any(a.changes for a in restore.actions):
            return Planned(None), [
                Action("check", phase.name, "planned once dr-restore has applied")
            ]
    try:
        facts = phase.facts(ctx)
        return Planned(facts), phase.plan(ctx, facts)
    except BootstrapError as exc:
        pending = [
            r.name for r in results if r.status == "planned" and any(a.changes for a in r.actions)
        ]
        if not (ctx.dry_run and pending):
            raise
        # In a plan, a phase may depend on changes an earlier phase would make.
        later = f"planned once {pending[-1]} has applied (now: {exc})"
        return Planned(None), [Action("check", phase.name, later)]


def _run_phase(
    phase: Phase[FactsT],
    ctx: RunContext,
    results: Sequence[PhaseResult],
    notify: Listener,
    started: float,
) -> PhaseResult:
    stop = ctx.stop_reason() if ctx.stop_reason else None
    if stop:
        raise BootstrapError(f"stopped before {phase.name}: {stop}")
    if not ctx.dry_run:
        failpoints.point(f"phase:{phase.name}:start")
    facts, actions = _plan(phase, ctx, results)
    if ctx.dry_run:
        notify(phase.name, f"{len(actions)} action(s) planned")
        return PhaseResult(
            phase.name, "planned", actions, time.monotonic() - started, None, time.time()
        )
    problems = [a for a in actions if a.verb == "problem"]
    if problems:
        raise BootstrapError(
            f"phase {phase.name}: " + "; ".join(f"{a.target}: {a.reason}" for a in problems)
        )
    status: Literal["no-change", "applied"] = "no-change"
    changes = [a for a in actions if a.changes]
    if changes:
        notify(phase.name, f"applying {len(changes)} change(s)")
    phase.apply(ctx, actions)  # with no change, checks may still act (e.g. wait, record)
    if changes:
        _converged(phase, ctx, facts, actions)
        status = "applied"
    failpoints.point(f"phase:{phase.name}:done")
    notify(phase.name, status)
    return PhaseResult(phase.name, status, actions, time.monotonic() - started, None, time.time())


def _converged(
    phase: Phase[FactsT], ctx: RunContext, before: Planned[FactsT], applied: list[Action]
) -> None:
    """Plan again after applying; anything left to change means the phase did not converge.
    The facts are read again, or given by the phase's ``facts_after`` when it has one."""
    ctx.converging = True
    try:
        after = getattr(phase, "facts_after", None)
        facts = after(ctx, before.facts, applied) if after is not None else phase.facts(ctx)
        left = [a for a in phase.plan(ctx, facts) if a.changes]
    finally:
        ctx.converging = False
    if left:
        raise ConvergenceError(
            f"phase {phase.name} did not converge; still to do: "
            + "; ".join(f"{a.verb} {a.target}" for a in left)
        )


def report(results: Sequence[PhaseResult], error: BaseException | None = None) -> dict[str, Any]:
    """Machine-readable report of a run (never holds secret values).

    ``populate_to_verified_seconds``: from the end of populate to the end of a successful
    verify, when both ran in this run -- how long the operator took to bring the real values
    into every Secret. ``error``: what ended the run early, when something did: the phase it
    escaped from (if any), the exception's type, and its message only for the product's own
    errors (which are written to never hold secrets)."""
    ran = {r.name: r for r in results if r.ended_at and r.status in ("applied", "no-change")}
    synced = None
    if "populate" in ran and "verify" in ran:
        synced = round(ran["verify"].ended_at - ran["populate"].ended_at, 3)
    out: dict[str, Any] = {
        "ok": error is None and all(r.status != "failed" for r in results),
        "phases": [r.as_dict() for r in results],
        "seconds": round(sum(r.seconds for r in results), 3),
        "populate_to_verified_seconds": synced,
        "error": None,
    }
    if error is not None:
        crashed = next((r.name for r in reversed(results) if r.crash), None)
        out["error"] = {
            "phase": crashed,
            "type": type(error).__name__,
            "message": str(error) if isinstance(error, BootstrapError) else None,
        }
    return out


@contextmanager
def reporting(path: Path) -> Iterator[list[PhaseResult]]:
    """Collect a run's results and write its JSON report to ``path`` however the run ends:
    done, failed, crashed or interrupted (written atomically, in ``finally``)."""
    results: list[PhaseResult] = []
    error: BaseException | None = None
    try:
        yield results
    except BaseException as exc:
        error = exc
        raise
    finally:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(report(results, error), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
