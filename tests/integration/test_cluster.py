"""``invoke cluster.create && invoke bootstrap`` on the node sandbox, through the CLI as a user
runs them, with the example catalog: OpenBao, the operator and the demo workloads run as
pods; the demo pods start without their Secrets, stay live (no restart) and not Ready, and
turn Ready once the operator has synced them. The timeline per pod is printed."""

from __future__ import annotations

import datetime as dt
import hashlib
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.kube import Kube
from bootstrap.commands import cluster
from bootstrap.model import cluster as model
from bootstrap.model.catalog import load_catalog
from bootstrap.tooling import tools
from tests.conftest import ROOT
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import demo_env, invoke_cli, wait_until

CATALOG = ROOT / "catalog.yaml"
DEMO_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = shlex.split(value)[0]
    return out


def _demo_pods(kube: Kube) -> list[dict[str, Any]]:
    cat = load_catalog(CATALOG)
    pods = []
    for ns in sorted({s.namespace for s in cat.services}):
        pods += [
            p
            for p in kube.list_objects("v1", "Pod", ns)
            if (p["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "demo"
        ]
    return pods


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


@pytest.fixture(scope="module")
def run(node_box: Box) -> dict[str, Any]:
    """cluster.create, then bootstrap, through the CLI on the session's node sandbox; what
    the cluster looked like after each (so that no test depends on another's order)."""
    env = {
        **node_box.cli_env(),
        "INVOKE_BOOTSTRAP_CATALOG": str(CATALOG),
        "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "180",
    }
    env.pop("INVOKE_BOOTSTRAP_VAULT_ADDRS")  # found from the StatefulSet's pods
    env.pop("INVOKE_BOOTSTRAP_AUDIT_FILE")  # the pod's, from cluster.env
    created = invoke_cli(["cluster.create"], env)
    kube = Kube(node_box.state.kubeconfig)
    bao_before = _openbao_pods(kube)
    before = _demo_pods(kube)
    env.update(_env_file(node_box.directory / cluster.ENV_FILE))
    began = dt.datetime.now(dt.UTC)
    booted = invoke_cli(["bootstrap"], {**env, **demo_env()})

    def all_ready() -> list[dict[str, Any]] | None:
        pods = _demo_pods(kube)
        return pods if pods and all(_ready(p) for p in pods) else None

    after = wait_until(all_ready, "every demo pod Ready", timeout=180)
    bao_after = wait_until(
        lambda: [p for p in _openbao_pods(kube) if _ready(p)], "OpenBao's pod Ready once unsealed"
    )
    return {
        "created": created.stdout + created.stderr,
        "booted": booted.stdout + booted.stderr,
        "kube": kube,
        "began": began,
        "bao_before": bao_before,
        "bao_after": bao_after,
        "before": before,
        "after": after,
    }


def _openbao_pods(kube: Kube) -> list[dict[str, Any]]:
    return kube.list_objects(
        "v1", "Pod", model.OPENBAO, label_selector=f"app.kubernetes.io/name={model.OPENBAO}"
    )


def test_create_leaves_a_cluster_as_a_helm_install_would(run: dict[str, Any]) -> None:
    assert "cluster created" in run["created"], run["created"]
    # OpenBao ran, sealed and uninitialized: live, not Ready
    (bao,) = run["bao_before"]
    assert bao["status"]["phase"] == "Running" and not _ready(bao)
    assert _restarts(bao) == 0
    # one demo workload per restart target of the catalog, every pod running, none Ready
    # (their Secrets did not exist yet), none restarted
    cat = load_catalog(CATALOG)
    targets = {(s.namespace, t.kind, t.name) for s in cat.services for t in s.restart}
    assert len(run["before"]) >= len(targets)
    assert {p["metadata"]["namespace"] for p in run["before"]} == {ns for ns, _, _ in targets}
    for p in run["before"]:
        assert p["status"]["phase"] == "Running", p["metadata"]["name"]
        assert not _ready(p), p["metadata"]["name"]
        assert _restarts(p) == 0


def test_bootstrap_turns_every_demo_pod_ready_without_a_restart(run: dict[str, Any]) -> None:
    assert "vault-ready" in run["booted"] and "verify" in run["booted"]
    (bao,) = run["bao_after"]  # found from the StatefulSet, initialized, unsealed: Ready
    assert bao["metadata"]["uid"] == run["bao_before"][0]["metadata"]["uid"]
    began = run["began"]
    before = {p["metadata"]["uid"] for p in run["before"]}
    print("\npod timeline (seconds after the bootstrap began)")
    for p in sorted(
        run["after"], key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])
    ):
        ready_at = next(
            c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready"
        )
        at = dt.datetime.fromisoformat(ready_at.replace("Z", "+00:00"))
        created_at = dt.datetime.fromisoformat(
            p["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        )
        born, ready = (created_at - began).total_seconds(), (at - began).total_seconds()
        print(
            f"  {p['metadata']['namespace']}/{p['metadata']['name']}: created {born:+.0f}s, "
            f"Ready {ready:+.0f}s, restarts {_restarts(p)}"
        )
        assert _restarts(p) == 0  # live all along: never restarted while it waited
        if p["metadata"]["uid"] in before:
            assert at >= began - dt.timedelta(seconds=1)  # not Ready before the bootstrap


def test_a_demo_pod_holds_the_synced_value(node_box: Box, run: dict[str, Any]) -> None:
    """What a pod reads from its mounted Secret is the synced Secret, which verify compared
    with Vault (by digest, as the demo workload prints it: never the value)."""
    kube: Kube = run["kube"]
    pod = next(
        p
        for p in run["after"]
        if p["metadata"]["namespace"] == "webapp" and p["metadata"]["name"].startswith("webapp-")
    )
    out = subprocess.run(
        [
            str(tools.require("kubectl", TOOLS_DIR)),
            "--kubeconfig",
            node_box.state.kubeconfig,
            "exec",
            "-n",
            "webapp",
            pod["metadata"]["name"],
            "--",
            *model.DEMO_PYTHON,
            "/app/demo_workload.py",
            "digest",
            f"{model.SECRETS_ROOT}/credentials",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # the Secret verify compared with Vault (Vault's keys and the operator's _raw)
    data = kube.read_secret("webapp", "credentials") or {}
    h = hashlib.sha256()
    for key in sorted(data):
        h.update(key.encode() + b"\0" + data[key] + b"\0")
    assert "state=real" in out, out
    assert f"sha256={h.hexdigest()[:16]}" in out, out
