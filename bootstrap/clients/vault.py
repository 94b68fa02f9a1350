"""The Vault/OpenBao client: health as data, initialization, unseal, raft membership, token
revocation, and :class:`Api` for bulk configuration work. Every call goes through hvac over
the one adapter of :mod:`bootstrap.clients.vault_http` (keep-alive stdlib connections, one
status-to-error mapping, bounded retries of transient answers); errors become product errors
that never carry tokens, keys or secret values. Works the same against HashiCorp Vault (same
HTTP API)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import hvac

from bootstrap.clients.vault_http import (
    DEFAULT_RETRY,
    NO_RETRY,
    KeepAliveAdapter,
    Response,
    RetryPolicy,
    VaultRequestError,
)
from bootstrap.core import failpoints
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.parallel import in_parallel
from bootstrap.core.waits import WaitSettings

T = TypeVar("T")
R = TypeVar("R")
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
    #: the cluster's id (answered by an unsealed node only): a restored snapshot brings its own
    cluster_id: str = ""

    @property
    def answering(self) -> bool:
        return self.code in HEALTH_STATES

    def __str__(self) -> str:
        return f"{self.addr}: {self.state}"


@contextmanager
def _client(
    addr: str, token: str | None = None, timeout: float = 10.0, retry: RetryPolicy = DEFAULT_RETRY
) -> Iterator[hvac.Client]:
    """An hvac client over the keep-alive adapter for a few calls; its connection is closed
    on the way out. No token: none is sent (hvac would otherwise take $VAULT_TOKEN)."""
    c = hvac.Client(
        url=addr, token=token or "", timeout=timeout, adapter=KeepAliveAdapter, retry=retry
    )
    try:
        yield c
    finally:
        c.adapter.close()


def _body(result: Any) -> JsonObject | None:
    """hvac's JSONAdapter answer as a dict: a dict, a Response (non-200 or not JSON), None."""
    if isinstance(result, Response):
        data = result.data()
        return data if isinstance(data, dict) else None
    return result if isinstance(result, dict) else None


def health(addr: str, timeout: float = 3.0) -> Health:
    """Read /v1/sys/health. The documented non-200 codes are answers, not errors; no answer
    is ``code=None``. Not retried: its callers poll."""
    try:
        with _client(addr, timeout=timeout, retry=NO_RETRY) as c:
            result = c.sys.read_health_status(method="GET")
    except VaultRequestError as exc:
        if exc.status is not None:
            raise
        return Health(addr, None, f"no answer ({exc.reason})")
    code = result.status_code if isinstance(result, Response) else 200
    body = _body(result) or {}
    return Health(
        addr,
        code,
        HEALTH_STATES.get(code, f"HTTP {code}"),
        bool(body.get("initialized")),
        bool(body.get("sealed", True)),
        str(body.get("version", "")),
        str(body.get("cluster_id") or ""),
    )


#: The retry rule of a client of a raft cluster: tries spread over a minute, so that a call
#: that met a lost leader is still being tried when another node has taken over.
CLUSTER_RETRY = RetryPolicy(
    attempts=10, backoff=WaitSettings(timeout=60.0, initial=0.2, maximum=5.0)
)

#: How long a client whose node stopped answering waits for another node of the cluster to
#: answer unsealed (a leader election: seconds, more on a busy machine).
ELECTION_PATIENCE = 30.0


def other_node(addrs: list[str], current: str, patience: float = ELECTION_PATIENCE) -> str | None:
    """A node of the cluster to go on with when ``current`` does not answer: the active one,
    waiting up to ``patience`` seconds for an election; else an unsealed standby (OpenBao's
    standbys may answer reads from their own copy of raft, a step behind the active node:
    only a cluster without a leader gets one); None when no other node answers unsealed."""
    others = [a for a in addrs if a.rstrip("/") != current.rstrip("/")]
    deadline = time.monotonic() + patience
    while True:
        standby = None
        for addr in others:
            h = health(addr)
            if h.code == 200:
                return addr
            if standby is None and h.code in (429, 473):
                standby = addr
        if time.monotonic() >= deadline:
            return standby
        time.sleep(0.5)


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


def initialize(
    addr: str, shares: int, threshold: int, pgp_keys: list[str] | None = None
) -> JsonObject:
    """Initialize; returns the raw response (keys and root token). The caller must put it
    in custody before doing anything else. Never sent twice (see vault_http)."""
    with _client(addr, timeout=INIT_TIMEOUT) as c:
        resp = c.sys.initialize(secret_shares=shares, secret_threshold=threshold, pgp_keys=pgp_keys)
    return dict(resp)


#: How long one unseal share may take to be answered: the last one makes the node unseal,
#: which for a raft follower includes catching up with the leader (long on a busy machine).
UNSEAL_REQUEST_TIMEOUT = 60.0


def submit_unseal_keys(
    addr: str, keys: list[str], timeout: float = UNSEAL_REQUEST_TIMEOUT
) -> Health:
    """Submit keys until the node unseals; a node already unsealed is left alone, and so is a
    node that does not answer its health read (an unseal in progress holds it: a share sent
    then would queue behind it). Each share is sent once, never retried by the client: a
    share that gets no answer may have reached the node, so this returns the node's health
    and the caller, polling, reads health again before it submits anything."""
    h = health(addr)
    if not h.answering or not h.sealed:
        return h
    with _client(addr, timeout=timeout, retry=NO_RETRY) as c:
        for key in keys:
            try:
                status = _body(c.sys.submit_unseal_key(key=key)) or {}
            except VaultRequestError as exc:
                if not exc.transient:
                    raise
                log.info("unseal share for %s: %s; reading its health before any other", addr, exc)
                return health(addr)
            failpoints.point("vault-ready:unseal-key")
            if not status.get("sealed", True):
                break
    return health(addr)


def seal_status(addr: str) -> JsonObject:
    """/v1/sys/seal-status (no token): type, initialized, sealed, t, n, progress, version."""
    with _client(addr) as c:
        return _body(c.sys.read_seal_status()) or {}


def reset_unseal(addr: str) -> None:
    """Drop the key shares a node holds from an unseal in progress (before trying another
    set of keys: shares of two sets never combine)."""
    with _client(addr) as c:
        c.sys.submit_unseal_key(reset=True)


#: A restore sends the whole snapshot and answers once raft has applied it.
SNAPSHOT_TIMEOUT = 600.0


def download_snapshot(addr: str, token: str) -> bytes:
    """GET /v1/sys/storage/raft/snapshot: the raft snapshot (a gzip'd tar), whole."""
    with _client(addr, token, timeout=SNAPSHOT_TIMEOUT) as c:
        resp = c.adapter.exchange("GET", "/v1/sys/storage/raft/snapshot")
        if resp.status_code != 200:
            raise c.adapter.error("GET", "/v1/sys/storage/raft/snapshot", resp, None)
        return bytes(resp.content)


def restore_snapshot(addr: str, token: str, data: bytes, *, force: bool) -> None:
    """POST the snapshot to /v1/sys/storage/raft/snapshot(-force). ``force`` installs a
    snapshot sealed with other keys (another cluster's). Never resent (see vault_http)."""
    path = "/v1/sys/storage/raft/snapshot" + ("-force" if force else "")
    with _client(addr, token, timeout=SNAPSHOT_TIMEOUT) as c:
        resp = c.adapter.exchange(
            "POST", path, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        if resp.status_code >= 400:
            raise c.adapter.error("POST", path, resp, None)


def join_raft(addr: str, leader_addr: str) -> bool:
    """Ask a follower to join the leader's raft cluster. True if it joined."""
    with _client(addr) as c:
        data = _body(c.sys.join_raft_cluster(leader_api_addr=leader_addr)) or {}
    return bool(data.get("joined"))


def raft_peers(addr: str, token: str) -> list[JsonObject]:
    with _client(addr, token) as c:
        resp = c.sys.read_raft_config()
    return list(resp["data"]["config"]["servers"])


def autopilot_state(addr: str, token: str) -> JsonObject:
    """Raft autopilot's view of each server (``sys/storage/raft/autopilot/state``): why a
    non-voter is not promoted yet (health, last contact, stable since)."""
    with _client(addr, token) as c:
        resp = c.adapter.get("/v1/sys/storage/raft/autopilot/state")
    body = resp if isinstance(resp, dict) else (resp.json() if resp is not None else {})
    return dict((body.get("data") or {}).get("servers") or {})


def kubernetes_login(addr: str, role: str, jwt: str, mount: str = "kubernetes") -> str:
    """A token from kubernetes auth: ``role`` with a ServiceAccount token ``jwt``. A login is
    never sent twice (a repeat could mint a second token): the caller decides what next."""
    with _client(addr, retry=NO_RETRY) as c:
        resp = c.auth.kubernetes.login(role, jwt, use_token=False, mount_point=mount)
    body = _body(resp) or {}
    token = (body.get("auth") or {}).get("client_token")
    if not token:
        raise VaultRequestError(
            f"POST /v1/auth/{mount}/login: no token in Vault's answer", status=None
        )
    return str(token)


def revoke_self(addr: str, token: str) -> None:
    """Revoke ``token`` with itself. A 403 means it is already revoked or expired: done."""
    try:
        with _client(addr, token) as c:
            c.auth.token.revoke_self()
    except VaultRequestError as exc:
        if exc.status != 403:
            raise


class Api:
    """A token-bearing client for configuration work: one hvac client over the keep-alive
    adapter (a connection per worker thread), so reads and writes of hundreds of policies
    and roles run in parallel. Transient answers are retried per ``retry``."""

    def __init__(
        self,
        addr: str,
        token: str,
        workers: int = 6,
        timeout: float = 30.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        peers: Sequence[str] = (),
    ) -> None:
        self.addr = addr
        self.workers = workers
        self.writes = 0
        self._lock = threading.Lock()
        others = [p for p in peers if p.rstrip("/") != addr.rstrip("/")]
        if others and retry is DEFAULT_RETRY:
            retry = CLUSTER_RETRY  # room for a leader election between tries
        #: the hvac client, for anything beyond these methods
        self.client = hvac.Client(
            url=addr, token=token, timeout=timeout, adapter=KeepAliveAdapter, retry=retry
        )
        self._adapter: KeepAliveAdapter = self.client.adapter
        if others:
            self._adapter.failover = partial(other_node, [addr, *others])

    def request(
        self, method: str, path: str, body: JsonObject | None = None
    ) -> tuple[int, JsonObject | None]:
        """One call; returns (status, JSON body or None). 404 is an answer (absent); other
        statuses >= 400 raise VaultRequestError."""
        url = f"/v1/{path}"
        resp = self._adapter.exchange(method, url, json=body)
        if resp.status_code >= 400 and resp.status_code != 404:
            raise self._adapter.error(method, url, resp, body)
        return resp.status_code, _body(resp)

    def _count_write(self) -> None:
        with self._lock:
            self.writes += 1

    def read(self, path: str) -> JsonObject | None:
        """GET /v1/<path>; None when it does not exist."""
        return _body(self.client.read(path))

    def list_keys(self, path: str) -> list[str]:
        data = _body(self.client.list(path))
        if not data:
            return []
        return list(data.get("data", {}).get("keys", []))

    def write(self, path: str, data: JsonObject) -> JsonObject | None:
        self._count_write()
        return _body(self.client.write_data(path, data=data))

    def put(self, path: str, data: JsonObject) -> None:
        self._count_write()
        self._adapter.put(f"/v1/{path}", json=data)

    def delete(self, path: str) -> None:
        """DELETE /v1/<path>; a path already absent is fine."""
        self._count_write()
        try:
            self.client.delete(path)
        except VaultRequestError as exc:
            if exc.status != 404:
                raise

    def acl_policies(self) -> dict[str, str] | None:
        """Every ACL policy's text by name, in one request: OpenBao's detailed listing
        (``LIST sys/policies/detailed/acl``). None when the server has no such listing
        (HashiCorp Vault), the token may not use it, or an entry comes without its text: the
        caller then lists the names and reads each policy."""
        try:
            status, body = self.request("LIST", "sys/policies/detailed/acl")
        except VaultRequestError as exc:
            if exc.status in (400, 403, 405):
                return None
            raise
        info = ((body or {}).get("data") or {}).get("key_info") if status == 200 else None
        if not isinstance(info, dict):
            return None
        texts = {name: (entry or {}).get("policy") for name, entry in info.items()}
        if not all(isinstance(t, str) for t in texts.values()):
            return None
        return {str(name): str(text) for name, text in texts.items()}

    def parallel(
        self, fn: Callable[[T], R], items: Sequence[T], workers: int | None = None
    ) -> list[R]:
        """:func:`~bootstrap.core.parallel.in_parallel` on ``workers`` threads (default: the
        client's connections); a handful of calls run one after another."""
        n = self.workers if workers is None else workers
        return in_parallel(fn, items, n if len(items) >= 4 else 1)


__all__ = [
    "HEALTH_STATES",
    "Api",
    "Health",
    "RetryPolicy",
    "VaultRequestError",
    "active_addr",
    "download_snapshot",
    "health",
    "initialize",
    "join_raft",
    "raft_peers",
    "reset_unseal",
    "restore_snapshot",
    "revoke_self",
    "seal_status",
    "submit_unseal_keys",
]
