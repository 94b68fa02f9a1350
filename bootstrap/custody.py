"""Key custody: where the init response (unseal keys, root token) goes, durably, before any
other call is made with it.

- :class:`FileCustody` (default for the sandbox and local clusters): written atomically
  (temporary file, fsync, rename, fsync of the directory), mode 0600, never overwritten.
- :class:`KubernetesSecretCustody`: a Secret in a namespace of the cluster. The weaker
  choice: anyone who can read Secrets there can unseal Vault and holds the root token.

Records are JSON. Nothing here logs or raises with a key or token in the message.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bootstrap.errors import VaultStateError


@dataclass
class InitRecord:
    unseal_keys_b64: list[str]
    root_token: str
    shares: int
    threshold: int
    pgp: bool = False
    created: float = field(default_factory=time.time)
    vault_addr: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> InitRecord:
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise VaultStateError(
                f"custody record {where} is unreadable: {type(exc).__name__}"
            ) from None

    @classmethod
    def from_init_response(
        cls, resp: dict[str, Any], shares: int, threshold: int, pgp: bool, addr: str
    ) -> InitRecord:
        return cls(
            unseal_keys_b64=list(resp.get("keys_base64") or resp.get("keys") or []),
            root_token=str(resp.get("root_token", "")),
            shares=shares,
            threshold=threshold,
            pgp=pgp,
            vault_addr=addr,
        )


class Custody(Protocol):
    description: str

    def load(self) -> InitRecord | None: ...

    def store(self, record: InitRecord) -> None: ...

    def load_extra(self, name: str) -> dict[str, Any] | None: ...

    def store_extra(self, name: str, data: dict[str, Any]) -> None: ...


def _atomic_write(path: Path, text: str, *, overwrite: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and not overwrite:
        raise VaultStateError(f"custody file {path} already exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if it appeared meanwhile: never overwrite
            os.unlink(tmp)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class FileCustody:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file {path}"

    def load(self) -> InitRecord | None:
        if not self.path.exists():
            return None
        return InitRecord.from_json(self.path.read_text(encoding="utf-8"), str(self.path))

    def store(self, record: InitRecord) -> None:
        try:
            _atomic_write(self.path, record.to_json(), overwrite=False)
        except FileExistsError:
            raise VaultStateError(
                f"custody file {self.path} already exists; refusing to overwrite it"
            ) from None

    def _extra(self, name: str) -> Path:
        return self.path.with_name(f"{self.path.stem}.{name}.json")

    def load_extra(self, name: str) -> dict[str, Any] | None:
        p = self._extra(name)
        return dict(json.loads(p.read_text(encoding="utf-8"))) if p.exists() else None

    def store_extra(self, name: str, data: dict[str, Any]) -> None:
        _atomic_write(self._extra(name), json.dumps(data, indent=2) + "\n", overwrite=True)


class KubernetesSecretCustody:
    """Custody in a Kubernetes Secret (weaker: readable by whoever may read Secrets there)."""

    KEY = "init.json"

    def __init__(self, kube: Any, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.description = f"Secret {namespace}/{name}"

    def load(self) -> InitRecord | None:
        data = self.kube.read_secret(self.namespace, self.name)
        if not data or self.KEY not in data:
            return None
        return InitRecord.from_json(data[self.KEY].decode(), self.description)

    def store(self, record: InitRecord) -> None:
        if self.kube.read_secret(self.namespace, self.name) is not None:
            raise VaultStateError(
                f"custody {self.description} already exists; refusing to overwrite it"
            )
        self.kube.ensure_namespace(self.namespace)
        self.kube.write_secret(self.namespace, self.name, {self.KEY: record.to_json().encode()})

    def load_extra(self, name: str) -> dict[str, Any] | None:
        data = self.kube.read_secret(self.namespace, f"{self.name}-{name}")
        return json.loads(data["data.json"]) if data and "data.json" in data else None

    def store_extra(self, name: str, data: dict[str, Any]) -> None:
        self.kube.write_secret(
            self.namespace, f"{self.name}-{name}", {"data.json": json.dumps(data).encode()}
        )
