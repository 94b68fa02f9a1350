"""The Vault configuration planner: facts in, actions out."""

from __future__ import annotations

from typing import Any

from bootstrap.catalog import load_catalog
from bootstrap.vaultplan import ADMIN_POLICY, Facts, desired, plan
from tests.conftest import EXAMPLE

CA = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"


def _want() -> Any:
    return desired(load_catalog(EXAMPLE), "https://k8s:6443", CA, "/tmp/audit.log")


def _converged(want: Any) -> Facts:
    return Facts(
        kv_mount={"type": "kv", "options": {"version": "2"}},
        auth_mount={"type": "kubernetes"},
        auth_config={
            "kubernetes_host": "https://k8s:6443",
            "kubernetes_ca_cert": CA,
            "token_reviewer_jwt_set": True,
        },
        policies=dict(want.policies),
        roles={n: dict(r) for n, r in want.roles.items()},
        audit={"file/": {"type": "file"}},
    )


def test_from_scratch_creates_everything() -> None:
    want = _want()
    actions = plan(want, Facts(None, None, None, {}, {}, {}), prune=False)
    targets = [a.target for a in actions]
    assert "mount secret/" in targets and "auth kubernetes/" in targets
    assert "auth/kubernetes/config" in targets and "audit file/" in targets
    assert sum(t.startswith("policy ") for t in targets) == len(want.policies)
    assert sum(t.startswith("role ") for t in targets) == len(want.roles)
    assert all(a.verb in ("create", "update") for a in actions)


def test_converged_is_empty() -> None:
    want = _want()
    assert plan(want, _converged(want), prune=True) == []


def test_vault_formats_do_not_cause_spurious_diffs() -> None:
    want = _want()
    have = _converged(want)
    for role in have.roles.values():  # Vault returns lists in its own order, ttl as int
        role["bound_service_account_names"] = list(reversed(role["bound_service_account_names"]))
        role["token_bound_cidrs"] = []
    have.auth_config["kubernetes_ca_cert"] = CA.strip() + "\n\n"  # type: ignore[index]
    assert plan(want, have, prune=False) == []


def test_only_the_difference() -> None:
    want = _want()
    have = _converged(want)
    have.roles["webapp"]["token_ttl"] = 60
    have.policies["backup"] = have.policies["backup"].replace("read", "list")
    actions = plan(want, have, prune=False)
    assert [(a.verb, a.target) for a in actions] == [
        ("update", "policy backup"),
        ("update", "role webapp"),
    ]
    assert "token_ttl" in actions[1].reason


def test_other_engine_at_secret_is_a_problem() -> None:
    want = _want()
    have = _converged(want)
    have.kv_mount = {"type": "kv", "options": {"version": "1"}}
    (problem,) = [a for a in plan(want, have, prune=False) if a.verb == "problem"]
    assert "not KV version 2" in problem.reason
    have.kv_mount = {"type": "transit"}
    (problem,) = [a for a in plan(want, have, prune=False) if a.verb == "problem"]
    assert "transit" in problem.reason


def test_unmanaged_policy_with_a_service_name_is_not_overwritten() -> None:
    want = _want()
    have = _converged(want)
    have.policies["webapp"] = 'path "x" { capabilities = ["read"] }'
    (problem,) = [a for a in plan(want, have, prune=False) if a.target == "policy webapp"]
    assert problem.verb == "problem" and "not managed" in problem.reason


def test_prune_touches_only_managed() -> None:
    want = _want()
    have = _converged(want)
    header = want.policies["webapp"].splitlines()[0]  # managed by this catalog
    have.policies["old"] = header + '\npath "secret/data/old/*" { capabilities = ["read"] }\n'
    have.roles["old"] = {"token_policies": ["old"]}
    have.policies["theirs"] = 'path "x" { capabilities = ["read"] }'
    have.roles["theirs"] = {"token_policies": ["theirs"]}
    have.roles["mixed"] = {"token_policies": ["old", "default"]}
    other = header.replace("catalog=default", "catalog=another")
    have.policies["elsewhere"] = other + '\npath "secret/data/e/*" { capabilities = ["read"] }\n'
    have.roles["elsewhere"] = {"token_policies": ["elsewhere"]}
    assert plan(want, have, prune=False) == []
    pruned = [(a.verb, a.target) for a in plan(want, have, prune=True)]
    assert pruned == [("delete", "role old"), ("delete", "policy old")]


def test_a_role_that_would_grant_the_admin_policy_is_refused() -> None:
    cat = load_catalog(EXAMPLE)
    services = [
        s.model_copy(update={"name": ADMIN_POLICY}) if s.name == "webapp" else s
        for s in cat.services
    ]
    want = desired(cat.model_copy(update={"services": services}), "https://k8s:6443", CA, "/a")
    actions = plan(want, Facts(None, None, None, {}, {}, {}), prune=False)
    (problem,) = [a for a in actions if a.target == f"role {ADMIN_POLICY}"]
    assert problem.verb == "problem" and "rename the service" in problem.reason
