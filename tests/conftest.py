from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "catalog.yaml"


@pytest.fixture
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")
