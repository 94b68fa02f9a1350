"""Populate against the real OpenBao: all sources resolved before any write, check-and-set
writes, real values kept, generated values generated once, rotation on request."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients import vault
from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.settings import Settings
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, run, service_catalog_text, statuses


@pytest.fixture
def api(box: Box, first_run: dict[str, Any]) -> vault.Api:
    return admin_api(box)


def scene(
    box: Box, p: str, folder: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[Catalog, Settings]:
    """The test's catalog ``p`` in ``folder`` (the working folder), a file source beside it, and
    the environment its env sources read: A_<p> and B_<p>, each set when given in ``env``."""
    monkeypatch.chdir(folder)
    (folder / "flags.txt").write_text("on\n")
    for name, value in env.items():
        monkeypatch.setenv(f"{name}_{p}", value)
    keys = {
        "a": f"{{env: A_{p}}}",
        "b": f"{{env: B_{p}}}",
        "token": "{generate: {length: 20, alphabet: hex}}",
        "flags": "{file: flags.txt}",
        "manual": "null",
    }
    path = folder / "populate.yaml"
    path.write_text(service_catalog_text(p, {"config": keys}))
    return parse_catalog(path.read_text(), str(path)), box.settings(catalog=path)


def test_nothing_is_written_until_every_source_resolves(
    box: Box, api: vault.Api, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = f"po{unique}"
    cat, s = scene(box, p, tmp_path, monkeypatch, A="alpha-value")
    results, _ = run(s, cat, ["populate"])
    (result,) = [r for r in results if r.name == "populate"]
    assert result.status == "failed"
    assert f"environment variable B_{p} is not set" in (result.error or "")
    assert "alpha-value" not in (result.error or "")
    assert read_kv(api, f"{p}/config") == ({}, 0)  # nothing half-written

    monkeypatch.setenv(f"B_{p}", "beta-value")
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
    monkeypatch.setenv(f"A_{p}", "changed-in-the-environment")
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
    rotated, _ = run(replace(s, rotate=True), cat, ["populate"])
    assert statuses(rotated) == {"populate": "applied"}
    new, version = read_kv(api, f"{p}/config")
    assert new["a"] == "changed-in-the-environment" and new["token"] != data["token"]
    assert version == 4


def test_a_placeholder_is_never_written_into_vault(
    box: Box, api: vault.Api, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = f"pp{unique}"
    cat, s = scene(box, p, tmp_path, monkeypatch, A=f"bootstrap-placeholder:{p}/config/a", B="b")
    results, _ = run(s, cat, ["populate"])
    (result,) = [r for r in results if r.name == "populate"]
    assert result.status == "failed" and "refusing to write it" in (result.error or "")
    assert read_kv(api, f"{p}/config") == ({}, 0)
