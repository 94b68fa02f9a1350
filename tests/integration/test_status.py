"""`status` against the sandbox after the first bootstrap: placeholders, then synced, then
stale when Vault moves on."""

from __future__ import annotations

from typing import Any

from bootstrap.catalog import load_catalog
from bootstrap.kube import Kube
from bootstrap.kv import read_kv
from bootstrap.status import collect
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api


def test_status_follows_the_secret(box: Box, first_run: dict[str, Any]) -> None:
    api = admin_api(box)
    kube = Kube(box.state.kubeconfig)
    cat = load_catalog(EXAMPLE)
    rows = {(r.namespace, r.secret): r for r in collect(cat, kube, api)}
    row = rows[("monitoring", "config")]
    assert row.state == "placeholder" and row.vault_version >= 1
    assert "Deployment/grafana: absent" in row.restarts
    data, version = read_kv(api, "monitoring/config")
    kube.write_secret("monitoring", "config", {k: v.encode() for k, v in data.items()})
    rows = {(r.namespace, r.secret): r for r in collect(cat, kube, api)}
    assert rows[("monitoring", "config")].state == "synced"
    api.write(
        "secret/data/monitoring/config",
        {"options": {"cas": version}, "data": {**data, "alertmanager-webhook": "x2"}},
    )
    rows = {(r.namespace, r.secret): r for r in collect(cat, kube, api)}
    assert rows[("monitoring", "config")].state == "stale"
    assert rows[("monitoring", "config")].vault_version == version + 1
