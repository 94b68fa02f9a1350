"""Phase 4, vault config: KV v2 at secret/, kubernetes auth (host, CA, token reviewer), one
policy and role per service, an audit device, and the bootstrap-admin credential. Reads what
Vault has, writes only the difference; with prune, removes managed objects that left the
catalog and never touches anything else."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError
from bootstrap.model import conventions as conv
from bootstrap.model import vaultplan
from bootstrap.model.actions import Action
from bootstrap.phases.pipeline import RunContext
from bootstrap.runtime import credentials
from bootstrap.runtime.custody import Custody

log = logging.getLogger(__name__)

REVIEWER_BINDING = "vault-token-reviewer-auth-delegator"
REVIEWER_TOKEN_SECONDS = 365 * 24 * 3600


def audit_file(ctx: RunContext) -> str:
    if ctx.settings.audit_file:
        return ctx.settings.audit_file
    t = ctx.target
    if t.sandbox is not None:
        return str(Path(t.sandbox.directory) / "audit" / "bao-0.log")
    return "stdout"


class VaultConfig:
    name = "vault-config"
    summary = "KV v2, kubernetes auth, policies, roles, audit device; only the difference"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> vaultplan.Facts:
        api = ctx.vault
        mounts = api.read("sys/mounts") or {}
        mounts = mounts.get("data", mounts)
        auths = api.read("sys/auth") or {}
        auths = auths.get("data", auths)
        auth_mount = auths.get(f"{conv.AUTH_MOUNT}/")
        auth_cfg = None
        if auth_mount is not None and auth_mount.get("type") == "kubernetes":
            resp = api.read(f"auth/{conv.AUTH_MOUNT}/config")
            auth_cfg = resp.get("data") if resp else None
        # Objects outside the catalog are only read with prune, to find managed ones.
        prune = ctx.settings.prune
        want_policies = {conv.policy_name(s.name) for s in ctx.catalog.services}
        want_policies.add(vaultplan.ADMIN_POLICY)
        names = [
            n
            for n in api.list_keys("sys/policies/acl")
            if n not in ("root", "default") and (prune or n in want_policies)
        ]

        def read_policy(name: str) -> tuple[str, str | None]:
            resp = api.read(f"sys/policies/acl/{name}")
            return name, (resp or {}).get("data", {}).get("policy") if resp else None

        policies = {n: text for n, text in api.parallel(read_policy, names) if text is not None}
        policies = {
            n: t
            for n, t in policies.items()
            if vaultplan.relevant_policy(n, t, want_policies, ctx.catalog.name)
        }
        roles: dict[str, dict[str, Any]] = {}
        if auth_mount is not None and auth_mount.get("type") == "kubernetes":
            want_roles = {conv.role_name(s.name) for s in ctx.catalog.services}
            role_names = [
                n for n in api.list_keys(f"auth/{conv.AUTH_MOUNT}/role") if prune or n in want_roles
            ]

            def read_role(name: str) -> tuple[str, dict[str, Any] | None]:
                resp = api.read(f"auth/{conv.AUTH_MOUNT}/role/{name}")
                return name, (resp or {}).get("data") if resp else None

            roles = {n: r for n, r in api.parallel(read_role, role_names) if r is not None}
        audit = api.read("sys/audit") or {}
        audit = audit.get("data", audit)
        return vaultplan.Facts(
            kv_mount=mounts.get(f"{conv.KV_MOUNT}/"),
            auth_mount=auth_mount,
            auth_config=auth_cfg,
            policies=policies,
            roles=roles,
            audit={k: v for k, v in audit.items() if isinstance(v, dict)},
        )

    def _desired(self, ctx: RunContext) -> vaultplan.Desired:
        t = ctx.target
        return vaultplan.desired(ctx.catalog, t.kube.host, t.kube.ca_pem(), audit_file(ctx))

    def plan(self, ctx: RunContext, facts: vaultplan.Facts) -> list[Action]:
        actions = vaultplan.plan(self._desired(ctx), facts, ctx.settings.prune)
        t = ctx.target
        if not credentials.admin_present(t.custody) and not credentials.env_token():
            actions.append(
                Action(
                    "create",
                    "bootstrap-admin credential",
                    f"periodic token with policy {vaultplan.ADMIN_POLICY}, kept in "
                    f"{t.custody.description}",
                    payload=("admin",),
                )
            )
        return actions

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        api = ctx.vault
        want = self._desired(ctx)
        by_kind: dict[str, list[Action]] = {}
        for a in actions:
            if a.changes and a.payload:
                by_kind.setdefault(a.payload[0], []).append(a)
        if "mount" in by_kind:
            api.write(
                f"sys/mounts/{conv.KV_MOUNT}",
                {
                    "type": "kv",
                    "options": {"version": "2"},
                    "description": f"managed-by: {conv.PRODUCT}",
                },
            )
        if "auth" in by_kind:
            api.write(
                f"sys/auth/{conv.AUTH_MOUNT}",
                {"type": "kubernetes", "description": f"managed-by: {conv.PRODUCT}"},
            )
        if "auth-config" in by_kind:
            jwt = self._reviewer_jwt(ctx)
            api.write(
                f"auth/{conv.AUTH_MOUNT}/config",
                {
                    "kubernetes_host": want.kubernetes_host,
                    "kubernetes_ca_cert": want.kubernetes_ca_cert,
                    "token_reviewer_jwt": jwt,
                    "disable_local_ca_jwt": True,
                },
            )

        def put_policy(a: Action) -> None:
            api.put(f"sys/policies/acl/{a.payload[1]}", {"policy": a.payload[2]})
            failpoints.point("vault-config:write")

        def write_role(a: Action) -> None:
            api.write(f"auth/{conv.AUTH_MOUNT}/role/{a.payload[1]}", a.payload[2])
            failpoints.point("vault-config:write")

        api.parallel(put_policy, by_kind.get("policy", []))
        api.parallel(write_role, by_kind.get("role", []))
        for a in by_kind.get("audit", []):
            try:
                api.put(
                    f"sys/audit/{vaultplan.AUDIT_PATH}",
                    {
                        "type": "file",
                        "options": {"file_path": a.payload[1]},
                        "description": f"managed-by: {conv.PRODUCT}",
                    },
                )
            except vault.VaultRequestError as exc:
                if exc.status != 400 or "declarative" not in str(exc):
                    raise
                raise VaultStateError(
                    "this server only takes audit devices from its configuration file "
                    "(OpenBao); add to it: "
                    f'audit "file" "{vaultplan.AUDIT_PATH}" {{ options {{ '
                    f'file_path = "{a.payload[1]}" }} }} and restart or SIGHUP it'
                ) from None
        api.parallel(
            lambda a: api.delete(f"auth/{conv.AUTH_MOUNT}/role/{a.payload[1]}"),
            by_kind.get("delete-role", []),
        )
        api.parallel(
            lambda a: api.delete(f"sys/policies/acl/{a.payload[1]}"),
            by_kind.get("delete-policy", []),
        )
        if "admin" in by_kind:
            t = ctx.target
            _create_admin(api, t.custody)

    def _reviewer_jwt(self, ctx: RunContext) -> str:
        """A token reviewer for a Vault outside the cluster: a ServiceAccount bound to
        system:auth-delegator, its token from the TokenRequest API."""
        t = ctx.target
        s = ctx.settings
        labels = {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE}
        t.kube.ensure_namespace(s.reviewer_namespace, labels)
        t.kube.ensure_service_account(s.reviewer_namespace, s.reviewer_service_account, labels)
        t.kube.ensure_cluster_role_binding(
            REVIEWER_BINDING,
            "system:auth-delegator",
            s.reviewer_namespace,
            s.reviewer_service_account,
        )
        return t.kube.token(
            s.reviewer_namespace, s.reviewer_service_account, [], REVIEWER_TOKEN_SECONDS
        )


def _create_admin(api: vault.Api, custody: Custody) -> None:
    """Create the bootstrap-admin periodic token and keep it in custody before using it."""
    resp = api.write(
        "auth/token/create-orphan",
        {
            "policies": [vaultplan.ADMIN_POLICY],
            "period": "768h",
            "display_name": "bootstrap-admin",
            "no_default_policy": False,
            "meta": {"managed-by": conv.PRODUCT},
        },
    )
    auth = (resp or {}).get("auth") or {}
    token = auth.get("client_token")
    if not token:
        raise VaultStateError("creating the bootstrap-admin token returned no token")
    credentials.store_admin(custody, token, str(auth.get("accessor", "")), [vaultplan.ADMIN_POLICY])
    log.info("bootstrap-admin credential created and stored")
