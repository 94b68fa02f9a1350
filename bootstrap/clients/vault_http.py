"""The one HTTP path to Vault/OpenBao: an hvac adapter over keep-alive http.client connections,
the one place that maps an HTTP status to an error, and the rule that says which failures are
tried again.

hvac stays the API surface (``hvac.Client(adapter=KeepAliveAdapter, ...)``); the adapter
replaces hvac's requests-based transport with one standard-library HTTP/1.1 connection per
thread and per origin, kept alive between calls (about half the per-request cost of requests).

Retries (tenacity, the house backoff of ``bootstrap.core.waits``: exponential from 0.2 s, at
most 5 s between tries, bounded in attempts and seconds by :class:`RetryPolicy`):

- a request that never left this process (connection refused, unreachable, the connect timed
  out) is always tried again;
- a request that may have reached the server (reset, closed or timed out after it was sent)
  and the transient answers 429 (rate limit, standby), 500, 502, 503 (sealed, no active node),
  504 are tried again only when repeating the call is harmless (:func:`safe_to_repeat`): reads,
  and writes that set a state (policies, roles, configuration, KV data, deletes, revoking a
  token). A repeat of a write whose first try did land either writes the same state again or
  fails safely (a check-and-set KV write answers 400; enabling a mount twice answers "path is
  already in use"; the next run's plan finds it done).
- never repeated once they may have been sent: ``sys/init`` (a second init would fail and the
  keys of the first would be lost), unseal-key submission, raft join, root generation and
  rekey steps, token creation and logins (a repeat would mint a second token). Those calls
  also always go on a fresh connection, so a keep-alive connection the server has closed
  cannot fail them after sending; their callers re-read the state before trying again
  (vault-ready polls health before it submits keys again).
- ``sys/health`` answers (429, 472, 473, 501, 503, ...) are answers, never retried.
- 404 is not retried, and what it means is the caller's: absent, for reads.

Errors never carry tokens, keys or secret values: a message says the method, the path, the
status and at most 300 characters of Vault's own ``errors``, with the request's token and
secret-looking values scrubbed out.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import os
import re
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import hvac.adapters
import hvac.exceptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from bootstrap.core.errors import VaultStateError
from bootstrap.core.waits import WaitSettings

log = logging.getLogger(__name__)

#: At most this much of Vault's ``errors`` goes into a message.
DETAIL_CHARS = 300


# -- errors ----------------------------------------------------------------------------


class VaultRequestError(VaultStateError):
    """Vault refused or did not answer a request. ``status`` is the HTTP status, None when
    there was no answer. The instances :func:`error_for` makes are also the matching hvac
    exception (``hvac.exceptions.InvalidPath`` for a 404, ...), so hvac's own code that
    catches those keeps working over this adapter."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        #: why there was no answer (an exception name), when status is None
        self.reason = ""
        # the attributes hvac's VaultError has; never the response body
        self.errors: list[str] | None = None
        self.method: str | None = None
        self.url: str | None = None
        self.text: str | None = None
        self.json: Any = None

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


def _hvac_flavoured() -> dict[type, type[VaultRequestError]]:
    out: dict[type, type[VaultRequestError]] = {}
    for status in (400, 401, 403, 404, 429, 500, 501, 502, 503, 599):
        hv = type(hvac.exceptions.VaultError.from_status(status))
        if hv not in out:
            # one name for all: reports and logs show "VaultRequestError" as before
            made = type(
                "VaultRequestError",
                (VaultRequestError, hv),
                {"__module__": __name__, "__qualname__": f"VaultRequestError[{hv.__name__}]"},
            )
            out[hv] = cast(type[VaultRequestError], made)
    return out


_FLAVOURED = _hvac_flavoured()


def error_class(status: int | None) -> type[VaultRequestError]:
    """The error class for a status: VaultRequestError and the hvac exception hvac itself
    would raise for it (hvac's own status map decides which)."""
    if status is None:
        return VaultRequestError
    return _FLAVOURED[type(hvac.exceptions.VaultError.from_status(status))]


_SECRET_NAME = re.compile(r"key|token|jwt|password|passphrase|secret|private|credential", re.I)


def secrets_of(token: str | None, body: Any) -> list[str]:
    """The strings a message must never show: the token, and from the request body every
    string under a secret-looking name and every value of a KV ``data`` payload."""
    found: list[str] = [token] if token else []

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, str):
            if secret:
                found.append(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, secret or k == "data" or bool(_SECRET_NAME.search(str(k))))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, secret)

    walk(body, False)
    return found


def sanitised(text: str, secrets: Iterable[str]) -> str:
    for s in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(s, "[redacted]")
    return text


def error_for(
    status: int | None,
    method: str,
    path: str,
    *,
    addr: str = "",
    errors: Any = None,
    reason: str = "",
    secrets: Iterable[str] = (),
) -> VaultRequestError:
    """THE mapping from an HTTP status (None: no answer) to the product's error."""
    where = f"{method.upper()} {path}" + (f" at {addr}" if addr else "")
    if status is None:
        message = f"{where}: no answer ({reason or 'connection failed'})"
        detail: list[str] = []
    else:
        listed = errors if isinstance(errors, list) else ([errors] if errors else [])
        joined = "; ".join(str(e) for e in listed)
        text = joined[:DETAIL_CHARS] or reason or http.client.responses.get(status, "")
        detail = [text] if joined else []
        message = f"{where}: HTTP {status}: {text}".rstrip(": ")
    secrets = list(secrets)
    exc = error_class(status)(sanitised(message, secrets), status)
    exc.errors = [sanitised(d, secrets) for d in detail] or None
    exc.method = method.upper()
    exc.url = sanitised(path, secrets)
    if status is None:
        exc.reason = reason
    return exc


# -- the retry rule --------------------------------------------------------------------


class NoAnswer(Exception):
    """The transport got no HTTP answer. ``sent``: the request may have reached the server
    (False only when the connection could not even be opened); ``reused``: it went on a
    keep-alive connection opened by an earlier call; ``final``: trying again cannot help."""

    def __init__(self, kind: str, *, sent: bool, reused: bool = False, final: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind
        self.sent = sent
        self.reused = reused
        #: trying again cannot help (the server's certificate is not trusted)
        self.final = final


#: Answers that say "not now": rate limit or standby (429), and the 5xx a retry can fix.
#: 501 (not initialized) is left out: it does not change by waiting a few seconds.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_METHODS = frozenset({"GET", "HEAD", "LIST"})
#: Calls whose repeat, after a first try that landed, does harm (see the module docstring).
UNSAFE_PATHS = re.compile(
    r"^(sys/init|sys/unseal|sys/raft/join|sys/generate-root(/.*)?|sys/generate-recovery-token(/.*)?"
    r"|sys/rekey(-recovery-key)?(/.*)?|sys/wrapping/wrap|auth/token/create(-orphan)?(/.*)?"
    r"|auth/.+/login(/.*)?|sys/storage/raft/snapshot(-force)?)$"
)


def vault_path(url: str) -> str:
    """hvac's ``/v1/sys/init?x=1`` -> ``sys/init`` (the path Vault routes)."""
    path = url.partition("?")[0].strip("/")
    while "//" in path:
        path = path.replace("//", "/")
    return path[3:] if path.startswith("v1/") else path


def safe_to_repeat(method: str, path: str) -> bool:
    """May this call be sent again after a first try that may have reached the server?"""
    if method in READ_METHODS or method.upper() in READ_METHODS:
        return True
    return not UNSAFE_PATHS.match(vault_path(path))


def should_retry(method: str, path: str, outcome: int | NoAnswer) -> bool:
    """The retry decision for one try's outcome: a status, or no answer."""
    if isinstance(outcome, NoAnswer):
        return not outcome.final and (not outcome.sent or safe_to_repeat(method, path))
    if outcome not in RETRY_STATUSES or vault_path(path) == "sys/health":
        return False  # final, and every health status is an answer
    return safe_to_repeat(method, path)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries: at most ``attempts`` tries, none started after
    ``backoff.timeout`` seconds, waits growing exponentially from ``backoff.initial`` to
    ``backoff.maximum``."""

    attempts: int = 5
    backoff: WaitSettings = field(
        default_factory=lambda: WaitSettings(timeout=5.0, initial=0.2, maximum=5.0)
    )


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


class _Again(Exception):
    def __init__(self, outcome: Response | NoAnswer) -> None:
        super().__init__("again")
        self.outcome = outcome


# -- the transport ---------------------------------------------------------------------


class Response:
    """What hvac expects of a response: status_code, ok, headers, text, json()."""

    __slots__ = ("content", "headers", "reason", "status_code", "url")

    def __init__(
        self, status: int, reason: str, headers: http.client.HTTPMessage, content: bytes, url: str
    ) -> None:
        self.status_code = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def data(self) -> Any:
        """The JSON body, or None when there is none or it is not JSON."""
        if not self.content:
            return None
        try:
            return json.loads(self.content)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


Origin = tuple[str, str, int]


@functools.lru_cache(maxsize=8)
def _tls_context(verify: bool | str, cert: tuple[str, ...] | None) -> ssl.SSLContext:
    if verify is False:
        ctx = ssl._create_unverified_context()  # noqa: S323 (asked for: verify=False)
    elif isinstance(verify, str):
        if os.path.isdir(verify):
            ctx = ssl.create_default_context(capath=verify)
        else:
            ctx = ssl.create_default_context(cafile=verify)
    else:
        ctx = ssl.create_default_context()
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


# hvac has no type information: its Adapter is Any to mypy, which refuses Any as a base
class KeepAliveAdapter(hvac.adapters.Adapter):  # type: ignore[misc]
    """hvac's adapter over stdlib keep-alive connections, with the retry rule above.

    JSONAdapter semantics: a 200 answer with a JSON body comes back as a dict, any other as a
    :class:`Response`; a status >= 400 raises (the error of :func:`error_for`) unless
    ``raise_exception=False``. Connections are per thread and per origin, so one adapter
    serves a thread pool. Proxies are not used (Vault is reached directly)."""

    def __init__(
        self,
        base_uri: str = "http://127.0.0.1:8200",
        token: str | None = None,
        cert: Any = None,
        verify: bool | str = True,
        timeout: float = 30,
        proxies: Any = None,
        allow_redirects: bool = True,
        session: Any = None,
        namespace: str | None = None,
        ignore_exceptions: bool = False,
        strict_http: bool = False,
        request_header: bool = True,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        # hvac's Adapter.__init__ would make a requests.Session: set its attributes instead
        self.base_uri = base_uri.rstrip("/")
        self.token = token
        self.namespace = namespace
        self.session = None
        self.allow_redirects = allow_redirects
        self.ignore_exceptions = ignore_exceptions
        self.strict_http = strict_http
        self.request_header = request_header
        self._kwargs = {"cert": cert, "verify": verify, "timeout": timeout, "proxies": proxies}
        self.retry = retry
        self.timeout = float(timeout)
        parts = urllib.parse.urlsplit(self.base_uri)
        self._origin = self._origin_of(parts)
        self._prefix = parts.path.rstrip("/")
        self._verify = verify if isinstance(verify, bool | str) else True
        self._cert = (cert,) if isinstance(cert, str) else (tuple(cert) if cert else None)
        self._local = threading.local()
        self._base: dict[str, str] = {}
        self._base_key: tuple[Any, ...] = ()
        #: another node of the cluster to go on with when this one does not answer (given the
        #: current base URI; None: none better): the client of a raft cluster fails over
        self.failover: Callable[[str], str | None] | None = None
        self._switch = threading.Lock()

    # -- hvac's Adapter interface --

    def get_login_token(self, response: Any) -> str:
        return str(response["auth"]["client_token"])

    def close(self) -> None:
        """Close this thread's connections."""
        for conn in self._conns().values():
            conn.close()
        self._conns().clear()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """hvac's call: ``headers``, ``raise_exception`` (default True) and the request's
        own keywords (json, params, wrap_ttl, ...)."""
        raise_exception = kwargs.pop("raise_exception", True)
        resp = self.exchange(method, url, **kwargs)
        if resp.status_code >= 400 and raise_exception and not self.ignore_exceptions:
            raise self.error(method, url, resp, kwargs.get("json"))
        if resp.status_code == 200:
            try:
                return resp.json()
            except ValueError:
                pass
        return resp

    # -- what the adapter adds --

    def error(self, method: str, url: str, resp: Response | None, body: Any) -> VaultRequestError:
        data = resp.data() if resp is not None else None
        return error_for(
            resp.status_code if resp is not None else None,
            method,
            vault_path(url),
            addr=self.base_uri,
            errors=data.get("errors") if isinstance(data, dict) else None,
            reason=resp.reason if resp is not None else "",
            secrets=secrets_of(self.token, body),
        )

    def exchange(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, Any] | None = None,
        wrap_ttl: str | None = None,
        timeout: Any = None,
    ) -> Response:
        """One call with retries; returns the final answer whatever its status, raises
        VaultRequestError (status None) when there was none."""
        method = method.upper()
        if self.strict_http and method == "LIST":
            method, params = "GET", {**(params or {}), "list": "true"}
        target = self._target(url, params)
        hdrs = self._headers(headers, wrap_ttl)
        payload: bytes | None
        if json is not None:
            payload = _dumps(json)
            hdrs["Content-Type"] = "application/json"
        elif data is not None:
            payload = data.encode() if isinstance(data, str) else bytes(data)
        else:
            payload = None
        # decided on hvac's url: the path Vault routes, without the base URI's own prefix
        fresh = not safe_to_repeat(method, url)
        sent_to = self.base_uri
        try:  # the first try inline: the common case pays nothing for retries
            outcome: Response | NoAnswer = self._send(method, target, payload, hdrs, fresh)
        except NoAnswer as exc:
            outcome = exc
        if isinstance(outcome, NoAnswer) or outcome.status_code in RETRY_STATUSES:
            # the outcome of the last try, and the node it was sent to
            last: list[tuple[Response | NoAnswer, str]] = [(outcome, sent_to)]

            def once() -> Response:
                # a node that did not answer: go on with another node of the cluster, if there
                # is one (the retry rule already decided that sending again is safe)
                seen, node = last[0]
                if isinstance(seen, NoAnswer) and self.failover is not None:
                    self._fail_over(seen, node)
                node = self.base_uri
                try:
                    resp = self._send(method, target, payload, hdrs, fresh)
                except NoAnswer as exc:
                    last[0] = (exc, node)
                    raise
                last[0] = (resp, node)
                return resp

            outcome = with_retries(method, url, once, self.retry, self.base_uri, first=outcome)
        if isinstance(outcome, NoAnswer):
            raise error_for(
                None,
                method,
                vault_path(url),
                addr=self.base_uri,
                reason=outcome.kind,
                secrets=secrets_of(self.token, json),
            )
        return outcome

    def _fail_over(self, seen: NoAnswer, lost: str) -> None:
        """Go on with another node than ``lost``, the one that did not answer: unless another
        thread has already moved on from it."""
        assert self.failover is not None
        with self._switch:
            if self.base_uri != lost:
                return
            other = self.failover(lost)
            if not other or other.rstrip("/") == lost:
                return
            self._origin = self._origin_of(urllib.parse.urlsplit(other.rstrip("/")))
            self.base_uri = other.rstrip("/")
        log.warning("Vault at %s does not answer (%s); going on with %s", lost, seen.kind, other)

    def _send(
        self, method: str, target: str, payload: bytes | None, headers: dict[str, str], fresh: bool
    ) -> Response:
        """One try: follows up to three standby redirects (307/308); on a keep-alive
        connection the server had closed, reconnects once, for calls safe to repeat."""
        origin = self._origin
        for _hop in range(4):
            try:
                resp = self._exchange_on(origin, method, target, payload, headers, fresh)
            except NoAnswer as exc:
                if not (exc.reused and not fresh):
                    raise
                resp = self._exchange_on(origin, method, target, payload, headers, True)
            if resp.status_code not in (307, 308) or not self.allow_redirects:
                return resp
            location = resp.headers.get("Location")
            if not location:
                return resp
            parts = urllib.parse.urlsplit(location)
            if parts.scheme not in ("http", "https"):
                return resp
            origin = self._origin_of(parts)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        return resp

    def _exchange_on(
        self,
        origin: Origin,
        method: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        fresh: bool,
    ) -> Response:
        conns = self._conns()
        conn = conns.pop(origin, None) if fresh else conns.get(origin)
        if conn is not None and fresh:
            conn.close()
            conn = None
        reused = conn is not None
        if conn is None:
            conn = self._connect(origin)
            conns[origin] = conn
        try:
            conn.request(method, target, body=payload, headers=headers)
            r = conn.getresponse()
            content = r.read()
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            conns.pop(origin, None)
            # a reused connection that breaks (not one that times out) was most likely
            # closed by the server while idle: _send reconnects at once for safe calls
            stale = reused and not isinstance(exc, TimeoutError)
            raise NoAnswer(type(exc).__name__, sent=True, reused=stale) from None
        if r.will_close:
            conn.close()
            conns.pop(origin, None)
        return Response(r.status, r.reason, r.headers, content, target)

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        scheme, host, port = origin
        conn: http.client.HTTPConnection
        if scheme == "https":
            try:
                ctx = _tls_context(self._verify, self._cert)
            except (OSError, ssl.SSLError) as exc:
                raise NoAnswer(
                    f"TLS settings: {type(exc).__name__}", sent=False, final=True
                ) from None
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            conn.connect()
        except ssl.SSLCertVerificationError:
            conn.close()
            raise NoAnswer("certificate not trusted", sent=False, final=True) from None
        except OSError as exc:
            conn.close()
            raise NoAnswer(type(exc).__name__, sent=False) from None
        return conn

    def _conns(self) -> dict[Origin, http.client.HTTPConnection]:
        conns: dict[Origin, http.client.HTTPConnection] | None = getattr(self._local, "c", None)
        if conns is None:
            conns = self._local.c = {}
        return conns

    def _target(self, url: str, params: Mapping[str, Any] | None) -> str:
        while "//" in url:
            url = url.replace("//", "/")
        target = self._prefix + url if url.startswith("/") else f"{self._prefix}/{url}"
        if params:
            query = urllib.parse.urlencode(
                {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in params.items()}
            )
            target += ("&" if "?" in target else "?") + query
        return target

    def _headers(self, extra: dict[str, str] | None, wrap_ttl: str | None) -> dict[str, str]:
        key = (self.token, self.namespace, self.request_header)
        if key != self._base_key:  # hvac may change the token (Client.token = ...)
            base = {"X-Vault-Request": "true"} if self.request_header else {}
            if self.token:
                base["X-Vault-Token"] = self.token
            if self.namespace:
                base["X-Vault-Namespace"] = self.namespace
            self._base, self._base_key = base, key
        h = {**extra, **self._base} if extra else dict(self._base)
        if wrap_ttl:
            h["X-Vault-Wrap-TTL"] = str(wrap_ttl)
        return h

    @staticmethod
    def _origin_of(parts: urllib.parse.SplitResult) -> Origin:
        scheme = parts.scheme or "http"
        port = parts.port or (443 if scheme == "https" else 80)
        return scheme, parts.hostname or "127.0.0.1", port


def with_retries(
    method: str,
    target: str,
    once: Callable[[], Response],
    policy: RetryPolicy,
    where: str = "",
    first: Response | NoAnswer | None = None,
) -> Response | NoAnswer:
    """Call ``once`` until its outcome is final under :func:`should_retry` or ``policy`` is
    spent; return the last outcome. ``first``: the outcome of a first try already made. The
    first try runs outside tenacity; tenacity then counts it as its first attempt and waits."""
    if first is None:
        first = _outcome(once)
    if policy.attempts <= 1 or not should_retry(method, target, _status(first)):
        return first
    pending = [first]

    def attempt() -> Response | NoAnswer:
        outcome = pending.pop() if pending else _outcome(once)
        if should_retry(method, target, _status(outcome)):
            raise _Again(outcome)
        return outcome

    def before_sleep(rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        seen = exc.outcome if isinstance(exc, _Again) else None
        if isinstance(seen, NoAnswer):
            what = f"no answer ({seen.kind})"
        else:
            what = f"HTTP {seen.status_code}" if seen is not None else "?"
        log.info(
            "Vault %s %s%s: %s; try %d of %d in %.1fs",
            method,
            vault_path(target),
            f" at {where}" if where else "",
            what,
            rs.attempt_number + 1,
            policy.attempts,
            rs.next_action.sleep if rs.next_action else 0.0,
        )

    b = policy.backoff
    retrying = Retrying(
        retry=retry_if_exception_type(_Again),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(b.timeout),
        wait=wait_exponential(multiplier=b.initial, min=b.initial, max=b.maximum),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        result: Response | NoAnswer = retrying(attempt)
    except _Again as last:
        return last.outcome
    return result


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _outcome(once: Callable[[], Response]) -> Response | NoAnswer:
    try:
        return once()
    except NoAnswer as exc:
        return exc


def _status(outcome: Response | NoAnswer) -> int | NoAnswer:
    return outcome if isinstance(outcome, NoAnswer) else outcome.status_code


__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "KeepAliveAdapter",
    "NoAnswer",
    "Response",
    "RetryPolicy",
    "VaultRequestError",
    "error_for",
    "safe_to_repeat",
    "should_retry",
    "with_retries",
]
