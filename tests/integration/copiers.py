"""A cluster with a secret copier, for the migration's tests on either sync engine: a copier
CronJob object (no pod runs here, so the Secrets it "copied" are seeded as it would have left
them), a hand-made database Secret and a Deployment per namespace; the discovered fragment as
a catalog; what the workloads see of it; the migration's two commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bootstrap.clients.kube import Kube
from tests.integration.conftest import Box
from tests.integration.helpers import revision, task_cli, wait_until, workload

SCRIPT = """set -e
for ns in {targets}; do
  kubectl get secret {secret} -n {source} -o json \\
    | jq 'del(.metadata.namespace,.metadata.uid,.metadata.resourceVersion)' \\
    | kubectl apply -n "$ns" -f -
done
"""


def copier_cluster(box: Box, u: str, copied: str = "ovh-dns") -> dict[str, Any]:
    kube = Kube(box.state.kubeconfig)
    source, targets = f"cm-{u}", [f"dns-{u}", f"ing-{u}"]
    for ns in [source, *targets]:
        kube.ensure_namespace(ns)
        workload(kube, ns, "Deployment", "app")
    ovh = {"application-key": f"ak-{u}".encode(), "application-secret": f"as-{u}".encode()}
    for ns in [source, *targets]:
        kube.write_secret(ns, copied, ovh)
    kube.write_secret(targets[1], "database", {"password": f"pw-{u}".encode(), "username": b"app"})
    for ns in [source, *targets]:  # rolled out once before anything is compared
        wait_until(lambda ns=ns: revision(kube, ns, "Deployment", "app") == "1", f"{ns}/app")
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "secret-copier", "namespace": source},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [
                                    {
                                        "name": "copy",
                                        "image": "bitnami/kubectl:1.31",
                                        "command": ["/bin/sh", "-c"],
                                        "args": [
                                            SCRIPT.format(
                                                targets=" ".join(targets),
                                                source=source,
                                                secret=copied,
                                            )
                                        ],
                                    }
                                ],
                            }
                        }
                    }
                },
            },
        },
        field_manager="test",
    )
    return {
        "source": source,
        "targets": targets,
        "secret": copied,
        "values": [*ovh.values(), f"pw-{u}".encode()],
    }


#: The migrated catalog's refreshAfter, in seconds: short, so that one refresh period (how
#: long the quiet check watches) costs little, and the operator re-reads each Secret in it.
REFRESH = 10
#: Added to one refresh period: the operator's work and the Deployment controller's.
MARGIN = 5


def catalog_for(
    box: Box, cluster: dict[str, Any], u: str, tmp_path: Path
) -> tuple[Path, dict[str, str]]:
    """The discovered fragment as the catalog (named after the test), Vault configured for it."""
    env = box.cli_env(tmp_path / "state")
    args = [a for ns in [cluster["source"], *cluster["targets"]] for a in ("--namespace", ns)]
    out = tmp_path / "fragment.yaml"
    found = task_cli(
        "migrate.discover", env, *args, "--out", str(out), "--catalog", str(tmp_path / "none.yaml")
    )
    assert found.returncode == 0, found.stderr
    doc = yaml.safe_load(out.read_text())
    doc["name"] = f"mg{u}"
    for svc in doc["services"]:
        # what a user adds once the fragment is merged: the workload restarts when its
        # Secrets change; the operator then has a target to restart (or to storm on)
        svc["restart"] = [{"kind": "Deployment", "name": "app"}]
        svc["refreshAfter"] = f"{REFRESH}s"
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc))
    # policies and roles only: no hand-over happens, so verify's quiet check (and
    # --skip-quiet-check) does not arise; the migration's own quietness is watched below
    configured = task_cli("bootstrap", env, "--catalog", str(catalog), "--only", "vault-config")
    assert configured.returncode == 0, configured.stdout[-2000:] + configured.stderr[-2000:]
    return catalog, env


def cluster_state(box: Box, cluster: dict[str, Any]) -> dict[str, Any]:
    """What the workloads see: each Secret's data, type, labels and annotations (the
    operator's _raw aside), each Deployment's revision, the copier's spec."""
    kube = Kube(box.state.kubeconfig)
    out: dict[str, Any] = {}
    for ns in [cluster["source"], *cluster["targets"]]:
        for obj in kube.list("v1", "Secret", namespace=ns):
            if obj.get("type") != "Opaque":
                continue
            meta = obj["metadata"]
            data = dict(obj.get("data") or {})
            data.pop("_raw", None)
            out[f"{ns}/{meta['name']}"] = (data, meta.get("labels"), meta.get("annotations"))
        out[f"{ns}/revision"] = revision(kube, ns, "Deployment", "app")
    cron = kube.get("batch/v1", "CronJob", "secret-copier", cluster["source"])
    out["copier"] = cron["spec"] if cron else None
    return out


def rollouts(kube: Kube, namespaces: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each namespace's Deployment as a restart shows it: its generation (a restart stamp on
    the pod template, VSO's or Stakater Reloader's, bumps it at once), VSO's stamp, and its
    revision."""
    out: dict[str, tuple[Any, ...]] = {}
    for ns in namespaces:
        obj = kube.get("apps/v1", "Deployment", "app", ns) or {}
        template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        out[ns] = (
            (obj.get("metadata") or {}).get("generation"),
            (template.get("annotations") or {}).get("vso.secrets.hashicorp.com/restartedAt"),
            revision(kube, ns, "Deployment", "app"),
        )
    return out


def quiet_for_one_refresh(box: Box, namespaces: list[str]) -> None:
    """Nothing changes in Vault for one refresh period after the migration: the operator
    re-reads every VaultStaticSecret (or ExternalSecret) in it and must restart no
    Deployment. A storm restarts
    at the first refresh; the check fails as soon as it sees one. (Watching for a span is the
    point here: this waits for nothing to happen, so polls until the span is over.)"""
    kube = Kube(box.state.kubeconfig)
    start = rollouts(kube, namespaces)
    deadline = time.monotonic() + REFRESH + MARGIN
    while time.monotonic() < deadline:
        now = rollouts(kube, namespaces)
        assert now == start, f"restarted while Vault did not change: {start} -> {now}"
        time.sleep(0.5)


def migrate_ns(env: dict[str, str], catalog: Path, *namespaces: str, failpoints: str = "") -> Any:
    args = [a for ns in namespaces for a in ("--ns", ns)]
    return task_cli(
        "migrate.namespace", env, *args, "--catalog", str(catalog), failpoints=failpoints
    )


def rollback_ns(env: dict[str, str], catalog: Path, *namespaces: str) -> Any:
    args = [a for ns in namespaces for a in ("--ns", ns)]
    return task_cli("migrate.rollback", env, *args, "--catalog", str(catalog))
