"""Issue 27, first slice: the External Secrets Operator's objects for a catalog. Each service
reads through its own namespaced SecretStore with its own role and ServiceAccount; every
object is valid against ESO 2.9.0's own CRD schema (read from the vendored source archive)."""

from __future__ import annotations

import tarfile
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from bootstrap.core import paths
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import syncs
from bootstrap.model.eso import ESO_API, render_namespace
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
