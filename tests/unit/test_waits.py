"""Waits: pending probes retry until a deadline; other errors stop at once; the timeout
says what was awaited, the last state seen and the time spent."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bootstrap.core.errors import VaultStateError, WaitTimeout
from bootstrap.core.waits import Pending, WaitSettings, wait_for, wait_until

FAST = WaitSettings(timeout=0.3, initial=0.01, maximum=0.02)


def test_returns_once_ready() -> None:
    calls = iter([Pending("sealed"), Pending("standby"), None])

    def probe() -> str:
        step = next(calls)
        if step is not None:
            raise step
        return "active"

    assert wait_for(probe, "vault", FAST) == "active"


def test_timeout_names_what_and_last_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: (False, "HTTP 503 sealed"), "Vault http://x to unseal", FAST)
    err = info.value
    assert err.awaited == "Vault http://x to unseal" and err.last_seen == "HTTP 503 sealed"
    assert 0.25 <= err.elapsed < 2
    assert "timed out after" in str(err) and "last seen: HTTP 503 sealed" in str(err)
    assert any("waiting for Vault http://x to unseal" in r.message for r in caplog.records)


def test_our_own_errors_are_not_retried() -> None:
    calls = []

    def probe() -> None:
        calls.append(1)
        raise VaultStateError("HTTP 400: bad request")

    with pytest.raises(VaultStateError):
        wait_for(probe, "x", FAST)
    assert len(calls) == 1


def test_injected_sleep_makes_waits_instant() -> None:
    slept: list[float] = []
    calls: Iterator[Pending | str] = iter([Pending("a"), Pending("b"), "ok"])

    def probe() -> str:
        v = next(calls)
        if isinstance(v, Pending):
            raise v
        return v

    assert (
        wait_for(probe, "x", WaitSettings(timeout=100, initial=5, maximum=10), sleep=slept.append)
        == "ok"
    )
    assert slept == [5, 10]


def test_a_wait_never_sleeps_past_its_deadline_and_tries_at_it() -> None:
    """Issue 26, item 6: the last sleep is cut to the deadline and the last try is made there
    (stop_after_delay alone slept a whole interval past it: 1.6 s for a 1 s wait). On a clock
    of the test's own, which only the wait's sleeps move: no wall clock, so no load can
    change the answer."""
    now = [0.0]
    tries: list[float] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def check() -> tuple[bool, str]:
        tries.append(now[0])
        return False, "sealed"

    with pytest.raises(WaitTimeout) as info:
        wait_until(
            check,
            "x",
            WaitSettings(timeout=1.0, initial=0.8, maximum=0.8),
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert slept == pytest.approx([0.8, 0.2])
    assert tries == pytest.approx([0.0, 0.8, 1.0])
    assert info.value.elapsed == pytest.approx(1.0)
