"""verify on the sandbox. No operator runs here (VSO cannot be built on these machines), so
the test plays the operator's part itself: it copies Vault's values into the Secrets, as VSO
would. What is tested is verify's own behaviour: placeholders count as pending, the nudge of
pending VaultStaticSecrets and its undoing, and the stuck report past the deadline."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bootstrap.catalog import Catalog, parse_catalog
from bootstrap.kube import Kube
from bootstrap.kv import read_kv
from bootstrap.render import VSO_API, syncs
from bootstrap.waits import WaitSettings
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, run, statuses


def catalog(p: str) -> Catalog:
    return parse_catalog(
        f"""
name: {p}
services:
  - name: {p}
    namespace: {p}
    refreshAfter: 45s
    secrets:
      config: {{keys: {{a: {{generate: {{length: 16}}}}}}}}
      credentials: {{keys: {{b: {{generate: {{length: 16}}}}}}}}
""",
        "verify.yaml",
    )


def _prepare(box: Box, cat: Catalog, tmp_path: Path) -> None:
    results, _ = run(
        box.settings(state_dir=tmp_path), cat, ["placeholders", "operator", "populate"]
    )
    assert all(r.status in ("applied", "no-change", "skipped") for r in results), results


def test_stuck_secrets_are_reported_with_reasons(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    cat = catalog(f"vs{unique}")
    _prepare(box, cat, tmp_path)
    s = box.settings(state_dir=tmp_path)
    from bootstrap.phases import run_phases
    from bootstrap.pipeline import RunContext

    ctx = RunContext(s, cat)
    ctx.shared["wait"] = WaitSettings(timeout=2, initial=0.1, maximum=0.3)
    (result,) = [r for r in run_phases(ctx, ["verify"]) if r.name == "verify"]
    assert result.status == "failed"
    error = result.error or ""
    assert "timed out after" in error and "stuck:" in error
    assert f"vs{unique}/config <- vs{unique}/config: placeholder" in error
    assert "VaultStaticSecret status: never reconciled" in error
    # the catalog's settings are back after the nudge
    vss = Kube(box.state.kubeconfig).get(VSO_API, "VaultStaticSecret", "config", f"vs{unique}")
    assert vss is not None and vss["spec"]["refreshAfter"] == "45s"


def test_waits_through_placeholders_until_synced(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vo{unique}"
    cat = catalog(p)
    _prepare(box, cat, tmp_path)
    kube = Kube(box.state.kubeconfig)
    api = admin_api(box)
    seen_refresh: set[str] = set()

    def operator_stand_in() -> None:
        time.sleep(1.0)  # verify is waiting on placeholders meanwhile
        for s in syncs(cat):
            vss = kube.get(VSO_API, "VaultStaticSecret", s.destination, s.namespace)
            seen_refresh.add(str((vss or {}).get("spec", {}).get("refreshAfter")))
            data, _ = read_kv(api, s.kv_path)
            kube.write_secret(s.namespace, s.destination, {k: v.encode() for k, v in data.items()})

    syncer = threading.Thread(target=operator_stand_in)
    syncer.start()
    started = time.monotonic()
    results, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    syncer.join()
    assert statuses(results) == {"verify": "applied"}
    assert time.monotonic() - started >= 1.0
    assert seen_refresh == {"1s"}  # nudged while pending
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None and vss["spec"]["refreshAfter"] == "45s"  # restored
    again, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    assert statuses(again) == {"verify": "no-change"}
