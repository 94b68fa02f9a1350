"""HA: three OpenBao nodes on raft; followers join, then unseal; one active, three voters; and
a bootstrap that loses a node halfway completes."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.model.catalog import load_catalog
from bootstrap.runtime.custody import FileCustody
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box, _start
from tests.integration.helpers import (
    demo_env,
    held_at,
    kill_a_standby,
    run,
    statuses,
    wait_until,
)


@pytest.fixture
def ha_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A fresh HA sandbox for each test: the first bootstrap is what each test is about."""
    yield from _start(tmp_path_factory.mktemp("ha"), ha=True)


def _node_logs(box: Box, lines: int = 40) -> str:
    """Each OpenBao node's last log lines: what a failed join or unseal leaves to read (a
    follower's unseal once hung past every timeout in CI, not reproduced since)."""
    return "".join(
        f"\n--- bao-{i} ---\n{box.state.process(f'bao-{i}').tail(lines)}"
        for i in range(len(box.state.bao_addrs))
    )


def test_ha_bootstrap_unseals_and_joins_every_node(
    ha_box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    assert [h.code for h in ha_box.initial_health] == [501, 501, 501]
    s = ha_box.settings()
    with caplog.at_level(logging.INFO, logger="bootstrap"):
        results, _ = run(s, load_catalog(EXAMPLE), ["vault-ready", "vault-config"])
    errors = [r.error for r in results if r.error]
    assert statuses(results) == {"vault-ready": "applied", "vault-config": "applied"}, (
        f"{errors}{_node_logs(ha_box)}"
    )
    nodes = [vault.health(a) for a in ha_box.state.bao_addrs]
    assert all(n.initialized and not n.sealed for n in nodes)
    assert sorted(cast(int, n.code) for n in nodes) == [200, 429, 429]
    # issue 24: the sandbox's nodes have retry_join; each follower joined by itself and was
    # never also asked to join (two challenges for one node race in its unseal)
    followers = ha_box.state.bao_addrs[1:]  # the first is initialized: the leader
    on_their_own = [m for m in caplog.messages if "started its raft join by itself" in m]
    assert sorted(m.split()[0] for m in on_their_own) == sorted(followers), caplog.messages
    assert not [m for m in caplog.messages if m.startswith("asked ")], caplog.messages
    logs = _node_logs(ha_box, 400)
    assert "failed to send answer" not in logs, logs
    record = FileCustody(Path(str(s.custody_file))).load()
    assert record is not None
    active = next(n.addr for n in nodes if n.code == 200)
    peers = vault.raft_peers(active, record.root_token)
    assert len(peers) == 3 and all(p["voter"] for p in peers)
    # autopilot's view, which vault-ready quotes while a follower waits for promotion
    servers = vault.autopilot_state(active, record.root_token)
    assert sorted(servers) == sorted(p["node_id"] for p in peers)
    # (its status follows raft's configuration a reconcile later: a voter may still show
    # as non-voter there for a few seconds)
    kinds = sorted(srv["status"] for srv in servers.values())
    assert kinds[0] == "leader" and set(kinds[1:]) <= {"voter", "non-voter"}, servers
    again, _ = run(s, load_catalog(EXAMPLE), ["vault-ready", "vault-config"])
    assert statuses(again) == {"vault-ready": "no-change", "vault-config": "no-change"}


def test_a_node_lost_mid_bootstrap(ha_box: Box, tmp_path: Path) -> None:
    """`invoke bootstrap` of the example catalog; while it holds at the operator phase, one
    OpenBao node (a standby the operator does not talk to) is SIGKILLed: it completes."""
    s = ha_box.settings(state_dir=tmp_path / "state")
    env = {**demo_env(), **ha_box.cli_env(s.state_dir)}
    state = sandbox.SandboxState.load(ha_box.directory)
    assert state is not None
    victim = None
    try:
        with held_at(
            "phase:operator:start", tmp_path, env, "--report", str(tmp_path / "r.json")
        ) as run_:
            victim = kill_a_standby(ha_box)
        assert run_.done is not None
        assert run_.done.returncode == 0, (
            run_.done.stdout[-3000:] + run_.done.stderr[-3000:] + _node_logs(ha_box)
        )
        report = json.loads((tmp_path / "r.json").read_text())
        phases = {p["name"]: p["status"] for p in report["phases"]}
        assert phases["verify"] == "applied" and phases["finish"] in ("applied", "no-change")
    finally:  # the node comes back and rejoins (its raft data is intact)
        if victim is not None:
            sandbox.restart(ha_box.directory, victim)
            results, _ = run(s, load_catalog(EXAMPLE), ["vault-ready"])
            assert statuses(results) == {"vault-ready": "applied"}


@pytest.mark.drill  # about 2.5 minutes each: 'invoke test --drills' runs them
@pytest.mark.parametrize("point", ["vault-config:write", "populate:write"])
def test_the_active_node_lost_mid_write(ha_box: Box, tmp_path: Path, point: str) -> None:
    """Issue 24, item 6: the active OpenBao node SIGKILLed while vault-config, then populate,
    writes. The run may fail (it names the node it lost) or finish; once the node is back
    (sealed, as a restarted node is), a re-run converges on the cluster's new leader: every
    KV path holds its value, nothing generated twice (each generated value the first run
    wrote is still the one in Vault), and a last run changes nothing."""
    from bootstrap.clients.kv import read_kv
    from bootstrap.model.domain import kv_secrets
    from tests.integration.helpers import admin_api, bootstrap_cli

    s = ha_box.settings(state_dir=tmp_path / "state")
    env = {**demo_env(), **ha_box.cli_env(s.state_dir), "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "60"}
    state = sandbox.SandboxState.load(ha_box.directory)
    assert state is not None
    addrs = ha_box.state.bao_addrs
    with held_at(point, tmp_path, env) as run_:
        active = vault.active_addr(addrs)
        victim = f"bao-{addrs.index(active)}"
        os.kill(state.process(victim).pid, signal.SIGKILL)
        wait_until(lambda: not state.process(victim).alive(), f"{victim} to die")
        # a new leader among the two left, before the run goes on
        wait_until(
            lambda: vault.active_addr([a for a in addrs if a != active]), "a new leader", 120
        )
    first = run_.done
    assert first is not None
    first_out = first.stdout[-3000:] + first.stderr[-3000:]
    failed_over = "going on with" in first.stderr
    said = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    print(f"{point}: first run exit {first.returncode}, failed over: {failed_over} {said}")
    # the writing phases go on with the new leader (the client fails over); only verify may
    # fail, while the operator's VaultConnection names the node that was lost (node 0 here:
    # a real cluster's connection names a Service in front of the active node)
    phases = {
        p["name"]: p["status"]
        for p in json.loads((s.state_dir / "reports" / "bootstrap.json").read_text())["phases"]
    }
    assert failed_over, first_out
    assert phases["vault-config"] == "applied" and phases["populate"] == "applied", (
        f"{phases}\n{first_out}"
    )
    if first.returncode != 0:
        assert phases["verify"] == "failed", f"{phases}\n{first_out}"
    sandbox.restart(ha_box.directory, victim)
    catalog = load_catalog(EXAMPLE)
    # what the first run wrote, read from the active node (the credential exists once
    # vault-config has finished; before that, nothing was generated)
    before: dict[str, dict[str, str]] = {}
    admin = FileCustody(s.custody_file).load_extra("admin")  # type: ignore[arg-type]
    if admin is not None:
        api = vault.Api(vault.active_addr(addrs), admin["token"])
        before = {path: read_kv(api, path)[0] for path, _ in kv_secrets(catalog)}
    again = bootstrap_cli(env, "--report", str(tmp_path / "again.json"))
    assert again.returncode == 0, (
        f"first run (exit {first.returncode}):\n{first_out}\nre-run:\n"
        + again.stdout[-3000:]
        + again.stderr[-3000:]
        + _node_logs(ha_box)
    )
    api = admin_api(ha_box)
    for path, _ in kv_secrets(catalog):
        data, _ = read_kv(api, path)
        assert data, f"{path} lost its value"
        kept = {k: v for k, v in before.get(path, {}).items() if v == data.get(k)}
        assert kept == before.get(path, {}), f"{path}: a value changed after the re-run"
    last = bootstrap_cli(env, "--report", str(tmp_path / "last.json"))
    assert last.returncode == 0, last.stderr[-3000:]
    report = json.loads((tmp_path / "last.json").read_text())
    assert {p["status"] for p in report["phases"]} == {"no-change"}, report["phases"]
