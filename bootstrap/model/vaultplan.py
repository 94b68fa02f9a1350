"""Vault configuration as data: what the catalog wants, what Vault has, and the difference as
typed actions. Pure; no IO. The vault-config phase reads facts, calls :func:`plan`, and
applies the actions, dispatching on their kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model import render
from bootstrap.model.actions import Action, problem
from bootstrap.model.catalog import Catalog

ADMIN_POLICY = conv.ADMIN_POLICY
AUDIT_PATH = "file"
#: Where Vault keeps ACL policies and kubernetes auth roles (below /v1/).
POLICY_PREFIX = "sys/policies/acl/"
ROLE_PREFIX = f"auth/{conv.AUTH_MOUNT}/role/"
#: The admin policy's rules and text live with the other renderers (``invoke render`` writes
#: them too); named here as well, where the vault-config phase looks for them.
ADMIN_RULES = render.ADMIN_RULES
ADMIN_POLICY_TEXT = render.ADMIN_POLICY_TEXT


# -- what the planner compares ---------------------------------------------------------


@dataclass(frozen=True)
class Reviewer:
    """The token reviewer of a Vault outside the cluster: a ServiceAccount bound to
    system:auth-delegator, whose TokenRequest token Vault presents to the TokenReview API."""

    namespace: str
    service_account: str
    binding: str


@dataclass
class Desired:
    policies: dict[str, str]
    roles: dict[str, JsonObject]
    kubernetes_host: str
    kubernetes_ca_cert: str
    audit_file: str
    catalog: str = "default"
    reviewer: Reviewer | None = None


@dataclass(frozen=True)
class Mount:
    """A secrets engine (``sys/mounts``) or auth method (``sys/auth``) as Vault lists it."""

    type: str
    #: ``options.version`` (KV's), "1" when Vault gives none
    version: str = "1"

    @classmethod
    def of(cls, body: Mapping[str, Any] | None) -> Mount | None:
        if not isinstance(body, Mapping):
            return None
        options = body.get("options") or {}
        version = options.get("version", "1") if isinstance(options, Mapping) else "1"
        return cls(str(body.get("type") or ""), str(version))


@dataclass(frozen=True)
class AuthConfig:
    """kubernetes auth's ``config`` as Vault reads it back (the reviewer JWT only as set)."""

    host: str
    ca_cert: str
    reviewer_jwt_set: bool

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> AuthConfig | None:
        if not isinstance(data, Mapping):
            return None
        return cls(
            str(data.get("kubernetes_host") or ""),
            str(data.get("kubernetes_ca_cert") or ""),
            bool(data.get("token_reviewer_jwt_set")),
        )


@dataclass(frozen=True)
class Role:
    """The fields of a kubernetes auth role the product writes, as Vault or the catalog has
    them: lists sorted, the TTL in seconds, an unset field empty."""

    bound_service_account_names: tuple[str, ...]
    bound_service_account_namespaces: tuple[str, ...]
    token_policies: tuple[str, ...]
    token_ttl: int
    audience: str

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Role:
        def names(key: str) -> tuple[str, ...]:
            value = data.get(key)
            items = value if isinstance(value, list) else [] if value in (None, "") else [value]
            return tuple(sorted(str(x) for x in items))

        return cls(
            names("bound_service_account_names"),
            names("bound_service_account_namespaces"),
            names("token_policies"),
            int(data.get("token_ttl") or 0),
            str(data.get("audience") or ""),
        )

    def differing(self, other: Role) -> list[str]:
        """The fields (of :data:`ROLE_FIELDS`) whose values differ from ``other``'s."""
        return [k for k in ROLE_FIELDS if getattr(self, k) != getattr(other, k)]


@dataclass
class Facts:
    kv_mount: Mount | None
    auth_mount: Mount | None
    auth_config: AuthConfig | None
    policies: dict[str, str]  # every policy we may care about: catalog names + managed
    roles: dict[str, Role]
    #: each audit device's type, by path
    audit: dict[str, str]
    other_policies: list[str] = field(default_factory=list)
    #: which parts of the token reviewer exist in the cluster (of REVIEWER_PARTS)
    reviewer: frozenset[str] = frozenset()
    #: the reviewer's binding when not as wanted: "absent", "differs" (the product's, to be
    #: replaced) or "foreign" (another owner's: never replaced)
    reviewer_binding: str = "absent"

    @classmethod
    def parse(
        cls,
        *,
        kv_mount: Mapping[str, Any] | None,
        auth_mount: Mapping[str, Any] | None,
        auth_config: Mapping[str, Any] | None,
        policies: dict[str, str],
        roles: Mapping[str, Mapping[str, Any]],
        audit: Mapping[str, Any],
    ) -> Facts:
        """Facts from Vault's answers as it sends them: the mount entries of ``sys/mounts``
        and ``sys/auth``, the auth config's and each role's ``data``, ``sys/audit``."""
        return cls(
            Mount.of(kv_mount),
            Mount.of(auth_mount),
            AuthConfig.of(auth_config),
            policies,
            {name: Role.of(role) for name, role in roles.items()},
            {k: str(v.get("type") or "") for k, v in audit.items() if isinstance(v, Mapping)},
        )


# -- the actions vault-config applies, one kind per call ---------------------------------


def desired(
    catalog: Catalog,
    host: str,
    ca_pem: str,
    audit_file: str,
    reviewer: Reviewer | None = None,
    populate: render.PopulateAccess | None = None,
) -> Desired:
    """What vault-config wants. Its policies and roles are :func:`render.vault_acl`, the one
    source ``invoke render`` and the static check read as well (with ``populate``, the
    populate Job's policy and role too)."""
    acl = render.vault_acl(catalog, populate)
    return Desired(acl.policies, acl.roles, host, ca_pem, audit_file, catalog.name, reviewer)


is_managed_policy = conv.is_managed_policy


def role_owner(name: str, role: Role, policies: dict[str, str]) -> str | None:
    """The catalog a role belongs to: a role is the product's when it grants exactly one
    policy, of its own name, and that policy is managed (policies carry the marker; roles
    cannot); it then belongs to that policy's catalog. None: not the product's."""
    if role.token_policies != (name,) or name not in policies:
        return None
    return conv.policy_owner(policies[name])


def is_managed_role(
    name: str, role: Role, policies: dict[str, str], catalog: str | None = None
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


def _refused(kind: str, name: str, owned: str, detail: str = "") -> Action:
    return problem(
        f"{kind} {name}",
        f"exists{detail} and {owned}; the bootstrap will not overwrite it: rename the "
        f"service or remove the {kind}",
    )


T = TypeVar("T")


def spread(items: Sequence[T], k: int) -> list[T]:
    """At most ``k`` of ``items``, evenly spread, the first and the last included (the roles
    the convergence check reads back)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    if k == 1:
        return [items[0]]
    return [items[i * (len(items) - 1) // (k - 1)] for i in range(k)]


def _norm_pem(pem: str) -> str:
    return "\n".join(line.strip() for line in pem.strip().splitlines())


def plan(want: Desired, have: Facts, prune: bool) -> list[Action]:
    """Every action, in apply order: mounts, auth (with its reviewer), policies, roles, the
    audit device, then (with prune) managed roles and policies that left the catalog."""
    actions = _plan_mounts(have)
    actions += _plan_auth_config(want, have)
    actions += _plan_policies(want, have)
    actions += _plan_roles(want, have)
    actions += _plan_audit(want, have)
    if prune:
        actions += _plan_prune(want, have)
    return actions


@dataclass(frozen=True)
class EnableMount(Action):
    """Mount a secrets engine or enable an auth method: a POST of ``body`` to ``path``."""

    path: str
    body: JsonObject


def _plan_mounts(have: Facts) -> list[Action]:
    actions: list[Action] = []
    if have.kv_mount is None:
        body = {
            "type": "kv",
            "options": {"version": "2"},
            "description": f"managed-by: {conv.PRODUCT}",
        }
        actions.append(
            EnableMount(
                "create",
                f"mount {conv.KV_MOUNT}/",
                "enable KV version 2",
                f"sys/mounts/{conv.KV_MOUNT}",
                body,
            )
        )
    else:
        kind, version = have.kv_mount.type, have.kv_mount.version
        if kind != "kv" or version != "2":
            actions.append(
                problem(
                    f"mount {conv.KV_MOUNT}/",
                    f"already mounted as {kind} (version {version}), not KV version 2; "
                    "the bootstrap will not replace it",
                )
            )
    if have.auth_mount is None:
        actions.append(
            EnableMount(
                "create",
                f"auth {conv.AUTH_MOUNT}/",
                "enable kubernetes auth",
                f"sys/auth/{conv.AUTH_MOUNT}",
                {"type": "kubernetes", "description": f"managed-by: {conv.PRODUCT}"},
            )
        )
    elif have.auth_mount.type != "kubernetes":
        actions.append(
            problem(f"auth {conv.AUTH_MOUNT}/", f"already enabled as {have.auth_mount.type}")
        )
    return actions


#: The parts of the token reviewer an action may create.
ReviewerPart = Literal["namespace", "service-account", "binding"]
REVIEWER_PARTS: tuple[ReviewerPart, ...] = ("namespace", "service-account", "binding")


@dataclass(frozen=True)
class CreateReviewerPart(Action):
    """Create one part of the token reviewer in the cluster: its namespace, its
    ServiceAccount, or the binding of that ServiceAccount to system:auth-delegator."""

    part: ReviewerPart
    reviewer: Reviewer


@dataclass(frozen=True)
class ConfigureKubernetesAuth(Action):
    """Write host, CA and a reviewer token (requested from the cluster at apply time)."""

    host: str
    ca_cert: str
    reviewer: Reviewer | None


def _plan_auth_config(want: Desired, have: Facts) -> list[Action]:
    cfg = have.auth_config or AuthConfig("", "", False)
    reasons = []
    if cfg.host != want.kubernetes_host:
        reasons.append(f"host {cfg.host or '(unset)'} -> {want.kubernetes_host}")
    if _norm_pem(cfg.ca_cert) != _norm_pem(want.kubernetes_ca_cert):
        reasons.append("CA certificate differs")
    if not cfg.reviewer_jwt_set:
        reasons.append("no token reviewer JWT")
    if not reasons:
        return []
    r = want.reviewer
    actions: list[Action] = []
    if r is not None:
        for part, target, why in _reviewer_parts(r):
            if part in have.reviewer:
                continue
            if part == "binding" and have.reviewer_binding == "foreign":
                return [
                    problem(
                        target,
                        "exists with other subjects or another role and was not made by the "
                        f"product (no {conv.MANAGED_BY_LABEL} label): it is not replaced; "
                        "remove it, or set reviewer_service_account/reviewer_namespace",
                    )
                ]
            if part == "binding" and have.reviewer_binding == "differs":
                why = f"replace: it binds other subjects or another role; {why}"
                actions.append(CreateReviewerPart("update", target, why, part, r))
                continue
            actions.append(CreateReviewerPart("create", target, why, part, r))
        reasons.append(f"reviewer token of {r.namespace}/{r.service_account}, requested anew")
    actions.append(
        ConfigureKubernetesAuth(
            "update",
            f"auth/{conv.AUTH_MOUNT}/config",
            "; ".join(reasons),
            want.kubernetes_host,
            want.kubernetes_ca_cert,
            r,
        )
    )
    return actions


def _reviewer_parts(r: Reviewer) -> list[tuple[ReviewerPart, str, str]]:
    """Each part of the token reviewer: (part, target, why), in creation order."""
    account = f"{r.namespace}/{r.service_account}"
    return [
        ("namespace", f"namespace {r.namespace}", "home of the token reviewer"),
        ("service-account", f"ServiceAccount {account}", "Vault's token reviewer"),
        (
            "binding",
            f"ClusterRoleBinding {r.binding}",
            f"lets {account} review tokens (system:auth-delegator)",
        ),
    ]


@dataclass(frozen=True)
class PutPolicy(Action):
    name: str
    text: str


def _plan_policies(want: Desired, have: Facts) -> list[Action]:
    """Create what is missing, update only this catalog's own; never take over."""
    actions: list[Action] = []
    for name, text in sorted(want.policies.items()):
        current = have.policies.get(name)
        if current is None:
            actions.append(PutPolicy("create", f"policy {name}", "missing", name, text))
            continue
        if current.strip() == text.strip():
            continue
        owner = conv.policy_owner(current)
        if owner == want.catalog or (owner == "" and name == ADMIN_POLICY):
            actions.append(PutPolicy("update", f"policy {name}", "content differs", name, text))
        else:
            actions.append(_refused("policy", name, _owned_by(owner)))
    return actions


@dataclass(frozen=True)
class WriteRole(Action):
    name: str
    params: JsonObject


def _plan_roles(want: Desired, have: Facts) -> list[Action]:
    """The same rule as policies; a role exactly as wanted is left alone, whoever made it."""
    actions: list[Action] = []
    for name, role in sorted(want.roles.items()):
        if ADMIN_POLICY in (role.get("token_policies") or []):
            actions.append(
                problem(
                    f"role {name}",
                    f"would grant the {ADMIN_POLICY} policy (a service may not be named "
                    "after the product's admin policy); rename the service",
                )
            )
            continue
        current = have.roles.get(name)
        if current is None:
            actions.append(WriteRole("create", f"role {name}", "missing", name, role))
            continue
        diff = current.differing(Role.of(role))
        if not diff:
            continue
        owner = role_owner(name, current, have.policies)
        if owner == want.catalog:
            actions.append(
                WriteRole("update", f"role {name}", f"{', '.join(diff)} differ", name, role)
            )
        else:
            grants = list(current.token_policies)
            how = _owned_by(owner) + (f" through its policy {name}" if owner is not None else "")
            actions.append(_refused("role", name, how, f" (granting {grants})"))
    return actions


@dataclass(frozen=True)
class EnableAudit(Action):
    """Enable a file audit device (OpenBao refuses: it takes them from its config file)."""

    file_path: str


def _plan_audit(want: Desired, have: Facts) -> list[Action]:
    """Any file device will do (OpenBao declares them in its server config)."""
    if "file" in have.audit.values():
        return []
    return [
        EnableAudit(
            "create",
            f"audit {AUDIT_PATH}/",
            f"enable file audit device ({want.audit_file})",
            want.audit_file,
        )
    ]


@dataclass(frozen=True)
class Remove(Action):
    """Delete a managed role or policy that left the catalog (a DELETE of ``path``)."""

    path: str


def _plan_prune(want: Desired, have: Facts) -> list[Action]:
    """Managed objects of this catalog that left it: roles first, then their policies."""
    actions: list[Action] = [
        Remove("delete", f"role {name}", "no longer in the catalog", f"{ROLE_PREFIX}{name}")
        for name, role in sorted(have.roles.items())
        if name not in want.roles and is_managed_role(name, role, have.policies, want.catalog)
    ]
    actions += [
        Remove("delete", f"policy {name}", "no longer in the catalog", f"{POLICY_PREFIX}{name}")
        for name, text in sorted(have.policies.items())
        if name not in want.policies and is_managed_policy(text, want.catalog)
    ]
    return actions
