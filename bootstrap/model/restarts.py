"""Restart storms: a workload the operator rolled out again and again while nothing changed
in Vault. Pure: restart times and Vault's write times in, a verdict out.

The operator restarts a rollout target by stamping ``vso.secrets.hashicorp.com/restartedAt``
(RFC 3339, whole seconds) on its pod template: each distinct stamp in the workload's rollout
history (its ReplicaSets, or ControllerRevisions) is one restart. A current operator restarts
a target once per VaultStaticSecret whose data changed, so a write to a path explains one
restart: the first after it, within one refresh period (the operator re-reads each path
within its ``refreshAfter``). Writes to two paths of one target (``bootstrap --rotate``, a
restore) explain two restarts, even seconds apart; two writes to one path before the
operator read it explain one. The oldest restart the history holds is explained by whatever
came before it.

A restart no write explains is a repeat. One repeat is not a storm: a change of a
VaultStaticSecret's spec, an operator upgrade, or an operator stopped between writing a
Secret and recording it makes a current operator restart its targets once more. Two or more
repeats in a row are a storm (hashicorp/vault-secrets-operator#1212 makes one: a ``create:
false`` destination the operator's Secret cache cannot see looks drifted on every refresh).
The quiet check (:func:`new_restarts`) is stricter: while it watches, any restart with no
write is a failure."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
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


#: Restarts with no write to explain them, in a row, that make a storm.
STORM_REPEATS = 2


def find_storm(
    target: str,
    restarts: Iterable[Restart],
    writes: Mapping[str, Iterable[dt.datetime]],
    now: dt.datetime,
    recent: dt.timedelta,
    window: dt.timedelta | None = None,
) -> Storm | None:
    """Pure: the latest run of restarts of ``target`` holding :data:`STORM_REPEATS` or more
    that no Vault write explains (``writes``: for each path that restarts it, when each of
    its versions was made; ``window``: how long after a write the restart it causes may come,
    one refresh period; None: any time), or None. ``recent``: a storm whose last restart is
    newer than ``now - recent`` is ongoing."""
    marks = sorted({r.at: r for r in restarts}.values(), key=lambda r: r.at)
    times = {path: sorted(ws) for path, ws in writes.items()}
    if len(marks) < STORM_REPEATS + 1:
        return None
    #: per path: its writes before this are used (each explained a restart, or is too old)
    used: dict[str, dt.datetime] = {}

    def explained(at: dt.datetime) -> bool:
        # each stamp stands for its whole second: a write in the second of the restart may
        # have come before it
        floor = at - window if window is not None else None
        eligible = [
            (w, path)
            for path, ws in times.items()
            for w in ws
            if w < at + STAMP_RESOLUTION
            and (path not in used or w >= used[path])
            and (floor is None or w >= floor)
        ]
        if not eligible:
            return False
        _, path = min(eligible)
        used[path] = at + STAMP_RESOLUTION
        return True

    runs: list[list[Restart]] = []
    for i, mark in enumerate(marks):
        if explained(mark.at) or i == 0:
            runs.append([mark])
        else:
            runs[-1].append(mark)
    storms = [run for run in runs if len(run) > STORM_REPEATS]
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
    """A restart stamp as an aware datetime, or None: VSO's RFC 3339 (``2026-12-05T02:10:03Z``)
    or Stakater Reloader's JSON (its ``observedAt``, Unix seconds)."""
    if value.startswith("{"):
        try:
            seconds = json.loads(value).get("observedAt")
        except (ValueError, AttributeError):
            return None
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
