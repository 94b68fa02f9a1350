"""The manifests of cluster.create: names, namespaces, probes, optional mounts, replicas,
storage, the operator's RBAC as its source declares it, and no privileged container."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bootstrap.core import paths
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import load_catalog, parse_catalog
from bootstrap.model.cluster import (
    IMAGE_REPOSITORY,
    ClusterConfigError,
    ClusterImages,
    ClusterOptions,
    OperatorSource,
    image_ref,
    openbao_address,
    openbao_config,
    openbao_node_addresses,
    render_cluster,
)
from bootstrap.model.domain import WORKLOAD_API, syncs

EXAMPLE = paths.REPO / "catalog.yaml"
IMAGES = ClusterImages(
    openbao=image_ref("openbao", "2.7.2"),
    operator=image_ref("vault-secrets-operator", "1.4.1"),
    demo=image_ref("demo", "0.1.0"),
)
RULES = ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update"]},)
LEADER = ({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]},)
CRDS = tuple(
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind}.secrets.hashicorp.com"},
    }
    for kind in ("vaultauths", "vaultconnections", "vaultstaticsecrets")
)
SOURCE = OperatorSource(CRDS, RULES, LEADER)


def _render(**options: Any) -> list[dict[str, Any]]:
    return render_cluster(load_catalog(EXAMPLE), IMAGES, SOURCE, ClusterOptions(**options))


def _one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _pods(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o["spec"]["template"]["spec"]
        for o in objs
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
    ]


def test_openbao_starts_sealed_as_a_raft_statefulset() -> None:
    objs = _render()
    sts = _one(objs, "StatefulSet", "openbao")
    assert sts["metadata"]["namespace"] == "openbao"
    assert sts["spec"]["replicas"] == 1
    assert sts["spec"]["serviceName"] == "openbao-internal"
    # a sealed pod is never Ready: ordered start would keep the second pod from starting
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["-config=/openbao/config"]
    assert not any("-dev" in a for a in container["args"])
    hcl = _one(objs, "ConfigMap", "openbao-config")["data"]["config.hcl"]
    assert 'storage "raft"' in hcl and 'audit "file"' in hcl
    assert "seal " not in hcl and "retry_join" not in hcl  # no auto-unseal; joins by bootstrap
    env = {e["name"]: e for e in container["env"]}
    assert env["BAO_RAFT_NODE_ID"]["value"] == "$(POD_NAME)"
    assert env["BAO_API_ADDR"]["value"] == "http://$(POD_IP):8200"


def test_openbao_probes_keep_a_sealed_pod_live_but_not_ready() -> None:
    sts = _one(_render(), "StatefulSet", "openbao")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    live = container["livenessProbe"]["httpGet"]["path"]
    ready = container["readinessProbe"]["httpGet"]["path"]
    assert live.startswith("/v1/sys/health?")
    assert "sealedcode=204" in live and "uninitcode=204" in live and "standbyok=true" in live
    assert ready.startswith("/v1/sys/health?") and "standbyok=true" in ready
    assert "sealedcode" not in ready and "uninitcode" not in ready


def test_openbao_services_reach_sealed_pods() -> None:
    objs = _render()
    headless = _one(objs, "Service", "openbao-internal")
    served = _one(objs, "Service", "openbao")
    assert headless["spec"]["clusterIP"] == "None"
    for svc in (headless, served):
        assert svc["spec"]["publishNotReadyAddresses"] is True
        assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "openbao"}
        assert svc["metadata"]["namespace"] == "openbao"
    assert _one(objs, "ServiceAccount", "openbao")["metadata"]["namespace"] == "openbao"


@pytest.mark.parametrize("replicas", [1, 3])
def test_openbao_replicas_and_node_addresses(replicas: int) -> None:
    sts = _one(_render(openbao_replicas=replicas), "StatefulSet", "openbao")
    assert sts["spec"]["replicas"] == replicas
    addrs = openbao_node_addresses(ClusterOptions(openbao_replicas=replicas))
    assert addrs[0] == "http://openbao-0.openbao-internal.openbao.svc:8200"
    assert len(addrs) == replicas


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"openbao_replicas": 2}, "1 or 3"),
        ({"openbao_storage": "nfs"}, "'pvc' or 'hostPath'"),
        ({"openbao_storage": "hostPath"}, "absolute"),
        ({"openbao_namespace": "Bad_NS"}, "DNS label"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        _render(**options)


def test_openbao_storage_pvc_or_host_path() -> None:
    pvc = _one(_render(), "StatefulSet", "openbao")
    (claim,) = pvc["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    host = _one(
        _render(openbao_storage="hostPath", openbao_host_path="/srv/bao", openbao_replicas=3),
        "StatefulSet",
        "openbao",
    )
    assert "volumeClaimTemplates" not in host["spec"]
    pod = host["spec"]["template"]["spec"]
    (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["hostPath"] == {"path": "/srv/bao", "type": "Directory"}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "data"]
    assert mount["subPathExpr"] == "$(POD_NAME)"  # one folder per pod on the one node


def test_the_operator_runs_in_cluster_with_its_source_trees_rbac() -> None:
    objs = _render()
    ns = conv.OPERATOR_NAMESPACE
    sa = "vault-secrets-operator-controller-manager"
    dep = _one(objs, "Deployment", sa)
    assert dep["metadata"]["namespace"] == ns
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa
    (container,) = pod["containers"]
    assert "--leader-elect" in container["args"]
    assert not any(a.startswith("--leader-elect=false") for a in container["args"])
    # as its Helm chart: the pod's name and UID (the UID marks the status it writes), in
    # the environment and in /var/run/podinfo; its namespace as a fallback
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {
        "OPERATOR_POD_NAME": "metadata.name",
        "OPERATOR_POD_UID": "metadata.uid",
        "OPERATOR_NAMESPACE": "metadata.namespace",
    }
    (mount,) = container["volumeMounts"]
    assert mount == {"name": "podinfo", "mountPath": "/var/run/podinfo", "readOnly": True}
    (podinfo,) = pod["volumes"]
    items = {i["path"]: i["fieldRef"]["fieldPath"] for i in podinfo["downwardAPI"]["items"]}
    assert items == {"name": "metadata.name", "uid": "metadata.uid"}
    assert container["image"] == IMAGES.operator
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": 8081}
    assert "--health-probe-bind-address=:8081" in container["args"]
    assert "--metrics-bind-address=127.0.0.1:8080" in container["args"]
    assert "--zap-log-level=info" in container["args"]  # never debug: it logs Secret data
    role = _one(objs, "ClusterRole", "vault-secrets-operator-manager-role")
    assert role["rules"] == list(RULES)
    leader = _one(objs, "Role", "vault-secrets-operator-leader-election-role")
    assert leader["rules"] == list(LEADER) and leader["metadata"]["namespace"] == ns
    for kind, role_name in (
        ("ClusterRoleBinding", "vault-secrets-operator-manager-role"),
        ("RoleBinding", "vault-secrets-operator-leader-election-role"),
    ):
        (binding,) = [o for o in objs if o["kind"] == kind]
        assert binding["roleRef"]["name"] == role_name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    assert _one(objs, "ServiceAccount", sa)["metadata"]["namespace"] == ns


def test_the_operators_extra_flags_follow_the_fixed_ones() -> None:
    flags = ("--kube-client-qps=50", "--kube-client-burst=100", "--max-concurrent-reconciles=4")
    dep = _one(
        _render(operator_args=flags), "Deployment", "vault-secrets-operator-controller-manager"
    )
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "--leader-elect" and tuple(args[-3:]) == flags
    with pytest.raises(ClusterConfigError, match="not --flag=value"):
        _render(operator_args=("--leader-elect=false; rm",))


def test_apply_order_namespaces_then_crds_then_the_rest() -> None:
    objs = _render()
    kinds = [o["kind"] for o in objs]
    last_ns = max(i for i, k in enumerate(kinds) if k == "Namespace")
    crds = [i for i, k in enumerate(kinds) if k == "CustomResourceDefinition"]
    assert len(crds) == len(CRDS) and min(crds) > last_ns
    assert max(crds) < kinds.index("Deployment") and max(crds) < kinds.index("StatefulSet")
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"}
    assert names == {"openbao", conv.OPERATOR_NAMESPACE, *load_catalog(EXAMPLE).namespaces}


def test_one_demo_workload_per_restart_target_of_its_kind() -> None:
    cat = load_catalog(EXAMPLE)
    objs = _render()
    for svc in cat.services:
        for target in svc.restart:
            wl = _one(objs, target.kind, target.name)
            assert wl["metadata"]["namespace"] == svc.namespace
            assert wl["metadata"]["labels"][conv.SERVICE_LABEL] == svc.name
            pod = wl["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["image"] == IMAGES.demo
            wanted = sorted({s.destination for s in syncs(cat) if s.service == svc.name})
            assert sorted(v["secret"]["secretName"] for v in pod["volumes"]) == wanted
            assert container["args"] == [f"/etc/secrets/{d}" for d in wanted]
            if target.kind == "StatefulSet":
                assert wl["spec"]["serviceName"] == target.name
                assert _one(objs, "Service", target.name)["spec"]["clusterIP"] == "None"
            if target.kind == "DaemonSet":
                assert "replicas" not in wl["spec"]
    restart_targets = sum(len(s.restart) for s in cat.services)
    demos = [
        o
        for o in objs
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "demo"
    ]
    assert len([o for o in demos if o["kind"] in WORKLOAD_API]) == restart_targets


def test_demo_pods_start_without_their_secrets_and_probe_them() -> None:
    wl = _one(_render(), "Deployment", "webapp")
    pod = wl["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert all(v["secret"]["optional"] is True for v in pod["volumes"])
    assert container["env"], "each key also as an environment variable"
    for env in container["env"]:
        assert env["name"].startswith("DEMO_SECRET_") and env["name"].isidentifier()
        assert env["valueFrom"]["secretKeyRef"]["optional"] is True
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert all(m["readOnly"] for m in container["volumeMounts"])
    live = container["livenessProbe"]["exec"]["command"]
    ready = container["readinessProbe"]["exec"]["command"]
    assert live == [
        "/usr/bin/python3.11",
        "-I",
        "/app/health_probe.py",
        "liveness",
        "--missing-ok",
        *mounts,
    ]
    assert ready == [*live[:3], "readiness", "--missing-ok", *mounts]
    assert pod["automountServiceAccountToken"] is False  # the demo needs no API access


def test_a_workload_two_services_restart_is_rendered_once_with_both_secrets() -> None:
    cat = parse_catalog(
        """
services:
  - name: a
    namespace: shop
    secrets: {one: {keys: {k: null}}}
    restart: [{kind: Deployment, name: web}]
  - name: b
    namespace: shop
    secrets: {two: {keys: {k: null}}}
    restart: [{kind: Deployment, name: web}]
"""
    )
    objs = render_cluster(cat, IMAGES, SOURCE)
    web = _one(objs, "Deployment", "web")
    vols = web["spec"]["template"]["spec"]["volumes"]
    assert sorted(v["secret"]["secretName"] for v in vols) == ["one", "two"]


def test_every_container_is_local_unprivileged_and_non_root() -> None:
    objs = _render()
    pods = _pods(objs)
    assert len(pods) >= 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert not pod.get("hostNetwork") and not pod.get("hostPID")
        for c in pod["containers"]:
            assert c["image"].startswith(IMAGE_REPOSITORY + "/")
            assert c["imagePullPolicy"] == "Never"
            sc = c["securityContext"]
            assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}


def test_nothing_looks_managed_to_prune() -> None:
    """Only the operator phase's objects carry the product's managed-by and catalog labels
    (prune removes those); the cluster's own objects must not."""
    for obj in _render():
        labels = obj["metadata"].get("labels", {})
        assert conv.MANAGED_BY_LABEL not in labels and conv.CATALOG_LABEL not in labels


def test_rendering_is_deterministic_yaml(tmp_path: Path) -> None:
    a = yaml.safe_dump_all(_render(), sort_keys=True)
    b = yaml.safe_dump_all(_render(), sort_keys=True)
    assert a == b
    assert len(list(yaml.safe_load_all(a))) == len(_render())


def test_openbao_config_follows_the_ports() -> None:
    hcl = openbao_config(ClusterOptions(openbao_port=18200, openbao_cluster_port=18201))
    assert '"[::]:18200"' in hcl and '"[::]:18201"' in hcl


def test_the_operator_reaches_openbao_by_its_service_name() -> None:
    options = ClusterOptions(openbao_namespace="vault", openbao_port=8300)
    assert openbao_address(options) == "http://openbao.vault.svc:8300"
