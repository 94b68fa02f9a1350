"""What verify reads from the cluster for a state: the Secrets of every namespace, and the
operator's events (thousands after a bootstrap) only where a Secret is not synced."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from bootstrap.clients.kv import KvValue
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.domain import syncs
from bootstrap.phases import verify

CATALOG = """
services:
  - name: web
    namespace: apps
    secrets:
      config: {keys: {a: null}}
  - name: api
    namespace: backend
    secrets:
      config: {keys: {b: null}}
  - name: gone
    namespace: nowhere
    secrets:
      config: {keys: {c: null}}
"""


class Cluster:
    def __init__(self, secrets: dict[str, dict[str, dict[str, bytes]]]) -> None:
        self.secrets = secrets
        self.events_listed: list[str] = []
        self.lock = threading.Lock()

    def namespaces(self) -> set[str]:
        return {"apps", "backend"}

    def list_secrets(self, namespace: str) -> dict[str, dict[str, bytes]]:
        return self.secrets.get(namespace, {})

    def list_events(self, namespace: str, kind: str) -> list[Any]:
        with self.lock:
            self.events_listed.append(namespace)
        return []


def test_events_are_read_only_where_a_secret_is_not_synced() -> None:
    wanted = syncs(parse_catalog(CATALOG, "catalog.yaml"))
    vault_data = {
        "web/config": KvValue({"a": "1"}, 1, None),
        "api/config": KvValue({"b": "2"}, 1, None),
        "gone/config": KvValue({"c": "3"}, 1, None),
    }
    cluster = Cluster({"apps": {"config": {"a": b"1"}}, "backend": {"config": {"b": b"old"}}})
    target: Any = SimpleNamespace(kube=cluster)
    states, _ = verify._states(target, wanted, vault_data)
    assert [(s.sync.namespace, s.state) for s in states] == [
        ("apps", "synced"),
        ("backend", "stale"),
        ("nowhere", "missing"),
    ]
    assert cluster.events_listed == ["backend"]
