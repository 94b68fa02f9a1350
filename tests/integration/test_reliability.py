"""Reliability on fresh sandboxes, through the CLI as a user runs it:

- custody that cannot take the init record stops the bootstrap before Vault is initialized
  (a Kubernetes custody Secret already taken by a placeholder; a custody file that cannot be
  written), so no unseal key is ever lost;
- the kill matrix: `invoke bootstrap` SIGKILLed (with everything it started) at every phase
  boundary and in the middle of each phase, then run again: every re-run converges, no real
  value is lost, no generated value changes, the unseal keys in custody stay the first ones and
  keep working;
- two bootstraps at once: the second is refused and names the holder of the lock.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.domain import kv_secrets
from bootstrap.runtime.custody import FileCustody
from tests.conftest import ROOT
from tests.integration.conftest import Box, _start
from tests.integration.helpers import admin_api, bootstrap_cli, generated_catalog_text, held_at


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A sandbox of this module's own, left uninitialized by the custody tests."""
    yield from _start(tmp_path_factory.mktemp("fresh"), ha=False)


def _env(box: Box, state: Path, **extra: str) -> dict[str, str]:
    return box.cli_env(state, INVOKE_BOOTSTRAP_WAIT_TIMEOUT="60", **extra)


def bootstrap(
    env: dict[str, str], catalog: Path, *args: str, failpoint: str = ""
) -> subprocess.CompletedProcess[str]:
    return bootstrap_cli(env, "--catalog", str(catalog), *args, failpoints=failpoint)


def test_custody_that_cannot_take_the_record_stops_before_initializing(
    fresh: Box, unique: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(generated_catalog_text(f"cu{unique}", {"config": ["a"]}))
    kube = Kube(fresh.state.kubeconfig)
    # a Kubernetes custody Secret already there, without a record (e.g. a placeholder)
    kube.ensure_namespace(f"cs{unique}")
    kube.write_secret(f"cs{unique}", "vault-init", {"x": b"bootstrap-placeholder:a/b/x"})
    taken = bootstrap(
        _env(
            fresh,
            tmp_path / "state-k8s",
            INVOKE_BOOTSTRAP_CUSTODY="kubernetes",
            INVOKE_BOOTSTRAP_CUSTODY_NAMESPACE=f"cs{unique}",
        ),
        catalog,
        "--only",
        "vault-ready",
    )
    assert taken.returncode == 1, taken.stdout + taken.stderr
    assert f"Secret cs{unique}/vault-init exists and holds no init record" in taken.stderr
    # a custody file under a path that cannot be a folder
    (tmp_path / "a-file").write_text("x")
    unwritable = bootstrap(
        _env(
            fresh,
            tmp_path / "state-file",
            INVOKE_BOOTSTRAP_CUSTODY_FILE=str(tmp_path / "a-file" / "vault-init.json"),
        ),
        catalog,
        "--only",
        "vault-ready",
    )
    assert unwritable.returncode == 1, unwritable.stdout + unwritable.stderr
    assert "cannot be written" in unwritable.stderr and "is not a folder" in unwritable.stderr
    h = vault.health(fresh.state.bao_addr)
    assert (h.code, h.initialized) == (501, False)  # never initialized: no key was lost


def _catalog(p: str, n: int) -> str:
    """n services, each in its own namespace, each with generated values."""
    services = "".join(
        f"  - name: {p}{i}\n    namespace: {p}{i}\n    secrets:\n"
        f"      config: {{keys: {{a: {{generate: {{length: 20}}}}}}}}\n"
        f"      credentials: {{keys: {{b: {{generate: {{length: 20}}}}}}}}\n"
        for i in range(n)
    )
    return f"name: {p}\nservices:\n{services}"


#: (kill points, one after the other, then a run to convergence; what comes first). "add" gives
#: the catalog one more service first, so that the phase has work to be killed in, and the
#: killed run starts at preflight; otherwise it starts at the phase of its point (the earlier
#: ones converged in the previous re-run). "seal" restarts OpenBao first (it comes back
#: sealed). "add, operator stopped" adds a service and stops the operator until the re-run, so
#: that verify has Secrets to wait for (a current operator syncs a new service's Secrets
#: before verify starts, and verify then has nothing to nudge).
MATRIX: list[tuple[list[str], str]] = [
    (["vault-ready:init=kill", "finish:revoked=kill"], "add"),
    (["phase:preflight:done=kill"], ""),
    (["placeholders:applying=kill"], "add"),
    (["phase:placeholders:done=kill"], ""),
    (["vault-ready:unseal-key=kill@2"], "seal"),
    (["phase:vault-ready:done=kill"], ""),
    (["vault-config:write=kill@2"], "add"),
    (["phase:vault-config:done=kill"], ""),
    (["operator:applied=kill@2"], "add"),
    (["phase:operator:done=kill"], ""),
    (["populate:write=kill@1"], "add"),
    (["phase:populate:done=kill"], ""),
    (["verify:nudged=kill"], "add, operator stopped"),
    (["phase:verify:done=kill"], ""),
]


def _phase_of(point: str) -> str:
    name = point.split("=", 1)[0]
    return name.split(":")[1] if name.startswith("phase:") else name.split(":")[0]


def test_kill_matrix(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    it = _start(tmp_path_factory.mktemp("kill"), ha=False)
    box = next(it)
    try:
        _kill_matrix(box, tmp_path)
    finally:
        it.close()


def _kill_matrix(box: Box, tmp_path: Path) -> None:
    env = _env(box, tmp_path / "state")
    catalog = tmp_path / "catalog.yaml"
    custody = FileCustody(box.settings().custody_file)  # type: ignore[arg-type]
    keys: list[str] | None = None
    generated: dict[str, dict[str, str]] = {}
    log: list[str] = []
    services = 0
    for points, before in MATRIX:
        if before.startswith("add"):
            services += 1
        catalog.write_text(_catalog("km", services))
        if before == "add, operator stopped":
            operator = sandbox.SandboxState.load(box.directory).process(sandbox.OPERATOR)  # type: ignore[union-attr]
            assert operator.stop()
        if before == "seal":
            proc = sandbox.SandboxState.load(box.directory).process("bao-0")  # type: ignore[union-attr]
            assert proc.stop()
            sandbox.restart(box.directory, "bao-0")
            assert vault.health(box.state.bao_addr).sealed
        for point in points:
            start = [] if before.startswith("add") else ["--start", _phase_of(point)]
            killed = bootstrap(env, catalog, *start, failpoint=point)
            assert killed.returncode == -signal.SIGKILL, (
                f"{point}: not killed (exit {killed.returncode})\n{killed.stderr[-2000:]}"
            )
        if before == "add, operator stopped":
            sandbox.restart(box.directory, sandbox.OPERATOR)
        started = time.monotonic()
        rerun = bootstrap(env, catalog)
        assert rerun.returncode == 0, (
            f"after {points}: {rerun.stdout[-3000:]}{rerun.stderr[-3000:]}"
        )
        log.append(f"{', '.join(points)}: re-run converged in {time.monotonic() - started:.1f}s")
        record = custody.load()
        assert record is not None
        if keys is None:
            keys = list(record.unseal_keys_b64)
        assert record.unseal_keys_b64 == keys  # the first keys, never replaced
        api = admin_api(box)
        cat = parse_catalog(catalog.read_text(), str(catalog))
        for path, _ in kv_secrets(cat):
            data, _ = read_kv(api, path)
            assert data, f"{path} lost its value after {points}"
            if path in generated:
                assert data == generated[path], f"{path} was regenerated after {points}"
            generated[path] = data
    # the keys in custody still unseal OpenBao, and a last run changes nothing
    proc = sandbox.SandboxState.load(box.directory).process("bao-0")  # type: ignore[union-attr]
    assert proc.stop()
    sandbox.restart(box.directory, "bao-0")
    final = bootstrap(env, catalog, "--report", str(tmp_path / "final.json"))
    assert final.returncode == 0, final.stderr[-3000:]
    again = bootstrap(env, catalog, "--report", str(tmp_path / "again.json"))
    assert again.returncode == 0
    import json

    report: dict[str, Any] = json.loads((tmp_path / "again.json").read_text())
    assert {p["status"] for p in report["phases"]} == {"no-change"}, report["phases"]
    print("\n".join(log))


def test_two_bootstraps_at_once_the_second_names_the_first(
    box: Box, first_run: dict[str, Any], tmp_path: Path
) -> None:
    env = {k: v for k, v in first_run["env"].items() if k.startswith("INVOKE_")}
    with held_at("phase:vault-config:start", tmp_path, env, "--only", "vault-config") as first:
        second = bootstrap(env, ROOT / "catalog.yaml", "--only", "vault-config")
        assert second.returncode == 1
        assert "another bootstrap holds the lock" in second.stderr
        assert f" pid {first.proc.pid} (boot " in second.stderr  # the holder, named
    assert first.done is not None
    assert first.done.returncode == 0, first.done.stdout + first.done.stderr
