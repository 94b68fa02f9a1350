"""Static check: clean on the example, and each class of drift is found."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.core.output import write_tree
from bootstrap.model.catalog import Catalog, load_catalog
from bootstrap.model.check import rendered_from_catalog, rendered_from_dir, run_check
from bootstrap.model.check_tree import Reference, check_tree
from bootstrap.model.policy import parse_policy
from bootstrap.model.render import render_tree
from bootstrap.model.vaultplan import ADMIN_POLICY, ADMIN_POLICY_TEXT, desired
from tests.conftest import EXAMPLE

#: What the product renders for the example catalog.
REFERENCE = Reference(render_tree(load_catalog(EXAMPLE)))


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
    assert check_tree(tree, REFERENCE).findings == []


def _edit_yaml(path: Path, fn: Callable[[Any], object]) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)
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


def test_write_tree_refuses_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    from bootstrap.core.errors import BootstrapError

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


def test_a_service_named_like_the_admin_policy_is_found() -> None:
    findings = "\n".join(
        run_check(rendered_from_catalog(_renamed("webapp", ADMIN_POLICY))).findings
    )
    # vault-config would give the service's role the admin policy: sys/, auth/, all of secret/
    assert f"role {ADMIN_POLICY}: policy {ADMIN_POLICY} grants" in findings
    assert "outside the KV mount" in findings and "'auth/kubernetes/*'" in findings
    assert f"role {ADMIN_POLICY}: can " in findings and "backup's private path" in findings


def test_render_writes_what_vault_config_writes(tmp_path: Path) -> None:
    cat = _renamed("webapp", ADMIN_POLICY)
    files = render_tree(cat)
    want = desired(cat, "https://k8s:6443", "CA", "/tmp/audit.log")
    policies = {
        rel.removeprefix("vault/policies/").removesuffix(".hcl"): text
        for rel, text in files.items()
        if rel.startswith("vault/policies/")
    }
    assert policies == want.policies
    write_tree(tmp_path / "r", files)
    findings = run_check(rendered_from_dir(tmp_path / "r")).findings
    assert any(f.startswith(f"role {ADMIN_POLICY}: policy {ADMIN_POLICY} grants") for f in findings)


def test_a_role_given_the_admin_policy_in_a_tree_is_found(tree: Path) -> None:
    role = tree / "vault/roles/webapp.json"
    data = json.loads(role.read_text())
    data["token_policies"] = ["webapp", ADMIN_POLICY]
    role.write_text(json.dumps(data))
    findings = "\n".join(run_check(rendered_from_dir(tree)).findings)
    assert f"role webapp: grants policies ['{ADMIN_POLICY}'] besides its own 'webapp'" in findings
    assert f"role webapp: policy {ADMIN_POLICY} grants" in findings
    assert "role webapp: can create, delete, list, read and update backup's private path" in (
        findings
    )


# -- hand edits Vault would honour (issue 10, item 6) ------------------------------------


def _add(tree: Path, service: str, hcl: str) -> None:
    p = tree / f"vault/policies/{service}.hcl"
    p.write_text(p.read_text() + "\n" + hcl + "\n")


def _role(tree: Path, service: str, **changes: object) -> None:
    p = tree / f"vault/roles/{service}.json"
    data = json.loads(p.read_text())
    data.update(changes)
    p.write_text(json.dumps(data))


PRIVATE = "role cert-manager: can {} webapp's private path {!r}"


@pytest.mark.parametrize(
    ("hcl", "expected"),
    [
        # a leading '/', which Vault strips
        (
            'path "/secret/data/webapp/*" { capabilities = ["read"] }',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        # HCL escapes: \u002a is '*', \x77 is 'w'
        (
            'path "secret/data/webapp/\\u002a" { capabilities = ["read"] }',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        (
            'path "secret/data/\\x77ebapp/config" { capabilities = ["read"] }',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        # the old policy field
        (
            'path "secret/data/webapp/*" { policy = "write" }',
            PRIVATE.format("create, delete, list, read and update", "secret/data/webapp/config"),
        ),
        # capabilities other than read on another service's path
        (
            'path "secret/data/webapp/config" { capabilities = ["update"] }',
            PRIVATE.format("update", "secret/data/webapp/config"),
        ),
        (
            'path "secret/data/+/config" { capabilities = ["patch"] }',
            PRIVATE.format("patch", "secret/data/webapp/config"),
        ),
        # a comment inside the list
        (
            'path "secret/data/webapp/*" {\n  capabilities = [/* reviewed */ "read"]\n}',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        # other spacing and quoting of the path key
        (
            'path"secret/data/webapp/*"{capabilities=["read"]}',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        (
            '"path" "secret/data/webapp/*" {\n  "capabilities" = ["read"]\n}',
            PRIVATE.format("read", "secret/data/webapp/config"),
        ),
        # two blocks for one path merge (one written with a leading '/')
        (
            'path "secret/data/webapp/*" { capabilities = ["read"] }\n'
            'path "/secret/data/webapp/*" { capabilities = ["update"] }',
            PRIVATE.format("read and update", "secret/data/webapp/config"),
        ),
        # KV metadata, delete and destroy of others, and the listing of their folder
        (
            'path "secret/destroy/webapp/*" { capabilities = ["update"] }',
            PRIVATE.format("update", "secret/destroy/webapp/config"),
        ),
        (
            'path "secret/delete/+/credentials" { capabilities = ["update"] }',
            PRIVATE.format("update", "secret/delete/webapp/credentials"),
        ),
        (
            'path "secret/metadata/webapp/*" { capabilities = ["list"] }',
            PRIVATE.format("list", "secret/metadata/webapp/"),
        ),
        # shared secrets: undeclared ones, and more than reading declared ones
        (
            'path "secret/data/shared/aws-creds" { capabilities = ["read"] }',
            "role cert-manager: can read 'secret/data/shared/aws-creds', which it does not declare",
        ),
        (
            'path "secret/metadata/shared/ovh-dns" { capabilities = ["delete"] }',
            "role cert-manager: can delete 'secret/metadata/shared/ovh-dns'; it declares only "
            "reading 'secret/data/shared/ovh-dns'",
        ),
        (
            'path "secret/data/shared/*" { capabilities = ["read"] }',
            "role cert-manager: can read 'secret/data/shared/__check_probe__', which it does "
            "not declare",
        ),
        # anything outside the KV mount: auth/, sys/
        (
            'path "auth/kubernetes/role/*" { capabilities = ["update"] }',
            "role cert-manager: policy cert-manager grants update on 'auth/kubernetes/role/*', "
            "outside the KV mount",
        ),
        (
            'path "sys/policies/acl/cert-manager" { capabilities = ["update"] }',
            "role cert-manager: policy cert-manager grants update on "
            "'sys/policies/acl/cert-manager', outside the KV mount",
        ),
        (
            'path "+/data/cert-manager/*" { capabilities = ["read"] }',
            "role cert-manager: policy cert-manager grants read on '+/data/cert-manager/*', "
            "outside the KV mount",
        ),
        # a service policy only reads and lists, even its own secrets
        (
            'path "secret/data/cert-manager/*" { capabilities = ["read", "create"] }',
            "role cert-manager: policy cert-manager grants create on "
            "'secret/data/cert-manager/*'; a service's policy only reads and lists",
        ),
    ],
)
def test_hand_edits_vault_honours_are_found(tree: Path, hcl: str, expected: str) -> None:
    _add(tree, "cert-manager", hcl)
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(f.startswith(expected) for f in findings), "\n".join(findings)
    assert not [f for f in findings if "cert-manager.hcl" in f]  # read, not refused


def test_a_deny_keeps_isolation(tree: Path) -> None:
    _add(
        tree,
        "cert-manager",
        'path "secret/data/+/*" { capabilities = ["read"] }\n'
        'path "secret/data/webapp/*" { capabilities = ["deny"] }',
    )
    findings = run_check(rendered_from_dir(tree)).findings
    assert not [f for f in findings if "webapp's private path" in f]
    assert PRIVATE.replace("webapp", "backup").format("read", "secret/data/backup/config") in (
        findings
    )


@pytest.mark.parametrize(
    ("service", "changes", "expected"),
    [
        (
            "backup",
            {"bound_service_account_names": ["*"]},
            "role backup: bound_service_account_names ['*'] hold a wildcard",
        ),
        (
            "backup",
            {"bound_service_account_namespaces": ["*"]},
            "role backup: bound_service_account_namespaces ['*'] hold a wildcard",
        ),
        (
            "backup",
            {"bound_service_account_namespaces": "backup,webapp"},
            "role backup: binds 2 namespaces ['backup', 'webapp']",
        ),
        (
            "backup",
            {"bound_service_account_names": ["backup", "default"]},
            "role backup: binds the ServiceAccount 'default'",
        ),
        ("backup", {"audience": ""}, "role backup: audience is empty"),
        (
            "backup",
            {"token_policies": ["backup", "webapp"]},
            "role backup: grants policies ['webapp'] besides its own 'backup'",
        ),
        # Vault's older name for token_policies counts too
        (
            "backup",
            {"policies": "webapp"},
            "role backup: grants policies ['webapp'] besides its own 'backup'",
        ),
        (
            "backup",
            {"bound_service_account_namespace_selector": '{"matchLabels": {}}'},
            "field 'bound_service_account_namespace_selector' is not one the product writes",
        ),
    ],
)
def test_role_edits_are_found(
    tree: Path, service: str, changes: dict[str, object], expected: str
) -> None:
    _role(tree, service, **changes)
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(expected in f for f in findings), "\n".join(findings)


def test_a_role_granting_another_policy_breaks_isolation(tree: Path) -> None:
    _role(tree, "backup", token_policies=["backup", "webapp"])
    findings = run_check(rendered_from_dir(tree)).findings
    assert "role backup: can read webapp's private path 'secret/data/webapp/config'" in findings


def test_an_empty_audience_in_the_catalog_is_found() -> None:
    cat = load_catalog(EXAMPLE)
    cat = cat.model_copy(update={"defaults": cat.defaults.model_copy(update={"audience": ""})})
    findings = run_check(rendered_from_catalog(cat)).findings
    assert "role webapp: audience is empty" in "\n".join(findings)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('path "x" { capabilities = ["read"] }\nbogus = 1\n', ":2: unknown top-level key: 'bogus'"),
        ('path "x" { capabilities = ["reed"] }\n', ":1: path 'x': unknown capability: 'reed'"),
        ('path "x" { policy = "list" }\n', ":1: path 'x': invalid policy"),
        ('path "secret/data/{{identity.entity.name}}/*" {}\n', ":1: templated path"),
    ],
)
def test_what_cannot_be_read_is_a_finding_naming_file_and_text(
    tree: Path, text: str, expected: str
) -> None:
    p = tree / "vault/policies/backup.hcl"
    p.write_text(text)
    findings = run_check(rendered_from_dir(tree)).findings
    assert f"{p}{expected}" in "\n".join(findings)


def test_unreadable_and_unexpected_files_are_findings(tree: Path) -> None:
    (tree / "vault/roles/backup.json").write_text("{not json")
    (tree / "vault/policies/extra.json").write_text('{"path": {}}')
    (tree / "manifests/webapp/notes.yml").write_text("a: b\n")
    (tree / "manifests/webapp/rolebinding.yaml").write_text(
        "kind: RoleBinding\nmetadata: {name: x, namespace: webapp}\n"
    )
    findings = "\n".join(run_check(rendered_from_dir(tree)).findings)
    assert f"{tree}/vault/roles/backup.json:1: invalid JSON" in findings
    assert f"{tree}/vault/policies/extra.json: unexpected file" in findings
    assert f"{tree}/manifests/webapp/notes.yml: unexpected file" in findings
    assert "RoleBinding webapp/x: not a kind 'invoke render' writes" in findings


def test_a_tree_in_another_style_is_read_as_vault_reads_it(tree: Path) -> None:
    """Every policy rewritten in other, equivalent HCL: no finding."""
    for p in (tree / "vault/policies").glob("*.hcl"):
        out = ["/* rewritten by hand */"]
        for rule in parse_policy(p.read_text(), p.stem):
            caps = ", ".join(f'"\\u{ord(c[0]):04x}{c[1:]}"' for c in sorted(rule.capabilities))
            out.append(f'"path" "/{rule.path}"{{capabilities=[{caps},] }} # same')
        p.write_text("\n".join(out) + "\n")
    assert run_check(rendered_from_dir(tree)).findings == []
    assert check_tree(tree, REFERENCE).findings == []  # the same policies, as Vault reads them


# -- the operator's own fields (VSO 1.4.1): what breaks isolation in a rendered tree -------

AUTH = "manifests/webapp/vaultauth-webapp.yaml"
VSS = "manifests/webapp/vaultstaticsecret-api-keys.yaml"  # restarts two Deployments


def _spec(**changes: object) -> Callable[[Any], object]:
    return lambda d: d["spec"].update(changes)


def _destination(**changes: object) -> Callable[[Any], object]:
    return lambda d: d["spec"]["destination"].update(changes)


@pytest.mark.parametrize(
    ("file", "edit", "expected"),
    [
        (
            AUTH,
            _spec(allowedNamespaces=["*"]),
            "VaultAuth webapp/webapp: allowedNamespaces ['*'] lets VaultStaticSecrets of every "
            "namespace log in with it, under its role",
        ),
        (
            AUTH,
            _spec(allowedNamespaces=["webapp", "backup"]),
            "VaultAuth webapp/webapp: allowedNamespaces ['webapp', 'backup'] lets "
            "VaultStaticSecrets of namespaces ['backup'] log in with it",
        ),
        (
            AUTH,
            _spec(allowedNamespaces="backup"),
            "VaultAuth webapp/webapp: allowedNamespaces must be a list of namespaces, not 'backup'",
        ),
        (
            AUTH,
            _spec(vaultConnectionRef="backup/vault"),
            "VaultAuth webapp/webapp: vaultConnectionRef 'backup/vault' names a VaultConnection "
            "of namespace 'backup': its ServiceAccount's token would go to the address that "
            "namespace sets",
        ),
        (
            AUTH,
            _spec(vaultAuthGlobalRef={"name": "shared", "namespace": "platform"}),
            "VaultAuth webapp/webapp: vaultAuthGlobalRef names VaultAuthGlobal platform/shared, "
            "which would supply what this VaultAuth leaves unset",
        ),
        (
            AUTH,
            _spec(vaultAuthGlobalRef={"allowDefault": True}),
            "VaultAuth webapp/webapp: vaultAuthGlobalRef names the default VaultAuthGlobal of "
            "its namespace or the operator's",
        ),
        (
            VSS,
            _spec(vaultAuthRef="backup/backup"),
            "VaultStaticSecret webapp/api-keys: vaultAuthRef 'backup/backup' names a VaultAuth "
            "of namespace 'backup': the Secret would be read with another namespace's role",
        ),
        (
            VSS,
            lambda d: d["spec"].pop("vaultAuthRef"),
            "VaultStaticSecret webapp/api-keys: no vaultAuthRef, so the operator would use the "
            "default VaultAuth of its own namespace",
        ),
        (
            VSS,
            _destination(
                transformation={
                    "transformationRefs": [{"name": "t"}, {"namespace": "backup", "name": "t"}]
                }
            ),
            "VaultStaticSecret webapp/api-keys: destination.transformation.transformationRefs[1] "
            "names SecretTransformation backup/t: templates of namespace 'backup' would decide "
            "what the Secret holds",
        ),
        (
            VSS,
            _destination(overwrite=True),
            "VaultStaticSecret webapp/api-keys: destination.overwrite is true: the operator "
            "would replace any existing Secret 'api-keys' in namespace 'webapp', whoever made it",
        ),
        (
            VSS,
            _spec(refreshAfter="1h30m"),
            "VaultStaticSecret webapp/api-keys: refreshAfter '1h30m' is refused by VSO 1.4.1's "
            "CRD (pattern ^([0-9]+(\\.[0-9]+)?(s|m|h))$): one number and one unit, e.g. '90m'",
        ),
        (
            VSS,
            _spec(refreshAfter=30),
            "VaultStaticSecret webapp/api-keys: refreshAfter 30 is refused by VSO 1.4.1's CRD",
        ),
        (
            VSS,
            _spec(hmacSecretData=False),
            "VaultStaticSecret webapp/api-keys: hmacSecretData is false, so the operator ignores "
            "rolloutRestartTargets ['Deployment/webapp', 'Deployment/webapp-worker']: they "
            "would never restart",
        ),
        # issue 23, finding 6: without restart targets too
        (
            VSS,
            _spec(hmacSecretData=False, rolloutRestartTargets=[]),
            "VaultStaticSecret webapp/api-keys: hmacSecretData is False: the operator would keep "
            "no HMAC of the data",
        ),
        (
            AUTH,
            _spec(vaultConnectionRef="elsewhere"),
            "VaultAuth webapp/webapp: vaultConnectionRef 'elsewhere' names VaultConnection "
            "webapp/elsewhere, not the operator's default connection",
        ),
    ],
    ids=[
        "allowedNamespaces-wildcard",
        "allowedNamespaces-other",
        "allowedNamespaces-not-a-list",
        "vaultConnectionRef-other-namespace",
        "vaultAuthGlobalRef-named",
        "vaultAuthGlobalRef-default",
        "vaultAuthRef-other-namespace",
        "vaultAuthRef-missing",
        "transformationRefs-other-namespace",
        "overwrite",
        "refreshAfter-compound",
        "refreshAfter-not-a-string",
        "hmacSecretData-false-with-restarts",
        "hmacSecretData-false-without-restarts",
        "vaultConnectionRef-own-namespace",
    ],
)
def test_operator_fields_that_break_isolation_are_found(
    tree: Path, file: str, edit: Callable[[Any], object], expected: str
) -> None:
    _edit_yaml(tree / file, edit)
    findings = run_check(rendered_from_dir(tree)).findings
    assert any(f.startswith(f"{tree}/{file}: {expected}") for f in findings), "\n".join(findings)


@pytest.mark.parametrize(
    ("file", "edit"),
    [
        (AUTH, _spec(allowedNamespaces=["webapp"])),
        (AUTH, _spec(allowedNamespaces=[])),
        (VSS, _spec(vaultAuthRef="webapp/webapp")),
        (VSS, _destination(transformation={"excludeRaw": True, "transformationRefs": []})),
        (VSS, _destination(overwrite=False)),
        (VSS, _spec(refreshAfter="1.5h")),
        (AUTH, _spec(vaultConnectionRef="vault-secrets-operator-system/default")),
        (VSS, lambda d: d["spec"].pop("hmacSecretData")),  # the CRD's default: true
        (VSS, _destination(create=False)),
        (VSS, lambda d: d["spec"]["destination"].pop("transformation")),  # v0.1.0's CRD
        (AUTH, lambda d: d["metadata"].setdefault("annotations", {}).update({"a.b/c": "d"})),
    ],
    ids=[
        "allowedNamespaces-own",
        "allowedNamespaces-empty",
        "vaultAuthRef-own-namespace",
        "transformation-without-refs",
        "overwrite-false",
        "refreshAfter-decimal",
        "vaultConnectionRef-operators-default",
        "hmacSecretData-default",
        "create-false",
        "transformation-left-out",
        "annotation-added",
    ],
)
def test_operator_fields_that_keep_isolation_are_not_findings(
    tree: Path, file: str, edit: Callable[[Any], object]
) -> None:
    """Neither the static check nor the comparison with what the product renders (issue 23,
    finding 6) finds a difference known to be safe."""
    _edit_yaml(tree / file, edit)
    assert run_check(rendered_from_dir(tree)).findings == []
    assert check_tree(tree, REFERENCE).findings == []


NEVER_RENDERED = {
    "VaultAuthGlobal": "it supplies what the VaultAuths naming it leave unset",
    "VaultConnection": "a VaultAuth that names it logs in at the address it holds",
    "VaultDynamicSecret": "it syncs credentials from any Vault mount the role reaches",
    "VaultPKISecret": "it issues certificates from a PKI mount",
    "HCPAuth": "it authenticates to HCP with a service principal",
    "HCPVaultSecretsApp": "it syncs an HCP Vault Secrets app into a Secret",
    "SecretTransformation": "its templates rewrite the Secrets of every VaultStaticSecret",
    "CSISecrets": "it hands Vault secrets to pods through the CSI driver",
}


@pytest.mark.parametrize("kind", sorted(NEVER_RENDERED))
def test_operator_kinds_the_product_never_renders_are_found(tree: Path, kind: str) -> None:
    p = tree / f"manifests/webapp/{kind.lower()}-x.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "secrets.hashicorp.com/v1beta1",
                "kind": kind,
                "metadata": {"name": "x", "namespace": "webapp"},
                "spec": {},
            }
        )
    )
    findings = run_check(rendered_from_dir(tree)).findings
    assert len(findings) == 1, findings
    assert findings[0].startswith(
        f"{p}: {kind} webapp/x: a kind of the operator the product never renders: "
        f"{NEVER_RENDERED[kind]}"
    )


def test_a_vault_connection_outside_the_services_namespaces_is_only_unexpected(
    tree: Path,
) -> None:
    (tree / "manifests/vault-secrets-operator-system").mkdir()
    p = tree / "manifests/vault-secrets-operator-system/vaultconnection-default.yaml"
    p.write_text(
        "kind: VaultConnection\n"
        "metadata: {name: default, namespace: vault-secrets-operator-system}\n"
    )
    findings = run_check(rendered_from_dir(tree)).findings
    assert findings == [
        f"{p}: VaultConnection vault-secrets-operator-system/default: not a kind "
        "'invoke render' writes; the check does not evaluate it"
    ]


def test_an_object_declared_in_two_files_names_both(tree: Path) -> None:
    copy = tree / "manifests/webapp/vaultauth-copy.yaml"
    copy.write_text((tree / AUTH).read_text())
    findings = run_check(rendered_from_dir(tree)).findings
    assert f"{copy} and {tree / AUTH}: VaultAuth webapp/webapp: declared twice" in findings


def test_a_compound_refresh_after_from_the_catalog_is_found() -> None:
    """Built without validation (the catalog refuses it): the check still finds it."""
    cat = load_catalog(EXAMPLE)
    cat = cat.model_copy(
        update={"defaults": cat.defaults.model_copy(update={"refresh_after": "1m30s"})}
    )
    findings = "\n".join(run_check(rendered_from_catalog(cat)).findings)
    assert "VaultStaticSecret backup/config: refreshAfter '1m30s' is refused by VSO 1.4.1's" in (
        findings
    )
    assert "one number and one unit, e.g. '90s'" in findings


# -- issue 23, finding 6: what the static check alone now finds ---------------------------


@pytest.mark.parametrize(
    ("file", "hcl", "expected"),
    [
        (
            "webapp",
            'path "secret/metadata/" { capabilities = ["list"] }',
            "role webapp: can list 'secret/metadata/': the names of every secret of the mount",
        ),
        (
            "backup",
            'path "secret/data/*" { capabilities = ["read"] }\n'
            + "\n".join(
                f'path "secret/data/{s}/*" {{ capabilities = ["deny"] }}'
                for s in (
                    "webapp",
                    "webapp-search",
                    "monitoring",
                    "cert-manager",
                    "external-dns",
                    "shared",
                    "infrastructure",
                )
            ),
            "role backup: can read 'secret/data/__check_new_service__/__check_probe__': its "
            "rules reach beyond the paths the catalog gives it",
        ),
        (
            "webapp",
            'path "secret/data/webapp/../backup/config" { capabilities = ["read"] }',
            "{file}: path 'secret/data/webapp/../backup/config' has a '..' or '.' segment",
        ),
        (
            "bootstrap-admin",
            'path "*" { capabilities = ["sudo"] }',
            "{file}: policy bootstrap-admin: path '*' grants [sudo]; the product renders no "
            "such path for this policy",
        ),
    ],
    ids=["list-metadata-root", "glob-with-denies", "dotdot", "admin-widened"],
)
def test_policy_edits_the_isolation_proof_missed_are_found(
    tree: Path, file: str, hcl: str, expected: str
) -> None:
    """Issue 23, finding 6: each of these passed ``check --rendered``."""
    _add(tree, file, hcl)
    findings = run_check(rendered_from_dir(tree)).findings
    want = expected.format(file=tree / f"vault/policies/{file}.hcl")
    assert any(f.startswith(want) for f in findings), "\n".join(findings)


def test_a_policy_no_role_grants_is_found(tree: Path) -> None:
    """Issue 23, finding 6: a policy waiting in the tree for a role to grant it."""
    p = tree / "vault/policies/spare.hcl"
    p.write_text('path "secret/data/*" { capabilities = ["read"] }\n')
    findings = run_check(rendered_from_dir(tree)).findings
    assert f"{p}: policy spare: no role grants it; the product renders no such policy" in (
        "\n".join(findings)
    )


def test_the_glob_finding_is_said_once_per_role(tree: Path) -> None:
    _add(tree, "backup", 'path "secret/data/+/*" { capabilities = ["read"] }')
    findings = run_check(rendered_from_dir(tree)).findings
    assert len([f for f in findings if "__check_new_service__" in f]) == 1


# -- issue 23, finding 6: the tree against what the product renders ------------------------


def test_a_role_in_another_spelling_is_no_difference(tree: Path) -> None:
    _role(
        tree,
        "webapp",
        token_policies=None,
        policies="Webapp,default",
        bound_service_account_names="webapp",
        token_ttl="1h",
    )
    data = json.loads((tree / "vault/roles/webapp.json").read_text())
    data.pop("token_policies")
    (tree / "vault/roles/webapp.json").write_text(json.dumps(data))
    assert check_tree(tree, REFERENCE).findings == []


def test_missing_and_extra_files_are_findings(tree: Path) -> None:
    (tree / "manifests/webapp/vaultstaticsecret-config.yaml").unlink()
    (tree / "terraform/placeholders.auto.tfvars.json").unlink()
    (tree / "notes.txt").write_text("x")
    findings = "\n".join(check_tree(tree, REFERENCE).findings)
    assert (
        f"{tree}/manifests/webapp/vaultstaticsecret-config.yaml: VaultStaticSecret "
        "webapp/config is missing; the product renders it for this catalog"
    ) in findings
    assert f"{tree}/terraform/placeholders.auto.tfvars.json: missing" in findings
    assert f"{tree}/notes.txt: not a file 'invoke render' writes for this catalog" in findings


def test_the_operators_connection_at_the_settings_address_is_only_unexpected(
    tree: Path,
) -> None:
    (tree / "manifests/vault-secrets-operator-system").mkdir()
    p = tree / "manifests/vault-secrets-operator-system/vaultconnection-default.yaml"
    p.write_text(
        "kind: VaultConnection\n"
        "metadata: {name: default, namespace: vault-secrets-operator-system}\n"
        "spec: {address: 'http://openbao.openbao.svc:8200'}\n"
    )
    ref = Reference(REFERENCE.files, vault_connection_address="http://openbao.openbao.svc:8200")
    assert [f for f in check_tree(tree, ref).findings if "spec.address" in f] == []
    other = Reference(REFERENCE.files, vault_connection_address="http://vault.example:8200")
    findings = "\n".join(check_tree(tree, other).findings)
    assert (
        f"{p}: VaultConnection vault-secrets-operator-system/default: spec.address is "
        '"http://openbao.openbao.svc:8200": a VaultAuth using this connection sends its '
        "ServiceAccount's token there; the operator's default connection the product applies "
        "holds 'http://vault.example:8200'"
    ) in findings


# -- the sync engine eso: a tree 'invoke render' writes with ESO's objects --------------------

ESO_SERVER = "http://vault.vault:8200"


def _eso_files() -> dict[str, str]:
    from bootstrap.cli.catalog import _without_vso, eso_manifests

    cat = load_catalog(EXAMPLE)
    return {**_without_vso(render_tree(cat)), **eso_manifests(cat, ESO_SERVER)}


ESO_REFERENCE = Reference(_eso_files(), eso_server=ESO_SERVER)


@pytest.fixture
def eso_tree(tmp_path: Path) -> Path:
    out = tmp_path / "rendered-eso"
    write_tree(out, _eso_files())
    return out


def test_an_eso_tree_as_rendered_is_clean_and_counts_its_external_secrets(
    eso_tree: Path,
) -> None:
    result = check_tree(eso_tree, ESO_REFERENCE)
    assert result.findings == []
    assert (result.external_secrets, result.static_secrets, result.roles) == (13, 0, 6)


def _store(tree: Path, ns: str, name: str) -> Path:
    return tree / "manifests" / ns / f"secretstore-{name}.yaml"


def _vault(doc: dict[str, Any]) -> dict[str, Any]:
    vault: dict[str, Any] = doc["spec"]["provider"]["vault"]
    return vault


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        # an ExternalSecret of webapp reading monitoring's path through webapp's store
        (
            lambda t: _edit_yaml(
                t / "manifests/webapp/externalsecret-config.yaml",
                lambda d: d["spec"]["dataFrom"][0]["extract"].update(key="monitoring/config"),
            ),
            "ExternalSecret webapp/config: path 'secret/data/monitoring/config' is not readable "
            "under role 'webapp'",
        ),
        # webapp's store logging in with monitoring's role
        (
            lambda t: _edit_yaml(
                _store(t, "webapp", "webapp"),
                lambda d: _vault(d)["auth"]["kubernetes"].update(role="monitoring"),
            ),
            "role monitoring: bound_service_account_names ['monitoring'] do not include 'webapp'",
        ),
        # a ServiceAccount of another namespace
        (
            lambda t: _edit_yaml(
                _store(t, "webapp", "webapp"),
                lambda d: _vault(d)["auth"]["kubernetes"]["serviceAccountRef"].update(
                    namespace="monitoring"
                ),
            ),
            "SecretStore webapp/webapp: serviceAccountRef into another namespace ('monitoring')",
        ),
        # a server that is not this catalog's Vault: the token would go there
        (
            lambda t: _edit_yaml(
                _store(t, "webapp", "webapp"),
                lambda d: _vault(d).update(server="https://attacker.example:8200"),
            ),
            "SecretStore webapp/webapp: server 'https://attacker.example:8200' is not the Vault "
            "of this catalog",
        ),
        # an ExternalSecret through a ClusterSecretStore
        (
            lambda t: _edit_yaml(
                t / "manifests/webapp/externalsecret-config.yaml",
                lambda d: d["spec"]["secretStoreRef"].update(kind="ClusterSecretStore"),
            ),
            "ExternalSecret webapp/config: reads through a ClusterSecretStore ('webapp')",
        ),
        # a ClusterSecretStore added to the tree
        (
            lambda t: (t / "manifests/webapp/clustersecretstore-all.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "external-secrets.io/v1",
                        "kind": "ClusterSecretStore",
                        "metadata": {"name": "all"},
                        "spec": {"provider": {"vault": {"server": ESO_SERVER}}},
                    }
                )
            ),
            "a kind of the External Secrets Operator the product never renders: cluster-wide",
        ),
    ],
)
def test_an_eso_tree_that_breaks_isolation_is_refused_naming_the_file_and_why(
    eso_tree: Path, edit: Callable[[Path], object], found: str
) -> None:
    edit(eso_tree)
    findings = check_tree(eso_tree, ESO_REFERENCE).findings
    assert any(found in f for f in findings), findings
    assert all(str(eso_tree) in f or f.startswith("role ") for f in findings), findings


def test_the_catalog_check_with_eso_proves_esos_objects() -> None:
    """``invoke check`` without --rendered and with sync_engine eso evaluates the objects the
    bootstrap applies for ESO (SecretStores, ExternalSecrets), not VSO's."""
    r = rendered_from_catalog(load_catalog(EXAMPLE), "eso", ESO_SERVER)
    kinds = {d["kind"] for d in r.manifests}
    assert kinds == {"ServiceAccount", "SecretStore", "ExternalSecret"}
    result = run_check(r)
    assert result.findings == []
    assert (result.external_secrets, result.static_secrets, result.roles) == (13, 0, 6)
    # the same catalog proves the same over VSO's objects
    vso = run_check(rendered_from_catalog(load_catalog(EXAMPLE)))
    assert (vso.external_secrets, vso.static_secrets, vso.findings) == (0, 13, [])


def test_the_catalog_check_with_eso_finds_a_store_that_names_another_vault() -> None:
    """The chain is evaluated: a SecretStore of the catalog's objects naming a Vault other
    than the one the stores are checked against is a finding naming it."""
    r = rendered_from_catalog(load_catalog(EXAMPLE), "eso", ESO_SERVER)
    r.eso_server = "http://elsewhere:8200"
    findings = "\n".join(run_check(r).findings)
    said = f"SecretStore webapp/webapp: server {ESO_SERVER!r} is not the Vault of this catalog"
    assert said in findings
