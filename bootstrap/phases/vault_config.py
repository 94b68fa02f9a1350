"""Phase 4, vault config: KV v2 at secret/, kubernetes auth (host, CA, token reviewer), one
policy and role per service, an audit device, and the bootstrap-admin credential. Reads what
Vault has, writes only the difference; with prune, removes managed objects that left the
catalog and never touches anything else.

What it costs at hundreds of services: the policies are read in one request where the server
offers OpenBao's detailed listing and they are a fair share of all policies (else one read
each); each role is one read (no listing carries them). Policies and roles are written on a
pool of :data:`WRITE_WORKERS` threads. The convergence check after apply
(:meth:`VaultConfig.facts_after`) reads everything again except the content of the roles this
run wrote: their names are listed again, a sample of them is read back, and the others count
as written, since Vault accepted each write."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError
from bootstrap.model import conventions as conv
from bootstrap.model import vaultplan
from bootstrap.model.actions import Action
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import credentials
from bootstrap.runtime.custody import Custody

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "KV v2, kubernetes auth, policies, roles, audit device; only the difference"

#: Threads writing policies and roles: enough writes in flight to keep the server busy while
#: each thread waits for its answer (the vault-config benchmark's limit loop uses as many).
WRITE_WORKERS = 16
#: Threads reading roles.
READ_WORKERS = 6
#: The policies are read in one listing (OpenBao's, with their text) when the ones the plan
#: needs are at least 1/LISTING_PAYS_FROM of all (the listing carries each policy for about a
#: tenth of what a read of its own costs), else one read each.
LISTING_PAYS_FROM = 8
#: How many of the roles a run wrote the convergence check reads back.
ROLE_SAMPLE = 3
REVIEWER_BINDING = "vault-token-reviewer-auth-delegator"
REVIEWER_TOKEN_SECONDS = 365 * 24 * 3600
AUTH_DELEGATOR = "system:auth-delegator"


def audit_file(ctx: RunContext) -> str:
    if ctx.settings.audit_file:
        return ctx.settings.audit_file
    t = ctx.target
    if t.sandbox is not None:
        return str(Path(t.sandbox.directory) / "bao-0" / "audit.log")
    return "stdout"


class VaultConfig(PhaseBase, name="vault-config", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> vaultplan.Facts:
        return self._facts(ctx, None)

    def facts_after(
        self, ctx: RunContext, before: vaultplan.Facts, applied: list[Action]
    ) -> vaultplan.Facts:
        """The facts the convergence check plans on: mounts, auth config, audit devices and
        every policy read again, as :meth:`facts` reads them; roles listed again by name (one
        missing is one to write), :data:`ROLE_SAMPLE` of those written read back (a field
        Vault keeps otherwise than it was sent shows there), the other written ones as
        written (Vault accepted each write, or apply would have failed), the untouched ones as
        read before, any other listed one read; the token reviewer's parts as read before or
        made by this run (the cluster accepted each; they matter to the plan only while the
        auth config, read again, differs)."""
        made = {
            a.part for a in applied if isinstance(a, vaultplan.CreateReviewerPart) and a.changes
        }
        reviewer = before.reviewer | made
        return self._facts(
            ctx,
            _Applied(
                before.roles,
                {a.name: a.params for a in applied if isinstance(a, vaultplan.WriteRole)},
                reviewer,
                "as wanted" if "binding" in reviewer else before.reviewer_binding,
            ),
        )

    def _facts(self, ctx: RunContext, after: _Applied | None) -> vaultplan.Facts:
        api = ctx.vault
        mounts = _data(api.read("sys/mounts"))
        auth_mount = _data(api.read("sys/auth")).get(f"{conv.AUTH_MOUNT}/")
        kubernetes_auth = auth_mount is not None and auth_mount.get("type") == "kubernetes"
        auth_cfg = None
        if kubernetes_auth:
            resp = api.read(f"auth/{conv.AUTH_MOUNT}/config")
            auth_cfg = resp.get("data") if resp else None
        policies = _read_policies(ctx, api)
        if not kubernetes_auth:
            roles: dict[str, dict[str, Any]] = {}
        elif after is None:
            roles = _read_roles(ctx, api, _role_names(ctx, api))
        else:
            roles = _roles_after(ctx, api, after.roles, after.written)
        audit = _data(api.read("sys/audit"))
        if after is None:
            reviewer_parts, binding_state = _reviewer_parts(ctx)
        else:
            reviewer_parts, binding_state = after.reviewer, after.binding
        return vaultplan.Facts(
            kv_mount=mounts.get(f"{conv.KV_MOUNT}/"),
            auth_mount=auth_mount,
            auth_config=auth_cfg,
            policies=policies,
            roles=roles,
            audit={k: v for k, v in audit.items() if isinstance(v, dict)},
            reviewer=reviewer_parts,
            reviewer_binding=binding_state,
        )

    def _desired(self, ctx: RunContext) -> vaultplan.Desired:
        t = ctx.target
        s = ctx.settings
        reviewer = vaultplan.Reviewer(
            s.reviewer_namespace, s.reviewer_service_account, REVIEWER_BINDING
        )
        return vaultplan.desired(
            ctx.catalog, t.kube.host, t.kube.ca_pem(), audit_file(ctx), reviewer
        )

    def plan(self, ctx: RunContext, facts: vaultplan.Facts) -> list[Action]:
        actions = vaultplan.plan(self._desired(ctx), facts, ctx.settings.prune)
        t = ctx.target
        if not credentials.admin_present(t.custody) and not credentials.env_token():
            actions.append(
                CreateAdminToken(
                    "create",
                    "bootstrap-admin credential",
                    f"periodic token with policy {vaultplan.ADMIN_POLICY}, kept in "
                    f"{t.custody.description}",
                )
            )
        return actions

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        api = ctx.vault
        changes = [a for a in actions if a.changes]
        # Consecutive actions of one kind run on the client's worker pool (hundreds of
        # policies and roles); kinds run in plan order (mounts before roles, roles deleted
        # before their policies).
        for _, group in itertools.groupby(changes, key=type):
            batch = list(group)
            if isinstance(batch[0], vaultplan.PutPolicy | vaultplan.WriteRole):
                api.parallel(lambda a: self._do(ctx, a), batch, WRITE_WORKERS)
            else:
                for a in batch:
                    self._do(ctx, a)

    def _do(self, ctx: RunContext, action: Action) -> None:
        api = ctx.vault
        kube = ctx.target.kube
        labels = {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE}
        match action:
            case vaultplan.EnableMount(path=path, body=body):
                api.write(path, body)
            case vaultplan.CreateReviewerPart(part="namespace", reviewer=r):
                kube.ensure_namespace(r.namespace, labels)
            case vaultplan.CreateReviewerPart(part="service-account", reviewer=r):
                kube.ensure_service_account(r.namespace, r.service_account, labels)
            case vaultplan.CreateReviewerPart(part="binding", reviewer=r):
                kube.ensure_cluster_role_binding(
                    r.binding, AUTH_DELEGATOR, r.namespace, r.service_account
                )
            case vaultplan.ConfigureKubernetesAuth(host=host, ca_cert=ca, reviewer=r):
                jwt = (
                    kube.token(r.namespace, r.service_account, [], REVIEWER_TOKEN_SECONDS)
                    if r is not None
                    else None
                )
                config: dict[str, object] = {"kubernetes_host": host, "kubernetes_ca_cert": ca}
                if jwt is not None:
                    config.update(token_reviewer_jwt=jwt, disable_local_ca_jwt=True)
                api.write(f"auth/{conv.AUTH_MOUNT}/config", config)
            case vaultplan.PutPolicy(name=name, text=text):
                api.put(f"{vaultplan.POLICY_PREFIX}{name}", {"policy": text})
                failpoints.point("vault-config:write")
            case vaultplan.WriteRole(name=name, params=params):
                api.write(f"{vaultplan.ROLE_PREFIX}{name}", params)
                failpoints.point("vault-config:write")
            case vaultplan.EnableAudit(file_path=path):
                _enable_audit(api, path)
            case vaultplan.Remove(path=path):
                api.delete(path)
            case CreateAdminToken():
                _create_admin(api, ctx.target.custody)
            case _:
                raise TypeError(f"vault-config cannot apply {action.kind}")


@dataclass(frozen=True)
class _Applied:
    """What the convergence check takes from the first facts and the actions applied."""

    roles: dict[str, dict[str, Any]]  # as read before
    written: dict[str, dict[str, Any]]  # the roles written
    reviewer: frozenset[str]  # the token reviewer's parts: there before, or made
    binding: str


@dataclass(frozen=True)
class CreateAdminToken(Action):
    """Create the bootstrap-admin periodic token and put it in custody."""


def _enable_audit(api: vault.Api, path: str) -> None:
    try:
        api.put(
            f"sys/audit/{vaultplan.AUDIT_PATH}",
            {
                "type": "file",
                "options": {"file_path": path},
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
            f'file_path = "{path}" }} }} and restart or SIGHUP it'
        ) from None


#: The bootstrap-admin credential: a periodic orphan token with the admin policy.
ADMIN_TOKEN_BODY: dict[str, Any] = {
    "policies": [vaultplan.ADMIN_POLICY],
    "period": "768h",
    "display_name": "bootstrap-admin",
    "no_default_policy": False,
    "meta": {"managed-by": conv.PRODUCT},
}


def _create_admin(api: vault.Api, custody: Custody) -> None:
    """Create the bootstrap-admin periodic token and keep it in custody before using it."""
    resp = api.write("auth/token/create-orphan", ADMIN_TOKEN_BODY)
    auth = (resp or {}).get("auth") or {}
    token = auth.get("client_token")
    if not token:
        raise VaultStateError("creating the bootstrap-admin token returned no token")
    credentials.store_admin(custody, token, str(auth.get("accessor", "")), [vaultplan.ADMIN_POLICY])
    log.info("bootstrap-admin credential created and stored")


def _data(resp: dict[str, Any] | None) -> dict[str, Any]:
    """A sys/ listing's entries (Vault nests them under "data"; older servers do not)."""
    resp = resp or {}
    data: dict[str, Any] = resp.get("data", resp)
    return data


def _read_policies(ctx: RunContext, api: vault.Api) -> dict[str, str]:
    """The policies the plan needs: the catalog's, and (with prune) this catalog's managed
    ones. Objects outside the catalog are only read with prune, to find managed ones. One
    listing where the server has one and enough of its policies are needed (see
    :data:`LISTING_PAYS_FROM`), else one read each."""
    prune = ctx.settings.prune
    wanted = {conv.policy_name(s.name) for s in ctx.catalog.services}
    wanted.add(vaultplan.ADMIN_POLICY)

    def needed(name: str) -> bool:
        return name not in ("root", "default") and (prune or name in wanted)

    every = api.list_keys("sys/policies/acl")
    names = [n for n in every if needed(n)]
    # the listing carries every policy, the catalog's or not: worth it when they are many
    listed = api.acl_policies() if len(names) * LISTING_PAYS_FROM >= len(every) else None
    if listed is not None:
        found: list[tuple[str, str | None]] = [(n, t) for n, t in listed.items() if needed(n)]
    else:

        def read(name: str) -> tuple[str, str | None]:
            resp = api.read(f"{vaultplan.POLICY_PREFIX}{name}")
            return name, (resp or {}).get("data", {}).get("policy") if resp else None

        found = api.parallel(read, names, READ_WORKERS)
    return {
        n: text
        for n, text in found
        if text is not None and vaultplan.relevant_policy(n, text, wanted, ctx.catalog.name)
    }


def _role_names(ctx: RunContext, api: vault.Api) -> list[str]:
    """The roles the plan needs: the catalog's, and with prune every role (to find the
    managed ones)."""
    wanted = {conv.role_name(s.name) for s in ctx.catalog.services}
    return [
        n
        for n in api.list_keys(f"auth/{conv.AUTH_MOUNT}/role")
        if ctx.settings.prune or n in wanted
    ]


def _read_roles(ctx: RunContext, api: vault.Api, names: list[str]) -> dict[str, dict[str, Any]]:
    def read(name: str) -> tuple[str, dict[str, Any] | None]:
        resp = api.read(f"{vaultplan.ROLE_PREFIX}{name}")
        return name, (resp or {}).get("data") if resp else None

    return {n: r for n, r in api.parallel(read, names, READ_WORKERS) if r is not None}


def _roles_after(
    ctx: RunContext,
    api: vault.Api,
    before: dict[str, dict[str, Any]],
    written: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The roles as the convergence check sees them (see :meth:`VaultConfig.facts_after`)."""
    listed = _role_names(ctx, api)
    known = {**before, **written}
    check = vaultplan.spread(sorted(n for n in listed if n in written), ROLE_SAMPLE)
    asked = check + [n for n in listed if n not in known]
    read = _read_roles(ctx, api, asked)
    return {n: read[n] if n in read else known[n] for n in listed if n in read or n not in asked}


def _reviewer_parts(ctx: RunContext) -> tuple[frozenset[str], str]:
    """Which parts of the token reviewer exist in the cluster as wanted, and the binding's
    state when it is not one of them: absent, ours but different, or someone else's."""
    s = ctx.settings
    kube = ctx.target.kube
    parts = set()
    if s.reviewer_namespace in kube.namespaces():
        parts.add("namespace")
        if kube.get("v1", "ServiceAccount", s.reviewer_service_account, s.reviewer_namespace):
            parts.add("service-account")
    binding = kube.get("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", REVIEWER_BINDING)
    if binding is None:
        return frozenset(parts), "absent"
    subjects = [(x.get("name"), x.get("namespace")) for x in binding.get("subjects") or []]
    if (binding.get("roleRef") or {}).get("name") == AUTH_DELEGATOR and subjects == [
        (s.reviewer_service_account, s.reviewer_namespace)
    ]:
        parts.add("binding")
        return frozenset(parts), "as wanted"
    labels = (binding.get("metadata") or {}).get("labels") or {}
    ours = labels.get(conv.MANAGED_BY_LABEL) == conv.MANAGED_BY_VALUE
    return frozenset(parts), "differs" if ours else "foreign"
