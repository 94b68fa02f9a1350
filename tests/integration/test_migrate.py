"""Migration off secret copiers, on the sandbox: a copier CronJob object (no pod runs here, so
the Secrets it "copied" are seeded as it would have left them), a hand-made database Secret and
a Deployment per namespace; ``invoke migrate.discover`` finds all of it, names keys but never
values, and writes a catalog fragment that, merged into a catalog, passes ``invoke check``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, generated_catalog_text, task_cli, workload

SCRIPT = """set -e
for ns in {targets}; do
  kubectl get secret {secret} -n {source} -o json \\
    | jq 'del(.metadata.namespace,.metadata.uid,.metadata.resourceVersion)' \\
    | kubectl apply -n "$ns" -f -
done
"""


def _copier_cluster(box: Box, u: str, copied: str = "ovh-dns") -> dict[str, Any]:
    kube = Kube(box.state.kubeconfig)
    source, targets = f"cm-{u}", [f"dns-{u}", f"ing-{u}"]
    for ns in [source, *targets]:
        kube.ensure_namespace(ns)
        workload(kube, ns, "Deployment", "app")
    ovh = {"application-key": f"ak-{u}".encode(), "application-secret": f"as-{u}".encode()}
    for ns in [source, *targets]:
        kube.write_secret(ns, copied, ovh)
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


# -- moving namespaces, and back ---------------------------------------------------------------


def _catalog_for(
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
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc))
    configured = task_cli("bootstrap", env, "--catalog", str(catalog), "--only", "vault-config")
    assert configured.returncode == 0, configured.stdout[-2000:] + configured.stderr[-2000:]
    return catalog, env


def _state(box: Box, cluster: dict[str, Any]) -> dict[str, Any]:
    """What the workloads see: each Secret's data, type, labels and annotations (the
    operator's _raw aside), each Deployment's revision, the copier's spec."""
    from tests.integration.helpers import revision

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


def _migrate(env: dict[str, str], catalog: Path, *namespaces: str, failpoints: str = "") -> Any:
    args = [a for ns in namespaces for a in ("--ns", ns)]
    return task_cli(
        "migrate.namespace", env, *args, "--catalog", str(catalog), failpoints=failpoints
    )


def _rollback(env: dict[str, str], catalog: Path, *namespaces: str) -> Any:
    args = [a for ns in namespaces for a in ("--ns", ns)]
    return task_cli("migrate.rollback", env, *args, "--catalog", str(catalog))


def test_namespaces_move_with_the_same_bytes_and_roll_back_exactly(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = _copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = _catalog_for(box, cluster, unique, tmp_path)
    before = _state(box, cluster)
    namespaces = [cluster["source"], *cluster["targets"]]
    planned = task_cli(
        "migrate.namespace", env, "--ns", namespaces[0], "--catalog", str(catalog), "--plan"
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    for step in (
        f"create  backup {namespaces[0]}",
        f"create  shared/{cluster['secret']}",
        f"create  VaultStaticSecret {namespaces[0]}/{cluster['secret']}",
        f"check   Secret {namespaces[0]}/{cluster['secret']}",
        f"update  CronJob {namespaces[0]}/secret-copier",
    ):
        assert step in planned.stdout, planned.stdout
    assert _state(box, cluster) == before
    assert not (tmp_path / "state" / "migrate").exists()
    moved = _migrate(env, catalog, *namespaces)
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    after = _state(box, cluster)
    assert after["copier"] is None  # gone once every namespace it touched moved
    reports = {
        ns: json.loads((tmp_path / "state" / "reports" / f"migrate-{ns}.json").read_text())
        for ns in namespaces
    }
    first, last = reports[namespaces[0]], reports[namespaces[-1]]
    assert first["values_moved"] == [
        {"path": f"shared/{cluster['secret']}", "from": f"{namespaces[0]}/{cluster['secret']}"}
    ]
    assert first["copiers"] == [
        {"copier": f"CronJob {namespaces[0]}/secret-copier", "done": "suspended"}
    ]
    assert last["copiers"] == [
        {"copier": f"CronJob {namespaces[0]}/secret-copier", "done": "deleted"}
    ]
    assert reports[f"ing-{unique}"]["secrets_synced"] == sorted(["database", cluster["secret"]])
    assert reports[namespaces[1]]["values_moved"] == []  # the shared value was there already
    assert {k: v for k, v in after.items() if k != "copier"} == {
        k: v for k, v in before.items() if k != "copier"
    }  # same bytes, no rollout restart
    kube = Kube(box.state.kubeconfig)
    for ns in namespaces:  # written by the operator now (its _raw key is there)
        assert "_raw" in (kube.read_secret(ns, cluster["secret"]) or {})
    status = task_cli("status", env, "--catalog", str(catalog), "--json")
    assert status.returncode == 0, status.stderr[-2000:]
    assert {r["state"] for r in json.loads(status.stdout)} == {"synced"}, status.stdout
    again = _migrate(env, catalog, *namespaces)
    assert again.returncode == 0 and "migrated already" in again.stdout
    back = _rollback(env, catalog, *reversed(namespaces))
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert _state(box, cluster) == before
    for ns in namespaces:
        assert "_raw" not in (kube.read_secret(ns, cluster["secret"]) or {})
        assert kube.list("secrets.hashicorp.com/v1beta1", "VaultStaticSecret", namespace=ns) == []


def test_a_migration_killed_mid_namespace_rolls_back_exactly(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = _copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = _catalog_for(box, cluster, unique, tmp_path)
    before = _state(box, cluster)
    first, second = cluster["source"], cluster["targets"][0]
    assert _migrate(env, catalog, first).returncode == 0
    killed = _migrate(env, catalog, second, failpoints="migrate:applied=kill")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    back = _rollback(env, catalog, second, first)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert _state(box, cluster) == before


def test_different_values_for_one_shared_path_are_refused_and_nothing_is_written(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = _copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = _catalog_for(box, cluster, unique, tmp_path)
    drifted = cluster["targets"][1]
    Kube(box.state.kubeconfig).write_secret(
        drifted, cluster["secret"], {"application-key": b"other", "application-secret": b"x"}
    )
    before = _state(box, cluster)
    refused = _migrate(env, catalog, cluster["source"])
    assert refused.returncode == 1
    secret = cluster["secret"]
    assert f"{cluster['source']}/{secret} and {drifted}/{secret} hold different values" in (
        refused.stderr
    ), refused.stderr[-2000:]
    assert _state(box, cluster) == before
    assert not (tmp_path / "state" / "migrate" / f"{cluster['source']}.json").exists()
    assert read_kv(admin_api(box), f"shared/{secret}") == ({}, 0)  # nothing in Vault
