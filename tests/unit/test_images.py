"""The images' recipes (what goes where, which user) and the operator's declarations as read
from its source files; building and running them is tests/integration/test_images.py."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import yaml

from bootstrap.core.errors import ToolError
from bootstrap.tooling import images, manifests, oci


def _members(tree: oci.Tree) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(oci.layer_bytes(tree))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_openbao_image_runs_bao_server_as_its_own_user(tmp_path: Path) -> None:
    bao = tmp_path / "bao"
    bao.write_bytes(b"\x7fELF")
    (layer,), config = images.openbao_image(bao)
    members = _members(layer)
    assert members["usr/local/bin/bao"].mode == 0o755
    data = members["openbao/data"]
    assert (data.uid, data.gid) == images.OPENBAO_USER and data.mode == 0o700
    assert members["tmp"].mode == 0o1777
    assert config.entrypoint == ("/usr/local/bin/bao", "server")
    assert config.user == "100:1000" and config.workdir == "/openbao/data"
    passwd = layer.entries["etc/passwd"].data.decode()
    assert "openbao:x:100:1000:" in passwd
    assert dict(config.labels)["org.opencontainers.image.licenses"] == "MPL-2.0"


@pytest.mark.parametrize(("version", "licence"), [("1.4.1", "BUSL-1.1"), ("0.1.0", "MPL-2.0")])
def test_operator_image_runs_the_manager_as_nonroot_and_says_its_licence(
    tmp_path: Path, version: str, licence: str
) -> None:
    manager = tmp_path / "manager"
    manager.write_bytes(b"\x7fELF")
    text = f"the licence of v{version}\n"
    (layer,), config = images.operator_image(manager, version, text)
    members = _members(layer)
    assert "vault-secrets-operator" in members
    assert layer.entries["licenses/copyright.txt"].data.decode() == text
    assert config.entrypoint == ("/vault-secrets-operator",) and config.user == "65532:65532"
    labels = dict(config.labels)
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == licence
    description = labels["org.opencontainers.image.description"]
    assert f"v{version} ({licence})" in description and "not part of the product" in description
    assert images.LICENCES[f"vault-secrets-operator:{version}"]
    assert set(images.LICENCES[f"vault-secrets-operator:{version}"].values()) == {licence}


def test_one_operator_image_per_version_the_cluster_uses_one() -> None:
    keys = [i.key for i in images.IMAGES]
    assert "vault-secrets-operator:1.4.1" in keys and "vault-secrets-operator:0.1.0" in keys
    assert set(images.LICENCES) == set(keys)
    assert [i.key for i in images.select(["vault-secrets-operator"])] == [
        "vault-secrets-operator:1.4.1",
        "vault-secrets-operator:0.1.0",
    ]
    assert [i.key for i in images.select(["vault-secrets-operator:0.1.0", "demo"])] == [
        "vault-secrets-operator:0.1.0",
        "demo:0.1.0",
    ]
    with pytest.raises(ToolError, match="unknown image 'vault-secrets-operator:9'"):
        images.select(["vault-secrets-operator:9"])
    for version in ("1.4.1", "0.1.0"):
        used = [i.key for i in images.for_cluster(version)]
        assert [k for k in used if k.startswith("vault-secrets-operator")] == [
            f"vault-secrets-operator:{version}"
        ]
        assert {k.split(":")[0] for k in used} == set(images.NAMES) - set(images.ENGINE_IMAGES)
    # the sync engine eso: ESO and Reloader instead of any VSO
    used = [i.key for i in images.for_cluster("1.4.1", "eso")]
    assert [k.split(":")[0] for k in used] == [
        "openbao",
        "external-secrets",
        "reloader",
        "demo",
        "bootstrap",
    ]
    refs = images.references("1.4.1", "eso")
    assert (refs.operator, refs.eso.split("/")[-1], refs.reloader.split("/")[-1]) == (
        "",
        "external-secrets:2.9.0",
        "reloader:1.4.22",
    )
    with pytest.raises(ToolError, match=r"no operator image for VSO '2\.0\.0'"):
        images.for_cluster("2.0.0")


@pytest.mark.parametrize(
    ("pkg", "path", "kept"),
    [
        ("libc6", "lib/x86_64-linux-gnu/libc.so.6", True),
        ("libc6", "lib/x86_64-linux-gnu/libnss_dns.so.2", False),
        ("libc6", "usr/share/doc/libc6/copyright", True),
        ("libc6", "usr/share/doc/libc6/changelog.Debian.gz", False),
        ("zlib1g", "lib/x86_64-linux-gnu/libz.so.1.2.13", True),
        ("libpython3.11-minimal", "usr/lib/python3.11/os.py", True),
        ("libpython3.11-minimal", "usr/lib/python3.11/lib-dynload/_ssl.cpython-311.so", False),
        ("libpython3.11-minimal", "usr/lib/python3.11/__pycache__/os.cpython-311.pyc", False),
        ("libpython3.11-stdlib", "usr/lib/python3.11/dataclasses.py", True),
        ("libpython3.11-stdlib", "usr/lib/python3.11/json/__init__.py", False),
    ],
)
def test_what_the_demo_keeps_of_each_package(pkg: str, path: str, kept: bool) -> None:
    assert images._kept(pkg)(path) is kept


_DYN = "usr/lib/python3.11/lib-dynload/"


@pytest.mark.parametrize(
    ("pkg", "path", "kept"),
    [
        ("libc6", "lib/x86_64-linux-gnu/libc.so.6", True),
        ("libc6", "lib/x86_64-linux-gnu/libpthread.so.0", True),
        ("libc6", "lib/x86_64-linux-gnu/libnss_dns.so.2", False),
        ("libpython3.11-minimal", _DYN + "_ssl.cpython-311-x86_64-linux-gnu.so", True),
        ("libpython3.11-stdlib", "usr/lib/python3.11/json/__init__.py", True),
        ("libpython3.11-stdlib", _DYN + "_ctypes.cpython-311-x86_64-linux-gnu.so", True),
        ("libpython3.11-stdlib", _DYN + "_sqlite3.cpython-311-x86_64-linux-gnu.so", False),
        ("libpython3.11-stdlib", _DYN + "_testcapi.cpython-311-x86_64-linux-gnu.so", False),
        ("libpython3.11-stdlib", "usr/lib/python3.11/test/test_os.py", False),
        ("libpython3.11-stdlib", "usr/lib/python3.11/tkinter/__init__.py", False),
        ("libssl3", "usr/lib/x86_64-linux-gnu/libssl.so.3", True),
        ("libssl3", "usr/lib/x86_64-linux-gnu/engines-3/afalg.so", False),
        ("libffi8", "usr/lib/x86_64-linux-gnu/libffi.so.8.1.2", True),
        ("libbz2-1.0", "lib/x86_64-linux-gnu/libbz2.so.1.0.4", True),
        ("libgcc-s1", "lib/x86_64-linux-gnu/libgcc_s.so.1", True),
        ("libstdc++6", "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", True),
    ],
)
def test_what_the_product_image_keeps_of_each_package(pkg: str, path: str, kept: bool) -> None:
    assert images._kept(pkg, images.PRODUCT_DEBS)(path) is kept


def test_the_product_image_is_built_with_the_others() -> None:
    assert "bootstrap" in images.NAMES
    assert images.references().bootstrap == "localhost/cluster-secrets-bootstrap/bootstrap:0.1.0"


def test_references_follow_the_scheme() -> None:
    refs = images.references()
    assert refs.openbao.startswith("localhost/cluster-secrets-bootstrap/openbao:")
    assert refs.operator == "localhost/cluster-secrets-bootstrap/vault-secrets-operator:1.4.1"
    assert refs.demo == f"localhost/cluster-secrets-bootstrap/demo:{images.DEMO}"
    old = images.references("0.1.0")
    assert old.operator == "localhost/cluster-secrets-bootstrap/vault-secrets-operator:0.1.0"
    assert old.demo == refs.demo and old.openbao == refs.openbao


def _crd(name: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": name},
        }
    )


def _role(kind: str, resource: str) -> str:
    rule = {"apiGroups": [""], "resources": [resource], "verbs": ["get"]}
    return yaml.safe_dump({"kind": kind, "metadata": {"name": "x"}, "rules": [rule]})


RBAC = {
    "config/rbac/role.yaml": _role("ClusterRole", "secrets"),
    "config/rbac/leader_election_role.yaml": _role("Role", "leases"),
}


@pytest.mark.parametrize(("version", "count"), [("1.4.1", 10), ("0.1.0", 5)])
def test_the_operators_declarations_from_its_files(version: str, count: int) -> None:
    files = {f"config/crd/bases/c{i:02}.yaml": _crd(f"c{i:02}") for i in range(count)} | RBAC
    source = manifests._from_files(files, "tree", version)
    assert [c["metadata"]["name"] for c in source.crds] == [f"c{i:02}" for i in range(count)]
    assert source.cluster_rules[0]["resources"] == ["secrets"]
    assert source.leader_election_rules[0]["resources"] == ["leases"]


def test_missing_declarations_are_named() -> None:
    five = {f"config/crd/bases/c{i}.yaml": _crd(f"c{i}") for i in range(5)}
    with pytest.raises(ToolError, match=r"the 10 CRDs of VSO v1\.4\.1 in tree, found 5"):
        manifests._from_files(five | RBAC, "tree", "1.4.1")
    with pytest.raises(ToolError, match=r"the 5 CRDs of VSO v0\.1\.0"):
        manifests._from_files({"config/crd/bases/c.yaml": _crd("c")} | RBAC, "tree", "0.1.0")
    with pytest.raises(ToolError, match=r"role\.yaml"):
        manifests._from_files(five, "tree", "0.1.0")
