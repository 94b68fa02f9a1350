"""The disaster-recovery corpus (issue 23, findings 7 and 8): hostile snapshots and key records,
shared by the data-driven unit tests (tests/unit/test_dr_corpus.py).

- ``tests/corpus/snapshots/NNN-<name>.yaml``: a snapshot described, not stored (a tar is
  binary). The file starts with ``# expect: <part of the message>``; its body says what the
  archive holds and is built here at test time, byte by byte (tar headers written by
  :func:`tar_header`, not by ``tarfile``, so that any header a hostile file may hold can be
  made): ``members`` (each the name of a standard member, with its usual data, or a mapping
  of ``name``, ``type``, ``size`` (the size the header declares), ``data``, ``gnu``,
  ``linkname``), ``meta`` (meta.json's fields) or ``meta_raw`` (its text; ``{size}`` is
  state.bin's size), ``sums_extra`` (lines added to SHA256SUMS), ``after`` (bytes after the
  archive's end), ``manifest`` (fields of the manifest written beside it, over the right ones).
- ``tests/corpus/keyrecords/NNN-<name>.case.yaml``: starts with ``# expect: ...``; ``as``
  says how a user gives it (``keys``: ``dr.restore --keys``; ``custody``: the target's custody
  file; ``secret``: the custody Secret's ``init.json``; ``unseal-keys-file``: the file
  BAO_UNSEAL_KEYS_FILE names; ``age-identity``: ``dr.restore --age-identity``), ``file`` the
  record beside it (the bytes themselves) or ``given`` a path (``/dev/zero``, or ``{folder}``
  for a folder).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from bootstrap.model.snapshot import Manifest, manifest_path

CORPUS = Path(__file__).resolve().parent / "corpus"
SNAPSHOTS = sorted((CORPUS / "snapshots").glob("*.yaml"))
KEYRECORDS = sorted((CORPUS / "keyrecords").glob("*.case.yaml"))

STATE = b"raft state, encrypted by the barrier " * 64
TYPES = {
    "regular": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "chardev": b"3",
    "blockdev": b"4",
    "dir": b"5",
    "fifo": b"6",
    "pax": b"x",
    "gnu-longname": b"L",
    "sparse": b"S",
}


def header(path: Path) -> str:
    """The expected part of the message, from the case's first line."""
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


def tar_header(
    name: bytes, size: int, kind: bytes = b"0", *, gnu: bool = False, linkname: bytes = b""
) -> bytes:
    """One 512-byte tar header, its checksum right: ustar (POSIX) or GNU magic; a size too
    large for 11 octal digits in base-256, as GNU tar writes it."""
    h = bytearray(512)
    h[0 : min(len(name), 100)] = name[:100]
    h[100:108] = b"0000600\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    if size >= 8**11:
        h[124:136] = bytes([0x80]) + size.to_bytes(11, "big")
    else:
        h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 0
    h[156:157] = kind
    h[157 : 157 + len(linkname)] = linkname[:100]
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _meta(case: dict[str, Any]) -> bytes:
    if "meta_raw" in case:
        return str(case["meta_raw"]).replace("{size}", str(len(STATE))).encode()
    meta = {"Index": 42, "Term": 3, "Size": len(STATE), **(case.get("meta") or {})}
    return json.dumps(meta).encode()


def build(case: dict[str, Any]) -> bytes:
    """The gzip'd tar a snapshot case describes."""
    meta = _meta(case)
    sums = (
        f"{hashlib.sha256(meta).hexdigest()}  meta.json\n"
        f"{hashlib.sha256(STATE).hexdigest()}  state.bin\n"
        + "".join(f"{line}\n" for line in case.get("sums_extra") or [])
    ).encode()
    standard = {"meta.json": meta, "state.bin": STATE, "SHA256SUMS": sums}
    standard["SHA256SUMS.sealed"] = b"sealed checksums"
    members = case.get("members") or list(standard)
    out = bytearray()
    for member in members:
        spec = {"name": member} if isinstance(member, str) else dict(member)
        name = str(spec["name"])
        data = spec["data"].encode() if "data" in spec else standard.get(name, b"")
        size = int(spec.get("size", len(data)))
        kind = TYPES[spec.get("type", "regular")]
        out += tar_header(
            name.encode("utf-8"),
            size,
            kind,
            gnu=bool(spec.get("gnu")),
            linkname=str(spec.get("linkname", "")).encode(),
        )
        out += data + bytes(-len(data) % 512)
    out += bytes(1024)
    out += str(case.get("after", "")).encode()
    return gzip.compress(bytes(out), mtime=0)


def write_snapshot(folder: Path, data: bytes, name: str = "vault.snap", **fields: Any) -> Path:
    """``data`` as ``folder/name`` with a manifest describing it (``fields`` over the right
    values: raft index 42, term 3)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    base: dict[str, Any] = {
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "server": "openbao",
        "version": "2.4.1",
        "cluster_id": "c-original",
        "cluster_name": "vault-cluster-original",
        "created": "2026-12-01T00:00:00Z",
        "catalog": "homelab",
        "raft_index": 42,
        "raft_term": 3,
    }
    text = json.dumps({**json.loads(Manifest(**base).to_json()), **fields})
    manifest_path(path).write_text(text, encoding="utf-8")
    return path


def snapshot_case(path: Path) -> dict[str, Any]:
    case = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    assert isinstance(case, dict), path
    return case


def good_keys(shares: int = 5) -> list[str]:
    """Keys shaped as OpenBao's (base64 of 33 bytes); random, opening nothing."""
    return [base64.b64encode(os.urandom(33)).decode() for _ in range(shares)]


def write_record(path: Path, shares: int = 5, threshold: int = 3) -> Path:
    """A sound init record (with a bootstrap-admin entry beside it), as custody holds one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "unseal_keys_b64": good_keys(shares),
        "root_token": "s.root-token-of-the-original",
        "shares": shares,
        "threshold": threshold,
        "pgp": False,
        "created": 1764547200.0,
        "vault_addr": "http://127.0.0.1:8200",
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    path.with_name(f"{path.stem}.admin.json").write_text(
        json.dumps({"token": "s.admin-token", "accessor": "a", "policies": ["bootstrap-admin"]}),
        encoding="utf-8",
    )
    return path
