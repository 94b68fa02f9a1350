"""What a phase plans: actions, each with a verb, a target and a reason. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Verb = Literal["create", "update", "delete", "check", "problem"]


@dataclass(frozen=True)
class Action:
    """One thing a phase would do, and why. ``problem`` actions block applying."""

    verb: Verb
    target: str
    reason: str
    #: What the executor needs (never secret values); not part of reports.
    payload: Any = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"verb": self.verb, "target": self.target, "reason": self.reason}

    @property
    def changes(self) -> bool:
        return self.verb in ("create", "update", "delete")
