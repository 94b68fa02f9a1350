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

#: Label put on every Kubernetes object the product manages (and only on those).
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = PRODUCT
SERVICE_LABEL = "secrets-bootstrap/service"
#: Which catalog an object belongs to: prune only ever removes objects of its own catalog.
CATALOG_LABEL = "secrets-bootstrap/catalog"
#: Server-side apply field manager.
FIELD_MANAGER = PRODUCT

#: First line of every policy the product writes; how a managed policy is recognised.
POLICY_HEADER = f"# managed-by: {PRODUCT}"
#: The policy of the bootstrap-admin credential (one per Vault, shared by every catalog).
ADMIN_POLICY = "bootstrap-admin"

#: Every placeholder value is this prefix followed by ``<service-or-scope>/<secret>/<key>``.
PLACEHOLDER_PREFIX = "bootstrap-placeholder:"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: Secret keys as Kubernetes allows them in a Secret's data.
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


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
