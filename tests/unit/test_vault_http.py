"""The Vault client's pure rules: which error each HTTP status becomes (one mapping, hvac's
exception kinds kept, nothing secret in a message), and which outcomes are tried again for
which calls. No network: the retry loop is fed canned outcomes."""

from __future__ import annotations

import http.client
from collections.abc import Callable

import hvac
import hvac.exceptions
import pytest

from bootstrap.clients import vault
from bootstrap.clients.vault_http import (
    DEFAULT_RETRY,
    KeepAliveAdapter,
    NoAnswer,
    Response,
    RetryPolicy,
    VaultRequestError,
    error_for,
    safe_to_repeat,
    secrets_of,
    should_retry,
    with_retries,
)
from bootstrap.core.errors import BootstrapError, VaultStateError
from bootstrap.core.waits import WaitSettings


@pytest.mark.parametrize(
    ("status", "hvac_kind", "transient"),
    [
        (400, hvac.exceptions.InvalidRequest, False),
        (401, hvac.exceptions.Unauthorized, False),
        (403, hvac.exceptions.Forbidden, False),
        (404, hvac.exceptions.InvalidPath, False),
        (409, hvac.exceptions.UnexpectedError, False),
        (412, hvac.exceptions.UnexpectedError, False),
        (429, hvac.exceptions.RateLimitExceeded, True),
        (500, hvac.exceptions.InternalServerError, True),
        (501, hvac.exceptions.VaultNotInitialized, True),
        (502, hvac.exceptions.BadGateway, True),
        (503, hvac.exceptions.VaultDown, True),
        (504, hvac.exceptions.UnexpectedError, True),
    ],
)
def test_each_status_maps_to_one_error_that_is_also_hvacs(
    status: int, hvac_kind: type, transient: bool
) -> None:
    exc = error_for(status, "put", "sys/policies/acl/p", errors=["nope"])
    assert isinstance(exc, VaultRequestError) and isinstance(exc, VaultStateError)
    assert isinstance(exc, BootstrapError) and isinstance(exc, hvac_kind)
    assert exc.status == status and exc.transient is transient
    assert str(exc) == f"PUT sys/policies/acl/p: HTTP {status}: nope"
    assert exc.errors == ["nope"] and exc.json is None and exc.text is None


def test_no_answer_is_transient_and_says_why() -> None:
    exc = error_for(None, "GET", "sys/mounts", addr="http://v:8200", reason="ConnectionResetError")
    assert type(exc) is VaultRequestError and exc.status is None and exc.transient
    assert str(exc) == "GET sys/mounts at http://v:8200: no answer (ConnectionResetError)"
    assert exc.reason == "ConnectionResetError"


def test_without_vaults_errors_the_reason_phrase_stands() -> None:
    assert str(error_for(502, "GET", "sys/mounts", reason="Bad Gateway")).endswith(
        "HTTP 502: Bad Gateway"
    )
    assert str(error_for(418, "GET", "x")).endswith("HTTP 418: I'm a Teapot")


def test_hvacs_own_code_still_catches_what_the_adapter_raises() -> None:
    # hvac.Client.read returns None on InvalidPath; kv_v2 and others catch hvac kinds too
    with pytest.raises(hvac.exceptions.InvalidPath):
        raise error_for(404, "GET", "secret/data/x")
    with pytest.raises(VaultRequestError):
        raise error_for(404, "GET", "secret/data/x")


def test_messages_never_carry_tokens_keys_or_values_and_stay_short() -> None:
    token = "s.AbCdEfGhIjKlMnOp"
    key = "ZwtBcs7QU1xV9S4E264tuSDIwX0bmElqPUR8PSVmmtw="
    value = "hunter2-the-real-password"
    echoed = [f"bad token {token}", f"key {key} refused", f"value {value} too long", "x" * 900]
    for body in ({"key": key}, {"data": {"password": value}}, {"options": {"cas": 1}}):
        exc = error_for(
            400,
            "POST",
            f"auth/token/lookup/{token}",
            errors=echoed,
            secrets=secrets_of(token, body),
        )
        text = str(exc) + " ".join(exc.errors or []) + str(exc.url)
        assert token not in text
        assert len(str(exc)) < 400  # at most 300 characters of Vault's errors
    exc = error_for(400, "PUT", "sys/unseal", errors=echoed, secrets=secrets_of(None, {"key": key}))
    assert key not in str(exc) and "[redacted]" in str(exc)
    exc = error_for(
        400,
        "POST",
        "secret/data/app",
        errors=[f"echo {value}"],
        secrets=secrets_of(None, {"options": {"cas": 3}, "data": {"anything": value}}),
    )
    assert value not in str(exc) and str(exc).endswith("echo [redacted]")


READ = ["GET", "LIST", "HEAD"]
SAFE_WRITES = [
    ("PUT", "sys/policies/acl/svc"),
    ("POST", "auth/kubernetes/role/svc"),
    ("POST", "auth/kubernetes/config"),
    ("POST", "secret/data/svc/config"),  # check-and-set makes a repeat fail, never overwrite
    ("POST", "sys/mounts/secret"),  # a repeat answers "already in use"; the plan sees it done
    ("DELETE", "sys/policies/acl/svc"),
    ("POST", "auth/token/revoke-self"),  # a repeat answers 403: already revoked
]
UNSAFE = [
    ("PUT", "sys/init"),
    ("POST", "sys/init"),
    ("PUT", "sys/unseal"),
    ("POST", "sys/raft/join"),
    ("POST", "auth/token/create"),
    ("POST", "auth/token/create-orphan"),
    ("POST", "auth/token/create/some-role"),
    ("POST", "auth/kubernetes/login"),
    ("PUT", "sys/generate-root/update"),
    ("PUT", "sys/rekey/update"),
    ("POST", "sys/wrapping/wrap"),
]
SENT = NoAnswer("ConnectionResetError", sent=True, reused=True)
NOT_SENT = NoAnswer("ConnectionRefusedError", sent=False)


@pytest.mark.parametrize("method", READ)
def test_reads_retry_every_transient_outcome(method: str) -> None:
    path = "sys/policies/acl/svc"
    for outcome in (429, 500, 502, 503, 504, SENT, NOT_SENT):
        assert should_retry(method, path, outcome), outcome
    for status in (200, 204, 307, 400, 401, 403, 404, 405, 412, 501):
        assert not should_retry(method, path, status), status
    assert not should_retry(
        method, path, NoAnswer("certificate not trusted", sent=False, final=True)
    )


@pytest.mark.parametrize(("method", "path"), SAFE_WRITES)
def test_writes_that_set_a_state_retry_like_reads(method: str, path: str) -> None:
    assert safe_to_repeat(method, path)
    for outcome in (429, 500, 502, 503, 504, SENT, NOT_SENT):
        assert should_retry(method, path, outcome), outcome
    for status in (200, 204, 400, 403, 404):
        assert not should_retry(method, path, status), status


@pytest.mark.parametrize(("method", "path"), UNSAFE)
def test_non_idempotent_calls_retry_only_what_never_left(method: str, path: str) -> None:
    for form in (path, f"/v1/{path}", f"/v1//{path}?x=1"):
        assert not safe_to_repeat(method, form)
        assert should_retry(method, form, NOT_SENT)
        for outcome in (SENT, NoAnswer("TimeoutError", sent=True), 429, 500, 503, 504, 400):
            assert not should_retry(method, form, outcome), outcome


@pytest.mark.parametrize("status", [200, 429, 472, 473, 501, 503, 500])
def test_health_answers_are_answers(status: int) -> None:
    assert not should_retry("GET", "/v1/sys/health", status)
    assert status == 500 or status in vault.HEALTH_STATES


def test_the_default_policy_is_bounded_with_the_house_backoff() -> None:
    house = WaitSettings()
    assert 1 < DEFAULT_RETRY.attempts <= 10 and 0 < DEFAULT_RETRY.backoff.timeout <= 10
    assert DEFAULT_RETRY.backoff.initial == house.initial == 0.2
    assert DEFAULT_RETRY.backoff.maximum == house.maximum == 5.0


def _answer(status: int) -> Response:
    return Response(status, http.client.responses[status], http.client.HTTPMessage(), b"{}", "/")


FAST = RetryPolicy(attempts=4, backoff=WaitSettings(timeout=5, initial=0.001, maximum=0.002))


def _fed(
    outcomes: list[int | NoAnswer],
) -> tuple[list[int | NoAnswer], Callable[[], Response]]:
    calls: list[int | NoAnswer] = []

    def once() -> Response:
        outcome = outcomes[len(calls)]
        calls.append(outcome)
        if isinstance(outcome, NoAnswer):
            raise outcome
        return _answer(outcome)

    return calls, once


def test_the_loop_retries_until_an_answer_is_final() -> None:
    calls, once = _fed([503, SENT, 429, 200])
    got = with_retries("PUT", "/v1/sys/policies/acl/p", once, FAST)
    assert isinstance(got, Response) and got.status_code == 200 and len(calls) == 4


def test_the_loop_gives_up_after_the_policys_attempts_with_the_last_outcome() -> None:
    calls, once = _fed([503, 503, 503, 502, 200])
    got = with_retries("GET", "/v1/x", once, FAST)
    assert isinstance(got, Response) and got.status_code == 502 and len(calls) == 4


def test_the_loop_gives_up_after_the_policys_seconds() -> None:
    slow = RetryPolicy(attempts=50, backoff=WaitSettings(timeout=0.05, initial=0.02, maximum=0.02))
    calls, once = _fed([503] * 50)
    with_retries("GET", "/v1/x", once, slow)
    assert 2 <= len(calls) < 10


@pytest.mark.parametrize(
    ("method", "path", "outcomes", "tries"),
    [
        ("GET", "/v1/x", [403, 200], 1),
        ("GET", "/v1/x", [404, 200], 1),
        ("POST", "/v1/sys/policies/acl/p", [400, 200], 1),
        ("PUT", "/v1/sys/init", [503, 200], 1),
        ("PUT", "/v1/sys/init", [SENT, 200], 1),
        ("PUT", "/v1/sys/init", [NOT_SENT, NOT_SENT, 200], 3),
        ("POST", "/v1/auth/token/create-orphan", [SENT, 200], 1),
        ("GET", "/v1/sys/health", [503, 200], 1),
    ],
)
def test_final_outcomes_are_tried_once(
    method: str, path: str, outcomes: list[int | NoAnswer], tries: int
) -> None:
    calls, once = _fed(outcomes)
    with_retries(method, path, once, FAST)
    assert len(calls) == tries


def test_no_retry_policy_tries_once() -> None:
    calls, once = _fed([503, 200])
    with_retries("GET", "/v1/x", once, RetryPolicy(attempts=1))
    assert len(calls) == 1


def test_hvac_takes_the_adapter_without_requests() -> None:
    c = hvac.Client(url="http://127.0.0.1:1", token="t", adapter=KeepAliveAdapter, retry=FAST)
    assert isinstance(c.adapter, KeepAliveAdapter) and c.adapter.session is None
    assert c.adapter.retry is FAST and c.adapter.timeout == 30
    assert c.adapter._target("/v1//sys/health", {"standbyok": True}) == (
        "/v1/sys/health?standbyok=true"
    )
    prefixed = KeepAliveAdapter("https://vault.example:8443/proxy/")
    assert prefixed._target("v1/sys/mounts", None) == "/proxy/v1/sys/mounts"
    assert prefixed._origin == ("https", "vault.example", 8443)
