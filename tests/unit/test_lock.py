"""The lock's holder identity: a process of this machine that is gone (its pid free or taken by
a later process) is recognised; a live one, or one in another pid namespace or on another host
of the same name, is not. (With a real child that exited: tests/integration/test_lock_holder.py.)"""

from __future__ import annotations

import os

from bootstrap.runtime import lock


def test_identity_names_host_pid_and_process() -> None:
    me = lock.identity()
    assert f" pid {os.getpid()} (boot " in me and ", started " in me
    assert not lock.dead_here(me)


def test_a_gone_process_here_is_dead_and_others_are_not() -> None:
    me = lock.identity()
    head, started = me.removesuffix(")").rsplit(", started ", 1)
    # this pid, started at another time: the process it named is gone, the pid reused
    who = f"{head}, started {int(started) - 1})"
    assert lock.dead_here(who)
    # the same in another pid namespace (another container): alive
    host = who.split(" pid ", 1)[0]
    other_ns = who.replace(", pidns ", ", pidns 9")
    assert other_ns != who and not lock.dead_here(other_ns)
    assert not lock.dead_here(who.replace(host, host + "-elsewhere", 1))
    assert not lock.dead_here("old-style-holder-1234")
