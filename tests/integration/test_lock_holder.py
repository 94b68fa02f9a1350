"""The lock's holder identity of a real process: alive while it runs, dead once it exited."""

from __future__ import annotations

import subprocess
import sys

from bootstrap.runtime import lock


def test_a_child_is_alive_while_it_runs_and_dead_once_it_exited() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        who = lock.identity(child.pid)  # it waits for its input: it runs
        assert not lock.dead_here(who)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert lock.dead_here(who)
