"""`status` against the real operator: synced after verify, stale when Vault moves on and
the operator has not re-read yet (refreshAfter 1h here), synced again once verify nudged it;
placeholders and missing Secrets before the operator phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.commands.status import collect
from tests.integration.conftest import Box
from tests.integration.helpers import (
    admin_api,
    generated_catalog,
    run,
    statuses,
    verified,
    workload,
)


def test_status_follows_the_secret(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"st{unique}"
    cat = generated_catalog(
        p, {"config": ["a"], "later": ["b"]}, refresh="1h", restart=[("Deployment", "web")]
    )
    s = box.settings(state_dir=tmp_path)
    api = admin_api(box)
    kube = Kube(box.state.kubeconfig)
    run(s, cat, ["placeholders", "vault-config"])

    def rows() -> dict[str, Any]:
        return {r.secret: r for r in collect(cat, kube, api)}

    before = rows()
    assert before["config"].state == "placeholder"
    assert before["config"].detail == "no value in Vault yet"
    assert before["config"].restarts == "Deployment/web: absent"
    results, _ = run(s, cat, ["operator", "populate", "verify"])
    assert verified(results)
    workload(kube, p, "Deployment", "web")
    now = rows()
    assert now["config"].state == "synced" and now["config"].vault_version == 1
    assert "SecretSynced" in now["config"].last_sync or "SecretSync" in now["config"].last_sync
    assert now["config"].restarts.startswith("Deployment/web: never")

    _, version = read_kv(api, f"{p}/config")
    api.write(f"secret/data/{p}/config", {"options": {"cas": version}, "data": {"a": "moved"}})
    moved = rows()
    assert moved["config"].state == "stale" and moved["config"].vault_version == version + 1
    assert moved["later"].state == "synced"
    results, _ = run(s, cat, ["verify"])
    assert statuses(results) == {"verify": "applied"}, [r.error for r in results if r.error]
    assert rows()["config"].state == "synced"
