"""Where real values come from: environment, file, command output, generated once, a copy
of another Vault path, or a hidden prompt. Resolution never logs or echoes a value, and a
failure names the source, never its value.

What a source may reach is bounded: ``env:`` never names the bootstrap's own credentials
(refused by the catalog); ``file:`` reads regular files inside the catalog's folder or an
allowed root, symlinks and ``..`` resolved first, never /proc, /sys or /dev; ``command:``
runs without a shell in a clean environment (PATH, HOME, LANG, LC_*), with a timeout and an
output cap. File and command content must be UTF-8 text unless the source says
``encoding: base64``.
"""

from __future__ import annotations

import base64
import getpass
import os
import secrets
import selectors
import signal
import stat
import string
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bootstrap.model.catalog import FORBIDDEN_FILE_ROOTS, Generate, Source
from bootstrap.model.reserved import is_within

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    "ascii": string.ascii_letters + string.digits + "!#%+,-./:=@^_~",
}

#: Largest file or command output read as one value (a whole Secret may hold 1 MiB).
MAX_VALUE_BYTES = 1024 * 1024
#: Seconds a command source may run.
COMMAND_TIMEOUT = 60.0
#: The only variables a command source inherits (and every LC_*).
COMMAND_ENV = ("PATH", "HOME", "LANG")


class SourceError(Exception):
    """A source could not give its value (the message never holds a value)."""


def generate(spec: Generate) -> str:
    alphabet = ALPHABETS[spec.alphabet]
    return "".join(secrets.choice(alphabet) for _ in range(spec.length))


#: Reads one key of another Vault KV path: (path, key) -> value or None.
VaultReader = Callable[[str, str], "str | None"]


def command_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a command source runs with: PATH, HOME, LANG and LC_* only, so no
    Vault token, kubeconfig or other credential of the bootstrap reaches it."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k in COMMAND_ENV or k.startswith("LC_")}


def _text(raw: bytes, what: str, encoding: str | None) -> str:
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    try:
        return raw.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise SourceError(
            f"{what}: content is not UTF-8 text; add 'encoding: base64' to the source to store "
            "it base64-encoded"
        ) from None


def read_file(
    name: str, base_dir: Path, roots: Sequence[str | Path] = (), encoding: str | None = None
) -> str:
    """A file source's value. Only a regular file inside ``base_dir`` (the catalog's folder)
    or one of ``roots``, with symlinks and ``..`` resolved, at most MAX_VALUE_BYTES."""
    path = Path(name)
    path = path if path.is_absolute() else base_dir / path
    what = f"file {name}"
    try:
        real = path.resolve(strict=True)
        allowed = [base_dir.resolve(strict=False)]
        allowed += [Path(os.path.expanduser(r)).resolve(strict=False) for r in roots if r]
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceError(f"{what}: {reason}") from None
    if any(is_within(real, r) for r in FORBIDDEN_FILE_ROOTS):
        raise SourceError(f"{what}: resolves to {real}, under /proc, /sys or /dev; never read")
    if not any(is_within(real, r) for r in allowed):
        raise SourceError(
            f"{what}: resolves to {real}, outside the catalog's folder and every "
            "source_file_roots entry"
        )
    try:
        # NOFOLLOW: the path was just resolved; NONBLOCK: a FIFO must not hang the open.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SourceError(f"{what}: {exc.strerror or type(exc).__name__}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError(f"{what}: not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_VALUE_BYTES:
            chunk = os.read(fd, MAX_VALUE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        raise SourceError(f"{what}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_VALUE_BYTES:
        raise SourceError(f"{what}: larger than {MAX_VALUE_BYTES} bytes (1 MiB); not read")
    return _text(raw, what, encoding)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Stop the command and whatever it started (it runs in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()


def run_command(
    argv: Sequence[str],
    base_dir: Path,
    encoding: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    limit: int = MAX_VALUE_BYTES,
) -> str:
    """A command source's value: its standard output, no shell, clean environment, at most
    ``limit`` bytes (beyond it: an error, no partial value) within ``timeout`` seconds."""
    what = f"command {argv[0]!r}"
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=base_dir,
            env=command_env(),
            start_new_session=True,
        )
    except FileNotFoundError:
        raise SourceError(f"{what}: FileNotFoundError (no such program here)") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"{what}: {type(exc).__name__}") from None
    assert proc.stdout is not None
    out = bytearray()
    deadline = time.monotonic() + timeout
    with proc, selectors.DefaultSelector() as sel:
        fd = proc.stdout.fileno()
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(proc)
                raise SourceError(f"{what}: TimeoutExpired after {timeout:g}s")
            if not sel.select(left):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                _kill(proc)
                raise SourceError(f"{what}: printed more than {limit} bytes; nothing kept")
        try:
            code = proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise SourceError(f"{what}: TimeoutExpired after {timeout:g}s") from None
    raw = bytes(out)
    if code != 0:
        raise SourceError(f"{what} exited {code}")
    value = _text(raw, what, encoding)
    if not value:
        raise SourceError(f"{what} printed nothing")
    return value


def resolve(
    source: Source,
    base_dir: Path,
    read_vault: VaultReader,
    interactive: bool | None = None,
    file_roots: Sequence[str | Path] = (),
) -> str:
    """One key's value. ``base_dir`` is the catalog's folder; ``file_roots`` the setting
    source_file_roots."""
    kind = source.kind
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None or value == "":
            raise SourceError(f"environment variable {source.env} is not set")
        return value
    if source.file is not None:
        return read_file(source.file, base_dir, file_roots, source.encoding)
    if source.command is not None:
        if not source.command:
            raise SourceError("command: [] names no program")
        return run_command(source.command, base_dir, source.encoding)
    if source.generate is not None:
        return generate(source.generate)
    if source.copy_ is not None:
        found = read_vault(source.copy_.path, source.copy_.key)
        if found is None:
            raise SourceError(f"Vault path {source.copy_.path} has no key {source.copy_.key}")
        return found
    if source.prompt is not None:
        tty = sys.stdin.isatty() if interactive is None else interactive
        if not tty:
            raise SourceError(f"prompt {source.prompt!r} needs a terminal")
        value = getpass.getpass(f"{source.prompt}: ")
        if not value:
            raise SourceError(f"prompt {source.prompt!r} got an empty answer")
        return value
    raise SourceError(f"unknown source kind {kind}")
