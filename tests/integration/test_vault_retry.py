"""The Vault client's retries against a real OpenBao of the test's own (a dev server, so the
session's sandbox is not sealed under other tests): a write that meets 503 while Vault is
sealed succeeds once it is unsealed; a refused connection is tried again until the server is
back; a permanent 4xx is sent once (the server's audit log counts it); a non-idempotent call
that meets 503 is not sent again. The helper threads only do what an operator would (submit
the real unseal key, start the server); no thread plays Vault."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bootstrap.clients import procs, vault
from bootstrap.core.waits import WaitSettings
from bootstrap.tooling import tools
from tests.integration.conftest import TOOLS_DIR
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.integration

PATIENT = vault.RetryPolicy(attempts=60, backoff=WaitSettings(timeout=60, initial=0.2, maximum=1.0))
POLICY = 'path "secret/data/retry/*" {\n  capabilities = ["read"]\n}\n'


def _free_port() -> int:
    # reserved across processes, outside the ephemeral range (see procs.free_ports)
    return procs.free_ports(1)[0]


class DevBao:
    """An OpenBao dev server (in-memory storage) with a file audit device, on a free port.
    The root token is fixed, so a restart on the same port takes the same token."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.root = f"root-{uuid.uuid4().hex}"
        self.audit = directory / "audit.log"
        self.binary = tools.require("bao", TOOLS_DIR)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        config = self.directory / "audit.hcl"
        config.write_text(
            f'audit "file" "file" {{\n  options {{\n    file_path = "{self.audit}"\n  }}\n}}\n'
        )
        out = self.directory / f"server-{self.starts}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.directory)  # the dev server's token helper writes nothing of ours
        with out.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "server",
                    "-dev",
                    "-dev-no-store-token",
                    f"-dev-listen-address=127.0.0.1:{self.port}",
                    f"-dev-root-token-id={self.root}",
                    f"-config={config}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.unseal_key = wait_until(
            lambda: self._unseal_key(out), f"the dev server's unseal key in {out}", 30
        )
        wait_until(lambda: self._status() == 200, f"the dev server {self.addr} active", 30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None

    def _unseal_key(self, out: Path) -> str | None:
        assert self.proc is not None and self.proc.poll() is None, out.read_text()
        m = re.search(r"Unseal Key: (\S+)", out.read_text(errors="replace"))
        return m.group(1) if m else None

    def _status(self) -> int | None:
        try:
            return requests.get(f"{self.addr}/v1/sys/health", timeout=3).status_code
        except requests.RequestException:
            return None

    def sealed(self) -> bool:
        return self._status() == 503

    def seal(self) -> None:
        resp = requests.put(
            f"{self.addr}/v1/sys/seal", headers={"X-Vault-Token": self.root}, timeout=10
        )
        assert resp.status_code == 204, resp.text
        wait_until(self.sealed, "the dev server to seal", 30)

    def unseal(self) -> dict[str, Any]:
        resp = requests.put(f"{self.addr}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=10)
        assert resp.status_code == 200, resp.status_code
        return dict(resp.json())

    def audited(self, path: str) -> list[dict[str, Any]]:
        """The audit log's request entries for ``path``."""
        out = []
        for line in self.audit.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "request" and entry["request"].get("path") == path:
                out.append(entry)
        return out

    def policy(self, name: str) -> str | None:
        resp = requests.get(
            f"{self.addr}/v1/sys/policies/acl/{name}",
            headers={"X-Vault-Token": self.root},
            timeout=10,
        )
        return str(resp.json()["data"]["policy"]) if resp.status_code == 200 else None


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[DevBao]:
    server = DevBao(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Retries(logging.Handler):
    """The client's retry log lines; ``seen(text)`` is set once one contains ``text``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def seen(self, text: str) -> threading.Event:
        with self._lock:
            event = self._events.setdefault(text, threading.Event())
            if any(text in line for line in self.lines):
                event.set()
            return event

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        with self._lock:
            self.lines.append(line)
            for text, event in self._events.items():
                if text in line:
                    event.set()


@pytest.fixture
def retries() -> Iterator[Retries]:
    handler = Retries()
    logger = logging.getLogger("bootstrap.clients")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _in_background(fn: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_write_that_meets_sealed_vault_succeeds_once_unsealed(
    bao: DevBao, retries: Retries
) -> None:
    name = f"retry-{uuid.uuid4().hex[:8]}"
    api = vault.Api(bao.addr, bao.root, retry=PATIENT)
    assert api.read("sys/mounts") is not None  # a keep-alive connection is open
    bao.seal()
    met_503 = retries.seen(f"PUT sys/policies/acl/{name} at {bao.addr}: HTTP 503")

    def unseal_after_the_503() -> dict[str, Any]:
        assert met_503.wait(timeout=60), "the write never met the sealed Vault"
        return bao.unseal()

    thread, unsealed = _in_background(unseal_after_the_503)
    api.put(f"sys/policies/acl/{name}", {"policy": POLICY})
    thread.join(timeout=60)
    assert unsealed and not isinstance(unsealed[0], BaseException), unsealed
    assert unsealed[0]["sealed"] is False
    assert bao.policy(name) == POLICY
    tries = [line for line in retries.lines if f"sys/policies/acl/{name}" in line]
    assert tries and all("HTTP 503" in line for line in tries)
    assert not any(bao.root in line for line in retries.lines)


def test_a_refused_connection_is_tried_again_until_the_server_is_back(
    bao: DevBao, retries: Retries
) -> None:
    api = vault.Api(bao.addr, bao.root, retry=PATIENT)
    assert api.read("sys/mounts") is not None  # a keep-alive connection to the first server
    bao.stop()
    refused = retries.seen(f"GET sys/mounts at {bao.addr}: no answer (ConnectionRefusedError)")

    def start_after_the_refusal() -> None:
        assert refused.wait(timeout=60), "the read was never refused"
        bao.start()

    thread, started = _in_background(start_after_the_refusal)
    mounts = api.read("sys/mounts")
    thread.join(timeout=90)
    assert started == [None], started
    assert mounts is not None and "secret/" in mounts
    assert refused.is_set() and bao.starts == 2


def test_a_permanent_4xx_is_sent_once(bao: DevBao, retries: Retries) -> None:
    api = vault.Api(bao.addr, bao.root, retry=PATIENT)
    bad = f"bad-{uuid.uuid4().hex[:8]}"
    with pytest.raises(vault.VaultRequestError) as info:
        api.put(f"sys/policies/acl/{bad}", {"policy": "path {"})
    assert info.value.status == 400 and not info.value.transient
    assert len(bao.audited(f"sys/policies/acl/{bad}")) == 1
    stranger = vault.Api(bao.addr, "s.not-a-token-of-this-server", retry=PATIENT)
    with pytest.raises(vault.VaultRequestError) as info:
        stranger.read("sys/policies/acl/default")
    assert info.value.status == 403 and "not-a-token" not in str(info.value)
    assert retries.lines == []


def test_a_token_creation_that_meets_503_is_not_sent_again(bao: DevBao, retries: Retries) -> None:
    api = vault.Api(bao.addr, bao.root, retry=PATIENT)
    bao.seal()
    started = time.monotonic()
    with pytest.raises(vault.VaultRequestError) as info:
        api.write("auth/token/create-orphan", {"policies": ["default"]})
    assert info.value.status == 503 and info.value.transient
    assert time.monotonic() - started < PATIENT.backoff.initial  # no wait, no second try
    assert retries.lines == []
    bao.unseal()
    wait_until(lambda: not bao.sealed(), "the dev server to unseal", 30)
    assert bao.audited("auth/token/create-orphan") == []  # sealed: it never reached a handler


def test_no_share_is_sent_to_a_node_that_does_not_answer_its_health_read(bao: DevBao) -> None:
    """Issue 24, item 2 (test_ha's follower whose last `PUT sys/unseal` got no answer, twice,
    until vault-ready timed out): a node that does not answer (here frozen, as one busy
    unsealing is) gets no share; the caller is told it does not answer and polls. Once it
    answers again, the keys unseal it."""
    import signal

    bao.seal()
    assert bao.proc is not None
    bao.proc.send_signal(signal.SIGSTOP)
    try:
        h = vault.submit_unseal_keys(bao.addr, [bao.unseal_key], timeout=5.0)
        assert not h.answering and h.code is None, h
    finally:
        bao.proc.send_signal(signal.SIGCONT)
    assert vault.seal_status(bao.addr)["sealed"]
    assert vault.seal_status(bao.addr)["progress"] == 0  # nothing was queued while frozen
    h = wait_until(
        lambda: (lambda x: x if not x.sealed else None)(
            vault.submit_unseal_keys(bao.addr, [bao.unseal_key])
        ),
        "the dev server to unseal",
        30,
    )
    assert h.code == 200
