"""Background processes the sandbox starts: detached, logged to files, stopped by pid only
after checking the pid is still the process we started -- same binary and same start time
(pids get reused, and several sandboxes on one machine run the same binaries)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def start(
    argv: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start a process in its own session, detached from ours; return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def start_time(pid: int) -> str:
    """When the process started (clock ticks since boot, /proc/<pid>/stat field 22): with
    the pid, an identity no later process shares. "" when it does not exist."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, binary: str, started: str = "") -> bool:
    """True when pid runs, its command line starts with ``binary`` and, when ``started`` is
    given, it is the very process that started then."""
    line = _cmdline(pid)
    if not line or not line.startswith(binary) or _zombie(pid):
        return False
    return not started or start_time(pid) == started


def stop(pid: int, binary: str, timeout: float = 10.0, started: str = "") -> bool:
    """SIGTERM, then SIGKILL after ``timeout``. Returns False if it was not ours/running."""
    if not alive(pid, binary, started):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, binary, started):
            _reap(pid)
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
