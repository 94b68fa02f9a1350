"""What the in-cluster manifests need from outside the model: the operator's own CRDs and RBAC
rules, read from its source (the ``config`` kept beside its build, else the pinned source
archive itself, sha256 checked), and the image references."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import yaml

from bootstrap.core.errors import ToolError
from bootstrap.model.catalog import Catalog
from bootstrap.model.cluster import ClusterOptions, OperatorSource, render_cluster
from bootstrap.tooling import images, tools, versions

_CRDS = "config/crd/bases/"
_ROLE = "config/rbac/role.yaml"
_LEADER = "config/rbac/leader_election_role.yaml"


def _docs(text: str, where: str) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ToolError(f"{where}: not YAML ({exc})") from None


def _from_files(files: dict[str, str], where: str) -> OperatorSource:
    crds = [
        doc
        for name in sorted(files)
        if name.startswith(_CRDS) and name.endswith(".yaml")
        for doc in _docs(files[name], f"{where}: {name}")
    ]
    if len(crds) != 5 or any(c.get("kind") != "CustomResourceDefinition" for c in crds):
        raise ToolError(f"expected the operator's five CRDs in {where}, found {len(crds)}")
    rules = {}
    for name in (_ROLE, _LEADER):
        if name not in files:
            raise ToolError(f"{where} has no {name}")
        (doc,) = _docs(files[name], f"{where}: {name}")
        rules[name] = tuple(doc["rules"])
    return OperatorSource(tuple(crds), rules[_ROLE], rules[_LEADER])


def operator_source(tools_dir: Path, archive: Path | None = None) -> OperatorSource:
    """The operator's CRDs and RBAC: from the build's ``config`` folder when there is one,
    else from its source archive (the setting, or the vendor folder's)."""
    config = tools.operator_config(tools_dir)
    if (config / "crd" / "bases").is_dir() and (config / "rbac").is_dir():
        files = {
            f"config/{p.relative_to(config).as_posix()}": p.read_text(encoding="utf-8")
            for p in sorted(config.rglob("*.yaml"))
        }
        return _from_files(files, str(config))
    path = tools.source_archive("vault-secrets-operator", archive)
    if path is None or not path.is_file():
        raise ToolError(
            "the operator's CRDs and RBAC: no build in the tools cache and no source archive "
            f"{versions.VSO_ARCHIVE} (run 'invoke tools.install')"
        )
    digest = tools.sha256_of(path)
    if digest != versions.VSO_ARCHIVE_SHA256:
        raise ToolError(f"{path} has sha256 {digest}, expected {versions.VSO_ARCHIVE_SHA256}")
    files = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if member.isfile() and (inner.startswith(_CRDS) or inner in (_ROLE, _LEADER)):
                fh = tar.extractfile(member)
                if fh is not None:
                    files[inner] = fh.read().decode("utf-8")
    return _from_files(files, str(path))


def cluster_manifests(
    catalog: Catalog,
    tools_dir: Path,
    options: ClusterOptions | None = None,
    archive: Path | None = None,
) -> list[dict[str, Any]]:
    """Every object ``cluster.create`` applies for ``catalog``."""
    return render_cluster(
        catalog, images.references(), operator_source(tools_dir, archive), options
    )
