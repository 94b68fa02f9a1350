"""Every wait of the product, on tenacity: poll, back off, log each retry, and on timeout
raise :class:`WaitTimeout` saying what was awaited, the last state seen and the time spent.

Tests make waits fast through :class:`WaitSettings`, never by patching time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
)

from bootstrap.core.errors import WaitTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class WaitSettings:
    timeout: float = 120.0
    initial: float = 0.2
    maximum: float = 5.0


class Pending(Exception):
    """Raised by a probe to say "not yet", with the state it saw."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


def wait_for(
    probe: Callable[[], T],
    awaited: str,
    settings: WaitSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``probe`` until it returns without raising :class:`Pending`; return its result.

    Any other exception from the probe propagates at once (our own errors are not retried).
    ``sleep`` and ``clock`` are the time it runs on (a unit test gives both, so the deadline
    arithmetic is proven without a wall clock).
    """
    started = clock()
    last = {"state": "no answer yet"}

    def before_sleep(rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, Pending):
            last["state"] = exc.state
        log.info(
            "waiting for %s: %s (%.1fs elapsed, next try in %.1fs)",
            awaited,
            last["state"],
            clock() - started,
            rs.next_action.sleep if rs.next_action else 0.0,
        )

    def give_up(rs: RetryCallState) -> T:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, Pending):
            last["state"] = exc.state
        raise WaitTimeout(awaited, last["state"], clock() - started)

    backoff = wait_exponential(
        multiplier=settings.initial, min=settings.initial, max=settings.maximum
    )

    def pause(rs: RetryCallState) -> float:
        # never sleeps past the deadline: the last try is made at it, not an interval later
        remaining = settings.timeout - (clock() - started)
        return max(0.0, min(backoff(rs), remaining))

    retrying: Retrying = Retrying(
        retry=retry_if_exception_type(Pending),
        stop=lambda rs: clock() - started >= settings.timeout,
        wait=pause,
        before_sleep=before_sleep,
        retry_error_callback=give_up,
        sleep=sleep,
        reraise=False,
    )
    return retrying(probe)


def wait_until(
    check: Callable[[], tuple[bool, str]],
    awaited: str,
    settings: WaitSettings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll ``check`` (returning done and a state description) until done."""

    def probe() -> str:
        done, state = check()
        if not done:
            raise Pending(state)
        return state

    return wait_for(probe, awaited, settings, sleep=sleep, clock=clock)


__all__ = ["Pending", "WaitSettings", "wait_for", "wait_until"]
