"""The workload health helper as the exec probe it is: run as a plain script with ``-I``
(isolated), which proves it needs only the standard library; tolerant liveness, truthful
readiness, and never a value in its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bootstrap import health_probe

PROBE = Path(health_probe.__file__)


def mount(tmp_path: Path, name: str, data: dict[str, bytes]) -> Path:
    d = tmp_path / name
    d.mkdir()
    for k, v in data.items():
        (d / k).write_bytes(v)
    return d


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(PROBE), *args], capture_output=True, text=True, check=False
    )


def test_placeholders_live_but_not_ready(tmp_path: Path) -> None:
    m = mount(tmp_path, "s", {"user": b"bootstrap-placeholder:app/db/user", "host": b"db"})
    assert probe("liveness", str(m)).returncode == 0
    ready = probe("readiness", str(m))
    assert ready.returncode == 1 and f"{m}/user" in ready.stderr and "db" not in ready.stderr


def test_real_values_ready(tmp_path: Path) -> None:
    m = mount(tmp_path, "s", {"user": b"app", "password": b"s3cret-value"})
    assert probe("liveness", str(m)).returncode == 0
    ready = probe("readiness", str(m))
    assert ready.returncode == 0 and "s3cret-value" not in ready.stderr + ready.stdout


def test_malformed_mounts_fail_liveness(tmp_path: Path) -> None:
    empty_key = mount(tmp_path, "a", {"k": b""})
    assert probe("liveness", str(empty_key)).returncode == 1
    assert probe("liveness", str(tmp_path / "missing")).returncode == 1
    assert probe("liveness", str(mount(tmp_path, "b", {}))).returncode == 1
    assert probe("bogus", str(tmp_path)).returncode == 2
