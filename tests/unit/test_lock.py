"""The lock's holder identity: a dead process of this machine is recognised; a live one, or
one in another pid namespace or on another host of the same name, is not."""

from __future__ import annotations

import subprocess
import sys

from bootstrap.runtime import lock


def test_identity_names_host_pid_and_process() -> None:
    me = lock.identity()
    assert f" pid {__import__('os').getpid()} (boot " in me and ", started " in me
    assert not lock.dead_here(me)


def test_a_dead_process_here_is_dead_and_others_are_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    who = lock.identity(child.pid)
    child.wait()
    assert lock.dead_here(who)
    # the same pid and start time in another pid namespace (another container): alive
    host = who.split(" pid ", 1)[0]
    other_ns = who.replace(", pidns ", ", pidns 9")
    assert other_ns != who and not lock.dead_here(other_ns)
    assert not lock.dead_here(who.replace(host, host + "-elsewhere", 1))
    assert not lock.dead_here("old-style-holder-1234")
