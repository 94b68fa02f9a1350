"""Issue 10, item 4: rich markup in a path, name, message or value prints literally and never
crashes the task output (through the CLI: tests/integration/test_cli.py)."""

from __future__ import annotations

import io

import pytest

from bootstrap.cli import common
from bootstrap.model.actions import Action
from bootstrap.phases.pipeline import PhaseResult

MARKUP = "[bold]x[/] [/] [red"


def test_phase_results_with_markup_print_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(common.console, "file", buffer)
    results = [
        PhaseResult(
            "populate",
            "failed",
            [Action("problem", f"secret {MARKUP}/config key a", f"command {MARKUP!r} exited 1")],
            0.1,
            f"prompt {MARKUP!r} needs a terminal",
        )
    ]
    common.print_results(results, dry_run=False)
    printed = buffer.getvalue()
    assert f"secret {MARKUP}/config key a: command {MARKUP!r} exited 1" in printed
    assert f"populate failed: prompt {MARKUP!r} needs a terminal" in printed
