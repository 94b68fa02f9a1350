"""``invoke cluster.create && invoke bootstrap`` on the node sandbox, through the CLI as a user
runs them, with the example catalog: OpenBao, the operator (VSO 1.4.1, the default) and the
demo workloads run as pods; the demo pods start without their Secrets, stay live (no restart)
and not Ready, and turn Ready once the operator has synced them; the first bootstrap's quiet
check proves the hand-over restarts nothing on a real node. The timeline per pod is printed.
On the same cluster: a rotation (one new revision per change for each restart target, none
for a bystander), the operator's pod deleted during verify, the kubelet judging the probe
helper, and the OpenBao drill (its pod deleted comes back sealed; bootstrap unseals it from
custody; the operator resumes through OpenBao's Service)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.commands import cluster
from bootstrap.model import cluster as model
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import syncs
from bootstrap.model.restarts import parse_stamp
from bootstrap.tooling import images, tools, versions
from tests.conftest import ROOT
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import demo_env, exports_of, held_at, invoke_cli, wait_until

CATALOG = ROOT / "catalog.yaml"
DEMO_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


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


def _restart_causes(kube: Kube, pod: dict[str, Any]) -> str:
    """Why a pod's containers restarted: their last termination and the pod's warnings."""
    meta = pod["metadata"]
    last = [
        f"{c['name']}: {(c.get('lastState') or {}).get('terminated')}"
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    warnings = [
        f"{e.get('reason')}: {e.get('message')} (x{e.get('count')})"
        for e in kube.list_objects("v1", "Event", meta["namespace"])
        if (e.get("involvedObject") or {}).get("uid") == meta["uid"] and e.get("type") == "Warning"
    ]
    return f"{meta['namespace']}/{meta['name']} restarted: {last}; events: {warnings}"


def _restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(c.get("restartCount") or 0)
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )


@pytest.fixture(scope="module")
def run(node_box: Box) -> dict[str, Any]:
    """cluster.create, then bootstrap, through the CLI on this file's node sandbox; what
    the cluster looked like after each (so that no test depends on another's order)."""
    env = {
        **node_box.cli_env(),
        "INVOKE_BOOTSTRAP_CATALOG": str(CATALOG),
        "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "180",
        # vault-config also writes the populate Job's policy and role
        "INVOKE_BOOTSTRAP_POPULATE_JOB": "1",
    }
    env.pop("INVOKE_BOOTSTRAP_VAULT_ADDRS")  # found from the StatefulSet's pods
    env.pop("INVOKE_BOOTSTRAP_AUDIT_FILE")  # the pod's, from cluster.env
    created = invoke_cli(["cluster.create"], env)
    kube = Kube(node_box.state.kubeconfig)
    bao_before = _openbao_pods(kube)
    before = _demo_pods(kube)
    env.update(exports_of(node_box.directory / cluster.ENV_FILE))
    revisions_before = _workload_revisions(kube)
    began = dt.datetime.now(dt.UTC)
    # with the quiet check (the only bootstrap here that keeps it): after the hand-over it
    # watches the demo workloads for one refreshAfter (the catalog's longest: 60 s) and fails
    # if the operator restarts one with nothing changed in Vault
    booted = invoke_cli(["bootstrap"], {**env, **demo_env()})
    booted_seconds = (dt.datetime.now(dt.UTC) - began).total_seconds()
    revisions_after = _workload_revisions(kube)

    def all_ready() -> list[dict[str, Any]] | None:
        pods = _demo_pods(kube)
        return pods if pods and all(_ready(p) for p in pods) else None

    after = wait_until(all_ready, "every demo pod Ready", timeout=180)
    bao_after = wait_until(
        lambda: [p for p in _openbao_pods(kube) if _ready(p)], "OpenBao's pod Ready once unsealed"
    )
    return {
        "env": {**env, **demo_env()},
        "created": created.stdout + created.stderr,
        "booted": booted.stdout + booted.stderr,
        "kube": kube,
        "began": began,
        "booted_seconds": booted_seconds,
        "revisions_before": revisions_before,
        "revisions_after": revisions_after,
        "bao_before": bao_before,
        "bao_after": bao_after,
        "before": before,
        "after": after,
    }


def _workload_revisions(kube: Kube) -> dict[str, set[str]]:
    """Each demo Deployment's rollout history: ``namespace/name`` -> the revisions of its
    ReplicaSets (one per pod template it rolled out)."""
    cat = load_catalog(CATALOG)
    out: dict[str, set[str]] = {}
    for ns in sorted({s.namespace for s in cat.services}):
        for rs in kube.list_objects("apps/v1", "ReplicaSet", ns):
            owners = rs["metadata"].get("ownerReferences") or []
            rev = (rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
            for o in owners:
                if o.get("kind") == "Deployment" and rev:
                    out.setdefault(f"{ns}/{o['name']}", set()).add(rev)
    return out


def _rollout_history(kube: Kube, ns: str, name: str) -> list[str]:
    """For a failure message: each ReplicaSet of a Deployment, by revision, with when it was
    made and the restartedAt stamp its pod template carries (who asked for the rollout, and
    when: VSO stamps ``vso.secrets.hashicorp.com/restartedAt``)."""
    rows = []
    for rs in kube.list_objects("apps/v1", "ReplicaSet", ns):
        meta = rs["metadata"]
        if not any(o.get("name") == name for o in meta.get("ownerReferences") or []):
            continue
        rev = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision", "")
        stamps = (rs["spec"]["template"]["metadata"].get("annotations") or {}).items()
        said = ", ".join(f"{k}={v}" for k, v in sorted(stamps) if "restart" in k) or "-"
        rows.append(
            (int(rev) if rev.isdigit() else 0, rev or "?", meta.get("creationTimestamp"), said)
        )
    return [f"revision {rev} made {made}: {said}" for _, rev, made, said in sorted(rows)]


def _operator_pods(kube: Kube) -> list[dict[str, Any]]:
    return kube.list_objects(
        "v1",
        "Pod",
        "vault-secrets-operator-system",
        label_selector=f"app.kubernetes.io/name={model.OPERATOR}",
    )


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
    # the operator in a pod is VSO 1.4.1 (the default), on its own ten CRDs; the sandbox's
    # own operator process is stopped
    assert "the operator VSO v1.4.1 (BUSL-1.1)" in run["created"], run["created"]
    kube: Kube = run["kube"]
    (op,) = _operator_pods(kube)
    (container,) = op["spec"]["containers"]
    assert container["image"] == images.references(versions.VSO).operator
    assert container["image"].endswith(":1.4.1")
    assert _restarts(op) == 0 and _ready(op), _restart_causes(kube, op)
    crds = [
        c["metadata"]["name"]
        for c in kube.list_objects("apiextensions.k8s.io/v1", "CustomResourceDefinition", None)
        if c["metadata"]["name"].endswith(".secrets.hashicorp.com")
    ]
    assert len(crds) == versions.VSO_CRD_COUNT[versions.VSO], crds
    assert "stopped the sandbox's vault-secrets-operator process" in run["created"]


def test_bootstrap_turns_every_demo_pod_ready_without_a_restart(run: dict[str, Any]) -> None:
    assert "vault-ready" in run["booted"] and "verify" in run["booted"]
    # the hand-over was watched for one refresh period and was quiet
    assert "to prove the operator restarts nothing" in run["booted"], run["booted"]
    print(f"\nfirst bootstrap, quiet check included: {run['booted_seconds']:.0f}s")
    # ... and the first fill rolled out no demo Deployment: each has its one first revision
    assert run["revisions_after"] == run["revisions_before"], run["revisions_after"]
    assert all(revs == {"1"} for revs in run["revisions_after"].values())
    # the operator that synced them is 1.4.1: its status conditions (v0.1.0 has none)
    kube: Kube = run["kube"]
    cat = load_catalog(CATALOG)
    for ns in sorted({s.namespace for s in cat.services}):
        for vss in kube.list_objects("secrets.hashicorp.com/v1beta1", "VaultStaticSecret", ns):
            conds = {c["type"]: c["status"] for c in vss["status"].get("conditions") or []}
            assert conds.get("Ready") == "True", (vss["metadata"]["name"], vss["status"])
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
        # live all along: never restarted while it waited
        assert _restarts(p) == 0, _restart_causes(run["kube"], p)
        if p["metadata"]["uid"] in before:
            assert at >= began - dt.timedelta(seconds=1)  # not Ready before the bootstrap


def test_a_demo_pod_holds_the_synced_value(node_box: Box, run: dict[str, Any]) -> None:
    """What a pod reads from its mounted Secret is the synced Secret, which verify compared
    with Vault (by digest, as the demo workload prints it: never the value)."""
    kube: Kube = run["kube"]
    assert "state=real" in _assert_holds_the_secret(node_box, kube, "credentials")


def _rolled_out(kube: Kube, namespace: str, names: tuple[str, ...]) -> bool:
    """Each Deployment has seen its latest spec and runs it on every replica, and no pod of
    it is terminating: no rollout under way."""
    for name in names:
        d = kube.get("apps/v1", "Deployment", name, namespace) or {}
        status, replicas = d.get("status") or {}, (d.get("spec") or {}).get("replicas", 1)
        if (status.get("observedGeneration") or 0) < (d.get("metadata") or {}).get("generation", 1):
            return False
        if status.get("updatedReplicas") != replicas or status.get("replicas") != replicas:
            return False
        if status.get("availableReplicas") != replicas:
            return False
    pods = kube.list_objects("v1", "Pod", namespace)
    return not any(
        p["metadata"].get("deletionTimestamp")
        for p in pods
        if any(p["metadata"]["name"].startswith(f"{n}-") for n in names)
    )


def _ready_webapp_pod(kube: Kube) -> dict[str, Any] | None:
    """A Ready pod of the Deployment webapp (a restart target of service webapp), if any, once
    no pod of it is terminating or unready (a rollout is over)."""
    pods = [
        p
        for p in kube.list_objects("v1", "Pod", "webapp")
        if p["metadata"]["name"].startswith("webapp-")
        and not p["metadata"]["name"].startswith("webapp-worker-")
    ]
    if not pods or any(p["metadata"].get("deletionTimestamp") or not _ready(p) for p in pods):
        return None
    return pods[0]


def _digest_in(node_box: Box, pod: dict[str, Any], secret: str) -> str:
    """The demo workload's line for a mounted Secret, read inside the pod (never a value)."""
    return subprocess.run(
        [
            str(tools.require("kubectl", TOOLS_DIR)),
            "--kubeconfig",
            node_box.state.kubeconfig,
            "exec",
            "-n",
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            "--",
            *model.DEMO_PYTHON,
            "/app/demo_workload.py",
            "digest",
            f"{model.SECRETS_ROOT}/{secret}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _assert_holds_the_secret(node_box: Box, kube: Kube, secret: str) -> str:
    """A Ready webapp pod's mount is real and has the digest of the Secret as it is now (the
    Secret verify compared with Vault: Vault's keys and the operator's _raw). Polled, the pod
    picked again each time: the kubelet refreshes a mount within its sync period, and a
    rollout may still replace the pod picked. Returns the line read inside the pod."""

    def same() -> str | None:
        pod = _ready_webapp_pod(kube)
        if pod is None:
            return None
        data = kube.read_secret("webapp", secret) or {}
        h = hashlib.sha256()
        for key in sorted(data):
            h.update(key.encode() + b"\0" + data[key] + b"\0")
        try:
            line = _digest_in(node_box, pod, secret)
        except subprocess.CalledProcessError:
            return None  # the pod went meanwhile
        return line if "state=real" in line and f"sha256={h.hexdigest()[:16]}" in line else None

    line: str = wait_until(same, f"a webapp pod to hold Secret {secret}", timeout=120)
    return line


def _uids(kube: Kube, namespace: str, prefix: str) -> set[str]:
    return {
        p["metadata"]["uid"]
        for p in kube.list_objects("v1", "Pod", namespace)
        if p["metadata"]["name"].startswith(prefix)
    }


def test_rotation_rolls_out_new_pods_and_leaves_the_others(
    node_box: Box, run: dict[str, Any]
) -> None:
    """verify.rotation on webapp/credentials (two changes: a sentinel, then the original
    back): the restart targets (Deployments webapp and webapp-worker) roll out exactly one
    new revision per change, whose pods hold the Secret; a Deployment of the same namespace
    that is no restart target rolls out none and keeps its pod."""
    kube: Kube = run["kube"]
    wait_until(lambda: _ready_webapp_pod(kube), "a Ready webapp pod", timeout=180)
    targets = _uids(kube, "webapp", "webapp-")
    # a Deployment in the same namespace that no service names as a restart target
    kube.apply(_bystander())
    kept = wait_until(
        lambda: {p["metadata"]["uid"] for p in _pods_of(kube, "webapp", "bystander") if _ready(p)},
        "the bystander Deployment's pod Ready",
        timeout=120,
    )
    assert targets and kept
    # Earlier tests of this module change webapp's paths in Vault (the populate Job's test
    # sets webapp/config back to placeholders and writes it again; a --rotate), and the
    # operator syncs each change on its own refresh, up to 30 s later, each sync a rollout
    # (one such landed inside the rotation: revisions 3, 4 and 5 where 3 and 4 were
    # expected, seed 2909667485). Settle that first: verify waits until every Secret holds
    # Vault's latest values, then the rollouts those syncs made finish; every revision after
    # this point is the rotation's.
    invoke_cli(["bootstrap", "--only", "verify", "--skip-quiet-check"], run["env"])
    wait_until(
        lambda: _rolled_out(kube, "webapp", ("webapp", "webapp-worker")),
        "the restart targets' rollouts to finish",
        timeout=180,
    )
    targets = _uids(kube, "webapp", "webapp-")
    names = ("webapp/webapp", "webapp/webapp-worker", "webapp/bystander")
    before = {n: _workload_revisions(kube).get(n, set()) for n in names}
    proc = invoke_cli(["verify.rotation", "webapp/credentials"], run["env"])
    assert "rotation test passed" in proc.stdout, proc.stdout + proc.stderr
    after = {n: _workload_revisions(kube).get(n, set()) for n in names}
    for target in names[:2]:
        new = sorted(after[target] - before[target], key=int)
        top = max(int(r) for r in before[target])
        # one rollout for the sentinel, one for the original: never a second for one change
        assert new == [str(top + 1), str(top + 2)], "\n".join(
            [
                f"{target}: revisions {sorted(before[target], key=int)} before, "
                f"{sorted(after[target], key=int)} after",
                *_rollout_history(kube, *target.split("/")),
                "verify.rotation said:",
                proc.stdout,
            ]
        )
        line = f"Deployment/{target.split('/')[1]}: revisions {top} -> {top + 1} -> {top + 2}"
        assert line in proc.stdout, proc.stdout
    assert after["webapp/bystander"] == before["webapp/bystander"] == {"1"}
    # every old pod of both targets goes: the rollouts replace them all
    wait_until(
        lambda: not targets & _uids(kube, "webapp", "webapp-"),
        "the old pods of the restart targets to be gone",
        timeout=180,
    )
    pods_after = _pods_of(kube, "webapp", "bystander")
    assert {p["metadata"]["uid"] for p in pods_after} == kept  # the same pod, still running
    assert all(_restarts(p) == 0 for p in pods_after)
    assert "state=real" in _assert_holds_the_secret(node_box, kube, "credentials")


def test_verify_converges_when_the_operator_pod_is_deleted(
    node_box: Box, run: dict[str, Any], tmp_path: Path
) -> None:
    """A bootstrap that regenerates values (--rotate) is held before populate writes them;
    the operator's pod is deleted; its Deployment makes a new one, which takes the leader
    lease (the deleted one did not release it) and syncs what populate wrote after the old
    pod was gone: verify still converges. (Held any later, VSO 1.4.1 has synced already: the
    nudge makes it reconcile at once.)"""
    kube: Kube = run["kube"]
    ns = "vault-secrets-operator-system"
    selector = f"app.kubernetes.io/name={model.OPERATOR}"

    def live() -> dict[str, str]:  # uid -> name of the operator's pods not being deleted
        return {
            p["metadata"]["uid"]: p["metadata"]["name"]
            for p in kube.list_objects("v1", "Pod", ns, label_selector=selector)
            if not p["metadata"].get("deletionTimestamp")
        }

    wait_until(lambda: len(live()) == 1, "one operator pod", timeout=120)
    # --skip-quiet-check: this run is about convergence with a new operator pod; the quiet
    # check (a refresh period of watching, up to 60 s) is the first bootstrap's
    with held_at(
        "phase:populate:start",
        tmp_path,
        run["env"],
        "--rotate",
        "--only",
        "populate",
        "--only",
        "verify",
        "--skip-quiet-check",
    ) as held:
        deleted = live()
        for name in deleted.values():
            kube.core.delete_namespaced_pod(name, ns)
        # gone, not only terminating: it can sync nothing populate writes
        wait_until(
            lambda: (
                not {
                    p["metadata"]["uid"]
                    for p in kube.list_objects("v1", "Pod", ns, label_selector=selector)
                }
                & set(deleted)
            ),
            "the old operator pod gone",
        )
    done = held.done
    assert done is not None and done.returncode == 0, (
        (done.stdout + done.stderr)[-3000:] if done else ""
    )
    assert "verify" in done.stdout
    now = live()
    assert deleted and now and not set(now) & set(deleted)
    # the new pod leads: it synced what populate wrote once the old one was gone
    lease = kube.get("coordination.k8s.io/v1", "Lease", "b0d477c0.hashicorp.com", ns) or {}
    holder = str((lease.get("spec") or {}).get("holderIdentity") or "")
    assert any(holder.startswith(f"{name}_") for name in now.values()), holder


def test_the_kubelet_restarts_a_pod_whose_mount_is_malformed(
    node_box: Box, run: dict[str, Any]
) -> None:
    """The probe helper judged by the kubelet: a key of a mounted Secret emptied by hand makes
    liveness fail and the container restart. The operator is scaled to zero meanwhile (it
    would put Vault's value back), then scaled back: it restores the Secret, and the pod
    turns Ready again."""
    kube: Kube = run["kube"]
    ns, pod_name, secret = "backup", "backup-agent-0", "config"
    operator = ("-n", "vault-secrets-operator-system", "deployment", model.OPERATOR_DEPLOYMENT)

    def pod() -> dict[str, Any]:
        return kube.get("v1", "Pod", pod_name, ns) or {}

    def settled() -> bool:  # no rollout under way (the operator restarts this StatefulSet)
        sts = kube.get("apps/v1", "StatefulSet", pod_name.rsplit("-", 1)[0], ns) or {}
        st = sts.get("status") or {}
        return (
            st.get("currentRevision") == st.get("updateRevision")
            and st.get("readyReplicas") == (sts.get("spec") or {}).get("replicas")
            and _ready(pod())
        )

    wait_until(settled, f"{ns}/{pod_name} Ready, no rollout under way", timeout=180)
    _kubectl(node_box, "scale", "--replicas=0", *operator[2:], *operator[:2])
    try:
        wait_until(
            lambda: (
                not kube.list_objects(
                    "v1",
                    "Pod",
                    operator[1],
                    label_selector=f"app.kubernetes.io/name={model.OPERATOR}",
                )
            ),
            "the operator's pod gone",
            timeout=120,
        )
        data = kube.read_secret(ns, secret) or {}
        key = next(k for k in sorted(data) if k != "_raw")
        kube.core.patch_namespaced_secret(secret, ns, {"data": {key: ""}})  # by hand
        baseline = {pod()["metadata"]["uid"]: _restarts(pod())}
        wait_until(
            # a container restart of the pod there now (the same pod, or one a rollout made
            # just before the operator stopped, which then mounted the emptied key too)
            lambda: _restarts(pod()) > baseline.get(pod()["metadata"]["uid"], 0),
            f"the kubelet to restart {pod_name}'s container (liveness: key {key} emptied)",
            timeout=120,
        )
        events = kube.list_objects("v1", "Event", ns)
        assert any(
            e.get("reason") == "Unhealthy" and "Liveness" in (e.get("message") or "")
            for e in events
            if (e.get("involvedObject") or {}).get("name") == pod_name
        )
    finally:
        _kubectl(node_box, "scale", "--replicas=1", *operator[2:], *operator[:2])
    wait_until(lambda: _ready(pod()), f"{ns}/{pod_name} Ready again", timeout=180)


def _kubectl(node_box: Box, *args: str) -> str:
    return subprocess.run(
        [
            str(tools.require("kubectl", TOOLS_DIR)),
            "--kubeconfig",
            node_box.state.kubeconfig,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _pods_of(kube: Kube, namespace: str, app: str) -> list[dict[str, Any]]:
    return kube.list_objects("v1", "Pod", namespace, label_selector=f"app={app}")


def _bystander() -> dict[str, Any]:
    """A Deployment of the demo image that mounts nothing and is no restart target."""
    from bootstrap.tooling import images

    labels = {"app": "bystander"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bystander", "namespace": "webapp", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "bystander",
                            "image": images.references().demo,
                            "imagePullPolicy": "Never",
                            "command": [
                                *model.DEMO_PYTHON,
                                "-c",
                                "import signal, time; signal.signal(signal.SIGTERM, "
                                "lambda *a: exit(0)); time.sleep(10**6)",
                            ],
                            "securityContext": {
                                "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


def _all_synced(env: dict[str, str]) -> list[dict[str, Any]]:
    """``invoke status --json`` once every Secret holds Vault's value (else Pending, saying
    which do not and why)."""
    from bootstrap.core.waits import Pending

    proc = invoke_cli(["status", "--json"], env, ok=False)
    if proc.returncode != 0:
        raise Pending(f"status exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}")
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    behind = [
        f"{r['namespace']}/{r['secret']}: {r['state']} ({r['detail']})"
        for r in rows
        if r["state"] != "synced"
    ]
    if behind:
        raise Pending("; ".join(behind))
    return rows


def _operator_reads_since(audit: Path, paths: set[str], since: dt.datetime) -> set[str]:
    """The catalog's KV paths (of ``paths``) that a kubernetes-auth token (the operator's
    VaultAuths) read from Vault, answered without error, at or after ``since``: from Vault's
    audit log."""
    read = set()
    for line in audit.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        req = entry.get("request") or {}
        auth = entry.get("auth") or {}
        if (
            entry.get("type") == "response"
            and req.get("operation") == "read"
            and not entry.get("error")
            and str(auth.get("display_name", "")).startswith("kubernetes-")
            and req.get("path", "").removeprefix("secret/data/") in paths
            and (parse_stamp(entry["time"]) or since - dt.timedelta(days=1)) >= since
        ):
            read.add(req["path"].removeprefix("secret/data/"))
    return read


def test_a_deleted_openbao_pod_comes_back_sealed_and_bootstrap_unseals_it(
    node_box: Box, run: dict[str, Any]
) -> None:
    """The disaster drill: delete OpenBao's pod. The StatefulSet makes a new one (another
    UID, likely another IP) on the same data: initialized, sealed, live and not Ready. The
    operator, pointed at OpenBao's Service, cannot read Vault meanwhile. ``invoke bootstrap``
    finds the new pod from the StatefulSet and unseals it with the keys in custody; the pod
    turns Ready, the operator reaches Vault through the Service again: Vault's audit log
    shows each catalog path read by the operator after the pod came back (VSO 1.4.1 syncs
    nothing, and says nothing, when the data is unchanged), and every Secret is synced."""
    kube: Kube = run["kube"]
    port = int(run["env"]["INVOKE_BOOTSTRAP_VAULT_PORT"])

    def live_pods() -> list[dict[str, Any]]:
        return [p for p in _openbao_pods(kube) if not p["metadata"].get("deletionTimestamp")]

    (old,) = wait_until(
        lambda: [p for p in live_pods() if _ready(p)] or None, "OpenBao's pod Ready", timeout=120
    )
    # the operator's VaultConnection names the Service (by its DNS name), not a pod
    conn = kube.get(
        "secrets.hashicorp.com/v1beta1",
        "VaultConnection",
        "default",
        "vault-secrets-operator-system",
    )
    assert conn and conn["spec"]["address"] == f"http://openbao.openbao.svc:{port}"
    started = time.monotonic()
    kube.core.delete_namespaced_pod(old["metadata"]["name"], model.OPENBAO)

    def sealed_again() -> tuple[dict[str, Any], vault.Health] | None:
        for p in live_pods():
            ip = (p.get("status") or {}).get("podIP")
            if p["metadata"]["uid"] != old["metadata"]["uid"] and ip and cluster._running(p):
                h = vault.health(f"http://{ip}:{port}")
                return (p, h) if h.answering else None
        return None

    new, health = wait_until(sealed_again, "a new OpenBao pod answering", timeout=120)
    running_sealed = time.monotonic() - started
    sealed_at = dt.datetime.now(dt.UTC)
    assert new["metadata"]["name"] == old["metadata"]["name"]
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert health.initialized and health.sealed, health  # the same data, sealed
    assert not _ready(kube.get("v1", "Pod", new["metadata"]["name"], model.OPENBAO) or {})
    new_addr = f"http://{new['status']['podIP']}:{port}"

    booted = invoke_cli(["bootstrap"], run["env"])
    unsealed = time.monotonic() - started
    out = booted.stdout + booted.stderr
    assert f"{new_addr}: sealed, as every restart leaves it: unseal with the keys in" in out, out
    assert vault.health(new_addr).sealed is False
    wait_until(lambda: any(_ready(p) for p in live_pods()), "OpenBao's new pod Ready", timeout=120)
    ready = time.monotonic() - started
    # the new pod's audit log (the same data folder on the node), as the StatefulSet's
    # configuration declares it
    audit = node_box.directory / "openbao-data" / new["metadata"]["name"] / model.AUDIT_LOG
    paths = {s.kv_path for s in syncs(load_catalog(CATALOG))}
    wait_until(
        lambda: _operator_reads_since(audit, paths, sealed_at) == paths,
        f"the operator to read each of the {len(paths)} catalog paths from Vault again after "
        "the unseal (the catalog's refreshAfter, up to 60 s)",
        timeout=180,
    )
    read_again = time.monotonic() - started
    rows = wait_until(lambda: _all_synced(run["env"]), "every Secret synced", timeout=60)
    print(
        f"\nOpenBao drill: {old['status']['podIP']} -> {new['status']['podIP']}; pod deleted, "
        f"running sealed +{running_sealed:.1f}s, unsealed by bootstrap +{unsealed:.1f}s, "
        f"Ready +{ready:.1f}s, all {len(paths)} paths read again by the operator "
        f"+{read_again:.1f}s; {len(rows)} Secrets synced"
    )
    for line in out.splitlines():
        if "unseal" in line:
            print(f"  bootstrap: {line.strip()}")


def _job_done(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    job = kube.get("batch/v1", "Job", name, ns)
    status = (job or {}).get("status") or {}
    return job if status.get("succeeded") or status.get("failed") else None


def test_the_populate_job_writes_the_values_and_reads_nothing_else(
    node_box: Box, run: dict[str, Any], tmp_path: Path
) -> None:
    """``invoke render --populate-job``'s Job, applied as a GitOps tool would, runs the
    populate step in the product's image with its own ServiceAccount: the values it writes
    are those the local populate phase gives (a path set back to placeholders gets its env
    and file values again, nothing else is written), a value its environment lacks fails it
    naming the key with nothing written, and its token is refused (403, in the Job's log) a
    path outside the catalog and the listing of every path."""
    import uuid

    import yaml

    from bootstrap.clients import vault
    from bootstrap.clients.kv import read_kv
    from bootstrap.model import conventions as conv
    from bootstrap.model.domain import kv_secrets
    from bootstrap.runtime import sources
    from bootstrap.runtime.custody import FileCustody

    kube: Kube = run["kube"]
    env = run["env"]
    (bao,) = _openbao_pods(kube)
    addr = f"http://{bao['status']['podIP']}:8200"
    custody_file = node_box.settings().custody_file
    assert custody_file is not None
    admin = FileCustody(custody_file).load_extra("admin")
    assert admin is not None
    api = vault.Api(addr, admin["token"])
    cat = load_catalog(CATALOG)

    out = tmp_path / "rendered"
    # the Job reaches Vault as in-cluster clients do: the Service's name (the node's DNS)
    in_cluster = model.openbao_address(model.ClusterOptions())
    rendered = invoke_cli(
        ["render", "--out", str(out), "--populate-job", "--vault-addr", in_cluster], env
    )
    # the files of the file: sources come from a Secret the user makes with the command
    # render prints (issue 23, finding 3): never in the tree
    (files_command,) = [
        line.strip() for line in rendered.stdout.splitlines() if "create secret generic" in line
    ]
    docs = list(yaml.safe_load_all((out / "populate-job" / "manifests.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "ConfigMap", "Job"]
    ns = docs[0]["metadata"]["name"]
    job = docs[3]
    name = job["metadata"]["name"]
    # a path outside the catalog, holding a value: the Job must be refused it
    other = f"popjob-{uuid.uuid4().hex[:8]}/config"
    api.write(f"{conv.KV_MOUNT}/data/{other}", {"data": {"token": "not-for-the-job"}})
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] += ["--expect-denied", other]
    rendered_text = (out / "populate-job" / "manifests.yaml").read_text()
    secret_values = [v for v in demo_env().values() if v.startswith("demo-")]
    for value in secret_values:  # env values come from the user's Secret only
        assert value not in rendered_text
    flags = (CATALOG.parent / "examples" / "webapp-flags.json").read_text().strip()
    assert flags not in rendered_text  # nor the files' contents

    # the user's Secret with the env sources' values (a file, never an argument)
    secret_name = container["envFrom"][0]["secretRef"]["name"]

    def env_secret(values: dict[str, str]) -> None:
        """The user's Secret with the env sources' values (from a file, never an argument)."""
        doc = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret_name, "namespace": ns},
            "stringData": values,
        }
        f = tmp_path / "env-secret.yaml"
        f.unlink(missing_ok=True)
        f.touch(mode=0o600)
        f.write_text(yaml.safe_dump(doc))
        _kubectl(node_box, "apply", "-f", str(f))

    def run_job() -> tuple[dict[str, Any], str]:
        _kubectl(node_box, "delete", "job", name, "-n", ns, "--ignore-not-found", "--wait")
        started = dt.datetime.now(dt.UTC)
        _kubectl(node_box, "apply", "-f", str(manifests))
        done = wait_until(lambda: _job_done(kube, ns, name), f"Job {ns}/{name} done", 180)
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        log = _kubectl(node_box, "logs", f"job/{name}", "-n", ns)
        print(f"\npopulate Job done in {seconds:.1f}s; its log:\n{log}")
        for value in [*secret_values, "not-for-the-job"]:
            assert value not in log
        return done, log

    # webapp/config back to placeholders: populate must write both keys again, from the
    # Job's environment (log-level) and the catalog's folder (feature-flags, from the
    # files Secret made above)
    path = "webapp/config"
    have, version = read_kv(api, path)
    placeholders = {k: conv.placeholder_value("webapp", "config", k) for k in have}
    api.write(f"{conv.KV_MOUNT}/data/{path}", {"options": {"cas": version}, "data": placeholders})
    versions = {p: read_kv(api, p)[1] for p, _ in kv_secrets(cat)}
    job["spec"]["backoffLimit"] = 0  # one pod per run here: the failing run fails at once
    manifests = tmp_path / "job.yaml"
    manifests.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    namespace = tmp_path / "namespace.yaml"
    namespace.write_text(yaml.safe_dump(docs[0]))
    _kubectl(node_box, "apply", "-f", str(namespace))
    # as the user runs it, from the folder render ran in
    argv = shlex.split(files_command)
    assert argv[0] == "kubectl"
    subprocess.run(
        [
            str(tools.require("kubectl", TOOLS_DIR)),
            "--kubeconfig",
            node_box.state.kubeconfig,
            *argv[1:],
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    try:
        # first without one of the env sources' values: the Job fails naming the key,
        # and writes nothing
        env_secret({k: v for k, v in demo_env().items() if k != "WEBAPP_LOG_LEVEL"})
        done, log = run_job()
        assert done["status"].get("failed") == 1, log
        assert "webapp/config key log-level: environment variable WEBAPP_LOG_LEVEL" in log, log
        assert "populate wrote nothing" in log, log
        assert {p: read_kv(api, p)[1] for p, _ in kv_secrets(cat)} == versions
        assert read_kv(api, path)[0] == placeholders
        # then with the user's whole Secret
        env_secret(demo_env())
        done, log = run_job()
        assert done["status"].get("succeeded") == 1, log
        # its identity may not read another path, nor list: 403, in its log
        assert f"GET {conv.KV_MOUNT}/data/{other}: 403 permission denied" in log, log
        assert f"LIST {conv.KV_MOUNT}/metadata/: 403 permission denied" in log, log
        # the values the local populate phase gives: env from the environment, the file
        # as read from the catalog's folder; nothing else written
        cat_dir = CATALOG.parent
        expected = {
            "log-level": env["WEBAPP_LOG_LEVEL"],
            "feature-flags": sources.read_file("examples/webapp-flags.json", cat_dir),
        }
        got, new_version = read_kv(api, path)
        assert got == expected
        assert new_version == versions[path] + 1
        after = {p: read_kv(api, p)[1] for p, _ in kv_secrets(cat)}
        assert after == {**versions, path: versions[path] + 1}
    finally:
        api.request("DELETE", f"{conv.KV_MOUNT}/metadata/{other}")
        # the placeholders may have reached the Secret meanwhile: the operator syncs the
        # values again before the next test (verify nudges), and the rollouts settle; no
        # quiet check (a clean-up, not a hand-over to prove: the first bootstrap did)
        invoke_cli(
            ["bootstrap", "--only", "populate", "--only", "verify", "--skip-quiet-check"], env
        )
        for target in ("webapp", "webapp-worker"):
            _kubectl(
                node_box,
                "rollout",
                "status",
                f"deployment/{target}",
                "-n",
                "webapp",
                "--timeout=55s",
            )
