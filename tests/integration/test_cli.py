"""The CLI as a user runs it (``python -m invoke ...``, a process of its own; no sandbox: these
tasks read and write files only): bad catalogs exit 2 with the message and its location and no
traceback, writing nothing; the static check's exit code; rich markup in paths and messages
prints literally; render is byte-identical twice."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.badcatalogs import TOO_BIG, assert_refused, bad, header, write_two_megabytes
from tests.conftest import EXAMPLE, ROOT
from tests.integration.helpers import invoke_cli


def cli(*argv: str) -> Any:
    # the example catalog's command source needs the setting (issue 23, finding 1)
    return invoke_cli(list(argv), {"INVOKE_BOOTSTRAP_CATALOG_COMMANDS": "allow"}, ok=False)


#: A handful of the corpus through the CLI, each task at least once (every file runs through
#: the tasks in-process in tests/unit/test_corpus.py).
CLI_CASES = [
    ("alias-bomb", "catalog.validate"),
    ("recursive-alias", "check"),
    ("name-markup", "render"),
    ("env-vault-token", "catalog.validate"),
    ("file-dotdot-passwd", "check"),
    ("reserved-bootstrap-admin", "render"),
    ("custody-secret-destination", "catalog.validate"),
    ("not-utf8", "check"),
    ("name-uppercase", "plan"),
]


def test_bad_catalogs_exit_2_without_traceback_and_write_nothing(tmp_path: Path) -> None:
    two_megabytes = write_two_megabytes(tmp_path / "two-megabytes.yaml")
    runs = [(bad(name), task, header(bad(name))) for name, task in CLI_CASES]
    runs += [(two_megabytes, "render", TOO_BIG)]

    def run(path: Path, task: str) -> Any:
        out = ["--out", str(tmp_path / f"out-{path.stem}")] if task == "render" else []
        return cli(task, "--catalog", str(path), *out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda r: run(r[0], r[1]), runs))
    for (path, task, (expect, at)), proc in zip(runs, procs, strict=True):
        assert proc.returncode == 2, (path.name, task, proc.stderr)
        assert_refused(proc.stderr, path, expect, at)
        assert "Traceback" not in proc.stdout
        assert not (tmp_path / f"out-{path.stem}").exists()  # nothing half-written


def test_check_exits_non_zero_with_findings(tmp_path: Path) -> None:
    tree = tmp_path / "rendered"
    cli("render", "--out", str(tree))
    p = tree / "vault/policies/cert-manager.hcl"
    p.write_text(p.read_text().replace("secret/data/cert-manager/*", "secret/data/*"))
    proc = cli("check", "--rendered", str(tree))
    assert proc.returncode == 1
    assert "static check failed" in proc.stderr and "can read" in proc.stderr
    ok = cli("check")
    assert ok.returncode == 0 and "check passed" in ok.stdout


def test_render_twice_is_byte_identical(tmp_path: Path) -> None:
    for out in ("a", "b"):
        assert cli("render", "--out", str(tmp_path / out)).returncode == 0
    a, b = (
        {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}
        for d in (tmp_path / "a", tmp_path / "b")
    )
    assert a == b and len(a) > 30


# -- issue 10, item 4: rich markup in a path, name or message prints literally ------------


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
    proc = cli(task, "--catalog", str(markup_catalog))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert says.format(catalog=markup_catalog) in proc.stdout


def test_render_to_a_markup_folder_prints_it_literally(tmp_path: Path) -> None:
    out = tmp_path / "[bold]out[/]"
    proc = cli("render", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"to {out}/ (" in proc.stdout
    assert (out / "vault").is_dir()


def test_markup_in_a_catalog_error_prints_literally(tmp_path: Path) -> None:
    bad_catalog = tmp_path / "bad.yaml"
    bad_catalog.write_text(
        'services:\n  - name: "[bold]x[/]"\n    namespace: apps\n'
        '    "[/]": 1\n    secrets: {c: {keys: {a: null}}}\n',
        encoding="utf-8",
    )
    proc = cli("catalog.validate", "--catalog", str(bad_catalog))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{bad_catalog}:2: services[0] ('[bold]x[/]') field name" in proc.stderr
    assert "'[bold]x[/]' is not a DNS-1123 label" in proc.stderr
    assert "unknown field '[/]'" in proc.stderr
