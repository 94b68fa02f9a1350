"""Renderers: golden files for the example catalog, document shapes, determinism."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from bootstrap.model.catalog import load_catalog
from bootstrap.model.conventions import is_placeholder
from bootstrap.model.domain import syncs
from bootstrap.model.render import placeholder_tfvars, render_tree
from tests.conftest import EXAMPLE

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "example"


def test_matches_golden_files() -> None:
    files = render_tree(load_catalog(EXAMPLE))
    if os.environ.get("UPDATE_GOLDEN"):
        for rel, text in files.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_text(text, encoding="utf-8")
    on_disk = {
        str(p.relative_to(GOLDEN)): p.read_text(encoding="utf-8")
        for p in GOLDEN.rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk) == sorted(files)
    for rel, text in files.items():
        assert on_disk[rel] == text, f"{rel} differs from golden (UPDATE_GOLDEN=1 to refresh)"


def test_policy_has_the_documents_section_4_shape() -> None:
    files = render_tree(load_catalog(EXAMPLE))
    cm = files["vault/policies/cert-manager.hcl"]
    assert 'path "secret/data/cert-manager/*" {\n  capabilities = ["read"]\n}' in cm
    assert 'path "secret/data/shared/ovh-dns" {\n  capabilities = ["read"]\n}' in cm
    assert cm.count("path ") == 2


def test_operator_resources_have_the_documents_section_3_shape() -> None:
    files = render_tree(load_catalog(EXAMPLE))
    auth = yaml.safe_load(files["manifests/cert-manager/vaultauth-cert-manager.yaml"])
    assert auth["spec"]["method"] == "kubernetes" and auth["spec"]["mount"] == "kubernetes"
    assert auth["spec"]["kubernetes"]["role"] == "cert-manager"
    assert auth["spec"]["kubernetes"]["serviceAccount"] == "cert-manager"
    vss = yaml.safe_load(files["manifests/webapp/vaultstaticsecret-config.yaml"])
    spec = vss["spec"]
    assert (spec["type"], spec["mount"], spec["path"]) == ("kv-v2", "secret", "webapp/config")
    # the empty transformation VSO 1.4.1 writes itself, said here (see render_static_secret)
    assert spec["destination"] == {"name": "config", "create": True, "transformation": {}}
    assert spec["refreshAfter"] == "30s" and spec["vaultAuthRef"] == "webapp"
    assert {"kind": "Deployment", "name": "webapp-worker"} in spec["rolloutRestartTargets"]
    sa = yaml.safe_load(files["manifests/webapp/serviceaccount-webapp-search.yaml"])
    assert sa["kind"] == "ServiceAccount" and sa["metadata"]["namespace"] == "webapp"
    mon = yaml.safe_load(files["manifests/monitoring/vaultstaticsecret-config.yaml"])
    assert mon["spec"]["refreshAfter"] == "1m"


def test_tfvars_has_every_key_as_a_placeholder() -> None:
    cat = load_catalog(EXAMPLE)
    tf = placeholder_tfvars(cat)
    assert tf["namespaces"] == cat.namespaces
    assert len(tf["secrets"]) == len(syncs(cat))
    creds = tf["secrets"]["webapp/credentials"]["data"]
    assert set(creds) == {"session-secret", "admin-password"}
    assert all(is_placeholder(v) for s in tf["secrets"].values() for v in s["data"].values())
