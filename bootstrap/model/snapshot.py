"""Raft snapshots as files, for disaster recovery: what a snapshot must hold to be worth
restoring, and the sidecar manifest ``dr.snapshot`` writes beside it.

A Vault/OpenBao raft snapshot (``GET /v1/sys/storage/raft/snapshot``) is a gzip'd tar of
``meta.json`` (raft index, term, size), ``state.bin`` (the data, encrypted by the barrier),
``SHA256SUMS`` (their checksums) and ``SHA256SUMS.sealed`` (those checksums sealed with the
cluster's keys: what makes a restore onto another cluster need ``snapshot-force``).
:func:`inspect_file` reads one as a stream (never unpacking it to disk) and checks every listed
checksum, so a truncated or altered file is refused before anything is changed.

The manifest (``<file>.manifest.json``) names the server, its version and cluster id, when the
snapshot was taken, the catalog, and the file's sha256 (of the bytes written, encrypted or
not). It never holds a key or a token; the unseal keys stay in custody, never in the snapshot
file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tarfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bootstrap.core.errors import SnapshotError

FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
#: Members every raft snapshot has; others (SHA256SUMS.sealed) are checked when listed.
REQUIRED = ("meta.json", "state.bin", "SHA256SUMS")
#: Small members are read whole; a larger one of these names is not a snapshot.
SMALL_LIMIT = 1 << 20
CHUNK = 1 << 20
#: Servers a manifest names, from the fields of /v1/sys/seal-status.
SERVERS = ("openbao", "vault")


def manifest_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class RestoreRequest:
    """What ``dr.restore`` was asked to restore, and with what."""

    snapshot: Path
    #: the original cluster's init record (a copy of its custody file); None: the target's
    #: custody must already hold it
    keys_from: Path | None = None
    #: replace a target Vault that holds other data (and set aside another custody record)
    force: bool = False
    #: age identity files, for an encrypted snapshot
    age_identities: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Contents:
    """What a sound snapshot holds, read from its own meta.json."""

    index: int
    term: int
    state_bytes: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    file: str
    sha256: str
    bytes: int
    server: str
    version: str
    cluster_id: str
    cluster_name: str
    created: str
    catalog: str
    raft_index: int
    raft_term: int
    #: None, or "age" when the file is encrypted to age recipients
    encryption: str | None = None
    recipients: int = 0
    format: int = FORMAT
    tool: str = "cluster-secrets-bootstrap"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_text(cls, text: str, where: str) -> Manifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SnapshotError(f"manifest {where} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SnapshotError(f"manifest {where} is not a JSON object")
        if data.get("format") != FORMAT:
            raise SnapshotError(
                f"manifest {where} has format {data.get('format')!r}; this version reads "
                f"format {FORMAT}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SnapshotError(f"manifest {where} has unknown fields: {', '.join(unknown)}")
        try:
            m = cls(**data)
        except TypeError as exc:
            raise SnapshotError(f"manifest {where} lacks a field: {exc}") from None
        if not re.fullmatch(r"[0-9a-f]{64}", str(m.sha256)):
            raise SnapshotError(f"manifest {where}: sha256 is not 64 hex digits")
        if m.server not in SERVERS:
            raise SnapshotError(f"manifest {where}: server {m.server!r} is not one of {SERVERS}")
        if m.encryption not in (None, "age"):
            raise SnapshotError(f"manifest {where}: unknown encryption {m.encryption!r}")
        return m


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_checksum(path: Path, manifest: Manifest) -> None:
    """The file's bytes are those the manifest describes, else SnapshotError."""
    size = path.stat().st_size
    if size != manifest.bytes:
        raise SnapshotError(
            f"{path} has {size} bytes, its manifest says {manifest.bytes}: the file is not "
            "the one the manifest describes (truncated or replaced); refusing to restore it"
        )
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise SnapshotError(
            f"{path}: sha256 {actual} does not match its manifest ({manifest.sha256}); the "
            "file was altered or is another snapshot; refusing to restore it"
        )


def _sums(text: bytes, where: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for n, line in enumerate(text.decode("ascii", "replace").splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *]?(\S+)", line.strip())
        if not m:
            raise SnapshotError(f"{where}: SHA256SUMS line {n} is malformed")
        sums[m.group(2)] = m.group(1)
    return sums


def inspect_file(path: Path) -> Contents:
    """Read a snapshot file as a stream and prove it sound (see :func:`inspect`)."""
    with path.open("rb") as fh:
        return inspect(fh, str(path))


def inspect(stream: IO[bytes], where: str) -> Contents:
    """Read a snapshot as a stream and prove it sound: a gzip'd tar of regular files with
    meta.json, state.bin and SHA256SUMS, every file SHA256SUMS lists present with that
    checksum, and meta.json's size equal to state.bin's. SnapshotError otherwise."""
    digests: dict[str, str] = {}
    small: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    try:
        # gzip's own reader, not tarfile's: it raises on a stream cut short (tarfile's ends)
        with (
            gzip.GzipFile(fileobj=stream, mode="rb") as gz,
            tarfile.open(fileobj=gz, mode="r|") as tar,
        ):
            for member in tar:
                if not member.isfile():
                    raise SnapshotError(f"{where}: member {member.name!r} is not a regular file")
                if member.name in digests:
                    raise SnapshotError(f"{where}: member {member.name!r} appears twice")
                fh = tar.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always have one
                    raise SnapshotError(f"{where}: member {member.name!r} cannot be read")
                digest = hashlib.sha256()
                size = 0
                keep = member.name != "state.bin"
                buf = bytearray()
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if keep:
                        if size > SMALL_LIMIT:
                            raise SnapshotError(f"{where}: {member.name} is implausibly large")
                        buf += chunk
                if size != member.size:
                    raise SnapshotError(
                        f"{where} is not a readable raft snapshot (a gzip'd tar): "
                        f"{member.name} is cut short ({size} of {member.size} bytes); refusing "
                        "to restore it"
                    )
                digests[member.name] = digest.hexdigest()
                sizes[member.name] = size
                if keep:
                    small[member.name] = bytes(buf)
            # read to the end of the gzip stream: a file cut short ends before its marker
            while gz.read(CHUNK):
                pass
    except SnapshotError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise SnapshotError(
            f"{where} is not a readable raft snapshot (a gzip'd tar): {type(exc).__name__}: "
            f"{exc}; refusing to restore it"
        ) from None
    missing = [m for m in REQUIRED if m not in digests]
    if missing:
        raise SnapshotError(
            f"{where} is not a raft snapshot: it lacks {', '.join(missing)}; refusing to restore it"
        )
    sums = _sums(small["SHA256SUMS"], where)
    for name in ("meta.json", "state.bin"):
        if name not in sums:
            raise SnapshotError(f"{where}: SHA256SUMS does not list {name}")
    for name, want in sums.items():
        if name not in digests:
            raise SnapshotError(f"{where}: SHA256SUMS lists {name}, which the file lacks")
        if digests[name] != want:
            raise SnapshotError(
                f"{where}: {name} does not match its checksum in SHA256SUMS (the snapshot is "
                "corrupt); refusing to restore it"
            )
    try:
        meta = json.loads(small["meta.json"])
        index, term, size = int(meta["Index"]), int(meta["Term"]), int(meta["Size"])
    except (ValueError, KeyError, TypeError):
        raise SnapshotError(f"{where}: meta.json is not a raft snapshot's metadata") from None
    if size != sizes["state.bin"]:
        raise SnapshotError(
            f"{where}: state.bin has {sizes['state.bin']} bytes, meta.json says {size}"
        )
    return Contents(index, term, size, tuple(digests))


def version_tuple(version: str) -> tuple[int, ...]:
    """``v2.7.2+ent`` -> (2, 7, 2); unparsable parts end the tuple."""
    out: list[int] = []
    for part in re.split(r"[.+-]", version.strip().lstrip("v")):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def server_of(seal_status: dict[str, Any]) -> str:
    """OpenBao's /v1/sys/seal-status says ``commit_date``; HashiCorp Vault's ``build_date``."""
    return "openbao" if "commit_date" in seal_status else "vault"


def compatibility(manifest: Manifest, server: str, version: str) -> str | None:
    """Why a snapshot of ``manifest`` cannot be restored onto ``server`` ``version``, or None.
    A newer server reads older snapshots; an older one may not read newer ones, and a snapshot
    of one server kind is not the other's (openbao/openbao#1154)."""
    names = {"openbao": "OpenBao", "vault": "HashiCorp Vault"}
    if manifest.server != server:
        return (
            f"the snapshot is of {names.get(manifest.server, manifest.server)} "
            f"{manifest.version}, the target runs {names.get(server, server)} {version}: a "
            "snapshot is restored onto the same server kind"
        )
    have, want = version_tuple(version), version_tuple(manifest.version)
    if have and want and have < want:
        return (
            f"the snapshot is of {names.get(server, server)} {manifest.version}, newer than the "
            f"target's {version}: upgrade the target to {manifest.version} or later first"
        )
    return None
