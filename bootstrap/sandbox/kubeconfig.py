"""Kubeconfig files for the sandbox's clients (admin, controller manager, operator): one
cluster, one user, written mode 0600."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

from bootstrap.core.jsondoc import JsonObject


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
