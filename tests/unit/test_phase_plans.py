"""Every phase's plan as a table: facts in, actions out (kind, verb, target). Plans are pure:
no Vault, no cluster, no process, no file read behind them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest

from bootstrap.clients.terraform import Change
from bootstrap.clients.vault import Health
from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action
from bootstrap.model.catalog import Source, load_catalog, parse_catalog
from bootstrap.model.domain import syncs
from bootstrap.model.operator_api import OperatorApi
from bootstrap.model.settings import Settings
from bootstrap.phases import (
    finish,
    operator,
    placeholders,
    populate,
    preflight,
    vault_ready,
    verify,
)
from bootstrap.phases.pipeline import RunContext
from bootstrap.runtime.custody import InitRecord
from tests.conftest import EXAMPLE

Row = tuple[str, str, str]  # (kind, verb, target)


def rows(actions: list[Action]) -> list[Row]:
    return [(a.kind, a.verb, a.target) for a in actions]


# -- preflight ---------------------------------------------------------------------------


def _preflight(tools: dict[str, Path | None], findings: list[str], reserved: list[str]) -> Any:
    ctx = RunContext(Settings(catalog=EXAMPLE), load_catalog(EXAMPLE))
    return preflight.Preflight().plan(ctx, preflight.PreflightFacts(tools, findings, reserved))


@pytest.mark.parametrize(
    ("tools", "findings", "reserved", "expected"),
    [
        (
            {"tofu": Path("/t/tofu")},
            [],
            [],
            [
                ("Action", "check", "catalog"),
                ("Action", "check", "static check"),
                ("Action", "check", "tool tofu"),
            ],
        ),
        (
            {"tofu": None},
            ["svc a reads b"],
            ["claims vault-secrets-operator-system"],
            [
                ("Action", "check", "catalog"),
                ("Action", "problem", "catalog"),
                ("Action", "problem", "static check"),
                ("Action", "problem", "tool tofu"),
            ],
        ),
    ],
    ids=["all-good", "missing-tool-findings-reserved"],
)
def test_preflight(
    tools: dict[str, Path | None], findings: list[str], reserved: list[str], expected: list[Row]
) -> None:
    assert rows(_preflight(tools, findings, reserved)) == expected


# -- placeholders ------------------------------------------------------------------------

NS = 'kubernetes_namespace_v1.this["apps"]'
SECRET = 'kubernetes_secret_v1.placeholder["apps/db"]'


@pytest.mark.parametrize(
    ("changes", "adopted", "kept", "prune", "expected"),
    [
        ([], [], [], False, []),
        (
            [Change(NS, ("create",)), Change(SECRET, ("create",))],
            [],
            [],
            False,
            [("TerraformChange", "create", NS), ("TerraformChange", "create", SECRET)],
        ),
        (
            [Change(SECRET, ("no-op",))],
            ["namespace apps"],
            [],
            False,
            [
                ("Action", "check", "namespace apps"),
            ],
        ),
        ([Change(SECRET, ("delete",))], [], [], False, [("Action", "problem", SECRET)]),
        ([Change(SECRET, ("delete", "create"))], [], [], False, [("Action", "problem", SECRET)]),
        ([Change(SECRET, ("delete",))], [], [], True, [("TerraformChange", "delete", SECRET)]),
        (
            [Change(SECRET, ("delete", "create"))],
            [],
            ["Secret apps/old"],
            True,
            [("Action", "check", "Secret apps/old"), ("TerraformChange", "update", SECRET)],
        ),
    ],
    ids=[
        "nothing",
        "from-scratch",
        "adopted-namespace",
        "delete-refused",
        "replace-refused",
        "delete-with-prune",
        "replace-with-prune-and-kept",
    ],
)
def test_placeholders(
    changes: list[Change], adopted: list[str], kept: list[str], prune: bool, expected: list[Row]
) -> None:
    facts = placeholders.PlaceholderFacts(changes, adopted, kept)
    assert rows(placeholders.plan_placeholders(facts, prune)) == expected


# -- vault-ready -------------------------------------------------------------------------

A, B = "http://127.0.0.1:8200", "http://127.0.0.1:8202"


def _node(addr: str, state: str) -> Health:
    code = {"uninit": 501, "sealed": 503, "active": 200, "standby": 429}[state]
    return Health(
        addr, code, state, initialized=state != "uninit", sealed=state in ("uninit", "sealed")
    )


RECORD = InitRecord(["k1", "k2", "k3"], "root", 3, 2)
PGP_RECORD = InitRecord(["enc1"], "encrypted-root", 1, 1, pgp=True)


@pytest.mark.parametrize(
    ("nodes", "record", "keys", "occupied", "expected"),
    [
        (["uninit"], None, [], None, [("Initialize", "create", A), ("Unseal", "update", A)]),
        (["uninit"], RECORD, [], None, [("Action", "problem", A)]),
        (["uninit"], None, [], "a ConfigMap", [("Action", "problem", A)]),
        (["sealed"], RECORD, ["k1", "k2"], None, [("Unseal", "update", A)]),
        (["sealed"], None, [], None, [("Action", "problem", A)]),
        (["sealed"], PGP_RECORD, [], None, [("Action", "problem", A)]),
        (["active"], RECORD, ["k1", "k2"], None, []),
        (
            ["uninit", "uninit"],
            None,
            [],
            None,
            [
                ("Initialize", "create", A),
                ("Unseal", "update", A),
                ("JoinRaft", "update", B),
                ("Unseal", "update", B),
            ],
        ),
        (["active", "sealed"], RECORD, ["k1", "k2"], None, [("Unseal", "update", B)]),
        (["active", "standby"], RECORD, ["k1", "k2"], None, []),
    ],
    ids=[
        "fresh",
        "fresh-but-custody-holds-a-record",
        "fresh-but-custody-occupied",
        "sealed-with-keys",
        "sealed-no-keys",
        "sealed-pgp-keys",
        "ready",
        "ha-fresh",
        "ha-follower-sealed",
        "ha-ready",
    ],
)
def test_vault_ready(
    nodes: list[str],
    record: InitRecord | None,
    keys: list[str],
    occupied: str | None,
    expected: list[Row],
) -> None:
    health = [_node(addr, s) for addr, s in zip((A, B), nodes, strict=False)]
    facts = vault_ready.ReadyFacts(health, record, keys, occupied)
    assert rows(vault_ready.plan_ready(facts, Settings())) == expected


def test_vault_ready_initialize_carries_the_settings() -> None:
    facts = vault_ready.ReadyFacts([_node(A, "uninit")], None, [], None, custody="file /c")
    init = vault_ready.plan_ready(facts, Settings(vault_shares=5, vault_threshold=3))[0]
    assert isinstance(init, vault_ready.Initialize)
    assert (init.addr, init.shares, init.threshold, init.pgp_keys) == (A, 5, 3, ())
    assert "file /c" in init.reason


def test_vault_ready_followers_join_the_leader_where_they_reach_it() -> None:
    facts = vault_ready.ReadyFacts([_node(A, "uninit"), _node(B, "uninit")], None, [], None)
    inside = "http://openbao-0.openbao-internal.openbao.svc:8200"
    default, told = (
        [a for a in vault_ready.plan_ready(facts, s) if isinstance(a, vault_ready.JoinRaft)]
        for s in (Settings(), Settings(vault_raft_leader_addr=inside))
    )
    assert [(j.addr, j.leader) for j in default] == [(B, A)]
    assert [(j.addr, j.leader) for j in told] == [(B, inside)]
    assert told[0].reason == f"join raft cluster of {inside}"


def test_peers_out_of_contact_are_named_with_the_address_the_leader_calls() -> None:
    peers = [
        {"node_id": "openbao-0", "address": "10.1.0.5:8201", "voter": True},
        {"node_id": "openbao-2", "address": "10.1.0.7:8201", "voter": True},
    ]
    healthy = {"openbao-0": {"healthy": True}, "openbao-2": {"healthy": True}}
    assert vault_ready.out_of_contact(healthy, peers) == ""
    lost = {**healthy, "openbao-2": {"healthy": False, "last_contact": "41.2s"}}
    assert vault_ready.out_of_contact(lost, peers) == (
        "raft peers out of contact with the leader: openbao-2 at 10.1.0.7:8201 (last contact 41.2s)"
    )


def test_a_lost_raft_peer_is_awaited_only_when_nothing_else_is_to_do() -> None:
    lost = "raft peers out of contact with the leader: b"
    up = [_node(A, "active"), _node(B, "standby")]
    facts = vault_ready.ReadyFacts(up, RECORD, ["k1"], None, out_of_contact=lost)
    (action,) = vault_ready.plan_ready(facts, Settings())
    assert isinstance(action, vault_ready.AwaitRaft)
    assert (action.verb, action.target, action.reason) == ("update", A, lost)
    assert (
        vault_ready.plan_ready(vault_ready.ReadyFacts(up, RECORD, ["k1"], None), Settings()) == []
    )
    sealed = [_node(A, "active"), _node(B, "sealed")]
    facts = vault_ready.ReadyFacts(sealed, RECORD, ["k1"], None, out_of_contact=lost)
    assert [type(a) for a in vault_ready.plan_ready(facts, Settings())] == [vault_ready.Unseal]


def test_a_peer_recorded_at_an_ip_no_node_has_is_named() -> None:
    peers = [
        {"node_id": "openbao-0", "address": "10.1.0.5:8201"},
        {"node_id": "openbao-1", "address": "10.1.0.6:8201"},
        {"node_id": "openbao-2", "address": "10.1.0.7:8201"},
    ]
    now = ["http://10.1.0.5:8200", "http://10.1.0.6:8200", "http://10.1.0.9:8200"]
    stale = vault_ready.stale_peers(peers, now)
    assert stale.startswith("raft peers recorded at an address no node has now: ")
    assert "openbao-2 at 10.1.0.7:8201" in stale and "openbao-1" not in stale
    assert "10.1.0.9" in stale  # where the nodes are now
    same = ["http://10.1.0.5:8200", "http://10.1.0.6:8200", "http://10.1.0.7:8200"]
    assert vault_ready.stale_peers(peers, same) == ""
    # other addressing: port forwards to loopback, or names; peers named by DNS
    forwards = ["http://127.0.0.1:41001", "http://127.0.0.1:41002", "http://127.0.0.1:41003"]
    assert vault_ready.stale_peers(peers, forwards) == ""
    assert vault_ready.stale_peers(peers, ["https://vault-0.example:8200"]) == ""
    named = [{"node_id": "v-0", "address": "v-0.v-internal.vault.svc:8201"}]
    assert vault_ready.stale_peers(named, now) == ""


@pytest.mark.parametrize(
    ("nodes", "record", "keys", "reasons"),
    [
        (["uninit"], None, [], ["unseal with the keys just initialized"]),
        (
            ["sealed"],
            RECORD,
            ["k1", "k2"],
            ["sealed, as every restart leaves it: unseal with the keys in file /c"],
        ),
        (
            ["sealed"],
            PGP_RECORD,
            ["k1"],
            [
                "sealed, as every restart leaves it: unseal with the keys of "
                "bootstrap.unseal_keys_file"
            ],
        ),
        (
            ["active", "uninit"],
            RECORD,
            ["k1", "k2"],
            ["unseal once joined, with the leader's keys"],
        ),
    ],
    ids=["after-init", "restarted-custody", "restarted-keys-file", "joined"],
)
def test_vault_ready_unseal_says_whose_keys(
    nodes: list[str], record: InitRecord | None, keys: list[str], reasons: list[str]
) -> None:
    """The re-unseal after a restart (a deleted pod comes back sealed) says where the keys
    come from, and never a key."""
    health = [_node(addr, s) for addr, s in zip((A, B), nodes, strict=False)]
    facts = vault_ready.ReadyFacts(health, record, keys, None, custody="file /c")
    got = [a.reason for a in vault_ready.plan_ready(facts, Settings()) if a.kind == "Unseal"]
    assert got == reasons
    assert not any(k in r for r in got for k in keys)


# -- operator ----------------------------------------------------------------------------

ONE = """
services:
  - name: web
    namespace: apps
    secrets:
      config:
        keys: {a: {generate: {length: 16}}}
"""


def _operator(facts: operator.OperatorFacts, **settings: Any) -> list[Action]:
    """The operator phase's plan, less the line that says which operator and hand-over
    (tested on its own)."""
    cat = parse_catalog(ONE, "catalog.yaml")
    ctx = RunContext(Settings(**settings), cat)
    return [a for a in operator.Operator().plan(ctx, facts) if a.target != "operator"]


def _wanted(**settings: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    cat = parse_catalog(ONE, "catalog.yaml")
    ctx = RunContext(Settings(**settings), cat)
    return {operator._key(o): o for o in operator.desired(ctx, set())}


def test_operator_from_scratch_creates_the_namespace_first() -> None:
    facts = operator.OperatorFacts({}, set())
    assert rows(_operator(facts)) == [
        ("CreateNamespace", "create", "namespace apps"),
        ("ApplyObject", "create", "ServiceAccount apps/web"),
        ("ApplyObject", "create", "VaultAuth apps/web"),
        ("ApplyObject", "create", "VaultStaticSecret apps/config"),
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("none", []),
        ("spec", [("ApplyObject", "update", "VaultStaticSecret apps/config")]),
        ("foreign", [("Action", "problem", "VaultStaticSecret apps/config")]),
        ("extra-managed", []),
    ],
)
def test_operator_existing_objects(change: str, expected: list[Row]) -> None:
    objects = {k: _deepcopy(v) for k, v in _wanted().items()}
    vss = objects[("VaultStaticSecret", "apps", "config")]
    if change == "spec":
        vss["spec"]["refreshAfter"] = "1h"
    elif change == "foreign":
        vss["metadata"]["labels"] = {}
    elif change == "extra-managed":
        gone = _deepcopy(vss)
        gone["metadata"]["name"] = "gone"
        objects[("VaultStaticSecret", "apps", "gone")] = gone
    facts = operator.OperatorFacts(objects, set(), namespaces={"apps"})
    assert rows(_operator(facts)) == expected


def test_operator_prunes_managed_objects_that_left_the_catalog() -> None:
    objects = {k: _deepcopy(v) for k, v in _wanted().items()}
    gone = _deepcopy(objects[("VaultStaticSecret", "apps", "config")])
    gone["metadata"]["name"] = "gone"
    objects[("VaultStaticSecret", "apps", "gone")] = gone
    facts = operator.OperatorFacts(objects, set(), namespaces={"apps"})
    (delete,) = _operator(facts, prune=True)
    assert isinstance(delete, operator.DeleteObject)
    assert (delete.kind_, delete.namespace, delete.name) == ("VaultStaticSecret", "apps", "gone")


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (
            operator.OperatorFacts({}, set(), foreign={("apps", "config"): "web/config"}),
            [("Action", "problem", "Secret apps/config")],
        ),
        (
            operator.OperatorFacts(
                {},
                {("apps", "config")},
                dropped_keys={("apps", "config"): ["old"]},
                namespaces={"apps"},
            ),
            [
                ("Action", "check", "Secret apps/config"),
                ("ApplyObject", "create", "ServiceAccount apps/web"),
                ("ApplyObject", "create", "VaultAuth apps/web"),
                ("ApplyObject", "create", "VaultStaticSecret apps/config"),
            ],
        ),
    ],
    ids=["foreign-secret", "placeholder-with-dropped-keys"],
)
def test_operator_secrets(facts: operator.OperatorFacts, expected: list[Row]) -> None:
    assert rows(_operator(facts)) == expected


def test_operator_hands_placeholders_over_in_place() -> None:
    facts = operator.OperatorFacts({}, {("apps", "config")}, namespaces={"apps"})
    applies = [a for a in _operator(facts) if isinstance(a, operator.ApplyObject)]
    vss = applies[-1].obj
    assert vss["kind"] == "VaultStaticSecret"
    assert vss["spec"]["destination"]["create"] is False


CURRENT = OperatorApi(
    installed=True, overwrite=True, conditions=True, last_generation=True, transformation=True
)
V010 = OperatorApi(installed=True)


@pytest.mark.parametrize(
    ("api", "mode", "says"),
    [
        (CURRENT, "inplace", "current Vault Secrets Operator"),
        (V010, "inplace", "v0.1.0 kind"),
        (CURRENT, "owner", "hand-over owner"),
    ],
)
def test_operator_plan_says_which_operator_and_hand_over(
    api: OperatorApi, mode: Literal["inplace", "owner"], says: str
) -> None:
    facts = operator.OperatorFacts({}, {("apps", "config")}, namespaces={"apps"}, api=api)
    cat = parse_catalog(ONE, "catalog.yaml")
    plan = operator.Operator().plan(RunContext(Settings(handover=mode), cat), facts)
    note = plan[0]
    assert (note.verb, note.target) == ("check", "operator")
    assert says in note.reason


@pytest.mark.parametrize("handover", ["inplace", "owner"])
def test_operator_says_the_transformation_a_current_operator_writes_back(
    handover: Literal["inplace", "owner"],
) -> None:
    """VSO 1.4.1 writes ``destination.transformation: {}`` back with its finalizer: the
    product says it from the start, so that write changes no spec (a spec change after the
    first sync would sync again and restart the targets once, Vault unchanged), and a live
    object that has it is up to date. v0.1.0's CRD has no such field: never said there."""
    cat = parse_catalog(ONE + "    restart: [{kind: Deployment, name: web}]\n", "catalog.yaml")
    ctx = RunContext(Settings(handover=handover), cat)
    for api, said in ((CURRENT, True), (V010, False)):
        want = {operator._key(o): o for o in operator.desired(ctx, {("apps", "config")}, api)}
        vss = want[("VaultStaticSecret", "apps", "config")]
        assert ("transformation" in vss["spec"]["destination"]) is said
        if said:
            assert vss["spec"]["destination"]["transformation"] == {}
    live = {k: _deepcopy(v) for k, v in want.items()}
    live[("VaultStaticSecret", "apps", "config")]["spec"]["destination"]["transformation"] = {}
    facts = operator.OperatorFacts(live, {("apps", "config")}, namespaces={"apps"}, api=CURRENT)
    plan = operator.Operator().plan(ctx, facts)
    assert not [a for a in plan if isinstance(a, operator.ApplyObject)], rows(plan)


def test_operator_without_the_crd_is_a_problem() -> None:
    facts = operator.OperatorFacts({}, set(), namespaces={"apps"}, api=OperatorApi(False))
    cat = parse_catalog(ONE, "catalog.yaml")
    (only,) = operator.Operator().plan(RunContext(Settings(), cat), facts)
    assert only.verb == "problem" and "install the Vault Secrets Operator" in only.reason


def test_a_secret_this_catalog_syncs_in_place_already_is_not_foreign() -> None:
    """A migrated Secret (no placeholder marker, no product label) that this catalog's
    VaultStaticSecret syncs with create false stays handed over; another catalog's, or a
    create-true one, does not make it the product's."""
    cat = parse_catalog(ONE, "catalog.yaml")
    ctx = RunContext(Settings(), cat)
    (vss,) = [
        o for o in operator.desired(ctx, {("apps", "config")}) if o["kind"] == "VaultStaticSecret"
    ]
    assert operator.handed_in_place(vss, "config", cat.name)
    assert not operator.handed_in_place(vss, "other", cat.name)
    assert not operator.handed_in_place(vss, "config", "another-catalog")
    assert not operator.handed_in_place(None, "config", cat.name)
    (created,) = [o for o in operator.desired(ctx, set()) if o["kind"] == "VaultStaticSecret"]
    assert not operator.handed_in_place(created, "config", cat.name)


def test_operator_labels_placeholders_for_the_cache_before_applying() -> None:
    """In place, a placeholder without the operator's cache labels gets them, in a wave
    before its VaultStaticSecret; in owner mode it does not (the operator relabels it)."""
    facts = operator.OperatorFacts(
        {}, {("apps", "config")}, namespaces={"apps"}, unlabelled={("apps", "config")}
    )
    plan = _operator(facts)
    (label,) = [a for a in plan if isinstance(a, operator.LabelSecret)]
    assert (label.namespace, label.name) == ("apps", "config")
    assert label.labels == conv.OPERATOR_CACHE_LABELS
    waves = operator.waves(plan)
    kinds = [[type(a).__name__ for a in w] for w in waves]
    assert kinds.index(["LabelSecret"]) < next(
        i for i, w in enumerate(waves) if any(isinstance(a, operator.ApplyObject) for a in w)
    )
    owner = replace(facts, api=CURRENT)
    assert _operator(owner, handover="owner")  # a plan, not a refusal
    assert not [
        a for a in _operator(owner, handover="owner") if isinstance(a, operator.LabelSecret)
    ]


def test_operator_owner_mode_keeps_one_spec_before_and_after_the_take_over() -> None:
    """A current operator restarts the targets on any spec change: in owner mode the spec is
    the same whether the Secret is a placeholder, taken over, or missing."""
    specs = []
    for held in ({("apps", "config")}, set()):
        # an operator with destination.overwrite (and no transformation, to keep it short)
        api = OperatorApi(installed=True, overwrite=True, conditions=True)
        facts = operator.OperatorFacts({}, held, namespaces={"apps"}, api=api)
        (vss,) = [
            a.obj
            for a in _operator(facts, handover="owner")
            if isinstance(a, operator.ApplyObject) and a.obj["kind"] == "VaultStaticSecret"
        ]
        specs.append(vss["spec"]["destination"])
    assert specs[0] == specs[1] == {"name": "config", "create": True, "overwrite": True}


@pytest.mark.parametrize("mode", ["inplace", "owner"])
def test_operator_writes_the_spec_a_current_operator_writes_back(
    mode: Literal["inplace", "owner"],
) -> None:
    """A current operator adds its finalizer with an update of the whole object, writing
    ``destination.transformation: {}`` into a spec without it: a new generation just after
    its first sync, and a restart of the targets. Where the CRD declares the field, every
    VaultStaticSecret says it already; where it does not (v0.1.0), none does."""
    # without the field: v0.1.0 (in place), or an operator with overwrite only (owner mode)
    old = V010 if mode == "inplace" else OperatorApi(installed=True, overwrite=True)
    want: dict[str, Any]
    for api, want in ((CURRENT, {"transformation": {}}), (old, {})):
        for handed in ({("apps", "config")}, set()):
            facts = operator.OperatorFacts({}, handed, namespaces={"apps"}, api=api)
            (vss,) = [
                a.obj
                for a in _operator(facts, handover=mode)
                if isinstance(a, operator.ApplyObject) and a.obj["kind"] == "VaultStaticSecret"
            ]
            dest = vss["spec"]["destination"]
            assert {k: v for k, v in dest.items() if k == "transformation"} == want, (api, dest)
    # once the operator has written it back, nothing differs: no update, so no restart
    cat = parse_catalog(ONE, "catalog.yaml")
    ctx = RunContext(Settings(handover=mode), cat)
    objects = {operator._key(o): o for o in operator.desired(ctx, set(), CURRENT)}
    facts = operator.OperatorFacts(objects, set(), namespaces={"apps"}, api=CURRENT)
    assert not [a for a in operator.Operator().plan(ctx, facts) if a.changes]


def test_operator_spec_update_says_a_current_operator_restarts() -> None:
    restarting = parse_catalog(
        ONE + "    restart: [{kind: Deployment, name: web}]\n", "catalog.yaml"
    )
    ctx = RunContext(Settings(), restarting)
    want = {operator._key(o): o for o in operator.desired(ctx, set())}
    objects = {k: _deepcopy(v) for k, v in want.items()}
    objects[("VaultStaticSecret", "apps", "config")]["spec"]["refreshAfter"] = "1h"
    for api, note in ((CURRENT, True), (V010, False)):
        facts = operator.OperatorFacts(objects, set(), namespaces={"apps"}, api=api)
        (update,) = [a for a in operator.Operator().plan(ctx, facts) if a.verb == "update"]
        assert ("restarts its rollout targets once" in update.reason) is note


def test_operator_owner_handover_needs_overwrite_support() -> None:
    facts = operator.OperatorFacts({}, {("apps", "config")}, namespaces={"apps"}, api=V010)
    assert rows(_operator(facts, handover="owner")) == [("Action", "problem", "handover owner")]


def _deepcopy(obj: Any) -> Any:
    import copy

    return copy.deepcopy(obj)


# -- populate ----------------------------------------------------------------------------

GEN = Source.model_validate({"generate": {"length": 8}})
FILE = Source.model_validate({"file": "a.txt"})


@pytest.mark.parametrize(
    ("keys", "real", "version", "rotate", "expected", "reasons"),
    [
        ({"a": GEN}, set(), 0, False, [("WriteKv", "create", "secret p")], ["a (generate)"]),
        (
            {"a": GEN, "b": FILE},
            {"a"},
            3,
            False,
            [
                ("WriteKv", "update", "secret p"),
                ("Action", "check", "secret p"),
            ],
            ["b (file)", "skipped-real-value (a)"],
        ),
        ({"a": GEN}, {"a"}, 3, False, [("Action", "check", "secret p")], ["unchanged"]),
        ({"a": GEN}, {"a"}, 3, True, [("WriteKv", "update", "secret p")], ["a (generate)"]),
        ({"a": None}, set(), 0, False, [("Action", "check", "secret p")], ["put by hand"]),
        ({"a": None}, {"a"}, 1, True, [("Action", "check", "secret p")], ["unchanged"]),
        (
            {"a": GEN, "m": None},
            set(),
            0,
            False,
            [
                ("WriteKv", "create", "secret p"),
                ("Action", "check", "secret p"),
            ],
            ["a (generate)", "no source for m"],
        ),
    ],
    ids=[
        "fresh",
        "one-real-one-new",
        "all-real",
        "rotate",
        "manual",
        "manual-real-rotate",
        "new-and-manual",
    ],
)
def test_populate(
    keys: dict[str, Source | None],
    real: set[str],
    version: int,
    rotate: bool,
    expected: list[Row],
    reasons: list[str],
) -> None:
    actions = populate.plan_kv(populate.KvState("p", keys, frozenset(real), version), rotate)
    assert rows(actions) == expected
    for action, reason in zip(actions, reasons, strict=True):
        assert reason in action.reason


def test_populate_write_carries_the_version_for_check_and_set() -> None:
    (w,) = populate.plan_kv(populate.KvState("p", {"a": GEN}, frozenset(), 7), False)
    assert isinstance(w, populate.WriteKv)
    assert (w.path, w.version, w.sources) == ("p", 7, (("a", GEN),))


def test_populate_converging_does_not_rotate_again(tmp_path: Path) -> None:
    cat = parse_catalog(ONE, str(tmp_path / "catalog.yaml"))
    ctx = RunContext(Settings(catalog=tmp_path / "catalog.yaml", rotate=True), cat)
    facts = [populate.KvState("web/config", {"a": GEN}, frozenset({"a"}), 2)]
    assert rows(populate.Populate().plan(ctx, facts)) == [
        ("WriteKv", "update", "secret web/config")
    ]
    ctx.converging = True
    assert rows(populate.Populate().plan(ctx, facts)) == [("Action", "check", "secret web/config")]


# -- verify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "empty", "expected"),
    [
        ("synced", False, []),
        ("placeholder", False, [("AwaitSync", "update", "Secret apps/config")]),
        ("stale", False, [("AwaitSync", "update", "Secret apps/config")]),
        ("missing", True, [("AwaitSync", "check", "Secret apps/config")]),
    ],
)
def test_verify(state: str, empty: bool, expected: list[Row]) -> None:
    (sync,) = syncs(parse_catalog(ONE, "catalog.yaml"))
    facts = [verify.SecretState(sync, state, "", empty)]
    assert rows(verify.plan_states(facts)) == expected


@pytest.mark.parametrize(
    ("state", "handover"),
    [("placeholder", True), ("missing", True), ("error", True), ("stale", False)],
)
def test_verify_watches_after_a_handover_not_after_vault_moved_on(
    state: str, handover: bool
) -> None:
    (sync,) = syncs(parse_catalog(ONE, "catalog.yaml"))
    (awaited,) = verify.plan_states([verify.SecretState(sync, state)])
    assert isinstance(awaited, verify.AwaitSync) and awaited.handover is handover


# -- finish ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root_usable", "admin_present", "expected"),
    [
        (False, False, []),
        (False, True, []),
        (True, False, [("Action", "check", "root token")]),
        (True, True, [("RevokeRoot", "delete", "root token")]),
    ],
)
def test_finish(root_usable: bool, admin_present: bool, expected: list[Row]) -> None:
    facts = finish.FinishFacts(root_usable, admin_present)
    assert rows(finish.plan_finish(facts)) == expected


# -- verify: what it awaits and which restart targets it watches ----------------------------


def test_verify_watches_the_restart_targets_that_exist_with_their_paths() -> None:
    from bootstrap.runtime import vso

    cat = load_catalog(EXAMPLE)
    present = {("webapp", "webapp"), ("monitoring", "grafana")}
    watched = vso.watched_targets(syncs(cat), lambda ns, t: (ns, t.name) in present)
    assert [(w.name, w.paths, w.refresh_seconds) for w in watched] == [
        ("Deployment monitoring/grafana", ("monitoring/config", "shared/aws-creds"), 60.0),
        (
            "Deployment webapp/webapp",
            (
                "infrastructure/database",
                "webapp/api-keys",
                "webapp/config",
                "webapp/credentials",
            ),
            30.0,
        ),
    ]
    # one refresh period of the slowest, and a margin
    assert vso.quiet_seconds(watched) == 60.0 + vso.QUIET_MARGIN


def test_verify_plans_a_watch_for_each_storm_going_on() -> None:
    import datetime as dt

    from bootstrap.model.catalog import RestartTarget
    from bootstrap.model.restarts import Storm
    from bootstrap.phases import verify
    from bootstrap.runtime import vso

    w = vso.Watched("apps", RestartTarget(kind="Deployment", name="web"), ("a/b",), 30.0)
    t = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    storm = Storm("Deployment/web", 4, t, t + dt.timedelta(seconds=90), False, True, ())
    (watch,) = verify.plan_verify(verify.VerifyFacts([], [(w, storm, "the cause")]))
    assert isinstance(watch, verify.AwaitQuiet) and watch.watched == w
    assert (watch.verb, watch.target) == ("update", "Deployment apps/web")
    assert "rolled out 4 times in 90 s" in watch.reason and "the cause" in watch.reason
    assert verify.plan_verify(verify.VerifyFacts([], [])) == []
