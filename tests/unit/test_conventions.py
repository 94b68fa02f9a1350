from __future__ import annotations

import json

from bootstrap.model import conventions as conv
from tests.conftest import ROOT


def test_marker_file_matches_library() -> None:
    marker = json.loads((ROOT / "placeholders" / "marker.json").read_text())
    assert marker["prefix"] == conv.PLACEHOLDER_PREFIX
    value = conv.placeholder_value("webapp", "config", "log-level")
    assert value == "bootstrap-placeholder:webapp/config/log-level"
    assert conv.is_placeholder(value) and conv.is_placeholder(value.encode())
    assert not conv.is_placeholder("real-value") and not conv.is_placeholder(b"x")


def test_the_repository_paths_point_at_real_folders() -> None:
    from bootstrap.clients.terraform import MODULE_DIR
    from bootstrap.core import paths
    from bootstrap.tooling.tools import VENDOR_DIR

    assert (MODULE_DIR / "main.tf").is_file()
    assert (paths.REPO / "bootstrap" / "__init__.py").is_file()
    assert paths.REPO.parent / "shared" / "vendor" == VENDOR_DIR
