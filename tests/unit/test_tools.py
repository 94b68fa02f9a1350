"""Where tools and the benchmark's peers are looked for (no build, no process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.core.errors import ToolError
from bootstrap.tooling import tools, versions


def test_peers_are_apart_from_the_tools() -> None:
    assert set(tools.PEERS) == {"terraform-provider-vault", "bank-vaults"}
    assert not set(tools.PEERS) & set(tools.TOOLS)
    for spec in tools.PEERS.values():
        assert spec.origin == "source" and spec.archive and len(spec.archive_sha256) == 64
    assert tools.PEERS["bank-vaults"].cgo and not tools.TOOLS["tofu"].cgo
    assert tools.PEERS["terraform-provider-vault"].replaces == versions.TF_PROVIDER_VAULT_REPLACES


def test_the_vault_provider_goes_into_the_mirror_opentofu_installs_from(tmp_path: Path) -> None:
    path = tools.cached_path(tools.spec_of("terraform-provider-vault"), tmp_path)
    assert path == (
        tools.mirror_dir(tmp_path)
        / "registry.opentofu.org/hashicorp/vault/5.11.0/linux_amd64"
        / "terraform-provider-vault_v5.11.0"
    )
    assert tools.find("terraform-provider-vault", tmp_path) is None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert tools.find("terraform-provider-vault", tmp_path) == path


def test_a_missing_peer_names_the_flag_that_builds_it(tmp_path: Path) -> None:
    assert tools.cached_path(tools.spec_of("bank-vaults"), tmp_path) == (
        tmp_path / "bank-vaults-1.33.1" / "bank-vaults"
    )
    with pytest.raises(ToolError, match=r"bank-vaults 1\.33\.1 not found .*tools\.install --peers"):
        tools.require("bank-vaults", tmp_path)
    with pytest.raises(ToolError, match="unknown tool 'nope'"):
        tools.spec_of("nope")
