"""The operator fails, the product carries on: the operator process SIGKILLed and started
again while verify waits, and OpenBao restarted (sealed) under a synced Secret whose value then
changes -- the stale-after-unseal case users report, where VSO v0.1.0 stops retrying after the
failed reads and only a spec change wakes it. On the session's operator (VSO 1.4.1 by
default, or v0.1.0): each nudge is read the way that operator takes it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import Catalog, load_catalog
from bootstrap.model.domain import VSO_API
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import PhaseResult
from bootstrap.runtime import vso
from bootstrap.runtime.nudge import NUDGE_ANNOTATION, nudge_values
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box
from tests.integration.helpers import (
    admin_api,
    events_of,
    generated_catalog,
    run,
    statuses,
    wait_until,
)


def catalog(p: str, refresh: str) -> Catalog:
    return generated_catalog(p, {"config": ["a"], "credentials": ["b"]}, refresh=refresh)


def _scene(box: Box, p: str, refresh: str, tmp_path: Path) -> tuple[Catalog, Settings, Kube]:
    """The test's catalog ``p``, its settings (state in ``tmp_path``) and the cluster."""
    return catalog(p, refresh), box.settings(state_dir=tmp_path), Kube(box.state.kubeconfig)


def _component(box: Box, name: str) -> sandbox.Proc:
    state = sandbox.SandboxState.load(box.directory)
    assert state is not None
    return state.process(name)


@pytest.fixture
def revive(box: Box) -> Iterator[None]:
    """Whatever a test did to them, the operator and OpenBao run again afterwards, OpenBao
    unsealed."""
    yield
    for name in ("bao-0", "vault-secrets-operator"):
        proc = _component(box, name)
        if not proc.alive():
            sandbox.restart(box.directory, name)
    if vault.health(box.state.bao_addr).code != 200:
        run(box.settings(), load_catalog(EXAMPLE), ["vault-ready"])


def test_operator_killed_and_back_while_verify_waits(
    box: Box,
    first_run: dict[str, Any],
    revive: None,
    unique: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bootstrap.core.waits")
    p = f"kv{unique}"
    cat, s, kube = _scene(box, p, "1h", tmp_path)
    operator = _component(box, "vault-secrets-operator")
    os.kill(operator.pid, signal.SIGKILL)
    wait_until(lambda: not operator.alive(), "the operator to die")
    results, _ = run(s, cat, ["placeholders", "vault-config", "operator", "populate"])
    assert set(statuses(results).values()) <= {"applied", "no-change"}, results

    outcome: list[PhaseResult] = []
    waiter = threading.Thread(
        target=lambda: outcome.extend(run(s, cat, ["verify"])[0]), daemon=True
    )
    waiter.start()
    # verify is waiting. VSO v0.1.0: it has nudged both VaultStaticSecrets (refreshAfter 1h ->
    # 3601s). A current operator: it nudges none, since the operator has not reconciled them
    # yet (a nudge on top of its own first reconcile restarts the targets on 1.4.1); the
    # operator, back, lists and reconciles every object by itself
    by_annotation = vso.operator_api(kube).nudge_by_annotation

    def nudged(name: str) -> bool:
        vss = kube.get(VSO_API, "VaultStaticSecret", name, p) or {}
        if by_annotation:
            return NUDGE_ANNOTATION in ((vss.get("metadata") or {}).get("annotations") or {})
        return bool((vss.get("spec") or {}).get("refreshAfter") == nudge_values("1h")[0])

    if not by_annotation:
        for name in ("config", "credentials"):
            wait_until(lambda n=name: nudged(n), f"verify to nudge {name}")
    wait_until(
        lambda: any("pending" in r.getMessage() for r in caplog.records) or not waiter.is_alive(),
        "verify to wait",
    )
    assert waiter.is_alive()
    if by_annotation:
        assert not nudged("config") and not nudged("credentials")
    assert vso.classify({"a": "x"}, kube.read_secret(p, "config")) == "placeholder"
    started = time.monotonic()
    sandbox.restart(box.directory, "vault-secrets-operator")
    waiter.join(timeout=120)
    assert not waiter.is_alive()
    assert statuses(outcome) == {"verify": "applied"}, outcome
    assert time.monotonic() - started < 60  # the nudge, not the 1h refresh, did it
    api = admin_api(box)
    for name in ("config", "credentials"):
        data, _ = read_kv(api, f"{p}/{name}")
        assert vso.classify(data, kube.read_secret(p, name)) == "synced"
        vss = kube.get(VSO_API, "VaultStaticSecret", name, p)
        assert vss is not None and vss["spec"]["refreshAfter"] == "1h"


def test_a_secret_follows_vault_after_a_seal_and_unseal(
    box: Box, first_run: dict[str, Any], revive: None, unique: str, tmp_path: Path
) -> None:
    p = f"su{unique}"
    cat, s, kube = _scene(box, p, "2s", tmp_path)
    results, _ = run(s, cat, ["placeholders", "vault-config", "operator", "populate", "verify"])
    # with refreshAfter 2s the operator may have synced both before verify looked
    assert statuses(results)["verify"] in ("applied", "no-change")
    # OpenBao restarts: it comes back sealed; the operator's next reads fail
    bao = _component(box, "bao-0")
    assert bao.stop()
    restarted_at = time.time()
    restarted = sandbox.restart(box.directory, "bao-0")
    assert vault.health(box.state.bao_addr).sealed
    failed = wait_until(
        lambda: next(
            (
                e
                for e in events_of(kube, p, "config")
                if e.error and e.last_seen.timestamp() >= restarted_at - 1
            ),
            None,
        ),
        "the operator to fail a read against the sealed OpenBao",
    )
    assert failed.reason == "VaultClientError"
    # the bootstrap unseals (keys from custody), a new value is written, verify brings it
    results, _ = run(s, cat, ["vault-ready"])
    assert statuses(results) == {"vault-ready": "applied"}
    api = admin_api(box)
    _, version = read_kv(api, f"{p}/config")
    api.write(f"secret/data/{p}/config", {"options": {"cas": version}, "data": {"a": "after"}})
    results, _ = run(s, cat, ["verify"])
    # refreshAfter 2s: the operator may bring the new value before verify looks
    assert statuses(results)["verify"] in ("applied", "no-change"), results
    assert vso.classify({"a": "after"}, kube.read_secret(p, "config")) == "synced"
    assert restarted.pid != bao.pid
