"""Populate's apply-side checks, before anything is written: every value resolved from its
source, placeholders refused, the whole Secret within Kubernetes' 1 MiB, file sources within
their roots. (The plan itself resolves nothing: see test_phase_plans.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action
from bootstrap.model.catalog import Source, parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext
from bootstrap.phases.populate import Populate, WriteKv, merge, resolve_values


def _write(**keys: str) -> WriteKv:
    sources = tuple((k, Source.model_validate({"file": f})) for k, f in sorted(keys.items()))
    return WriteKv("create", "secret app/config", "", path="app/config", version=0, sources=sources)


def _no_vault(path: str, key: str) -> str | None:
    raise AssertionError("no copy source here: Vault is never read")


def test_a_secret_over_one_mib_is_a_problem_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 600_000)
    (tmp_path / "b.txt").write_text("b" * 600_000)
    new, problems = resolve_values(_write(a="a.txt", b="b.txt"), tmp_path, _no_vault)
    assert problems == []
    merged, problems = merge("app/config", {}, new)
    assert merged == {}
    (problem,) = problems
    assert problem.startswith("secret app/config:")
    assert "1200002 bytes, over Kubernetes' limit of 1048576 bytes (1 MiB)" in problem
    assert "nothing written" in problem
    assert "aaaa" not in problem


def test_values_already_in_vault_count_towards_the_limit() -> None:
    merged, problems = merge("app/config", {}, {"a": "a" * 10})
    assert problems == [] and merged == {"a": "a" * 10}
    merged, problems = merge("app/config", {"old": "x" * 1_048_576}, {"a": "a" * 10})
    assert merged == {} and len(problems) == 1


def test_new_values_replace_old_ones_and_keep_the_rest() -> None:
    merged, problems = merge("p", {"a": "old", "b": "kept"}, {"a": "new"})
    assert problems == [] and merged == {"a": "new", "b": "kept"}


def test_file_sources_honour_source_file_roots(tmp_path: Path) -> None:
    base, shared = tmp_path / "cat", tmp_path / "shared"
    base.mkdir()
    shared.mkdir()
    (base / "a.txt").write_text("a")
    (shared / "b.txt").write_text("b")
    (base / "b.txt").symlink_to(shared / "b.txt")
    new, refused = resolve_values(_write(a="a.txt", b="b.txt"), base, _no_vault)
    (problem,) = refused
    assert problem.startswith("app/config key b: file b.txt: resolves to")
    assert "outside the catalog's folder" in problem
    new, allowed = resolve_values(
        _write(a="a.txt", b="b.txt"), base, _no_vault, file_roots=(str(shared),)
    )
    assert allowed == [] and new == {"a": "a", "b": "b"}


def test_every_failure_is_reported_and_a_placeholder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text(f"{conv.PLACEHOLDER_PREFIX}app-config-p")
    new, problems = resolve_values(_write(m="missing.txt", p="p.txt"), tmp_path, _no_vault)
    assert new == {}
    assert [p.split(":")[0] for p in problems] == ["app/config key m", "app/config key p"]
    assert "refusing to write it" in problems[1]


ONE_SERVICE = "services:\n  - {name: app, namespace: app, secrets: {new: {keys: {a: null}}}}\n"


class FakeVault:
    """KV v2 as populate's apply sees it: reads (counted), check-and-set writes."""

    def __init__(self, held: dict[str, tuple[dict[str, str], int]]) -> None:
        self.held = held
        self.reads: list[str] = []
        self.writes: dict[str, dict[str, Any]] = {}

    def request(self, method: str, path: str) -> tuple[int, dict[str, Any] | None]:
        kv_path = path.removeprefix(f"{conv.KV_MOUNT}/data/")
        self.reads.append(kv_path)
        if kv_path not in self.held:
            return 404, None
        data, version = self.held[kv_path]
        return 200, {"data": {"data": data, "metadata": {"version": version}}}

    def write(self, path: str, body: dict[str, Any]) -> None:
        self.writes[path.removeprefix(f"{conv.KV_MOUNT}/data/")] = body

    def parallel(self, fn: Any, items: list[Any]) -> list[Any]:
        return [fn(i) for i in items]


def test_apply_rereads_only_paths_the_plan_saw_holding_something(tmp_path: Path) -> None:
    vault = FakeVault({"app/old": ({"kept": "real"}, 3)})
    target = SimpleNamespace()
    ctx = RunContext(Settings(catalog=tmp_path / "catalog.yaml"), parse_catalog(ONE_SERVICE, "c"))
    ctx.target_ = target  # type: ignore[assignment]
    ctx._session = SimpleNamespace(target=target, api=vault)  # type: ignore[assignment]
    gen = Source.model_validate({"generate": {"length": 8}})
    actions: list[Action] = [
        WriteKv("create", "secret app/new", "", path="app/new", version=0, sources=(("a", gen),)),
        WriteKv("update", "secret app/old", "", path="app/old", version=3, sources=(("b", gen),)),
    ]
    Populate().apply(ctx, actions)
    assert vault.reads == ["app/old"]  # the new path merges over nothing: check-and-set 0
    assert vault.writes["app/new"]["options"] == {"cas": 0}
    assert set(vault.writes["app/new"]["data"]) == {"a"}
    assert vault.writes["app/old"]["options"] == {"cas": 3}
    assert set(vault.writes["app/old"]["data"]) == {"kept", "b"}
