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

import base64
import binascii
import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bootstrap.core.errors import BootstrapError, VaultStateError
from bootstrap.core.files import read_regular, read_regular_text, shown

#: OpenBao's limits on a seal configuration (SealConfig.Validate): 1 to 255 shares, a
#: threshold from 1 to the shares, and above 1 when there is more than one share.
MAX_SHARES = 255
#: The largest init record read (255 PGP-encrypted shares fit), custody entry, keys file.
RECORD_LIMIT = 1 << 20
EXTRA_LIMIT = 64 << 10
KEYS_FILE_LIMIT = 64 << 10
#: An unseal key decodes to 32 bytes (one share) or 33 (a Shamir share); 16 to 64 accepted.
KEY_BYTES = (16, 64)
_TEXT_LIMIT = 16 << 10
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: A record's fields, their types, and which it must have.
_FIELDS: dict[str, tuple[type, ...]] = {
    "unseal_keys_b64": (list,),
    "root_token": (str,),
    "shares": (int,),
    "threshold": (int,),
    "pgp": (bool,),
    "created": (int, float),
    "vault_addr": (str,),
}
_REQUIRED = ("unseal_keys_b64", "root_token", "shares", "threshold")


def decode_key(text: str) -> bytes | None:
    """The bytes of an unseal key given as base64 or hex (OpenBao takes either), or None
    when ``text`` is neither or not of an unseal key's length (:data:`KEY_BYTES`)."""
    text = text.strip()
    try:
        if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
            raw = bytes.fromhex(text)
        else:
            raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if KEY_BYTES[0] <= len(raw) <= KEY_BYTES[1] else None


def check_seal_config(shares: int, threshold: int, where: str) -> None:
    """Shares and threshold within OpenBao's limits, else VaultStateError naming ``where``."""
    if not 1 <= shares <= MAX_SHARES:
        raise VaultStateError(
            f"{where}: shares {shares} is outside OpenBao's limits (1 to {MAX_SHARES}): not "
            "an init record OpenBao can have written; refusing it"
        )
    if not 1 <= threshold <= shares:
        raise VaultStateError(
            f"{where}: threshold {threshold} is outside 1 to its shares ({shares}): not an init "
            "record OpenBao can have written; refusing it"
        )
    if shares > 1 and threshold == 1:
        raise VaultStateError(
            f"{where}: threshold 1 with {shares} shares (OpenBao requires a threshold above one "
            "for more than one share): not an init record OpenBao can have written; refusing it"
        )


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
    def from_bytes(cls, raw: bytes, where: str) -> InitRecord:
        """A record read from a file or a Secret, checked (see :meth:`from_json`)."""
        if len(raw) > RECORD_LIMIT:
            raise VaultStateError(
                f"init record {where} has {len(raw)} bytes, more than {RECORD_LIMIT}: not an "
                "init record"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VaultStateError(
                f"init record {where} is not UTF-8 text (byte {exc.start}): not an init record"
            ) from None
        return cls.from_json(text, where)

    @classmethod
    def from_json(cls, text: str, where: str) -> InitRecord:
        """A record, checked before anything uses it: a JSON object of the record's fields
        and types, shares and threshold within OpenBao's limits, as many keys as shares, each
        a short printable string. Whether plain keys are unseal keys: :meth:`check_keys`.
        VaultStateError naming ``where`` (never a value) otherwise."""
        bad = f"init record {where}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VaultStateError(
                f"{bad} is not JSON (line {exc.lineno} column {exc.colno}): not an init record"
            ) from None
        except (ValueError, RecursionError) as exc:
            raise VaultStateError(f"{bad} is unreadable: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise VaultStateError(f"{bad} is not a JSON object: not an init record")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise VaultStateError(
                f"{bad} has unknown fields: {', '.join(shown(u[:64]) for u in unknown)}"
            )
        missing = [f for f in _REQUIRED if f not in data]
        if missing:
            raise VaultStateError(f"{bad} lacks {', '.join(missing)}: not an init record")
        for name, types in _FIELDS.items():
            if name not in data:
                continue
            value = data[name]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise VaultStateError(
                    f"{bad}: {name} is not of type {' or '.join(t.__name__ for t in types)}"
                )
        keys = data["unseal_keys_b64"]
        if not keys:
            raise VaultStateError(
                f"{bad} holds no unseal keys (unseal_keys_b64 is empty): it cannot open a Vault"
            )
        check_seal_config(data["shares"], data["threshold"], bad)
        if len(keys) != data["shares"]:
            raise VaultStateError(
                f"{bad} lists {len(keys)} unseal keys for {data['shares']} shares: not an init "
                "record OpenBao can have written; refusing it"
            )
        for n, key in enumerate(keys, 1):
            if not isinstance(key, str) or not key or len(key) > _TEXT_LIMIT:
                raise VaultStateError(f"{bad}: unseal key #{n} is not a non-empty string")
            if _CONTROL.search(key):
                raise VaultStateError(f"{bad}: unseal key #{n} holds control characters")
        for name in ("root_token", "vault_addr"):
            value = data.get(name, "")
            if len(value) > _TEXT_LIMIT or _CONTROL.search(value):
                raise VaultStateError(f"{bad}: {name} is not a short printable string")
        return cls(**data)

    def check_keys(self, where: str) -> None:
        """Plain keys (not PGP-encrypted) must be unseal keys: base64 (or hex) of an unseal
        key's length. VaultStateError naming the key's place (never the key) otherwise."""
        if self.pgp:
            return
        for n, key in enumerate(self.unseal_keys_b64, 1):
            if decode_key(key) is None:
                raise VaultStateError(
                    f"init record {where}: unseal key #{n} is not an unseal key (base64 of "
                    f"{KEY_BYTES[0]} to {KEY_BYTES[1]} bytes); refusing it"
                )

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


def extra_from(raw: bytes, where: str) -> dict[str, Any]:
    """A custody entry beside the record (the bootstrap-admin credential, the root token's
    revocation): a JSON object of short printable values, else VaultStateError naming it."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise VaultStateError(f"custody entry {where} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise VaultStateError(f"custody entry {where} is not JSON") from None
    if not isinstance(data, dict):
        raise VaultStateError(f"custody entry {where} is not a JSON object")
    token = data.get("token")
    if token is not None and (
        not isinstance(token, str) or len(token) > _TEXT_LIMIT or _CONTROL.search(token)
    ):
        raise VaultStateError(f"custody entry {where}: token is not a short printable string")
    return data


def read_unseal_keys(path: Path) -> list[str]:
    """The unseal keys of a keys file (``bootstrap.unseal_keys_file``, BAO_UNSEAL_KEYS_FILE):
    one per line, each base64 or hex of an unseal key's length, at most 255. VaultStateError
    naming the file (and line; never a key) otherwise."""
    text = read_regular_text(path, KEYS_FILE_LIMIT, what="unseal keys file", error=VaultStateError)
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if decode_key(line) is None:
            raise VaultStateError(
                f"{path}:{n}: not an unseal key (base64 or hex of {KEY_BYTES[0]} to "
                f"{KEY_BYTES[1]} bytes, one per line)"
            )
        keys.append(line.strip())
    if not keys:
        raise VaultStateError(f"unseal keys file {path} holds no unseal keys (one per line)")
    if len(keys) > MAX_SHARES:
        raise VaultStateError(
            f"unseal keys file {path} holds {len(keys)} keys, more than OpenBao's {MAX_SHARES}"
        )
    return keys


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
        raw = read_regular(self.path, RECORD_LIMIT, what="init record", error=VaultStateError)
        return InitRecord.from_bytes(raw, str(self.path))

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
        if not p.exists():
            return None
        return extra_from(
            read_regular(p, EXTRA_LIMIT, what="custody entry", error=VaultStateError), str(p)
        )

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
        return InitRecord.from_bytes(data[self.KEY], self.description)

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
        if not data or "data.json" not in data:
            return None
        return extra_from(data["data.json"], f"Secret {self.namespace}/{self.name}-{name}")

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
