"""The sandbox itself: real processes, real versions, OpenBao uninitialized and sealed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap import sandbox, versions
from bootstrap.errors import SandboxError
from bootstrap.kube import Kube
from tests.conftest import ROOT
from tests.integration.conftest import TOOLS_DIR, Box


def test_components_run_at_pinned_versions(box: Box) -> None:
    kube = Kube(box.state.kubeconfig)
    assert kube.version() == f"v{versions.KUBERNETES}"
    st = sandbox.status(box.directory)
    running = {c["name"] for c in st["components"] if c["running"]}
    assert {"etcd", "kube-apiserver", "bao-0"} <= running


def test_openbao_started_uninitialized_and_sealed(box: Box) -> None:
    (h,) = box.initial_health
    assert (h.code, h.initialized, h.sealed) == (501, False, True)
    assert h.version.startswith(versions.OPENBAO)


def test_rbac_on_and_service_account_admission_off(box: Box, unique: str) -> None:
    kube = Kube(box.state.kubeconfig)
    ns = f"sbx-{unique}"
    kube.ensure_namespace(ns)
    try:
        roles = {r.metadata.name for r in kube.rbac.list_cluster_role().items}
        assert "system:auth-delegator" in roles
        # no controller-manager: a namespace gets no 'default' ServiceAccount by itself
        assert kube.core.list_namespaced_service_account(ns).items == []
    finally:
        kube.delete_namespace(ns)


def test_second_up_says_one_runs(box: Box) -> None:
    with pytest.raises(SandboxError, match="already runs"):
        sandbox.up(box.directory, TOOLS_DIR)


def test_env_and_status_tasks(box: Box) -> None:
    env = {"INVOKE_BOOTSTRAP_SANDBOX_DIR": str(box.directory)}
    out = _invoke(["sandbox.env"], env)
    assert f"export KUBECONFIG={box.state.kubeconfig}" in out
    assert f"export BAO_ADDR={box.state.bao_addr}" in out
    st = json.loads(_invoke(["sandbox.status", "--json"], env))
    assert st["running"] is True


def _invoke(args: list[str], env: dict[str, str]) -> str:
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_down_stops_only_its_processes(tmp_path: Path) -> None:
    directory = tmp_path / "short-lived"
    state = sandbox.up(directory, TOOLS_DIR, timeout=90)
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pids = [p.pid for p in state.processes]
        stopped = sandbox.down(directory)
        assert sorted(stopped) == sorted(p.name for p in state.processes)
        assert not directory.exists()
        for pid in pids:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "Z" in Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
            )
        assert decoy.poll() is None  # not ours: untouched
        assert sandbox.down(directory) == []  # a second down is harmless
    finally:
        decoy.kill()
        decoy.wait()
