"""Populate against the real OpenBao: all sources resolved before any write, check-and-set
writes, real values kept, generated values generated once, rotation on request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients import vault
from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import Catalog, parse_catalog
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, run, statuses


@pytest.fixture
def api(box: Box, first_run: dict[str, Any]) -> vault.Api:
    return admin_api(box)


def catalog(p: str, env_a: str, env_b: str) -> Catalog:
    return parse_catalog(
        f"""
name: {p}
services:
  - name: {p}
    namespace: {p}
    secrets:
      config:
        keys:
          a: {{env: {env_a}}}
          b: {{env: {env_b}}}
          token: {{generate: {{length: 20, alphabet: hex}}}}
          flags: {{file: flags.txt}}
          manual: null
""",
        str(Path.cwd() / "populate.yaml"),
    )


def test_nothing_is_written_until_every_source_resolves(
    box: Box, api: vault.Api, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = f"po{unique}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.txt").write_text("on\n")
    monkeypatch.setenv(f"A_{unique}", "alpha-value")
    cat = catalog(p, f"A_{unique}", f"B_{unique}")
    s = box.settings(catalog=tmp_path / "populate.yaml")
    results, _ = run(s, cat, ["populate"])
    (result,) = [r for r in results if r.name == "populate"]
    assert result.status == "failed"
    assert f"environment variable B_{unique} is not set" in (result.error or "")
    assert "alpha-value" not in (result.error or "")
    assert read_kv(api, f"{p}/config") == ({}, 0)  # nothing half-written

    monkeypatch.setenv(f"B_{unique}", "beta-value")
    results, _ = run(s, cat, ["populate"])
    assert statuses(results) == {"populate": "applied"}
    data, version = read_kv(api, f"{p}/config")
    assert version == 1
    assert data["a"] == "alpha-value" and data["b"] == "beta-value" and data["flags"] == "on"
    assert len(data["token"]) == 20 and set(data["token"]) <= set("0123456789abcdef")
    assert "manual" not in data
    reasons = [a.reason for r in results for a in r.actions]
    assert any("no source for manual" in r for r in reasons)

    # A re-run (after a crash, or later) keeps every real value and the generated one.
    monkeypatch.setenv(f"A_{unique}", "changed-in-the-environment")
    again, _ = run(s, cat, ["populate"])
    assert statuses(again) == {"populate": "no-change"}
    assert read_kv(api, f"{p}/config") == (data, 1)

    # A placeholder already in Vault counts as missing and gets the real value.
    api.write(
        f"secret/data/{p}/config",
        {"options": {"cas": 1}, "data": {**data, "b": f"bootstrap-placeholder:{p}/config/b"}},
    )
    run(s, cat, ["populate"])
    assert read_kv(api, f"{p}/config")[0]["b"] == "beta-value"

    # --rotate replaces real values from their sources and regenerates generated ones.
    rotated, _ = run(
        box.settings(catalog=tmp_path / "populate.yaml", rotate=True), cat, ["populate"]
    )
    assert statuses(rotated) == {"populate": "applied"}
    new, version = read_kv(api, f"{p}/config")
    assert new["a"] == "changed-in-the-environment" and new["token"] != data["token"]
    assert version == 4


def test_a_placeholder_is_never_written_into_vault(
    box: Box, api: vault.Api, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = f"pp{unique}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.txt").write_text("x")
    monkeypatch.setenv(f"A_{unique}", f"bootstrap-placeholder:{p}/config/a")
    monkeypatch.setenv(f"B_{unique}", "b")
    results, _ = run(
        box.settings(catalog=tmp_path / "populate.yaml"),
        catalog(p, f"A_{unique}", f"B_{unique}"),
        ["populate"],
    )
    (result,) = [r for r in results if r.name == "populate"]
    assert result.status == "failed" and "refusing to write it" in (result.error or "")
    assert read_kv(api, f"{p}/config") == ({}, 0)
