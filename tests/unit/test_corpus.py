"""Issue 10, item 5: a corpus of bad catalogs (tests/corpus/bad), each refused by
``catalog.validate``, ``check`` and ``render`` with exit code 2, the expected message, its
file:line location, no traceback and nothing written; and good catalogs that must pass.

Each bad file starts with ``# expect: <part of the message>`` and ``# at: <line>`` (``-``
where the parser cannot give a line). Every file runs through the three tasks in-process (the
tasks' own code, ``friendly`` included); a handful also run through the CLI as a user would
(tests/integration/test_cli.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

import tasks
from bootstrap.model.catalog import load_catalog
from bootstrap.model.reserved import check_reserved
from bootstrap.model.settings import Settings
from tests.badcatalogs import BAD, GOOD, TOO_BIG, assert_refused, header, write_two_megabytes

TASKS = ("validate", "check", "render")


def context(**settings: str) -> Context:
    return Context(Config(overrides={"bootstrap": {**tasks.DEFAULTS["bootstrap"], **settings}}))


def run_task(task: str, catalog: Path, out: Path) -> Exit:
    kwargs = {"catalog": str(catalog)}
    if task == "render":
        kwargs["out"] = str(out)
    with pytest.raises(Exit) as info:
        getattr(tasks, task)(context(), **kwargs)
    return info.value


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
    # good/005 has a command source: it passes with the setting that allows them
    check_reserved(load_catalog(path), Settings(catalog=path, catalog_commands="allow"))
    allow = context(catalog_commands="allow")
    tasks.render(allow, out=str(tmp_path / "out"), catalog=str(path))
    tasks.check(allow, catalog=str(path))
    assert (tmp_path / "out" / "vault" / "policies").is_dir()


@pytest.fixture(scope="module")
def two_megabytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_megabytes(tmp_path_factory.mktemp("big") / "two-megabytes.yaml")


def test_a_two_megabyte_catalog_is_refused_by_every_task(
    two_megabytes: Path, tmp_path: Path
) -> None:
    for task in TASKS:
        exit_ = run_task(task, two_megabytes, tmp_path / "out")
        assert exit_.code == 2
        assert_refused(str(exit_.message), two_megabytes, *TOO_BIG)
        assert not (tmp_path / "out").exists()
