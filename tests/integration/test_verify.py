"""verify against the real operator: it waits through placeholders until the Secrets hold
Vault's values; it never passes without an operator; when the operator cannot read a path it
fails with what stands in the way (the role's policy), and once the cause is fixed it nudges
the stalled VaultStaticSecret and converges. Where a test says verify nudged, it saw the nudge
itself: the run, through the CLI, is held at the ``verify:nudged`` failpoint while the test
reads the VaultStaticSecrets (a nudge as the session's operator takes it: an annotation on
VSO 1.4.1, the default, a refreshAfter one second longer on v0.1.0)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.core.waits import WaitSettings
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.domain import VSO_API
from bootstrap.phases.pipeline import PhaseResult, RunContext
from bootstrap.phases.registry import run_phases
from bootstrap.runtime import vso
from bootstrap.runtime.nudge import NUDGE_ANNOTATION, nudge_values
from tests.integration.conftest import Box
from tests.integration.helpers import (
    Held,
    admin_api,
    generated_catalog_text,
    held_at,
    run,
    statuses,
    wait_until,
)

REFRESH = "45s"
NAMES = ("config", "credentials")


def catalog(p: str, folder: Path) -> tuple[Catalog, Path]:
    """The test's own catalog, parsed and as a file for the CLI."""
    path = folder / f"{p}.yaml"
    path.write_text(
        generated_catalog_text(p, {"config": ["a"], "credentials": ["b"]}, refresh=REFRESH)
    )
    return parse_catalog(path.read_text(), str(path)), path


BEFORE_VERIFY = ["placeholders", "vault-config", "operator", "populate"]


def _prepare(box: Box, cat: Catalog, tmp_path: Path, phases: list[str] = BEFORE_VERIFY) -> None:
    results, _ = run(box.settings(state_dir=tmp_path), cat, phases)
    assert set(statuses(results).values()) <= {"applied", "no-change"}, results


def _prepared(
    box: Box, p: str, tmp_path: Path, phases: list[str] = BEFORE_VERIFY
) -> tuple[Catalog, Path, Kube]:
    """The test's catalog ``p``, ``phases`` (every phase before verify) run for it."""
    cat, path = catalog(p, tmp_path)
    _prepare(box, cat, tmp_path, phases)
    return cat, path, Kube(box.state.kubeconfig)


def _verify(box: Box, cat: Catalog, tmp_path: Path, wait: WaitSettings) -> PhaseResult:
    ctx = RunContext(box.settings(state_dir=tmp_path), cat)
    ctx.wait = wait
    (result,) = [r for r in run_phases(ctx, ["verify"]) if r.name == "verify"]
    return result


def _refresh_after(kube: Kube, p: str) -> dict[str, str]:
    out = {}
    for name in NAMES:
        vss = kube.get(VSO_API, "VaultStaticSecret", name, p)
        assert vss is not None, name
        out[name] = vss["spec"]["refreshAfter"]
    return out


def _nudge_marks(kube: Kube, p: str) -> dict[str, str | None]:
    """Each VaultStaticSecret's nudge annotation (a current operator's nudge), or None."""
    out = {}
    for name in NAMES:
        vss = kube.get(VSO_API, "VaultStaticSecret", name, p) or {}
        out[name] = ((vss.get("metadata") or {}).get("annotations") or {}).get(NUDGE_ANNOTATION)
    return out


def _verify_held(
    box: Box,
    path: Path,
    folder: Path,
    kube: Kube,
    p: str,
    while_held: Callable[[], object] | None = None,
    **env: str,
) -> tuple[Held, dict[str, Any]]:
    """verify through the CLI, held once it has nudged: both VaultStaticSecrets must then carry
    a nudge of this run, as the session's operator takes one (its CRD says which): a new value
    of the nudge annotation on a current operator (1.4.1: a spec change would restart the
    targets there), a nudge's refreshAfter on VSO v0.1.0. Returns the finished run and its
    report's verify phase."""
    folder.mkdir()
    report = folder / "report.json"
    args = ("--only", "verify", "--catalog", str(path), "--report", str(report))
    by_annotation = vso.operator_api(kube).nudge_by_annotation
    marks = _nudge_marks(kube, p)
    with held_at("verify:nudged", folder, box.cli_env(folder, **env), *args) as held:
        seen = _refresh_after(kube, p)
        if by_annotation:
            now = _nudge_marks(kube, p)
            assert all(now[n] is not None and now[n] != marks[n] for n in NAMES), (marks, now)
            assert seen == {n: REFRESH for n in NAMES}, seen  # the spec as it is
        else:
            assert set(seen.values()) <= set(nudge_values(REFRESH)), seen  # nudged, not 45s
        if while_held is not None:
            while_held()
    assert held.done is not None
    (phase,) = [x for x in json.loads(report.read_text())["phases"] if x["name"] == "verify"]
    return held, phase


def test_waits_through_placeholders_until_the_operator_synced(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vo{unique}"
    # the operator fills the Secrets with the placeholders, and is stopped before populate
    # writes the real values: verify then has both to wait for, each reconciled at its spec
    # (what it nudges), whatever the operator's speed; started again once verify has nudged
    cat, path, kube = _prepared(box, p, tmp_path, BEFORE_VERIFY[:-1])
    refs = [(p, n) for n in NAMES]
    wait_until(
        lambda: vso.tried_already(kube, refs) == sorted(refs),
        "the operator to have reconciled both VaultStaticSecrets",
        timeout=120,
    )
    state = sandbox.SandboxState.load(box.directory)
    assert state is not None
    assert state.process(sandbox.OPERATOR).stop()
    try:
        _prepare(box, cat, tmp_path, ["populate"])
        held, verify = _verify_held(
            box,
            path,
            tmp_path / "verify",
            kube,
            p,
            while_held=lambda: sandbox.restart(box.directory, sandbox.OPERATOR),
        )
    finally:
        if not sandbox.SandboxState.load(box.directory).process(sandbox.OPERATOR).alive():  # type: ignore[union-attr]
            sandbox.restart(box.directory, sandbox.OPERATOR)
    assert held.done is not None
    assert held.done.returncode == 0, held.done.stderr
    assert verify["status"] == "applied"
    reasons = [a["reason"] for a in verify["actions"]]
    assert len(reasons) == 2 and all(r.startswith("pending: placeholder") for r in reasons)
    api = admin_api(box)
    for name in NAMES:
        data, _ = read_kv(api, f"{p}/{name}")
        assert vso.classify(data, kube.read_secret(p, name)) == "synced"
    assert _refresh_after(kube, p) == {n: REFRESH for n in NAMES}  # restored after the nudge
    again, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    assert statuses(again) == {"verify": "no-change"}


def test_a_denied_read_is_explained_then_nudged_once_fixed(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vd{unique}"
    cat, path, kube = _prepared(box, p, tmp_path, BEFORE_VERIFY[:-1])
    api = admin_api(box)
    policy = api.read(f"sys/policies/acl/{p}")
    assert policy is not None
    # a hand edit in Vault: the service's policy no longer grants its own path; made before
    # populate writes, so the operator (which retries a failed read within milliseconds at
    # first) cannot have synced a Secret before it
    text = policy["data"]["policy"].replace(f"secret/data/{p}/*", f"secret/data/{p}-elsewhere/*")
    api.put(f"sys/policies/acl/{p}", {"policy": text})
    _prepare(box, cat, tmp_path, ["populate"])
    held, failed = _verify_held(
        box, path, tmp_path / "denied", kube, p, INVOKE_BOOTSTRAP_WAIT_TIMEOUT="6"
    )
    assert held.done is not None
    assert held.done.returncode == 1, held.done.stderr
    assert failed["status"] == "failed"
    error = failed["error"] or ""
    assert "timed out" in error and "2 Secret(s) not synced" in error, error
    assert f"{p}/config <- {p}/config: " in error and "VaultClientError" in error, error
    assert f"role '{p}' (policies ['{p}']) may not read secret/data/{p}/config" in error, error
    assert "no Vault Secrets Operator answered" not in error
    assert _refresh_after(kube, p) == {n: REFRESH for n in NAMES}  # restored after failing
    # the fix: vault-config puts the catalog's policy back; verify nudges the stalled ones
    # (VSO v0.1.0 does not retry a failed read by itself: only the nudge brings it; 1.4.1
    # retries with a backoff, the nudge comes first)
    fixed, _ = run(box.settings(state_dir=tmp_path), cat, ["vault-config"])
    assert statuses(fixed) == {"vault-config": "applied"}, fixed
    held, verify = _verify_held(box, path, tmp_path / "fixed", kube, p)
    assert held.done is not None
    assert held.done.returncode == 0, held.done.stderr
    assert verify["status"] == "applied"
    for name in NAMES:
        data, _ = read_kv(api, f"{p}/{name}")
        assert vso.classify(data, kube.read_secret(p, name)) == "synced"


def test_verify_never_passes_without_an_operator(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vn{unique}"
    cat, _ = catalog(p, tmp_path)
    operator = sandbox.SandboxState.load(box.directory)
    assert operator is not None
    proc = operator.process("vault-secrets-operator")
    assert proc.stop()
    try:
        _prepare(box, cat, tmp_path)
        failed = _verify(box, cat, tmp_path, WaitSettings(timeout=3, initial=0.1, maximum=0.5))
    finally:
        sandbox.restart(box.directory, "vault-secrets-operator")
    assert failed.status == "failed"
    error = failed.error or ""
    assert "no Vault Secrets Operator answered" in error, error
    assert f"{p}/config <- {p}/config: placeholder" in error, error
    # with the operator back, the same verify converges
    results, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    assert statuses(results) == {"verify": "applied"}
