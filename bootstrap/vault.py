"""The Vault/OpenBao client: health as data, initialization, unseal, raft membership.
Every call goes through hvac or requests here; errors become product errors that never carry
tokens, keys or secret values. Works the same against HashiCorp Vault (same HTTP API)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions
import requests

from bootstrap.errors import VaultStateError

log = logging.getLogger(__name__)

#: /v1/sys/health status codes (Vault and OpenBao agree).
HEALTH_STATES = {
    200: "active",
    429: "standby",
    472: "DR secondary",
    473: "performance standby",
    501: "not initialized",
    503: "sealed",
}


@dataclass(frozen=True)
class Health:
    addr: str
    code: int | None  # None: no answer (refused, reset, timeout)
    state: str
    initialized: bool = False
    sealed: bool = True
    version: str = ""

    @property
    def answering(self) -> bool:
        return self.code in HEALTH_STATES

    def __str__(self) -> str:
        return f"{self.addr}: {self.state}"


class VaultRequestError(VaultStateError):
    """Vault refused a request. Carries the HTTP status; retried only when transient."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


def health(addr: str, timeout: float = 3.0) -> Health:
    """Read /v1/sys/health without raising for the documented non-200 codes."""
    try:
        resp = requests.get(
            f"{addr.rstrip('/')}/v1/sys/health", timeout=timeout, params={"perfstandbyok": "false"}
        )
    except requests.RequestException as exc:
        return Health(addr, None, f"no answer ({type(exc).__name__})")
    try:
        body = resp.json()
    except ValueError:
        body = {}
    state = HEALTH_STATES.get(resp.status_code, f"HTTP {resp.status_code}")
    return Health(
        addr,
        resp.status_code,
        state,
        bool(body.get("initialized")),
        bool(body.get("sealed", True)),
        str(body.get("version", "")),
    )


@contextmanager
def translated(what: str) -> Iterator[None]:
    """hvac/requests errors -> VaultRequestError (status kept, message sanitised)."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        errors = getattr(exc, "errors", None) or []
        detail = "; ".join(str(e) for e in errors)[:300] if isinstance(errors, list) else ""
        status = _status_of(exc)
        raise VaultRequestError(
            f"{what}: HTTP {status}: {detail or type(exc).__name__}", status
        ) from None
    except requests.RequestException as exc:
        raise VaultRequestError(f"{what}: no answer ({type(exc).__name__})", None) from None


def _status_of(exc: hvac.exceptions.VaultError) -> int | None:
    mapping = {
        hvac.exceptions.InvalidRequest: 400,
        hvac.exceptions.Unauthorized: 401,
        hvac.exceptions.Forbidden: 403,
        hvac.exceptions.InvalidPath: 404,
        hvac.exceptions.RateLimitExceeded: 429,
        hvac.exceptions.InternalServerError: 500,
        hvac.exceptions.VaultNotInitialized: 501,
        hvac.exceptions.VaultDown: 503,
        hvac.exceptions.BadGateway: 502,
    }
    for cls, code in mapping.items():
        if isinstance(exc, cls):
            return code
    return None


def client(addr: str, token: str | None = None) -> hvac.Client:
    c = hvac.Client(url=addr, timeout=10)
    if token:
        c.token = token
    return c


def initialize(
    addr: str, shares: int, threshold: int, pgp_keys: list[str] | None = None
) -> dict[str, Any]:
    """Initialize; returns the raw response (keys and root token). The caller must put it
    in custody before doing anything else."""
    with translated(f"initializing {addr}"):
        resp = client(addr).sys.initialize(
            secret_shares=shares, secret_threshold=threshold, pgp_keys=pgp_keys
        )
    return dict(resp)


def submit_unseal_keys(addr: str, keys: list[str]) -> Health:
    """Submit keys until the node unseals; a node already unsealed is left alone."""
    h = health(addr)
    if h.answering and not h.sealed:
        return h
    c = client(addr)
    for key in keys:
        with translated(f"unsealing {addr}"):
            status = c.sys.submit_unseal_key(key=key)
        if not status.get("sealed", True):
            break
    return health(addr)


def join_raft(addr: str, leader_addr: str) -> bool:
    """Ask a follower to join the leader's raft cluster. True if it joined."""
    with translated(f"joining {addr} to {leader_addr}"):
        resp = client(addr).sys.join_raft_cluster(leader_api_addr=leader_addr)
    data = resp.json() if hasattr(resp, "json") else dict(resp)
    return bool(data.get("joined"))


def raft_peers(addr: str, token: str) -> list[dict[str, Any]]:
    with translated(f"reading raft configuration from {addr}"):
        resp = client(addr, token).sys.read_raft_config()
    return list(resp["data"]["config"]["servers"])


class Api:
    """A token-bearing client for configuration work, with a thread-local session each so
    reads and writes can run in parallel."""

    def __init__(self, addr: str, token: str, workers: int = 8) -> None:
        import threading

        self.addr = addr
        self._token = token
        self._local = threading.local()
        self._lock = threading.Lock()
        self.workers = workers
        self.writes = 0

    def _count_write(self) -> None:
        with self._lock:
            self.writes += 1

    def _client(self) -> hvac.Client:
        c = getattr(self._local, "client", None)
        if c is None:
            c = client(self.addr, self._token)
            self._local.client = c
        return c

    def read(self, path: str) -> dict[str, Any] | None:
        """GET /v1/<path>; None when it does not exist."""
        with translated(f"reading {path}"):
            try:
                resp = self._client().adapter.get(f"/v1/{path}")
            except hvac.exceptions.InvalidPath:
                return None
        return resp if isinstance(resp, dict) else None

    def list_keys(self, path: str) -> list[str]:
        with translated(f"listing {path}"):
            try:
                resp = self._client().adapter.list(f"/v1/{path}")
            except hvac.exceptions.InvalidPath:
                return []
        if not isinstance(resp, dict):
            return []
        return list(resp.get("data", {}).get("keys", []))

    def write(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        self._count_write()
        with translated(f"writing {path}"):
            resp = self._client().adapter.post(f"/v1/{path}", json=data)
        return resp if isinstance(resp, dict) else None

    def put(self, path: str, data: dict[str, Any]) -> None:
        self._count_write()
        with translated(f"writing {path}"):
            self._client().adapter.put(f"/v1/{path}", json=data)

    def delete(self, path: str) -> None:
        self._count_write()
        with translated(f"deleting {path}"):
            self._client().adapter.delete(f"/v1/{path}")

    def parallel(self, fn: Any, items: list[Any]) -> list[Any]:
        """Map fn over items on the worker pool, preserving order; first error raises."""
        if len(items) < 4 or self.workers < 2:
            return [fn(i) for i in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, items))
