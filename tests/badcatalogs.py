"""The corpus of catalogs (tests/corpus): bad ones, each starting with ``# expect: <part of the
message>`` and ``# at: <line>`` (``-`` where the parser cannot give a line), and good ones;
shared by the in-process tests (tests/unit/test_corpus.py) and the CLI's (tests/integration)."""

from __future__ import annotations

from pathlib import Path

from bootstrap.model.catalog import MAX_CATALOG_BYTES

CORPUS = Path(__file__).resolve().parent / "corpus"
BAD = sorted((CORPUS / "bad").glob("*.yaml"))
GOOD = sorted((CORPUS / "good").glob("*.yaml"))


def bad(name: str) -> Path:
    """The bad catalog ``NNN-<name>.yaml``."""
    (path,) = [p for p in BAD if p.stem.split("-", 1)[1] == name]
    return path


def header(path: Path) -> tuple[str, str]:
    """(expected part of the message, line) from a bad catalog's first two lines."""
    first, second = path.read_bytes().split(b"\n", 2)[:2]
    expect = first.decode().removeprefix("# expect: ")
    at = second.decode().removeprefix("# at: ")
    assert first.decode().startswith("# expect: ") and second.decode().startswith("# at: ")
    return expect, at


def assert_refused(message: str, path: Path, expect: str, at: str) -> None:
    assert expect in message, f"{expect!r} not in {message!r}"
    location = f"{path}:{at}: " if at != "-" else f"{path}: "
    assert location in message, f"{location!r} not in {message!r}"
    assert "Traceback" not in message


#: what a catalog over the size cap is refused with, and where (no line)
TOO_BIG = ("at most 1048576 bytes (1 MiB)", "-")


def write_two_megabytes(path: Path) -> Path:
    """A 2 MB catalog that would be valid if it were smaller (generated, not committed)."""
    service = "  - name: s{0}\n    namespace: n{0}\n    secrets:\n      c: {{keys: {{a: null}}}}\n"
    parts = ["services:\n"]
    size, i = 0, 0
    while size < 2 * MAX_CATALOG_BYTES:
        parts.append(service.format(i))
        size += len(parts[-1])
        i += 1
    path.write_text("".join(parts), encoding="utf-8")
    return path
