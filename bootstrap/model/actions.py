"""What a phase plans: actions, each with a verb, a target and a reason. Pure data.

A plain :class:`Action` is a finding (``check``: fine or worth saying; ``problem``: blocks
applying). A change is a frozen dataclass of its own kind, one per thing an executor can do
(a policy to put, an object to apply, a node to unseal), carrying exactly the fields the
executor needs, by name; each phase's ``apply`` dispatches on the kind with ``match``.
Actions never hold secret values: what must stay secret is resolved or read in ``apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verb = Literal["create", "update", "delete", "check", "problem"]
CHANGES: frozenset[str] = frozenset({"create", "update", "delete"})


@dataclass(frozen=True)
class Action:
    """One thing a phase would do, and why."""

    verb: Verb
    target: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"verb": self.verb, "target": self.target, "reason": self.reason}

    @property
    def changes(self) -> bool:
        return self.verb in CHANGES

    @property
    def kind(self) -> str:
        """The action's kind, as reports and tests name it (e.g. ``PutPolicy``)."""
        return type(self).__name__


def check(target: str, reason: str) -> Action:
    return Action("check", target, reason)


def problem(target: str, reason: str) -> Action:
    return Action("problem", target, reason)
