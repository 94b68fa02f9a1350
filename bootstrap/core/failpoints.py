"""Named failpoints: places in a run where a test can kill it (SIGKILL of the whole process
group, tools it runs included, as a cancelled CI job or a lost machine would) or hold it, to
prove that every phase survives a crash at any point.

Off unless ``BOOTSTRAP_FAILPOINTS`` is set, as comma-separated ``<point>=<action>`` items:

- ``kill``: SIGKILL at the first time the point is reached;
- ``kill@N``: at the N-th time (points inside loops: the N-th write);
- ``pause:<file>``: touch ``<file>.reached`` and wait until ``<file>`` exists;
- ``raise:<text>``: raise :class:`FailpointCrash` (a RuntimeError, not a product error) with
  that text, as a bug would: the run's report must still be written, without the text.

Points: ``phase:<name>:start`` and ``phase:<name>:done`` around every phase, and inside
phases ``vault-ready:init`` (after the init record is in custody), ``vault-ready:unseal-key``
(after each key submitted), ``vault-ready:unsealed`` (after each node), ``vault-config:write``,
``operator:applied``, ``placeholders:applying`` (a watcher kills the run once Terraform's
provider runs for the apply), ``populate:write``, ``verify:nudged``, ``finish:revoked``
(revoked, not yet recorded); in ``dr.restore``: ``dr-restore:custody``,
``dr-restore:throwaway-init``, ``dr-restore:sending`` (the checked bytes about to go),
``dr-restore:restored``, ``dr-restore:unsealed``,
``dr-restore:discarded``; in ``migrate.namespace``: ``migrate:backed-up``, ``migrate:pushed``,
``migrate:labelled`` (each Secret given the operator's cache labels), ``migrate:applied``,
``migrate:copier``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

ENV = "BOOTSTRAP_FAILPOINTS"

_hits: dict[str, int] = {}
_lock = threading.Lock()


def _actions(name: str) -> list[str]:
    spec = os.environ.get(ENV, "")
    return [a for p, _, a in (i.partition("=") for i in spec.split(",") if i) if p == name]


class FailpointCrash(RuntimeError):
    """Raised by a ``raise:<text>`` failpoint: an unexpected exception, as from a bug."""


def kill_now() -> None:
    """SIGKILL this run, and, when it leads its own process group (started in a session of
    its own, as tests start it), everything it started."""
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Reached a named point: do what ``BOOTSTRAP_FAILPOINTS`` says for it, if anything."""
    if ENV not in os.environ:
        return
    actions = _actions(name)
    if not actions:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    for action in actions:
        if action == "kill" or (action.startswith("kill@") and action[5:] == str(hit)):
            kill_now()
        elif action.startswith("raise:"):
            raise FailpointCrash(action[len("raise:") :])
        elif action.startswith("pause:") and hit == 1:
            release = Path(action[len("pause:") :])
            release.with_name(release.name + ".reached").touch()
            while not release.exists():
                time.sleep(0.05)


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        out += kids
        todo += kids
    return out


def kill_during(name: str, child: str) -> threading.Thread | None:
    """For work done by a child process (Terraform): if ``name`` is armed with ``kill``,
    SIGKILL the run once a descendant whose command line holds ``child`` runs (the provider
    plugin, say: the apply is under way)."""
    if ENV not in os.environ or "kill" not in _actions(name):
        return None

    def watch() -> None:
        me = os.getpid()
        while True:
            for pid in _descendants(me):
                try:
                    line = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if child.encode() in line:
                    kill_now()
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread
