"""Restart storms, judged from restart stamps and Vault's write times (model.restarts)."""

from __future__ import annotations

import datetime as dt

import pytest

from bootstrap.model.restarts import Restart, find_storm, new_restarts, parse_stamp

T0 = dt.datetime(2026, 12, 5, 2, 0, 0, tzinfo=dt.UTC)
RECENT = dt.timedelta(minutes=2)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def marks(*seconds: int) -> list[Restart]:
    """Restart stamps (whole seconds, as the operator writes them), revisions 2, 3, ..."""
    return [Restart(at(s), str(i + 2)) for i, s in enumerate(seconds)]


def test_one_restart_per_vault_change_is_no_storm() -> None:
    # a write, then its restart a moment later; three times
    writes = [at(9.5), at(39.2), at(69.7)]
    assert find_storm("Deployment/web", marks(10, 40, 70), writes, at(80), RECENT) is None


def test_one_restart_without_a_change_is_no_storm() -> None:
    """A spec change or an operator upgrade restarts a current operator's targets once."""
    assert find_storm("Deployment/web", marks(10), [], at(20), RECENT) is None
    assert find_storm("Deployment/web", marks(10, 40), [at(39.5)], at(50), RECENT) is None


def test_restarts_for_the_same_versions_are_a_storm_with_count_and_period() -> None:
    # one legitimate restart after the write at 9.5, then four more with nothing written
    storm = find_storm("Deployment/web", marks(10, 38, 68, 98, 128), [at(9.5)], at(130), RECENT)
    assert storm is not None
    assert (storm.count, storm.first, storm.last, storm.seconds) == (5, at(10), at(128), 118)
    assert storm.ongoing and storm.truncated  # its first restart is the oldest one held
    assert storm.revisions == ("2", "3", "4", "5", "6")
    assert storm.describe() == (
        "restart storm: Deployment/web rolled out at least 5 times in 118 s (revisions 2 to 6) "
        "with no change in Vault, and going on"
    )


def test_the_latest_storm_is_told_and_an_old_one_has_ended() -> None:
    # a restart for a write; then a storm; then a write and one restart for it: the storm is
    # over, and the history holds its beginning
    writes = [at(2.5), at(9.5), at(399)]
    storm = find_storm("StatefulSet/db", marks(3, 10, 40, 70, 400), writes, at(1000), RECENT)
    assert storm is not None and (storm.count, storm.first, storm.last) == (3, at(10), at(70))
    assert not storm.ongoing and not storm.truncated
    assert storm.describe().endswith(f"ended {at(70).isoformat()}")


def test_a_write_in_the_second_of_the_restart_before_does_not_explain_the_next() -> None:
    """Stamps have whole seconds: a write in the same second as a restart may have come
    before it (and caused it); only a write from the next second on explains the next."""
    writes = [at(10.4)]  # the restart stamped 10 may have come at 10.9, after it
    storm = find_storm("Deployment/web", marks(10, 40), writes, at(45), RECENT)
    assert storm is not None and storm.count == 2
    # a write within the second of the restart it explains counts
    assert find_storm("Deployment/web", marks(10, 40), [at(40.6)], at(45), RECENT) is None


def test_new_restarts_are_those_no_write_since_explains() -> None:
    known = marks(10)
    now = marks(10, 40, 70)
    since = at(20)
    # nothing written: both new restarts are unexplained
    assert [r.at for r in new_restarts(now, known, [], since)] == [at(40), at(70)]
    # a rotation explains its own restart, not the one after it
    assert [r.at for r in new_restarts(now, known, [at(39.0)], since)] == [at(70)]
    # nothing new, nothing to say
    assert new_restarts(known, known, [], since) == []
    # a write before the watch began explains nothing: the first fill of a placeholder
    # (populate wrote, then the operator synced) must restart nothing
    assert [r.at for r in new_restarts(marks(40), [], [at(5)], since)] == [at(40)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-05T02:00:10Z", at(10)),
        ("2026-12-05T02:00:10+00:00", at(10)),
        ("2026-12-05T02:00:10", at(10)),
        ("not a time", None),
        ("", None),
    ],
)
def test_parse_stamp(value: str, expected: dt.datetime | None) -> None:
    assert parse_stamp(value) == expected
