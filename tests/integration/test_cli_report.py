"""The run's JSON report is written however the run ends, a crash included, as a user runs
it (`invoke bootstrap`); a crash says which phase and which exception type, never its text."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.helpers import invoke_cli


def test_a_crash_leaves_a_report_with_phase_and_type_only(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = invoke_cli(
        ["bootstrap", "--only", "preflight", "--report", str(report)],
        {
            "BOOTSTRAP_FAILPOINTS": "phase:preflight:start=raise:leaked-value-7f3a",
            "INVOKE_BOOTSTRAP_STATE_DIR": str(tmp_path / "state"),
            "INVOKE_BOOTSTRAP_CATALOG_COMMANDS": "allow",  # the example catalog's command
        },
        ok=False,
    )
    assert proc.returncode == 70, proc.stdout + proc.stderr
    assert "unexpected FailpointCrash" in proc.stderr
    assert "leaked-value-7f3a" not in proc.stdout + proc.stderr
    text = report.read_text(encoding="utf-8")
    assert "leaked-value-7f3a" not in text
    rep = json.loads(text)
    assert rep["ok"] is False
    assert rep["error"] == {"phase": "preflight", "type": "FailpointCrash", "message": None}
    preflight = next(p for p in rep["phases"] if p["name"] == "preflight")
    assert preflight["status"] == "failed" and preflight["crash"] == "FailpointCrash"
