"""The phase mechanism: selection flags, facts -> plan -> apply -> plan again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap.core.errors import UsageError
from bootstrap.model.actions import Action
from bootstrap.model.catalog import load_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import Phase, RunContext, report, reporting, run, select
from tests.conftest import EXAMPLE


@dataclass
class Counter:
    """A phase whose world is a dict: it wants key 'n' to reach 'target'."""

    name: str
    target: int
    world: dict[str, int]
    step: int = 1
    applied: list[int] = field(default_factory=list)
    summary: str = "test phase"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> Any:
        return self.world.get(self.name, 0)

    def plan(self, ctx: RunContext, facts: Any) -> list[Action]:
        if facts == self.target:
            return []
        return [Action("update", self.name, f"{facts} -> {self.target}")]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        if actions:
            self.world[self.name] = self.world.get(self.name, 0) + self.step
            self.applied.append(self.world[self.name])


@pytest.fixture
def ctx() -> RunContext:
    return RunContext(Settings(), load_catalog(EXAMPLE))


def test_select() -> None:
    names = ["preflight", "placeholders", "vault-ready", "vault-config"]
    assert select(names) == names
    assert select(names, only=["vault-ready"]) == ["vault-ready"]
    assert select(names, start="vault-ready") == ["vault-ready", "vault-config"]
    assert select(names, skip=["placeholders"]) == ["preflight", "vault-ready", "vault-config"]
    with pytest.raises(UsageError, match="unknown phase 'nope'"):
        select(names, only=["nope"])
    with pytest.raises(UsageError, match=r"runs only in 'invoke dr\.restore'"):
        select(["preflight"], start="dr-restore")
    with pytest.raises(UsageError, match="cannot be combined"):
        select(names, only=["preflight"], start="vault-ready")


def test_apply_then_converged(ctx: RunContext) -> None:
    world: dict[str, int] = {}
    a, b = Counter("a", 1, world, step=1), Counter("b", 0, world)
    results = run([a, b], ctx, ["a", "b"])
    assert [r.status for r in results] == ["applied", "no-change"]
    assert world == {"a": 1}
    again = run([a, b], ctx, ["a", "b"])
    assert [r.status for r in again] == ["no-change", "no-change"]
    assert report(again)["ok"] is True


def test_non_convergence_fails_and_stops(ctx: RunContext) -> None:
    world: dict[str, int] = {}
    a, b = Counter("a", 5, world, step=1), Counter("b", 1, world)
    results = run([a, b], ctx, ["a", "b"])
    assert results[0].status == "failed" and "did not converge" in (results[0].error or "")
    assert results[1].status == "skipped" and "b" not in world
    assert report(results)["ok"] is False


def test_dry_run_changes_nothing(ctx: RunContext) -> None:
    world: dict[str, int] = {}
    ctx.dry_run = True
    results = run([Counter("a", 1, world)], ctx, ["a"])
    assert results[0].status == "planned" and results[0].actions[0].verb == "update"
    assert world == {}


@dataclass
class Crashing:
    """A phase whose apply hits a bug (an exception that is not a product error) whose
    message holds something secret."""

    name: str = "crashing"
    summary: str = "test phase"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> Any:
        return None

    def plan(self, ctx: RunContext, facts: Any) -> list[Action]:
        return [Action("create", "thing", "missing")]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        raise KeyError("hunter2-token-value")


def test_a_crash_still_writes_the_report_with_phase_and_type_only(tmp_path: Path) -> None:
    ctx = RunContext(Settings(), load_catalog(EXAMPLE))
    world: dict[str, int] = {}
    phases: list[Phase[Any]] = [Counter("first", 1, world), Crashing(), Counter("last", 1, world)]
    path = tmp_path / "reports" / "bootstrap.json"
    with pytest.raises(KeyError), reporting(path) as results:
        run(phases, ctx, ["first", "crashing", "last"], results=results)
    text = path.read_text()
    assert "hunter2" not in text
    rep = json.loads(text)
    assert rep["ok"] is False
    assert rep["error"] == {"phase": "crashing", "type": "KeyError", "message": None}
    assert [(p["name"], p["status"]) for p in rep["phases"]] == [
        ("first", "applied"),
        ("crashing", "failed"),
    ]
    assert rep["phases"][1]["crash"] == "KeyError"


def test_a_product_error_outside_the_phases_is_reported_with_its_message(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    with pytest.raises(UsageError), reporting(path):
        raise UsageError("no Vault address: set bootstrap.vault_addrs")
    rep = json.loads(path.read_text())
    assert rep["error"] == {
        "phase": None,
        "type": "UsageError",
        "message": "no Vault address: set bootstrap.vault_addrs",
    }
    assert rep["phases"] == [] and rep["ok"] is False


def test_a_clean_run_reports_no_error(tmp_path: Path) -> None:
    ctx = RunContext(Settings(), load_catalog(EXAMPLE))
    path = tmp_path / "r.json"
    with reporting(path) as results:
        run([Counter("only", 1, {})], ctx, ["only"], results=results)
    rep = json.loads(path.read_text())
    assert rep["ok"] is True and rep["error"] is None


def test_a_restore_plan_defers_the_phases_that_read_the_restored_vault(ctx: RunContext) -> None:
    from bootstrap.model.snapshot import RestoreRequest

    world: dict[str, int] = {}
    phases = [Counter(n, 1, world) for n in ("dr-restore", "placeholders", "vault-config")]
    ctx.dry_run = True
    ctx.restore = RestoreRequest(Path("s.snap"))
    results = run(phases, ctx, [p.name for p in phases])
    plans = {r.name: [(a.verb, a.reason) for a in r.actions] for r in results}
    assert plans["dr-restore"] == [("update", "0 -> 1")]
    assert plans["placeholders"] == [("update", "0 -> 1")]  # not Vault's: planned as it is
    assert plans["vault-config"] == [("check", "planned once dr-restore has applied")]
    # with the restore done (nothing left to restore), every phase plans for itself
    world["dr-restore"] = 1
    again = run(phases, ctx, [p.name for p in phases])
    assert [a.verb for a in again[2].actions] == ["update"]


@dataclass
class Deriving(Counter):
    """A Counter whose convergence check derives the facts from the first plan's facts and
    the actions applied, as vault-config does for the roles it wrote, instead of reading."""

    seen: list[tuple[Any, list[str]]] = field(default_factory=list)

    def facts_after(self, ctx: RunContext, before: Any, applied: list[Action]) -> Any:
        self.seen.append((before, [a.target for a in applied]))
        return before + self.step * len(applied)


def test_a_phase_may_derive_the_convergence_facts_from_what_it_applied(ctx: RunContext) -> None:
    world: dict[str, int] = {}
    a = Deriving("a", 1, world)
    assert [r.status for r in run([a], ctx, ["a"])] == ["applied"]
    assert a.seen == [(0, ["a"])]  # the first plan's facts and its actions
    assert [r.status for r in run([a], ctx, ["a"])] == ["no-change"]
    assert len(a.seen) == 1  # nothing applied: no convergence check


def test_derived_convergence_facts_that_fall_short_fail_the_phase(ctx: RunContext) -> None:
    world: dict[str, int] = {}
    results = run([Deriving("a", 2, world)], ctx, ["a"])  # one step applied, two wanted
    assert results[0].status == "failed" and "did not converge" in (results[0].error or "")


def test_printed_groups_repeated_checks_and_keeps_changes_in_order() -> None:
    from bootstrap.model.actions import GROUP_CHECKS_FROM, Action, check, printed

    same = [check(f"secret s{i}/config", "unchanged") for i in range(GROUP_CHECKS_FROM + 2)]
    actions = [
        Action("create", "policy a", "new"),
        *same[:2],
        check("secret x/y", "skipped: no source for k (put by hand)"),
        *same[2:],
        Action("update", "role a", "changed"),
    ]
    lines = printed(actions)
    assert lines == [
        ("create", "policy a", "new"),
        (
            "check",
            f"{len(same)} targets (secret s0/config, secret s1/config, secret s2/config "
            f"and {len(same) - 3} more)",
            "unchanged",
        ),
        ("check", "secret x/y", "skipped: no source for k (put by hand)"),
        ("update", "role a", "changed"),
    ]
    few = same[: GROUP_CHECKS_FROM - 1]
    assert printed(few) == [(a.verb, a.target, a.reason) for a in few]  # too few to group
