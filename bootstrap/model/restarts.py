"""Restart storms: a workload the operator rolled out again and again while nothing changed
in Vault. Pure: restart times and Vault's write times in, a verdict out.

The operator restarts a rollout target by stamping ``vso.secrets.hashicorp.com/restartedAt``
(RFC 3339, whole seconds) on its pod template: each distinct stamp in the workload's rollout
history (its ReplicaSets, or ControllerRevisions) is one restart. A restart is *explained*
when some secret that restarts the target got a new Vault version after the restart before
it (the first restart is explained by whatever came before). Every restart after the first
for the same Vault versions is a repeat: two or more restarts for one set of versions is a
storm (hashicorp/vault-secrets-operator#1212 makes one: a ``create: false`` destination the
operator's Secret cache cannot see looks drifted on every refresh).

One restart without a Vault change is not a storm: a change of a VaultStaticSecret's spec,
or an operator upgrade, makes a current operator restart its targets once."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Restart:
    """One restart of a workload: the operator's stamp, and the revision it rolled out."""

    at: dt.datetime
    revision: str = ""


@dataclass(frozen=True)
class Storm:
    """Restarts of one target with no Vault change between them."""

    target: str  # e.g. "Deployment/webapp"
    count: int  # restarts for the same Vault versions (at least: see ``truncated``)
    first: dt.datetime
    last: dt.datetime
    #: the oldest restart the workload's history still holds is one of them: there were
    #: maybe more (a Deployment keeps 10 old ReplicaSets by default)
    truncated: bool
    #: the last of them is recent: it is likely going on
    ongoing: bool
    revisions: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.last - self.first).total_seconds()

    def describe(self) -> str:
        count = f"{'at least ' if self.truncated else ''}{self.count}"
        span = f"{self.seconds:.0f} s"
        revs = f" (revisions {self.revisions[0]} to {self.revisions[-1]})" if self.revisions else ""
        when = "and going on" if self.ongoing else f"ended {self.last.isoformat()}"
        return (
            f"restart storm: {self.target} rolled out {count} times in {span}{revs} with no "
            f"change in Vault, {when}"
        )


#: A restart stamp has whole seconds: a write up to a second after it may have caused it.
STAMP_RESOLUTION = dt.timedelta(seconds=1)


def find_storm(
    target: str,
    restarts: Iterable[Restart],
    writes: Iterable[dt.datetime],
    now: dt.datetime,
    recent: dt.timedelta,
) -> Storm | None:
    """Pure: the latest run of two or more restarts of ``target`` with no Vault write between
    them (``writes``: when each Vault version of the secrets that restart it was made), or
    None. ``recent``: a storm whose last restart is newer than ``now - recent`` is ongoing."""
    marks = sorted({r.at: r for r in restarts}.values(), key=lambda r: r.at)
    times = sorted(writes)
    if len(marks) < 2:
        return None

    def explained(before: dt.datetime, at: dt.datetime) -> bool:
        # each stamp stands for its whole second: a write in the second of the restart
        # before may have come before it, and one in the second of this restart, after it
        return any(before + STAMP_RESOLUTION <= w < at + STAMP_RESOLUTION for w in times)

    runs: list[list[Restart]] = [[marks[0]]]
    for prev, cur in itertools.pairwise(marks):
        if explained(prev.at, cur.at):
            runs.append([cur])
        else:
            runs[-1].append(cur)
    storms = [run for run in runs if len(run) >= 2]
    if not storms:
        return None
    run = storms[-1]
    return Storm(
        target=target,
        count=len(run),
        first=run[0].at,
        last=run[-1].at,
        truncated=run[0] is marks[0],
        ongoing=run[-1].at >= now - recent,
        revisions=tuple(r.revision for r in run if r.revision),
    )


def new_restarts(
    restarts: Iterable[Restart],
    known: Iterable[Restart],
    writes: Iterable[dt.datetime],
    since: dt.datetime,
) -> list[Restart]:
    """Pure: the restarts that are not ``known`` (those held at ``since``, when watching
    began) and that no Vault write explains: none after ``since`` and after the restart
    before it, up to its own second."""
    seen = {r.at for r in known}
    marks = sorted({r.at: r for r in restarts}.values(), key=lambda r: r.at)
    times = sorted(writes)
    out = []
    for i, r in enumerate(marks):
        if r.at in seen:
            continue
        lower = since
        if i and marks[i - 1].at + STAMP_RESOLUTION > lower:
            lower = marks[i - 1].at + STAMP_RESOLUTION
        if not any(lower <= w < r.at + STAMP_RESOLUTION for w in times):
            out.append(r)
    return out


def parse_stamp(value: str) -> dt.datetime | None:
    """An RFC 3339 restart stamp (``2026-12-05T02:10:03Z``) as an aware datetime, or None."""
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
