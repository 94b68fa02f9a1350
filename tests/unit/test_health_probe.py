"""The workload health helper, in-process (as the exec probe it is, with ``-I``:
tests/integration/test_health_probe.py)."""

from __future__ import annotations

from pathlib import Path

from bootstrap import health_probe
from bootstrap.model import conventions as conv


def test_marker_is_the_librarys() -> None:
    assert conv.PLACEHOLDER_PREFIX.encode() == health_probe.PLACEHOLDER_PREFIX


def test_kubernetes_projection_internals_are_skipped(tmp_path: Path) -> None:
    m = tmp_path / "s"
    (m / "..data").mkdir(parents=True)
    (m / "k").write_bytes(b"v")
    report = health_probe.inspect([m])
    assert report.ready and report.real == [f"{m}/k"]
