"""Drills on a busy machine (issue 24, item 5): a CPU hog takes every core (one busy loop per
core, bounded in time, started and stopped by the test by pid) while the product does its
work on fresh sandboxes, and the work still converges:

- a whole bootstrap of the example catalog, then a re-run that changes nothing;
- a three-node OpenBao bootstrap that loses a standby node halfway, and completes;
- a disaster-recovery rebuild (``dr.restore``) onto a fresh sandbox, every Secret back with
  the original bytes.

They are drills (``-m drill``): ``invoke test --drills`` runs them on their own, never beside
the rest of the suite (a hog beside other tests would only make those flaky).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import syncs
from tests.conftest import EXAMPLE
from tests.integration.conftest import TOOLS_DIR, Box, _start
from tests.integration.helpers import bootstrap_cli, demo_env, held_at, kill_a_standby, task_cli

pytestmark = pytest.mark.drill

#: The hog's own bound, whatever happens to the test.
HOG_SECONDS = 900


def _hog() -> list[subprocess.Popen[bytes]]:
    """One busy loop per core, at the same priority as the product."""
    loop = (
        f"import time\nend = time.monotonic() + {HOG_SECONDS}\n"
        "while time.monotonic() < end:\n    pass\n"
    )
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(os.cpu_count() or 2)]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def hog() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = _hog()
    try:
        yield procs
    finally:
        _stop(procs)


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


def _secrets(kubeconfig: str) -> dict[tuple[str, str], dict[str, bytes]]:
    """Every destination Secret of the example catalog, less the operator's ``_raw``."""
    kube = Kube(kubeconfig)
    out = {}
    for s in syncs(load_catalog(EXAMPLE)):
        data = kube.read_secret(s.namespace, s.destination) or {}
        out[(s.namespace, s.destination)] = {k: v for k, v in data.items() if k != "_raw"}
    return out


def test_a_disaster_recovery_rebuild_converges_while_a_hog_takes_every_core(
    tmp_path: Path,
) -> None:
    # the original cluster is made and snapshotted before the hog starts: the drill is the
    # rebuild, on the day the machine is busy
    directory = tmp_path / "a"
    state = sandbox.up(directory, TOOLS_DIR, ha=False, timeout=90)
    try:
        env = {**demo_env(), **Box(state, directory, []).cli_env(tmp_path / "a-state")}
        made = task_cli("bootstrap", env, "--catalog", str(EXAMPLE))
        assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
        before = _secrets(state.kubeconfig)
        snap = tmp_path / "offsite" / "vault.snap"
        snap.parent.mkdir()
        taken = task_cli("dr.snapshot", env, "--catalog", str(EXAMPLE), "--out", str(snap))
        assert taken.returncode == 0, taken.stdout + taken.stderr
        # the custody folder off-site: the init record and what lies beside it (the
        # bootstrap-admin credential, the root token's revocation)
        shutil.copytree(directory / "custody", tmp_path / "offsite" / "custody")
        keys = tmp_path / "offsite" / "custody" / "vault-init.json"
    finally:
        sandbox.down(directory)
    hog = _hog()
    try:
        (tmp_path / "b").mkdir()
        it = _start(tmp_path / "b", ha=False)
        box = next(it)
        try:
            report = tmp_path / "restore.json"
            restored = task_cli(
                "dr.restore",
                box.cli_env(tmp_path / "b-state"),  # no demo values: nothing is typed again
                "--catalog",
                str(EXAMPLE),
                "--snapshot",
                str(snap),
                "--keys",
                str(keys),
                "--report",
                str(report),
            )
            _busy(hog)
            assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
            assert _secrets(box.state.kubeconfig) == before
        finally:
            it.close()
    finally:
        _stop(hog)
