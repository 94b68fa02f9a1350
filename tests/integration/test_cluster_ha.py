"""Three OpenBao replicas on a node sandbox of their own (``cluster.create --replicas 3``),
joined into one raft cluster by ``invoke bootstrap``, the peers named by the node's DNS
(their headless-Service names); a follower's pod deleted comes back sealed at a new IP, a
bootstrap unseals it from custody, and it rejoins: it receives what the leader writes after.
At the end ``cluster.delete`` removes what ``create`` made and starts the sandbox's own
operator process again."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.commands import cluster
from bootstrap.model import cluster as model
from bootstrap.runtime.custody import FileCustody
from tests.conftest import ROOT
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import demo_env, exports_of, invoke_cli, wait_until

CATALOG = ROOT / "catalog.yaml"
PORT = 8200


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("n3") / "sb"
    state = sandbox.up(directory, TOOLS_DIR, with_node=True, timeout=90)
    try:
        box = Box(state, directory, [])
        env = {
            **box.cli_env(),
            "INVOKE_BOOTSTRAP_CATALOG": str(CATALOG),
            "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "180",
        }
        env.pop("INVOKE_BOOTSTRAP_VAULT_ADDRS")  # found from the StatefulSet's pods
        env.pop("INVOKE_BOOTSTRAP_AUDIT_FILE")  # the pods', from cluster.env
        created = invoke_cli(["cluster.create", "--replicas", "3"], env)
        env.update(exports_of(directory / cluster.ENV_FILE))
        env.update(demo_env())
        # --skip-quiet-check: this file is about raft; that a hand-over restarts nothing on
        # a node is test_cluster.py's first bootstrap (the check would add up to 63 s here)
        booted = invoke_cli(["bootstrap", "--skip-quiet-check"], env)
        custody_file = box.settings().custody_file
        assert custody_file is not None
        admin = FileCustody(custody_file).load_extra("admin")
        assert admin is not None
        yield {
            "env": env,
            "kube": Kube(state.kubeconfig),
            "created": created.stdout + created.stderr,
            "booted": booted.stdout + booted.stderr,
            "token": admin["token"],
        }
        _delete_gives_the_sandbox_its_operator_back(env, state)
    finally:
        sandbox.down(directory, keep=bool(os.environ.get("KEEP_SANDBOX")))


def _delete_gives_the_sandbox_its_operator_back(
    env: dict[str, str], state: sandbox.SandboxState
) -> None:
    """``cluster.delete``: the namespaces ``create`` made are deleted, the VaultConnection
    names the sandbox's OpenBao process again and the sandbox's operator process (stopped by
    ``create``) runs again, the version it ran before."""
    kube = Kube(state.kubeconfig)
    assert not state.process(sandbox.OPERATOR).alive()  # stopped by create
    deleted = invoke_cli(["cluster.delete"], env)
    out = deleted.stdout + deleted.stderr
    assert "openbao" in out and "namespace vault-secrets-operator-system" not in out, out
    # the operator's Deployment (in the sandbox's namespace) goes: the sandbox's process runs
    # alone again
    assert (
        "Deployment vault-secrets-operator-system/vault-secrets-operator-controller-manager" in out
    ), out
    assert (
        kube.get(
            "apps/v1",
            "Deployment",
            "vault-secrets-operator-controller-manager",
            "vault-secrets-operator-system",
        )
        is None
    )
    conn = kube.get(
        "secrets.hashicorp.com/v1beta1", "VaultConnection", "default", state.operator_namespace
    )
    assert conn and conn["spec"]["address"] == state.bao_addr
    again = sandbox.SandboxState.load(Path(state.directory))
    assert again is not None and again.process(sandbox.OPERATOR).alive()
    assert again.operator_version == "1.4.1"
    st = sandbox.status(Path(state.directory))
    assert any(c.name == sandbox.OPERATOR and c.running for c in st.components)


def _pods(kube: Kube) -> dict[str, dict[str, Any]]:
    pods = kube.list_objects(
        "v1", "Pod", model.OPENBAO, label_selector=f"app.kubernetes.io/name={model.OPENBAO}"
    )
    return {p["metadata"]["name"]: p for p in pods}


def _addr(pod: dict[str, Any]) -> str:
    return f"http://{pod['status']['podIP']}:{PORT}"


def _leader_status(addr: str) -> dict[str, Any]:
    """``sys/leader`` of one node (unauthenticated): is it the leader, its raft indexes."""
    with urllib.request.urlopen(f"{addr}/v1/sys/leader", timeout=10) as resp:  # noqa: S310 - http://pod-ip
        return dict(json.loads(resp.read()))


def _all_synced(env: dict[str, str]) -> list[dict[str, Any]]:
    rows = [
        r for r in json.loads(invoke_cli(["status", "--json"], env).stdout) if r["service"] != "-"
    ]
    assert len(rows) == 13
    return [r for r in rows if r["state"] != "synced"]


def test_three_replicas_join_one_raft_cluster_named_by_dns(ha: dict[str, Any]) -> None:
    assert "cluster created" in ha["created"], ha["created"]
    assert ha["booted"].count("join raft cluster of") == 2, ha["booted"]
    pods = _pods(ha["kube"])
    assert sorted(pods) == ["openbao-0", "openbao-1", "openbao-2"]
    peers = vault.raft_peers(_addr(pods["openbao-0"]), ha["token"])
    assert sorted((p["node_id"], p["address"], p["voter"]) for p in peers) == [
        (f"openbao-{i}", f"openbao-{i}.openbao-internal.openbao.svc:8201", True) for i in range(3)
    ]
    leaders = [n for n, p in pods.items() if _leader_status(_addr(p))["is_self"]]
    assert len(leaders) == 1, leaders
    assert _all_synced(ha["env"]) == []


def test_a_follower_pod_deleted_comes_back_sealed_and_rejoins_once_unsealed(
    ha: dict[str, Any],
) -> None:
    kube = ha["kube"]
    pods = _pods(kube)
    leader = next(n for n, p in pods.items() if _leader_status(_addr(p))["is_self"])
    victim = next(n for n in sorted(pods, reverse=True) if n not in (leader, "openbao-0"))
    old = pods[victim]
    kube.core.delete_namespaced_pod(victim, model.OPENBAO)

    def back_sealed() -> dict[str, Any] | None:
        pod = _pods(kube).get(victim)
        if pod is None or pod["metadata"]["uid"] == old["metadata"]["uid"]:
            return None
        if not (pod.get("status") or {}).get("podIP"):
            return None
        h = vault.health(_addr(pod))
        return pod if h.initialized and h.sealed else None

    new = wait_until(back_sealed, f"{victim} to come back, initialized and sealed", 120)
    assert new["status"]["podIP"] != old["status"]["podIP"]  # a new pod, at a new IP

    out = invoke_cli(["bootstrap"], ha["env"])
    assert f"unsealed {_addr(new)}" in out.stdout + out.stderr
    assert not vault.health(_addr(new)).sealed
    # the leader writes; the recreated follower receives it (raft calls it by name, not by
    # the IP it had: at that IP nobody answers now)
    leader_addr = _addr(_pods(kube)[leader])
    vault.Api(leader_addr, ha["token"]).write(
        "secret/data/ha-drill/probe", {"data": {"written": "after the pod came back"}}
    )
    committed = int(_leader_status(leader_addr)["raft_committed_index"])
    wait_until(
        lambda: int(_leader_status(_addr(new))["raft_applied_index"]) >= committed,
        f"{victim} to apply the leader's writes up to index {committed}",
        60,
    )
    peers = vault.raft_peers(leader_addr, ha["token"])
    assert sorted(p["node_id"] for p in peers if p["voter"]) == [f"openbao-{i}" for i in range(3)]
    wait_until(lambda: _all_synced(ha["env"]) == [], "every Secret synced", 120)
