"""HA: three OpenBao nodes on raft; followers join, then unseal; one active, three voters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap import vault
from bootstrap.catalog import load_catalog
from bootstrap.custody import FileCustody
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box, _start
from tests.integration.helpers import run, statuses


@pytest.fixture(scope="module")
def ha_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    yield from _start(tmp_path_factory.mktemp("ha"), ha=True)


def test_ha_bootstrap_unseals_and_joins_every_node(ha_box: Box) -> None:
    assert [h.code for h in ha_box.initial_health] == [501, 501, 501]
    s = ha_box.settings()
    results, _ = run(s, load_catalog(EXAMPLE), ["vault-ready", "vault-config"])
    assert statuses(results) == {"vault-ready": "applied", "vault-config": "applied"}
    nodes = [vault.health(a) for a in ha_box.state.bao_addrs]
    assert all(n.initialized and not n.sealed for n in nodes)
    assert sorted(n.code for n in nodes) == [200, 429, 429]
    record = FileCustody(Path(str(s.custody_file))).load()
    assert record is not None
    active = next(n.addr for n in nodes if n.code == 200)
    peers = vault.raft_peers(active, record.root_token)
    assert len(peers) == 3 and all(p["voter"] for p in peers)
    again, _ = run(s, load_catalog(EXAMPLE), ["vault-ready", "vault-config"])
    assert statuses(again) == {"vault-ready": "no-change", "vault-config": "no-change"}
