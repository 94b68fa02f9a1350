"""Naming conventions shared by every renderer, check and phase.

The catalog says *what* exists; this module says *where* it lives: Vault paths, policy and
role names, Kubernetes object names and the placeholder marker. Pure; no IO.
"""

from __future__ import annotations

import re

PRODUCT = "cluster-secrets-bootstrap"

#: KV v2 mount for every secret, and the kubernetes auth mount (document sections 3 and 4).
KV_MOUNT = "secret"
AUTH_MOUNT = "kubernetes"

#: Reserved top-level path segments; no service may take these names.
SHARED = "shared"
INFRASTRUCTURE = "infrastructure"
RESERVED_PREFIXES = (SHARED, INFRASTRUCTURE)

#: The policy of the bootstrap-admin credential (vault-config writes it beside the services'
#: policies, so a service of this name would receive it).
ADMIN_POLICY = "bootstrap-admin"
#: The populate Job's policy and kubernetes auth role (setting populate_job).
POPULATE_ROLE = "bootstrap-populate"

#: Service names no catalog may use, and why. A service's name becomes a Vault policy, a
#: kubernetes auth role and a ServiceAccount (see policy_name, role_name and
#: service_account_name below), so it must not collide with Vault's built-in policies, the
#: product's own, the path prefixes, or the ServiceAccount every pod gets by default.
RESERVED_SERVICE_NAMES: dict[str, str] = {
    SHARED: "reserved for the shared/ Vault path prefix",
    INFRASTRUCTURE: "reserved for the infrastructure/ Vault path prefix",
    "default": (
        "Vault's built-in 'default' policy (attached to every token) and the ServiceAccount "
        "every pod of a namespace uses"
    ),
    "root": "Vault's built-in 'root' policy",
    "response-wrapping": (
        "Vault's and OpenBao's built-in 'response-wrapping' policy (it cannot be written: "
        "vault-config would fail)"
    ),
    "control-group": "Vault's built-in 'control-group' policy (Vault Enterprise)",
    ADMIN_POLICY: (
        "the bootstrap-admin credential's policy (it would grant the service admin rights)"
    ),
    POPULATE_ROLE: ("the populate Job's policy and role (they write every path of the catalog)"),
}

#: Namespaces a catalog may not put services (and so Secrets, roles, prunable objects) in.
RESERVED_NAMESPACES: dict[str, str] = {
    "kube-system": "the cluster's own system namespace",
    "kube-public": "readable by every client, authenticated or not",
    "kube-node-lease": "the nodes' heartbeat Leases",
}

#: The Terraform state Secret with the kubernetes backend: ``tfstate-<workspace>-<suffix>`` in
#: the lock namespace (the workspace is always ``default``).
TERRAFORM_STATE_SUFFIX = "placeholders"
TERRAFORM_STATE_SECRET = f"tfstate-default-{TERRAFORM_STATE_SUFFIX}"

#: Label put on every Kubernetes object the product manages (and only on those), except the
#: placeholder Secrets: there the key belongs to the operator (below), and
#: :data:`SECRET_MANAGED_LABEL` says the same.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = PRODUCT
#: The product's mark on the placeholder Secrets it makes.
SECRET_MANAGED_LABEL = "secrets-bootstrap/managed-by"  # noqa: S105 - a label key
#: The labels the Vault Secrets Operator selects its Secret cache on (VSO 0.10 and later
#: read destination Secrets for their drift check through a cache filtered on these two: a
#: ``create: false`` destination without them looks drifted on every refresh, and the
#: operator re-syncs it and restarts its targets each time, hashicorp/vault-secrets-operator
#: #1212). Every placeholder carries them. Not the third owner label
#: (``app.kubernetes.io/component: secret-sync``): with all three, a current VSO holds the
#: Secret to be one it created, and refuses to take it over (``overwrite``) for want of an
#: owner reference.
OPERATOR_CACHE_LABELS = {
    "app.kubernetes.io/managed-by": "hashicorp-vso",
    "app.kubernetes.io/name": "vault-secrets-operator",
}
#: The same, as plans and messages show them.
OPERATOR_CACHE_LABELS_TEXT = ", ".join(f"{k}={v}" for k, v in OPERATOR_CACHE_LABELS.items())
SERVICE_LABEL = "secrets-bootstrap/service"
#: Which catalog an object belongs to: prune only ever removes objects of its own catalog.
CATALOG_LABEL = "secrets-bootstrap/catalog"
#: Where the Vault Secrets Operator runs unless told otherwise (its Helm chart's default).
OPERATOR_NAMESPACE = "vault-secrets-operator-system"

#: What VSO 1.4.1's VaultStaticSecret CRD requires of ``refreshAfter`` (as the API server
#: reads it, RE2: ``$`` is the end of the text): one number and one unit, so ``1h30m`` is
#: refused. Match it with ``re.fullmatch`` (Python's ``$`` would accept a trailing newline).
VSO_REFRESH_PATTERN = r"^([0-9]+(\.[0-9]+)?(s|m|h))$"
VSO_REFRESH = re.compile(VSO_REFRESH_PATTERN)


def operator_cache_sees(labels: dict[str, str] | None) -> bool:
    """Pure: a Secret with these labels is in a current operator's Secret cache (it carries
    every one of :data:`OPERATOR_CACHE_LABELS`)."""
    return all((labels or {}).get(k) == v for k, v in OPERATOR_CACHE_LABELS.items())


#: Server-side apply field manager.
FIELD_MANAGER = PRODUCT

#: First line of every policy the product writes; how a managed policy is recognised.
POLICY_HEADER = f"# managed-by: {PRODUCT}"
#: The policy of the bootstrap-admin credential (one per Vault, shared by every catalog).
ADMIN_POLICY = "bootstrap-admin"

#: Every placeholder value is this prefix followed by ``<service-or-scope>/<secret>/<key>``.
PLACEHOLDER_PREFIX = "bootstrap-placeholder:"

#: A DNS-1123 label: ASCII only, anchored with \A and \Z (``$`` would accept a trailing
#: newline). The 63-character limit is checked by :func:`is_dns_label`.
DNS1123_LABEL = re.compile(r"\A[a-z0-9](?:[-a-z0-9]*[a-z0-9])?\Z")
DNS1123_LABEL_MAX = 63
#: Secret keys as Kubernetes allows them in a Secret's data (see :func:`secret_key_problem`).
SECRET_KEY = re.compile(r"\A[-._a-zA-Z0-9]+\Z")
SECRET_KEY_MAX = 253
#: The key VSO v0.1.0 adds to every Secret it writes (Vault's response as JSON); it refuses
#: a Vault key of that name.
OPERATOR_RAW_KEY = "_raw"


#: Kubernetes refuses a Secret whose data exceeds 1 MiB.
SECRET_MAX_BYTES = 1024 * 1024


def secret_size(data: dict[str, str]) -> int:
    """Bytes of a Secret's keys and values (UTF-8), as measured against SECRET_MAX_BYTES."""
    return sum(len(k.encode()) + len(v.encode("utf-8", "replace")) for k, v in data.items())


def is_dns_label(value: str) -> bool:
    """A DNS-1123 label: what Kubernetes accepts as a namespace or Secret name here."""
    return len(value) <= DNS1123_LABEL_MAX and DNS1123_LABEL.fullmatch(value) is not None


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a key of a Secret's data (None when it can)."""
    if len(key) > SECRET_KEY_MAX:
        return f"is longer than {SECRET_KEY_MAX} characters"
    if SECRET_KEY.fullmatch(key) is None:
        return "is not a valid Secret key (letters, digits, '-', '_' and '.' only)"
    if key in (".", "..") or key.startswith(".."):
        return "is refused by Kubernetes ('.', '..' and names starting with '..' are reserved)"
    if key == OPERATOR_RAW_KEY:
        return "is the key the Vault Secrets Operator writes itself (Vault's raw response)"
    return None


def policy_header(catalog: str) -> str:
    """First line of a service policy: managed, and by which catalog."""
    return f"{POLICY_HEADER} catalog={catalog}"


def is_managed_policy(text: str, catalog: str | None = None) -> bool:
    """Managed by the product (by the given catalog, when one is named)."""
    first = text.split("\n", 1)[0].strip()
    if catalog is None:
        return first.startswith(POLICY_HEADER)
    return first == policy_header(catalog)


def policy_owner(text: str) -> str | None:
    """Who manages a policy, from its first line: the catalog's name, ``""`` for the product
    without a catalog (the bootstrap-admin policy), None when the product does not."""
    first = text.split("\n", 1)[0].strip()
    if first == POLICY_HEADER:
        return ""
    prefix = f"{POLICY_HEADER} catalog="
    if first.startswith(prefix) and DNS1123_LABEL.match(first[len(prefix) :]):
        return first[len(prefix) :]
    return None


def placeholder_value(owner: str, secret: str, key: str) -> str:
    """The placeholder for one key: recognisable by its value alone."""
    return f"{PLACEHOLDER_PREFIX}{owner}/{secret}/{key}"


def is_placeholder(value: str | bytes) -> bool:
    """True when a Secret value is a bootstrap placeholder rather than a real value."""
    if isinstance(value, bytes):
        return value.startswith(PLACEHOLDER_PREFIX.encode())
    return value.startswith(PLACEHOLDER_PREFIX)


def kv_path(owner: str, secret: str) -> str:
    """Logical KV path below the mount: ``<service>/<secret>`` or ``shared/<name>``."""
    return f"{owner}/{secret}"


def kv_data_path(logical: str) -> str:
    """The API path a KV v2 read goes to, as policies must name it."""
    return f"{KV_MOUNT}/data/{logical}"


def policy_name(service: str) -> str:
    return service


def role_name(service: str) -> str:
    return service


def service_account_name(service: str) -> str:
    return service


def vault_auth_name(service: str) -> str:
    return service
