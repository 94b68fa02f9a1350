"""Migration off secret copiers, on the sandbox: a copier CronJob object (no pod runs here, so
the Secrets it "copied" are seeded as it would have left them), a hand-made database Secret and
a Deployment per namespace; ``invoke migrate.discover`` finds all of it, names keys but never
values, and writes a catalog fragment that, merged into a catalog, passes ``invoke check``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from bootstrap.clients.kube import Kube
from tests.integration.conftest import Box
from tests.integration.helpers import generated_catalog_text, task_cli, workload

SCRIPT = """set -e
for ns in {targets}; do
  kubectl get secret ovh-dns -n {source} -o json \\
    | jq 'del(.metadata.namespace,.metadata.uid,.metadata.resourceVersion)' \\
    | kubectl apply -n "$ns" -f -
done
"""


def _copier_cluster(box: Box, u: str) -> dict[str, Any]:
    kube = Kube(box.state.kubeconfig)
    source, targets = f"cm-{u}", [f"dns-{u}", f"ing-{u}"]
    for ns in [source, *targets]:
        kube.ensure_namespace(ns)
        workload(kube, ns, "Deployment", "app")
    ovh = {"application-key": f"ak-{u}".encode(), "application-secret": f"as-{u}".encode()}
    for ns in [source, *targets]:
        kube.write_secret(ns, "ovh-dns", ovh)
    kube.write_secret(targets[1], "database", {"password": f"pw-{u}".encode(), "username": b"app"})
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
                                            SCRIPT.format(targets=" ".join(targets), source=source)
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
    return {"source": source, "targets": targets, "values": [*ovh.values(), f"pw-{u}".encode()]}


def test_discover_finds_the_copier_its_copies_and_the_handmade_secret(
    box: Box, unique: str, tmp_path: Path
) -> None:
    cluster = _copier_cluster(box, unique)
    namespaces = [cluster["source"], *cluster["targets"]]
    env = box.cli_env(tmp_path / "state")
    args = [a for ns in namespaces for a in ("--namespace", ns)]
    out = tmp_path / "fragment.yaml"
    proc = task_cli(
        "migrate.discover", env, *args, "--out", str(out), "--catalog", str(tmp_path / "none.yaml")
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    assert f"CronJob {cluster['source']}/secret-copier" in text
    assert f"{cluster['source']}/ovh-dns" in text and "its script reads a Secret" in text
    for ns in cluster["targets"]:
        assert f"{ns}/ovh-dns" in text and f"copy of {cluster['source']}/ovh-dns" in text
    assert f"ing-{unique}/database" in text and f"ing-{unique}/database" in text
    assert "shared/ovh-dns" in text
    fragment = out.read_text()
    for value in cluster["values"]:  # names of keys only, never values
        assert value.decode() not in text + proc.stderr + fragment
    # merged into a catalog of its own, the fragment passes the static check
    base = yaml.safe_load(generated_catalog_text(f"mg{unique}", {"config": ["a"]}))
    extra = yaml.safe_load(fragment)
    merged = {**base, "shared": extra["shared"], "services": base["services"] + extra["services"]}
    catalog = tmp_path / "merged.yaml"
    catalog.write_text(yaml.safe_dump(merged))
    check = task_cli("check", {**os.environ, **env}, "--catalog", str(catalog))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check passed" in check.stdout
    services = {s["namespace"]: s for s in extra["services"]}
    assert set(services) == set(namespaces)
    assert {r["path"] for s in services.values() for r in s.get("reads", [])} == {"shared/ovh-dns"}
    assert services[f"ing-{unique}"]["secrets"] == {
        "database": {"keys": {"password": None, "username": None}}
    }


def test_different_values_under_one_shared_name_are_named_as_a_conflict(
    box: Box, unique: str, tmp_path: Path
) -> None:
    cluster = _copier_cluster(box, unique)
    kube = Kube(box.state.kubeconfig)
    drifted = cluster["targets"][0]
    kube.write_secret(drifted, "ovh-dns", {"application-key": b"other", "application-secret": b"x"})
    args = [a for ns in [cluster["source"], *cluster["targets"]] for a in ("--namespace", ns)]
    proc = task_cli("migrate.discover", box.cli_env(tmp_path / "state"), *args)
    assert proc.returncode == 0, proc.stderr
    assert f"conflict: ovh-dns differs between {cluster['source']} and {drifted}" in proc.stderr, (
        proc.stderr
    )
    assert "values differ from the source's" in proc.stdout
