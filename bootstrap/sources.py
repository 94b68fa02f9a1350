"""Where real values come from: environment, file, command output, generated once, a copy
of another Vault path, or a hidden prompt. Resolution never logs or echoes a value, and a
failure names the source, never its value."""

from __future__ import annotations

import getpass
import os
import secrets
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bootstrap.catalog import Generate, Source

ALPHABETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    "ascii": string.ascii_letters + string.digits + "!#%+,-./:=@^_~",
}


class SourceError(Exception):
    """A source could not give its value (the message never holds a value)."""


def generate(spec: Generate) -> str:
    alphabet = ALPHABETS[spec.alphabet]
    return "".join(secrets.choice(alphabet) for _ in range(spec.length))


#: Reads one key of another Vault KV path: (path, key) -> value or None.
VaultReader = Callable[[str, str], "str | None"]


def resolve(
    source: Source, base_dir: Path, read_vault: VaultReader, interactive: bool | None = None
) -> str:
    kind = source.kind
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None or value == "":
            raise SourceError(f"environment variable {source.env} is not set")
        return value
    if source.file is not None:
        path = Path(source.file)
        path = path if path.is_absolute() else base_dir / path
        try:
            return path.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise SourceError(f"file {path}: {exc.strerror or type(exc).__name__}") from None
    if source.command is not None:
        try:
            proc = subprocess.run(
                source.command,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=base_dir,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"command {source.command[0]!r}: {type(exc).__name__}") from None
        if proc.returncode != 0:
            raise SourceError(f"command {source.command[0]!r} exited {proc.returncode}")
        value = proc.stdout.rstrip("\n")
        if not value:
            raise SourceError(f"command {source.command[0]!r} printed nothing")
        return value
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
