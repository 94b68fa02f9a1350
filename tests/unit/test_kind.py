"""cluster.create --kind's own part (pure): kind's configuration maps OpenBao's node ports to
loopback only, one NodePort Service per pod selecting exactly that pod of the StatefulSet the
manifests render, the settings bootstrap gets, kind's commands, names kind accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.model import cluster as model
from bootstrap.model import kind as kmodel
from bootstrap.model.catalog import load_catalog
from bootstrap.model.cluster import OperatorSource, render_cluster
from bootstrap.model.settings import Settings
from tests.unit.test_cluster import CRDS, EXAMPLE, IMAGES, LEADER, RULES

PORTS = [41001, 41002, 41003]


def test_kind_config_maps_each_pod_port_to_loopback_only() -> None:
    config = kmodel.kind_config(PORTS)
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["kind"] == "Cluster"
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    maps = node["extraPortMappings"]
    assert [(m["containerPort"], m["hostPort"]) for m in maps] == [
        (30820, 41001),
        (30821, 41002),
        (30822, 41003),
    ]
    assert {m["listenAddress"] for m in maps} == {"127.0.0.1"}
    with pytest.raises(ValueError, match="3 host ports expected"):
        kmodel.kind_config(PORTS[:1])


@pytest.mark.parametrize("replicas", [1, 3])
def test_each_local_service_selects_one_pod_of_the_rendered_statefulset(replicas: int) -> None:
    opts = kmodel.options(replicas)
    objects = render_cluster(
        load_catalog(EXAMPLE), IMAGES, OperatorSource(CRDS, RULES, LEADER), opts
    )
    (sts,) = [
        o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "openbao"
    ]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    services = kmodel.local_services(opts)
    assert [s["metadata"]["name"] for s in services] == [
        f"openbao-{i}-local" for i in range(replicas)
    ]
    for i, svc in enumerate(services):
        assert svc["metadata"]["namespace"] == sts["metadata"]["namespace"]
        spec = svc["spec"]
        assert spec["type"] == "NodePort" and spec["publishNotReadyAddresses"] is True
        selector = dict(spec["selector"])
        # the StatefulSet controller labels pod i with its name; the rest is the template's
        assert selector.pop("statefulset.kubernetes.io/pod-name") == f"openbao-{i}"
        assert selector.items() <= pod_labels.items()
        (port,) = spec["ports"]
        assert port["nodePort"] == 30820 + i and port["targetPort"] == opts.openbao_port
    # PVCs from kind's provisioner, and DNS names for raft peers
    assert "volumeClaimTemplates" in sts["spec"]
    assert opts.cluster_dns


def test_settings_for_one_pod_and_for_three() -> None:
    one = kmodel.settings_env(kmodel.options(1), PORTS, Path("/s/kubeconfig"))
    assert one == {
        "INVOKE_BOOTSTRAP_KUBECONFIG": "/s/kubeconfig",
        "INVOKE_BOOTSTRAP_VAULT_ADDRS": "http://127.0.0.1:41001",
        "INVOKE_BOOTSTRAP_VAULT_KUBERNETES_HOST": "https://kubernetes.default.svc:443",
        "INVOKE_BOOTSTRAP_VAULT_CONNECTION_ADDRESS": "http://openbao.openbao.svc:8200",
        "INVOKE_BOOTSTRAP_AUDIT_FILE": model.AUDIT_LOG,
    }
    three = kmodel.settings_env(kmodel.options(3), PORTS, Path("/s/kubeconfig"))
    assert three["INVOKE_BOOTSTRAP_VAULT_ADDRS"].split(",") == [
        f"http://127.0.0.1:{p}" for p in PORTS
    ]
    # followers join pod 0 by its in-cluster name, not by the laptop's forwarded port
    assert three["INVOKE_BOOTSTRAP_VAULT_RAFT_LEADER_ADDR"] == (
        "http://openbao-0.openbao-internal.openbao.svc:8200"
    )
    # every key is a setting the product reads
    keys = {f"INVOKE_BOOTSTRAP_{k.upper()}" for k in Settings.__dataclass_fields__}
    assert set(three) <= keys


def test_kind_commands_make_the_cluster_only_when_absent() -> None:
    archives = [Path("/t/images/openbao-2.7.2.tar"), Path("/t/images/demo-0.1.0.tar")]
    args = ("kind", "csb-local", Path("/s/kind.yaml"), Path("/s/kubeconfig"), archives)
    fresh = kmodel.create_commands(*args, exists=False)
    again = kmodel.create_commands(*args, exists=True)
    assert fresh[0][:5] == ["kind", "create", "cluster", "--name", "csb-local"]
    assert "/s/kind.yaml" in fresh[0] and "/s/kubeconfig" in fresh[0]
    assert fresh[1:] == again
    assert again[0] == [
        "kind",
        "export",
        "kubeconfig",
        "--name",
        "csb-local",
        "--kubeconfig",
        "/s/kubeconfig",
    ]
    assert [c[3] for c in again[1:]] == [str(a) for a in archives]
    assert all(c[1:3] == ["load", "image-archive"] for c in again[1:])


@pytest.mark.parametrize(
    ("name", "ok"),
    [("csb-local", True), ("a", True), ("Csb", False), ("-x", False), ("x" * 33, False)],
)
def test_cluster_names(name: str, ok: bool) -> None:
    problem = kmodel.name_problem(name)
    assert (problem is None) == ok, problem
    if not ok:
        assert repr(name) in str(problem)


def test_a_kind_cluster_it_did_not_make_is_neither_used_nor_deleted() -> None:
    record = Path("/s/kind/csb-local/kind.json")
    # someone else's cluster of that name: refused for create, and for delete
    create = kmodel.ownership_problem("csb-local", ["csb-local"], None, record, deleting=False)
    delete = kmodel.ownership_problem("csb-local", ["csb-local"], None, record, deleting=True)
    assert create is not None and "takes over nothing it did not make" in create
    assert delete is not None and "nothing deleted" in delete and str(record) in delete
    # ours (recorded): reused, deleted
    assert kmodel.ownership_problem("csb-local", ["csb-local"], "csb-local", record, False) is None
    assert kmodel.ownership_problem("csb-local", ["csb-local"], "csb-local", record, True) is None
    # none of that name: made; a record alone (the cluster gone) may be cleared
    assert kmodel.ownership_problem("csb-local", ["other"], None, record, False) is None
    assert kmodel.ownership_problem("csb-local", [], "csb-local", record, True) is None
    assert kmodel.ownership_problem("csb-local", [], None, record, True) is not None
