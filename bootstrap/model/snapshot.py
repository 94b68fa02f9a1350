"""Raft snapshots as files, for disaster recovery: what a snapshot must hold to be worth
restoring, and the sidecar manifest ``dr.snapshot`` writes beside it.

A Vault/OpenBao raft snapshot (``GET /v1/sys/storage/raft/snapshot``) is a gzip'd tar of
``meta.json`` (raft index, term, size), ``state.bin`` (the data, encrypted by the barrier),
``SHA256SUMS`` (the checksums of those two) and ``SHA256SUMS.sealed`` (those checksums sealed
with the cluster's keys: what makes a restore onto another cluster need ``snapshot-force``).
Those four, regular files written in that order, are all OpenBao writes
(``physical/raft/snapshot/archive.go``), and its reader refuses any other member and reads at
most 8 KiB of the three small ones.

:func:`inspect` reads one from memory as a stream (never unpacking it to disk) and accepts
only that: each member's header is read by this module (not by ``tarfile``), its name must be
one of the four exactly (``./state.bin``, ``../x``, ``/abs`` are not), its type a regular file
(no link, device, folder, pax or GNU extension, sparse file), no name twice, each member's
declared size bounded (the small ones to 8191 bytes, ``state.bin`` to :data:`STATE_LIMIT`)
and the total bounded by the file's own size (:data:`RATIO`): a member claiming 64 GiB is
refused from its header, unread. Every listed checksum is then checked, so a truncated or
altered file is refused before anything is changed. Names read from a file are shown
escaped (:func:`~bootstrap.core.files.shown`) in every message.

The manifest (``<file>.manifest.json``) names the file, the server, its version and cluster
id, when the snapshot was taken, the catalog, the raft index and term, and the file's sha256
(of the bytes written, encrypted or not). It never holds a key or a token; the unseal keys
stay in custody, never in the snapshot file. :class:`Verified` is a snapshot checked against
its manifest: the bytes checked are the bytes restored (the file is read once).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bootstrap.core.errors import SnapshotError
from bootstrap.core.files import read_regular, shown

FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
#: The members of a raft snapshot, in the order OpenBao writes them; the last is optional.
MEMBERS = ("meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed")
REQUIRED = MEMBERS[:3]
#: The files SHA256SUMS lists: exactly these (OpenBao's reader refuses others).
SUMMED = ("meta.json", "state.bin")
#: OpenBao reads at most 8192 bytes of meta.json and the checksum files, refusing a longer one.
SMALL_LIMIT = 8191
#: The largest state.bin this accepts (4 GiB: the run holds the snapshot in memory).
STATE_LIMIT = 4 << 30
#: Declared sizes may add up to at most RATIO times the compressed file (or RATIO_FLOOR):
#: state.bin is barrier-encrypted, so gzip barely shrinks it; more is a decompression bomb.
RATIO = 100
RATIO_FLOOR = 1 << 20
#: Zero padding accepted after the archive's end (tar pads to 10 KiB records).
TRAILER_LIMIT = 64 << 10
#: The largest snapshot file read (its manifest and an age envelope add a little).
FILE_LIMIT = STATE_LIMIT + (64 << 20)
MANIFEST_LIMIT = 64 << 10
CHUNK = 1 << 20
BLOCK = 512
U64 = (1 << 64) - 1
#: Servers a manifest names, from the fields of /v1/sys/seal-status.
SERVERS = ("openbao", "vault")
#: tar entry types, for the message refusing one (only regular files are accepted).
TYPES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "folder",
    b"6": "FIFO",
    b"7": "contiguous file",
    b"x": "pax extended header",
    b"g": "pax global header",
    b"L": "GNU long name header",
    b"K": "GNU long link name header",
    b"S": "GNU sparse file",
    b"D": "GNU dump folder",
    b"M": "GNU multi-volume part",
    b"V": "GNU volume label",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def manifest_path(snapshot: Path) -> Path:
    return snapshot.with_name(snapshot.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class Contents:
    """What a sound snapshot holds, read from its own meta.json."""

    index: int
    term: int
    state_bytes: int
    members: tuple[str, ...]


#: Manifest fields and the types they must have (checked: a manifest is read from disk).
_STR_FIELDS = (
    "file",
    "sha256",
    "server",
    "version",
    "cluster_id",
    "cluster_name",
    "created",
    "catalog",
    "tool",
)
_INT_FIELDS = ("bytes", "raft_index", "raft_term", "recipients", "format")


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
            data = json.loads(text, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise SnapshotError(f"manifest {where} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SnapshotError(f"manifest {where} is not a JSON object")
        if data.get("format") != FORMAT:
            fmt = data.get("format")
            raise SnapshotError(
                f"manifest {where} has format "
                f"{fmt if type(fmt) is int else shown(str(fmt)[:32])}; this version reads "
                f"format {FORMAT}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SnapshotError(
                f"manifest {where} has unknown fields: {', '.join(shown(u[:64]) for u in unknown)}"
            )
        for name in _STR_FIELDS:
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > 256:
                raise SnapshotError(f"manifest {where}: {name} is not a string (of 256 at most)")
            if _CONTROL.search(value):
                raise SnapshotError(
                    f"manifest {where}: {name} holds control characters ({shown(value[:64])}); "
                    "refusing it"
                )
        for name in _INT_FIELDS:
            value = data.get(name, 0)
            if type(value) is not int or not 0 <= value <= U64:
                raise SnapshotError(
                    f"manifest {where}: {name} ({shown(str(value)[:32])}) is not a whole number "
                    "from 0"
                )
        if not isinstance(data.get("extra", {}), dict):
            raise SnapshotError(f"manifest {where}: extra is not a JSON object")
        try:
            m = cls(**data)
        except TypeError as exc:
            raise SnapshotError(f"manifest {where} lacks a field: {exc}") from None
        if not re.fullmatch(r"[0-9a-f]{64}", m.sha256):
            raise SnapshotError(f"manifest {where}: sha256 is not 64 hex digits")
        if m.server not in SERVERS:
            raise SnapshotError(
                f"manifest {where}: server {shown(m.server)} is not one of {SERVERS}"
            )
        if m.encryption not in (None, "age"):
            raise SnapshotError(
                f"manifest {where}: unknown encryption {shown(str(m.encryption)[:32])}"
            )
        if "/" in m.file or m.file in ("", ".", ".."):
            raise SnapshotError(f"manifest {where}: file {shown(m.file)} is not a file name")
        return m


def _no_constant(name: str) -> Any:
    """json's NaN, Infinity and -Infinity are not JSON numbers: refused."""
    raise ValueError(f"{name} is not a JSON number")


@dataclass(frozen=True)
class Verified:
    """A snapshot checked against its manifest: ``payload`` is the raft snapshot (decrypted
    when it was encrypted) exactly as checked, the only bytes a restore sends."""

    manifest: Manifest
    contents: Contents
    payload: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True)
class RestoreRequest:
    """What ``dr.restore`` was asked to restore, and with what."""

    snapshot: Path
    #: the original cluster's init record (a copy of its custody file); None: the target's
    #: custody must already hold it
    keys_from: Path | None = None
    #: replace a target Vault that holds other data (and set aside another custody record);
    #: never skips a check of the snapshot, its server kind or version, or the keys
    force: bool = False
    #: age identity files, for an encrypted snapshot
    age_identities: tuple[Path, ...] = ()
    #: the snapshot as checked before the run touched anything (read once: see Verified)
    verified: Verified | None = field(default=None, compare=False, repr=False)


def check_bytes(data: bytes, manifest: Manifest, where: str) -> None:
    """The file's bytes are those the manifest describes, else SnapshotError."""
    if len(data) != manifest.bytes:
        raise SnapshotError(
            f"{where} has {len(data)} bytes, its manifest says {manifest.bytes}: the file is not "
            "the one the manifest describes (truncated or replaced); refusing to restore it"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.sha256:
        raise SnapshotError(
            f"{where}: sha256 {actual} does not match its manifest ({manifest.sha256}); the "
            "file was altered or is another snapshot; refusing to restore it"
        )


def check_contents(manifest: Manifest, contents: Contents, name: str, where: str) -> None:
    """The manifest describes this snapshot: its file name and its raft index and term."""
    if manifest.file != name:
        raise SnapshotError(
            f"{where}: its manifest describes the file {shown(manifest.file)}, not "
            f"{shown(name)}: it is another snapshot's manifest (give the file its own name "
            "back, with its own manifest); refusing to restore it"
        )
    if (manifest.raft_index, manifest.raft_term) != (contents.index, contents.term):
        raise SnapshotError(
            f"{where}: the snapshot is at raft index {contents.index} (term {contents.term}), "
            f"its manifest says {manifest.raft_index} (term {manifest.raft_term}): they do not "
            "belong together; refusing to restore it"
        )


def _sums(text: bytes, where: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for n, line in enumerate(text.split(b"\n"), 1):
        if not line.strip():
            continue
        m = re.fullmatch(rb"([0-9a-f]{64}) [ *]?(\S+)", line.strip())
        if not m:
            raise SnapshotError(f"{where}: SHA256SUMS line {n} is malformed")
        name = m.group(2).decode("latin-1")
        if name not in SUMMED:
            raise SnapshotError(
                f"{where}: SHA256SUMS line {n} lists {shown(m.group(2))}; a raft snapshot's "
                f"lists only {' and '.join(SUMMED)}; refusing to restore it"
            )
        if name in sums:
            raise SnapshotError(f"{where}: SHA256SUMS lists {name} twice")
        sums[name] = m.group(1).decode()
    return sums


def inspect_file(path: Path) -> Contents:
    """Read a snapshot file (a regular file, bounded) and prove it sound (see
    :func:`inspect`)."""
    return inspect(read_regular(path, FILE_LIMIT, what="snapshot", error=SnapshotError), str(path))


def inspect(data: bytes, where: str) -> Contents:
    """Prove ``data`` a sound raft snapshot (see the module's description): a gzip'd tar of
    exactly the raft snapshot's members, every file SHA256SUMS lists present with that
    checksum, and meta.json's size equal to state.bin's. SnapshotError otherwise."""
    budget = max(RATIO * len(data), RATIO_FLOOR)
    try:
        # gzip's own reader: it raises on a stream cut short, and reads as much as asked
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as gz:
            digests, small, sizes = _members(gz, where, budget, len(data))
    except SnapshotError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
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
    for name in SUMMED:
        if name not in sums:
            raise SnapshotError(f"{where}: SHA256SUMS does not list {name}")
    for name in SUMMED:
        if digests[name] != sums[name]:
            raise SnapshotError(
                f"{where}: {name} does not match its checksum in SHA256SUMS (the snapshot is "
                "corrupt); refusing to restore it"
            )
    index, term, size = _meta(small["meta.json"], where)
    if size != sizes["state.bin"]:
        raise SnapshotError(
            f"{where}: state.bin has {sizes['state.bin']} bytes, meta.json says {size}"
        )
    return Contents(index, term, size, tuple(digests))


def _meta(raw: bytes, where: str) -> tuple[int, int, int]:
    """Index, Term and Size of meta.json: whole numbers in range, or SnapshotError."""
    bad = f"{where}: meta.json is not a raft snapshot's metadata"
    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SnapshotError(f"{bad}: it is not JSON; refusing to restore it") from None
    if not isinstance(meta, dict):
        raise SnapshotError(f"{bad}: it is not a JSON object; refusing to restore it")
    out = []
    for key, top in (("Index", U64), ("Term", U64), ("Size", STATE_LIMIT)):
        if key not in meta:
            raise SnapshotError(f"{bad}: it lacks {key}; refusing to restore it")
        value = meta[key]
        if type(value) is not int or not 0 <= value <= top:
            raise SnapshotError(
                f"{bad}: its {key} ({shown(str(value)[:40])}) is not a whole number from 0 to "
                f"{top}; refusing to restore it"
            )
        out.append(value)
    return out[0], out[1], out[2]


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def _read(stream: _Reader, size: int, where: str, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise SnapshotError(
            f"{where} is not a readable raft snapshot (a gzip'd tar): {what} is cut short; "
            "refusing to restore it"
        )
    return data


def _number(field_: bytes) -> int | None:
    """A tar header's numeric field: octal digits, or base-256 (GNU) when the first byte's
    high bit is set; None when it is neither, or negative."""
    if field_[0] & 0x80:
        if field_[0] == 0xFF:
            return None
        return int.from_bytes(bytes([field_[0] & 0x7F]) + field_[1:], "big")
    text = field_.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    if not re.fullmatch(rb"[0-7]+", text):
        return None
    return int(text, 8)


def _checksum_ok(block: bytes) -> bool:
    want = _number(block[148:156])
    rest = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for b in rest if b >= 0x80)
    return want is not None and want in (unsigned, signed)


def _members(
    gz: _Reader, where: str, budget: int, compressed: int
) -> tuple[dict[str, str], dict[str, bytes], dict[str, int]]:
    """Each member's header checked before its data is read (see the module's description);
    the digests of all, the small members' bytes, and every member's size."""
    digests: dict[str, str] = {}
    small: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    declared = 0
    for n in range(1, len(MEMBERS) + 2):
        block = _read(gz, BLOCK, where, "a member's header")
        if block == bytes(BLOCK):
            _end(gz, where)
            return digests, small, sizes
        raw = block[:100].split(b"\0", 1)[0]
        magic = block[257:265]
        if magic == b"ustar\x0000":  # POSIX: a name may continue in the prefix field
            prefix = block[345:500].split(b"\0", 1)[0]
            raw = prefix + b"/" + raw if prefix else raw
        label = shown(raw)
        if not _checksum_ok(block):
            raise SnapshotError(
                f"{where} is not a readable raft snapshot (a gzip'd tar): the header of member "
                f"#{n} is damaged (its checksum does not match); refusing to restore it"
            )
        if magic not in (b"ustar\x0000", b"ustar  \x00"):
            raise SnapshotError(
                f"{where} is not a readable raft snapshot (a gzip'd tar): member #{n} "
                f"({label}) has no ustar header; refusing to restore it"
            )
        name = raw.decode("latin-1")
        if name not in MEMBERS:
            raise SnapshotError(
                f"{where}: member {label} is not one of a raft snapshot's members "
                f"({', '.join(MEMBERS)}); refusing to restore it"
            )
        kind = block[156:157]
        if kind not in (b"0", b"\0"):
            what = TYPES.get(kind, f"entry of type {shown(kind)}")
            raise SnapshotError(
                f"{where}: member {label} is a {what}, not a regular file; refusing to restore it"
            )
        if name in digests:
            raise SnapshotError(f"{where}: member {label} appears twice; refusing to restore it")
        size = _number(block[124:136])
        if size is None:
            raise SnapshotError(
                f"{where}: the size in member {label}'s header is not a number; refusing to "
                "restore it"
            )
        limit = STATE_LIMIT if name == "state.bin" else SMALL_LIMIT
        if size > limit:
            raise SnapshotError(
                f"{where}: member {label} declares {size} bytes, more than a raft snapshot's "
                f"{name} may hold ({limit}); refused from its header, unread"
            )
        declared += size
        if declared > budget:
            raise SnapshotError(
                f"{where}: its members declare {declared} bytes, more than {RATIO} times the "
                f"file's {compressed} (a raft snapshot's data is encrypted and barely "
                "compresses): a decompression bomb, not a snapshot; refused from its headers, "
                "unread"
            )
        digest = hashlib.sha256()
        buf = bytearray()
        left = size
        while left:
            chunk = _read(gz, min(left, CHUNK), where, f"member {label}")
            digest.update(chunk)
            if name != "state.bin":
                buf += chunk
            left -= len(chunk)
        _read(gz, -size % BLOCK, where, f"member {label}")  # padding to a whole block
        digests[name] = digest.hexdigest()
        sizes[name] = size
        if name != "state.bin":
            small[name] = bytes(buf)
    raise SnapshotError(  # pragma: no cover - a fifth member repeats or is unknown
        f"{where}: more members than a raft snapshot has; refusing to restore it"
    )


def _end(gz: _Reader, where: str) -> None:
    """After the first zero block: only zero padding, then the gzip stream's proper end (a
    file cut short raises on the way)."""
    rest = gz.read(TRAILER_LIMIT + 1)
    if len(rest) > TRAILER_LIMIT or rest.strip(b"\0"):
        raise SnapshotError(
            f"{where}: data follows the end of the archive: not a raft snapshot; refusing to "
            "restore it"
        )


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
