"""Populate's plan without Vault (issue 10, item 3): a resolved secret over Kubernetes' 1 MiB
Secret limit is a problem, nothing is written; file sources honour source_file_roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap.model.actions import Action
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext
from bootstrap.phases.populate import KvState, Populate

CATALOG = """
services:
  - name: app
    namespace: apps
    secrets:
      config:
        keys:
          a: {file: a.txt}
          b: {file: b.txt}
"""


def plan(tmp_path: Path, data: dict[str, str] | None = None, **settings: Any) -> list[Action]:
    cat = parse_catalog(CATALOG, str(tmp_path / "catalog.yaml"))
    ctx = RunContext(Settings(catalog=tmp_path / "catalog.yaml", **settings), cat)
    keys = cat.service("app").secrets["config"].keys
    return Populate().plan(ctx, [KvState("app/config", keys, data or {}, 0)])


def test_a_secret_over_one_mib_is_a_problem_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 600_000)
    (tmp_path / "b.txt").write_text("b" * 600_000)
    actions = plan(tmp_path)
    assert [a.verb for a in actions] == ["problem"]
    (problem,) = actions
    assert problem.target == "secret app/config"
    assert "1200002 bytes, over Kubernetes' limit of 1048576 bytes (1 MiB)" in problem.reason
    assert "nothing written" in problem.reason
    assert "aaaa" not in problem.reason


def test_values_already_in_vault_count_towards_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 10)
    (tmp_path / "b.txt").write_text("b" * 10)
    assert [a.verb for a in plan(tmp_path)] == ["create"]
    actions = plan(tmp_path, {"old": "x" * 1_048_576})
    assert [a.verb for a in actions] == ["problem"]


def test_file_sources_honour_source_file_roots(tmp_path: Path) -> None:
    base, shared = tmp_path / "cat", tmp_path / "shared"
    base.mkdir()
    shared.mkdir()
    (base / "a.txt").write_text("a")
    (shared / "b.txt").write_text("b")
    (base / "b.txt").symlink_to(shared / "b.txt")
    refused = plan(base)
    assert refused[0].verb == "problem"  # problems block every write of the phase
    assert "file b.txt: resolves to" in refused[0].reason
    assert "outside the catalog's folder" in refused[0].reason
    allowed = plan(base, source_file_roots=(str(shared),))
    assert [a.verb for a in allowed] == ["create"]
