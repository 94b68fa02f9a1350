"""Drills on a busy machine (issue 24, item 5): a CPU hog takes every core (one busy loop per
core, bounded in time, started and stopped by the test by pid) while the product does its
work on fresh sandboxes, and the work still converges:

- a whole bootstrap of the example catalog, then a re-run that changes nothing;
- a three-node OpenBao bootstrap that loses a standby node halfway, and completes.

They are drills (``-m drill``): ``invoke test --drills`` runs them on their own, never beside
the rest of the suite (a hog beside other tests would only make those flaky).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Box, _start
from tests.integration.helpers import bootstrap_cli, demo_env, held_at, kill_a_standby

pytestmark = pytest.mark.drill

#: The hog's own bound, whatever happens to the test.
HOG_SECONDS = 900


@pytest.fixture
def hog() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One busy loop per core, at the same priority as the product."""
    loop = (
        f"import time\nend = time.monotonic() + {HOG_SECONDS}\n"
        "while time.monotonic() < end:\n    pass\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(os.cpu_count() or 2)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _busy(procs: list[subprocess.Popen[bytes]]) -> None:
    assert all(p.poll() is None for p in procs), "the hog stopped early"


def test_a_bootstrap_converges_while_a_hog_takes_every_core(
    hog: list[subprocess.Popen[bytes]], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    it = _start(tmp_path_factory.mktemp("busy"), ha=False)
    box = next(it)
    try:
        env = {**demo_env(), **box.cli_env(tmp_path / "state")}
        first = bootstrap_cli(env, "--report", str(tmp_path / "first.json"))
        _busy(hog)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        again = bootstrap_cli(env, "--report", str(tmp_path / "again.json"))
        _busy(hog)
        assert again.returncode == 0, again.stderr[-3000:]
        report = json.loads((tmp_path / "again.json").read_text())
        assert {p["status"] for p in report["phases"]} == {"no-change"}, report["phases"]
    finally:
        it.close()


def test_an_ha_bootstrap_that_loses_a_node_completes_while_a_hog_takes_every_core(
    hog: list[subprocess.Popen[bytes]], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    it = _start(tmp_path_factory.mktemp("busy-ha"), ha=True)
    box: Box = next(it)
    try:
        env = {**demo_env(), **box.cli_env(tmp_path / "state")}
        with held_at("phase:operator:start", tmp_path, env) as run_:
            kill_a_standby(box)
        _busy(hog)
        assert run_.done is not None
        assert run_.done.returncode == 0, run_.done.stdout[-3000:] + run_.done.stderr[-3000:]
    finally:
        it.close()
