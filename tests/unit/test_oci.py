"""OCI image archives written here: layout, digests, reproducibility, bad paths."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from bootstrap.core.errors import ToolError
from bootstrap.tooling import oci

REF = "localhost/cluster-secrets-bootstrap/demo:1.0"


def _tree(tmp_path: Path) -> oci.Tree:
    src = tmp_path / "tool"
    src.write_bytes(b"#!/bin/sh\necho hi\n")
    src.chmod(0o750)
    return (
        oci.Tree()
        .file("usr/local/bin/tool", src)
        .data("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
        .symlink("bin/tool", "/usr/local/bin/tool")
        .dir("tmp", 0o1777)
    )


def _members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_an_archive_holds_the_oci_layout_and_dockers_manifest(tmp_path: Path) -> None:
    config = oci.ImageConfig(entrypoint=("/usr/local/bin/tool",), cmd=("--x",), user="65532")
    built = oci.write_archive(tmp_path / "img.tar", REF, [_tree(tmp_path)], config)
    got = oci.read_archive(built.path)  # checks every digest and size
    (desc,) = got["index"]["manifests"]
    assert desc["digest"] == built.manifest_digest
    assert desc["annotations"] == {oci.REF_NAME: "1.0", oci.CONTAINERD_NAME: REF}
    assert got["manifest"]["config"]["digest"] == built.config_digest
    assert got["config"]["config"]["Entrypoint"] == ["/usr/local/bin/tool"]
    assert got["config"]["config"]["User"] == "65532"
    assert got["config"]["rootfs"]["diff_ids"] == [d["digest"] for d in got["manifest"]["layers"]]
    assert got["docker"][0]["RepoTags"] == [REF]
    members = _members(got["layers"][0])
    assert members["usr/local/bin/tool"].mode == 0o750
    assert members["usr"].isdir() and members["usr/local"].isdir()  # parents added
    assert members["bin/tool"].issym() and members["bin/tool"].linkname == "/usr/local/bin/tool"
    assert members["tmp"].mode == 0o1777
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())


def test_the_same_inputs_give_the_same_digests(tmp_path: Path) -> None:
    config = oci.ImageConfig(cmd=("/bin/true",))
    a = oci.write_archive(tmp_path / "a.tar", REF, [_tree(tmp_path)], config)
    os.utime(tmp_path / "tool", (1, 1))  # a time stamp is not content
    b = oci.write_archive(tmp_path / "b.tar", REF, [_tree(tmp_path)], config)
    assert a.manifest_digest == b.manifest_digest
    assert a.config_digest == oci.image_id([_tree(tmp_path)], config)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    tree = _tree(tmp_path)
    (tmp_path / "tool").write_bytes(b"changed")  # read when the layer is made
    assert oci.image_id([tree], config) != a.config_digest


def test_copy_tree_keeps_links_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "lib" / "sub").mkdir(parents=True)
    (root / "lib" / "sub" / "x.so").write_bytes(b"elf")
    (root / "lib" / "link.so").symlink_to("sub/x.so")
    (root / "lib" / "dirlink").symlink_to("sub")
    layer = oci.layer_bytes(oci.Tree().copy_tree("usr", root))
    members = _members(layer)
    assert members["usr/lib/sub/x.so"].isfile()
    assert members["usr/lib/link.so"].linkname == "sub/x.so"
    assert members["usr/lib/dirlink"].issym()  # not followed
    assert "usr/lib/dirlink/x.so" not in members


@pytest.mark.parametrize("path", ["..", "a/../../etc", "/", ""])
def test_paths_outside_the_image_are_refused(path: str) -> None:
    with pytest.raises(ToolError, match="not a path inside the image"):
        oci.Tree().data(path, "x")


def test_a_file_under_a_file_is_refused(tmp_path: Path) -> None:
    tree = oci.Tree().data("etc", "x")
    with pytest.raises(ToolError, match="'etc' is a file"):
        tree.data("etc/passwd", "y")


def test_a_missing_or_special_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"cannot read .*nope"):
        oci.Tree().file("x", tmp_path / "nope")
    with pytest.raises(ToolError, match="not a regular file"):
        oci.Tree().file("x", tmp_path)


@pytest.mark.parametrize("ref", ["demo", "demo@sha256:00", "x/demo:", ":1"])
def test_a_reference_needs_a_tag(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ToolError, match="name:tag"):
        oci.write_archive(tmp_path / "x.tar", ref, [], oci.ImageConfig())
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_damaged_blob_is_found(tmp_path: Path) -> None:
    built = oci.write_archive(tmp_path / "img.tar", REF, [_tree(tmp_path)], oci.ImageConfig())
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(built.path) as src, tarfile.open(damaged, "w") as dst:
        for m in src.getmembers():
            fh = src.extractfile(m)
            data = fh.read() if fh is not None else b""
            if m.name.startswith("blobs/sha256/") and m.isfile() and b"echo hi" in data:
                data = data.replace(b"echo hi", b"echo HI")
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if m.isfile() else None)
    with pytest.raises(ToolError, match="does not match its descriptor"):
        oci.read_archive(damaged)


def test_an_entry_may_name_its_owner(tmp_path: Path) -> None:
    tree = oci.Tree().dir("var/lib/app", 0o700, owner=(1000, 1000)).data("etc/x", "y")
    members = _members(oci.layer_bytes(tree))
    assert (members["var/lib/app"].uid, members["var/lib/app"].gid) == (1000, 1000)
    assert members["var/lib/app"].mode == 0o700
    assert members["var/lib"].uid == 0 and members["etc/x"].uid == 0


def test_copy_tree_with_a_filter_keeps_only_what_it_accepts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "share" / "doc").mkdir(parents=True)
    (root / "usr" / "bin" / "python").write_bytes(b"elf")
    (root / "usr" / "bin" / "python").chmod(0o755)
    (root / "usr" / "share" / "doc" / "README").write_bytes(b"doc")
    (root / "usr" / "bin" / "py").symlink_to("python")
    (root / "usr" / "bin").chmod(0o711)
    tree = oci.Tree().copy_tree("/", root, keep=lambda rel: rel.startswith("usr/bin/"))
    members = _members(oci.layer_bytes(tree))
    assert sorted(members) == ["usr", "usr/bin", "usr/bin/py", "usr/bin/python"]
    assert members["usr/bin"].mode == 0o711  # a kept entry's parents keep their modes
    assert members["usr/bin/py"].linkname == "python"
