"""Migration discovery as pure logic: which Jobs and CronJobs copy Secrets (by label or by
script), what they left where, hand-made Secrets, conflicts, and a catalog fragment that is a
valid catalog whose static check passes, alone and merged into another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.commands.migrate import SecretRecord
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.conventions import OPERATOR_CACHE_LABELS
from bootstrap.model.migration import (
    DEFAULT_SELECTORS,
    Discovery,
    SecretSeen,
    WorkloadSeen,
    discover,
    find_copiers,
    fragment,
    parse_script,
    paths,
)

COPY_SCRIPT = """set -e
for ns in external-dns ingress; do
  kubectl get secret ovh-dns -n cert-manager -o json \\
    | jq 'del(.metadata.namespace,.metadata.uid,.metadata.resourceVersion)' \\
    | kubectl apply -n "$ns" -f -
done
"""


def _copier(**kw: Any) -> WorkloadSeen:
    base: dict[str, Any] = {
        "kind": "CronJob",
        "namespace": "cert-manager",
        "name": "secret-copier",
        "script": COPY_SCRIPT,
        "images": ("bitnami/kubectl:1.31",),
    }
    base.update(kw)
    return WorkloadSeen(**base)


def _secret(
    ns: str, name: str, digest: str = "d1", keys: tuple[str, ...] = ("k",), **kw: Any
) -> SecretSeen:
    return SecretSeen(ns, name, keys, digest, **kw)


@pytest.mark.parametrize(
    ("script", "env", "reads", "writes"),
    [
        (COPY_SCRIPT, {}, [("cert-manager", "ovh-dns")], ["external-dns", "ingress"]),
        (
            "kubectl get secrets/tls-ca --namespace=infra -o yaml | kubectl create -n web -f -",
            {},
            [("infra", "tls-ca")],
            ["web"],
        ),
        (
            "for t in $TARGETS; do kubectl -n $SRC get secret db -o json"
            " | kubectl replace -n $t -f -; done",
            {"TARGETS": "a, b", "SRC": "src"},
            [("src", "db")],
            ["a", "b"],
        ),
        ("echo hello", {}, [], []),
        ("kubectl get pods -n x", {}, [], []),
    ],
)
def test_scripts_say_what_they_read_and_write(
    script: str, env: dict[str, str], reads: list[tuple[str, str]], writes: list[str]
) -> None:
    assert parse_script(script, env) == (reads, writes)


def test_copiers_are_found_by_script_or_label_and_a_cronjobs_jobs_are_its_own() -> None:
    found = find_copiers(
        [
            _copier(),
            _copier(kind="Job", name="secret-copier-28990", owned=True),
            WorkloadSeen(
                "CronJob", "ops", "labelled", {"app.kubernetes.io/component": "secret-copier"}
            ),
            WorkloadSeen("CronJob", "ops", "backup", script="pg_dump | gzip > /b/x.gz"),
        ]
    )
    assert [(c.ref, c.why) for c in found] == [
        ("CronJob cert-manager/secret-copier", "its script reads a Secret and writes it"),
        ("CronJob ops/labelled", "label app.kubernetes.io/component=secret-copier"),
    ]
    assert found[0].targets == ("external-dns", "ingress")


def _fixture(**overrides: str) -> Discovery:
    digests = {"cert-manager": "d1", "external-dns": "d1", "ingress": "d1", **overrides}
    secrets = [
        _secret(ns, "ovh-dns", d, ("application-key", "application-secret"))
        for ns, d in digests.items()
    ]
    secrets += [
        _secret("ingress", "database", "d9", ("password", "username")),
        _secret("ingress", "sa-token", "d8", type="kubernetes.io/service-account-token"),
        _secret("ingress", "sh.helm.release.v1.x.v1", "d7", type="helm.sh/release.v1"),
        _secret("ingress", "vso-made", "d6", owned=True),
        _secret("elsewhere", "unrelated", "d5"),
    ]
    return discover([_copier()], secrets)


def test_discovery_finds_the_copies_the_handmade_secret_and_nothing_else() -> None:
    d = _fixture()
    (copy,) = d.copies
    assert (copy.name, copy.source, copy.namespaces) == (
        "ovh-dns",
        "cert-manager",
        ("cert-manager", "external-dns", "ingress"),
    )
    assert copy.keys == ("application-key", "application-secret") and copy.shared
    assert copy.copiers == ("CronJob cert-manager/secret-copier",) and not d.conflicts
    assert [(h.namespace, h.name, h.path) for h in d.handmade] == [
        ("ingress", "database", "ingress/database")
    ]
    assert paths(d) == {
        ("cert-manager", "ovh-dns"): "shared/ovh-dns",
        ("external-dns", "ovh-dns"): "shared/ovh-dns",
        ("ingress", "ovh-dns"): "shared/ovh-dns",
        ("ingress", "database"): "ingress/database",
    }


def test_different_values_under_one_shared_name_are_a_conflict() -> None:
    d = _fixture(ingress="d2")
    assert [(c.name, c.differs) for c in d.conflicts] == [("ovh-dns", ("ingress",))]


def test_equal_secrets_in_several_namespaces_are_copies_without_a_copier() -> None:
    secrets = [
        _secret("a", "creds", "x"),
        _secret("b", "creds", "x", created="2"),
        _secret("c", "other", "y"),
    ]
    d = discover([], secrets)
    assert [(c.name, c.namespaces, c.shared, c.copiers) for c in d.copies] == [
        ("creds", ("a", "b"), False, ())
    ]
    assert paths(d)[("b", "creds")] == "b/creds"  # one copy: each service's own path


def test_the_fragment_is_a_catalog_that_passes_the_check_alone_and_merged() -> None:
    text = fragment(_fixture(), name="migrated")
    assert "application-key" in text and "d1" not in text  # names of keys, never values
    cat = parse_catalog(text, "fragment.yaml")
    assert run_check(rendered_from_catalog(cat)).ok
    by_ns = {s.namespace: s for s in cat.services}
    assert [r.path for r in by_ns["external-dns"].reads] == ["shared/ovh-dns"]
    assert list(by_ns["ingress"].secrets) == ["database"]
    # merged into a catalog that knows one of the namespaces already
    base = yaml.safe_load(
        "version: 1\nname: home\nservices:\n  - name: web\n    namespace: web\n"
        "    secrets:\n      config: {keys: {a: {generate: {length: 8}}}}\n"
    )
    extra = yaml.safe_load(text)
    merged = {**base, "shared": extra["shared"], "services": base["services"] + extra["services"]}
    both = parse_catalog(yaml.safe_dump(merged), "merged.yaml")
    assert run_check(rendered_from_catalog(both)).ok


def test_the_catalogs_own_secrets_are_not_handmade_and_its_services_keep_their_names() -> None:
    from bootstrap.model.catalog import load_catalog
    from bootstrap.model.domain import syncs
    from tests.conftest import EXAMPLE

    cat = load_catalog(EXAMPLE)
    first = syncs(cat)[0]
    svc = next(s for s in cat.services if s.namespace == first.namespace)
    secrets = [
        _secret(svc.namespace, first.destination, "a"),
        _secret(svc.namespace, "by-hand", "b"),
    ]
    d = discover([], secrets, cat)
    assert [(h.namespace, h.name, h.path) for h in d.handmade] == [
        (svc.namespace, "by-hand", f"{svc.name}/by-hand")
    ]


# -- the plan of moving one namespace ------------------------------------------------------


def _object(ns: str, name: str, data: dict[str, bytes], **extra: Any) -> dict[str, Any]:
    import base64

    meta = {"namespace": ns, "name": name, **extra.pop("metadata", {})}
    return {
        "metadata": meta,
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        **extra,
    }


OVH = {"application-key": b"ak", "application-secret": b"as"}


def _ns_facts(**kw: Any) -> Any:
    """The external-dns namespace of the fixture's cluster (the copier's copies of ovh-dns in
    three namespaces, the discovered fragment as the catalog), with ``kw`` replaced."""
    import dataclasses

    from bootstrap.commands.migrate import build_facts

    cat = parse_catalog(fragment(_fixture(), name="mig"), "f.yaml")
    objects = [_object(ns, "ovh-dns", OVH) for ns in ("cert-manager", "external-dns", "ingress")]
    f = build_facts("external-dns", cat, objects, [_copier()], DEFAULT_SELECTORS)
    return cat, dataclasses.replace(f, **kw)


def _steps(cat: Any, f: Any, force: bool = False) -> list[tuple[str, str, str]]:
    from bootstrap.commands.migrate import plan_namespace

    return [(a.kind, a.verb, a.target) for a in plan_namespace(f, cat, force)]


def test_a_namespace_moves_in_order_and_the_copier_is_suspended_until_the_last() -> None:
    cat, f = _ns_facts()
    assert _steps(cat, f) == [
        ("BackupNamespace", "create", "backup external-dns"),
        ("PushValues", "create", "shared/ovh-dns"),
        ("LabelForOperator", "update", "Secret external-dns/ovh-dns"),
        ("ApplyOperatorObject", "create", "ServiceAccount external-dns/external-dns"),
        ("ApplyOperatorObject", "create", "VaultAuth external-dns/external-dns"),
        ("ApplyOperatorObject", "create", "VaultStaticSecret external-dns/ovh-dns"),
        ("AwaitBytes", "check", "Secret external-dns/ovh-dns"),
        ("StopCopier", "update", "CronJob cert-manager/secret-copier"),
        ("LabelForOperator", "check", "Secret external-dns/ovh-dns"),
        ("MarkMigrated", "update", "backup external-dns"),
    ]
    # the last namespace it touches: the copier goes
    cat, last = _ns_facts(migrated={"cert-manager", "ingress"})
    assert ("StopCopier", "delete", "CronJob cert-manager/secret-copier") in _steps(cat, last)


def _with_labels(labels: dict[str, str]) -> dict[str, Any]:
    import dataclasses

    return {"ovh-dns": dataclasses.replace(_ns_facts()[1].current["ovh-dns"], labels=labels)}


def _backup(secrets: dict[str, Any], done: bool) -> Any:
    from bootstrap.commands.migrate import Backup

    return Backup("external-dns", secrets, done)


def test_what_is_there_already_is_not_done_again() -> None:
    cat, f = _ns_facts(
        backup=_backup(_ns_facts()[1].current, done=False),
        current=_with_labels({"team": "dns", **OPERATOR_CACHE_LABELS}),  # labelled, then killed
        kv={"shared/ovh-dns": ({"application-key": "ak", "application-secret": "as"}, 1)},
        present={("ServiceAccount", "external-dns"), ("VaultAuth", "external-dns")},
    )
    assert _steps(cat, f) == [
        ("ApplyOperatorObject", "create", "VaultStaticSecret external-dns/ovh-dns"),
        ("AwaitBytes", "check", "Secret external-dns/ovh-dns"),
        ("StopCopier", "update", "CronJob cert-manager/secret-copier"),
        ("LabelForOperator", "check", "Secret external-dns/ovh-dns"),
        ("MarkMigrated", "update", "backup external-dns"),
    ]
    cat, done = _ns_facts(backup=_backup({}, done=True))
    assert _steps(cat, done) == [("Action", "check", "external-dns")]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"others": {"shared/ovh-dns": {"ingress/ovh-dns": {"application-key": "eA=="}}}},
            "external-dns/ovh-dns and ingress/ovh-dns hold different values",
        ),
        (
            {"kv": {"shared/ovh-dns": ({"application-key": "other"}, 3)}},
            "Vault holds other values than external-dns/ovh-dns (version 3); --force replaces",
        ),
        ({"current": {}}, "does not exist"),
        (
            {"current": {"ovh-dns": SecretRecord("Opaque", {"k": "/w=="}, {}, {})}},
            "key 'k' is not UTF-8 text",
        ),
        ({"syncs": []}, "declares no Secret in this namespace"),
    ],
)
def test_a_namespace_that_cannot_move_is_refused_before_anything(
    kw: dict[str, Any], message: str
) -> None:
    from bootstrap.commands.migrate import plan_namespace

    cat, f = _ns_facts(**kw)
    actions = plan_namespace(f, cat, force=False)
    assert {a.verb for a in actions} == {"problem"}, actions
    assert any(message in a.reason for a in actions), [a.reason for a in actions]


def test_each_secret_gets_the_operators_cache_labels_before_its_vaultstaticsecret() -> None:
    """VSO 0.10 and later check a create-false destination through a cache of Secrets with
    two labels: the plan puts exactly those two on, before the operator is told to write."""
    from bootstrap.commands.migrate import ApplyOperatorObject, LabelForOperator, plan_namespace

    cat, f = _ns_facts(current=_with_labels({"team": "dns"}))
    actions = plan_namespace(f, cat, force=False)
    (label,) = [a for a in actions if isinstance(a, LabelForOperator) and not a.recheck]
    assert label.destination == "ovh-dns" and label.verb == "update"
    assert (
        "labels app.kubernetes.io/managed-by=hashicorp-vso, "
        "app.kubernetes.io/name=vault-secrets-operator (a merge patch of these two only)"
    ) in label.reason
    assert "replaces" not in label.reason
    vss = next(
        i
        for i, a in enumerate(actions)
        if isinstance(a, ApplyOperatorObject) and a.obj["kind"] == "VaultStaticSecret"
    )
    assert actions.index(label) < vss
    assert OPERATOR_CACHE_LABELS == {
        "app.kubernetes.io/managed-by": "hashicorp-vso",
        "app.kubernetes.io/name": "vault-secrets-operator",
    }


def test_a_label_of_another_manager_is_named_where_the_plan_replaces_it() -> None:
    from bootstrap.commands.migrate import LabelForOperator, plan_namespace

    cat, f = _ns_facts(current=_with_labels({"app.kubernetes.io/managed-by": "Helm"}))
    (label,) = [
        a for a in plan_namespace(f, cat, False) if isinstance(a, LabelForOperator) and a.changes
    ]
    assert "replaces app.kubernetes.io/managed-by=Helm (the backup keeps it" in label.reason


def test_the_labels_are_rechecked_only_where_a_copier_could_have_taken_them_off() -> None:
    from bootstrap.commands.migrate import LabelForOperator, plan_namespace

    cat, f = _ns_facts(copiers=[], current=_with_labels(dict(OPERATOR_CACHE_LABELS)))
    assert not [a for a in plan_namespace(f, cat, False) if isinstance(a, LabelForOperator)]
    cat, f = _ns_facts()
    (recheck,) = [
        a for a in plan_namespace(f, cat, False) if isinstance(a, LabelForOperator) and a.recheck
    ]
    assert (recheck.verb, recheck.changes) == ("check", False)
    assert "copier" in recheck.reason


def test_the_vaultstaticsecret_has_the_spec_a_current_operator_writes_back() -> None:
    """On an operator whose CRD declares ``destination.transformation`` the spec says
    ``transformation: {}``: the operator's own first update (its finalizer) would write it,
    a new generation right after the first sync, which restarts the targets on VSO 1.4.1."""
    from bootstrap.commands.migrate import ApplyOperatorObject, plan_namespace
    from bootstrap.model.operator_api import OperatorApi

    current = OperatorApi(
        installed=True, conditions=True, last_generation=True, transformation=True
    )
    want: dict[str, Any]
    for api, want in ((current, {"transformation": {}}), (OperatorApi(installed=True), {})):
        cat, f = _ns_facts(operator=api)
        (vss,) = [
            a.obj
            for a in plan_namespace(f, cat, False)
            if isinstance(a, ApplyOperatorObject) and a.obj["kind"] == "VaultStaticSecret"
        ]
        dest = vss["spec"]["destination"]
        assert dest["create"] is False
        assert {k: v for k, v in dest.items() if k == "transformation"} == want


def test_a_cluster_without_the_operator_is_refused() -> None:
    from bootstrap.commands.migrate import plan_namespace
    from bootstrap.model.operator_api import NOT_INSTALLED

    cat, f = _ns_facts(operator=NOT_INSTALLED)
    (only,) = plan_namespace(f, cat, force=False)
    assert only.verb == "problem" and "install it first" in only.reason


def test_a_backed_up_secret_that_is_gone_is_refused_and_rollback_named() -> None:
    from bootstrap.commands.migrate import plan_namespace

    cat, f = _ns_facts(backup=_backup(_ns_facts()[1].current, done=False), current={})
    (only,) = plan_namespace(f, cat, force=False)
    assert only.verb == "problem" and "migrate.rollback" in only.reason, only


def test_force_replaces_other_values_in_vault_with_check_and_set() -> None:
    from bootstrap.commands.migrate import PushValues, plan_namespace

    cat, f = _ns_facts(kv={"shared/ovh-dns": ({"application-key": "other"}, 3)})
    (push,) = [a for a in plan_namespace(f, cat, force=True) if isinstance(a, PushValues)]
    assert (push.verb, push.version) == ("update", 3)


# -- the migration corpus (tests/corpus/migration): issue 23, finding 2 ----------------------

MIGRATION_CORPUS = sorted(
    (Path(__file__).resolve().parents[1] / "corpus" / "migration").glob("*.yaml")
)


def _corpus_header(path: Path) -> dict[str, str]:
    """``# expect:``, ``# at:`` (the Secret the message names) and ``# path:`` (the catalog
    path it names) from a scenario's first lines."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("# "):
            break
        key, sep, value = line[2:].partition(": ")
        if sep and key in ("expect", "at", "path"):
            out[key] = value
    assert set(out) == {"expect", "at", "path"}, path
    return out


def _corpus_objects(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenario's Secrets as the API gives them: values base64-encoded (``{repeat: s,
    times: n}`` stands for a long value)."""
    import base64

    out = []
    for obj in doc.get("secrets") or []:
        data = {}
        for key, value in (obj.get("data") or {}).items():
            if isinstance(value, dict):
                value = value["repeat"] * value["times"]
            data[key] = base64.b64encode(str(value).encode()).decode()
        out.append({**obj, "data": data})
    return out


def test_the_migration_corpus_is_large_enough() -> None:
    assert len(MIGRATION_CORPUS) >= 12
    assert len({p.name.split("-", 1)[0] for p in MIGRATION_CORPUS}) == len(MIGRATION_CORPUS)


@pytest.mark.parametrize("path", MIGRATION_CORPUS, ids=[p.stem for p in MIGRATION_CORPUS])
def test_migration_scenario_is_refused_naming_the_secret_and_path(path: Path) -> None:
    """Issue 23, finding 2: each scenario (cluster objects, catalog) is refused by the pure
    planner with a message naming the Secret, the catalog path and why; the CLI's refusal
    (exit 1, nothing written) comes from it; nothing is planned to be written or deleted."""
    from bootstrap.commands.migrate import (
        ApplyOperatorObject,
        BackupNamespace,
        PushValues,
        StopCopier,
        allowed_types,
        build_facts,
        plan_namespace,
        refused,
    )
    from bootstrap.core.errors import CatalogError, UsageError

    want = _corpus_header(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    cat = parse_catalog(yaml.safe_dump(doc["catalog"]), f"{path.name}#catalog")
    workloads = [WorkloadSeen(**w) for w in doc.get("workloads") or []]
    f = build_facts(doc["namespace"], cat, _corpus_objects(doc), workloads, DEFAULT_SELECTORS)
    allow = allowed_types(list(doc.get("allow_types") or []))
    actions = plan_namespace(f, cat, force=True, allow_types=allow)
    assert actions and {a.verb for a in actions} == {"problem"}, actions
    written = (ApplyOperatorObject, BackupNamespace, PushValues, StopCopier)
    assert not [a for a in actions if isinstance(a, written)]
    error = refused(doc["namespace"], actions)
    assert error is not None and error.exit_code == 1
    assert not isinstance(error, CatalogError | UsageError)
    message = str(error)
    assert want["expect"] in message, message
    assert f"{want['at']}: not moved to {want['path']}: " in message, message
    assert "Traceback" not in message
    for secret in doc["secrets"]:  # values never in the message
        for value in (secret.get("data") or {}).values():
            if isinstance(value, str) and len(value) > 2:
                assert value not in message, value


# -- issue 23, finding 2: what moves, and into which path ----------------------------------


def test_issue23_finding2_the_plan_names_every_reader_of_a_path_it_fills() -> None:
    from bootstrap.commands.migrate import PushValues, plan_namespace

    cat, f = _ns_facts()
    (push,) = [a for a in plan_namespace(f, cat, False) if isinstance(a, PushValues)]
    assert push.path == "shared/ovh-dns"
    assert push.reason.endswith(
        "read by cert-manager (cert-manager/ovh-dns), external-dns (external-dns/ovh-dns), "
        "ingress (ingress/ovh-dns)"
    ), push.reason


def _tls_catalog() -> Any:
    return parse_catalog(
        "version: 1\nname: t\nservices:\n  - name: web\n    namespace: web\n    secrets:\n"
        "      web-tls: {keys: {tls.crt: null, tls.key: null}}\n",
        "t.yaml",
    )


def test_issue23_finding2_a_tls_secret_moves_only_with_allow_type() -> None:
    from bootstrap.commands.migrate import PushValues, build_facts, plan_namespace

    cat = _tls_catalog()
    tls = _object("web", "web-tls", {"tls.crt": b"C", "tls.key": b"K"}, type="kubernetes.io/tls")
    f = build_facts("web", cat, [tls], [], DEFAULT_SELECTORS)
    (refusal,) = plan_namespace(f, cat, False)
    assert refusal.verb == "problem" and refusal.target == "Secret web/web-tls"
    assert "--allow-type kubernetes.io/tls" in refusal.reason
    allowed = plan_namespace(f, cat, False, frozenset({"kubernetes.io/tls"}))
    assert [a.path for a in allowed if isinstance(a, PushValues)] == ["web/web-tls"]


@pytest.mark.parametrize("kind", ["kubernetes.io/service-account-token", "Opaque", "a b"])
def test_issue23_finding2_allow_type_never_names_a_service_account_token(kind: str) -> None:
    from bootstrap.commands.migrate import allowed_types
    from bootstrap.core.errors import UsageError

    with pytest.raises(UsageError, match="--allow-type"):
        allowed_types(["kubernetes.io/tls", kind])


# -- issue 23, finding 4: what is deleted ---------------------------------------------------

#: The finding's CronJob: it reads its own TLS Secret and applies a ConfigMap.
CA_BUNDLE = """set -e
kubectl get secret web-tls -n web -o jsonpath='{.data.ca\\.crt}' | base64 -d > /tmp/ca.crt
kubectl create configmap ca-bundle -n web --from-file=/tmp/ca.crt --dry-run=client -o yaml \\
  | kubectl apply -f -
"""


def _web(reads_config: bool = False) -> tuple[Any, Any]:
    from bootstrap.commands.migrate import build_facts

    cat = parse_catalog(
        "version: 1\nname: t\nservices:\n  - name: web\n    namespace: web\n    secrets:\n"
        "      config: {keys: {password: null}}\n",
        "t.yaml",
    )
    script = CA_BUNDLE.replace("web-tls", "config") if reads_config else CA_BUNDLE
    cron = WorkloadSeen("CronJob", "web", "ca-bundle", script=script)
    f = build_facts(
        "web", cat, [_object("web", "config", {"password": b"pw"})], [cron], DEFAULT_SELECTORS
    )
    return cat, f


def test_issue23_finding4_a_cronjob_applying_a_configmap_from_its_own_tls_is_not_deleted() -> None:
    from bootstrap.commands.migrate import StopCopier, plan_namespace

    cat, f = _web()
    (found,) = f.copiers
    assert not found.deletable and found.targets == ("web",)
    actions = plan_namespace(f, cat, False)
    assert not [a for a in actions if isinstance(a, StopCopier)], actions
    (left,) = [a for a in actions if a.target == "CronJob web/ca-bundle"]
    assert left.verb == "check" and "left as it is" in left.reason


def test_issue23_finding4_one_reading_a_migrated_secret_is_suspended_and_the_plan_says_why() -> (
    None
):
    from bootstrap.commands.migrate import StopCopier, plan_namespace

    cat, f = _web(reads_config=True)
    (stop,) = [a for a in plan_namespace(f, cat, False) if isinstance(a, StopCopier)]
    assert (stop.verb, stop.delete) == ("update", False)
    assert "suspended, not deleted: it reads Secret web/config" in stop.reason


def test_issue23_finding4_only_cross_namespace_writers_and_labelled_copiers_are_deletable() -> None:
    found = {
        c.ref: c.deletable
        for c in find_copiers(
            [
                _copier(),
                WorkloadSeen("CronJob", "web", "ca-bundle", script=CA_BUNDLE),
                WorkloadSeen(
                    "CronJob", "ops", "labelled", {"app.kubernetes.io/component": "secret-copier"}
                ),
                WorkloadSeen(
                    "Job",
                    "setup",
                    "seed",
                    script="kubectl create secret generic db --from-literal=password=x -n app",
                ),
            ]
        )
    }
    assert found == {
        "CronJob cert-manager/secret-copier": True,
        "CronJob web/ca-bundle": False,
        "CronJob ops/labelled": True,
        "Job setup/seed": True,
    }


# -- issue 23, finding 10: discovery -------------------------------------------------------


def test_issue23_finding10_a_labelled_copier_in_another_namespace_is_not_the_source() -> None:
    """A chain: prod's copier copies db into ops; a labelled copier running in ops copies it
    on into two namespaces. The original lives in prod."""
    first = WorkloadSeen(
        "CronJob",
        "prod",
        "copy-to-ops",
        script="kubectl get secret db -n prod -o json | kubectl apply -n ops -f -",
    )
    second = WorkloadSeen(
        "CronJob",
        "ops",
        "fan-out",
        {"app.kubernetes.io/name": "secret-copier"},
        script="for ns in app1 app2; do kubectl get secret db -n ops -o json "
        '| kubectl apply -n "$ns" -f -; done',
    )
    secrets = [
        _secret(ns, "db", created=when)
        for ns, when in (("prod", "2023"), ("ops", "2025"), ("app1", "2025"), ("app2", "2025"))
    ]
    (copy,) = discover([first, second], secrets).copies
    assert copy.source == "prod" and copy.namespaces == ("prod", "app1", "app2", "ops")
    assert copy.copiers == ("CronJob ops/fan-out", "CronJob prod/copy-to-ops")


def _annotated(ns: str, name: str, digest: str, created: str, **notes: Any) -> SecretSeen:
    return _secret(ns, name, digest, created=created, **notes)


def test_issue23_finding10_replicator_copies_are_found_and_never_the_source() -> None:
    secrets = [
        _annotated("cm", "ovh", "new", "2025", copies_to=("a", "b")),
        _annotated(
            "a", "ovh", "old", "2024", copied_from="cm/ovh", copied_by="kubernetes-replicator"
        ),
        _annotated("b", "ovh", "new", "2024", copied_from="cm/ovh", copied_by="reflector"),
    ]
    d = discover([], secrets)
    (copy,) = d.copies
    assert (copy.source, copy.namespaces, copy.differs) == ("cm", ("cm", "a", "b"), ("a",))
    assert copy.copiers == ("kubernetes-replicator", "reflector")
    assert not d.handmade


def test_issue23_finding10_a_reflector_mirror_is_a_copy_not_a_source() -> None:
    secrets = [
        _annotated("src", "cert", "d", "2025"),
        _annotated("a", "cert", "d", "2020", copied_from="src/cert", copied_by="reflector"),
    ]
    (copy,) = discover([], secrets).copies
    assert (copy.source, copy.namespaces) == ("src", ("src", "a"))


def test_issue23_finding10_a_job_making_a_secret_from_literals_is_found() -> None:
    job = WorkloadSeen(
        "Job",
        "setup",
        "seed-db",
        script="kubectl create secret generic db --from-literal=password=hunter2 -n app",
    )
    (found,) = find_copiers([job])
    assert found.creates == (("app", "db"),) and found.targets == ("app",)
    assert "kubectl create secret" in found.why
    d = discover([job], [_secret("app", "db")])
    assert [(h.namespace, h.name) for h in d.handmade] == [("app", "db")]


def test_issue23_finding10_what_cannot_migrate_is_named_and_the_fragment_is_a_catalog() -> None:
    """A 700 KB Secret, an immutable one, names with dots or over 63 characters and a _raw
    key: each listed with why (in the fragment's comments too), the fragment a valid catalog."""
    long = "x" * 64
    secrets = [
        _secret("app", "bundle", size=700 * 1024),
        _secret("app", "frozen", immutable=True),
        _secret("app", "tls.example.com"),
        _secret("app", long),
        _secret("app", "raw", keys=("_raw", "k")),
        _secret("app", "fine"),
        _secret("web", "fine", "d2"),
    ]
    d = discover([], secrets, parse_catalog(_CATALOG_WITH_APP, "c.yaml"))
    why = {name: text for _, name, text in d.unmigratable}
    assert set(why) == {"bundle", "frozen", "tls.example.com", long, "raw"}
    assert "716800 bytes of data" in why["bundle"] and "1 MiB" in why["bundle"]
    assert "immutable" in why["frozen"]
    assert "DNS-1123 label" in why["tls.example.com"] and "DNS-1123 label" in why[long]
    assert "'_raw'" in why["raw"]
    text = fragment(d, name="migrated")
    cat = parse_catalog(text, "fragment.yaml")
    assert [list(s.secrets) for s in cat.services if s.namespace == "app"] == [["fine"]]
    for name in why:
        assert f"#   app/{name}: " in text


_CATALOG_WITH_APP = (
    "version: 1\nname: c\nservices:\n  - name: app\n    namespace: app\n    secrets:\n"
    "      config: {keys: {a: null}}\n"
)


def test_a_backup_round_trips_and_a_damaged_one_is_named_without_its_values(
    tmp_path: Any,
) -> None:
    """Issue 26: the backup is typed (it was a dict read by key behind asserts); one that is
    not what the product wrote stops the run with the file and what is wrong."""
    import json

    from bootstrap.commands.migrate import Backup
    from bootstrap.core.errors import BootstrapError

    path = tmp_path / "web.json"
    record = SecretRecord("Opaque", {"password": "c2VjcmV0"}, {"team": "web"}, {})
    backup = Backup("web", {"config": record}, False, 1.5, ("CronJob a/copier",))
    backup.save(path, overwrite=False)
    assert Backup.load(path) == backup
    assert Backup.load(tmp_path / "none.json") is None
    for damaged, why in [
        ("[1, 2]", "not a JSON object"),
        ('{"secrets": 3}', "no 'secrets' object"),
        ('{"secrets": {"config": {"data": {"password": 7}}}}', "its data is not a map"),
        ('{"secrets": {}, "done": "yes"}', "'done' or 'created' has the wrong type"),
        ('{"secrets": {}, "copiers": "x"}', "'copiers' is not a list"),
        ("{not json", "Expecting property name"),
    ]:
        path.write_text(damaged)
        with pytest.raises(BootstrapError) as caught:
            Backup.load(path)
        assert str(path) in str(caught.value) and why in str(caught.value), caught.value
    path.write_text(json.dumps({"secrets": {"config": {"data": {"password": ["c2VjcmV0"]}}}}))
    with pytest.raises(BootstrapError) as caught:
        Backup.load(path)
    assert "c2VjcmV0" not in str(caught.value)


# -- with the External Secrets Operator (sync_engine: eso) ------------------------------------

_ESO_CATALOG = (
    "version: 1\nname: c\nservices:\n  - name: web\n    namespace: web\n"
    "    restart: [{kind: Deployment, name: app}, {kind: StatefulSet, name: later}]\n"
    "    secrets:\n      config: {keys: {a: null}}\n"
)


def _eso_facts(**kw: Any) -> tuple[Any, Any]:
    import dataclasses

    from bootstrap.commands.migrate import build_facts
    from bootstrap.model.operator_api import OperatorApi

    cat = parse_catalog(_ESO_CATALOG, "c.yaml")
    f = build_facts(
        "web",
        cat,
        [_object("web", "config", {"a": b"1"})],
        [],
        DEFAULT_SELECTORS,
        operator=OperatorApi(installed=True, engine="eso"),
        server="https://vault.example:8200",
        reload={("web", "Deployment", "app"): "other-secret"},
    )
    return cat, dataclasses.replace(f, **kw)


def test_with_eso_a_namespace_moves_through_a_store_and_a_merging_externalsecret() -> None:
    """No label step (ESO labels a Secret it merges into), a SecretStore and an
    ExternalSecret that merges into the Secret, the wait, then the restart target that
    exists names the Secret for Reloader after the names already there; the one not deployed
    is said, not written."""
    from bootstrap.commands.migrate import (
        AnnotateReloadTarget,
        ApplyOperatorObject,
        AwaitBytes,
        plan_namespace,
    )

    cat, f = _eso_facts()
    actions = plan_namespace(f, cat, force=False)
    assert [(a.kind, a.verb, a.target) for a in actions] == [
        ("BackupNamespace", "create", "backup web"),
        ("PushValues", "create", "web/config"),
        ("ApplyOperatorObject", "create", "ServiceAccount web/web"),
        ("ApplyOperatorObject", "create", "SecretStore web/web"),
        ("ApplyOperatorObject", "create", "ExternalSecret web/config"),
        ("AwaitBytes", "check", "Secret web/config"),
        ("AnnotateReloadTarget", "update", "Deployment web/app"),
        ("Action", "check", "StatefulSet web/later"),
        ("MarkMigrated", "update", "backup web"),
    ]
    objs = {a.obj["kind"]: a.obj for a in actions if isinstance(a, ApplyOperatorObject)}
    assert objs["ExternalSecret"]["spec"]["target"]["creationPolicy"] == "Merge"
    assert objs["SecretStore"]["spec"]["provider"]["vault"]["server"] == (
        "https://vault.example:8200"
    )
    (wait,) = [a for a in actions if isinstance(a, AwaitBytes)]
    assert "ESO" in wait.reason
    (note,) = [a for a in actions if isinstance(a, AnnotateReloadTarget)]
    assert (note.workload, note.value) == (("web", "Deployment", "app"), "other-secret,config")
    # named already: nothing to write; ESO not installed: refused, saying which operator
    cat, f = _eso_facts(reload={("web", "Deployment", "app"): "config"})
    assert not [a for a in plan_namespace(f, cat, False) if isinstance(a, AnnotateReloadTarget)]
    cat, f = _eso_facts()
    from bootstrap.model.operator_api import OperatorApi

    f.operator = OperatorApi(installed=False, engine="eso")
    (only,) = plan_namespace(f, cat, False)
    assert only.verb == "problem" and "External Secrets Operator" in only.reason


def test_a_backup_keeps_the_reload_annotations_as_they_were(tmp_path: Any) -> None:
    import json

    from bootstrap.commands.migrate import Backup, operator_kinds, parse_target, target_ref
    from bootstrap.core.errors import BootstrapError

    path = tmp_path / "web.json"
    backup = Backup("web", {}, False, 1.0, (), {"Deployment web/app": "", "DaemonSet web/d": "x"})
    backup.save(path, overwrite=False)
    assert Backup.load(path) == backup
    assert parse_target(target_ref(("web", "Deployment", "app"))) == ("web", "Deployment", "app")
    for damaged in ({"Pod web/app": ""}, {"Deployment web": ""}, {"Deployment web/app": 1}):
        path.write_text(json.dumps({"secrets": {}, "targets": damaged}))
        with pytest.raises(BootstrapError, match="'targets'"):
            Backup.load(path)
    assert [k for _, k in operator_kinds("eso")] == [
        "ExternalSecret",
        "SecretStore",
        "ServiceAccount",
    ]
    assert operator_kinds("vso")[0][1] == "VaultStaticSecret"
