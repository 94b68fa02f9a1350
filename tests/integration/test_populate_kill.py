"""Killing the bootstrap during populate, then re-running, loses no real value and
regenerates no generated value (the CLI, as a user runs it, killed with SIGKILL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bootstrap.clients.kv import read_kv
from tests.conftest import ROOT
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api

CATALOG = """
name: {p}
services:
  - name: {p}
    namespace: {p}
    secrets:
      config:
        keys:
          generated: {{generate: {{length: 24}}}}
{extra}"""
SLOW = "          slow: {command: [sh, -c, 'sleep 3; echo late-value']}\n"


def _bootstrap(env: dict[str, str], catalog: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "invoke",
            "bootstrap",
            "--only",
            "populate",
            "--catalog",
            str(catalog),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_kill_during_populate_then_rerun(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"pk{unique}"
    env = {**first_run["env"], "INVOKE_BOOTSTRAP_STATE_DIR": str(tmp_path)}
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG.format(p=p, extra=""))
    assert _bootstrap(env, catalog).wait(timeout=120) == 0
    api = admin_api(box)
    first, version = read_kv(api, f"{p}/config")
    assert version == 1 and len(first["generated"]) == 24

    catalog.write_text(CATALOG.format(p=p, extra=SLOW))
    proc = _bootstrap(env, catalog)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until populate is resolving sources
        if any(
            "sleep 3" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore").replace("\0", " ")
            for pid in _children(proc.pid)
        ):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert read_kv(api, f"{p}/config") == (first, 1)  # nothing lost, nothing half-written

    rerun = _bootstrap(env, catalog)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    data, version = read_kv(api, f"{p}/config")
    assert version == 2
    assert data["generated"] == first["generated"]  # not regenerated
    assert data["slow"] == "late-value"


def _children(pid: int) -> list[int]:
    out = []
    for task in Path("/proc").glob("[0-9]*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(task.name))
            out += _children(int(task.name))
    return out
