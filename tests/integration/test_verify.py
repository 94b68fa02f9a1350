"""verify against the real operator: it waits through placeholders until the Secrets hold
Vault's values; it never passes without an operator; when the operator cannot read a path it
fails with what stands in the way (the role's policy), and once the cause is fixed it nudges
the stalled VaultStaticSecret and converges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.core.waits import WaitSettings
from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import VSO_API
from bootstrap.phases.pipeline import PhaseResult, RunContext
from bootstrap.phases.registry import run_phases
from bootstrap.runtime import vso
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, generated_catalog, run, statuses

SHORT = WaitSettings(timeout=6, initial=0.1, maximum=0.5)


def catalog(p: str) -> Catalog:
    return generated_catalog(p, {"config": ["a"], "credentials": ["b"]}, refresh="45s")


def _prepare(box: Box, cat: Catalog, tmp_path: Path) -> None:
    results, _ = run(
        box.settings(state_dir=tmp_path),
        cat,
        ["placeholders", "vault-config", "operator", "populate"],
    )
    assert set(statuses(results).values()) <= {"applied", "no-change"}, results


def _verify(box: Box, cat: Catalog, tmp_path: Path, wait: WaitSettings) -> PhaseResult:
    ctx = RunContext(box.settings(state_dir=tmp_path), cat)
    ctx.wait = wait
    (result,) = [r for r in run_phases(ctx, ["verify"]) if r.name == "verify"]
    return result


def test_waits_through_placeholders_until_the_operator_synced(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vo{unique}"
    cat = catalog(p)
    _prepare(box, cat, tmp_path)
    kube = Kube(box.state.kubeconfig)
    results, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    assert statuses(results) == {"verify": "applied"}
    (verify,) = [r for r in results if r.name == "verify"]
    assert len(verify.actions) == 2
    assert all(a.reason.startswith("pending: placeholder") for a in verify.actions), verify
    api = admin_api(box)
    for name in ("config", "credentials"):
        data, _ = read_kv(api, f"{p}/{name}")
        assert vso.classify(data, kube.read_secret(p, name)) == "synced"
        vss = kube.get(VSO_API, "VaultStaticSecret", name, p)
        assert vss is not None and vss["spec"]["refreshAfter"] == "45s"  # restored
    again, _ = run(box.settings(state_dir=tmp_path), cat, ["verify"])
    assert statuses(again) == {"verify": "no-change"}


def test_a_denied_read_is_explained_then_nudged_once_fixed(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vd{unique}"
    cat = catalog(p)
    _prepare(box, cat, tmp_path)
    api = admin_api(box)
    policy = api.read(f"sys/policies/acl/{p}")
    assert policy is not None
    # a hand edit in Vault: the service's policy no longer grants its own path
    text = policy["data"]["policy"].replace(f"secret/data/{p}/*", f"secret/data/{p}-elsewhere/*")
    api.put(f"sys/policies/acl/{p}", {"policy": text})
    failed = _verify(box, cat, tmp_path, SHORT)
    assert failed.status == "failed"
    error = failed.error or ""
    assert "timed out" in error and "2 Secret(s) not synced" in error, error
    assert f"{p}/config <- {p}/config: " in error and "VaultClientError" in error, error
    assert f"role '{p}' (policies ['{p}']) may not read secret/data/{p}/config" in error, error
    assert "no Vault Secrets Operator answered" not in error
    vss = Kube(box.state.kubeconfig).get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None and vss["spec"]["refreshAfter"] == "45s"  # restored after failing
    # the fix: vault-config puts the catalog's policy back; verify nudges the stalled ones
    fixed, _ = run(box.settings(state_dir=tmp_path), cat, ["vault-config", "verify"])
    assert statuses(fixed) == {"vault-config": "applied", "verify": "applied"}, fixed


def test_verify_never_passes_without_an_operator(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"vn{unique}"
    cat = catalog(p)
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
