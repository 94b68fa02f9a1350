"""Limit lines for the whole-run benchmarks (issue 25, item 4): how fast the systems under a
phase take the same work from a bare parallel loop, on the same sandbox, right after the
product's runs. A phase within a small factor of its limit has little left to gain.

- ``placeholders``: the API server creating the same number of Opaque Secrets (POST, no
  OpenTofu), in a namespace of its own;
- ``operator``: the API server taking the same number of server-side applies (ConfigMaps of
  about the size of a VaultStaticSecret, PATCH application/apply-patch+yaml);
- ``populate``: OpenBao taking the same number of KV v2 writes (PUT ``secret/data/...``) on
  keep-alive connections, with the bootstrap-admin token.

Each loop runs ``THREADS`` requests at once (the product's own bound for its fan-outs)
through the Kubernetes client's REST layer or ``http.client``, and fails loudly on any answer
above 299.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from bootstrap.clients.kube import Kube
from bootstrap.core.parallel import in_parallel
from bootstrap.runtime.credentials import resolve_token
from bootstrap.runtime.custody import FileCustody
from bootstrap.sandbox.state import SandboxState

#: Requests at once in every limit loop.
THREADS = 16
#: The namespace and the KV prefix the loops write into (never one the catalog uses).
PROBE = "limit-probe"


def _fan_out(items: list[int], threads: int, work: Callable[[int], None]) -> float:
    """Seconds for ``work`` over ``items`` on ``threads`` threads (the product's own
    :func:`in_parallel`); the first error stops the benchmark."""
    started = time.monotonic()
    try:
        in_parallel(work, items, threads)
    except Exception as exc:
        raise SystemExit(f"a limit loop was refused: {exc}") from None
    return time.monotonic() - started


def api_creates(kube: Kube, count: int, threads: int = THREADS) -> float:
    """Seconds for the API server to create ``count`` Opaque Secrets (one key each)."""
    kube.ensure_namespace(PROBE)
    path = f"/api/v1/namespaces/{PROBE}/secrets"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    def create(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"create-{i}", "labels": {"limit": "probe"}},
            "type": "Opaque",
            "data": {"a": "UExBQ0VIT0xERVI="},
        }
        kube.raw("POST", path, headers, body)

    return _fan_out(list(range(count)), threads, create)


def api_applies(kube: Kube, count: int, threads: int = THREADS) -> float:
    """Seconds for the API server to take ``count`` server-side applies of new objects."""
    kube.ensure_namespace(PROBE)
    headers = {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"}

    def apply(i: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"apply-{i}", "namespace": PROBE, "labels": {"limit": "probe"}},
            "data": {
                "mount": "secret",
                "type": "kv-v2",
                "path": f"svc{i}/config",
                "refreshAfter": "30s",
                "vaultAuthRef": "svc",
                "destination": f"svc{i}-config",
            },
        }
        path = (
            f"/api/v1/namespaces/{PROBE}/configmaps/apply-{i}?fieldManager=limit-probe&force=true"
        )
        kube.raw("PATCH", path, headers, body)

    return _fan_out(list(range(count)), threads, apply)


def vault_writes(addr: str, custody_file: Path, count: int, threads: int = THREADS) -> float:
    """Seconds for OpenBao to take ``count`` KV v2 writes (a 24-character value each)."""
    token, _ = resolve_token(FileCustody(custody_file))
    parts = urllib.parse.urlsplit(addr)
    headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
    local = threading.local()

    def write(i: int) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(
                parts.hostname or "127.0.0.1", parts.port or 80, timeout=60
            )
        body = json.dumps({"data": {"a": f"{i:024d}"}})
        conn.request("PUT", f"/v1/secret/data/{PROBE}/w{i}", body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status > 299:
            raise RuntimeError(f"PUT secret/data/{PROBE}/w{i}: HTTP {resp.status}")

    return _fan_out(list(range(count)), threads, write)


#: Per phase with a limit line: (what the bare loop does, how many for n services).
LIMITS: dict[str, tuple[str, Callable[[int], int]]] = {
    "placeholders": ("API server: Secret creates", lambda n: 5 * n),
    "operator": ("API server: server-side applies", lambda n: 7 * n),
    "populate": ("OpenBao: KV v2 writes", lambda n: 3 * n + 10),
}


def measure_limits(kube: Kube, box: SandboxState, box_dir: Path, n: int) -> dict[str, float]:
    """Seconds of each phase's limit loop (benchmarks/limits.py) for n services: as many
    Secrets as the placeholders phase creates, applies as the operator phase makes (a
    ServiceAccount, a VaultAuth and five VaultStaticSecrets per service), KV writes as
    populate makes (three per service and the ten shared)."""
    custody = box_dir / "custody" / "vault-init.json"
    return {
        "placeholders": api_creates(kube, LIMITS["placeholders"][1](n)),
        "operator": api_applies(kube, LIMITS["operator"][1](n)),
        "populate": vault_writes(box.bao_addrs[0], custody, LIMITS["populate"][1](n)),
    }
