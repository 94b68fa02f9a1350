"""Background processes the sandbox starts: detached, logged to files, stopped by pid only
after checking the pid is still the process we started -- same binary and same start time
(pids get reused, and several sandboxes on one machine run the same binaries)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

#: Where listening ports are picked: below the kernel's ephemeral range, from which every
#: outgoing connection takes its local port (a port picked there and bound a few seconds
#: later was found taken by a client's connection, on a busy machine).
LISTEN_PORTS = (20000, 32768)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


#: How long a port handed out stays reserved for whoever asked, across processes (several
#: sandboxes start side by side: one picked, closed and bound later a port another had just
#: picked, and its operator exited with "address already in use").
RESERVE_SECONDS = 900.0


def _reservations() -> Path:
    return Path(tempfile.gettempdir()) / f"cluster-secrets-bootstrap-ports-{os.getuid()}"


def _reserve(folder: Path, port: int, now: float) -> bool:
    """Take ``port`` unless another caller took it less than RESERVE_SECONDS ago (called
    under the folder's lock)."""
    mark = folder / str(port)
    try:
        if now - mark.stat().st_mtime < RESERVE_SECONDS:
            return False
    except FileNotFoundError:
        pass
    mark.write_text(f"{os.getpid()}\n")
    return True


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (held open together so they differ), outside the
    ephemeral range where one can be; else any the kernel gives. Each is reserved for
    RESERVE_SECONDS, so that no other caller on this machine (another sandbox starting at
    the same time) is handed it before its process binds it."""
    folder = _reservations()
    folder.mkdir(mode=0o700, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _pick(n, folder)


def _pick(n: int, folder: Path) -> list[int]:
    socks: list[socket.socket] = []
    low, high = LISTEN_PORTS
    eph_low, eph_high = _ephemeral_range()
    candidates = [p for p in range(low, high) if not eph_low <= p <= eph_high]
    random.shuffle(candidates)
    now = time.time()
    try:
        for port in candidates:
            if len(socks) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            if not _reserve(folder, port, now):
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            if _reserve(folder, int(s.getsockname()[1]), now):
                socks.append(s)
            else:
                s.close()
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


#: How long :func:`start` waits for a new process's command line to show.
START_TIMEOUT = 5.0


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
    # Popen returns once the exec has begun; the new program's arguments show in
    # /proc/<pid>/cmdline a moment later (the kernel sets them up after closing the pipe
    # Popen waits on). Until then alive() reads an empty command line and takes the process
    # for gone: 21 of 500 fresh processes here; in CI, a fresh sandbox's
    # kube-controller-manager "exited" with an empty log. Return once it shows.
    deadline = time.monotonic() + START_TIMEOUT
    while not _cmdline(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
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


# -- short-lived commands whose output the caller reads ------------------------------------


class RunTimeout(Exception):
    """The command ran past its timeout; it was stopped (with everything it started)."""


class OutputTooLarge(Exception):
    """The command printed more than the caller's limit; it was stopped, nothing kept."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the command and whatever it started (it runs in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()


def run_bounded(
    argv: list[str],
    *,
    executable: str,
    cwd: Path,
    env: dict[str, str],
    as_user: int | None,
    timeout: float,
    limit: int,
) -> tuple[int, bytes]:
    """Run ``executable`` (as ``argv``) without a shell, standard input closed, standard
    error discarded, in a session of its own, as ``as_user`` (uid and gid, no supplementary
    groups) when given; return its exit code and standard output. Past ``timeout`` seconds:
    :class:`RunTimeout`; more than ``limit`` bytes: :class:`OutputTooLarge` (stopped either
    way). OSError from starting it (PermissionError, FileNotFoundError) reaches the caller."""
    proc = subprocess.Popen(
        argv,
        executable=executable,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        start_new_session=True,
        user=as_user,
        group=as_user,
        extra_groups=[] if as_user is not None else None,
    )
    assert proc.stdout is not None
    out = bytearray()
    deadline = time.monotonic() + timeout
    with proc, selectors.DefaultSelector() as sel:
        fd = proc.stdout.fileno()
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                raise RunTimeout
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                _kill_group(proc)
                raise OutputTooLarge
        try:
            code = proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise RunTimeout from None
    return code, bytes(out)


def run_captured(
    argv: list[str],
    timeout: float | None,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[int, str, str]:
    """Run a command to its end (text output, no shell, ``env`` as its whole environment
    when given); its exit code, standard output and standard error. Past ``timeout``
    seconds: :class:`RunTimeout`."""
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RunTimeout from None
    return proc.returncode, proc.stdout, proc.stderr
