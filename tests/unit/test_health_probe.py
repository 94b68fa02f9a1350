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


def test_an_empty_mount_is_malformed_unless_missing_is_ok(tmp_path: Path) -> None:
    m = tmp_path / "s"
    (m / "..data").mkdir(parents=True)  # what an optional volume without its Secret holds
    assert not health_probe.inspect([m]).live
    waiting = health_probe.inspect([m], missing_ok=True)
    assert waiting.live and not waiting.ready and waiting.missing == [str(m)]
    (m / "k").write_bytes(b"")  # an emptied key stays malformed
    assert not health_probe.inspect([m], missing_ok=True).live


def test_missing_ok_on_the_command_line(tmp_path: Path) -> None:
    m = tmp_path / "s"
    m.mkdir()
    assert health_probe.main(["liveness", str(m)]) == 1
    assert health_probe.main(["liveness", "--missing-ok", str(m)]) == 0
    assert health_probe.main(["readiness", "--missing-ok", str(m)]) == 1
    assert health_probe.main(["readiness", "--missing-ok"]) == 2
