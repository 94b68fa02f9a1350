"""What a careless or hostile catalog, or another tool's objects, must not make the product do,
on the sandbox: hand a Secret it did not make to the operator (its data would be replaced),
take over another owner's ServiceAccount or VaultAuth, let Terraform destroy a namespace or a
Secret without --prune, keep real values in Terraform's state, replace a custody record, or
lose or delete another run's lock."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

from kubernetes import client

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.core.errors import VaultStateError
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, load_catalog, parse_catalog
from bootstrap.model.domain import VSO_API, kv_secrets
from bootstrap.runtime.custody import InitRecord, KubernetesSecretCustody
from bootstrap.runtime.lock import LEASE_NAME, cluster_lock
from tests.conftest import EXAMPLE
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, run, statuses, wait_until


def two_services(p: str, *, with_b: bool = True, a_destination: str = "config") -> Catalog:
    b = f"""
  - name: {p}-b
    namespace: {p}-b
    secrets:
      credentials: {{keys: {{password: {{generate: {{length: 16}}}}}}}}
"""
    return parse_catalog(
        f"""
name: {p}
services:
  - name: {p}-a
    namespace: {p}-a
    secrets:
      config: {{destination: {a_destination}, keys: {{level: {{generate: {{length: 16}}}}}}}}
{b if with_b else ""}""",
        "security.yaml",
    )


def _namespace_a(box: Box, p: str) -> Kube:
    """Service a's namespace, there before the bootstrap (someone else's objects go in it)."""
    kube = Kube(box.state.kubeconfig)
    kube.ensure_namespace(f"{p}-a")
    return kube


def _problem(results: list[Any], phase: str) -> str:
    (result,) = [r for r in results if r.name == phase]
    assert result.status == "failed", result
    return str(result.error)


def test_a_secret_the_bootstrap_did_not_make_is_never_handed_to_the_operator(
    box: Box, unique: str, tmp_path: Path
) -> None:
    p = f"hs{unique}"
    kube = _namespace_a(box, p)
    kube.write_secret(f"{p}-a", "config", {"level": b"a real value, made by hand"})
    results, _ = run(box.settings(state_dir=tmp_path), two_services(p, with_b=False), ["operator"])
    error = _problem(results, "operator")
    assert f"Secret {p}-a/config: exists and was not made by the bootstrap" in error
    assert kube.get(VSO_API, "VaultStaticSecret", "config", f"{p}-a") is None
    assert kube.read_secret(f"{p}-a", "config") == {"level": b"a real value, made by hand"}


def test_objects_of_another_owner_are_never_taken_over_or_pruned(
    box: Box, unique: str, tmp_path: Path
) -> None:
    p = f"so{unique}"
    kube = _namespace_a(box, p)
    helm = {"app.kubernetes.io/managed-by": "Helm"}
    kube.ensure_service_account(f"{p}-a", f"{p}-a", helm)
    results, _ = run(box.settings(state_dir=tmp_path), two_services(p, with_b=False), ["operator"])
    error = _problem(results, "operator")
    assert f"ServiceAccount {p}-a/{p}-a: exists and belongs to someone else" in error
    sa = kube.core.read_namespaced_service_account(f"{p}-a", f"{p}-a")
    assert sa.metadata is not None
    assert sa.metadata.labels == helm  # not relabelled, so never pruned either
    # another catalog's VaultAuth in the namespace is not this catalog's to change or prune
    kube.core.delete_namespaced_service_account(f"{p}-a", f"{p}-a")
    other = parse_catalog(
        f"name: {p}-other\nservices:\n  - name: {p}-a\n    namespace: {p}-a\n"
        "    secrets: {config: {keys: {level: null}}}\n",
        "other.yaml",
    )
    results, _ = run(box.settings(state_dir=tmp_path / "other"), other, ["operator"])
    assert {r.name: r.status for r in results}["operator"] == "applied"
    results, _ = run(
        box.settings(state_dir=tmp_path, prune=True), two_services(p, with_b=False), ["operator"]
    )
    assert f"belongs to catalog '{p}-other'" in _problem(results, "operator")
    auth = kube.get(VSO_API, "VaultAuth", f"{p}-a", f"{p}-a")
    assert auth is not None and auth["metadata"]["labels"][conv.CATALOG_LABEL] == f"{p}-other"


def test_terraform_never_destroys_without_prune(box: Box, unique: str, tmp_path: Path) -> None:
    p = f"td{unique}"
    s = box.settings(state_dir=tmp_path)
    kube = Kube(box.state.kubeconfig)
    results, _ = run(s, two_services(p), ["placeholders"])
    assert statuses(results) == {"placeholders": "applied"}
    kube.core.patch_namespaced_secret(  # as the operator fills it: data only
        "config", f"{p}-a", {"data": {"level": base64.b64encode(b"real value").decode()}}
    )
    # service b leaves the catalog (the last of its namespace), a's destination is renamed
    smaller = two_services(p, with_b=False, a_destination="settings")
    results, _ = run(s, smaller, ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    assert result.status == "applied", result.error
    kept = {a.target for a in result.actions if a.reason.startswith("left the catalog: kept")}
    assert kept == {f"namespace {p}-b", f"Secret {p}-a/config", f"Secret {p}-b/credentials"}
    assert not [a for a in result.actions if a.verb == "delete"]
    assert f"{p}-b" in kube.namespaces()
    assert kube.read_secret(f"{p}-a", "config") == {"level": b"real value"}
    assert kube.read_secret(f"{p}-a", "settings") is not None  # the new one was created
    # with --prune, Terraform removes what it made and what left the catalog
    results, _ = run(box.settings(state_dir=tmp_path, prune=True), smaller, ["placeholders"])
    (result,) = [r for r in results if r.name == "placeholders"]
    deleted = {a.target for a in result.actions if a.verb == "delete"}
    assert deleted == {
        f'kubernetes_namespace_v1.this["{p}-b"]',
        f'module.namespace["{p}-a"].kubernetes_secret_v1.placeholder["{p}-a/config"]',
        f'module.namespace["{p}-b"].kubernetes_secret_v1.placeholder["{p}-b/credentials"]',
    }
    assert kube.read_secret(f"{p}-a", "config") is None


def test_no_real_value_in_terraform_state_or_plan(box: Box, first_run: dict[str, Any]) -> None:
    """The first run's placeholders were filled by the operator; a re-run of the placeholders
    phase refreshes Terraform's view of them, and still nothing real is in its files."""
    s = box.settings()
    # without the record of the last apply, the re-run plans (and refreshes) in full
    (Path(s.state_dir) / "terraform" / "applied.json").unlink(missing_ok=True)
    results, _ = run(s, load_catalog(EXAMPLE), ["placeholders"])
    assert statuses(results) == {"placeholders": "no-change"}
    assert (Path(s.state_dir) / "terraform" / "plan.bin").exists()
    api = admin_api(box)
    values = [
        v
        for path, _ in kv_secrets(load_catalog(EXAMPLE))
        for v in read_kv(api, path)[0].values()
        if len(v) >= 12  # not 'info' or 'webapp': words that occur anywhere
    ]
    assert len(values) > 12
    folder = Path(s.state_dir) / "terraform"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = [f for f in folder.rglob("*") if f.is_file() and "plugin-cache" not in f.parts]
    assert folder / "state" / "placeholders.tfstate" in files
    for f in files:
        if f.stat().st_size > 5_000_000:  # provider binaries
            continue
        text = f.read_bytes()
        for value in values:
            assert value.encode() not in text, f"a real value is in {f}"


def test_custody_records_are_created_never_replaced(box: Box, unique: str) -> None:
    kube = Kube(box.state.kubeconfig)
    custody = KubernetesSecretCustody(kube, f"cu{unique}", "vault-init")
    custody.probe()  # free, and we may create Secrets there; nothing is left behind
    assert kube.read_secret(f"cu{unique}", "vault-init") is None
    first = InitRecord(["a", "b", "c"], "root-one", 3, 2)
    custody.store(first)
    try:
        custody.store(InitRecord(["x"], "root-two", 1, 1))
    except VaultStateError as exc:
        assert "refusing to overwrite" in str(exc)
    else:
        raise AssertionError("a second record replaced the first")
    assert custody.load() == first
    kube.write_secret(f"cu{unique}", "taken", {"other": b"x"})
    taken = KubernetesSecretCustody(kube, f"cu{unique}", "taken")
    assert "exists and holds no init record" in (taken.occupied() or "")


def test_the_lock_is_renewed_and_never_released_for_another_holder(box: Box, unique: str) -> None:
    kube = Kube(box.state.kubeconfig)
    ns = f"lk{unique}"
    # Any: the client's Lease model makes every field optional; the lock's lease has a spec
    coord: Any = client.CoordinationV1Api(kube.api)
    with cluster_lock(kube, ns, duration=3, holder="run-a") as held:
        first = coord.read_namespaced_lease(LEASE_NAME, ns).spec.renew_time
        wait_until(
            lambda: coord.read_namespaced_lease(LEASE_NAME, ns).spec.renew_time > first,
            "a renewal of the lock",
        )
        assert not held.lost.is_set()
        # run-a stalls; its lease is taken over by run-b (as after an expiry)
        lease = coord.read_namespaced_lease(LEASE_NAME, ns)
        lease.spec.holder_identity = "run-b"
        coord.replace_namespaced_lease(LEASE_NAME, ns, lease)
        wait_until(held.lost.is_set, "run-a to notice it lost the lock")
    lease = coord.read_namespaced_lease(LEASE_NAME, ns)  # still there: run-b's
    assert lease.spec.holder_identity == "run-b"
