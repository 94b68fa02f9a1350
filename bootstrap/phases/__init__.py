"""The bootstrap phases, in order. Each implements :class:`bootstrap.pipeline.Phase`."""

from __future__ import annotations

from bootstrap.phases.preflight import Preflight
from bootstrap.pipeline import Phase


def registered() -> list[Phase]:
    """Phases available in this version, in bootstrap order."""
    return [Preflight()]
