"""What the in-cluster manifests need from outside the model: the operator's own CRDs and RBAC
rules, read from the source of the version asked for (the ``config`` kept beside its build,
else its pinned source archive itself, sha256 checked), and the image references."""

from __future__ import annotations

from pathlib import Path

import yaml

from bootstrap.core.errors import ToolError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model.catalog import Catalog
from bootstrap.model.cluster import ClusterOptions, OperatorSource, render_cluster
from bootstrap.tooling import images, tools, versions

_CRDS = "config/crd/bases/"
_ROLE = "config/rbac/role.yaml"
_LEADER = "config/rbac/leader_election_role.yaml"


def _docs(text: str, where: str) -> list[JsonObject]:
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        raise ToolError(f"{where}: not YAML ({exc})") from None


def _from_files(files: dict[str, str], where: str, version: str = versions.VSO) -> OperatorSource:
    crds = [
        doc
        for name in sorted(files)
        if name.startswith(_CRDS) and name.endswith(".yaml")
        for doc in _docs(files[name], f"{where}: {name}")
    ]
    want = versions.VSO_CRD_COUNT[version]
    if len(crds) != want or any(c.get("kind") != "CustomResourceDefinition" for c in crds):
        raise ToolError(f"expected the {want} CRDs of VSO v{version} in {where}, found {len(crds)}")
    rules = {}
    for name in (_ROLE, _LEADER):
        if name not in files:
            raise ToolError(f"{where} has no {name}")
        (doc,) = _docs(files[name], f"{where}: {name}")
        rules[name] = tuple(doc["rules"])
    return OperatorSource(tuple(crds), rules[_ROLE], rules[_LEADER])


def operator_source(
    tools_dir: Path, version: str = versions.VSO, archive: Path | None = None
) -> OperatorSource:
    """An operator version's CRDs and RBAC: from its build's ``config`` folder when there is
    one, else from its source archive (the setting, or the vendor folder's)."""
    config = tools.operator_config(tools_dir, version)
    if (config / "crd" / "bases").is_dir() and (config / "rbac").is_dir():
        files = {
            f"config/{p.relative_to(config).as_posix()}": p.read_text(encoding="utf-8")
            for p in sorted(config.rglob("*.yaml"))
        }
        return _from_files(files, str(config), version)
    tool = tools.operator_tool(version)
    files = tools.archive_files(
        tool, archive, lambda inner: inner.startswith(_CRDS) or inner in (_ROLE, _LEADER)
    )
    return _from_files(files, str(tools.source_archive(tool, archive)), version)


def cluster_manifests(
    catalog: Catalog,
    tools_dir: Path,
    options: ClusterOptions | None = None,
    archive: Path | None = None,
    version: str = versions.VSO,
) -> list[JsonObject]:
    """Every object ``cluster.create`` applies for ``catalog``, with the operator of
    ``version`` (its image, CRDs and RBAC; ``archive``: its source archive setting)."""
    return render_cluster(
        catalog,
        images.references(version),
        operator_source(tools_dir, version, archive),
        options,
    )
