"""Reading a small file the user names (a key record, an age identity, a manifest) without
trusting it: regular files only (never a folder, a device such as ``/dev/zero``, a FIFO),
at most ``limit`` bytes, read through one open file (what is checked is what is read), and
every refusal a :class:`BootstrapError` naming the file, never a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bootstrap.core.errors import BootstrapError


def shown(text: str | bytes) -> str:
    """``text`` quoted, with every byte or character outside printable ASCII (terminal
    escapes, control characters, quotes, backslashes) written as an escape, as ``repr``
    does: safe to print on a terminal."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    out = []
    for b in data:
        if 0x20 <= b < 0x7F and b not in (0x27, 0x5C):
            out.append(chr(b))
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        else:
            out.append(f"\\x{b:02x}")
    return "'" + "".join(out) + "'"


def read_regular(
    path: Path,
    limit: int,
    *,
    what: str,
    error: type[BootstrapError] = BootstrapError,
) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; ``error`` (naming
    ``what`` and the file) for a folder, a device, a FIFO, a missing or unreadable file, or a
    larger one. Opened without blocking (a FIFO never hangs the run) and checked through the
    open file, so a file swapped after the check is not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file (a device, FIFO or socket)")
        if st.st_size > limit:
            raise error(
                f"{what} {path} has {st.st_size} bytes, more than the {limit} expected; "
                "refusing to read it"
            )
        chunks = []
        left = limit + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except OSError as exc:
                raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise error(
                f"{what} {path} grew past the {limit} bytes expected while read; refusing it"
            )
        return data
    finally:
        os.close(fd)


def read_regular_text(
    path: Path,
    limit: int,
    *,
    what: str,
    error: type[BootstrapError] = BootstrapError,
) -> str:
    """:func:`read_regular`, as UTF-8 text; ``error`` naming ``what``, the file and the first
    bad byte's offset when it is not."""
    raw = read_regular(path, limit, what=what, error=error)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
