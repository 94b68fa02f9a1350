"""Static check: clean on the example, and each class of drift is found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bootstrap.catalog import Catalog, load_catalog
from bootstrap.check import rendered_from_catalog, rendered_from_dir, run_check
from bootstrap.output import write_tree
from bootstrap.render import render_tree
from bootstrap.vaultplan import ADMIN_POLICY, ADMIN_POLICY_TEXT, desired
from tests.conftest import EXAMPLE, ROOT


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    out = tmp_path / "rendered"
    write_tree(out, render_tree(load_catalog(EXAMPLE)))
    return out


def test_example_is_clean() -> None:
    result = run_check(rendered_from_catalog(load_catalog(EXAMPLE)))
    assert result.findings == []
    assert result.static_secrets == 13 and result.roles == 6 and result.pairs == 30


def test_rendered_dir_is_clean(tree: Path) -> None:
    assert run_check(rendered_from_dir(tree)).findings == []


def _edit_yaml(path: Path, fn: object) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)  # type: ignore[operator]
    path.write_text(yaml.safe_dump(doc))


def test_broadened_policy_breaks_isolation(tree: Path) -> None:
    p = tree / "vault/policies/cert-manager.hcl"
    p.write_text(p.read_text().replace("secret/data/cert-manager/*", "secret/data/*"))
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(
        "role cert-manager: can read webapp's private path 'secret/data/webapp/config'" in f
        for f in findings
    )
    assert any("role cert-manager: can read 'secret/data/shared/aws-creds'" in f for f in findings)


def test_plus_wildcard_leak_is_found(tree: Path) -> None:
    p = tree / "vault/policies/backup.hcl"
    p.write_text(p.read_text() + '\npath "secret/data/+/config" {\n  capabilities = ["read"]\n}\n')
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(
        "role backup: can read webapp's private path 'secret/data/webapp/config'" in f
        for f in findings
    )
    assert not any("webapp/credentials" in f for f in findings)


def test_missing_shared_grant_makes_path_unreadable(tree: Path) -> None:
    p = tree / "vault/policies/external-dns.hcl"
    p.write_text(p.read_text().replace("shared/ovh-dns", "shared/ovh-dnss"))
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(
        "VaultStaticSecret external-dns/ovh-dns: path 'secret/data/shared/ovh-dns' is "
        "not readable under role 'external-dns'" in f
        for f in findings
    )


def test_service_account_namespace_and_role_must_agree(tree: Path) -> None:
    _edit_yaml(
        tree / "manifests/webapp/vaultauth-webapp.yaml",
        lambda d: d["spec"]["kubernetes"].update(serviceAccount="default"),
    )
    role = tree / "vault/roles/backup.json"
    data = json.loads(role.read_text())
    data["bound_service_account_namespaces"] = ["default"]
    role.write_text(json.dumps(data))
    _edit_yaml(
        tree / "manifests/monitoring/vaultstaticsecret-config.yaml",
        lambda d: d["spec"].update(vaultAuthRef="nobody"),
    )
    findings = "\n".join(run_check(rendered_from_dir(tree)).findings)
    assert "serviceAccount 'default' is not rendered in namespace 'webapp'" in findings
    assert "bound_service_account_names ['webapp'] do not include 'default'" in findings
    assert "bound_service_account_namespaces ['default'] do not include 'backup'" in findings
    assert "VaultStaticSecret monitoring/config: vaultAuthRef 'nobody'" in findings


def test_cli_exits_non_zero_with_findings(tree: Path) -> None:
    p = tree / "vault/policies/cert-manager.hcl"
    p.write_text(p.read_text().replace("secret/data/cert-manager/*", "secret/data/*"))
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "check", "--rendered", str(tree)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "static check failed" in proc.stderr and "can read" in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "invoke", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "check passed" in ok.stdout


def test_write_tree_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    from bootstrap.errors import BootstrapError

    with pytest.raises(BootstrapError, match="not written by 'invoke render'"):
        write_tree(tmp_path / "mine", {"a.txt": "x"})
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


# -- built from what vault-config writes (issue 10, item 1) ------------------------------


def _renamed(old: str, new: str) -> Catalog:
    """The example catalog with one service renamed, built without validation: the check
    must catch what validation might let through."""
    cat = load_catalog(EXAMPLE)
    services = [s.model_copy(update={"name": new}) if s.name == old else s for s in cat.services]
    return cat.model_copy(update={"services": services})


def test_check_reads_exactly_what_vault_config_writes() -> None:
    for cat in (load_catalog(EXAMPLE), _renamed("webapp", ADMIN_POLICY)):
        want = desired(cat, "https://k8s:6443", "CA", "/tmp/audit.log")
        r = rendered_from_catalog(cat)
        assert r.policies == want.policies and r.roles == want.roles
        assert r.policies[ADMIN_POLICY] == ADMIN_POLICY_TEXT


def test_render_writes_what_vault_config_writes() -> None:
    cat = _renamed("webapp", ADMIN_POLICY)
    files = render_tree(cat)
    want = desired(cat, "https://k8s:6443", "CA", "/tmp/audit.log")
    policies = {
        rel.removeprefix("vault/policies/").removesuffix(".hcl"): text
        for rel, text in files.items()
        if rel.startswith("vault/policies/")
    }
    assert policies == want.policies
