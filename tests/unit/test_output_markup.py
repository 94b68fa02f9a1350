"""Issue 10, item 4: rich markup in a path, name, message or value prints literally and never
crashes the task output."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

import tasks
from bootstrap.model.actions import Action
from bootstrap.phases.pipeline import PhaseResult
from tests.conftest import EXAMPLE, ROOT

MARKUP = "[bold]x[/] [/] [red"


def invoke(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "invoke", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def markup_catalog(tmp_path: Path) -> Path:
    folder = tmp_path / "a[/]b [bold]c[/]"  # nested folders: 'a[', ']b [bold]c[', ']'
    folder.mkdir(parents=True)
    shutil.copy(EXAMPLE, folder / "catalog.yaml")
    shutil.copytree(ROOT / "examples", folder / "examples")
    return folder / "catalog.yaml"


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ("catalog.validate", "{catalog}: valid"),
        ("check", "check passed for {catalog}:"),
    ],
)
def test_a_markup_path_prints_literally(markup_catalog: Path, task: str, says: str) -> None:
    proc = invoke(*task.split(), "--catalog", str(markup_catalog))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert says.format(catalog=markup_catalog) in proc.stdout


def test_render_to_a_markup_folder_prints_it_literally(tmp_path: Path) -> None:
    out = tmp_path / "[bold]out[/]"
    proc = invoke("render", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"to {out}/ (" in proc.stdout
    assert (out / "vault").is_dir()


def test_markup_in_a_catalog_error_prints_literally(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'services:\n  - name: "[bold]x[/]"\n    namespace: apps\n'
        '    "[/]": 1\n    secrets: {c: {keys: {a: null}}}\n',
        encoding="utf-8",
    )
    proc = invoke("catalog.validate", "--catalog", str(bad))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{bad}:2: services[0] ('[bold]x[/]') field name" in proc.stderr
    assert "'[bold]x[/]' is not a DNS-1123 label" in proc.stderr
    assert "unknown field '[/]'" in proc.stderr


def test_phase_results_with_markup_print_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(tasks, "console", Console(file=buffer, width=400))
    results = [
        PhaseResult(
            "populate",
            "failed",
            [Action("problem", f"secret {MARKUP}/config key a", f"command {MARKUP!r} exited 1")],
            0.1,
            f"prompt {MARKUP!r} needs a terminal",
        )
    ]
    tasks._print_results(results, dry_run=False)
    printed = buffer.getvalue()
    assert f"secret {MARKUP}/config key a: command {MARKUP!r} exited 1" in printed
    assert f"populate failed: prompt {MARKUP!r} needs a terminal" in printed
