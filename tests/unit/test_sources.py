from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bootstrap.model.catalog import Copy, Generate, Source
from bootstrap.runtime.sources import (
    ALPHABETS,
    MAX_VALUE_BYTES,
    SourceError,
    command_env,
    generate,
    resolve,
)


def no_vault(path: str, key: str) -> str | None:
    return None


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_TEST", "v")
    assert resolve(Source(env="X_TEST"), Path("."), no_vault) == "v"
    monkeypatch.delenv("X_TEST")
    with pytest.raises(SourceError, match="X_TEST is not set"):
        resolve(Source(env="X_TEST"), Path("."), no_vault)


def test_file_relative_to_base(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("secret\n")
    assert resolve(Source(file="f"), tmp_path, no_vault) == "secret"
    with pytest.raises(SourceError, match="missing"):
        resolve(Source(file="missing"), tmp_path, no_vault)


@pytest.mark.parametrize("alphabet", sorted(ALPHABETS))
def test_generate(alphabet: str) -> None:
    a, b = (
        generate(Generate(length=40, alphabet=alphabet)),
        generate(Generate(length=40, alphabet=alphabet)),
    )
    assert len(a) == 40 and set(a) <= set(ALPHABETS[alphabet]) and a != b


def test_copy() -> None:
    src = Source.model_validate({"copy": {"path": "shared/x", "key": "k"}})
    assert src.copy_ == Copy(path="shared/x", key="k")
    assert resolve(src, Path("."), lambda p, k: f"{p}#{k}") == "shared/x#k"
    with pytest.raises(SourceError, match="has no key k"):
        resolve(src, Path("."), no_vault)


def test_prompt_needs_a_terminal() -> None:
    with pytest.raises(SourceError, match="needs a terminal"):
        resolve(Source(prompt="Password"), Path("."), no_vault, interactive=False)


# -- issue 10, item 3: what a source may reach, and what it may give --------------------


def test_file_outside_the_catalog_folder_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "catalog"
    base.mkdir()
    (tmp_path / "outside").write_text("secret-outside\n")
    for name in ("../outside", str(tmp_path / "outside")):
        with pytest.raises(SourceError, match="outside the catalog's folder") as info:
            resolve(Source(file=name), base, no_vault)
        assert "secret-outside" not in str(info.value)


def test_a_symlink_out_of_the_catalog_folder_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "catalog"
    base.mkdir()
    (tmp_path / "outside").write_text("secret-outside\n")
    (base / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(SourceError, match="outside the catalog's folder"):
        resolve(Source(file="link"), base, no_vault)
    (base / "environ").symlink_to("/proc/self/environ")
    with pytest.raises(SourceError, match="under /proc, /sys or /dev"):
        resolve(Source(file="environ"), base, no_vault)


def test_an_allowed_root_opens_files_outside_the_folder(tmp_path: Path) -> None:
    base, shared = tmp_path / "catalog", tmp_path / "shared"
    base.mkdir()
    shared.mkdir()
    (shared / "token").write_text("t0ken\n")
    src = Source(file="../shared/token")
    assert resolve(src, base, no_vault, file_roots=[str(shared)]) == "t0ken"
    with pytest.raises(SourceError, match="outside"):
        resolve(src, base, no_vault, file_roots=[str(tmp_path / "other")])


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block without NONBLOCK
    with pytest.raises(SourceError, match="not a regular file"):
        resolve(Source(file="fifo"), tmp_path, no_vault)
    (tmp_path / "dir").mkdir()
    with pytest.raises(SourceError, match="not a regular file"):
        resolve(Source(file="dir"), tmp_path, no_vault)


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(SourceError, match="larger than 1048576 bytes"):
        resolve(Source(file="big"), tmp_path, no_vault)
    (tmp_path / "fits").write_bytes(b"x" * MAX_VALUE_BYTES)
    assert len(resolve(Source(file="fits"), tmp_path, no_vault)) == MAX_VALUE_BYTES


BINARY = bytes(range(256)) + b"\n"


def test_binary_file_needs_encoding_base64(tmp_path: Path) -> None:
    (tmp_path / "key.p12").write_bytes(BINARY)
    with pytest.raises(SourceError) as info:
        resolve(Source(file="key.p12"), tmp_path, no_vault)
    assert "file key.p12: content is not UTF-8 text" in str(info.value)
    assert "encoding: base64" in str(info.value)
    value = resolve(Source(file="key.p12", encoding="base64"), tmp_path, no_vault)
    assert base64.b64decode(value) == BINARY  # exact bytes, trailing newline included


def test_commands_get_a_fixed_path_their_home_and_the_locale() -> None:
    """Issue 23, finding 1: PATH is /usr/bin:/bin, HOME the home of the user the command runs
    as (never the runner's variable), LANG and LC_* kept; nothing else."""
    environ = {"PATH": "/opt/x", "VAULT_ADDR": "x", "LC_X": "y", "HOME": "/h", "LANG": "C"}
    assert command_env(environ, home="/nonexistent") == {
        "PATH": "/usr/bin:/bin",
        "LC_X": "y",
        "LANG": "C",
        "HOME": "/nonexistent",
    }
    assert "HOME" not in command_env(environ)


def test_an_empty_command_never_crashes(tmp_path: Path) -> None:
    empty = Source.model_construct(command=[])
    with pytest.raises(SourceError, match="names no program"):
        resolve(empty, tmp_path, no_vault)
