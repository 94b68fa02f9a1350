from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.catalog import Copy, Generate, Source
from bootstrap.sources import ALPHABETS, SourceError, generate, resolve


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
