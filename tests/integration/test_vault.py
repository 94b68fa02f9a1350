"""Vault lifecycle against the real sandbox: the first bootstrap through the CLI (output
captured and searched for every key and token), idempotent re-runs, isolation proven for
every ordered pair of services, pruning, and the clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import requests

from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.core.errors import BootstrapError
from bootstrap.model import conventions as conv
from bootstrap.model import vaultplan
from bootstrap.model.actions import Action
from bootstrap.model.catalog import Catalog, load_catalog, parse_catalog
from bootstrap.model.domain import kv_secrets, syncs
from bootstrap.phases.registry import registered
from bootstrap.runtime.credentials import resolve_token
from bootstrap.runtime.custody import FileCustody
from bootstrap.runtime.target import resolve
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box
from tests.integration.helpers import kv_write, prove_isolation, run, statuses

# No operator runs in the sandbox, so verify (tested on its own) is left out here.
PHASES = [p.name for p in registered() if p.name != "verify"]


def test_first_run_initializes_unseals_and_keeps_keys(box: Box, first_run: dict[str, Any]) -> None:
    s = box.settings()
    assert s.custody_file is not None
    mode = stat.S_IMODE(s.custody_file.stat().st_mode)
    assert mode == 0o600
    record = FileCustody(s.custody_file).load()
    assert record is not None
    assert (record.shares, record.threshold, len(record.unseal_keys_b64)) == (5, 3, 5)
    h = vault.health(box.state.bao_addr)
    assert (h.code, h.initialized, h.sealed) == (200, True, False)
    report = json.loads(first_run["report"])
    assert report["ok"] is True
    by_name = {p["name"]: p for p in report["phases"]}
    assert by_name["vault-ready"]["status"] == "applied"
    assert by_name["vault-config"]["status"] == "applied"
    assert by_name["finish"]["status"] == "applied"  # root token revoked


def test_no_key_token_or_value_reaches_output(box: Box, first_run: dict[str, Any]) -> None:
    s = box.settings()
    custody = FileCustody(s.custody_file)  # type: ignore[arg-type]
    record = custody.load()
    admin = custody.load_extra("admin")
    assert record is not None and admin is not None
    values = []
    for path, _ in kv_secrets(load_catalog(EXAMPLE)):
        data, version = read_kv(vault.Api(box.state.bao_addr, admin["token"]), path)
        assert version >= 1 and data
        values += [v for v in data.values() if len(v) >= 8]
    assert len(values) > 15
    needles = [*record.unseal_keys_b64, record.root_token, admin["token"], *values]
    haystacks = {"output": first_run["output"], "report": first_run["report"]}
    audit = Path(str(s.audit_file))
    assert audit.is_file()  # the audit log hashes secrets; it must not hold them in clear
    haystacks["audit"] = audit.read_text()
    # and it logged the run: populate's KV writes are there, their values hashed
    assert f'"path":"{conv.KV_MOUNT}/data/webapp/config"' in haystacks["audit"]
    assert '"hmac-sha256:' in haystacks["audit"]
    # every component's log: the operator (it syncs the values), the controllers, the API
    # server, OpenBao, etcd
    for log in sorted((box.directory / "logs").glob("*.log")):
        haystacks[log.name] = log.read_text(errors="replace")
    assert {"vault-secrets-operator.log", "kube-controller-manager.log"} <= set(haystacks)
    for name, text in haystacks.items():
        for needle in needles:
            assert needle and needle not in text, f"a key or token appears in the {name}"


def test_root_token_revoked_and_admin_credential_works(box: Box, first_run: dict[str, Any]) -> None:
    custody = FileCustody(box.settings().custody_file)  # type: ignore[arg-type]
    record = custody.load()
    assert record is not None
    resp = requests.get(
        f"{box.state.bao_addr}/v1/auth/token/lookup-self",
        headers={"X-Vault-Token": record.root_token},
        timeout=5,
    )
    assert resp.status_code == 403
    admin = custody.load_extra("admin")
    assert admin is not None
    resp = requests.get(
        f"{box.state.bao_addr}/v1/sys/policies/acl",
        headers={"X-Vault-Token": admin["token"]},
        params={"list": "true"},
        timeout=5,
    )
    assert resp.status_code == 200


def test_rerun_changes_nothing_and_writes_nothing(box: Box, first_run: dict[str, Any]) -> None:
    results, ctx = run(box.settings(), load_catalog(EXAMPLE), PHASES)
    assert statuses(results) == {p: "no-change" for p in PHASES}
    assert ctx.session.opened is not None
    assert ctx.session.opened.writes == 0


def _seed_values(box: Box, catalog: Catalog) -> None:
    """A value in each of the catalog's paths, and each service's ServiceAccount: for a catalog
    of the test's own (the example's come from the first run, and are not the test's to
    change)."""
    t = resolve(box.settings())
    token, _ = resolve_token(t.custody)
    for path in {s.kv_path for s in syncs(catalog)}:
        kv_write(box.state.bao_addr, token, path, {"probe": f"value-of-{path}"})
    for svc in catalog.services:
        t.kube.ensure_namespace(svc.namespace)
        t.kube.ensure_service_account(svc.namespace, conv.service_account_name(svc.name))


def test_isolation_on_the_example_catalog(box: Box, first_run: dict[str, Any]) -> None:
    checks = prove_isolation(box, load_catalog(EXAMPLE))
    assert checks > 60


def _generated(n: int, prefix: str) -> Catalog:
    """n services of a catalog of the test's own: its name, namespaces and every Vault path
    (shared ones included) start with ``prefix``."""
    shared = "\n".join(f"  {prefix}-s{i}:\n    keys: {{k: null}}" for i in range(4))
    services = "\n".join(
        f"  - name: {prefix}-svc{i}\n    namespace: {prefix}-ns{i % 7}\n"
        f"    secrets:\n      config:\n        destination: {prefix}-svc{i}-config\n"
        f"        keys: {{a: null}}\n"
        f"      credentials:\n        destination: {prefix}-svc{i}-credentials\n"
        f"        keys: {{b: null}}\n"
        f"    reads:\n      - {{path: shared/{prefix}-s{i % 4}, "
        f"destination: {prefix}-svc{i}-shared}}\n"
        for i in range(n)
    )
    text = f"name: {prefix}\nshared:\n{shared}\nservices:\n{services}"
    return parse_catalog(text, "generated.yaml")


def test_isolation_on_a_generated_catalog_of_24_services(
    box: Box, first_run: dict[str, Any], unique: str
) -> None:
    catalog = _generated(24, f"g{unique[:4]}")
    results, _ = run(box.settings(), catalog, ["vault-config"])
    assert statuses(results) == {"vault-config": "applied"}
    _seed_values(box, catalog)
    checks = prove_isolation(box, catalog)
    assert checks >= 24 * 23


def test_prune_removes_only_managed_objects(
    box: Box, first_run: dict[str, Any], unique: str
) -> None:
    t = resolve(box.settings())
    token, _ = resolve_token(t.custody)
    api = vault.Api(box.state.bao_addr, token)
    gone = f"p{unique}-gone"
    text = f"""
version: 1
name: p{unique}
services:
  - name: p{unique}-stay
    namespace: p{unique}
    secrets: {{config: {{keys: {{a: null}}}}}}
  - name: {gone}
    namespace: p{unique}
    secrets: {{config: {{destination: other, keys: {{a: null}}}}}}
"""
    both = parse_catalog(text, "prune.yaml")
    one = parse_catalog(text.split(f"  - name: {gone}")[0], "prune.yaml")
    run(box.settings(), both, ["vault-config"])
    # Unmanaged neighbours: a policy without the marker and a role using it.
    mine = 'path "x/*" { capabilities = ["read"] }'
    api.put(f"sys/policies/acl/p{unique}-mine", {"policy": mine})
    api.write(
        f"auth/kubernetes/role/p{unique}-mine",
        {
            "bound_service_account_names": ["x"],
            "bound_service_account_namespaces": ["x"],
            "token_policies": [f"p{unique}-mine"],
        },
    )
    results, _ = run(box.settings(), one, ["vault-config"])
    assert statuses(results) == {"vault-config": "no-change"}  # without --prune: kept
    assert api.read(f"auth/kubernetes/role/{gone}") is not None
    results, _ctx = run(box.settings(prune=True), one, ["vault-config"])
    deleted = {a.target for r in results for a in r.actions if a.verb == "delete"}
    assert f"role {gone}" in deleted and f"policy {gone}" in deleted
    assert api.read(f"auth/kubernetes/role/{gone}") is None
    assert api.read(f"sys/policies/acl/{gone}") is None
    assert api.read(f"auth/kubernetes/role/p{unique}-mine") is not None
    assert api.read(f"sys/policies/acl/p{unique}-mine") is not None
    assert api.read(f"sys/policies/acl/p{unique}-stay") is not None


def test_initialized_vault_without_custody_asks_for_a_token(
    box: Box, first_run: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    s = box.settings(custody_file=tmp_path / "elsewhere.json")
    results, _ = run(s, load_catalog(EXAMPLE), ["vault-ready", "vault-config"])
    by = {r.name: r for r in results}
    assert by["vault-ready"].status == "no-change", by["vault-ready"].error  # unsealed
    assert by["vault-config"].status == "failed"
    assert "no Vault token: set VAULT_TOKEN or BAO_TOKEN" in (by["vault-config"].error or "")
    assert not (tmp_path / "elsewhere.json").exists()


def test_a_second_lock_holder_is_refused(box: Box, unique: str) -> None:
    from bootstrap.runtime.lock import LockHeld, cluster_lock

    kube = Kube(box.state.kubeconfig)
    ns = f"lh{unique}"  # not the bootstrap's own lock: a failure here blocks no other test
    with (
        cluster_lock(kube, ns, holder="this-run"),
        pytest.raises(LockHeld, match="held by this-run"),
        cluster_lock(kube, ns, holder="another-run"),
    ):
        pass
    # released at the end: the other run may now take it
    with cluster_lock(kube, ns, holder="another-run"):
        pass


def test_errors_never_carry_tokens(box: Box, first_run: dict[str, Any]) -> None:
    api = vault.Api(box.state.bao_addr, "s.not-a-real-token-but-secret-looking")
    with pytest.raises(BootstrapError) as info:
        api.read("sys/policies/acl/x")
    assert "not-a-real-token" not in str(info.value)


def _admin_api(box: Box) -> vault.Api:
    t = resolve(box.settings())
    token, source = resolve_token(t.custody)
    assert source.startswith("bootstrap-admin"), source  # finish revoked the root token
    return vault.Api(box.state.bao_addr, token)


def test_policies_listed_with_their_text_or_read_one_by_one_are_the_same(
    box: Box, first_run: dict[str, Any], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _generated(6, f"l{unique[:4]}")
    results, ctx = run(box.settings(), catalog, ["vault-config"])
    assert statuses(results) == {"vault-config": "applied"}
    listed = _admin_api(box).acl_policies()  # the admin credential may use the listing
    assert listed is not None
    assert {s.name for s in catalog.services} <= set(listed)
    from bootstrap.phases import vault_config

    api = ctx.vault
    # the listing, however few of the sandbox's policies the catalog has
    monkeypatch.setattr(vault_config, "LISTING_PAYS_FROM", 10**6)
    at_once = vault_config._read_policies(ctx, api)
    # a server without the listing (HashiCorp Vault): the names, then one read each
    monkeypatch.setattr(api, "acl_policies", lambda: None)
    one_by_one = vault_config._read_policies(ctx, api)
    assert at_once == one_by_one
    assert set(at_once) == {s.name for s in catalog.services} | {vaultplan.ADMIN_POLICY}
    assert all(listed[n] == text for n, text in at_once.items())


def test_an_admin_policy_without_the_listing_still_works_and_is_updated(
    box: Box, first_run: dict[str, Any]
) -> None:
    """A Vault configured by an earlier release: its bootstrap-admin policy lacks the detailed
    listing. The run reads policies one by one (the listing answers 403), and updates it."""
    api = _admin_api(box)
    listing = '\npath "sys/policies/detailed/acl" {\n  capabilities = ["list"]\n}\n'
    assert listing in vaultplan.ADMIN_POLICY_TEXT
    earlier = vaultplan.ADMIN_POLICY_TEXT.replace(listing, "\n")
    api.put(f"sys/policies/acl/{vaultplan.ADMIN_POLICY}", {"policy": earlier})
    try:
        assert api.acl_policies() is None
        results, _ = run(box.settings(), load_catalog(EXAMPLE), ["vault-config"])
        assert statuses(results) == {"vault-config": "applied"}
        changed = [(a.verb, a.target) for r in results for a in r.actions if a.changes]
        assert changed == [("update", f"policy {vaultplan.ADMIN_POLICY}")]
        assert api.acl_policies() is not None
    finally:
        api.put(
            f"sys/policies/acl/{vaultplan.ADMIN_POLICY}", {"policy": vaultplan.ADMIN_POLICY_TEXT}
        )


def test_the_convergence_check_lists_policies_and_roles_and_reads_a_sample_back(
    box: Box, first_run: dict[str, Any], unique: str
) -> None:
    """After apply, policies and roles are listed again and a sample of those written read
    back; the others count as written (Vault accepted each write). What that catches, and
    what not."""
    from bootstrap.phases.vault_config import SAMPLE, VaultConfig

    catalog = _generated(12, f"c{unique[:4]}")
    phase = VaultConfig()
    results, ctx = run(box.settings(), catalog, ["vault-config"])
    assert statuses(results) == {"vault-config": "applied"}
    applied = next(r.actions for r in results if r.name == "vault-config")
    written = sorted(a.name for a in applied if isinstance(a, vaultplan.WriteRole))
    assert len(written) == 12
    # one policy per service, of the role's name
    assert sorted(a.name for a in applied if isinstance(a, vaultplan.PutPolicy)) == written
    sample = vaultplan.spread(written, SAMPLE)
    assert len(sample) == SAMPLE
    before = vaultplan.Facts(None, None, None, {}, {}, {})  # as the first plan saw Vault
    assert [a for a in phase.plan(ctx, phase.facts_after(ctx, before, applied)) if a.changes] == []
    # the token reviewer's parts: as the first facts had them, or made by the run
    reviewer = vaultplan.Reviewer("ns", "sa", "binding")
    made: list[Action] = [
        vaultplan.CreateReviewerPart("create", part, "", part, reviewer)
        for part in vaultplan.REVIEWER_PARTS
    ]
    after = phase.facts_after(ctx, before, made)
    assert (after.reviewer, after.reviewer_binding) == (
        frozenset(vaultplan.REVIEWER_PARTS),
        "as wanted",
    )
    after = phase.facts_after(ctx, before, made[:2])
    assert (after.reviewer, after.reviewer_binding) == (
        frozenset({"namespace", "service-account"}),
        "absent",
    )

    api = ctx.vault
    unsampled = [n for n in written if n not in sample]
    trusted, trusted_policy, gone_policy, gone = (
        unsampled[0],
        unsampled[1],
        unsampled[-2],
        unsampled[-1],
    )
    for name in (sample[0], trusted):
        role = api.read(f"{vaultplan.ROLE_PREFIX}{name}")
        assert role is not None
        api.write(f"{vaultplan.ROLE_PREFIX}{name}", {**role["data"], "token_ttl": 60})
    api.delete(f"{vaultplan.ROLE_PREFIX}{gone}")
    for name in (sample[1], trusted_policy):
        policy = api.read(f"{vaultplan.POLICY_PREFIX}{name}")
        assert policy is not None
        text = policy["data"]["policy"] + "\n# changed by hand\n"
        api.put(f"{vaultplan.POLICY_PREFIX}{name}", {"policy": text})
    api.delete(f"{vaultplan.POLICY_PREFIX}{gone_policy}")

    left = phase.plan(ctx, phase.facts_after(ctx, before, applied))
    seen = [
        ("create", f"policy {gone_policy}"),  # listed again: what is missing is seen
        ("create", f"role {gone}"),
        ("update", f"policy {sample[1]}"),  # read back: a change is seen
        ("update", f"role {sample[0]}"),
    ]
    # not a change outside the sample: its write was accepted
    assert sorted((a.verb, a.target) for a in left if a.changes) == sorted(seen)
    # a full read (the next run's facts) sees every change
    again = phase.plan(ctx, phase.facts(ctx))
    assert sorted((a.verb, a.target) for a in again if a.changes) == sorted(
        [*seen, ("update", f"role {trusted}"), ("update", f"policy {trusted_policy}")]
    )
    results, _ = run(box.settings(), catalog, ["vault-config"])
    assert statuses(results) == {"vault-config": "applied"}


def test_the_admin_credential_carries_its_policy_alone(box: Box, first_run: dict[str, Any]) -> None:
    """Not ``default`` besides: what the product needs of it (looking up and renewing
    itself) the admin policy grants, and OpenBao parses ``default`` for every request."""
    status, body = _admin_api(box).request("GET", "auth/token/lookup-self")
    assert status == 200 and body is not None
    assert body["data"]["policies"] == [vaultplan.ADMIN_POLICY]
