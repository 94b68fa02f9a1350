"""Issue 26, item 5, through the CLI as a user meets it: a boolean that is not one, an unknown
key in a configuration file and a choice outside its values each end with exit 2 and a
message naming the key and where it came from, before anything is read or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository: its tasks.py and invoke.yaml


def _invoke(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_BOOTSTRAP_")}
    full.update(env, INVOKE_BOOTSTRAP_STATE_DIR=str(tmp_path / "state"))
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args, "status"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"INVOKE_BOOTSTRAP_VERIFY_NUDGE": "ture"},
            "setting verify_nudge in environment variable INVOKE_BOOTSTRAP_VERIFY_NUDGE: "
            "'ture' is not a boolean",
        ),
        (
            {"INVOKE_BOOTSTRAP_CUSTODY": "s3"},
            "setting custody in environment variable INVOKE_BOOTSTRAP_CUSTODY is 's3'; "
            "expected file or kubernetes",
        ),
    ],
    ids=["verify-nudge-ture", "custody-s3"],
)
def test_a_bad_value_from_the_environment(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    proc = _invoke(tmp_path, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expected in proc.stderr
    assert not (tmp_path / "state").exists()


def test_an_unknown_key_in_a_configuration_file(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text("bootstrap:\n  custdy: kubernetes\n")
    proc = _invoke(tmp_path, "-f", str(extra))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"unknown setting 'custdy' in file {extra}; did you mean custody?" in proc.stderr
    assert not (tmp_path / "state").exists()
