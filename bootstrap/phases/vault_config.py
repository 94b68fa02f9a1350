"""Phase 4, vault config: KV v2 at secret/, kubernetes auth (host, CA, token reviewer), one
policy and role per service, an audit device, and the bootstrap-admin credential. Reads what
Vault has, writes only the difference; with prune, removes managed objects that left the
catalog and never touches anything else.

What it costs at hundreds of services: the policies are read in one request where the server
offers OpenBao's detailed listing and they are a fair share of all policies (else one read
each); each role is one read (no listing carries them). Policies and roles are written on a
pool of :data:`WRITE_WORKERS` threads. The convergence check after apply
(:meth:`VaultConfig.facts_after`) reads everything again except the content of the policies and
roles this run wrote: their names are listed again, a sample of them is read back, and the
others count as written, since Vault accepted each write."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model import vaultplan
from bootstrap.model.actions import Action
from bootstrap.model.settings import populate_access
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
#: needs are at least 1/LISTING_PAYS_FROM of all, else one read each. The listing loads every
#: policy: on OpenBao 2.7 with 500 to 1000 policies it costs the server about a tenth of what
#: reading each costs, past its policy cache (about a thousand) about a quarter.
LISTING_PAYS_FROM = 4
#: How many of the policies, and of the roles, a run wrote the convergence check reads back.
SAMPLE = 3
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


class VaultConfig(PhaseBase[vaultplan.Facts], name="vault-config", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> vaultplan.Facts:
        return self._facts(ctx, None)

    def facts_after(
        self, ctx: RunContext, before: vaultplan.Facts, applied: Sequence[Action]
    ) -> vaultplan.Facts:
        """The facts the convergence check plans on: mounts, auth config and audit devices
        read again, as :meth:`facts` reads them; policies and roles listed again by name (one
        missing is one to write), :data:`SAMPLE` of each written read back (a text or field
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
                before.policies,
                {a.name: a.text for a in applied if isinstance(a, vaultplan.PutPolicy)},
                before.roles,
                {
                    a.name: vaultplan.Role.of(a.params)
                    for a in applied
                    if isinstance(a, vaultplan.WriteRole)
                },
                reviewer,
                "as wanted" if "binding" in reviewer else before.reviewer_binding,
            ),
        )

    def _facts(self, ctx: RunContext, after: _Applied | None) -> vaultplan.Facts:
        api = ctx.vault
        mounts = _data(api.read("sys/mounts"))
        auth_mount = vaultplan.Mount.of(_data(api.read("sys/auth")).get(f"{conv.AUTH_MOUNT}/"))
        kubernetes_auth = auth_mount is not None and auth_mount.type == "kubernetes"
        auth_cfg = None
        if kubernetes_auth:
            resp = api.read(f"auth/{conv.AUTH_MOUNT}/config")
            auth_cfg = vaultplan.AuthConfig.of(resp.get("data") if resp else None)
        if after is None:
            policies = _read_policies(ctx, api)
        else:
            policies = _policies_after(ctx, api, after.policies, after.policies_written)
        if not kubernetes_auth:
            roles: dict[str, vaultplan.Role] = {}
        elif after is None:
            roles = _read_roles(ctx, api)
        else:
            roles = _roles_after(ctx, api, after.roles, after.roles_written)
        audit = _data(api.read("sys/audit"))
        if after is None:
            reviewer_parts, binding_state = _reviewer_parts(ctx)
        else:
            reviewer_parts, binding_state = after.reviewer, after.binding
        return vaultplan.Facts(
            kv_mount=vaultplan.Mount.of(mounts.get(f"{conv.KV_MOUNT}/")),
            auth_mount=auth_mount,
            auth_config=auth_cfg,
            policies=policies,
            roles=roles,
            audit={k: str(v.get("type") or "") for k, v in audit.items() if isinstance(v, dict)},
            reviewer=reviewer_parts,
            reviewer_binding=binding_state,
        )

    def _desired(self, ctx: RunContext) -> vaultplan.Desired:
        t = ctx.target
        s = ctx.settings
        reviewer = vaultplan.Reviewer(
            s.reviewer_namespace, s.reviewer_service_account, REVIEWER_BINDING
        )
        # where Vault reaches the API server: as the product does, unless Vault runs where
        # that address means something else (in the cluster: the kubernetes Service)
        host = s.vault_kubernetes_host or t.kube.host
        return vaultplan.desired(
            ctx.catalog, host, t.kube.ca_pem(), audit_file(ctx), reviewer, populate_access(s)
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

    policies: dict[str, str]  # as read before
    policies_written: dict[str, str]
    roles: dict[str, vaultplan.Role]  # as read before
    roles_written: dict[str, vaultplan.Role]
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


#: The bootstrap-admin credential: a periodic orphan token with the admin policy alone. Not
#: the ``default`` policy: the admin policy grants what the product uses of it (looking up
#: and renewing itself), and OpenBao parses ``default`` (it holds identity templates) anew
#: for every request a token carrying it makes: about a quarter of the server's work for
#: each read of a no-op run.
ADMIN_TOKEN_BODY: JsonObject = {
    "policies": [vaultplan.ADMIN_POLICY],
    "period": "768h",
    "display_name": "bootstrap-admin",
    "no_default_policy": True,
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


def _data(resp: JsonObject | None) -> JsonObject:
    """A sys/ listing's entries (Vault nests them under "data"; older servers do not)."""
    resp = resp or {}
    data: JsonObject = resp.get("data", resp)
    return data


def _policy_names(ctx: RunContext, api: vault.Api) -> tuple[list[str], int, set[str]]:
    """The policies the plan needs (the catalog's; with prune every one, to find this
    catalog's managed ones), how many policies there are, and the catalog's names."""
    wanted = {conv.policy_name(s.name) for s in ctx.catalog.services}
    wanted.add(vaultplan.ADMIN_POLICY)
    wanted.add(conv.POPULATE_ROLE)  # the populate Job's, when the setting asks for it
    every = api.list_keys("sys/policies/acl")
    needed = [
        n for n in every if n not in ("root", "default") and (ctx.settings.prune or n in wanted)
    ]
    return needed, len(every), wanted


def _policy_texts(api: vault.Api, names: list[str], every: int) -> dict[str, str | None]:
    """The texts of ``names`` (of ``every`` policy there is): in one listing where the server
    has one and enough of its policies are asked for (see :data:`LISTING_PAYS_FROM`), else
    one read each."""
    listed = api.acl_policies() if names and len(names) * LISTING_PAYS_FROM >= every else None
    if listed is not None:
        return {n: listed.get(n) for n in names}

    def read(name: str) -> tuple[str, str | None]:
        resp = api.read(f"{vaultplan.POLICY_PREFIX}{name}")
        return name, (resp or {}).get("data", {}).get("policy") if resp else None

    return dict(api.parallel(read, names, READ_WORKERS))


def _relevant(ctx: RunContext, wanted: set[str], texts: dict[str, str | None]) -> dict[str, str]:
    """Those the plan compares: the catalog's, and this catalog's managed ones."""
    return {
        n: t
        for n, t in texts.items()
        if t is not None and vaultplan.relevant_policy(n, t, wanted, ctx.catalog.name)
    }


def _read_policies(ctx: RunContext, api: vault.Api) -> dict[str, str]:
    """The policies the plan needs (see :func:`_policy_names`)."""
    names, every, wanted = _policy_names(ctx, api)
    return _relevant(ctx, wanted, _policy_texts(api, names, every))


def _role_names(ctx: RunContext, api: vault.Api) -> list[str]:
    """The roles the plan needs: the catalog's, and with prune every role (to find the
    managed ones)."""
    wanted = {conv.role_name(s.name) for s in ctx.catalog.services} | {conv.POPULATE_ROLE}
    return [
        n
        for n in api.list_keys(f"auth/{conv.AUTH_MOUNT}/role")
        if ctx.settings.prune or n in wanted
    ]


def _role_params(api: vault.Api, names: list[str]) -> dict[str, vaultplan.Role | None]:
    def read(name: str) -> tuple[str, vaultplan.Role | None]:
        resp = api.read(f"{vaultplan.ROLE_PREFIX}{name}")
        data = (resp or {}).get("data") if resp else None
        return name, vaultplan.Role.of(data) if isinstance(data, dict) else None

    return dict(api.parallel(read, names, READ_WORKERS))


def _read_roles(ctx: RunContext, api: vault.Api) -> dict[str, vaultplan.Role]:
    return {n: r for n, r in _role_params(api, _role_names(ctx, api)).items() if r is not None}


V = TypeVar("V")


def _as_written(
    listed: list[str],
    before: dict[str, V],
    written: dict[str, V],
    read: Callable[[list[str]], dict[str, V | None]],
) -> dict[str, V | None]:
    """Objects as the convergence check sees them (see :meth:`VaultConfig.facts_after`):
    of the ``listed`` names, :data:`SAMPLE` of those ``written`` and any unknown one are
    ``read``; the others are as written, else as read ``before``."""
    known = {**before, **written}
    check = vaultplan.spread(sorted(n for n in listed if n in written), SAMPLE)
    asked = check + [n for n in listed if n not in known]
    got = read(asked)
    return {n: got.get(n) if n in asked else known[n] for n in listed}


def _policies_after(
    ctx: RunContext, api: vault.Api, before: dict[str, str], written: dict[str, str]
) -> dict[str, str]:
    names, every, wanted = _policy_names(ctx, api)
    return _relevant(
        ctx, wanted, _as_written(names, before, written, lambda ns: _policy_texts(api, ns, every))
    )


def _roles_after(
    ctx: RunContext,
    api: vault.Api,
    before: dict[str, vaultplan.Role],
    written: dict[str, vaultplan.Role],
) -> dict[str, vaultplan.Role]:
    params = _as_written(_role_names(ctx, api), before, written, lambda ns: _role_params(api, ns))
    return {n: r for n, r in params.items() if r is not None}


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
