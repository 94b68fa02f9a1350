"""Operator resources on the sandbox: server-side apply per namespace, hand-over from
placeholders, no-op re-runs, and prune that removes only what the product manages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.domain import VSO_API
from bootstrap.phases.registry import registered
from tests.integration.conftest import Box
from tests.integration.helpers import (
    generated_catalog,
    revision,
    run,
    statuses,
    verified,
    wait_until,
    workload,
)


def catalog(p: str, with_gone: bool = True) -> Catalog:
    gone = f"""
  - name: {p}-gone
    namespace: {p}
    secrets:
      config: {{destination: {p}-gone-config, keys: {{a: null}}}}
"""
    return parse_catalog(
        f"""
version: 1
name: {p}
services:
  - name: {p}-stay
    namespace: {p}
    secrets:
      config: {{keys: {{a: null}}}}
    restart:
      - {{kind: Deployment, name: web}}
{gone if with_gone else ""}""",
        "operator.yaml",
    )


ALL_PHASES = [p.name for p in registered()]


def _vss(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    return kube.get(VSO_API, "VaultStaticSecret", name, ns)


def test_apply_handover_and_noop(box: Box, unique: str, tmp_path: Path) -> None:
    p = f"op{unique}"
    s = box.settings(state_dir=tmp_path)
    cat = catalog(p)
    kube = Kube(box.state.kubeconfig)
    # Only the first secret gets a placeholder (placeholders phase not run for the other).
    kube.ensure_namespace(p)
    kube.write_secret(
        p, "config", {"a": conv.placeholder_value(f"{p}-stay", "config", "a").encode()}
    )
    results, _ = run(s, cat, ["operator"])
    assert statuses(results) == {"operator": "applied"}, results
    sa = kube.core.read_namespaced_service_account(f"{p}-stay", p)
    assert sa.metadata is not None and sa.metadata.labels is not None
    assert sa.metadata.labels[conv.MANAGED_BY_LABEL] == conv.MANAGED_BY_VALUE
    auth = kube.get(VSO_API, "VaultAuth", f"{p}-stay", p)
    assert auth is not None and auth["spec"]["kubernetes"]["serviceAccount"] == f"{p}-stay"
    placeholder_vss = _vss(kube, p, "config")
    assert placeholder_vss is not None
    dest = placeholder_vss["spec"]["destination"]
    assert (dest["name"], dest["create"], dest.get("overwrite", False)) == ("config", False, False)
    # the hand-written placeholder had no labels: it got those of the operator's Secret cache
    labels = kube.read_secret_object(p, "config").metadata.labels or {}
    assert conv.OPERATOR_CACHE_LABELS.items() <= labels.items()
    assert placeholder_vss["spec"]["rolloutRestartTargets"] == [
        {"kind": "Deployment", "name": "web"}
    ]
    fresh = _vss(kube, p, f"{p}-gone-config")
    assert fresh is not None and fresh["spec"]["destination"]["create"] is True
    fields = {m["manager"] for m in placeholder_vss["metadata"]["managedFields"]}
    assert conv.FIELD_MANAGER in fields
    again, _ = run(s, cat, ["operator"])
    assert statuses(again) == {"operator": "no-change"}


def test_owner_mode_needs_a_current_operator(box_v0: Box, unique: str, tmp_path: Path) -> None:
    """VSO v0.1.0's CRD has no destination.overwrite: owner mode is refused with the reason,
    before anything is applied."""
    p = f"ow{unique}"
    kube = Kube(box_v0.state.kubeconfig)
    kube.ensure_namespace(p)
    kube.write_secret(p, "config", {"a": b"bootstrap-placeholder:x/config/a"})
    results, _ = run(
        box_v0.settings(state_dir=tmp_path, handover="owner"), catalog(p, False), ["operator"]
    )
    (result,) = [r for r in results if r.name == "operator"]
    assert result.status == "failed"
    assert "needs a current Vault Secrets Operator" in (result.error or "")
    assert "no destination.overwrite" in (result.error or "")
    assert _vss(kube, p, "config") is None


def test_owner_mode_hands_over_then_terraform_lets_go(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    """On VSO 1.4.1, owner mode: the operator takes each placeholder over (its owner
    reference and labels); the next run drops it from Terraform's state instead of putting
    Terraform's labels back, and the runs after change nothing; no target restarts."""
    p = f"to{unique}"
    cat = generated_catalog(p, {"config": ["a"]}, refresh="5s", restart=[("Deployment", "web")])
    s = box.settings(state_dir=tmp_path, handover="owner")
    kube = Kube(box.state.kubeconfig)
    results, _ = run(s, cat, ["placeholders"])
    placeholder = kube.read_secret_object(p, "config")
    workload(kube, p, "Deployment", "web")
    wait_until(lambda: revision(kube, p, "Deployment", "web") == "1", "web's first revision")
    results, _ = run(s, cat, ALL_PHASES)
    assert verified(results), results
    taken = kube.read_secret_object(p, "config")
    assert taken.metadata.uid == placeholder.metadata.uid  # the same object, now the operator's
    assert [r.kind for r in taken.metadata.owner_references or []] == ["VaultStaticSecret"]
    state = tmp_path / "terraform" / "state" / "placeholders.tfstate"
    assert f'"{p}/config"' in state.read_text()

    again, _ = run(s, cat, ALL_PHASES)
    (placeholders,) = [r for r in again if r.name == "placeholders"]
    assert placeholders.status == "applied", placeholders
    assert [(type(a).__name__, a.verb) for a in placeholders.actions if a.changes] == [
        ("ReleaseSecret", "update")
    ], placeholders.actions
    assert f'"{p}/config"' not in state.read_text()  # forgotten by Terraform ...
    assert kube.read_secret_object(p, "config").metadata.uid == placeholder.metadata.uid  # kept
    third, _ = run(s, cat, ALL_PHASES)
    assert set(statuses(third).values()) == {"no-change"}, statuses(third)
    assert revision(kube, p, "Deployment", "web") == "1"


def test_placeholder_keys_vault_will_not_have_are_flagged(
    box: Box, unique: str, tmp_path: Path
) -> None:
    p = f"dk{unique}"
    kube = Kube(box.state.kubeconfig)
    kube.ensure_namespace(p)
    kube.write_secret(
        p,
        "config",
        {
            "a": conv.placeholder_value(f"{p}-stay", "config", "a").encode(),
            "retired": conv.placeholder_value(f"{p}-stay", "config", "retired").encode(),
        },
    )
    results, _ = run(box.settings(state_dir=tmp_path), catalog(p, False), ["operator"])
    (result,) = [r for r in results if r.name == "operator"]
    warned = [a for a in result.actions if a.target == f"Secret {p}/config" and a.verb == "check"]
    assert len(warned) == 1 and "keys retired are not in the catalog" in warned[0].reason


def test_prune_removes_only_managed(box: Box, unique: str, tmp_path: Path) -> None:
    p = f"pr{unique}"
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    run(s, catalog(p), ["operator"])
    # Unmanaged neighbours in the same namespace.
    kube.write_secret(p, "theirs", {"k": b"v"})
    kube.apply(
        {
            "apiVersion": VSO_API,
            "kind": "VaultStaticSecret",
            "metadata": {"name": "theirs", "namespace": p},
            "spec": {
                "type": "kv-v2",
                "mount": "secret",
                "path": "x/y",
                "destination": {"name": "theirs", "create": False},
                # an existing VaultAuth: VSO v0.1.0 stalls every sync for 30 s on a missing one
                "vaultAuthRef": f"{p}-stay",
            },
        },
        field_manager="someone-else",
    )
    smaller = catalog(p, with_gone=False)
    results, _ = run(s, smaller, ["operator"])
    assert statuses(results) == {"operator": "no-change"}  # kept without --prune
    assert _vss(kube, p, f"{p}-gone-config") is not None
    results, _ = run(box.settings(state_dir=tmp_path, prune=True), smaller, ["operator"])
    deleted = sorted(a.target for r in results for a in r.actions if a.verb == "delete")
    assert deleted == [
        f"ServiceAccount {p}/{p}-gone",
        f"VaultAuth {p}/{p}-gone",
        f"VaultStaticSecret {p}/{p}-gone-config",
    ]
    assert _vss(kube, p, f"{p}-gone-config") is None
    # the operator's finalizer on a VaultAuth lets it go once the operator has seen it
    wait_until(
        lambda: kube.get(VSO_API, "VaultAuth", f"{p}-gone", p) is None, "the VaultAuth to go"
    )
    assert _vss(kube, p, "theirs") is not None
    assert kube.read_secret(p, "theirs") == {"k": b"v"}
    assert _vss(kube, p, "config") is not None


def test_vault_connection_when_told_where_vault_is(box: Box, unique: str, tmp_path: Path) -> None:
    p = f"vc{unique}"
    s = box.settings(
        state_dir=tmp_path,
        vault_connection_address=box.state.bao_addr,
        operator_namespace=f"{p}-vso",
    )
    results, _ = run(s, catalog(p, False), ["operator"])
    assert statuses(results) == {"operator": "applied"}
    conn = Kube(box.state.kubeconfig).get(VSO_API, "VaultConnection", "default", f"{p}-vso")
    assert conn is not None and conn["spec"]["address"] == box.state.bao_addr
