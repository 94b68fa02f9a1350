"""One way to run work side by side: bounded, in order, stopped at the first failure, every
failure reported.

Used wherever the product fans out: Vault reads and writes (vault-config, populate, verify,
status), the operator phase's applies and reads, nudges, the operator's observations, tool
builds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TypeVar

from bootstrap.core.errors import BootstrapError

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


def in_parallel(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """``fn`` over ``items``, at most ``workers`` at once; the results in ``items`` order.
    The first failure (in the order they happen) is raised once every call under way has
    returned: calls not yet started never start, and no thread outlives this call (Ctrl-C
    included). Calls under way that fail too are logged (the product's errors with their
    message, others by type only: their text may hold anything)."""
    if len(items) <= 1 or workers <= 1:
        return [fn(item) for item in items]
    stop = threading.Event()

    def call(item: T) -> R:
        if stop.is_set():
            raise _Skipped
        return fn(item)

    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    futures: list[Future[R]] = []
    first: BaseException | None = None
    try:
        futures = [pool.submit(call, item) for item in items]
        for future in as_completed(futures):
            future.result()  # the first failure raises here
        return [f.result() for f in futures]
    except BaseException as exc:
        first = exc
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if first is not None:
            _report_others(futures, first)


def _report_others(futures: list[Future[R]], first: BaseException) -> None:
    for f in futures:
        if f.cancelled() or not f.done():
            continue
        exc = f.exception()
        if exc is None or exc is first or isinstance(exc, _Skipped):
            continue
        what = str(exc) if isinstance(exc, BootstrapError) else type(exc).__name__
        log.warning("also failed, beside the first failure: %s", what)


class _Skipped(Exception):
    """A call not started because an earlier one failed (never raised to callers)."""


__all__ = ["in_parallel"]
