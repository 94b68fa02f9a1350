"""Issue 10, item 5: a corpus of bad catalogs (tests/corpus/bad), each refused by
``catalog.validate``, ``check`` and ``render`` with exit code 2, the expected message, its
file:line location, no traceback and nothing written; and good catalogs that must pass.

Each bad file starts with ``# expect: <part of the message>`` and ``# at: <line>`` (``-``
where the parser cannot give a line). Every file runs through the three tasks in-process (the
tasks' own code, ``friendly`` included); a handful also run through the CLI as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from invoke import Config, Context, Exit

import tasks
from bootstrap.model.catalog import MAX_CATALOG_BYTES, load_catalog
from bootstrap.model.reserved import check_reserved
from bootstrap.model.settings import Settings
from tests.conftest import ROOT

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
BAD = sorted((CORPUS / "bad").glob("*.yaml"))
GOOD = sorted((CORPUS / "good").glob("*.yaml"))
TASKS = ("validate", "check", "render")


def header(path: Path) -> tuple[str, str]:
    first, second = path.read_bytes().split(b"\n", 2)[:2]
    expect = first.decode().removeprefix("# expect: ")
    at = second.decode().removeprefix("# at: ")
    assert first.decode().startswith("# expect: ") and second.decode().startswith("# at: ")
    return expect, at


def context() -> Context:
    return Context(Config(overrides={"bootstrap": dict(tasks.DEFAULTS["bootstrap"])}))


def run_task(task: str, catalog: Path, out: Path) -> Exit:
    kwargs = {"catalog": str(catalog)}
    if task == "render":
        kwargs["out"] = str(out)
    with pytest.raises(Exit) as info:
        getattr(tasks, task)(context(), **kwargs)
    return info.value


def assert_refused(message: str, path: Path, expect: str, at: str) -> None:
    assert expect in message, f"{expect!r} not in {message!r}"
    location = f"{path}:{at}: " if at != "-" else f"{path}: "
    assert location in message, f"{location!r} not in {message!r}"
    assert "Traceback" not in message


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD) >= 60 and len(GOOD) >= 5
    assert len({p.name.split("-", 1)[0] for p in BAD}) == len(BAD)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_catalog_is_refused_by_every_task(path: Path, tmp_path: Path) -> None:
    expect, at = header(path)
    for task in TASKS:
        out = tmp_path / f"out-{task}"
        exit_ = run_task(task, path, out)
        assert exit_.code == 2, (task, exit_.message)
        assert_refused(str(exit_.message), path, expect, at)
        assert not out.exists(), f"{task} wrote {out}"


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_catalog_passes(path: Path, tmp_path: Path) -> None:
    check_reserved(load_catalog(path), Settings(catalog=path))
    tasks.render(context(), out=str(tmp_path / "out"), catalog=str(path))
    tasks.check(context(), catalog=str(path))
    assert (tmp_path / "out" / "vault" / "policies").is_dir()


@pytest.fixture(scope="module")
def two_megabytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated, not committed: a 2 MB catalog that would be valid if it were smaller."""
    path = tmp_path_factory.mktemp("big") / "two-megabytes.yaml"
    service = "  - name: s{0}\n    namespace: n{0}\n    secrets:\n      c: {{keys: {{a: null}}}}\n"
    parts = ["services:\n"]
    size, i = 0, 0
    while size < 2 * MAX_CATALOG_BYTES:
        parts.append(service.format(i))
        size += len(parts[-1])
        i += 1
    path.write_text("".join(parts), encoding="utf-8")
    return path


def test_a_two_megabyte_catalog_is_refused_by_every_task(
    two_megabytes: Path, tmp_path: Path
) -> None:
    for task in TASKS:
        exit_ = run_task(task, two_megabytes, tmp_path / "out")
        assert exit_.code == 2
        assert_refused(str(exit_.message), two_megabytes, "at most 1048576 bytes (1 MiB)", "-")
        assert not (tmp_path / "out").exists()


def _cli(task: str, catalog: Path, out: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "invoke", *task.split(), "--catalog", str(catalog)]
    if task == "render":
        argv += ["--out", str(out)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


#: A handful through the CLI, each task at least once.
CLI_CASES = [
    ("alias-bomb", "catalog.validate"),
    ("recursive-alias", "check"),
    ("name-markup", "render"),
    ("env-vault-token", "catalog.validate"),
    ("file-dotdot-passwd", "check"),
    ("reserved-bootstrap-admin", "render"),
    ("custody-secret-destination", "catalog.validate"),
    ("not-utf8", "check"),
]


def test_a_handful_through_the_cli(two_megabytes: Path, tmp_path: Path) -> None:
    by_name = {p.stem.split("-", 1)[1]: p for p in BAD}
    runs = [(by_name[name], task) for name, task in CLI_CASES]
    runs += [(two_megabytes, "render")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda r: _cli(r[1], r[0], tmp_path / f"out-{r[0].stem}"), runs))
    for (path, task), proc in zip(runs, procs, strict=True):
        expect, at = header(path) if path != two_megabytes else ("at most 1048576 bytes", "-")
        assert proc.returncode == 2, (path.name, task, proc.stderr)
        assert_refused(proc.stderr, path, expect, at)
        assert "Traceback" not in proc.stdout
        assert not (tmp_path / f"out-{path.stem}").exists()
