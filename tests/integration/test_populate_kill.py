"""Killing the bootstrap during populate, then re-running, loses no real value and
regenerates no generated value (the CLI, as a user runs it, killed with SIGKILL with all it
started). The run proves it was caught mid-populate: a command source, run by populate while it
resolves values, writes a marker naming its parent and then waits; the kill comes once the
marker is there, so no write can have happened yet."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.kv import read_kv
from tests.integration.conftest import Box
from tests.integration.helpers import (
    admin_api,
    bootstrap_cli,
    kill_group,
    service_catalog_text,
    start_bootstrap,
    wait_until,
)

GENERATED = {"generated": "{generate: {length: 24}}"}
#: a key whose command (a program in the catalog's folder) says it runs (its parent's pid in
#: ``marker``), then waits for ``release``
HELD = "{command: [./held]}"
HELD_PROGRAM = (
    "#!/bin/sh\necho $PPID > {marker}\n"
    "while [ ! -e {release} ]; do sleep 0.05; done\necho late-value\n"
)


@pytest.fixture
def folder() -> Iterator[Path]:
    """The catalog's folder: one user nobody (who runs commands when the tests are root) can
    reach, with a subfolder it may write the marker into."""
    path = Path(tempfile.mkdtemp(prefix="csb-populate-kill-", dir="/tmp"))
    path.chmod(0o755)
    (path / "out").mkdir(mode=0o777)
    (path / "out").chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_kill_during_populate_then_rerun(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path, folder: Path
) -> None:
    p = f"pk{unique}"
    env = {**first_run["env"], "INVOKE_BOOTSTRAP_STATE_DIR": str(tmp_path)}
    catalog = folder / "catalog.yaml"
    args = ("--only", "populate", "--catalog", str(catalog))
    catalog.write_text(service_catalog_text(p, {"config": GENERATED}))
    done = bootstrap_cli(env, *args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    api = admin_api(box)
    first, version = read_kv(api, f"{p}/config")
    assert version == 1 and len(first["generated"]) == 24

    marker, release = folder / "out" / "resolving", folder / "out" / "release"
    held = folder / "held"
    held.write_text(HELD_PROGRAM.format(marker=marker, release=release), encoding="utf-8")
    held.chmod(0o755)
    catalog.write_text(service_catalog_text(p, {"config": {**GENERATED, "held": HELD}}))
    proc = start_bootstrap(env, *args)
    try:
        wait_until(
            lambda: (marker.exists() and marker.read_text().strip()) or proc.poll() is not None,
            "populate to run the held command",
        )
        assert proc.poll() is None, proc.communicate()
        kill_group(proc)
        proc.communicate(timeout=30)
    finally:
        release.touch()  # the held command (a session of its own) ends too
    assert proc.returncode == -signal.SIGKILL
    # the run killed was the one resolving the held key: mid-populate, before any write
    assert marker.read_text().strip() == str(proc.pid)
    assert read_kv(api, f"{p}/config") == (first, 1)  # nothing lost, nothing half-written

    rerun = bootstrap_cli(env, *args, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    data, version = read_kv(api, f"{p}/config")
    assert version == 2
    assert data["generated"] == first["generated"]  # not regenerated
    assert data["held"] == "late-value"
