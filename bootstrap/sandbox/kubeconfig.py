"""Kubeconfig files for the sandbox's clients (admin, controller manager, operator): one
cluster, one user, written mode 0600."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bootstrap.core.jsondoc import JsonObject

if TYPE_CHECKING:
    from bootstrap.clients.kube import Kube
    from bootstrap.sandbox.state import SandboxState

#: Lifetime of a component's ServiceAccount token (its kubeconfig), like the certificates.
TOKEN_SECONDS = 30 * 24 * 3600


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def cert_user(cert: Path, key: Path) -> dict[str, str]:
    """A user that authenticates with a client certificate."""
    return {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}


def write(path: Path, server: str, ca: Path, user: str, credentials: dict[str, str]) -> None:
    config: JsonObject = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sandbox",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(config))


def service_account(
    kube: Kube,
    state: SandboxState,
    namespace: str,
    name: str,
    rbac: Iterable[JsonObject],
    file_name: str,
) -> Path:
    """A component's identity as a cluster install gives it: its namespace and
    ServiceAccount, the RBAC objects bound to it, and a kubeconfig (``file_name`` in the
    sandbox's folder) that authenticates as that ServiceAccount, not as cluster admin."""
    kube.ensure_namespace(namespace)
    kube.ensure_service_account(namespace, name)
    for obj in rbac:
        kube.apply(obj)
    path = Path(state.directory) / file_name
    token = kube.token(namespace, name, [], TOKEN_SECONDS)
    write(path, state.apiserver_url, Path(state.ca_cert), name, {"token": token})
    return path
