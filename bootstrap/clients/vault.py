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

from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError

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


def active_addr(addrs: list[str]) -> str:
    """The node that answers as active, else the first one."""
    for addr in addrs:
        if health(addr).code == 200:
            return addr
    return addrs[0]


#: Initializing answers once the keys are made and the storage (raft included) is written:
#: seconds on a busy machine (5-8 s for raft on two cores). A request that times out may still
#: initialize Vault, and its keys, sent in that answer only, would be lost: wait long enough.
INIT_TIMEOUT = 120.0


def client(addr: str, token: str | None = None, timeout: float = 10) -> hvac.Client:
    c = hvac.Client(url=addr, timeout=timeout)
    if token:
        c.token = token
    return c


def initialize(
    addr: str, shares: int, threshold: int, pgp_keys: list[str] | None = None
) -> dict[str, Any]:
    """Initialize; returns the raw response (keys and root token). The caller must put it
    in custody before doing anything else."""
    with translated(f"initializing {addr}"):
        resp = client(addr, timeout=INIT_TIMEOUT).sys.initialize(
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
        failpoints.point("vault-ready:unseal-key")
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
    """A token-bearing client for configuration work. Keep-alive HTTP/1.1 connections, one
    per worker thread (stdlib http.client: about half the per-request cost of requests), so
    reads and writes of hundreds of policies and roles run in parallel."""

    def __init__(self, addr: str, token: str, workers: int = 6, timeout: float = 30.0) -> None:
        import threading
        import urllib.parse

        parsed = urllib.parse.urlsplit(addr)
        self.addr = addr
        self._scheme = parsed.scheme
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._prefix = parsed.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.workers = workers
        self.writes = 0

    def _conn(self) -> Any:
        import http.client
        import ssl

        c = getattr(self._local, "conn", None)
        if c is None:
            if self._scheme == "https":
                c = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self._timeout,
                    context=ssl.create_default_context(),
                )
            else:
                c = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = c
        return c

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        """One request; returns (status, JSON body or None). Retries once on a dropped
        keep-alive connection. Raises VaultRequestError for 4xx/5xx other than 404."""
        import http.client
        import json as _json

        payload = _json.dumps(body).encode() if body is not None else None
        headers = {"X-Vault-Token": self._token, "X-Vault-Request": "true"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        what = f"{method} {path}"
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, f"{self._prefix}/v1/{path}", body=payload, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise VaultRequestError(
                        f"{what}: no answer ({type(exc).__name__})", None
                    ) from None
        data: dict[str, Any] | None = None
        if raw:
            try:
                data = _json.loads(raw)
            except ValueError:
                data = None
        if resp.status >= 400 and resp.status != 404:
            errors = (data or {}).get("errors") or []
            detail = "; ".join(str(e) for e in errors)[:300] or resp.reason
            raise VaultRequestError(f"{what}: HTTP {resp.status}: {detail}", resp.status)
        return resp.status, data

    def _count_write(self) -> None:
        with self._lock:
            self.writes += 1

    def read(self, path: str) -> dict[str, Any] | None:
        """GET /v1/<path>; None when it does not exist."""
        status, data = self.request("GET", path)
        return None if status == 404 else data

    def list_keys(self, path: str) -> list[str]:
        status, data = self.request("LIST", path)
        if status == 404 or not data:
            return []
        return list(data.get("data", {}).get("keys", []))

    def write(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        self._count_write()
        return self.request("POST", path, data)[1]

    def put(self, path: str, data: dict[str, Any]) -> None:
        self._count_write()
        self.request("PUT", path, data)

    def delete(self, path: str) -> None:
        self._count_write()
        self.request("DELETE", path)

    def parallel(self, fn: Any, items: list[Any]) -> list[Any]:
        """Map fn over items on the worker pool, preserving order; first error raises."""
        if len(items) < 4 or self.workers < 2:
            return [fn(i) for i in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(fn, items))
