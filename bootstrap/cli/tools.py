"""The tool tasks: tools.install, tools.list, images.build."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.cli.common import e, say, table
from bootstrap.model.settings import Settings

if TYPE_CHECKING:
    from bootstrap.tooling.images import ImageResult


def install(s: Settings, names: list[str], node: bool, everything: bool, peers: bool) -> None:
    from bootstrap.tooling import tools, versions

    wanted = names or tools.scope(
        operator=s.sandbox_operator_version,
        node=node,
        everything=everything,
        engine=s.sync_engine,
    )
    results = tools.install(
        wanted,
        s.tools_dir,
        progress=lambda n, m: say(n)(m),
        sources={
            tools.operator_tool(versions.VSO): s.vso_source,
            tools.operator_tool(versions.VSO_V0): s.vso_v0_source,
            "terraform-provider-kubernetes": s.kubernetes_provider_source,
            tools.ESO: s.eso_source,
        },
        peers=peers,
    )
    table(
        f"tools ({e(s.tools_dir)})",
        ("tool", "version", "status", "seconds", "path", "origin"),
        (
            (e(r.name), e(r.version), e(r.status), f"{r.seconds:.1f}", e(r.path or ""), e(r.detail))
            for r in results
        ),
    )
    if not names and (node or everything):  # the node's images too (seconds when unchanged)
        from bootstrap.tooling import images

        # those a cluster of the operator in scope runs (its tools were just built), or all
        cluster = images.for_cluster(s.sandbox_operator_version, s.sync_engine)
        _build_images(s, None if everything else [i.key for i in cluster])


def _build_images(s: Settings, names: list[str] | None = None) -> list[ImageResult]:
    from bootstrap.tooling import images

    return images.build(names, s.tools_dir, progress=lambda n, m: say(f"image {n}")(m))


def images_build(s: Settings, names: list[str]) -> None:
    from bootstrap.tooling import images

    results = _build_images(s, names or None)
    table(
        f"images ({e(images.images_dir(s.tools_dir))})",
        ("image", "status", "MB", "seconds", "archive", "licences"),
        (
            (
                e(r.ref),
                e(r.status),
                f"{r.size / 1e6:.1f}",
                f"{r.seconds:.1f}",
                e(r.path),
                e(", ".join(sorted(set(images.LICENCES[r.key].values())))),
            )
            for r in results
        ),
    )


def list_tools(s: Settings) -> None:
    from bootstrap.tooling import tools

    rows = []
    for spec in [*tools.TOOLS.values(), *tools.PEERS.values()]:
        path = tools.find(spec.name, s.tools_dir)
        peer = spec.name in tools.PEERS
        if path:
            where = e(path)
        elif spec.origin == "debian":
            where = f"missing: run '{tools.DEBIAN_INSTALL}'"
        else:
            where = f"missing: run 'invoke tools.install{' --peers' if peer else ''}'"
        rows.append(
            (
                e(spec.name) + (" (benchmark peer)" if peer else ""),
                e(spec.version or (tools.debian_version(spec) if spec.origin == "debian" else "")),
                e(spec.licence),
                where,
                e(tools.origin(spec.name, path, s.tools_dir) if path else spec.source),
            )
        )
    table("tools", ("tool", "version", "licence", "found at", "origin"), rows)
