"""Where real values come from: environment, file, command output, generated once, a copy
of another Vault path, or a hidden prompt. Resolution never logs or echoes a value, and a
failure names the source, never its value.

What a source may reach is bounded: ``env:`` never names the bootstrap's own credentials
(refused by the catalog); ``file:`` reads regular files inside the catalog's folder or an
allowed root, symlinks and ``..`` resolved first, never /proc, /sys or /dev. ``command:``
runs only with the setting catalog_commands ``allow``, and only a regular executable file
inside the catalog's folder (symlinks and ``..`` resolved, no PATH lookup), without a shell,
standard input closed, in the catalog's folder, with a clean environment (PATH /usr/bin:/bin,
HOME of the user it runs as, LANG, LC_*), in a session of its own, with a timeout and an
output cap (issue 23, finding 1). Before the first one runs, the bootstrap makes itself
non-dumpable, so that no process of its user can read its memory or /proc/<pid>/environ; run
as root, the bootstrap runs each command as user nobody (uid and gid 65534, no supplementary
groups), so the custody file (0600, root's) and the state folder are out of its reach. File
and command content must be UTF-8 text unless the source says ``encoding: base64``.
"""

from __future__ import annotations

import base64
import ctypes
import getpass
import os
import pwd
import secrets
import stat
import string
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bootstrap.clients import procs
from bootstrap.model.catalog import FORBIDDEN_FILE_ROOTS, Generate, Source
from bootstrap.model.reserved import argv_text, is_within, program_problem

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
#: The PATH a command source runs with; the only variables it inherits are LANG and LC_*.
COMMAND_PATH = "/usr/bin:/bin"
#: Who command sources run as when the bootstrap runs as root: user nobody, group nogroup.
NOBODY = 65534
#: prctl(2)'s PR_SET_DUMPABLE.
PR_SET_DUMPABLE = 4


class SourceError(Exception):
    """A source could not give its value (the message never holds a value)."""


def generate(spec: Generate) -> str:
    alphabet = ALPHABETS[spec.alphabet]
    return "".join(secrets.choice(alphabet) for _ in range(spec.length))


#: Reads one key of another Vault KV path: (path, key) -> value or None.
VaultReader = Callable[[str, str], "str | None"]


def command_env(environ: dict[str, str] | None = None, home: str | None = None) -> dict[str, str]:
    """The environment a command source runs with: PATH /usr/bin:/bin, HOME (of the user it
    runs as), LANG and LC_* only, so no Vault token, kubeconfig, env: value or other variable
    of the bootstrap reaches it."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in env.items() if k == "LANG" or k.startswith("LC_")}
    out["PATH"] = COMMAND_PATH
    if home:
        out["HOME"] = home
    return out


def _home(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


_sealed = False


def seal_process() -> None:
    """Make this process non-dumpable (prctl PR_SET_DUMPABLE 0), once: its memory and
    /proc/<pid>/environ, mem, maps... then belong to root, so a command source (or any other
    process of the same user) cannot read the run's environment, tokens or values there."""
    global _sealed
    if _sealed:
        return
    if not sys.platform.startswith("linux"):
        raise SourceError("command sources run only on Linux (the process is sealed with prctl)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise SourceError(f"cannot make the bootstrap non-dumpable: {os.strerror(err)}")
    _sealed = True


def _may(st: os.stat_result, bits: int) -> bool:
    """Whether user nobody (group nogroup, no other group) has ``bits`` (4 r, 1 x) on a file
    of this status, by its mode bits."""
    if st.st_uid == NOBODY:
        mode = st.st_mode >> 6
    elif st.st_gid == NOBODY:
        mode = st.st_mode >> 3
    else:
        mode = st.st_mode
    return mode & bits == bits


def program_path(program: str, base_dir: Path, as_root: bool | None = None) -> Path:
    """The file a command source's program names: a regular executable file inside the
    catalog's folder ``base_dir``, symlinks and ``..`` resolved (no PATH lookup). Run as
    root (``as_root``, default: this process is), also one user nobody can reach, read and
    execute. Raises SourceError saying what is wrong."""
    problem = program_problem(program)
    if problem is not None:
        raise SourceError(problem)
    base = base_dir.resolve()
    try:
        real = (base / program).resolve(strict=True)
        st = real.stat()
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceError(f"program {program!r}: {reason} in the catalog's folder {base}") from None
    if not is_within(real, base):
        raise SourceError(
            f"program {program!r} resolves to {real}, outside the catalog's folder {base}"
        )
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"program {program!r} ({real}) is not a regular file")
    root = os.geteuid() == 0 if as_root is None else as_root
    if not root:
        if not os.access(real, os.X_OK):
            raise SourceError(f"program {program!r} ({real}) is not executable")
        return real
    for folder in [real.parent, *real.parent.parents]:
        if not _may(folder.stat(), 1):
            raise SourceError(
                f"program {program!r} ({real}): the bootstrap runs as root, so commands run as "
                f"user nobody (uid {NOBODY}), who cannot reach it: {folder} is not searchable "
                "by others; keep the catalog's folder and its programs readable by others "
                "(o+rx)"
            )
    if not _may(st, 5):
        raise SourceError(
            f"program {program!r} ({real}): the bootstrap runs as root, so commands run as "
            f"user nobody (uid {NOBODY}), who cannot read and execute it; make it readable "
            "and executable by others (o+rx)"
        )
    return real


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


def run_command(
    argv: Sequence[str],
    base_dir: Path,
    encoding: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    limit: int = MAX_VALUE_BYTES,
) -> str:
    """A command source's value: its standard output, at most ``limit`` bytes (beyond it:
    an error, no partial value) within ``timeout`` seconds. The program is a file inside the
    catalog's folder (:func:`program_path`), run without a shell, in that folder, in a clean
    environment, in a session of its own, after :func:`seal_process`; as user nobody when
    this process is root."""
    what = f"command {argv_text(argv[:1])}"
    real = program_path(argv[0], base_dir)
    seal_process()
    root = os.geteuid() == 0
    try:
        code, raw = procs.run_bounded(
            list(argv),
            executable=str(real),
            cwd=base_dir.resolve(),
            env=command_env(home=_home(NOBODY if root else os.getuid())),
            as_user=NOBODY if root else None,
            timeout=timeout,
            limit=limit,
        )
    except PermissionError:
        who = f"user nobody (uid {NOBODY})" if root else "this user"
        raise SourceError(f"{what}: PermissionError (not executable by {who})") from None
    except FileNotFoundError:
        raise SourceError(f"{what}: FileNotFoundError (no such program here)") from None
    except procs.RunTimeout:
        raise SourceError(f"{what}: TimeoutExpired after {timeout:g}s") from None
    except procs.OutputTooLarge:
        raise SourceError(f"{what}: printed more than {limit} bytes; nothing kept") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"{what}: {type(exc).__name__}") from None
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
    commands: str = "off",
) -> str:
    """One key's value. ``base_dir`` is the catalog's folder; ``file_roots`` the setting
    source_file_roots; ``commands`` the setting catalog_commands (a command source runs
    only with ``allow``)."""
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
        if commands != "allow":
            raise SourceError(
                f"command {argv_text(source.command)} refused: catalog commands are off (setting "
                "catalog_commands: allow runs them)"
            )
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
