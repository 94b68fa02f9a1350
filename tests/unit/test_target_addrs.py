"""Vault's node addresses from its StatefulSet's pods (pure part)."""

from __future__ import annotations

from typing import Any

import pytest

from bootstrap.core.waits import Pending
from bootstrap.runtime.target import statefulset_addrs

STS = {"metadata": {"name": "openbao", "uid": "u1"}, "spec": {"replicas": 3}}


def pod(name: str, ip: str | None, owner: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "ownerReferences": [{"uid": owner}]},
        "status": {"podIP": ip} if ip else {},
    }


def test_pod_zero_first_whatever_the_list_order() -> None:
    pods = [pod("openbao-2", "10.1.0.4"), pod("openbao-0", "10.1.0.2"), pod("openbao-1", "fd00::3")]
    assert statefulset_addrs(STS, pods, "http", 8200) == [
        "http://10.1.0.2:8200",
        "http://[fd00::3]:8200",
        "http://10.1.0.4:8200",
    ]


def test_a_pod_without_ip_is_pending_and_named() -> None:
    pods = [pod("openbao-0", "10.1.0.2"), pod("openbao-1", None)]
    with pytest.raises(Pending, match="openbao-1, openbao-2"):
        statefulset_addrs(STS, pods, "http", 8200)


def test_pods_of_another_owner_or_name_are_not_counted() -> None:
    pods = [
        pod("openbao-0", "10.1.0.2"),
        pod("openbao-1", "10.9.9.9", owner="someone-else"),
        pod("openbao-x", "10.9.9.8"),
        pod("openbao-2", "10.1.0.4"),
    ]
    with pytest.raises(Pending, match=r"openbao-1$"):
        statefulset_addrs(STS, pods, "https", 8200)
    one = {"metadata": {"name": "openbao", "uid": "u1"}, "spec": {"replicas": 1}}
    assert statefulset_addrs(one, pods, "https", 8300) == ["https://10.1.0.2:8300"]
