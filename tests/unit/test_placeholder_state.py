"""Pure parts of the placeholders phase: renames of old addresses, and when the cluster
matches Terraform's state so that no plan is needed."""

from __future__ import annotations

from typing import Any

from bootstrap.clients.terraform import moved_blocks
from bootstrap.phases.placeholders import (
    LEGACY_SECRET,
    NAMESPACE,
    Live,
    matches_state,
    moves,
    secret_address,
)

LABELS = {"app.kubernetes.io/managed-by": "cluster-secrets-bootstrap"}


def state_of(
    *,
    ns_uid: str = "u-ns",
    secret_uid: str = "u-s",  # noqa: S107 - a uid
) -> dict[str, dict[str, Any]]:
    return {
        f'{NAMESPACE}["apps"]': {
            "metadata": [{"name": "apps", "uid": ns_uid, "labels": LABELS, "annotations": {}}]
        },
        secret_address("apps/db"): {
            "metadata": [
                {
                    "namespace": "apps",
                    "name": "db",
                    "uid": secret_uid,
                    "labels": LABELS,
                    "annotations": None,
                }
            ]
        },
    }


def live_of(**changes: Any) -> Live:
    ns = {
        "name": "apps",
        "uid": "u-ns",
        "labels": {**LABELS, "kubernetes.io/metadata.name": "apps"},
    }
    secret = {"name": "db", "namespace": "apps", "uid": "u-s", "labels": dict(LABELS)}
    secret.update(changes)
    return Live({"apps": ns}, {("apps", "db"): secret})


def test_secret_address_is_in_its_namespace_module() -> None:
    assert secret_address("apps/db") == (
        'module.namespace["apps"].kubernetes_secret_v1.placeholder["apps/db"]'
    )


def test_old_addresses_move_into_the_namespace_module() -> None:
    state: dict[str, dict[str, Any]] = {
        f'{LEGACY_SECRET}["apps/db"]': {},
        f'{NAMESPACE}["apps"]': {},
    }
    assert moves(state) == {f'{LEGACY_SECRET}["apps/db"]': secret_address("apps/db")}
    assert moves(state_of()) == {}
    text = moved_blocks(moves(state))
    assert f'from = {LEGACY_SECRET}["apps/db"]' in text and "to   = module.namespace" in text


def test_the_cluster_as_the_state_has_it_needs_no_plan() -> None:
    # the API server's own namespace label is one the provider ignores
    assert matches_state(state_of(), live_of())


def test_anything_else_needs_a_plan() -> None:
    assert not matches_state(state_of(secret_uid="other"), live_of())  # re-created by hand
    assert not matches_state(state_of(), Live(live_of().namespaces, {}))  # deleted
    assert not matches_state(state_of(), live_of(labels={**LABELS, "x": "y"}))  # relabelled
    assert not matches_state(state_of(), live_of(annotations={"note": "by hand"}))
    assert not matches_state(state_of(ns_uid=""), live_of())  # a state without uids
    assert not matches_state({"kubernetes_config_map_v1.x": {}}, live_of())  # not ours
    # annotations the provider leaves out of its diffs do not count
    assert matches_state(state_of(), live_of(annotations={"kubernetes.io/x": "1"}))
    assert not matches_state(state_of(), live_of(annotations={"app.kubernetes.io/x": "1"}))


def test_the_marks_of_eso_on_a_merged_secret_need_no_plan_as_the_module_ignores_them() -> None:
    """ESO labels a Secret it merges into and annotates it with its data's hash; the module's
    provider block ignores both (so a plan would find nothing): no plan for them either."""
    import re
    from pathlib import Path

    from bootstrap.phases.placeholders import IGNORED_PREFIXES

    marked = live_of(
        labels={**LABELS, "reconcile.external-secrets.io/managed": "true"},
        annotations={"reconcile.external-secrets.io/data-hash": "abc"},
    )
    assert matches_state(state_of(), marked)
    assert not matches_state(state_of(), live_of(labels={**LABELS, "external-secrets.io/x": "1"}))
    main_tf = (Path(__file__).parents[2] / "terraform" / "main.tf").read_text()
    for setting in ("ignore_labels", "ignore_annotations"):
        (patterns,) = re.findall(rf"{setting}\s*=\s*\[([^\]]*)\]", main_tf)
        regexes = [p.strip().strip('"').replace("\\\\", "\\") for p in patterns.split(",")]
        for prefix in IGNORED_PREFIXES:
            key = prefix + "managed" if prefix.endswith("/") else prefix
            assert any(re.match(r, key) for r in regexes), (setting, regexes)


def test_a_secret_the_operator_took_over_is_released_from_the_state() -> None:
    """handover owner: the operator owns the placeholder now (an owner reference to its
    VaultStaticSecret): the plan drops it from Terraform's state instead of the label
    change Terraform would make, and nothing else about it."""
    from bootstrap.clients.terraform import Change
    from bootstrap.phases.placeholders import (
        PlaceholderFacts,
        ReleaseSecret,
        plan_placeholders,
        taken_over,
    )

    owner = [{"kind": "VaultStaticSecret", "name": "db", "uid": "u-vss"}]
    assert taken_over(state_of(), live_of(ownerReferences=owner)) == {
        secret_address("apps/db"): "apps/db"
    }
    # not taken over: no owner, another kind of owner, or another object of the same name
    assert taken_over(state_of(), live_of()) == {}
    assert taken_over(state_of(), live_of(ownerReferences=[{"kind": "Deployment"}])) == {}
    assert taken_over(state_of(secret_uid="old"), live_of(ownerReferences=owner)) == {}

    address = secret_address("apps/db")
    facts = PlaceholderFacts(
        [Change(address, ("update",))],
        [],
        [],
        taken_over(state_of(), live_of(ownerReferences=owner)),
    )
    (release,) = plan_placeholders(facts, prune=False)
    assert isinstance(release, ReleaseSecret) and release.address == address
    assert release.verb == "update" and "not destroyed" in release.reason
