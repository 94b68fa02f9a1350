"""verify.rotation with the real operator, through the library: the round trip on a
StatefulSet and a DaemonSet target (on VSO 1.4.1 and v0.1.0), a clear refusal when a restart
target is missing, and the original value and the catalog's settings restored when the
restart never comes (a paused Deployment, which the operator refuses to restart). The CLI on
the example catalog is in test_operator_sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.commands.rotation import rotation_test
from bootstrap.core.errors import UsageError, WaitTimeout
from bootstrap.core.waits import WaitSettings
from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import VSO_API
from bootstrap.runtime import vso
from tests.integration.conftest import Box, Core
from tests.integration.helpers import (
    admin_api,
    events_of,
    generated_catalog,
    revision,
    run,
    verified,
    wait_until,
    workload,
)

FAST = WaitSettings(timeout=60, initial=0.1, maximum=0.5)


def catalog(p: str, kind: str, name: str) -> Catalog:
    return generated_catalog(p, {"config": ["a"]}, restart=[(kind, name)])


def _setup(box: Box, p: str, kind: str, name: str, tmp_path: Path) -> tuple[Catalog, Kube, Any]:
    """The test's catalog ``p`` (restart target ``kind``/``name``), bootstrapped and verified."""
    cat = catalog(p, kind, name)
    results, _ = run(
        box.settings(state_dir=tmp_path),
        cat,
        ["placeholders", "vault-config", "operator", "populate", "verify"],
    )
    assert verified(results), results
    return cat, Kube(box.state.kubeconfig), admin_api(box)


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_round_trip_rolls_out_twice(core: Core, unique: str, tmp_path: Path, kind: str) -> None:
    box = core.box
    p = f"r{kind[0].lower()}{unique}"
    cat, kube, api = _setup(box, p, kind, "app", tmp_path)
    workload(kube, p, kind, "app")
    first = wait_until(lambda: revision(kube, p, kind, "app"), f"{kind} revision")
    original, version = read_kv(api, f"{p}/config")
    result = rotation_test(cat, f"{p}/config", kube, api, FAST, say=lambda m: None)
    revisions = result.revisions[f"{kind}/app"]
    assert revisions[0] == first and len(set(revisions)) == 3, revisions
    assert revision(kube, p, kind, "app") == revisions[2]
    data, now = read_kv(api, f"{p}/config")
    assert data == original and now == version + 2
    assert vso.classify(original, kube.read_secret(p, "config")) == "synced"
    reasons = [e.reason for e in events_of(kube, p, "config")]
    assert "RolloutRestartTriggered" in reasons
    # v0.1.0 calls a sync with restarts SecretRotated; 1.4.1 calls every sync SecretSynced
    assert ("SecretRotated" in reasons) is (not box.current_operator), reasons


def test_a_missing_restart_target_is_refused_before_anything_changes(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"rm{unique}"
    cat, kube, api = _setup(box, p, "Deployment", "not-deployed", tmp_path)
    _, version = read_kv(api, f"{p}/config")
    with pytest.raises(UsageError, match="Deployment/not-deployed do not exist"):
        rotation_test(cat, f"{p}/config", kube, api, FAST, say=lambda m: None)
    assert read_kv(api, f"{p}/config")[1] == version  # nothing written


def test_the_original_comes_back_when_no_restart_comes(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"rp{unique}"
    cat, kube, api = _setup(box, p, "Deployment", "paused", tmp_path)
    workload(kube, p, "Deployment", "paused", paused=True)
    original, version = read_kv(api, f"{p}/config")
    with pytest.raises(WaitTimeout, match="restart annotation unchanged on Deployment/paused"):
        rotation_test(
            cat,
            f"{p}/config",
            kube,
            api,
            WaitSettings(timeout=8, initial=0.1, maximum=0.5),
            say=lambda m: None,
        )
    data, now = read_kv(api, f"{p}/config")
    assert data == original and now == version + 2
    assert any(e.reason == "RolloutRestartFailed" for e in events_of(kube, p, "config"))
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None and vss["spec"]["refreshAfter"] == "30s"
