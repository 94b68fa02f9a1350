"""The one name for a JSON object whose schema is another system's: a Kubernetes object or
manifest as the API server defines it, a Vault response body, OpenTofu's state, an OCI
manifest, a kubeconfig or CNI configuration. It is exactly ``dict[str, Any]``: the name says
what the dict is, not more. The product builds most of these and passes them on as the other
system defines them; some it still reads by key (the operator's objects, raft peers,
OpenTofu's state), and the planners' most consequential inputs are parsed into models of
its own (vaultplan.Mount/AuthConfig/Role, migrate.SecretRecord/Backup)."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A JSON object defined by another system (see the module's docstring).
JsonObject: TypeAlias = dict[str, Any]

__all__ = ["JsonObject"]
