"""What the in-cluster manifests need from outside the model: the operator's own CRDs and RBAC
rules, read from the source of the version asked for (the ``config`` kept beside its build,
else its pinned source archive itself, sha256 checked), and the image references. With the
sync engine ``eso``: the External Secrets Operator's CRDs and its controller's RBAC as its
Helm chart renders them, and Stakater Reloader's ClusterRole, from the files kept beside
their builds (the sandbox installs the same)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bootstrap.core.errors import ToolError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model.catalog import Catalog
from bootstrap.model.cluster import ClusterOptions, EngineSource, OperatorSource, render_cluster
from bootstrap.tooling import chart, images, tools, versions

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


#: ESO's release name in its Helm chart's rendering, and its controller's ClusterRole there.
ESO_RELEASE = "external-secrets"
ESO_CONTROLLER_ROLE = f"{ESO_RELEASE}-controller"
#: Stakater Reloader's ClusterRole and ServiceAccount, as its manifests name them.
RELOADER_ROLE = "reloader-reloader-role"
RELOADER_SERVICE_ACCOUNT = "reloader-reloader"
_RBAC = "rbac.authorization.k8s.io/v1"


def eso_crds(tools_dir: Path) -> list[JsonObject]:
    """ESO's CustomResourceDefinitions, from the bundle of its own source tree."""
    path = tools.engine_config(tools_dir) / "crds.yaml"
    docs = _docs(path.read_text(encoding="utf-8"), str(path))
    if len(docs) != versions.ESO_CRD_COUNT or any(
        d.get("kind") != "CustomResourceDefinition" for d in docs
    ):
        raise ToolError(
            f"expected the {versions.ESO_CRD_COUNT} CRDs of ESO v{versions.ESO} in {path}, "
            f"found {len(docs)}"
        )
    return docs


def eso_rbac(tools_dir: Path, namespace: str) -> list[JsonObject]:
    """ESO's controller ClusterRole and its binding to the ServiceAccount ``external-secrets``
    of ``namespace``, as the chart's ``rbac.yaml`` renders them with its default values."""
    config = tools.engine_config(tools_dir)
    try:
        objects = chart.render(
            (config / "rbac.yaml").read_text(encoding="utf-8"),
            yaml.safe_load((config / "values.yaml").read_text(encoding="utf-8")),
            chart="external-secrets",
            release=ESO_RELEASE,
            namespace=namespace,
            where=str(config / "rbac.yaml"),
        )
    except OSError as exc:
        raise ToolError(f"ESO's RBAC: {exc}") from None
    wanted = [
        o
        for o in objects
        if o.get("kind") in ("ClusterRole", "ClusterRoleBinding")
        and (o.get("metadata") or {}).get("name") == ESO_CONTROLLER_ROLE
    ]
    if len(wanted) != 2:
        raise ToolError(
            f"ESO's chart ({config / 'rbac.yaml'}) renders no ClusterRole and binding "
            f"{ESO_CONTROLLER_ROLE}"
        )
    return wanted


def reloader_rbac(tools_dir: Path, namespace: str) -> list[JsonObject]:
    """Reloader's ClusterRole (the rules of its module's ``clusterrole.yaml``) and the binding
    to its ServiceAccount in ``namespace``."""
    path = tools.engine_config(tools_dir, tools.RELOADER) / "clusterrole.yaml"
    roles = [
        d
        for d in _docs(path.read_text(encoding="utf-8"), str(path))
        if d.get("kind") == "ClusterRole"
    ]
    if len(roles) != 1:
        raise ToolError(f"expected one ClusterRole in {path}, found {len(roles)}")
    role = {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": {"name": RELOADER_ROLE}}
    role["rules"] = roles[0]["rules"]
    binding = {
        "apiVersion": _RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": RELOADER_ROLE + "-binding"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": RELOADER_ROLE,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": RELOADER_SERVICE_ACCOUNT, "namespace": namespace}
        ],
    }
    return [role, binding]


def engine_source(tools_dir: Path, eso_namespace: str, reloader_namespace: str) -> EngineSource:
    """ESO's CRDs and RBAC and Reloader's RBAC, for the cluster's manifests."""
    return EngineSource(
        tuple(eso_crds(tools_dir)),
        tuple(eso_rbac(tools_dir, eso_namespace)),
        tuple(reloader_rbac(tools_dir, reloader_namespace)),
    )


def cluster_manifests(
    catalog: Catalog,
    tools_dir: Path,
    options: ClusterOptions | None = None,
    archive: Path | None = None,
    version: str = versions.VSO,
    engine: str = "vso",
) -> list[JsonObject]:
    """Every object ``cluster.create`` applies for ``catalog``, with the operator of
    ``version`` (its image, CRDs and RBAC; ``archive``: its source archive setting), or with
    ESO and Reloader (``engine`` ``eso``)."""
    if engine == "eso":
        opts = options or ClusterOptions()
        return render_cluster(
            catalog,
            images.references(version, engine),
            None,
            opts,
            engine_source(tools_dir, opts.eso_namespace, opts.reloader_namespace),
        )
    return render_cluster(
        catalog,
        images.references(version),
        operator_source(tools_dir, version, archive),
        options,
    )
