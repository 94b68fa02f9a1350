"""The operator phase's reads and writes without a cluster: its facts from a handful of LISTs
(a fake client answers them), and its apply in waves (namespaces, then kind by kind, deletes
last), each wave in parallel and bounded, the first failure stopping the rest."""

from __future__ import annotations

import base64
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bootstrap.core.errors import KubernetesError
from bootstrap.core.parallel import in_parallel
from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.domain import VSO_API
from bootstrap.model.settings import Settings
from bootstrap.phases import operator
from bootstrap.phases.pipeline import RunContext

CATALOG = """
name: shop
services:
  - name: web
    namespace: apps
    secrets:
      config: {keys: {a: {generate: {length: 16}}}}
      old: {keys: {b: {generate: {length: 16}}}}
      hand: {keys: {c: {generate: {length: 16}}}}
      filled: {keys: {d: {generate: {length: 16}}}}
"""
OURS = {conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE, conv.CATALOG_LABEL: "shop"}


def _ctx(kube: Any, catalog: str = CATALOG) -> RunContext:
    ctx = RunContext(Settings(), parse_catalog(catalog, "catalog.yaml"))
    ctx.target_ = SimpleNamespace(kube=kube)  # type: ignore[assignment]
    return ctx


# -- facts from lists --------------------------------------------------------------------


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _obj(ns: str, name: str, labels: dict[str, str] | None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": {}}


class ListingKube:
    """Answers the LISTs the facts make, as the API server would (items without apiVersion
    and kind), and counts them."""

    def __init__(self, crd: bool = True) -> None:
        self.crd = crd
        self.lists: list[tuple[str, str | None, str | None]] = []
        placeholder = _b64(b"bootstrap-placeholder:web/config/a")
        self.items: dict[tuple[str, str | None], list[dict[str, Any]]] = {
            ("Secret", "apps"): [
                {"metadata": {"name": "config", "namespace": "apps"}, "data": {"a": placeholder}},
                {
                    "metadata": {"name": "old", "namespace": "apps", "labels": OURS},
                    "data": {"b": _b64(b"v"), "stale": _b64(b"v")},
                },
                {"metadata": {"name": "hand", "namespace": "apps"}, "data": {"c": _b64(b"v")}},
                {
                    "metadata": {
                        "name": "filled",
                        "namespace": "apps",
                        "ownerReferences": [{"kind": "VaultStaticSecret", "name": "filled"}],
                    },
                    "data": {"d": _b64(b"v")},
                },
                {"metadata": {"name": "unrelated", "namespace": "apps"}, "data": {}},
            ],
            ("ServiceAccount", "apps"): [
                _obj("apps", "web", None),  # wanted, in the way
                _obj("apps", "default", None),  # not wanted
            ],
            ("ServiceAccount", None): [
                _obj("left", "old", OURS),  # managed, elsewhere
            ],
            ("VaultAuth", None): [
                _obj("apps", "web", {**OURS, conv.CATALOG_LABEL: "other"}),
                _obj("team", "theirs", None),  # not ours, not wanted
            ],
            ("VaultStaticSecret", None): [
                _obj("apps", "config", OURS),
            ],
            ("VaultConnection", None): [],
        }

    pool_size = 4

    def namespaces(self) -> set[str]:
        return {"apps", "left", "team"}

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The one read the facts make besides the lists: the VaultStaticSecret CRD (of the
        v0.1.0 kind: a v1beta1 with none of a current operator's fields), or none."""
        self.lists.append((kind, name, None))
        assert kind == "CustomResourceDefinition"
        return {"spec": {"versions": [{"name": "v1beta1"}]}} if self.crd else None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None
    ) -> list[dict[str, Any]]:
        self.lists.append((kind, namespace, label_selector))
        assert (label_selector is not None) == (kind == "ServiceAccount" and namespace is None)
        items = [dict(i) for i in self.items[(kind, namespace)]]
        return [{**i, "apiVersion": api_version, "kind": kind} for i in items]


def test_facts_come_from_one_list_per_namespace_and_kind() -> None:
    kube = ListingKube()
    facts = operator.Operator().facts(_ctx(kube))
    assert sorted(kube.lists, key=str) == sorted(
        [
            ("Secret", "apps", None),
            ("ServiceAccount", "apps", None),
            ("ServiceAccount", None, operator.SELECTOR),
            ("VaultConnection", None, None),
            ("VaultAuth", None, None),
            ("VaultStaticSecret", None, None),
            ("CustomResourceDefinition", "vaultstaticsecrets.secrets.hashicorp.com", None),
        ],
        key=str,
    )
    assert facts.placeholders == {("apps", "config"), ("apps", "old")}
    # neither carries the labels of a current operator's Secret cache
    assert facts.unlabelled == {("apps", "config"), ("apps", "old")}
    assert facts.api.installed and not facts.api.current
    assert facts.dropped_keys == {("apps", "old"): ["stale"]}
    assert facts.foreign == {("apps", "hand"): "web/hand"}
    assert sorted(facts.objects) == [
        ("ServiceAccount", "apps", "web"),
        ("ServiceAccount", "left", "old"),
        ("VaultAuth", "apps", "web"),
        ("VaultStaticSecret", "apps", "config"),
    ]
    assert facts.objects[("VaultAuth", "apps", "web")]["apiVersion"] == VSO_API


def test_without_the_operator_s_crd_its_kinds_are_not_listed_and_the_plan_says_so() -> None:
    """Listing a kind the API server does not serve would fail before the plan could say
    what to install."""
    kube = ListingKube(crd=False)
    ctx = _ctx(kube)
    facts = operator.Operator().facts(ctx)
    listed = {kind for kind, _, _ in kube.lists}
    assert listed == {"Secret", "ServiceAccount", "CustomResourceDefinition"}
    (only,) = operator.Operator().plan(ctx, facts)
    assert only.verb == "problem" and "install the Vault Secrets Operator" in only.reason


def test_ours_and_owned_by_operator_read_plain_json() -> None:
    marker = {"data": {"k": _b64(b"bootstrap-placeholder:a/b/k")}}
    assert operator.ours(marker, "shop")
    assert operator.ours({"metadata": {"labels": OURS}, "data": {"k": _b64(b"v")}}, "shop")
    assert not operator.ours({"metadata": {"labels": OURS}, "data": {}}, "other")
    assert not operator.ours({"metadata": {}, "data": {"k": _b64(b"v"), "e": ""}}, "shop")
    owned = {"metadata": {"ownerReferences": [{"kind": "VaultStaticSecret"}]}}
    assert operator.owned_by_operator(owned)
    assert not operator.owned_by_operator({"metadata": {"ownerReferences": [{"kind": "Job"}]}})
    assert not operator.owned_by_operator({"metadata": {}})


# -- in_parallel -------------------------------------------------------------------------


def test_in_parallel_keeps_the_order_and_the_bound() -> None:
    """The first four calls meet at a barrier (so four run at once, or the barrier breaks);
    no fifth ever runs beside them."""
    running, most = 0, 0
    lock = threading.Lock()
    four = threading.Barrier(4, timeout=10)

    def work(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        if i < 4:
            four.wait()
        with lock:
            running -= 1
        return i * i

    assert in_parallel(work, list(range(40)), 4) == [i * i for i in range(40)]
    assert most == 4


def test_in_parallel_raises_the_first_failure_and_starts_nothing_after_it() -> None:
    before = threading.active_count()
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            started.append(i)
        if i == 3:
            raise KubernetesError(f"applying VaultStaticSecret apps/s{i}: HTTP 422")
        time.sleep(0.02)

    with pytest.raises(KubernetesError, match="apps/s3: HTTP 422"):
        in_parallel(work, list(range(200)), 4)
    assert len(started) < 50  # the rest of the 200 never started
    assert threading.active_count() == before  # no worker outlives the call


def test_in_parallel_reports_every_failure_of_the_calls_under_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 26, item 6: two calls under way fail; the first is raised, the other logged
    (by message for the product's errors, by type for any other)."""
    both_running = threading.Barrier(2, timeout=10)

    def work(i: int) -> None:
        both_running.wait()
        if i == 0:
            raise KubernetesError("applying VaultAuth apps/web: HTTP 422")
        raise ValueError("text that may hold anything")

    with caplog.at_level("WARNING"), pytest.raises((KubernetesError, ValueError)) as first:
        in_parallel(work, [0, 1], 2)
    others = [r.getMessage() for r in caplog.records if "also failed" in r.getMessage()]
    if isinstance(first.value, KubernetesError):
        assert others == ["also failed, beside the first failure: ValueError"]
    else:
        assert others == [
            "also failed, beside the first failure: applying VaultAuth apps/web: HTTP 422"
        ]


# -- waves -------------------------------------------------------------------------------


def _apply(kind: str, name: str, ns: str = "apps") -> operator.ApplyObject:
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns}}
    return operator.ApplyObject("create", f"{kind} {ns}/{name}", "missing", obj=obj)


def _delete(kind: str, name: str) -> operator.DeleteObject:
    return operator.DeleteObject(
        "delete",
        f"{kind} apps/{name}",
        "gone",
        api_version=VSO_API,
        kind_=kind,
        namespace="apps",
        name=name,
    )


def _namespace(name: str) -> operator.CreateNamespace:
    return operator.CreateNamespace("create", f"namespace {name}", "missing", name=name, labels={})


def test_waves_order_namespaces_then_kinds_then_deletes_in_reverse() -> None:
    plan: list[Action] = [
        Action("check", "Secret apps/x", "keys dropped"),
        _apply("VaultStaticSecret", "s1"),
        _delete("VaultAuth", "gone"),
        _apply("VaultAuth", "web"),
        _namespace("apps"),
        _apply("ServiceAccount", "web"),
        _apply("VaultStaticSecret", "s2"),
        _delete("VaultStaticSecret", "gone"),
        _apply("VaultConnection", "default"),
        _namespace("more"),
        Action("problem", "ServiceAccount apps/api", "not ours"),
    ]
    assert [[a.target for a in wave] for wave in operator.waves(plan)] == [
        ["namespace apps", "namespace more"],
        ["ServiceAccount apps/web"],
        ["VaultConnection apps/default"],
        ["VaultAuth apps/web"],
        ["VaultStaticSecret apps/s1", "VaultStaticSecret apps/s2"],
        ["VaultStaticSecret apps/gone"],
        ["VaultAuth apps/gone"],
    ]


def test_waves_of_a_plan_without_changes_are_none() -> None:
    assert operator.waves([Action("problem", "x", "y"), Action("check", "a", "b")]) == []


# -- apply -------------------------------------------------------------------------------


class FakeKube:
    """Records calls; fails applying the objects named in ``failing``."""

    pool_size = 4

    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.failing = failing or set()
        self.lock = threading.Lock()

    def _record(self, call: str) -> None:
        with self.lock:
            self.calls.append(call)

    def ensure_namespace(self, name: str, labels: dict[str, str]) -> bool:
        self._record(f"namespace {name}")
        return True

    def apply(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        target = f"{obj['kind']} {meta['namespace']}/{meta['name']}"
        if meta["name"] in self.failing:
            raise KubernetesError(f"applying {target}: HTTP 422 Unprocessable Entity: invalid")
        self._record(f"apply {target}")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        self._record(f"delete {kind} {namespace}/{name}")


def test_apply_runs_each_wave_after_the_one_before() -> None:
    kube = FakeKube()
    plan: list[Action] = [
        *(_apply("VaultStaticSecret", f"s{i}") for i in range(30)),
        *(_apply("VaultAuth", f"a{i}") for i in range(30)),
        *(_apply("ServiceAccount", f"a{i}") for i in range(30)),
        _namespace("apps"),
        _delete("VaultAuth", "gone"),
    ]
    operator.Operator().apply(_ctx(kube), plan)
    kinds = [c.split()[1] if c.startswith("apply") else c.split()[0] for c in kube.calls]
    assert kinds == ["namespace"] + ["ServiceAccount"] * 30 + ["VaultAuth"] * 30 + [
        "VaultStaticSecret"
    ] * 30 + ["delete"]


def test_apply_stops_at_the_first_failure_naming_the_object() -> None:
    kube = FakeKube(failing={"a7"})
    plan: list[Action] = [
        *(_apply("VaultAuth", f"a{i}") for i in range(30)),
        *(_apply("VaultStaticSecret", f"s{i}") for i in range(30)),
    ]
    with pytest.raises(KubernetesError, match=r"^applying VaultAuth apps/a7: HTTP 422"):
        operator.Operator().apply(_ctx(kube), plan)
    assert not [c for c in kube.calls if "VaultStaticSecret" in c]  # the next wave never ran
