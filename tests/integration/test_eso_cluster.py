"""cluster.create with the sync engine eso, on a node sandbox of its own: ESO 2.9.0 and Stakater
Reloader 1.4.22 as pods (images built here), the bootstrap, status and a rotation through them,
and cluster.delete. The sandbox runs no Reloader process (the ESO tests of test_eso.py hold its
fixed host port); the cluster's Reloader binds it in its pod's own network namespace, so this
file may run beside test_eso.py."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.commands import cluster
from bootstrap.model import cluster as model
from bootstrap.model import eso
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import syncs
from tests.conftest import EXAMPLE
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import demo_env, exports_of, invoke_cli, revision, wait_until


def _pod_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    (pod,) = kube.list_objects(
        "v1", "Pod", namespace, label_selector=f"app.kubernetes.io/name={name}"
    )
    return pod


def test_cluster_create_runs_eso_and_reloader_as_pods_and_bootstrap_syncs_through_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A node sandbox with sync_engine eso (its own ESO process; no Reloader process: the
    session's ESO sandbox holds Reloader's fixed port): cluster.create stops the sandbox's
    ESO and runs ESO and Reloader as pods, each as its own ServiceAccount; the bootstrap with
    the settings it writes syncs every Secret through ESO's pod (each SecretStore names
    OpenBao's Service) and restarts nothing; status says synced; a rotation rolls the
    targets out through Reloader's pod; cluster.delete removes ESO's Deployment (in the
    sandbox's namespace) and Reloader's namespace (create's) and starts the sandbox's ESO
    process again."""
    # a short path: the node's unix sockets live under it
    directory = tmp_path_factory.mktemp("node-eso") / "sandbox"
    state = sandbox.up(
        directory,
        TOOLS_DIR,
        with_node=True,
        timeout=90,
        operator=sandbox.OperatorOptions(engine="eso", reloader=False),
    )
    try:
        box = Box(state, directory, [vault.health(a) for a in state.bao_addrs])
        env = {
            **box.cli_env(),
            **demo_env(),
            "INVOKE_BOOTSTRAP_CATALOG": str(EXAMPLE),
            "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "180",
        }
        env.pop("INVOKE_BOOTSTRAP_VAULT_ADDRS")  # found from the StatefulSet's pods
        env.pop("INVOKE_BOOTSTRAP_AUDIT_FILE")  # the pod's, from cluster.env
        created = invoke_cli(["cluster.create"], env)
        out = created.stdout + created.stderr
        assert "the operator External Secrets Operator v2.9.0 (Apache-2.0)" in out, out
        assert "stopped the sandbox's external-secrets process" in out, out
        kube = Kube(state.kubeconfig)
        eso_pod = _pod_of(kube, "external-secrets", model.ESO)
        reloader_pod = _pod_of(kube, "reloader", model.RELOADER)
        assert eso_pod["spec"]["serviceAccountName"] == "external-secrets"
        assert reloader_pod["spec"]["serviceAccountName"] == "reloader-reloader"
        assert eso_pod["spec"]["containers"][0]["image"].endswith("/external-secrets:2.9.0")
        env.update(exports_of(directory / cluster.ENV_FILE))
        assert env["INVOKE_BOOTSTRAP_VAULT_CONNECTION_ADDRESS"] == "http://openbao.openbao.svc:8200"
        cat = load_catalog(EXAMPLE)
        targets = sorted({(s.namespace, t.kind, t.name) for s in syncs(cat) for t in s.restart})

        def revisions() -> dict[tuple[str, str, str], str]:
            return {t: revision(kube, t[0], t[1], t[2]) for t in targets}

        def rolled_out() -> dict[tuple[str, str, str], str] | None:
            now = revisions()
            return now if all(now.values()) else None

        before = wait_until(rolled_out, "every demo workload rolled out once")
        # the quiet check is proven on ESO's process above; here the pods' part: the sync
        booted = invoke_cli(["bootstrap", "--skip-quiet-check"], env)
        assert booted.returncode == 0, booted.stdout[-3000:] + booted.stderr[-3000:]
        stores = kube.list(eso.ESO_API, "SecretStore", namespace="webapp")
        assert {s["spec"]["provider"]["vault"]["server"] for s in stores} == {
            "http://openbao.openbao.svc:8200"
        }
        status = invoke_cli(["status", "--json"], env)
        assert {r["state"] for r in json.loads(status.stdout)} == {"synced"}, status.stdout
        assert revisions() == before  # the first fill restarted nothing
        rotated = invoke_cli(["verify.rotation", "webapp/config"], env)
        assert "rotation test passed for webapp/config" in rotated.stdout, rotated.stdout
        assert "Deployment/webapp: revisions 1 -> 2 -> 3" in rotated.stdout, rotated.stdout

        deleted = invoke_cli(["cluster.delete"], env)
        out = deleted.stdout + deleted.stderr
        assert "deleting Deployment external-secrets/external-secrets" in out, out
        # the sandbox ran no Reloader: its namespace is create's, deleted whole
        assert "deleting namespace reloader" in out, out
        assert kube.get("apps/v1", "Deployment", model.ESO, "external-secrets") is None
        again = sandbox.SandboxState.load(directory)
        assert again is not None and again.process("external-secrets").alive()
    finally:
        sandbox.down(directory, keep=bool(os.environ.get("KEEP_SANDBOX")))
