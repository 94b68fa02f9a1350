from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bootstrap.model.catalog import Copy, Generate, Source, load_catalog
from bootstrap.model.domain import kv_secrets
from bootstrap.runtime.sources import (
    ALPHABETS,
    MAX_VALUE_BYTES,
    SourceError,
    command_env,
    generate,
    resolve,
    run_command,
)
from tests.conftest import EXAMPLE


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


def test_command(tmp_path: Path) -> None:
    assert resolve(Source(command=["printf", "abc\n"]), tmp_path, no_vault) == "abc"
    with pytest.raises(SourceError, match="exited 1"):
        resolve(Source(command=["false"]), tmp_path, no_vault)
    with pytest.raises(SourceError, match="FileNotFoundError"):
        resolve(Source(command=["no-such-command-here"]), tmp_path, no_vault)


@pytest.mark.parametrize("alphabet", sorted(ALPHABETS))
def test_generate(alphabet: str) -> None:
    a, b = (
        generate(Generate(length=40, alphabet=alphabet)),
        generate(  # type: ignore[arg-type]
            Generate(length=40, alphabet=alphabet)
        ),
    )  # type: ignore[arg-type]
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


def test_binary_command_output_needs_encoding_base64(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(BINARY)
    with pytest.raises(SourceError, match="command 'cat': content is not UTF-8 text"):
        resolve(Source(command=["cat", "blob"]), tmp_path, no_vault)
    value = resolve(Source(command=["cat", "blob"], encoding="base64"), tmp_path, no_vault)
    assert base64.b64decode(value) == BINARY


def test_commands_get_a_clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-for-commands")
    monkeypatch.setenv("BAO_TOKEN", "s.not-for-commands")
    monkeypatch.setenv("KUBECONFIG", "/tmp/kubeconfig-not-for-commands")
    monkeypatch.setenv("INVOKE_BOOTSTRAP_CUSTODY_FILE", "/tmp/custody")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    printed = resolve(Source(command=["env"]), tmp_path, no_vault)
    names = {line.split("=", 1)[0] for line in printed.splitlines()}
    assert "not-for-commands" not in printed
    assert names <= {"PATH", "HOME", "LANG", "LC_ALL", "PWD"} | {
        n for n in names if n.startswith("LC_")
    }
    assert "PATH" in names and "LC_ALL" in names
    assert command_env({"PATH": "/bin", "VAULT_ADDR": "x", "LC_X": "y"}) == {
        "PATH": "/bin",
        "LC_X": "y",
    }


def test_command_output_over_the_cap_is_an_error_without_a_partial_value(
    tmp_path: Path,
) -> None:
    # 'yes' would print forever: the cap stops it, and nothing of its output is kept.
    with pytest.raises(SourceError, match="printed more than 1048576 bytes; nothing kept"):
        resolve(Source(command=["yes", "y"]), tmp_path, no_vault)
    with pytest.raises(SourceError, match="printed more than 10 bytes"):
        run_command(["printf", "0123456789a"], tmp_path, limit=10)
    assert run_command(["printf", "0123456789"], tmp_path, limit=10) == "0123456789"


def test_a_command_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"TimeoutExpired after 0\.2s"):
        run_command(["sleep", "30"], tmp_path, timeout=0.2)
    # A command that closes its output but keeps running is stopped too.
    with pytest.raises(SourceError, match="TimeoutExpired"):
        run_command(["sh", "-c", "exec >&-; sleep 30"], tmp_path, timeout=0.2)


def test_an_empty_command_never_crashes(tmp_path: Path) -> None:
    empty = Source.model_construct(command=[])
    with pytest.raises(SourceError, match="names no program"):
        resolve(empty, tmp_path, no_vault)


def test_the_example_catalogs_sources_resolve_with_the_demo_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the README's first command does: env sources from examples/demo.env, file and
    command sources beside the catalog, commands in their clean environment."""
    demo = {}
    for line in (EXAMPLE.parent / "examples" / "demo.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            demo[name] = value.strip('"')
    for name in list(os.environ):
        if name not in ("PATH", "HOME", "LANG") and not name.startswith("LC_"):
            monkeypatch.delenv(name)
    for name, value in demo.items():
        monkeypatch.setenv(name, value)
    cat = load_catalog(EXAMPLE)
    resolved = 0
    for _, keys in kv_secrets(cat):
        for src in keys.values():
            if src is not None and src.generate is None:
                assert resolve(src, EXAMPLE.parent, no_vault)
                resolved += 1
    assert resolved >= 10
