"""One way to run work side by side: bounded, in order, and stopped at the first failure.

Used wherever the product fans out (the operator phase's applies and reads, tool builds)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``fn`` over ``items``, at most ``workers`` at once; the results in ``items`` order.
    The first failure (in the order they happen) is raised once every call under way has
    returned: calls not yet started never start, and no thread outlives this call (Ctrl-C
    included)."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    stop = threading.Event()

    def call(item: T) -> R:
        if stop.is_set():
            raise _Skipped
        return fn(item)

    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        futures = [pool.submit(call, item) for item in items]
        for future in as_completed(futures):
            future.result()  # the first failure raises here
        return [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Skipped(Exception):
    """A call not started because an earlier one failed (never raised to callers)."""


__all__ = ["in_parallel"]
