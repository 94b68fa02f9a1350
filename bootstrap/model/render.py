"""Renderers: catalog in, documents out. Pure functions, no IO, deterministic output.

Everything the product writes to Vault, Kubernetes or Terraform is derived here, so the
static check, the GitOps files and the phases all agree by construction.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, Service, duration_seconds
from bootstrap.model.domain import VSO_API, Sync, kv_secrets, syncs

# -- Vault ------------------------------------------------------------------------------


def policy_paths(svc: Service) -> list[str]:
    """The API paths a service's policy grants read on, in rendering order."""
    paths = [conv.kv_data_path(f"{svc.name}/*")]
    paths += [conv.kv_data_path(read.path) for read in sorted(svc.reads, key=lambda r: r.path)]
    return paths


def policy_block(path: str, capabilities: list[str]) -> list[str]:
    """One ``path "..." { capabilities = [...] }`` block of a Vault policy, as lines."""
    caps = ", ".join(f'"{c}"' for c in capabilities)
    return [f'path "{path}" {{', f"  capabilities = [{caps}]", "}"]


def render_policy(svc: Service, catalog_name: str) -> str:
    """The service's read-only policy, in the Secrets Architecture document's section 4 shape."""
    lines = [
        conv.policy_header(catalog_name),
        f"# vault/policies/{svc.name}.hcl: read-only access for service {svc.name}"
        f" (namespace {svc.namespace})",
    ]
    for i, path in enumerate(policy_paths(svc)):
        lines.append("")
        if i == 1:
            lines.append("# Shared and infrastructure secrets this service declares")
        lines += policy_block(path, ["read"])
    return "\n".join(lines) + "\n"


def render_role(catalog: Catalog, svc: Service) -> JsonObject:
    """Kubernetes auth role parameters, as written to ``auth/kubernetes/role/<service>``."""
    return {
        "bound_service_account_names": [conv.service_account_name(svc.name)],
        "bound_service_account_namespaces": [svc.namespace],
        "token_policies": [conv.policy_name(svc.name)],
        "token_ttl": duration_seconds(catalog.defaults.token_ttl),
        "audience": catalog.defaults.audience,
    }


#: What the bootstrap-admin credential may do: configure, populate, check raft, take a raft
#: snapshot (dr.snapshot); no more. Restoring one needs the root token of the target.
ADMIN_RULES: tuple[tuple[str, list[str]], ...] = (
    ("sys/mounts", ["read"]),
    (f"sys/mounts/{conv.KV_MOUNT}", ["read"]),
    ("sys/auth", ["read"]),
    ("sys/audit", ["read", "sudo"]),
    ("sys/audit/*", ["create", "update", "delete", "sudo"]),
    ("sys/policies/acl", ["list"]),
    ("sys/policies/detailed/acl", ["list"]),  # every policy with its text, in one request
    ("sys/policies/acl/*", ["create", "read", "update", "delete"]),
    (f"auth/{conv.AUTH_MOUNT}/*", ["create", "read", "update", "delete", "list"]),
    (f"{conv.KV_MOUNT}/*", ["create", "read", "update", "delete", "list"]),
    ("sys/storage/raft/configuration", ["read"]),
    ("sys/storage/raft/autopilot/state", ["read"]),  # vault-ready: is every peer in contact
    ("sys/storage/raft/snapshot", ["read"]),  # dr.snapshot
    ("auth/token/renew-self", ["update"]),
    ("auth/token/lookup-self", ["read"]),
)
ADMIN_POLICY_TEXT = (
    "\n".join(
        [
            conv.POLICY_HEADER,
            "# The bootstrap-admin credential: what later bootstrap runs need once the root token"
            " is gone.",
            *(line for path, caps in ADMIN_RULES for line in ["", *policy_block(path, caps)]),
        ]
    )
    + "\n"
)


#: The populate Job's policy and kubernetes auth role (a reserved service name).
POPULATE_ROLE = conv.POPULATE_ROLE
#: Seconds a token of the populate role lives: the Job is short.
POPULATE_TOKEN_TTL = 900


@dataclass(frozen=True)
class PopulateAccess:
    """Who the populate Job is: its ServiceAccount in its own namespace."""

    namespace: str
    service_account: str


def populate_paths(catalog: Catalog) -> list[str]:
    """Every KV path the catalog declares (below the mount), sorted."""
    return sorted({path for path, _ in kv_secrets(catalog)})


def render_populate_policy(catalog: Catalog) -> str:
    """The populate Job's policy: create, update and read on exactly the catalog's KV paths.
    Read on the same paths is needed: check-and-set needs each path's current version, the
    keys a path holds are merged (real values kept), and ``copy:`` sources read other
    paths of the catalog. No list, no metadata, no other path."""
    lines = [
        conv.policy_header(catalog.name),
        f"# vault/policies/{POPULATE_ROLE}.hcl: the populate Job writes exactly the catalog's"
        " KV paths;",
        "# read on the same paths: check-and-set needs each path's current version, and the",
        "# keys a path holds are merged (real values kept). Nothing else: no list, no metadata.",
    ]
    for path in populate_paths(catalog):
        lines.append("")
        lines += policy_block(conv.kv_data_path(path), ["create", "read", "update"])
    return "\n".join(lines) + "\n"


def render_populate_role(catalog: Catalog, access: PopulateAccess) -> JsonObject:
    """The populate Job's role: its own ServiceAccount in its own namespace, its policy."""
    return {
        "bound_service_account_names": [access.service_account],
        "bound_service_account_namespaces": [access.namespace],
        "token_policies": [POPULATE_ROLE],
        "token_ttl": POPULATE_TOKEN_TTL,
        "audience": catalog.defaults.audience,
    }


class VaultAcl(NamedTuple):
    """Every policy and kubernetes auth role the vault-config phase writes, by name."""

    policies: dict[str, str]
    roles: dict[str, JsonObject]


def vault_acl(catalog: Catalog, populate: PopulateAccess | None = None) -> VaultAcl:
    """What vault-config writes: one policy and role per service, then the bootstrap-admin
    policy, which wins a name collision (as it does in Vault: it is written under its name);
    with ``populate`` (the setting populate_job), the populate Job's policy and role.
    ``invoke render``, the static check and the vault-config plan all take it from here."""
    policies = {conv.policy_name(s.name): render_policy(s, catalog.name) for s in catalog.services}
    policies[conv.ADMIN_POLICY] = ADMIN_POLICY_TEXT
    roles = {conv.role_name(s.name): render_role(catalog, s) for s in catalog.services}
    if populate is not None:
        policies[POPULATE_ROLE] = render_populate_policy(catalog)
        roles[POPULATE_ROLE] = render_populate_role(catalog, populate)
    return VaultAcl(policies, roles)


# -- Kubernetes (operator resources) ----------------------------------------------------


def labels(catalog: Catalog, service: str | None = None) -> dict[str, str]:
    """The labels of everything the product creates in Kubernetes."""
    out = {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE, conv.CATALOG_LABEL: catalog.name}
    if service:
        out[conv.SERVICE_LABEL] = service
    return out


def render_service_account(catalog: Catalog, svc: Service) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": conv.service_account_name(svc.name),
            "namespace": svc.namespace,
            "labels": labels(catalog, svc.name),
        },
    }


def render_vault_auth(catalog: Catalog, svc: Service) -> JsonObject:
    return {
        "apiVersion": VSO_API,
        "kind": "VaultAuth",
        "metadata": {
            "name": conv.vault_auth_name(svc.name),
            "namespace": svc.namespace,
            "labels": labels(catalog, svc.name),
        },
        "spec": {
            "method": "kubernetes",
            "mount": conv.AUTH_MOUNT,
            "kubernetes": {
                "role": conv.role_name(svc.name),
                "serviceAccount": conv.service_account_name(svc.name),
                "audiences": [catalog.defaults.audience],
            },
        },
    }


def render_static_secret(
    catalog: Catalog,
    sync: Sync,
    *,
    create: bool = True,
    overwrite: bool = False,
    transformation: bool = True,
) -> JsonObject:
    """A VaultStaticSecret in the document's section 3 shape.

    ``create``/``overwrite`` select the hand-over mode from placeholders (see
    docs/explanation/operators.md).
    ``transformation`` (for an operator whose CRD has it, as 1.4.1's): an empty
    ``destination.transformation``. VSO 1.4.1 writes that empty object into the spec itself
    when it adds its finalizer after the first reconcile, which makes a new generation, and it
    answers a new generation of a synced VaultStaticSecret with a sync and a restart of the
    rollout targets: without it, a VaultStaticSecret whose first reconcile succeeds (Vault held
    the value already: a migration, a restore, a busy operator reaching it after populate)
    restarts its targets once for nothing.
    """
    destination: JsonObject = {"name": sync.destination, "create": create}
    if overwrite:
        destination["overwrite"] = True
    if transformation:
        destination["transformation"] = {}
    spec: JsonObject = {
        "type": "kv-v2",
        "mount": conv.KV_MOUNT,
        "path": sync.kv_path,
        "destination": destination,
        "refreshAfter": sync.refresh_after,
        "vaultAuthRef": conv.vault_auth_name(sync.service),
        # Rollout restarts (and drift detection) need the operator's HMAC of the data; the
        # v0.1.0 CRD defaults it to true, said here so the manifest says what it relies on.
        "hmacSecretData": True,
    }
    if sync.restart:
        spec["rolloutRestartTargets"] = [{"kind": t.kind, "name": t.name} for t in sync.restart]
    return {
        "apiVersion": VSO_API,
        "kind": "VaultStaticSecret",
        "metadata": {
            "name": sync.destination,
            "namespace": sync.namespace,
            "labels": labels(catalog, sync.service),
        },
        "spec": spec,
    }


def operator_resources(catalog: Catalog) -> dict[str, list[JsonObject]]:
    """Per namespace: each service's ServiceAccount and VaultAuth, then its VaultStaticSecrets."""
    by_ns: dict[str, list[JsonObject]] = {ns: [] for ns in catalog.namespaces}
    by_service: dict[str, list[Sync]] = defaultdict(list)
    for sync in syncs(catalog):
        by_service[sync.service].append(sync)
    for svc in sorted(catalog.services, key=lambda s: s.name):
        docs = by_ns[svc.namespace]
        docs.append(render_service_account(catalog, svc))
        docs.append(render_vault_auth(catalog, svc))
        docs += [render_static_secret(catalog, s) for s in by_service[svc.name]]
    return by_ns


# -- Terraform placeholders -------------------------------------------------------------


def placeholder_labels(catalog: Catalog) -> dict[str, str]:
    """The labels of every placeholder Secret (its service's is added by the module): the
    product's own mark, and the two the operator selects its Secret cache on, so that a
    current VSO syncing into it in place sees it (see ``conventions.OPERATOR_CACHE_LABELS``).
    Not ``app.kubernetes.io/managed-by: cluster-secrets-bootstrap``: on a Secret that key is
    the operator's."""
    return {
        conv.SECRET_MANAGED_LABEL: conv.MANAGED_BY_VALUE,
        conv.CATALOG_LABEL: catalog.name,
        **conv.OPERATOR_CACHE_LABELS,
    }


def placeholder_tfvars(catalog: Catalog) -> JsonObject:
    """Inputs of the ``terraform/`` module: namespaces and one placeholder Secret per sync."""
    secrets = {}
    for s in sorted(syncs(catalog), key=lambda s: (s.namespace, s.destination)):
        secrets[f"{s.namespace}/{s.destination}"] = {
            "namespace": s.namespace,
            "name": s.destination,
            "service": s.service,
            "data": {k: conv.placeholder_value(s.owner, s.secret, k) for k in s.keys},
        }
    return {
        "namespaces": catalog.namespaces,
        "secrets": secrets,
        "labels": labels(catalog),
        "secret_labels": placeholder_labels(catalog),
    }


# -- GitOps tree ------------------------------------------------------------------------


#: Plain scalars some YAML reader takes for something other than a string (issue 23,
#: finding 11): YAML 1.1's booleans (``y``, ``n``, ``yes``, ``on``, ``off``, ...), nulls,
#: numbers in YAML 1.1 and 1.2 forms (``1e3``, ``0o17``, ``0x1f``, ``1_000``, ``12:30``),
#: ``.inf``/``nan``, dates, ``=`` and ``<<``. PyYAML itself quotes only what it resolves
#: (not ``y``, ``n``, ``1e3``, ``0o17``); Kubernetes' reader takes ``y`` for true.
AMBIGUOUS_SCALAR = re.compile(
    r"""\A(?:
      y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
    | ~|null|Null|NULL|
    | [-+]?(?:0|[1-9][0-9_]*|0[0-7_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|0b[01_]+)
    | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
    | [-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
    | [-+]?\.?(?:inf|Inf|INF)|\.?(?:nan|NaN|NAN)
    | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*
    | =|<<
    )\Z""",
    re.VERBOSE,
)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting every string of :data:`AMBIGUOUS_SCALAR`."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if AMBIGUOUS_SCALAR.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(doc: Any) -> str:
    """One YAML document as every renderer writes it: block style, keys in order, strings a
    YAML 1.1 or 1.2 reader would take for another type quoted."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def dump_yaml_docs(docs: list[JsonObject]) -> str:
    return "---\n".join(dump_yaml(d) for d in docs)


def render_tree(catalog: Catalog) -> dict[str, str]:
    """Every file of ``invoke render --out DIR``, keyed by relative path. Deterministic."""
    files: dict[str, str] = {}
    acl = vault_acl(catalog)  # exactly what vault-config writes, the admin policy included
    for name, text in acl.policies.items():
        files[f"vault/policies/{name}.hcl"] = text
    for name, role in acl.roles.items():
        files[f"vault/roles/{name}.json"] = json.dumps(role, indent=2, sort_keys=True) + "\n"
    for ns, docs in operator_resources(catalog).items():
        for doc in docs:
            kind = doc["kind"].lower()
            name = doc["metadata"]["name"]
            files[f"manifests/{ns}/{kind}-{name}.yaml"] = dump_yaml_docs([doc])
    files["terraform/placeholders.auto.tfvars.json"] = (
        json.dumps(placeholder_tfvars(catalog), indent=2, sort_keys=True) + "\n"
    )
    return dict(sorted(files.items()))
