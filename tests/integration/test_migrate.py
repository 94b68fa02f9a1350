"""Migration off secret copiers, on the sandbox: a copier CronJob object (no pod runs here, so
the Secrets it "copied" are seeded as it would have left them), a hand-made database Secret and
a Deployment per namespace; ``invoke migrate.discover`` finds all of it, names keys but never
values, and writes a catalog fragment that, merged into a catalog, passes ``invoke check``.

The moves run on the session's operator (VSO 1.4.1 by default): each namespace's Deployment is
its Secrets' restart target, so a restart on the hand-over, or a restart storm afterwards
(hashicorp/vault-secrets-operator#1212: a ``create: false`` destination without the labels of
the operator's Secret cache is re-synced and its targets restarted on every refresh), shows in
the Deployment's generation and revision."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, cast

import yaml

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from tests.integration.conftest import Box
from tests.integration.copiers import (
    catalog_for,
    cluster_state,
    copier_cluster,
    migrate_ns,
    quiet_for_one_refresh,
    rollback_ns,
)
from tests.integration.helpers import (
    admin_api,
    generated_catalog_text,
    held_at,
    task_cli,
)


def test_discover_finds_the_copier_its_copies_and_the_handmade_secret(
    box: Box, unique: str, tmp_path: Path
) -> None:
    cluster = copier_cluster(box, unique)
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
    cluster = copier_cluster(box, unique)
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


def _labelled(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as a migration leaves it: every Secret (all are mapped here) carries the two
    labels of the operator's Secret cache besides its own; nothing else differs."""
    out = {}
    for key, value in state.items():
        if isinstance(value, tuple):
            data, labels, annotations = value
            value = (data, {**(labels or {}), **conv.OPERATOR_CACHE_LABELS}, annotations)
        out[key] = value
    return out


def test_namespaces_move_with_the_same_bytes_and_roll_back_exactly(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(box, cluster, unique, tmp_path)
    before = cluster_state(box, cluster)
    namespaces = [cluster["source"], *cluster["targets"]]
    planned = task_cli(
        "migrate.namespace", env, "--ns", namespaces[0], "--catalog", str(catalog), "--plan"
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    for step in (
        f"create  backup {namespaces[0]}",
        f"create  shared/{cluster['secret']}",
        f"update  Secret {namespaces[0]}/{cluster['secret']}: labels "
        "app.kubernetes.io/managed-by=hashicorp-vso, app.kubernetes.io/name=vault-secrets-operator",
        f"create  VaultStaticSecret {namespaces[0]}/{cluster['secret']}",
        f"check   Secret {namespaces[0]}/{cluster['secret']}: wait until",
        f"update  CronJob {namespaces[0]}/secret-copier",
        f"check   Secret {namespaces[0]}/{cluster['secret']}: its labels still there",
    ):
        assert step in planned.stdout, planned.stdout
    # the labels go on before the operator is told to write into the Secret
    out = planned.stdout
    assert out.index(f"update  Secret {namespaces[0]}/") < out.index("create  VaultStaticSecret")
    assert cluster_state(box, cluster) == before
    assert not (tmp_path / "state" / "migrate").exists()
    moved = migrate_ns(env, catalog, *namespaces)
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    after = cluster_state(box, cluster)
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
    assert reports[f"ing-{unique}"]["labelled"] == sorted(["database", cluster["secret"]])
    assert reports[namespaces[1]]["values_moved"] == []  # the shared value was there already
    assert {k: v for k, v in after.items() if k != "copier"} == {
        k: v for k, v in _labelled(before).items() if k != "copier"
    }  # same bytes, the operator's two labels added, no rollout restart
    # ... and none afterwards: the operator re-reads every Secret once and restarts nothing
    quiet_for_one_refresh(box, namespaces)
    kube = Kube(box.state.kubeconfig)
    for ns in namespaces:  # written by the operator now (its _raw key is there)
        assert "_raw" in (kube.read_secret(ns, cluster["secret"]) or {})
    status = task_cli("status", env, "--catalog", str(catalog), "--json")
    assert status.returncode == 0, status.stderr[-2000:]
    assert {r["state"] for r in json.loads(status.stdout)} == {"synced"}, status.stdout
    # the whole bootstrap with the catalog leaves the migrated Secrets to the operator, as
    # handed over; its quiet check is on (nothing is pending, so it watches only a storm
    # going on, and there is none)
    booted = task_cli("bootstrap", env, "--catalog", str(catalog))
    assert booted.returncode == 0, booted.stdout[-3000:] + booted.stderr[-3000:]
    assert "operator: no-change" in booted.stdout + booted.stderr, booted.stderr[-3000:]
    again = migrate_ns(env, catalog, *namespaces)
    assert again.returncode == 0 and "migrated already" in again.stdout
    back = rollback_ns(env, catalog, *reversed(namespaces))
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert cluster_state(box, cluster) == before
    for ns in namespaces:
        assert "_raw" not in (kube.read_secret(ns, cluster["secret"]) or {})
        labels = kube.read_secret_object(ns, cluster["secret"]).metadata.labels
        assert not conv.operator_cache_sees(labels), labels  # the operator's labels went too
        assert kube.list("secrets.hashicorp.com/v1beta1", "VaultStaticSecret", namespace=ns) == []


def test_a_migration_killed_mid_namespace_rolls_back_exactly(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(box, cluster, unique, tmp_path)
    before = cluster_state(box, cluster)
    first, second = cluster["source"], cluster["targets"][0]
    assert migrate_ns(env, catalog, first).returncode == 0
    killed = migrate_ns(env, catalog, second, failpoints="migrate:applied=kill")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    back = rollback_ns(env, catalog, second, first)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert cluster_state(box, cluster) == before


def test_a_migration_killed_after_labelling_carries_on_and_restarts_nothing(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(box, cluster, unique, tmp_path)
    before = cluster_state(box, cluster)
    ns, secret = cluster["source"], cluster["secret"]
    killed = migrate_ns(env, catalog, ns, failpoints="migrate:labelled=kill")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    labels = Kube(box.state.kubeconfig).read_secret_object(ns, secret).metadata.labels
    assert conv.operator_cache_sees(labels), labels
    planned = task_cli("migrate.namespace", env, "--ns", ns, "--catalog", str(catalog), "--plan")
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert f"update  Secret {ns}/" not in planned.stdout, planned.stdout  # labelled already
    assert f"create  VaultStaticSecret {ns}/{secret}" in planned.stdout, planned.stdout
    again = migrate_ns(env, catalog, ns)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = cluster_state(box, cluster)
    assert after[f"{ns}/{secret}"] == _labelled(before)[f"{ns}/{secret}"]
    assert after[f"{ns}/revision"] == before[f"{ns}/revision"]
    quiet_for_one_refresh(box, [ns])
    back = rollback_ns(env, catalog, ns)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert cluster_state(box, cluster) == before


def test_a_copier_that_replaces_a_secret_before_it_is_stopped_starts_no_storm(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """A copier run between the labelling and the copier's suspension that replaces the
    Secret (``kubectl replace``, or delete and create: the test plays it) takes the labels
    off, and the operator, writing into a Secret it did not create, never puts them back: the
    migration's re-check, once the copier is stopped, does."""
    cluster = copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(box, cluster, unique, tmp_path)
    before = cluster_state(box, cluster)
    ns, secret = cluster["source"], cluster["secret"]
    kube = Kube(box.state.kubeconfig)
    with held_at(
        "migrate:labelled",
        tmp_path,
        env,
        "--ns",
        ns,
        "--catalog",
        str(catalog),
        task="migrate.namespace",
    ) as held:
        assert conv.operator_cache_sees(kube.read_secret_object(ns, secret).metadata.labels)
        data = kube.read_secret(ns, secret) or {}
        kube.write_secret(ns, secret, data)  # the copier: the same data, replaced, no labels
        assert not conv.operator_cache_sees(kube.read_secret_object(ns, secret).metadata.labels)
    done = held.done
    assert done is not None
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "lost the labels of the operator's Secret cache" in done.stderr, done.stderr[-3000:]
    assert conv.operator_cache_sees(kube.read_secret_object(ns, secret).metadata.labels)
    assert cluster_state(box, cluster)[f"{ns}/revision"] == before[f"{ns}/revision"]
    quiet_for_one_refresh(box, [ns])
    back = rollback_ns(env, catalog, ns)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert cluster_state(box, cluster) == before


def test_different_values_for_one_shared_path_are_refused_and_nothing_is_written(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cluster = copier_cluster(box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(box, cluster, unique, tmp_path)
    drifted = cluster["targets"][1]
    Kube(box.state.kubeconfig).write_secret(
        drifted, cluster["secret"], {"application-key": b"other", "application-secret": b"x"}
    )
    before = cluster_state(box, cluster)
    refused = migrate_ns(env, catalog, cluster["source"])
    assert refused.returncode == 1
    secret = cluster["secret"]
    assert f"{cluster['source']}/{secret} and {drifted}/{secret} hold different values" in (
        refused.stderr
    ), refused.stderr[-2000:]
    assert cluster_state(box, cluster) == before
    assert not (tmp_path / "state" / "migrate" / f"{cluster['source']}.json").exists()
    assert read_kv(admin_api(box), f"shared/{secret}") == ({}, 0)  # nothing in Vault


# -- issue 23: what a migration must refuse, and what it must leave ------------------------


def _secret_object(
    ns: str,
    name: str,
    data: dict[str, bytes],
    kind: str = "Opaque",
    immutable: bool = False,
    **meta: Any,
) -> dict[str, Any]:
    import base64

    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, **meta},
        "type": kind,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    if immutable:
        obj["immutable"] = True
    return obj


def test_issue23_finding2_a_service_account_token_aimed_at_a_shared_path_reaches_no_vault(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """The issue's proof, end to end: a victim namespace with a ServiceAccount token bound to
    cluster-admin (and a TLS key), a catalog whose victim service reads ``shared/loot`` with
    that Secret as destination (and ``shared/keys`` with the TLS Secret), a second service
    reading both paths. migrate.namespace refuses, naming each Secret, path and why; nothing
    reaches Vault, nothing changes in the cluster, no backup is written."""
    kube = Kube(box.state.kubeconfig)
    victim, thief = f"victim-{unique}", f"thief-{unique}"
    for ns in (victim, thief):
        kube.ensure_namespace(ns)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "admin", "namespace": victim},
        },
        field_manager="test",
    )
    kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"admin-{unique}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "admin", "namespace": victim}],
        },
        field_manager="test",
    )
    token = f"token-{unique}-value".encode()
    kube.create_object(
        _secret_object(
            victim,
            "admin-sa-token",
            {"token": token},
            "kubernetes.io/service-account-token",
            annotations={"kubernetes.io/service-account.name": "admin"},
        )
    )
    key = f"tls-key-{unique}".encode()
    kube.create_object(
        _secret_object(
            victim, "ingress-tls", {"tls.crt": b"crt", "tls.key": key}, "kubernetes.io/tls"
        )
    )
    doc = {
        "version": 1,
        "name": f"loot{unique}",
        "shared": {
            "loot": {"keys": {"token": None}},
            "keys": {"keys": {"tls.crt": None, "tls.key": None}},
        },
        "services": [
            {
                "name": f"victim-{unique}",
                "namespace": victim,
                "reads": [
                    {"path": "shared/loot", "destination": "admin-sa-token"},
                    {"path": "shared/keys", "destination": "ingress-tls"},
                ],
            },
            {
                "name": f"thief-{unique}",
                "namespace": thief,
                "reads": [{"path": "shared/loot"}, {"path": "shared/keys"}],
            },
        ],
    }
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc))
    env = box.cli_env(tmp_path / "state")

    def cluster() -> Any:
        """The Secrets' labels and data (but the keys the cluster's token controller fills
        into the token Secret in its own time: ca.crt and namespace)."""
        return sorted(
            (
                o["metadata"]["name"],
                o["metadata"].get("labels"),
                {
                    k: v
                    for k, v in (o.get("data") or {}).items()
                    if k not in ("ca.crt", "namespace")
                },
            )
            for ns in (victim, thief)
            for o in kube.list("v1", "Secret", namespace=ns)
        )

    before = cluster()
    real = (kube.read_secret(victim, "admin-sa-token") or {}).get("token", token)
    for extra in ([], ["--plan"], ["--allow-type", "kubernetes.io/tls"]):
        refused = task_cli(
            "migrate.namespace", env, "--ns", victim, "--catalog", str(catalog), *extra
        )
        out = refused.stdout + refused.stderr
        assert refused.returncode == 1, (extra, out[-3000:])
        assert (
            f"Secret {victim}/admin-sa-token: not moved to shared/loot: a "
            "kubernetes.io/service-account-token Secret is a ServiceAccount's credential"
        ) in refused.stderr, refused.stderr[-3000:]
        assert f"Secret {victim}/ingress-tls: not moved to shared/keys: " in refused.stderr
        if extra == ["--allow-type", "kubernetes.io/tls"]:
            assert f"{thief} holds no Secret keys" in refused.stderr, refused.stderr[-3000:]
        else:
            assert "only '--allow-type kubernetes.io/tls' moves it" in refused.stderr
        assert "Traceback" not in out
        for value in (token, key, real):
            assert value.decode() not in out
    usage = task_cli(
        "migrate.namespace",
        env,
        "--ns",
        victim,
        "--catalog",
        str(catalog),
        "--allow-type",
        "kubernetes.io/service-account-token",
    )
    assert usage.returncode == 2, usage.stderr[-2000:]
    assert "a ServiceAccount's token never moves into Vault" in usage.stderr
    api = admin_api(box)
    assert read_kv(api, "shared/loot") == ({}, 0)  # nothing reached Vault
    assert read_kv(api, "shared/keys") == ({}, 0)
    assert cluster() == before
    assert not (tmp_path / "state" / "migrate").exists()
    assert kube.list("secrets.hashicorp.com/v1beta1", "VaultStaticSecret", namespace=victim) == []


#: Issue 23, finding 4: a CronJob that reads its own TLS Secret and applies a ConfigMap.
CA_BUNDLE = """set -e
kubectl get secret web-tls -n {ns} -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > /tmp/ca.crt
kubectl create configmap ca-bundle -n {ns} --from-file=/tmp/ca.crt --dry-run=client -o yaml \\
  | kubectl apply -f -
"""


def test_issue23_finding4_a_cronjob_applying_a_configmap_from_its_own_tls_is_not_deleted(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """The finding's scenario: the namespace migrates (its Opaque Secret handed over to the
    operator, same bytes); the CronJob stays as it was, neither deleted nor suspended, and the
    plan says why."""
    kube = Kube(box.state.kubeconfig)
    ns = f"web-{unique}"
    kube.ensure_namespace(ns)
    kube.create_object(
        _secret_object(
            ns, "web-tls", {"tls.crt": b"c", "tls.key": b"k", "ca.crt": b"ca"}, "kubernetes.io/tls"
        )
    )
    kube.write_secret(ns, "config", {"password": f"pw-{unique}".encode()})
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "ca-bundle", "namespace": ns},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [
                                {
                                    "name": "bundle",
                                    "image": "bitnami/kubectl:1.31",
                                    "command": ["/bin/sh", "-c"],
                                    "args": [CA_BUNDLE.format(ns=ns)],
                                }
                            ],
                        }
                    }
                }
            },
        },
    }
    kube.apply(cron, field_manager="test")
    cronjob = kube.get("batch/v1", "CronJob", "ca-bundle", ns)
    assert cronjob is not None
    spec = cronjob["spec"]
    doc = {
        "version": 1,
        "name": f"web{unique}",
        "services": [
            {
                "name": ns,
                "namespace": ns,
                "refreshAfter": "10s",
                "secrets": {"config": {"keys": {"password": None}}},
            }
        ],
    }
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(doc))
    env = box.cli_env(tmp_path / "state")
    configured = task_cli("bootstrap", env, "--catalog", str(catalog), "--only", "vault-config")
    assert configured.returncode == 0, configured.stdout[-2000:] + configured.stderr[-2000:]
    moved = migrate_ns(env, catalog, ns)
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    assert (
        f"check   CronJob {ns}/ca-bundle: writes no Secret into another namespace: left as it is"
    ) in moved.stdout, moved.stdout[-3000:]
    after = kube.get("batch/v1", "CronJob", "ca-bundle", ns)
    assert after is not None, "the CronJob was deleted"
    assert after["spec"] == spec  # not suspended either
    report = json.loads((tmp_path / "state" / "reports" / f"migrate-{ns}.json").read_text())
    assert report["copiers"] == [] and report["secrets_synced"] == ["config"]
    assert "_raw" in (kube.read_secret(ns, "config") or {})  # handed over to the operator
    back = rollback_ns(env, catalog, ns)
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    assert cast(JsonObject, kube.get("batch/v1", "CronJob", "ca-bundle", ns))["spec"] == spec


def test_issue23_finding10_discover_finds_replicas_and_names_what_cannot_migrate(
    box: Box, unique: str, tmp_path: Path
) -> None:
    """kubernetes-replicator and reflector copies are copies of their source (never the
    source, even when older); a Job making a Secret from literals is found; a 700 KB Secret,
    an immutable one, a name with dots, one over 63 characters and a ``_raw`` key are listed
    as not migratable, with why; the fragment is a valid catalog naming them in comments."""
    kube = Kube(box.state.kubeconfig)
    src, a, b = f"src-{unique}", f"rep-{unique}", f"ref-{unique}"
    for ns in (src, a, b):
        kube.ensure_namespace(ns)
    ovh = {"application-key": f"ak-{unique}".encode()}
    # the copies first: older than their source (a source re-created later)
    kube.create_object(
        _secret_object(
            a, "ovh", ovh, annotations={"replicator.v1.mittwald.de/replicate-from": f"{src}/ovh"}
        )
    )
    kube.create_object(
        _secret_object(
            b, "ovh", ovh, annotations={"reflector.v1.k8s.emberstack.com/reflects": f"{src}/ovh"}
        )
    )
    kube.create_object(
        _secret_object(src, "ovh", ovh, annotations={"replicator.v1.mittwald.de/replicate-to": a})
    )
    long = "l" * 64
    kube.create_object(_secret_object(src, "bundle", {"blob": b"x" * (700 * 1024)}))
    kube.create_object(_secret_object(src, "frozen", {"k": b"v"}, immutable=True))
    kube.create_object(_secret_object(src, "tls.example.com", {"k": b"v"}))
    kube.create_object(_secret_object(src, long, {"k": b"v"}))
    kube.create_object(_secret_object(src, "raw", {"_raw": b"{}", "k": b"v"}))
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "seed", "namespace": src},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "seed",
                                "image": "bitnami/kubectl:1.31",
                                "command": [
                                    "kubectl",
                                    "create",
                                    "secret",
                                    "generic",
                                    "db",
                                    "--from-literal=password=$(PW)",
                                    "-n",
                                    a,
                                ],
                            }
                        ],
                    }
                },
            },
        },
        field_manager="test",
    )
    env = box.cli_env(tmp_path / "state")
    out = tmp_path / "fragment.yaml"
    args = [x for ns in (src, a, b) for x in ("--namespace", ns)]
    found = task_cli(
        "migrate.discover", env, *args, "--out", str(out), "--catalog", str(tmp_path / "none")
    )
    assert found.returncode == 0, found.stdout[-3000:] + found.stderr[-3000:]
    text = " ".join(found.stdout.split())
    assert f"Job {src}/seed" in text and f"makes {a}/db" in text, text[-3000:]
    assert f"copy of {src}/ovh" in found.stdout
    for name in ("bundle", "frozen", "tls.example.com", "raw"):
        assert f"{src}/{name}" in text and "not migratable" in text, name
    fragment = out.read_text()  # the table folds long cells: the reasons, whole, are here
    assert f"#   {src}/bundle: 716804 bytes of data" in fragment, fragment[:3000]
    assert f"#   {src}/frozen: it is immutable" in fragment
    from bootstrap.model.catalog import parse_catalog

    cat = parse_catalog(fragment, str(out))
    by_ns = {s.namespace: s for s in cat.services}
    for ns in (src, a, b):  # one copy, in three namespaces: one shared path
        assert [(r.path, r.destination) for r in by_ns[ns].reads] == [("shared/ovh", "ovh")]
    assert "bundle" not in by_ns[src].secrets
    for name in ("bundle", "frozen", "tls.example.com", long, "raw"):
        assert f"#   {src}/{name}: " in fragment, name
    assert ovh["application-key"].decode() not in found.stdout + found.stderr + fragment
