"""Key custody: where the init response (unseal keys, root token) goes, durably, before any
other call is made with it.

- :class:`FileCustody` (default for the sandbox and local clusters): written atomically
  (temporary file, fsync, link, fsync of the directory), mode 0600, never overwritten.
- :class:`KubernetesSecretCustody`: a Secret in a namespace of the cluster, created and never
  replaced. The weaker choice: anyone who can read Secrets there can unseal Vault and holds
  the root token.

Before a Vault is initialized, :meth:`Custody.probe` proves the location can take a record (a
test write that leaves nothing behind), and :meth:`Custody.occupied` says when the location is
taken by something that is not a record. After initialization :func:`keep_safe` never drops
the response: it retries, then writes a rescue file (mode 0600) and stops, naming it.

Records are JSON. Nothing here logs or raises with a key or token in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bootstrap.core.errors import BootstrapError, VaultStateError


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

    def occupied(self) -> str | None:
        """Why the location is taken by something that is not an init record, or None."""
        ...

    def probe(self) -> None:
        """Prove a record can be stored here (raises VaultStateError saying why not)."""
        ...

    def store(self, record: InitRecord) -> None: ...

    def load_extra(self, name: str) -> dict[str, Any] | None: ...

    def store_extra(self, name: str, data: dict[str, Any]) -> None: ...

    def set_aside(self, tag: str, extras: tuple[str, ...]) -> str:
        """Move the record and the named extras out of the way, kept (never deleted) under a
        name holding ``tag``; returns where they went."""
        ...


def write_private(path: Path, content: str | bytes, *, overwrite: bool) -> None:
    """Write ``content`` atomically (temporary file, fsync, link or rename, fsync of the
    folder), mode 0600 (a new folder 0700); without ``overwrite`` an existing file is never
    replaced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists() and not overwrite:
        raise VaultStateError(f"custody file {path} already exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content.encode() if isinstance(content, str) else content)
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

    def occupied(self) -> str | None:
        if not self.path.exists() and not self.path.is_symlink():
            return None
        if not self.path.is_file():
            return f"{self.path} exists and is not a file"
        try:
            self.load()
        except (VaultStateError, OSError, UnicodeDecodeError):
            return f"{self.path} exists and holds no readable init record"
        return None

    def probe(self) -> None:
        test = self.path.with_name(f".{self.path.name}.probe-{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(test, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            why = f"{blocker} is not a folder" if blocker else (exc.strerror or str(exc))
            raise VaultStateError(f"custody file {self.path} cannot be written: {why}") from None
        finally:
            with contextlib.suppress(OSError):
                test.unlink(missing_ok=True)

    def store(self, record: InitRecord) -> None:
        try:
            write_private(self.path, record.to_json(), overwrite=False)
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
        write_private(self._extra(name), json.dumps(data, indent=2) + "\n", overwrite=True)

    def set_aside(self, tag: str, extras: tuple[str, ...]) -> str:
        folder = self.path.parent / f"replaced-{tag}"
        folder.mkdir(mode=0o700, exist_ok=True)
        # the extras first: a crash in between leaves the record, and a re-run moves it again
        for name in extras:
            extra = self._extra(name)
            if extra.exists():
                os.replace(extra, folder / extra.name)
        if self.path.exists():
            os.replace(self.path, folder / self.path.name)
        return str(folder)


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

    def occupied(self) -> str | None:
        data = self.kube.read_secret(self.namespace, self.name)
        if data is not None and self.KEY not in data:
            return f"{self.description} exists and holds no init record"
        return None

    def probe(self) -> None:
        try:
            self.kube.ensure_namespace(self.namespace)
            free = self.kube.create_secret(
                self.namespace, self.name, {self.KEY: b"{}"}, dry_run=True
            )
        except BootstrapError as exc:
            raise VaultStateError(f"custody {self.description} cannot be created: {exc}") from None
        if not free:
            raise VaultStateError(f"custody {self.description} exists already")

    def store(self, record: InitRecord) -> None:
        """Create the Secret; never replace one (a race loses with a clear error)."""
        self.kube.ensure_namespace(self.namespace)
        created = self.kube.create_secret(
            self.namespace, self.name, {self.KEY: record.to_json().encode()}
        )
        if not created:
            raise VaultStateError(
                f"custody {self.description} already exists; refusing to overwrite it"
            )

    def load_extra(self, name: str) -> dict[str, Any] | None:
        data = self.kube.read_secret(self.namespace, f"{self.name}-{name}")
        return json.loads(data["data.json"]) if data and "data.json" in data else None

    def store_extra(self, name: str, data: dict[str, Any]) -> None:
        self.kube.write_secret(
            self.namespace, f"{self.name}-{name}", {"data.json": json.dumps(data).encode()}
        )

    def set_aside(self, tag: str, extras: tuple[str, ...]) -> str:
        """Copy each Secret to ``<name>-replaced-<tag>`` (created, never replaced), then delete
        the original: a copy always exists before an original goes."""
        aside = f"{self.name}-replaced-{tag.lower()}"  # Secret names are lower case
        for name in [*(f"{self.name}-{e}" for e in extras), self.name]:
            data = self.kube.read_secret(self.namespace, name)
            if data is None:
                continue
            copy = aside + name[len(self.name) :]
            if self.kube.read_secret(self.namespace, copy) is None:
                self.kube.create_secret(self.namespace, copy, data)
            self.kube.delete("v1", "Secret", name, self.namespace)
        return f"Secret {self.namespace}/{aside}"


#: Rescue files: where an init record goes when custody refuses it after initialization.
RESCUE_GLOB = "vault-init.rescued-*.json"


def rescue_dirs(state_dir: Path) -> list[Path]:
    """Where a rescued init record may be: the state folder first, then the user's cache."""
    return [
        state_dir / "custody",
        Path.home() / ".cache" / "cluster-secrets-bootstrap" / "rescue",
    ]


def rescued(state_dir: Path) -> list[Path]:
    return sorted(p for d in rescue_dirs(state_dir) if d.is_dir() for p in d.glob(RESCUE_GLOB))


def keep_safe(
    custody: Custody,
    record: InitRecord,
    state_dir: Path,
    *,
    attempts: int = 3,
    sleep: Any = time.sleep,
) -> None:
    """Store a fresh init record; never drop it. Retries the custody store; if it still
    refuses, writes a rescue file (mode 0600, never overwritten) and raises an error naming
    it and the reason. Only when no rescue file can be written either are the keys lost, and
    the error says so."""
    reason = ""
    for attempt in range(attempts):
        try:
            custody.store(record)
            return
        except (BootstrapError, OSError) as exc:
            reason = str(exc)
            if attempt + 1 < attempts:
                sleep(0.5 * 2**attempt)
    failures = []
    for folder in rescue_dirs(state_dir):
        rescue = folder / f"vault-init.rescued-{int(time.time())}-{os.getpid()}.json"
        try:
            write_private(rescue, record.to_json(), overwrite=False)
        except (OSError, VaultStateError) as exc:
            failures.append(f"{rescue}: {getattr(exc, 'strerror', None) or exc}")
            continue
        raise VaultStateError(
            f"{record.vault_addr} is initialized, but its init record could not be stored in "
            f"{custody.description} ({reason}). The record (unseal keys and root token) is in "
            f"{rescue} (mode 0600): move it into custody, then run again"
        )
    raise VaultStateError(
        f"{record.vault_addr} is initialized, but its init record could not be stored in "
        f"{custody.description} ({reason}) nor in a rescue file ({'; '.join(failures)}): "
        "its unseal keys are lost; re-create the Vault's storage and run again"
    )
