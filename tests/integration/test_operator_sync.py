"""The product against the real Vault Secrets Operator, on both versions it is proven with
(VSO 1.4.1, what users run, and v0.1.0; the ``core`` fixture): the first bootstrap syncs
every Secret of the example catalog, the in-place hand-over keeps the Terraform-created
Secret, a re-run changes and restarts nothing, rotation restarts exactly the restart targets
(one new revision per change), and a VaultStaticSecret cannot read another service's path.
On 1.4.1 alone: a restart storm made on purpose is seen by status and fails verify, and a
bootstrap ends it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.commands.status import collect
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, RestartTarget, load_catalog
from bootstrap.model.domain import VSO_API
from bootstrap.phases.registry import registered
from bootstrap.runtime import vso
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box, Core
from tests.integration.helpers import (
    admin_api,
    events_of,
    generated_catalog,
    invoke_cli,
    operator_reconciles,
    revision,
    run,
    statuses,
    verified,
    wait_until,
    workload,
)

ALL_PHASES = [p.name for p in registered()]
#: The test catalogs' refresh period: short, so that a quiet period is a few seconds.
REFRESH = "5s"


def sandbox_shell(box: Box) -> dict[str, str]:
    """The environment after ``eval "$(invoke sandbox.env)"``: KUBECONFIG, BAO_ADDR and
    VAULT_ADDR from the task itself, and no other product setting but where the sandbox is."""
    out = invoke_cli(["sandbox.env"], {"INVOKE_BOOTSTRAP_SANDBOX_DIR": str(box.directory)})
    env = {"INVOKE_BOOTSTRAP_SANDBOX_DIR": str(box.directory)}
    # the example catalog's command source: allowed as examples/demo.env does for the shell
    env["INVOKE_BOOTSTRAP_CATALOG_COMMANDS"] = "allow"
    for line in out.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    assert {"KUBECONFIG", "BAO_ADDR", "VAULT_ADDR"} <= set(env)
    return env


def test_first_bootstrap_exits_only_once_every_secret_is_synced(core: Core) -> None:
    box = core.box
    report = json.loads(core.first_run["report"])
    phases = {p["name"]: p["status"] for p in report["phases"]}
    assert report["ok"] and phases["verify"] == "applied", phases
    assert 0 < report["populate_to_verified_seconds"] < 120
    # `invoke status` in the shell a user gets from `eval "$(invoke sandbox.env)"`
    proc = invoke_cli(["status", "--json"], sandbox_shell(box))
    rows = [r for r in json.loads(proc.stdout) if r["service"] != "-"]
    assert len(rows) == 13
    assert {r["state"] for r in rows} == {"synced"}, [r for r in rows if r["state"] != "synced"]
    assert all("Secret" in r["last_sync"] for r in rows)
    # what the operator wrote: Vault's keys, Vault's values, plus its own _raw
    kube = Kube(box.state.kubeconfig)
    data, _ = read_kv(admin_api(box), "infrastructure/database")
    secret = kube.read_secret("webapp", "database")
    assert secret is not None and set(secret) == {*data, vso.RAW_KEY}
    assert all(secret[k] == v.encode() for k, v in data.items())
    # the operator phase said which operator it found
    kind = "current Vault Secrets Operator" if box.current_operator else "v0.1.0 kind"
    assert kind in core.first_run["output"], core.first_run["output"][-3000:]


def _catalog(p: str) -> Catalog:
    return generated_catalog(
        p,
        {"config": ["a", "b"]},
        refresh=REFRESH,
        restart=[("Deployment", "web"), ("StatefulSet", "db")],
    )


def _watched(p: str, *targets: tuple[str, str]) -> list[vso.Watched]:
    return [
        vso.Watched(p, RestartTarget(kind=k, name=n), (f"{p}/config",), 5.0) for k, n in targets
    ]


def test_inplace_handover_keeps_the_placeholder_secret_and_a_rerun_restarts_nothing(
    core: Core, unique: str, tmp_path: Path
) -> None:
    box = core.box
    p = f"ih{unique}"
    cat = _catalog(p)
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    results, _ = run(s, cat, ["placeholders"])
    assert statuses(results) == {"placeholders": "applied"}
    placeholder = kube.read_secret_object(p, "config")
    assert vso.classify({"a": "x"}, kube.read_secret(p, "config")) == "placeholder"
    # made visible to a current operator's Secret cache, and marked as the product's
    assert conv.OPERATOR_CACHE_LABELS.items() <= placeholder.metadata.labels.items()
    assert placeholder.metadata.labels[conv.SECRET_MANAGED_LABEL] == conv.MANAGED_BY_VALUE
    workload(kube, p, "Deployment", "web")
    workload(kube, p, "StatefulSet", "db")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")
    db_revision = wait_until(lambda: revision(kube, p, "StatefulSet", "db"), "db's revision")

    # the whole bootstrap, its quiet check included: the hand-over restarts nothing for one
    # refresh period after the last sync
    results, _ = run(s, cat, ALL_PHASES)
    assert verified(results), results
    filled = kube.read_secret_object(p, "config")
    assert filled.metadata.uid == placeholder.metadata.uid  # the same Secret, filled in place
    assert filled.metadata.labels == placeholder.metadata.labels
    assert not filled.metadata.owner_references  # still Terraform's, not the operator's
    data, _ = read_kv(admin_api(box), f"{p}/config")
    assert vso.classify(data, kube.read_secret(p, "config")) == "synced"

    again, _ = run(s, cat, ALL_PHASES)
    assert set(statuses(again).values()) == {"no-change"}, statuses(again)
    # Two refresh periods more, with the operator at work: nothing restarts (the product's
    # own watch raises on a restart no Vault write explains).
    before = operator_reconciles(box)
    vso.watch_quiet(kube, admin_api(box), _watched(p, ("Deployment", "web")), 10.0)
    assert operator_reconciles(box) > before
    if not box.current_operator:
        # v0.1.0 says each look that found nothing to do
        assert any(e.reason == "SecretSync" for e in events_of(kube, p, "config"))
    reasons = {e.reason for e in events_of(kube, p, "config")}
    assert "RolloutRestartTriggered" not in reasons and "SecretRotated" not in reasons, reasons
    assert revision(kube, p, "Deployment", "web") == "1"
    assert revision(kube, p, "StatefulSet", "db") == db_revision
    assert kube.read_secret_object(p, "config").metadata.uid == placeholder.metadata.uid


def test_rotation_rolls_out_each_restart_target_and_nothing_else(core: Core) -> None:
    box = core.box
    kube = Kube(box.state.kubeconfig)
    for name in ("webapp", "webapp-worker", "bystander"):
        workload(kube, "webapp", "Deployment", name)
    for name in ("webapp", "webapp-worker", "bystander"):
        wait_until(lambda n=name: revision(kube, "webapp", "Deployment", n), f"{name} revision")
    start = {n: revision(kube, "webapp", "Deployment", n) for n in ("webapp", "webapp-worker")}
    api = admin_api(box)
    original, version = read_kv(api, "webapp/config")
    proc = invoke_cli(["verify.rotation", "webapp/config"], core.first_run["env"])
    assert "rotation test passed for webapp/config" in proc.stdout
    for name, rev in start.items():
        # exactly one rollout for the sentinel, one for the original coming back
        assert revision(kube, "webapp", "Deployment", name) == str(int(rev) + 2), name
        assert f"Deployment/{name}: revisions {rev} -> {int(rev) + 1} -> {int(rev) + 2}" in (
            proc.stdout
        )
    assert revision(kube, "webapp", "Deployment", "bystander") == "1"
    data, now = read_kv(api, "webapp/config")
    assert data == original and now == version + 2
    assert vso.classify(original, kube.read_secret("webapp", "config")) == "synced"
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", "webapp")
    assert vss is not None and vss["spec"]["refreshAfter"] == "30s"  # catalog's, as it was


def test_a_static_secret_cannot_read_another_services_path(core: Core) -> None:
    """A hand-written VaultStaticSecret in cert-manager's namespace, using cert-manager's own
    VaultAuth, pointed at webapp's private credentials."""
    box = core.box
    kube = Kube(box.state.kubeconfig)
    kube.apply(
        {
            "apiVersion": VSO_API,
            "kind": "VaultStaticSecret",
            "metadata": {"name": "stolen", "namespace": "cert-manager"},
            "spec": {
                "type": "kv-v2",
                "mount": "secret",
                "path": "webapp/credentials",
                "destination": {"name": "stolen", "create": True},
                "vaultAuthRef": "cert-manager",
                "refreshAfter": "5s",
            },
        },
        field_manager="someone-else",
    )
    try:
        failure = wait_until(
            lambda: next((e for e in events_of(kube, "cert-manager", "stolen") if e.error), None),
            "the operator's verdict on the stolen path",
        )
        assert failure.reason == "VaultClientError", failure
        if box.current_operator:
            # 1.4.1 says Vault's own answer
            assert "403" in failure.message and "webapp/credentials" in failure.message
        else:
            # v0.1.0 loses Vault's 403 on a kv-v2 read: its event only says "empty"
            assert "path webapp/credentials" in failure.message
        assert kube.read_secret("cert-manager", "stolen") is None
        rows = collect(load_catalog(EXAMPLE), kube, admin_api(box))
        (row,) = [r for r in rows if r.secret == "stolen"]
        assert row.service == "-" and row.namespace == "cert-manager"
        assert row.state == "error" and "VaultClientError" in row.detail, row
        assert (
            "role 'cert-manager' (policies ['cert-manager']) may not read "
            "secret/data/webapp/credentials: Vault answers 403"
        ) in row.detail, row
        assert "not in the catalog" in row.vault_path
        # the catalog's own Secrets in that namespace are untouched by it
        ours = [r for r in rows if r.namespace == "cert-manager" and r.service != "-"]
        assert ours and {r.state for r in ours} == {"synced"}
    finally:
        kube.delete(VSO_API, "VaultStaticSecret", "stolen", "cert-manager")


def test_a_restart_storm_is_seen_by_status_fails_verify_and_a_bootstrap_ends_it(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """VSO 1.4.1 (hashicorp/vault-secrets-operator#1212): a create-false destination whose
    labels were taken off by hand is invisible to the operator's Secret cache, so every
    refresh re-syncs it and rolls the targets out again. status says so (error, the count),
    verify fails naming the target, and a whole bootstrap puts the labels back (Terraform
    manages them) and proves the targets quiet again."""
    assert box.current_operator
    p = f"st{unique}"
    cat = _catalog(p)
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    results, _ = run(s, cat, ["placeholders"])
    workload(kube, p, "Deployment", "web")
    workload(kube, p, "StatefulSet", "db")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")
    results, _ = run(s, cat, ALL_PHASES)
    assert verified(results), results
    assert revision(kube, p, "Deployment", "web") == "1"

    unlabel = {"metadata": {"labels": dict.fromkeys(conv.OPERATOR_CACHE_LABELS)}}
    kube.merge_patch("v1", "Secret", "config", p, unlabel, field_manager="someone")
    wait_until(
        lambda: int(revision(kube, p, "Deployment", "web") or 0) >= 4,
        "the operator to roll web out again and again",
    )
    rows = [r for r in collect(cat, kube, admin_api(box)) if r.namespace == p]
    assert rows and {r.state for r in rows} == {"error"}, rows
    assert "restart storm: Deployment/web rolled out" in rows[0].detail, rows[0]
    assert "with no change in Vault, and going on" in rows[0].detail
    assert f"Secret(s) {p}/config lack the labels" in rows[0].detail

    # verify alone (nothing puts the labels back) fails, naming the target
    failed, _ = run(s, cat, ["verify"])
    (result,) = [r for r in failed if r.name == "verify"]
    assert result.status == "failed", result
    assert f"Deployment {p}/web restarted" in (result.error or "")

    # the whole bootstrap: Terraform puts the labels back; verify watches one refresh period
    healed, _ = run(s, cat, ALL_PHASES)
    got = statuses(healed)
    assert got["placeholders"] == "applied" and got["verify"] == "applied", got
    labels = kube.read_secret_object(p, "config").metadata.labels
    assert conv.OPERATOR_CACHE_LABELS.items() <= labels.items()
    settled = revision(kube, p, "Deployment", "web")
    vso.watch_quiet(kube, admin_api(box), _watched(p, ("Deployment", "web")), 10.0)
    assert revision(kube, p, "Deployment", "web") == settled


def test_a_first_sync_of_a_value_vault_already_holds_restarts_nothing(
    core: Core, unique: str, tmp_path: Path
) -> None:
    """Vault holds the value before the VaultStaticSecret exists (a migration, a restore, an
    operator that reaches it only after populate): its first reconcile syncs at once. VSO
    1.4.1 then adds its finalizer with an update that writes an empty
    ``destination.transformation`` into the spec, a new generation it answers with a sync
    and a restart, unless the spec had that field already: the product writes it."""
    box = core.box
    p = f"fs{unique}"
    cat = _catalog(p)
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    results, _ = run(s, cat, ["placeholders", "vault-config", "populate"])
    assert statuses(results)["populate"] == "applied", results
    workload(kube, p, "Deployment", "web")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")
    results, _ = run(s, cat, ["operator", "verify"])  # verify's quiet check included
    assert statuses(results)["operator"] == "applied" and verified(results), results
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None
    assert vss["metadata"]["generation"] == 1, vss["metadata"]  # the operator added nothing
    vso.watch_quiet(kube, admin_api(box), _watched(p, ("Deployment", "web")), 10.0)
    assert revision(kube, p, "Deployment", "web") == "1"


def test_a_spec_change_the_catalog_asks_for_restarts_once_and_verify_allows_it(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """VSO 1.4.1 answers any spec change of a synced VaultStaticSecret with a sync and a
    restart. A change the catalog asks for (a new refreshAfter) is planned saying so, and
    verify's quiet check allows that one restart, and no more."""
    assert box.current_operator
    p = f"sc{unique}"
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    run(s, _catalog(p), ["placeholders"])
    workload(kube, p, "Deployment", "web")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")
    results, _ = run(s, _catalog(p), ALL_PHASES)
    assert verified(results), results
    slower = generated_catalog(
        p, {"config": ["a", "b"]}, refresh="6s", restart=[("Deployment", "web")]
    )
    results, _ = run(s, slower, ALL_PHASES)
    got = statuses(results)
    assert got["operator"] == "applied" and got["verify"] == "no-change", got
    (operator_phase,) = [r for r in results if r.name == "operator"]
    (update,) = [a for a in operator_phase.actions if a.verb == "update"]
    assert "restarts its rollout targets once" in update.reason, update
    assert revision(kube, p, "Deployment", "web") == "2"
