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
