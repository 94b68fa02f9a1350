"""Issue 25, item 3: `tools.install` builds what the task at hand needs (README command 1: no
node tools, no images, one operator), and says for each build its place, its expected time and
the time so far, then the total."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap import sandbox
from bootstrap.sandbox import node
from bootstrap.tooling import tools, versions


def test_command_one_needs_the_core_and_the_sandbox_s_operator_only() -> None:
    names = tools.scope()
    assert set(names) == {*tools.CORE, "vault-secrets-operator"}
    for never in ("kubelet", "kube-proxy", "coredns", "pause", "containerd", "iptables"):
        assert never not in names
    assert tools.operator_tool(versions.VSO_V0) not in names


def test_the_operator_follows_the_setting() -> None:
    names = tools.scope(operator=versions.VSO_V0)
    assert tools.operator_tool(versions.VSO_V0) in names
    assert "vault-secrets-operator" not in names


def test_node_adds_the_node_s_tools_and_everything_is_every_tool() -> None:
    assert set(tools.scope(node=True)) == {*tools.CORE, "vault-secrets-operator", *tools.NODE}
    assert tools.scope(everything=True) == list(tools.TOOLS)


def test_the_eso_engine_brings_eso_and_reloader_instead_of_vso() -> None:
    names = tools.scope(engine="eso")
    assert set(names) == {*tools.CORE, tools.ESO, tools.RELOADER}
    assert not [n for n in names if n.startswith("vault-secrets-operator")]


def test_every_tool_belongs_to_a_scope_and_the_sandbox_s_components_to_theirs() -> None:
    operators = {tools.operator_tool(v) for v in versions.VSO_VERSIONS}
    engines = {tools.ESO, tools.RELOADER}
    assert set(tools.TOOLS) == {*tools.CORE, *tools.NODE, *operators, *engines}
    assert set(sandbox.COMPONENTS) <= set(tools.CORE)
    assert set(node.COMPONENTS) <= set(tools.NODE)


def test_each_build_says_its_place_expected_time_and_time_so_far_then_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def fake_go(spec: tools.ToolSpec, tools_dir: Path) -> Path:
        built.append(spec.name)
        return tools_dir / spec.name

    monkeypatch.setattr(tools, "_build_go", fake_go)
    monkeypatch.setattr(tools, "find", lambda name, tools_dir: None)
    monkeypatch.setattr(tools, "origin", lambda name, path, tools_dir: "test")
    said: list[tuple[str, str]] = []
    results = tools.install(
        ["etcd", "kube-apiserver"], tmp_path, progress=lambda n, m: said.append((n, m))
    )
    assert built == ["etcd", "kube-apiserver"]
    assert [r.status for r in results] == ["built", "built"]
    starts = [m for n, m in said if m.startswith("building")]
    etcd, apiserver = (tools.EXPECTED_SECONDS[n] for n in ("etcd", "kube-apiserver"))
    assert "1 of 2 to build" in starts[0], starts
    assert f"about {etcd:.0f} s on 2 cores" in starts[0], starts  # under a minute: seconds
    minutes, seconds = divmod(round(apiserver), 60)
    assert "2 of 2 to build" in starts[1], starts
    assert f"about {minutes} min {seconds:02d} s on 2 cores" in starts[1], starts
    minutes, seconds = divmod(round(etcd + apiserver), 60)
    assert all(f"so far of about {minutes} min {seconds:02d} s" in m for m in starts), starts
    assert said[-1][0] == "tools" and said[-1][1].startswith("built 2 tool(s) in "), said
