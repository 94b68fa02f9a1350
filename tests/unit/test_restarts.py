"""Restart storms (model.restarts): which restarts Vault writes explain, and when repeats make
a storm."""

from __future__ import annotations

import datetime as dt

import pytest

from bootstrap.model.restarts import Restart, Storm, find_storm, new_restarts, parse_stamp

T0 = dt.datetime(2026, 12, 5, 3, 40, tzinfo=dt.UTC)
RECENT = dt.timedelta(minutes=3)
WINDOW = dt.timedelta(minutes=2)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def restarts(*seconds: float) -> list[Restart]:
    return [Restart(at(s), str(i + 2)) for i, s in enumerate(seconds)]


def storm(marks: list[Restart], writes: dict[str, list[float]], now: float = 300) -> Storm | None:
    times = {path: [at(s) for s in ws] for path, ws in writes.items()}
    return find_storm("Deployment/webapp", marks, times, at(now), RECENT, WINDOW)


def test_one_rotation_of_four_paths_restarts_four_times_and_is_no_storm() -> None:
    """``bootstrap --rotate``: four paths of one target written at once; the operator
    restarts it once per VaultStaticSecret, over a few seconds."""
    writes = {p: [0.0, 100.0] for p in ("config", "credentials", "api-keys", "database")}
    assert storm(restarts(1, 101, 101, 102, 103), writes) is None


def test_a_restart_on_every_refresh_with_nothing_written_is_a_storm() -> None:
    """hashicorp/vault-secrets-operator#1212: after one change, a restart every 30 s."""
    found = storm(restarts(10, 40, 70, 100), {"config": [9.5]}, now=110)
    assert found is not None
    assert (found.count, found.first, found.last) == (4, at(10), at(100))
    assert found.ongoing and found.revisions == ("2", "3", "4", "5")
    # the oldest restart the history holds is part of it: there may have been more
    assert "rolled out at least 4 times in 90 s" in found.describe()


def test_one_restart_more_is_no_storm() -> None:
    """A spec change, an operator upgrade, or an operator stopped between writing a Secret
    and recording it: one restart more for the same Vault versions."""
    assert storm(restarts(10, 63), {"config": [9.5]}) is None
    # a second one in a row is
    assert storm(restarts(10, 63, 93), {"config": [9.5]}) is not None


def test_two_writes_to_one_path_before_the_sync_explain_one_restart() -> None:
    found = storm(restarts(5, 12, 42), {"config": [1.0, 2.0]})
    assert found is not None and found.count == 3


def test_a_write_explains_a_restart_within_the_window_only() -> None:
    # the write at 200 s explains a restart until 320 s, not the one at 400 s
    assert storm(restarts(1, 250, 260), {"config": [0.0], "database": [200.0, 255.0]}) is None
    late = storm(restarts(1, 400, 430), {"config": [0.0], "database": [200.0]}, now=450)
    assert late is not None and late.first == at(1) and late.count == 3
    unbounded = find_storm(
        "Deployment/webapp",
        restarts(1, 400, 430),
        {"config": [at(0)], "database": [at(200)]},
        at(450),
        RECENT,
    )
    assert unbounded is None


def test_a_storm_long_over_is_not_ongoing() -> None:
    found = storm(restarts(10, 40, 70), {"config": [9.5]}, now=70 + 181)
    assert found is not None and not found.ongoing


def marks(*seconds: int) -> list[Restart]:
    return restarts(*seconds)


def test_a_storm_says_its_count_period_and_revisions() -> None:
    found = storm(restarts(10, 38, 68, 98, 128), {"webapp/config": [9.5]}, now=130)
    assert isinstance(found, Storm)
    # the restart the write explains, then four for the same versions
    assert (found.count, found.first, found.last) == (5, at(10), at(128))
    assert found.ongoing and found.truncated  # it begins at the oldest restart held
    assert found.describe() == (
        "restart storm: Deployment/webapp rolled out at least 5 times in 118 s (revisions 2 to 6) "
        "with no change in Vault, and going on"
    )


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
        ("2026-12-05T03:40:10Z", at(10)),
        ("2026-12-05T03:40:10+00:00", at(10)),
        ("2026-12-05T03:40:10", at(10)),
        ("not a time", None),
        ("", None),
    ],
)
def test_parse_stamp(value: str, expected: dt.datetime | None) -> None:
    assert parse_stamp(value) == expected
