"""The sandbox itself: real processes, real versions, OpenBao uninitialized and sealed, the
controllers at work, and the operator running as its own ServiceAccount with the RBAC of its
source tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.core.errors import SandboxError
from bootstrap.tooling import versions
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import invoke_cli, revision, wait_until, workload


def operator_kinds(kube: Kube) -> list[str]:
    """The kinds of the operator's CRDs installed in the cluster, sorted."""
    crds = kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    return sorted(
        c["spec"]["names"]["kind"] for c in crds if c["spec"]["group"] == "secrets.hashicorp.com"
    )


def test_components_run_at_pinned_versions(box: Box) -> None:
    kube = Kube(box.state.kubeconfig)
    assert kube.version() == f"v{versions.KUBERNETES}"
    st = sandbox.status(box.directory)
    running = {c.name: c for c in st.components if c.running}
    assert {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "bao-0",
        "vault-secrets-operator",
    } <= set(running)
    assert running["vault-secrets-operator"].detail.startswith(
        f"v{versions.VSO} ({versions.VSO_LICENCE})"
    )
    assert (st.operator_version, st.operator_licence) == (versions.VSO, versions.VSO_LICENCE)
    # the operator's own CRDs, not stand-ins: the 1.4.1 schema, ten kinds
    assert operator_kinds(kube) == [
        "CSISecrets",
        "HCPAuth",
        "HCPVaultSecretsApp",
        "SecretTransformation",
        "VaultAuth",
        "VaultAuthGlobal",
        "VaultConnection",
        "VaultDynamicSecret",
        "VaultPKISecret",
        "VaultStaticSecret",
    ]


def test_the_v0_sandbox_runs_v010_with_its_five_crds(box_v0: Box) -> None:
    kube = Kube(box_v0.state.kubeconfig)
    st = sandbox.status(box_v0.directory)
    (op,) = [c for c in st.components if c.name == "vault-secrets-operator"]
    assert op.running and op.detail.startswith(f"v{versions.VSO_V0} (MPL-2.0)")
    assert (st.operator_version, st.operator_licence) == (versions.VSO_V0, "MPL-2.0")
    assert operator_kinds(kube) == [
        "VaultAuth",
        "VaultConnection",
        "VaultDynamicSecret",
        "VaultPKISecret",
        "VaultStaticSecret",
    ]


def test_openbao_started_uninitialized_and_sealed(box: Box) -> None:
    (h,) = box.initial_health
    assert (h.code, h.initialized, h.sealed) == (501, False, True)
    assert h.version.startswith(versions.OPENBAO)


def _can(kube: Kube, user: str, verb: str, resource: str, group: str = "") -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, resource=resource, group=group
            ),
        )
    )
    answer = client.AuthorizationV1Api(kube.api).create_subject_access_review(review)
    assert answer.status is not None
    return bool(answer.status.allowed)


def test_the_operator_runs_as_its_service_account_with_its_own_rbac(box: Box) -> None:
    config = yaml.safe_load((box.directory / "operator.kubeconfig").read_text())
    (user,) = config["users"]
    assert set(user["user"]) == {"token"}  # a ServiceAccount token, no admin certificate
    kube = Kube(box.state.kubeconfig)
    who = f"system:serviceaccount:{sandbox.OPERATOR_NAMESPACE}:{sandbox.OPERATOR_SERVICE_ACCOUNT}"
    assert _can(kube, who, "patch", "deployments", "apps")  # rollout restarts
    assert _can(kube, who, "create", "serviceaccounts/token")  # logs in as each service
    assert not _can(kube, who, "delete", "namespaces")
    assert not _can(kube, who, "create", "clusterrolebindings", "rbac.authorization.k8s.io")
    conn = kube.get(
        "secrets.hashicorp.com/v1beta1",
        "VaultConnection",
        "default",
        "vault-secrets-operator-system",
    )
    assert conn is not None and conn["spec"]["address"] == box.state.bao_addr


def test_the_controllers_run(box: Box, unique: str) -> None:
    """kube-controller-manager: namespaces get their default ServiceAccount, a Deployment gets
    a ReplicaSet, and a deleted namespace is really deleted."""
    kube = Kube(box.state.kubeconfig)
    ns = f"sbx-{unique}"
    kube.ensure_namespace(ns)
    wait_until(
        lambda: [a for a in kube.core.list_namespaced_service_account(ns).items],
        "the default ServiceAccount",
    )
    workload(kube, ns, "Deployment", "web")
    wait_until(lambda: kube.apps.list_namespaced_replica_set(ns).items, "a ReplicaSet")
    wait_until(lambda: revision(kube, ns, "Deployment", "web") == "1", "revision 1")
    kube.delete_namespace(ns)
    wait_until(lambda: ns not in kube.namespaces(), f"namespace {ns} to be gone")


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
    return str(invoke_cli(args, env).stdout)


def test_down_stops_only_its_processes(tmp_path: Path) -> None:
    directory = tmp_path / "short-lived"
    state = sandbox.up(directory, TOOLS_DIR, timeout=90)
    # not ours: a process that runs until its input closes
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert all(p.alive() for p in state.processes)
        stopped = sandbox.down(directory)
        assert sorted(stopped) == sorted(p.name for p in state.processes)
        assert not directory.exists()
        # gone: judged by pid, binary and start time, as down judges them (a pid alone may
        # already belong to a new process on a busy machine)
        assert [p.name for p in state.processes if p.alive()] == []
        assert decoy.poll() is None  # not ours: untouched
        assert sandbox.down(directory) == []  # a second down is harmless
    finally:
        decoy.kill()
        decoy.wait()


def test_a_component_that_exits_at_start_is_named_with_its_log_and_the_others_state(
    tmp_path: Path,
) -> None:
    """Issue 24, item 2 (a fresh sandbox whose kube-controller-manager "exited" with an empty
    log): the error names the component that exited, its last log lines, and whether each of
    the others still ran; nothing is left running."""
    tools_dir = tmp_path / "tools"
    tools_dir.mkdir()
    for entry in TOOLS_DIR.iterdir():
        if not entry.name.startswith("kube-controller-manager-"):
            (tools_dir / entry.name).symlink_to(entry)
    kcm = tools_dir / f"kube-controller-manager-{versions.KUBERNETES}" / "kube-controller-manager"
    kcm.parent.mkdir()
    # a program, not a script: a script runs as '/bin/sh <path>', which the sandbox rightly
    # takes for another process than the component, so it could see it gone before it wrote
    # its line (seen once in a flake hunt, on a busy machine)
    source = tmp_path / "kcm.c"
    source.write_text(
        "#include <stdio.h>\n#include <string.h>\n"
        "int main(int argc, char **argv) {\n"
        '  if (argc > 1 && strcmp(argv[1], "--version") == 0) {\n'
        f'    puts("Kubernetes v{versions.KUBERNETES}");\n    return 0;\n  }}\n'
        '  fputs("F1205 unable to load the service account key: boom\\n", stderr);\n'
        "  return 255;\n}\n"
    )
    subprocess.run(["gcc", "-O1", "-o", str(kcm), str(source)], check=True)
    with pytest.raises(SandboxError) as info:
        sandbox.up(tmp_path / "box", tools_dir, timeout=60)
    text = str(info.value)
    assert text.startswith("sandbox did not start: kube-controller-manager exited\n")
    assert "--- kube-controller-manager: exited" in text
    assert "unable to load the service account key: boom" in text
    assert "--- etcd: running" in text and "--- kube-apiserver: running" in text
    st = sandbox.status(tmp_path / "box")
    assert not [c.name for c in st.components if c.running]  # all stopped again


def test_a_process_just_started_is_alive(tmp_path: Path) -> None:
    """Issue 24, item 2 (a fresh sandbox whose kube-controller-manager "exited" with an empty
    log): Popen returns before the new program's command line shows in /proc, and alive()
    took such a process for gone; 21 of 500 fresh processes were. start() now returns once
    it shows."""
    import os
    import shutil
    import signal

    from bootstrap.clients import procs

    sleep = shutil.which("sleep")
    assert sleep is not None
    missed = []
    for i in range(300):
        pid = procs.start([sleep, "30"], tmp_path / "sleep.log")
        try:
            if not procs.alive(pid, sleep):
                missed.append(i)
        finally:
            os.kill(pid, signal.SIGKILL)
    assert not missed, f"{len(missed)} of 300 fresh processes seen as gone"
