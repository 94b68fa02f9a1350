"""Command sources run real programs: their output (UTF-8, or base64 for bytes), exit codes,
a clean environment without tokens or the kubeconfig, the output cap and the timeout; and the
example catalog's sources with the demo values, as the README's first command resolves them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from bootstrap.model.catalog import Source, load_catalog
from bootstrap.model.domain import kv_secrets
from bootstrap.runtime.sources import SourceError, resolve, run_command
from tests.conftest import EXAMPLE
from tests.integration.helpers import demo_env

BINARY = bytes(range(256)) + b"\n"


def no_vault(path: str, key: str) -> str | None:
    return None


def test_command(tmp_path: Path) -> None:
    assert resolve(Source(command=["printf", "abc\n"]), tmp_path, no_vault) == "abc"
    with pytest.raises(SourceError, match="exited 1"):
        resolve(Source(command=["false"]), tmp_path, no_vault)
    with pytest.raises(SourceError, match="FileNotFoundError"):
        resolve(Source(command=["no-such-command-here"]), tmp_path, no_vault)


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


def test_the_example_catalogs_sources_resolve_with_the_demo_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the README's first command does: env sources from examples/demo.env, file and
    command sources beside the catalog, commands in their clean environment."""
    for name in list(os.environ):
        if name not in ("PATH", "HOME", "LANG") and not name.startswith("LC_"):
            monkeypatch.delenv(name)
    for name, value in demo_env().items():
        monkeypatch.setenv(name, value)
    cat = load_catalog(EXAMPLE)
    resolved = 0
    for _, keys in kv_secrets(cat):
        for src in keys.values():
            if src is not None and src.generate is None:
                assert resolve(src, EXAMPLE.parent, no_vault)
                resolved += 1
    assert resolved >= 10
