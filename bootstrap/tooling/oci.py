"""Container images built here, as OCI image archives, from files at hand: no registry, no
Docker, no base image pulled.

An image is a list of layers, each a :class:`Tree` of files (from disk or from bytes),
directories and symlinks, plus a :class:`ImageConfig`. :func:`write_archive` writes one tar
holding the OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``) and,
for tools that read Docker's ``docker save`` format, a ``manifest.json`` naming the same
blobs. ``ctr images import`` (containerd) and ``kind load image-archive`` both read it.

Archives are reproducible: entries sorted, owned by root (unless an entry names its owner),
every time stamp zero, layers uncompressed; the same inputs give the same digests, so an
image is rebuilt only when what goes into it changed (:func:`image_id`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bootstrap.core.errors import ToolError
from bootstrap.core.jsondoc import JsonObject

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: Annotations that name an image in an OCI index: the tag alone (the spec's), and the
#: whole reference (containerd's, which ``ctr images import`` uses as the image's name).
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True)
class _Entry:
    kind: str  # "file", "dir" or "symlink"
    mode: int
    data: bytes = b""
    source: str = ""  # a file on disk, read when the layer is written
    target: str = ""  # a symlink's target
    uid: int = 0
    gid: int = 0


def _clean(path: str) -> str:
    """An image path as a relative POSIX path without ``..``; refuses anything else."""
    p = PurePosixPath("/" + path.lstrip("/"))
    parts = [x for x in p.parts[1:] if x not in ("", ".")]
    if not parts or ".." in parts:
        raise ToolError(f"image path {path!r}: not a path inside the image")
    return "/".join(parts)


@dataclass
class Tree:
    """The files of one layer. Parent directories are added as needed (mode 0755)."""

    entries: dict[str, _Entry] = field(default_factory=dict)

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            existing = self.entries.get(parent)
            if existing is None:
                self.entries[parent] = _Entry("dir", 0o755)
            elif existing.kind != "dir":
                raise ToolError(f"image path {parent!r} is a {existing.kind}, not a directory")

    def _put(self, path: str, entry: _Entry) -> None:
        clean = _clean(path)
        self._parents(clean)
        self.entries[clean] = entry

    def dir(self, path: str, mode: int = 0o755, owner: tuple[int, int] = (0, 0)) -> Tree:
        """A directory; ``owner`` (uid, gid) for one a non-root user must write to."""
        self._put(path, _Entry("dir", mode, uid=owner[0], gid=owner[1]))
        return self

    def data(
        self, path: str, content: bytes | str, mode: int = 0o644, owner: tuple[int, int] = (0, 0)
    ) -> Tree:
        raw = content.encode("utf-8") if isinstance(content, str) else content
        self._put(path, _Entry("file", mode, data=raw, uid=owner[0], gid=owner[1]))
        return self

    def file(self, path: str, source: Path, mode: int | None = None) -> Tree:
        """A file from disk (followed if a symlink), its mode kept unless given."""
        try:
            st = source.stat()
        except OSError as exc:
            raise ToolError(f"image file {path!r}: cannot read {source}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ToolError(f"image file {path!r}: {source} is not a regular file")
        self._put(
            path,
            _Entry("file", stat.S_IMODE(st.st_mode) if mode is None else mode, source=str(source)),
        )
        return self

    def symlink(self, path: str, target: str) -> Tree:
        self._put(path, _Entry("symlink", 0o777, target=target))
        return self

    def copy_tree(self, path: str, source: Path, keep: Callable[[str], bool] | None = None) -> Tree:
        """Every file, directory and symlink below ``source`` at ``path`` (symlinks kept as
        links; anything else, such as a socket, refused). With ``keep``, only the files and
        symlinks whose path relative to ``source`` (POSIX, e.g. ``usr/bin/python3.11``) it
        accepts, with their parent directories (modes kept); other directories are left out."""
        base = "" if path.strip("/") in ("", ".") else _clean(path)
        if base:
            self.dir(base, stat.S_IMODE(source.stat().st_mode))
        for root, dirs, files in os.walk(source):
            rel = Path(root).relative_to(source)
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                relname = (rel / name).as_posix()
                inside = f"{base}/{relname}" if base else relname
                st = full.lstat()
                if stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                    if keep is None:
                        self.dir(inside, stat.S_IMODE(st.st_mode))
                    continue
                if keep is not None and not keep(relname):
                    continue
                self._keep_parent_modes(inside, source, relname)
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(inside, os.readlink(full))
                elif stat.S_ISREG(st.st_mode):
                    self.file(inside, full)
                else:
                    raise ToolError(f"image tree {source}: {full} is neither file, dir nor link")
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        return self

    def _keep_parent_modes(self, inside: str, source: Path, relname: str) -> None:
        """The parents of a kept entry, with their modes on disk (not yet in the tree)."""
        rel_parts = relname.split("/")[:-1]
        prefix = inside[: len(inside) - len(relname)].rstrip("/")
        for i in range(1, len(rel_parts) + 1):
            rel = "/".join(rel_parts[:i])
            at = f"{prefix}/{rel}" if prefix else rel
            if _clean(at) not in self.entries:
                self.dir(at, stat.S_IMODE((source / rel).stat().st_mode))


def layer_bytes(tree: Tree) -> bytes:
    """The layer as an uncompressed tar, reproducible (sorted, root-owned, time zero)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree.entries):
            e = tree.entries[path]
            info = tarfile.TarInfo(path)
            info.mode = e.mode
            info.mtime = 0
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.target
                tar.addfile(info)
            else:
                content = e.data if not e.source else Path(e.source).read_bytes()
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime reads from the image's config (the OCI ``config`` object)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/bin:/usr/bin:/bin",)
    user: str = ""
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> JsonObject:
        out: JsonObject = {"Env": list(self.env)}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            out["Cmd"] = list(self.cmd)
        if self.user:
            out["User"] = self.user
        if self.workdir:
            out["WorkingDir"] = self.workdir
        if self.labels:
            out["Labels"] = dict(self.labels)
        return out


def _config_blob(diff_ids: list[str], config: ImageConfig) -> bytes:
    return _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config.as_dict(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "cluster-secrets-bootstrap"} for _ in diff_ids],
        }
    )


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Built:
    """An archive written: where, the image's reference, its manifest's digest (what the
    runtime reports as the image's repo digest) and its config's digest (the image id)."""

    path: Path
    ref: str
    manifest_digest: str
    config_digest: str


def _split_ref(ref: str) -> tuple[str, str]:
    """(name, tag) of ``name:tag``; a reference with a digest or without a tag is refused:
    images built here are always named by tag."""
    last = ref.rsplit("/", 1)[-1]
    if "@" in ref or ":" not in last:
        raise ToolError(f"image reference {ref!r}: give it as name:tag")
    name, tag = ref.rsplit(":", 1)
    if not name or not tag:
        raise ToolError(f"image reference {ref!r}: give it as name:tag")
    return name, tag


def write_archive(out: Path, ref: str, layers: list[Tree], config: ImageConfig) -> Built:
    """Write the image as an OCI archive at ``out`` (atomically: a temporary file renamed).
    ``ref`` is a full reference such as ``localhost/cluster-secrets-bootstrap/openbao:2.7.2``
    (containerd names imported images by it)."""
    _, tag = _split_ref(ref)
    blobs: dict[str, bytes] = {}
    layer_descs = []
    diff_ids = []
    for tree in layers:
        data = layer_bytes(tree)
        d = _digest(data)
        blobs[d] = data
        diff_ids.append(d)  # uncompressed: the diff id is the blob's digest
        layer_descs.append({"mediaType": MEDIA_LAYER, "digest": d, "size": len(data)})
    config_blob = _config_blob(diff_ids, config)
    config_digest = _digest(config_blob)
    blobs[config_digest] = config_blob
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {
                "mediaType": MEDIA_CONFIG,
                "digest": config_digest,
                "size": len(config_blob),
            },
            "layers": layer_descs,
        }
    )
    manifest_digest = _digest(manifest)
    blobs[manifest_digest] = manifest
    index = _json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {REF_NAME: tag, CONTAINERD_NAME: ref},
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    )
    docker = _json(
        [
            {
                "Config": f"blobs/sha256/{config_digest.split(':')[1]}",
                "RepoTags": [ref],
                "Layers": [f"blobs/sha256/{d.split(':')[1]}" for d in diff_ids],
            }
        ]
    )
    files = [
        ("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
        ("manifest.json", docker),
    ] + [(f"blobs/sha256/{d.split(':')[1]}", b) for d, b in sorted(blobs.items())]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                tar.addfile(info)
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Built(out, ref, manifest_digest, config_digest)


def image_id(layers: list[Tree], config: ImageConfig) -> str:
    """The config digest :func:`write_archive` would give, without writing anything: equal
    ids, equal images (a cache key)."""
    diff_ids = [_digest(layer_bytes(t)) for t in layers]
    config_blob = _config_blob(diff_ids, config)
    return _digest(config_blob)


def read_archive(path: Path) -> JsonObject:
    """What an archive holds, checked: its index, manifest and config, and that every blob's
    digest and size match their descriptors (what an importer would verify)."""
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}

        def blob(desc: JsonObject) -> bytes:
            name = "blobs/sha256/" + str(desc["digest"]).split(":", 1)[1]
            member = members.get(name)
            if member is None:
                raise ToolError(f"{path}: blob {desc['digest']} missing")
            fh = tar.extractfile(member)
            data = fh.read() if fh is not None else b""
            if _digest(data) != desc["digest"] or len(data) != desc["size"]:
                raise ToolError(f"{path}: blob {desc['digest']} does not match its descriptor")
            return data

        def member_json(name: str) -> Any:
            fh = tar.extractfile(members[name]) if name in members else None
            if fh is None:
                raise ToolError(f"{path}: no {name}")
            return json.loads(fh.read())

        index = member_json("index.json")
        (desc,) = index["manifests"]
        manifest = json.loads(blob(desc))
        config = json.loads(blob(manifest["config"]))
        layers = [blob(d) for d in manifest["layers"]]
        return {
            "index": index,
            "manifest": manifest,
            "config": config,
            "layers": layers,
            "docker": member_json("manifest.json"),
        }
