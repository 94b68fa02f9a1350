"""Static check: prove, before anything is applied, that the rendered policies, roles and
operator manifests agree.

- every VaultStaticSecret's path is readable under the policies of the role its VaultAuth
  uses (evaluated as Vault does: ``*`` suffix glob, ``+`` segment wildcard, priority);
- the VaultStaticSecret, its VaultAuth, the ServiceAccount, the namespace and the role agree
  (the usual cause of VSO 403s);
- no service can read another service's private path, nor a shared or infrastructure
  secret it does not declare.

Works on the in-memory render of a catalog, or on a rendered directory (GitOps review).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap import conventions as conv
from bootstrap.catalog import Catalog
from bootstrap.errors import BootstrapError
from bootstrap.policy import PolicyParseError, Rule, allowed, parse_policy
from bootstrap.render import operator_resources, vault_acl

PROBE = "__check_probe__"


@dataclass
class Rendered:
    policies: dict[str, str] = field(default_factory=dict)
    roles: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CheckResult:
    findings: list[str]
    static_secrets: int
    roles: int
    pairs: int

    @property
    def ok(self) -> bool:
        return not self.findings


def rendered_from_catalog(catalog: Catalog) -> Rendered:
    """Exactly what vault-config writes for the catalog (its desired policies and roles, the
    bootstrap-admin policy included) and the operator resources."""
    acl = vault_acl(catalog)
    out = Rendered(dict(acl.policies), {n: dict(r) for n, r in acl.roles.items()})
    for docs in operator_resources(catalog).values():
        out.manifests += docs
    return out


def rendered_from_dir(root: Path) -> Rendered:
    """Read a tree written by ``invoke render`` (possibly edited by hand)."""
    if not root.is_dir():
        raise BootstrapError(f"{root}: not a directory written by 'invoke render'")
    out = Rendered()
    for p in sorted((root / "vault" / "policies").glob("*.hcl")):
        out.policies[p.stem] = p.read_text(encoding="utf-8")
    for p in sorted((root / "vault" / "roles").glob("*.json")):
        try:
            out.roles[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BootstrapError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    for p in sorted((root / "manifests").glob("*/*.yaml")):
        try:
            out.manifests += [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]
        except yaml.YAMLError as exc:
            raise BootstrapError(f"{p}: invalid YAML: {exc}") from None
    if not out.roles and not out.manifests:
        raise BootstrapError(f"{root}: holds no vault/roles or manifests; run 'invoke render'")
    return out


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata", {})
    return (doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def run_check(r: Rendered) -> CheckResult:
    findings: list[str] = []
    rules: dict[str, list[Rule]] = {}
    for name, text in r.policies.items():
        try:
            rules[name] = parse_policy(text, name)
        except PolicyParseError as exc:
            findings.append(str(exc))
            rules[name] = []

    objects = {_key(d): d for d in r.manifests}
    static_secrets = [d for d in r.manifests if d.get("kind") == "VaultStaticSecret"]

    def role_rules(role_name: str) -> list[Rule]:
        role = r.roles.get(role_name, {})
        out: list[Rule] = []
        for pol in role.get("token_policies", []):
            out += rules.get(pol, [])
        return out

    # What each role legitimately reads: its VaultStaticSecrets' paths.
    reads_by_role: dict[str, set[str]] = defaultdict(set)
    for vss in static_secrets:
        _kind, ns, name = _key(vss)
        spec = vss.get("spec", {})
        where = f"VaultStaticSecret {ns}/{name}"
        if spec.get("type") != "kv-v2":
            findings.append(f"{where}: type is {spec.get('type')!r}, expected 'kv-v2'")
        auth_name = spec.get("vaultAuthRef")
        auth = objects.get(("VaultAuth", ns, auth_name or ""))
        if auth is None:
            findings.append(
                f"{where}: vaultAuthRef {auth_name!r} names no VaultAuth in namespace {ns!r}"
            )
            continue
        k8s = auth.get("spec", {}).get("kubernetes", {})
        role_name = k8s.get("role", "")
        sa = k8s.get("serviceAccount", "")
        if auth.get("spec", {}).get("mount") != conv.AUTH_MOUNT:
            findings.append(
                f"VaultAuth {ns}/{auth_name}: mount is "
                f"{auth.get('spec', {}).get('mount')!r}, expected {conv.AUTH_MOUNT!r}"
            )
        if ("ServiceAccount", ns, sa) not in objects:
            findings.append(
                f"VaultAuth {ns}/{auth_name}: serviceAccount {sa!r} is not "
                f"rendered in namespace {ns!r}"
            )
        role = r.roles.get(role_name)
        if role is None:
            findings.append(f"VaultAuth {ns}/{auth_name}: role {role_name!r} does not exist")
            continue
        names = role.get("bound_service_account_names", [])
        namespaces = role.get("bound_service_account_namespaces", [])
        if sa not in names and "*" not in names:
            findings.append(
                f"role {role_name}: bound_service_account_names {names} do not "
                f"include {sa!r} used by VaultAuth {ns}/{auth_name}"
            )
        if ns not in namespaces and "*" not in namespaces:
            findings.append(
                f"role {role_name}: bound_service_account_namespaces {namespaces} "
                f"do not include {ns!r} of VaultAuth {ns}/{auth_name}"
            )
        audience = role.get("audience")
        if audience and audience not in k8s.get("audiences", []):
            findings.append(
                f"VaultAuth {ns}/{auth_name}: audiences {k8s.get('audiences')} "
                f"lack the role's audience {audience!r}"
            )
        for pol in role.get("token_policies", []):
            if pol not in r.policies:
                findings.append(f"role {role_name}: policy {pol!r} does not exist")
        api_path = f"{spec.get('mount')}/data/{spec.get('path')}"
        if not allowed(role_rules(role_name), api_path):
            findings.append(
                f"{where}: path {api_path!r} is not readable under role "
                f"{role_name!r} (policies {role.get('token_policies', [])})"
            )
        reads_by_role[role_name].add(str(spec.get("path")))

    # Isolation: each role against every other role's private paths and undeclared shares.
    services = sorted(r.roles)
    all_paths = {p for paths in reads_by_role.values() for p in paths}
    pairs = 0
    for a in services:
        a_rules = role_rules(a)
        for b in services:
            if a == b:
                continue
            pairs += 1
            probes = {p for p in reads_by_role.get(b, set()) if p.split("/")[0] == b}
            probes.add(f"{b}/{PROBE}")
            for path in sorted(probes):
                api_path = f"{conv.KV_MOUNT}/data/{path}"
                if allowed(a_rules, api_path):
                    findings.append(f"role {a}: can read {b}'s private path {api_path!r}")
        for path in sorted(all_paths - reads_by_role.get(a, set())):
            if path.split("/")[0] in conv.RESERVED_PREFIXES:
                api_path = f"{conv.KV_MOUNT}/data/{path}"
                if allowed(a_rules, api_path):
                    findings.append(f"role {a}: can read {api_path!r}, which it does not declare")
    return CheckResult(
        findings=findings, static_secrets=len(static_secrets), roles=len(r.roles), pairs=pairs
    )
