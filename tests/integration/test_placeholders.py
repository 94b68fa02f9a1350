"""Placeholders through the real OpenTofu and hashicorp/kubernetes provider on the sandbox."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.kube import Kube
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.domain import syncs
from tests.integration.conftest import Box
from tests.integration.helpers import run, statuses


def catalog(prefix: str) -> Catalog:
    return parse_catalog(
        f"""
version: 1
name: {prefix}
shared:
  {prefix}-dns: {{keys: {{token: null}}}}
services:
  - name: {prefix}-app
    namespace: {prefix}-a
    secrets:
      config: {{keys: {{level: null, mode: null}}}}
      credentials: {{keys: {{password: null}}}}
    reads: [shared/{prefix}-dns]
  - name: {prefix}-db
    namespace: {prefix}-b
    secrets:
      credentials: {{keys: {{user: null, password: null}}}}
""",
        "placeholders.yaml",
    )


def test_placeholders_carry_every_key_and_a_rerun_changes_nothing(
    box: Box, unique: str, tmp_path: Path
) -> None:
    cat = catalog(f"ph{unique}")
    s = box.settings(state_dir=tmp_path)
    results, _ = run(s, cat, ["placeholders"])
    assert statuses(results) == {"placeholders": "applied"}, results[1].error
    kube = Kube(box.state.kubeconfig)
    for sync in syncs(cat):
        data = kube.read_secret(sync.namespace, sync.destination)
        assert data is not None and set(data) == set(sync.keys)
        for key, value in data.items():
            assert value.decode() == conv.placeholder_value(sync.owner, sync.secret, key)
    again, _ = run(s, cat, ["placeholders"])
    assert statuses(again) == {"placeholders": "no-change"}
    state = tmp_path / "terraform" / "state" / "placeholders.tfstate"
    assert state.stat().st_size > 0  # OpenTofu truncated a state at the default path


def test_real_values_survive_a_reapply(box: Box, unique: str, tmp_path: Path) -> None:
    cat = catalog(f"rv{unique}")
    s = box.settings(state_dir=tmp_path)
    run(s, cat, ["placeholders"])
    kube = Kube(box.state.kubeconfig)
    ns = f"rv{unique}-a"
    real = {"level": b"debug", "mode": b"production"}
    # as the operator fills it in place: the data changes, the labels stay
    kube.core.patch_namespaced_secret(
        "config", ns, {"data": {k: base64.b64encode(v).decode() for k, v in real.items()}}
    )
    results, _ = run(s, cat, ["placeholders"])
    assert statuses(results) == {"placeholders": "no-change"}
    assert kube.read_secret(ns, "config") == real


def test_existing_namespace_and_secret_are_used_as_they_are(
    box: Box, unique: str, tmp_path: Path
) -> None:
    prefix = f"ex{unique}"
    kube = Kube(box.state.kubeconfig)
    kube.ensure_namespace(f"{prefix}-a", {"team": "theirs"})
    kube.write_secret(f"{prefix}-a", "credentials", {"password": b"already-real"})
    s = box.settings(state_dir=tmp_path)
    results, _ = run(s, catalog(prefix), ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert result.status == "applied", result.error
    adopted = {a.target for a in result.actions if a.verb == "check"}
    assert {f"namespace {prefix}-a", f"Secret {prefix}-a/credentials"} <= adopted
    assert kube.read_secret(f"{prefix}-a", "credentials") == {"password": b"already-real"}
    ns = kube.core.read_namespace(f"{prefix}-a")
    assert ns.metadata is not None and ns.metadata.labels is not None
    assert ns.metadata.labels.get("team") == "theirs"
    assert kube.read_secret(f"{prefix}-a", "config") is not None  # created inside it


def test_kubernetes_backend_keeps_state_in_the_cluster(
    box: Box, unique: str, tmp_path: Path
) -> None:
    s = box.settings(
        state_dir=tmp_path, terraform_backend="kubernetes", lock_namespace=f"kb{unique}"
    )
    Kube(box.state.kubeconfig).ensure_namespace(f"kb{unique}")
    results, _ = run(s, catalog(f"kb{unique}"), ["placeholders"])
    assert statuses(results) == {"placeholders": "applied"}
    kube = Kube(box.state.kubeconfig)
    # Any: the client's Secret model has every field optional; a listed Secret has its name
    secrets: list[Any] = kube.core.list_namespaced_secret(f"kb{unique}").items
    names = [x.metadata.name for x in secrets]
    assert any("placeholders" in n for n in names), names
    assert not (tmp_path / "terraform" / "state" / "placeholders.tfstate").exists()


@pytest.mark.parametrize("binary", ["terraform-that-is-not-installed"])
def test_missing_binary_is_a_clear_error(
    box: Box, unique: str, tmp_path: Path, binary: str
) -> None:
    s = box.settings(state_dir=tmp_path, terraform_binary=binary)
    results, _ = run(s, catalog(f"mb{unique}"), ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert result.status == "failed" and f"{binary} not found" in (result.error or "")


def _planned(tmp_path: Path) -> bool:
    """Whether the last run made OpenTofu plan (a plan file is left when nothing applied it)."""
    return (tmp_path / "terraform" / "plan.bin").exists()


def test_a_rerun_skips_terraform_only_while_the_cluster_matches_its_state(
    box: Box, unique: str, tmp_path: Path
) -> None:
    """After an apply, a re-run with the same inputs does not run OpenTofu at all; an object
    deleted or relabelled by hand, or a changed catalog, makes it plan again."""
    prefix = f"fp{unique}"
    cat = catalog(prefix)
    s = box.settings(state_dir=tmp_path)
    assert statuses(run(s, cat, ["placeholders"])[0]) == {"placeholders": "applied"}
    assert statuses(run(s, cat, ["placeholders"])[0]) == {"placeholders": "no-change"}
    assert not _planned(tmp_path)
    kube = Kube(box.state.kubeconfig)
    # deleted by hand: Terraform plans and puts it back
    kube.core.delete_namespaced_secret("credentials", f"{prefix}-b")
    results, _ = run(s, cat, ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert result.status == "applied", result.error
    assert {a.verb for a in result.actions if a.changes} == {"create"}
    assert kube.read_secret(f"{prefix}-b", "credentials") is not None
    # a label added by hand: a refresh sees it, and Terraform removes it
    kube.core.patch_namespaced_secret("config", f"{prefix}-a", {"metadata": {"labels": {"x": "y"}}})
    results, _ = run(s, cat, ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert [a.verb for a in result.actions if a.changes] == ["update"], result.actions
    secret = kube.read_secret_object(f"{prefix}-a", "config")
    assert "x" not in (secret.metadata.labels or {})
    # the next run is quiet again, without a plan
    assert statuses(run(s, cat, ["placeholders"])[0]) == {"placeholders": "no-change"}
    assert not _planned(tmp_path)


def test_a_state_of_the_flat_module_is_renamed_not_recreated(
    box: Box, unique: str, tmp_path: Path
) -> None:
    """States written before the module grouped Secrets by namespace hold them at
    ``kubernetes_secret_v1.placeholder[...]``: the next run renames them in the state (moved
    blocks), with no create or delete, and the objects stay the same."""
    from bootstrap.phases import placeholders as ph

    prefix = f"mv{unique}"
    cat = catalog(prefix)
    s = box.settings(state_dir=tmp_path)
    assert statuses(run(s, cat, ["placeholders"])[0]) == {"placeholders": "applied"}
    kube = Kube(box.state.kubeconfig)
    uid = kube.read_secret_object(f"{prefix}-a", "config").metadata.uid
    # rewrite the state as the flat module left it (addresses only; same objects)
    import json

    state_file = tmp_path / "terraform" / "state" / "placeholders.tfstate"
    state = json.loads(state_file.read_text())
    for res in state["resources"]:
        res.pop("module", None)
    state["serial"] += 1
    state_file.write_text(json.dumps(state))
    results, _ = run(s, cat, ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert result.status == "applied", result.error
    renamed = [a for a in result.actions if a.changes]
    assert renamed and all("renamed in Terraform's state" in a.reason for a in renamed)
    assert {a.target for a in renamed} == {
        ph.secret_address(f"{sync.namespace}/{sync.destination}") for sync in syncs(cat)
    }
    assert kube.read_secret_object(f"{prefix}-a", "config").metadata.uid == uid
    assert statuses(run(s, cat, ["placeholders"])[0]) == {"placeholders": "no-change"}
