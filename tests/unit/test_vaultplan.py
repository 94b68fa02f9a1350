"""The Vault configuration planner: facts in, actions out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bootstrap.model import vaultplan as vp
from bootstrap.model.catalog import load_catalog
from bootstrap.model.vaultplan import ADMIN_POLICY, Facts, desired, plan, relevant_policy
from tests.conftest import EXAMPLE

CA = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n"


def _want() -> Any:
    return desired(load_catalog(EXAMPLE), "https://k8s:6443", CA, "/tmp/audit.log")


def _raw(want: Any) -> dict[str, Any]:
    """Vault's answers for a converged catalog, as Vault sends them."""
    return {
        "kv_mount": {"type": "kv", "options": {"version": "2"}},
        "auth_mount": {"type": "kubernetes"},
        "auth_config": {
            "kubernetes_host": "https://k8s:6443",
            "kubernetes_ca_cert": CA,
            "token_reviewer_jwt_set": True,
        },
        "policies": dict(want.policies),
        "roles": {n: dict(r) for n, r in want.roles.items()},
        "audit": {"file/": {"type": "file"}},
    }


def _converged(want: Any) -> Facts:
    return Facts.parse(**_raw(want))


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
    raw = _raw(want)
    for role in raw["roles"].values():  # Vault returns lists in its own order, ttl as int
        role["bound_service_account_names"] = list(reversed(role["bound_service_account_names"]))
        role["token_bound_cidrs"] = []
    raw["auth_config"]["kubernetes_ca_cert"] = CA.strip() + "\n\n"
    assert plan(want, Facts.parse(**raw), prune=False) == []


def test_only_the_difference() -> None:
    want = _want()
    have = _converged(want)
    have.roles["webapp"] = replace(have.roles["webapp"], token_ttl=60)
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
    have.kv_mount = vp.Mount.of({"type": "kv", "options": {"version": "1"}})
    (problem,) = [a for a in plan(want, have, prune=False) if a.verb == "problem"]
    assert "not KV version 2" in problem.reason
    have.kv_mount = vp.Mount.of({"type": "transit"})
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
    have.roles["old"] = vp.Role.of({"token_policies": ["old"]})
    have.policies["theirs"] = 'path "x" { capabilities = ["read"] }'
    have.roles["theirs"] = vp.Role.of({"token_policies": ["theirs"]})
    have.roles["mixed"] = vp.Role.of({"token_policies": ["old", "default"]})
    other = header.replace("catalog=default", "catalog=another")
    have.policies["elsewhere"] = other + '\npath "secret/data/e/*" { capabilities = ["read"] }\n'
    have.roles["elsewhere"] = vp.Role.of({"token_policies": ["elsewhere"]})
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


# -- scoped to the catalog (issue 10, item 7) ---------------------------------------------


def _header(catalog: str) -> str:
    return f"# managed-by: cluster-secrets-bootstrap catalog={catalog}"


def test_another_catalogs_policy_and_role_are_not_taken_over() -> None:
    want = _want()
    have = _converged(want)
    theirs = _header("another") + '\npath "secret/data/webapp/*" { capabilities = ["read"] }\n'
    have.policies["webapp"] = theirs
    have.roles["webapp"] = replace(have.roles["webapp"], bound_service_account_namespaces=("x",))
    actions = {a.target: a for a in plan(want, have, prune=True)}
    assert actions["policy webapp"].verb == "problem"
    assert "managed by catalog 'another'" in actions["policy webapp"].reason
    assert actions["role webapp"].verb == "problem"
    assert "managed by catalog 'another' through its policy webapp" in (
        actions["role webapp"].reason
    )
    assert not [a for a in actions.values() if a.changes]


def test_an_unmanaged_role_is_not_overwritten_unless_it_is_already_ours() -> None:
    want = _want()
    have = _converged(want)
    have.roles["webapp"] = replace(have.roles["webapp"], token_policies=("admin", "webapp"))
    actions = {a.target: a for a in plan(want, have, prune=False)}
    assert actions["role webapp"].verb == "problem"
    assert "not managed by the bootstrap" in actions["role webapp"].reason
    assert "['admin', 'webapp']" in actions["role webapp"].reason
    # an unmanaged role that is exactly what we would write needs nothing
    have.roles["webapp"] = replace(have.roles["webapp"], token_policies=("webapp",))
    have.policies["webapp"] = 'path "x" { capabilities = ["read"] }'
    actions = {a.target: a for a in plan(want, have, prune=False)}
    assert "role webapp" not in actions and actions["policy webapp"].verb == "problem"


def test_a_policy_without_a_catalog_name_is_adopted_only_for_the_admin_policy() -> None:
    want = _want()
    have = _converged(want)
    have.policies["webapp"] = '# managed-by: cluster-secrets-bootstrap\npath "x" {}\n'
    have.policies[ADMIN_POLICY] = '# managed-by: cluster-secrets-bootstrap\npath "x" {}\n'
    actions = {a.target: a for a in plan(want, have, prune=False)}
    assert actions["policy webapp"].verb == "problem"
    assert "without a catalog name" in actions["policy webapp"].reason
    assert actions[f"policy {ADMIN_POLICY}"].verb == "update"


def test_own_objects_are_still_updated() -> None:
    want = _want()
    have = _converged(want)
    have.policies["webapp"] = want.policies["webapp"] + "# edited\n"
    have.roles["webapp"] = replace(have.roles["webapp"], token_ttl=5)
    assert [(a.verb, a.target) for a in plan(want, have, prune=False)] == [
        ("update", "policy webapp"),
        ("update", "role webapp"),
    ]


def test_facts_keep_only_wanted_and_own_policies() -> None:
    mine = _header("default") + "\n"
    other = _header("another") + "\n"
    wanted = {"webapp"}
    assert relevant_policy("webapp", other, wanted, "default")  # to compare and refuse
    assert relevant_policy("old", mine, wanted, "default")  # to prune
    assert not relevant_policy("theirs", other, wanted, "default")
    assert not relevant_policy(
        "legacy", "# managed-by: cluster-secrets-bootstrap\n", wanted, "default"
    )
    assert not relevant_policy("hand", 'path "x" {}', wanted, "default")


def test_prune_never_crosses_catalogs_even_with_their_facts() -> None:
    want = _want()
    have = _converged(want)
    have.policies["gone"] = _header("another") + "\n"
    have.roles["gone"] = vp.Role.of({"token_policies": ["gone"]})
    have.policies["mine"] = _header("default") + "\n"
    have.roles["mine"] = vp.Role.of({"token_policies": ["mine"]})
    pruned = [(a.verb, a.target) for a in plan(want, have, prune=True)]
    assert pruned == [("delete", "role mine"), ("delete", "policy mine")]


def _apply(have: Facts, actions: list[Any]) -> None:
    for a in actions:
        match a:
            case vp.EnableMount(path="sys/mounts/secret"):
                have.kv_mount = vp.Mount("kv", "2")
            case vp.EnableMount(path="sys/auth/kubernetes"):
                have.auth_mount = vp.Mount("kubernetes")
            case vp.ConfigureKubernetesAuth(host=host, ca_cert=ca):
                have.auth_config = vp.AuthConfig(host, ca, reviewer_jwt_set=True)
            case vp.PutPolicy(name=name, text=text):
                have.policies[name] = text
            case vp.WriteRole(name=name, params=params):
                have.roles[name] = vp.Role.of(params)
            case vp.EnableAudit():
                have.audit["file/"] = "file"
            case vp.Remove(path=path) if path.startswith(vp.ROLE_PREFIX):
                del have.roles[path.removeprefix(vp.ROLE_PREFIX)]
            case vp.Remove(path=path) if path.startswith(vp.POLICY_PREFIX):
                del have.policies[path.removeprefix(vp.POLICY_PREFIX)]
            case _:
                raise AssertionError(f"unexpected {a}")


def test_a_rerun_changes_nothing_next_to_another_catalog() -> None:
    want = _want()
    have = Facts(None, None, None, {}, {}, {})
    have.policies["theirs"] = _header("another") + "\n"
    have.roles["theirs"] = vp.Role.of({"token_policies": ["theirs"]})
    first = plan(want, have, prune=True)
    assert first and all(a.changes for a in first)
    _apply(have, first)
    assert plan(want, have, prune=True) == []
    assert "theirs" in have.policies and "theirs" in have.roles


REVIEWER = vp.Reviewer("vault-auth", "reviewer", "reviewer-binding")


@pytest.mark.parametrize(
    ("present", "config_ok", "expected"),
    [
        (
            frozenset(),
            False,
            [
                ("CreateReviewerPart", "create", "namespace vault-auth"),
                (
                    "CreateReviewerPart",
                    "create",
                    "ServiceAccount vault-auth/reviewer",
                ),
                ("CreateReviewerPart", "create", "ClusterRoleBinding reviewer-binding"),
                ("ConfigureKubernetesAuth", "update", "auth/kubernetes/config"),
            ],
        ),
        (
            frozenset({"namespace", "service-account"}),
            False,
            [
                ("CreateReviewerPart", "create", "ClusterRoleBinding reviewer-binding"),
                ("ConfigureKubernetesAuth", "update", "auth/kubernetes/config"),
            ],
        ),
        (
            frozenset(vp.REVIEWER_PARTS),
            False,
            [("ConfigureKubernetesAuth", "update", "auth/kubernetes/config")],
        ),
        (frozenset(), True, []),  # configured: the reviewer is not looked after again
    ],
    ids=["nothing", "binding-missing", "all-present", "configured"],
)
def test_every_kubernetes_side_effect_of_the_auth_config_is_planned(
    present: frozenset[str], config_ok: bool, expected: list[tuple[str, str, str]]
) -> None:
    cat = load_catalog(EXAMPLE)
    want = desired(cat, "https://k8s:6443", CA, "/tmp/audit.log", REVIEWER)
    have = _converged(want)
    have.reviewer = present
    if not config_ok:
        have.auth_config = None
    got = [(a.kind, a.verb, a.target) for a in plan(want, have, prune=False)]
    assert got == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("absent", [("CreateReviewerPart", "create", "ClusterRoleBinding reviewer-binding")]),
        ("differs", [("CreateReviewerPart", "update", "ClusterRoleBinding reviewer-binding")]),
        ("foreign", [("Action", "problem", "ClusterRoleBinding reviewer-binding")]),
    ],
)
def test_a_reviewer_binding_is_created_replaced_when_ours_or_never_taken_over(
    state: str, expected: list[tuple[str, str, str]]
) -> None:
    cat = load_catalog(EXAMPLE)
    want = desired(cat, "https://k8s:6443", CA, "/tmp/audit.log", REVIEWER)
    have = _converged(want)
    have.reviewer = frozenset({"namespace", "service-account"})
    have.reviewer_binding = state
    have.auth_config = None
    got = [(a.kind, a.verb, a.target) for a in plan(want, have, prune=False)]
    assert [g for g in got if "ClusterRoleBinding" in g[2]] == expected
    if state == "foreign":
        assert not any(a.changes for a in plan(want, have, prune=False) if a.kind != "Action")
        (p,) = [a for a in plan(want, have, prune=False) if a.verb == "problem"]
        assert "not made by the product" in p.reason


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda h: setattr(h, "kv_mount", None), [("EnableMount", "create", "mount secret/")]),
        (
            lambda h: setattr(h, "kv_mount", vp.Mount("kv", "1")),
            [("Action", "problem", "mount secret/")],
        ),
        (
            lambda h: setattr(h, "auth_mount", None),
            [("EnableMount", "create", "auth kubernetes/")],
        ),
        (lambda h: h.audit.clear(), [("EnableAudit", "create", "audit file/")]),
        (lambda h: h.policies.pop("webapp"), [("PutPolicy", "create", "policy webapp")]),
        (lambda h: h.roles.pop("webapp"), [("WriteRole", "create", "role webapp")]),
    ],
    ids=["no-kv", "kv-v1", "no-auth", "no-audit", "policy-missing", "role-missing"],
)
def test_one_difference_one_typed_action(mutate: Any, expected: list[tuple[str, str, str]]) -> None:
    want = _want()
    have = _converged(want)
    mutate(have)
    assert [(a.kind, a.verb, a.target) for a in plan(want, have, prune=False)] == expected


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (0, 3, []),
        (5, 0, []),
        (2, 3, [0, 1]),
        (3, 3, [0, 1, 2]),
        (10, 1, [0]),
        (10, 2, [0, 9]),
        (10, 3, [0, 4, 9]),
        (500, 3, [0, 249, 499]),
    ],
)
def test_spread_picks_first_last_and_between(n: int, k: int, expected: list[int]) -> None:
    assert vp.spread(list(range(n)), k) == expected
