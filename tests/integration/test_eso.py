"""The External Secrets Operator 2.9.0 as the sync engine (``sync_engine: eso``), on a sandbox
that runs ESO and no VSO: the first bootstrap through the CLI syncs every Secret of the
example catalog through ESO (verify compares each with Vault); the hand-over merges into the
placeholders Terraform made and re-runs change, write and restart nothing; a hand-written
ExternalSecret reading another service's path through its namespace's store never gets data
(OpenBao refuses the store's role) and ``status`` says so with Vault's 403; rotation rolls the
restart targets out through Stakater Reloader; a DR restore onto a new cluster comes back
synced through ESO. Every ESO test lives in this file: Reloader binds a fixed port, so one
sandbox with it per machine (xdist gives a file to one worker)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.commands.status import collect
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import eso
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import syncs
from bootstrap.model.operator_api import VSS_CRD
from bootstrap.runtime import vso
from tests.conftest import EXAMPLE
from tests.integration.conftest import TOOLS_DIR, Box
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
    generated_catalog,
    invoke_cli,
    revision,
    run,
    statuses,
    task_cli,
    verified,
    wait_until,
    workload,
)

ALL_PHASES = ["placeholders", "vault-ready", "vault-config", "operator", "populate", "verify"]


def test_the_first_bootstrap_syncs_every_secret_through_eso(
    eso_box: Box, first_run_eso: dict[str, Any]
) -> None:
    report = json.loads(first_run_eso["report"])
    phases = {p["name"]: p["status"] for p in report["phases"]}
    assert phases["operator"] == "applied" and phases["verify"] in ("applied", "no-change")
    kube = Kube(eso_box.state.kubeconfig)
    cat = load_catalog(EXAMPLE)
    api = admin_api(eso_box)
    # nothing of VSO's: ESO alone wrote these Secrets
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", VSS_CRD) is None
    for s in syncs(cat):
        es = kube.get(eso.ESO_API, "ExternalSecret", s.destination, s.namespace)
        assert eso.ready(es) == "SecretSynced", (s.destination, es and es.get("status"))
        assert es is not None and es["spec"]["target"]["creationPolicy"] == "Merge"
        store = kube.get(eso.ESO_API, "SecretStore", eso.store_name(s.service), s.namespace)
        assert eso.ready(store) is not None, store and store.get("status")
        secret = kube.read_secret_object(s.namespace, s.destination)
        assert secret.metadata.labels[eso.MANAGED_LABEL] == "true"
        assert not secret.metadata.owner_references  # merged into Terraform's placeholder
        data, _ = read_kv(api, s.kv_path)
        assert vso.classify(data, kube.read_secret(s.namespace, s.destination)) == "synced"
    rows = collect(cat, kube, api, "eso")
    assert {r.state for r in rows} == {"synced"}, [(r.secret, r.state, r.detail) for r in rows]
    assert all(r.service != "-" for r in rows)
    assert all("Updated" in r.last_sync or "Created" in r.last_sync for r in rows), rows


def test_three_reruns_change_write_and_restart_nothing(
    eso_box: Box, first_run_eso: dict[str, Any], tmp_path: Path
) -> None:
    """Through the CLI, as a user re-runs it: every phase no-change, three times; OpenTofu
    leaves ESO's label and annotation on the placeholders alone, so neither rewrites the
    other's fields; the Secrets keep their resourceVersion (ESO refreshed them and found
    nothing to write)."""
    kube = Kube(eso_box.state.kubeconfig)
    cat = load_catalog(EXAMPLE)
    before = {
        (s.namespace, s.destination): kube.read_secret_object(
            s.namespace, s.destination
        ).metadata.resource_version
        for s in syncs(cat)
    }
    for i in range(3):
        report = tmp_path / f"rerun-{i}.json"
        invoke_cli(["bootstrap", "--report", str(report)], first_run_eso["env"])
        phases = {p["name"]: p["status"] for p in json.loads(report.read_text())["phases"]}
        changed = {k: v for k, v in phases.items() if v not in ("no-change", "skipped")}
        assert changed == {}, phases
    after = {key: kube.read_secret_object(*key).metadata.resource_version for key in sorted(before)}
    assert after == before


def test_a_placeholder_is_handed_over_by_merge_and_keeps_its_identity(
    eso_box: Box, first_run_eso: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"em{unique}"
    cat = generated_catalog(p, {"config": ["a", "b"]}, refresh="5s")
    s = eso_box.settings(state_dir=tmp_path)
    kube = Kube(eso_box.state.kubeconfig)
    results, _ = run(s, cat, ["placeholders"])
    assert statuses(results) == {"placeholders": "applied"}
    placeholder = kube.read_secret_object(p, "config")
    assert vso.classify({"a": "x"}, kube.read_secret(p, "config")) == "placeholder"
    workload(kube, p, "Deployment", "web")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")

    results, _ = run(s, cat, ALL_PHASES)
    assert verified(results), [(r.name, r.status, r.error) for r in results]
    filled = kube.read_secret_object(p, "config")
    assert filled.metadata.uid == placeholder.metadata.uid  # the same Secret, filled
    assert not filled.metadata.owner_references
    # marked for Reloader to ignore during the hand-over only
    assert eso.RELOADER_IGNORE not in (filled.metadata.annotations or {})
    data, _ = read_kv(admin_api(eso_box), f"{p}/config")
    assert vso.classify(data, kube.read_secret(p, "config")) == "synced"
    version = filled.metadata.resource_version

    again, _ = run(s, cat, ALL_PHASES)
    assert set(statuses(again).values()) == {"no-change"}, statuses(again)
    # ESO refreshes every 5 s here: wait for two refreshes, then nothing was rewritten
    es = kube.get(eso.ESO_API, "ExternalSecret", "config", p)
    assert es is not None
    first = es["status"]["refreshTime"]

    def refreshed_twice() -> bool:
        now = kube.get(eso.ESO_API, "ExternalSecret", "config", p) or {}
        return bool((now.get("status") or {}).get("refreshTime", first) > first)

    wait_until(refreshed_twice, "ESO to refresh config again", timeout=30)
    assert kube.read_secret_object(p, "config").metadata.resource_version == version
    assert revision(kube, p, "Deployment", "web") == "1"


def test_an_external_secret_cannot_read_another_services_path_and_status_says_so(
    eso_box: Box, first_run_eso: dict[str, Any], unique: str
) -> None:
    """A hand-written ExternalSecret in webapp's namespace, through webapp's own store (its
    role), pointed at monitoring's private path: OpenBao refuses it, no Secret is written,
    and status lists it as an error with the 403."""
    kube = Kube(eso_box.state.kubeconfig)
    cat = load_catalog(EXAMPLE)
    webapp = next(s for s in cat.services if s.name == "webapp")
    other = next(s for s in syncs(cat) if s.service != "webapp" and s.namespace != "webapp")
    name = f"steal-{unique}"
    kube.apply(
        {
            "apiVersion": eso.ESO_API,
            "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": webapp.namespace},
            "spec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"name": eso.store_name("webapp"), "kind": "SecretStore"},
                "target": {"name": name},
                "dataFrom": [{"extract": {"key": other.kv_path}}],
            },
        }
    )
    try:

        def refused() -> Any:
            rows = collect(cat, kube, admin_api(eso_box), "eso")
            row = next((r for r in rows if r.secret == name), None)
            # ESO's event carries Vault's answer (its Ready condition only a generic message)
            failed = row is not None and row.state == "error" and "UpdateFailed" in row.detail
            return row if failed else None

        row = wait_until(refused, "ESO to report the refused read", timeout=60)
        assert row.service == "-"
        assert other.kv_path in row.vault_path and f"ExternalSecret {name}" in row.vault_path
        assert "403" in row.detail or "permission denied" in row.detail, row.detail
        assert kube.read_secret(webapp.namespace, name) is None  # never got data
    finally:
        kube.delete(eso.ESO_API, "ExternalSecret", name, webapp.namespace)


def test_rotation_rolls_out_each_restart_target_once_per_change_through_reloader(
    eso_box: Box, first_run_eso: dict[str, Any], tmp_path: Path
) -> None:
    """ESO restarts nothing; Stakater Reloader does, on the annotation verify puts on each
    restart target once its Secrets hold Vault's values: the re-run that annotates restarts
    nothing, the sentinel and the restore one rollout each, a bystander none."""
    kube = Kube(eso_box.state.kubeconfig)
    names = ("webapp", "webapp-worker", "bystander")
    for name in names:
        workload(kube, "webapp", "Deployment", name)
    for name in names:
        wait_until(lambda n=name: revision(kube, "webapp", "Deployment", n), f"{name} revision")
    start = {n: revision(kube, "webapp", "Deployment", n) for n in names}
    report = tmp_path / "annotate.json"
    invoke_cli(["bootstrap", "--report", str(report)], first_run_eso["env"])
    for name in ("webapp", "webapp-worker"):
        deployment = kube.get("apps/v1", "Deployment", name, "webapp") or {}
        value = deployment["metadata"]["annotations"][eso.RELOAD_ANNOTATION]
        assert "config" in value.split(","), value
    assert eso.RELOAD_ANNOTATION not in (
        (kube.get("apps/v1", "Deployment", "bystander", "webapp") or {})["metadata"].get(
            "annotations"
        )
        or {}
    )
    assert {n: revision(kube, "webapp", "Deployment", n) for n in names} == start

    api = admin_api(eso_box)
    original, version = read_kv(api, "webapp/config")
    proc = invoke_cli(["verify.rotation", "webapp/config"], first_run_eso["env"])
    assert "rotation test passed for webapp/config" in proc.stdout
    for name in ("webapp", "webapp-worker"):
        rev = int(start[name])
        assert revision(kube, "webapp", "Deployment", name) == str(rev + 2), name
        assert f"Deployment/{name}: revisions {rev} -> {rev + 1} -> {rev + 2}" in proc.stdout
    assert revision(kube, "webapp", "Deployment", "bystander") == start["bystander"]
    data, now = read_kv(api, "webapp/config")
    assert data == original and now == version + 2
    assert vso.classify(original, kube.read_secret("webapp", "config")) == "synced"


def test_a_dr_restore_onto_a_new_cluster_brings_every_secret_back_through_eso(
    eso_box: Box, first_run_eso: dict[str, Any], tmp_path: Path
) -> None:
    """dr.snapshot of the session's ESO sandbox, then dr.restore onto a new one (new PKI, new
    ServiceAccount issuer, no demo values typed again): every Secret comes back synced by ESO
    with the original values. The new cluster runs ESO without Reloader (one per machine)."""
    kube_a = Kube(eso_box.state.kubeconfig)
    cat = load_catalog(EXAMPLE)
    want = {
        (s.namespace, s.destination): kube_a.read_secret(s.namespace, s.destination)
        for s in syncs(cat)
    }
    snap = tmp_path / "offsite" / "vault.snap"
    snap.parent.mkdir()
    taken = task_cli("dr.snapshot", first_run_eso["env"], "--out", str(snap))
    assert taken.returncode == 0, taken.stdout[-2000:] + taken.stderr[-2000:]
    # the custody folder off-site, as a whole: the record and the bootstrap-admin credential
    shutil.copytree(eso_box.directory / "custody", tmp_path / "offsite" / "custody")
    keys = tmp_path / "offsite" / "custody" / "vault-init.json"

    directory = tmp_path / "b"
    options = sandbox.OperatorOptions(engine="eso", reloader=False)
    state = sandbox.up(directory, TOOLS_DIR, timeout=90, operator=options)
    try:
        b = Box(state, directory, [])
        assert state.sync_engine == "eso" and state.sa_issuer != eso_box.state.sa_issuer
        restored = task_cli(
            "dr.restore",
            b.cli_env(tmp_path / "b-state"),
            "--catalog",
            str(EXAMPLE),
            "--snapshot",
            str(snap),
            "--keys",
            str(keys),
        )
        assert restored.returncode == 0, restored.stdout[-4000:] + restored.stderr[-4000:]
        kube_b = Kube(state.kubeconfig)
        for s in syncs(cat):
            es = kube_b.get(eso.ESO_API, "ExternalSecret", s.destination, s.namespace)
            assert eso.ready(es) == "SecretSynced", (s.destination, es and es.get("status"))
            got = kube_b.read_secret(s.namespace, s.destination)
            assert got == want[(s.namespace, s.destination)], s.destination
    finally:
        sandbox.down(directory)


def test_verify_carries_on_through_a_killed_eso(
    eso_box: Box,
    first_run_eso: dict[str, Any],
    unique: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ESO SIGKILLed before the operator phase, started again while verify waits: verify
    keeps waiting (placeholders are pending, not failures), then passes once ESO is back,
    well before the catalog's 1 h refresh."""
    caplog.set_level(logging.INFO, logger="bootstrap.core.waits")
    p = f"ek{unique}"
    cat = generated_catalog(p, {"config": ["a"], "credentials": ["b"]}, refresh="1h")
    s = eso_box.settings(state_dir=tmp_path)
    kube = Kube(eso_box.state.kubeconfig)
    state = sandbox.SandboxState.load(eso_box.directory)
    assert state is not None
    proc = state.process("external-secrets")
    os.kill(proc.pid, signal.SIGKILL)
    try:
        wait_until(lambda: not proc.alive(), "ESO to die")
        results, _ = run(s, cat, ["placeholders", "vault-config", "operator", "populate"])
        assert set(statuses(results).values()) <= {"applied", "no-change"}, results
        outcome: list[Any] = []
        waiter = threading.Thread(
            target=lambda: outcome.extend(run(s, cat, ["verify"])[0]), daemon=True
        )
        waiter.start()
        wait_until(
            lambda: (
                any("pending" in r.getMessage() for r in caplog.records) or not waiter.is_alive()
            ),
            "verify to wait",
        )
        assert waiter.is_alive()
        assert vso.classify({"a": "x"}, kube.read_secret(p, "config")) == "placeholder"
        started = time.monotonic()
    finally:
        if not proc.alive():
            sandbox.restart(eso_box.directory, "external-secrets")
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert statuses(outcome) == {"verify": "applied"}, outcome
    assert time.monotonic() - started < 60
    api = admin_api(eso_box)
    for name in ("config", "credentials"):
        data, _ = read_kv(api, f"{p}/{name}")
        assert vso.classify(data, kube.read_secret(p, name)) == "synced"


def _reload_notes(kube: Kube, namespaces: list[str]) -> dict[str, str | None]:
    return {
        ns: (
            (kube.get("apps/v1", "Deployment", "app", ns) or {})["metadata"].get("annotations")
            or {}
        ).get(eso.RELOAD_ANNOTATION)
        for ns in namespaces
    }


def test_namespaces_move_off_a_copier_onto_eso_and_roll_back_exactly(
    eso_box: Box, first_run_eso: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """migrate.namespace with sync_engine eso: each namespace's Secrets keep their bytes and
    their identity (ESO merges into them, adding only its label and data hash), nothing
    rolls out, each Deployment is named for Reloader, and a change in Vault then rolls each
    out once; the bootstrap leaves the migrated objects as they are; the rollback
    puts Secrets, copier and annotations back as they were, restarting nothing."""
    cluster = copier_cluster(eso_box, unique, copied=f"ovh-{unique}")
    catalog, env = catalog_for(eso_box, cluster, unique, tmp_path)
    namespaces = [cluster["source"], *cluster["targets"]]
    kube = Kube(eso_box.state.kubeconfig)
    before = cluster_state(eso_box, cluster)
    uids = {
        ns: cast(JsonObject, kube.get("v1", "Secret", cluster["secret"], ns))["metadata"]["uid"]
        for ns in namespaces
    }
    planned = task_cli(
        "migrate.namespace", env, "--ns", namespaces[0], "--catalog", str(catalog), "--plan"
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    for step in (
        f"create  SecretStore {namespaces[0]}/",
        f"create  ExternalSecret {namespaces[0]}/{cluster['secret']}",
        f"check   Secret {namespaces[0]}/{cluster['secret']}: wait until ESO synced it",
        f"update  Deployment {namespaces[0]}/app: {eso.RELOAD_ANNOTATION}={cluster['secret']}",
    ):
        assert step in planned.stdout, planned.stdout
    assert "VaultStaticSecret" not in planned.stdout and "labels app.kubernetes.io" not in (
        planned.stdout
    )

    moved = migrate_ns(env, catalog, *namespaces)
    assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
    after = cluster_state(eso_box, cluster)
    assert after["copier"] is None
    for key, value in before.items():
        if not isinstance(value, tuple):
            continue
        data, labels, annotations = value
        now_data, now_labels, now_annotations = after[key]
        assert now_data == data, key  # the same bytes, no key added or lost
        assert now_labels == {**(labels or {}), eso.MANAGED_LABEL: "true"}, key
        assert set(now_annotations or {}) - set(annotations or {}) == {eso.DATA_HASH_ANNOTATION}, (
            key
        )
    assert {k: v for k, v in after.items() if k.endswith("/revision")} == {
        k: v for k, v in before.items() if k.endswith("/revision")
    }  # no rollout on the hand-over, none later
    quiet_for_one_refresh(eso_box, namespaces)
    for ns in namespaces:
        assert (
            cast(JsonObject, kube.get("v1", "Secret", cluster["secret"], ns))["metadata"]["uid"]
            == uids[ns]
        )
    notes = _reload_notes(kube, namespaces)
    assert notes[cluster["targets"][1]] == f"database,{cluster['secret']}"
    assert notes[namespaces[0]] == cluster["secret"]
    status = task_cli("status", env, "--catalog", str(catalog), "--json")
    assert status.returncode == 0, status.stderr[-2000:]
    assert {r["state"] for r in json.loads(status.stdout)} == {"synced"}, status.stdout
    booted = task_cli("bootstrap", env, "--catalog", str(catalog))
    assert booted.returncode == 0, booted.stdout[-3000:] + booted.stderr[-3000:]
    assert "operator: no-change" in booted.stdout + booted.stderr, booted.stderr[-3000:]

    # a change in Vault rolls each reader's Deployment out once, through Reloader (ESO
    # refreshes every 10 s here)
    api = admin_api(eso_box)
    path = f"shared/{cluster['secret']}"
    values, version = read_kv(api, path)
    changed = {k: f"{v}-rotated" for k, v in values.items()}
    api.write(f"secret/data/{path}", {"options": {"cas": version}, "data": changed})
    for ns in namespaces:
        wait_until(lambda ns=ns: revision(kube, ns, "Deployment", "app") == "2", f"{ns}/app")
        secret = kube.read_secret(ns, cluster["secret"]) or {}
        assert {k: v.decode() for k, v in secret.items()} == changed, ns

    back = rollback_ns(env, catalog, *reversed(namespaces))
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
    restored = cluster_state(eso_box, cluster)
    assert {k: v for k, v in restored.items() if not k.endswith("/revision")} == {
        k: v for k, v in before.items() if not k.endswith("/revision")
    }
    assert {k: v for k, v in restored.items() if k.endswith("/revision")} == {
        f"{ns}/revision": "2" for ns in namespaces
    }  # the rollback rolled nothing out, and nothing comes late
    quiet_for_one_refresh(eso_box, namespaces)
    assert _reload_notes(kube, namespaces) == {ns: None for ns in namespaces}
    for ns in namespaces:
        assert kube.list(eso.ESO_API, "ExternalSecret", namespace=ns) == []
        assert kube.list(eso.ESO_API, "SecretStore", namespace=ns) == []
