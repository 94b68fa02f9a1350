"""Vault configuration as data: what the catalog wants, what Vault has, and the difference.
Pure; no IO. The vault-config phase reads facts, calls :func:`plan`, applies the actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap.model import conventions as conv
from bootstrap.model import render
from bootstrap.model.actions import Action
from bootstrap.model.catalog import Catalog

ADMIN_POLICY = conv.ADMIN_POLICY
AUDIT_PATH = "file"
#: The admin policy's rules and text live with the other renderers (``invoke render`` writes
#: them too); named here as well, where the vault-config phase looks for them.
ADMIN_RULES = render.ADMIN_RULES
ADMIN_POLICY_TEXT = render.ADMIN_POLICY_TEXT


@dataclass
class Desired:
    policies: dict[str, str]
    roles: dict[str, dict[str, Any]]
    kubernetes_host: str
    kubernetes_ca_cert: str
    audit_file: str
    catalog: str = "default"


@dataclass
class Facts:
    kv_mount: dict[str, Any] | None
    auth_mount: dict[str, Any] | None
    auth_config: dict[str, Any] | None
    policies: dict[str, str]  # every policy we may care about: catalog names + managed
    roles: dict[str, dict[str, Any]]
    audit: dict[str, dict[str, Any]]
    other_policies: list[str] = field(default_factory=list)


def desired(catalog: Catalog, host: str, ca_pem: str, audit_file: str) -> Desired:
    """What vault-config wants. Its policies and roles are :func:`render.vault_acl`, the one
    source ``invoke render`` and the static check read as well."""
    acl = render.vault_acl(catalog)
    return Desired(acl.policies, acl.roles, host, ca_pem, audit_file, catalog.name)


is_managed_policy = conv.is_managed_policy


def role_owner(name: str, role: dict[str, Any], policies: dict[str, str]) -> str | None:
    """The catalog a role belongs to: a role is the product's when it grants exactly one
    policy, of its own name, and that policy is managed (policies carry the marker; roles
    cannot); it then belongs to that policy's catalog. None: not the product's."""
    if (role.get("token_policies") or []) != [name] or name not in policies:
        return None
    return conv.policy_owner(policies[name])


def is_managed_role(
    name: str, role: dict[str, Any], policies: dict[str, str], catalog: str | None = None
) -> bool:
    owner = role_owner(name, role, policies)
    return owner is not None and (catalog is None or owner == catalog)


def relevant_policy(name: str, text: str, wanted: set[str], catalog: str) -> bool:
    """Which policies read from Vault the plan needs: those the catalog wants (to compare
    them) and those this catalog manages (to prune them). Another catalog's are no concern."""
    return name in wanted or is_managed_policy(text, catalog)


def _owned_by(owner: str | None) -> str:
    if owner is None:
        return "is not managed by the bootstrap"
    if owner == "":
        return "is managed by the bootstrap without a catalog name"
    return f"is managed by catalog {owner!r}"


ROLE_FIELDS = (
    "bound_service_account_names",
    "bound_service_account_namespaces",
    "token_policies",
    "token_ttl",
    "audience",
)


def _role_view(role: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ROLE_FIELDS:
        v = role.get(k)
        if isinstance(v, list):
            v = sorted(str(x) for x in v)
        elif k == "token_ttl":
            v = int(v or 0)
        elif v is None:
            v = ""
        out[k] = v
    return out


def _norm_pem(pem: str) -> str:
    return "\n".join(line.strip() for line in pem.strip().splitlines())


def plan(want: Desired, have: Facts, prune: bool) -> list[Action]:
    actions: list[Action] = []
    # KV v2 at secret/
    if have.kv_mount is None:
        actions.append(
            Action("create", f"mount {conv.KV_MOUNT}/", "enable KV version 2", payload=("mount",))
        )
    else:
        kind = have.kv_mount.get("type")
        version = str((have.kv_mount.get("options") or {}).get("version", "1"))
        if kind != "kv" or version != "2":
            actions.append(
                Action(
                    "problem",
                    f"mount {conv.KV_MOUNT}/",
                    f"already mounted as {kind} (version {version}), not KV version 2; "
                    "the bootstrap will not replace it",
                )
            )
    # kubernetes auth
    if have.auth_mount is None:
        actions.append(
            Action(
                "create", f"auth {conv.AUTH_MOUNT}/", "enable kubernetes auth", payload=("auth",)
            )
        )
    elif have.auth_mount.get("type") != "kubernetes":
        actions.append(
            Action(
                "problem",
                f"auth {conv.AUTH_MOUNT}/",
                f"already enabled as {have.auth_mount.get('type')}",
            )
        )
    cfg = have.auth_config or {}
    reasons = []
    if cfg.get("kubernetes_host") != want.kubernetes_host:
        reasons.append(f"host {cfg.get('kubernetes_host') or '(unset)'} -> {want.kubernetes_host}")
    if _norm_pem(str(cfg.get("kubernetes_ca_cert") or "")) != _norm_pem(want.kubernetes_ca_cert):
        reasons.append("CA certificate differs")
    if not cfg.get("token_reviewer_jwt_set"):
        reasons.append("no token reviewer JWT")
    if reasons:
        actions.append(
            Action(
                "update",
                f"auth/{conv.AUTH_MOUNT}/config",
                "; ".join(reasons),
                payload=("auth-config",),
            )
        )
    # policies: create what is missing, update only this catalog's own; never take over
    for name, text in sorted(want.policies.items()):
        current = have.policies.get(name)
        if current is None:
            actions.append(
                Action("create", f"policy {name}", "missing", payload=("policy", name, text))
            )
            continue
        if current.strip() == text.strip():
            continue
        owner = conv.policy_owner(current)
        if owner == want.catalog or (owner == "" and name == ADMIN_POLICY):
            actions.append(
                Action(
                    "update", f"policy {name}", "content differs", payload=("policy", name, text)
                )
            )
        else:
            actions.append(
                Action(
                    "problem",
                    f"policy {name}",
                    f"exists and {_owned_by(owner)}; the bootstrap will not overwrite it: "
                    "rename the service or remove the policy",
                )
            )
    # roles: the same rule; a role exactly as wanted is left alone, whoever made it
    for name, role in sorted(want.roles.items()):
        if ADMIN_POLICY in (role.get("token_policies") or []):
            actions.append(
                Action(
                    "problem",
                    f"role {name}",
                    f"would grant the {ADMIN_POLICY} policy (a service may not be named "
                    "after the product's admin policy); rename the service",
                )
            )
            continue
        current_role = have.roles.get(name)
        if current_role is None:
            actions.append(
                Action("create", f"role {name}", "missing", payload=("role", name, role))
            )
            continue
        if _role_view(current_role) == _role_view(role):
            continue
        owner = role_owner(name, current_role, have.policies)
        if owner == want.catalog:
            diff = [k for k in ROLE_FIELDS if _role_view(current_role)[k] != _role_view(role)[k]]
            actions.append(
                Action(
                    "update",
                    f"role {name}",
                    f"{', '.join(diff)} differ",
                    payload=("role", name, role),
                )
            )
        else:
            grants = current_role.get("token_policies") or []
            how = _owned_by(owner) + (f" through its policy {name}" if owner is not None else "")
            actions.append(
                Action(
                    "problem",
                    f"role {name}",
                    f"exists (granting {grants}) and {how}; the bootstrap will not overwrite "
                    "it: rename the service or remove the role",
                )
            )
    # audit device: any file device will do (OpenBao declares them in its server config)
    if not any(d.get("type") == "file" for d in have.audit.values()):
        actions.append(
            Action(
                "create",
                f"audit {AUDIT_PATH}/",
                f"enable file audit device ({want.audit_file})",
                payload=("audit", want.audit_file),
            )
        )
    # prune: managed objects that left the catalog (roles first, then their policies)
    if prune:
        for name, role in sorted(have.roles.items()):
            if name not in want.roles and is_managed_role(name, role, have.policies, want.catalog):
                actions.append(
                    Action(
                        "delete",
                        f"role {name}",
                        "no longer in the catalog",
                        payload=("delete-role", name),
                    )
                )
        for name, text in sorted(have.policies.items()):
            if name not in want.policies and is_managed_policy(text, want.catalog):
                actions.append(
                    Action(
                        "delete",
                        f"policy {name}",
                        "no longer in the catalog",
                        payload=("delete-policy", name),
                    )
                )
    return actions
