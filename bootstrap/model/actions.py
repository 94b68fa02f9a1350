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


#: Checks with the same reason are printed as one line from this many on.
GROUP_CHECKS_FROM = 4
#: Targets named on a grouped line (all are in the JSON report).
GROUP_NAMES = 3


def printed(actions: list[Action]) -> list[tuple[str, str, str]]:
    """Pure: (verb, target, reason) lines for a terminal or CI log. Changes and problems one
    line each, in plan order; checks with a reason shared by :data:`GROUP_CHECKS_FROM` or more
    (a no-op run at 500 services has 4000 "unchanged") as one line where they first appear,
    counting them and naming the first few."""
    by_reason: dict[str, list[str]] = {}
    for a in actions:
        if a.verb == "check":
            by_reason.setdefault(a.reason, []).append(a.target)
    out: list[tuple[str, str, str]] = []
    done: set[str] = set()
    for a in actions:
        group = by_reason.get(a.reason, []) if a.verb == "check" else []
        if len(group) < GROUP_CHECKS_FROM:
            out.append((a.verb, a.target, a.reason))
        elif a.reason not in done:
            done.add(a.reason)
            names = ", ".join(group[:GROUP_NAMES])
            more = f" and {len(group) - GROUP_NAMES} more" if len(group) > GROUP_NAMES else ""
            out.append((a.verb, f"{len(group)} targets ({names}{more})", a.reason))
    return out
