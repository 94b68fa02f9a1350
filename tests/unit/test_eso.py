"""Issue 27: the External Secrets Operator's objects for a catalog. Each service
reads through its own namespaced SecretStore with its own role and ServiceAccount; every
object is valid against ESO 2.9.0's own CRD schema (read from the vendored source archive)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import tarfile
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from bootstrap.core import paths
from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action
from bootstrap.model.catalog import load_catalog, parse_catalog
from bootstrap.model.domain import (
    RELOADER_RESTART_ANNOTATION,
    RESTART_ANNOTATION,
    restart_stamp,
    syncs,
)
from bootstrap.model.eso import (
    ES_CRD,
    ESO_API,
    RELOAD_ANNOTATION,
    handed_by_merge,
    read_crd,
    ready,
    reload_targets,
    reload_value,
    render_namespace,
    why_not_synced,
)
from bootstrap.model.operator_api import OperatorApi
from bootstrap.model.restarts import parse_stamp
from bootstrap.model.settings import Settings
from bootstrap.phases import operator, verify
from bootstrap.phases.pipeline import RunContext
from tests.conftest import EXAMPLE

ESO_ARCHIVE = paths.VENDOR / "external-secrets-2.9.0.tar.gz"
ADDR = "http://openbao.openbao.svc:8200"


@cache
def crd_schemas() -> dict[str, Any]:
    """kind -> the openAPIV3Schema ESO 2.9.0 serves for external-secrets.io/v1."""
    with tarfile.open(ESO_ARCHIVE, "r:gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("deploy/crds/bundle.yaml"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        docs = list(yaml.safe_load_all(extracted.read()))
    out = {}
    for doc in docs:
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        if doc["spec"]["group"] != "external-secrets.io":
            continue
        for version in doc["spec"]["versions"]:
            if version["name"] == "v1" and version["served"]:
                out[doc["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def _objects() -> list[dict[str, Any]]:
    cat = load_catalog(EXAMPLE)
    placeholders = frozenset(s.destination for s in syncs(cat) if s.destination != "aws-creds")
    return [o for ns in cat.namespaces for o in render_namespace(cat, ns, ADDR, placeholders)]


def test_eso_serves_only_v1_of_the_kinds_rendered() -> None:
    assert ESO_API == "external-secrets.io/v1"
    assert {"SecretStore", "ExternalSecret"} <= set(crd_schemas())


@pytest.mark.parametrize("kind", ["SecretStore", "ExternalSecret"])
def test_every_rendered_object_is_valid_for_eso_2_9_0(kind: str) -> None:
    schema = crd_schemas()[kind]
    objects = [o for o in _objects() if o["kind"] == kind]
    assert objects
    for obj in objects:
        errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(obj)]
        assert errors == [], (obj["metadata"], errors)


def test_the_schema_check_can_fail() -> None:
    store = next(o for o in _objects() if o["kind"] == "SecretStore")
    del store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"]
    validator = jsonschema.Draft7Validator(crd_schemas()["SecretStore"])
    assert any("'role' is a required property" in e.message for e in validator.iter_errors(store))


def test_each_namespace_reads_through_its_own_services_stores_only() -> None:
    cat = load_catalog(EXAMPLE)
    objects = _objects()
    stores = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "SecretStore"
    }
    assert {kind for kind in (o["kind"] for o in objects)} == {"SecretStore", "ExternalSecret"}
    for svc in cat.services:
        auth = stores[(svc.namespace, svc.name)]["spec"]["provider"]["vault"]["auth"]
        assert auth["kubernetes"]["role"] == conv.role_name(svc.name)
        ref = auth["kubernetes"]["serviceAccountRef"]
        assert ref == {"name": conv.service_account_name(svc.name), "audiences": ["vault"]}
    by_ref = {(s.namespace, s.destination): s for s in syncs(cat)}
    externals = [o for o in objects if o["kind"] == "ExternalSecret"]
    assert len(externals) == len(by_ref)
    for es in externals:
        sync = by_ref[(es["metadata"]["namespace"], es["metadata"]["name"])]
        spec = es["spec"]
        assert spec["secretStoreRef"] == {"name": sync.service, "kind": "SecretStore"}
        assert (es["metadata"]["namespace"], sync.service) in stores
        assert spec["dataFrom"] == [{"extract": {"key": sync.kv_path}}]
        assert spec["refreshInterval"] == sync.refresh_after


def test_a_placeholder_is_merged_into_and_a_missing_secret_is_owned() -> None:
    policies = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"]["target"]["creationPolicy"]
        for o in _objects()
        if o["kind"] == "ExternalSecret"
    }
    assert policies[("monitoring", "aws-creds")] == "Owner"
    assert policies[("webapp", "config")] == "Merge"


def test_the_rendered_objects_break_no_isolation() -> None:
    from bootstrap.model.eso import isolation_findings

    assert isolation_findings(_objects(), ADDR) == []


@pytest.mark.parametrize(
    ("edit", "finding"),
    [
        (lambda s, e: s.update(kind="ClusterSecretStore"), "cluster-wide, it serves every"),
        (
            lambda s, e: s["spec"]["provider"]["vault"].update(server="http://evil:8200"),
            "is not the Vault of this catalog",
        ),
        (
            lambda s, e: s["spec"]["provider"]["vault"]["auth"]["kubernetes"][
                "serviceAccountRef"
            ].update(namespace="kube-system"),
            "serviceAccountRef into another namespace",
        ),
        (
            lambda s, e: s["spec"]["provider"]["vault"]["auth"]["kubernetes"].update(
                role="monitoring"
            ),
            "is not the role of ServiceAccount",
        ),
        (
            lambda s, e: s["spec"]["provider"]["vault"].update(auth={"tokenSecretRef": {}}),
            "otherwise than with kubernetes auth",
        ),
        (
            lambda s, e: s["spec"]["provider"].update(aws={}),
            "a provider other than vault",
        ),
        (
            lambda s, e: e["spec"]["secretStoreRef"].update(kind="ClusterSecretStore"),
            "reads through a ClusterSecretStore",
        ),
        (
            lambda s, e: e["spec"]["dataFrom"].append({"find": {"path": "webapp"}}),
            "dataFrom.find reads every path",
        ),
    ],
    ids=[
        "cluster-store",
        "foreign-server",
        "sa-namespace",
        "other-role",
        "token-auth",
        "other-provider",
        "cluster-store-ref",
        "find",
    ],
)
def test_each_way_out_of_a_namespace_is_a_finding(edit: Any, finding: str) -> None:
    from bootstrap.model.eso import isolation_findings

    objects = _objects()
    store = next(o for o in objects if o["kind"] == "SecretStore")
    external = next(o for o in objects if o["kind"] == "ExternalSecret")
    edit(store, external)
    found = isolation_findings(objects, ADDR)
    assert len(found) == 1 and finding in found[0], found


# -- the operator phase with sync_engine eso ---------------------------------------------------

ONE = """
services:
  - name: web
    namespace: apps
    secrets:
      config:
        keys: {a: {generate: {length: 16}}}
"""
ESO_UP = OperatorApi(installed=True, engine="eso")


def _plan(facts: operator.OperatorFacts) -> list[Action]:
    ctx = RunContext(Settings(sync_engine="eso"), parse_catalog(ONE, "catalog.yaml"))
    return operator.Operator().plan(ctx, facts)


def _rows(plan: list[Action]) -> list[tuple[str, str, str]]:
    return [(type(a).__name__, a.verb, a.target) for a in plan]


def test_from_scratch_a_store_per_service_and_an_owned_external_secret() -> None:
    facts = operator.OperatorFacts({}, set(), api=ESO_UP, store_server=ADDR)
    plan = _plan(facts)
    assert _rows(plan)[1:] == [
        ("CreateNamespace", "create", "namespace apps"),
        ("ApplyObject", "create", "ServiceAccount apps/web"),
        ("ApplyObject", "create", "SecretStore apps/web"),
        ("ApplyObject", "create", "ExternalSecret apps/config"),
    ]
    _, store, es = [a.obj for a in plan if isinstance(a, operator.ApplyObject)]
    assert store["spec"]["provider"]["vault"]["server"] == ADDR
    assert es["spec"]["target"]["creationPolicy"] == "Owner"
    # what ESO writes the Secret from is exactly the catalog's path, through the store
    assert es["spec"]["dataFrom"] == [{"extract": {"key": "web/config"}}]


def test_a_placeholder_is_merged_into_and_the_plan_says_so() -> None:
    facts = operator.OperatorFacts(
        {}, {("apps", "config")}, namespaces={"apps"}, api=ESO_UP, store_server=ADDR
    )
    plan = _plan(facts)
    note = plan[0]
    assert (note.verb, note.target) == ("check", "operator")
    assert "External Secrets Operator" in note.reason and "hand-over merge" in note.reason
    (es,) = [
        a.obj
        for a in plan
        if isinstance(a, operator.ApplyObject) and a.obj["kind"] == "ExternalSecret"
    ]
    assert es["spec"]["target"] == {
        "name": "config",
        "creationPolicy": "Merge",
        # a template, so ESO copies none of the ExternalSecret's labels onto the Secret
        "template": {"engineVersion": "v2", "mergePolicy": "Replace"},
    }


def test_an_up_to_date_cluster_plans_nothing_and_a_foreign_store_is_a_problem() -> None:
    ctx = RunContext(Settings(sync_engine="eso"), parse_catalog(ONE, "catalog.yaml"))
    live = {
        operator._key(o): copy.deepcopy(o)
        for o in operator.desired(ctx, {("apps", "config")}, ESO_UP, ADDR)
    }
    facts = operator.OperatorFacts(
        live, {("apps", "config")}, namespaces={"apps"}, api=ESO_UP, store_server=ADDR
    )
    assert [a for a in _plan(facts) if a.changes] == []
    live[("SecretStore", "apps", "web")]["metadata"]["labels"] = {}
    (problem,) = [a for a in _plan(facts) if a.verb == "problem"]
    assert problem.target == "SecretStore apps/web" and "refusing to take it over" in problem.reason


def test_without_eso_installed_the_plan_says_what_to_install() -> None:
    facts = operator.OperatorFacts(
        {}, set(), api=OperatorApi(installed=False, engine="eso"), store_server=ADDR
    )
    (only,) = _plan(facts)
    assert only.verb == "problem" and only.target == f"CustomResourceDefinition {ES_CRD}"
    assert "install the External Secrets Operator" in only.reason


def _crd(*versions: tuple[str, bool]) -> dict[str, Any]:
    return {"spec": {"versions": [{"name": n, "served": s} for n, s in versions]}}


@pytest.mark.parametrize(
    ("crd", "installed"),
    [
        (None, False),
        (_crd(("v1", True)), True),
        (_crd(("v1beta1", True), ("v1", True)), True),
        (_crd(("v1beta1", True)), False),  # ESO 0.x: the product writes v1
        (_crd(("v1", False)), False),
    ],
)
def test_eso_is_installed_when_its_crd_serves_v1(
    crd: dict[str, Any] | None, installed: bool
) -> None:
    api = read_crd(crd)
    assert api.engine == "eso" and api.installed is installed
    assert ("no External Secrets Operator" in api.describe()) is not installed


def test_a_secret_this_catalog_merges_into_is_handed_over_already() -> None:
    cat = parse_catalog(ONE, "catalog.yaml")
    (es,) = [
        o
        for o in render_namespace(cat, "apps", ADDR, frozenset({"config"}))
        if o["kind"] == "ExternalSecret"
    ]
    assert handed_by_merge(es, "config", cat.name)
    assert not handed_by_merge(es, "other", cat.name)
    assert not handed_by_merge(es, "config", "another-catalog")
    owned = copy.deepcopy(es)
    owned["spec"]["target"]["creationPolicy"] = "Owner"
    assert not handed_by_merge(owned, "config", cat.name)
    assert not handed_by_merge(None, "config", cat.name)


def _cond(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "status": {
            "conditions": [
                {"type": "Ready", "status": status, "reason": reason, "message": message}
            ]
        }
    }


def test_why_an_external_secret_is_not_synced_reads_both_conditions() -> None:
    synced = _cond("True", "SecretSynced")
    valid = _cond("True", "Valid")
    assert ready(synced) == "SecretSynced" and ready(valid) == "Valid"
    assert ready(_cond("False", "SecretSyncedError")) is None and ready(None) is None
    assert why_not_synced(synced, valid) == ""
    failing = _cond("False", "SecretSyncedError", "could not get secret\n data from provider")
    assert why_not_synced(failing, valid) == (
        "SecretSyncedError: could not get secret data from provider"
    )
    bad_store = _cond("False", "InvalidProviderConfig", "unable to log in to Vault")
    assert why_not_synced(failing, bad_store).endswith(
        "; SecretStore InvalidProviderConfig: unable to log in to Vault"
    )
    assert why_not_synced(None, valid) == "its ExternalSecret does not exist"
    assert why_not_synced(synced, None) == "its SecretStore does not exist"


# -- restarts through Stakater Reloader --------------------------------------------------------


def test_each_restart_target_names_the_secrets_whose_change_rolls_it_out() -> None:
    cat = load_catalog(EXAMPLE)
    targets = reload_targets(syncs(cat))
    web = targets[("webapp", "Deployment", "webapp")]
    assert "config" in web and "credentials" in web and list(web) == sorted(web)
    # every (namespace, target) of the catalog's restart lists, and no other
    want = {(s.namespace, t.kind, t.name) for s in syncs(cat) for t in s.restart}
    assert set(targets) == want


@pytest.mark.parametrize(
    ("existing", "ours", "value"),
    [
        (None, ("a", "b"), "a,b"),
        ("", ("a",), "a"),
        ("a,b", ("a", "b"), None),  # nothing missing: nothing to write
        ("theirs", ("a",), "theirs,a"),  # someone else's entries kept, first
        (" a , x ", ("a", "b"), "a,x,b"),
    ],
)
def test_the_reload_annotation_adds_what_is_missing_and_keeps_the_rest(
    existing: str | None, ours: tuple[str, ...], value: str | None
) -> None:
    assert reload_value(existing, ours) == value


def test_verify_plans_an_annotation_only_where_one_is_missing() -> None:
    plan = verify.plan_reload(
        {
            ("apps", "Deployment", "web"): ("", ("config",)),
            ("apps", "StatefulSet", "db"): ("config,other", ("config",)),
        }
    )
    (only,) = plan
    assert isinstance(only, verify.AnnotateTarget)
    assert (only.target, only.value, only.verb) == ("Deployment apps/web", "config", "update")
    assert RELOAD_ANNOTATION in only.reason


def test_a_reloader_stamp_reads_as_a_restart_time() -> None:
    stamp = json.dumps({"type": "SECRET", "name": "config", "hash": "ab", "observedAt": 1764900000})
    assert restart_stamp({RELOADER_RESTART_ANNOTATION: stamp}) == stamp
    assert parse_stamp(stamp) == dt.datetime.fromtimestamp(1764900000, dt.UTC)
    assert parse_stamp('{"observedAt": "soon"}') is None and parse_stamp("{not json") is None
    assert restart_stamp({}) == "" and restart_stamp(None) == ""
    # VSO's own stamp first, as before
    both = {RESTART_ANNOTATION: "2026-12-05T02:10:03Z", RELOADER_RESTART_ANNOTATION: stamp}
    assert restart_stamp(both) == "2026-12-05T02:10:03Z"


def test_render_writes_eso_manifests_and_needs_vaults_address() -> None:
    from bootstrap.cli.catalog import eso_manifests
    from bootstrap.core.errors import UsageError

    cat = load_catalog(EXAMPLE)
    files = eso_manifests(cat, ADDR)
    kinds = {path.split("/")[2].split("-")[0] for path in files}
    assert kinds == {"serviceaccount", "secretstore", "externalsecret"}
    assert len([p for p in files if "/externalsecret-" in p]) == len(syncs(cat))
    webapp = yaml.safe_load(files["manifests/webapp/secretstore-webapp.yaml"])
    assert webapp["spec"]["provider"]["vault"]["server"] == ADDR
    config = yaml.safe_load(files["manifests/webapp/externalsecret-config.yaml"])
    assert config["spec"]["target"]["creationPolicy"] == "Merge"
    with pytest.raises(UsageError, match="--vault-addr"):
        eso_manifests(cat, None)


def test_a_placeholder_is_marked_for_reloader_to_ignore_before_its_external_secret() -> None:
    facts = operator.OperatorFacts(
        {},
        {("apps", "config")},
        namespaces={"apps"},
        api=ESO_UP,
        store_server=ADDR,
        unguarded={("apps", "config")},
    )
    plan = _plan(facts)
    (guard,) = [a for a in plan if isinstance(a, operator.AnnotateSecret)]
    assert guard.annotations == {"reloader.stakater.com/ignore": "true"}
    waves = operator.waves(plan)
    first_es = next(
        i
        for i, wave in enumerate(waves)
        if any(
            isinstance(a, operator.ApplyObject) and a.obj["kind"] == "ExternalSecret" for a in wave
        )
    )
    assert any(guard in wave for wave in waves[:first_es])
    # VSO never gets the mark
    vso_ctx = RunContext(Settings(), parse_catalog(ONE, "catalog.yaml"))
    vso_plan = operator.Operator().plan(vso_ctx, facts)
    assert not [a for a in vso_plan if isinstance(a, operator.AnnotateSecret)]


def test_verify_takes_the_mark_off_each_guarded_secret() -> None:
    (only,) = verify.plan_unguard({("apps", "config")})
    assert isinstance(only, verify.UnguardSecret)
    assert (only.namespace, only.name, only.verb) == ("apps", "config", "update")
    assert verify.plan_unguard(set()) == []


def test_cluster_create_runs_eso_and_reloader_instead_of_vso() -> None:
    """With sync_engine eso cluster.create's manifests hold ESO's CRDs, its controller and
    Reloader, each with its own ServiceAccount bound to the RBAC given, and no VSO object;
    the settings' client rate and concurrency become ESO's flags."""
    from bootstrap.commands.cluster import operator_choice
    from bootstrap.model import cluster as model
    from bootstrap.model.catalog import load_catalog
    from tests.conftest import EXAMPLE

    options, archive = operator_choice(Settings(sync_engine="eso"))
    assert (options.engine, archive) == ("eso", None)
    assert operator_choice(Settings())[0].engine == "vso"
    tuned = operator_choice(
        Settings(
            sync_engine="eso",
            sandbox_operator_max_reconciles=4,
            sandbox_operator_qps=100,
            sandbox_operator_burst=200,
        )
    )[0]
    assert tuned.flags() == ["--concurrent=4", "--client-qps=100", "--client-burst=200"]
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "externalsecrets.external-secrets.io"},
    }
    binding = {"kind": "ClusterRoleBinding", "metadata": {"name": "external-secrets-controller"}}
    rel = {"kind": "ClusterRole", "metadata": {"name": "reloader-reloader-role"}}
    objects = model.render_cluster(
        load_catalog(EXAMPLE),
        model.ClusterImages("bao", "", "demo", "product", eso="eso-ref", reloader="rel-ref"),
        None,
        model.ClusterOptions(eso_args=("--concurrent=4",)),
        model.EngineSource((crd,), (binding,), (rel,)),
    )
    kinds = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert ("Namespace", "external-secrets") in kinds and ("Namespace", "reloader") in kinds
    assert not any("vault-secrets-operator" in name for _, name in kinds)
    assert kinds.index(("CustomResourceDefinition", crd["metadata"]["name"])) < kinds.index(
        ("Deployment", "external-secrets")
    )
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    eso_pod = deployments["external-secrets"]["spec"]["template"]["spec"]
    assert eso_pod["serviceAccountName"] == "external-secrets"
    (container,) = eso_pod["containers"]
    assert container["image"] == "eso-ref" and container["imagePullPolicy"] == "Never"
    assert container["args"][-1] == "--concurrent=4"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    rel_pod = deployments["reloader"]["spec"]["template"]["spec"]
    assert rel_pod["serviceAccountName"] == "reloader-reloader"
    assert "--reload-strategy=annotations" in rel_pod["containers"][0]["args"]
    assert binding in objects and rel in objects
    with pytest.raises(model.ClusterConfigError, match=r"'--concurrent 4' is not"):
        model.render_cluster(
            load_catalog(EXAMPLE),
            model.ClusterImages("bao", "", "demo", "product"),
            None,
            model.ClusterOptions(eso_args=("--concurrent 4",)),
            model.EngineSource((), (), ()),
        )
