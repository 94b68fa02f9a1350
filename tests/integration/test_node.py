"""The node sandbox: one Node Ready, pods from an image built here (a static C program, no
registry) judged by the kubelet's probes, ``kubectl logs`` and ``exec`` through the
kubelet's own address, pod IPs reachable from the host, the API server reachable from pods
at the ``kubernetes`` Service's ClusterIP, other Services' ClusterIPs served by kube-proxy
inside the node's namespace, and nothing left behind by ``down``."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.clients.procs import alive
from bootstrap.core.errors import SandboxError
from bootstrap.sandbox import dnsquery, netns, node
from bootstrap.tooling import oci, tools
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import wait_until

HERE = Path(__file__).resolve().parent
DEMO_IMAGE = "localhost/cluster-secrets-bootstrap/test-demo:1"
DEMO_PORT = 8080


def build_demo(out: Path) -> oci.Built:
    """The tests' workload (``csrc/demo.c``) built with gcc -static, alone in an image."""
    binary = out.with_suffix(".bin")
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(binary), str(HERE / "csrc" / "demo.c")], check=True
    )
    layer = oci.Tree().file("demo", binary, 0o755)
    return oci.write_archive(out, DEMO_IMAGE, [layer], oci.ImageConfig(entrypoint=("/demo",)))


@pytest.fixture(scope="module")
def demo_image(node_box: Box, tmp_path_factory: pytest.TempPathFactory) -> str:
    built = build_demo(tmp_path_factory.mktemp("images") / "demo.tar")
    node.import_image(node_box.state, built.path)
    return DEMO_IMAGE


def kubectl(box: Box, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(tools.require("kubectl", TOOLS_DIR)), "--kubeconfig", box.state.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def demo_pod(name: str, *, liveness: int = 0, readiness: int = 0) -> dict[str, Any]:
    """The demo serving on DEMO_PORT; each probe runs ``/demo exit N`` (0 passes)."""

    def probe(code: int) -> dict[str, Any]:
        return {
            "exec": {"command": ["/demo", "exit", str(code)]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "demo",
                    "image": DEMO_IMAGE,
                    "imagePullPolicy": "Never",
                    "args": ["serve", str(DEMO_PORT)],
                    "readinessProbe": probe(readiness),
                    "livenessProbe": probe(liveness),
                }
            ],
        },
    }


@pytest.fixture
def ns(node_box: Box) -> Iterator[str]:
    kube = Kube(node_box.state.kubeconfig)
    name = f"node-{uuid.uuid4().hex[:8]}"
    kube.ensure_namespace(name)
    # pods are refused until the controller manager made the namespace's default account
    wait_until(
        lambda: (
            kubectl(
                node_box, "-n", name, "get", "serviceaccount", "default", check=False
            ).returncode
            == 0
        ),
        f"namespace {name}'s default ServiceAccount",
    )
    yield name
    kube.delete_namespace(name)


def create_pod(box: Box, ns: str, pod: dict[str, Any]) -> None:
    # Any: the client validates a dict body into a V1Pod (pydantic validate_call)
    Kube(box.state.kubeconfig).core.create_namespaced_pod(ns, cast(Any, pod))


def pod_status(box: Box, ns: str, name: str) -> Any:
    return Kube(box.state.kubeconfig).core.read_namespaced_pod(name, ns).status


def ready(status: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


def restarts(status: Any) -> int:
    return sum(c.restart_count for c in status.container_statuses or [])


def test_a_folder_too_long_for_the_sockets_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="too long for the node's unix sockets"):
        sandbox.up(tmp_path / ("x" * 80), TOOLS_DIR, with_node=True)
    assert not (tmp_path / ("x" * 80)).exists()


def test_node_registers_and_turns_ready(node_box: Box) -> None:
    st = sandbox.status(node_box.directory)
    running = {c.name for c in st.components if c.running}
    assert {"containerd", "kubelet", "kube-scheduler", "kube-proxy", "apiproxy"} <= running
    # beside the node, the sandbox's own operator process: VSO 1.4.1 by default
    assert "vault-secrets-operator" in running
    assert (st.operator_version, st.operator_licence) == ("1.4.1", "BUSL-1.1")
    net = node.net_of(node_box.state)
    assert st.node is not None and st.node.ready == "True" and st.node.netns_exists
    n = Kube(node_box.state.kubeconfig).core.read_node(node.NODE_NAME)
    assert n.status is not None and n.status.addresses is not None
    assert [a.address for a in n.status.addresses if a.type == "InternalIP"] == [net.node_ip]
    assert n.status.node_info is not None
    assert n.status.node_info.container_runtime_version.startswith("containerd://")
    assert n.spec is not None
    assert not n.spec.taints


def test_pod_ready_on_exec_probe_logs_exec_and_reachable(
    node_box: Box, demo_image: str, ns: str
) -> None:
    create_pod(node_box, ns, demo_pod("demo"))
    status = wait_until(
        lambda: (s := pod_status(node_box, ns, "demo")) and ready(s) and s, "demo Ready", 90
    )
    net = node.net_of(node_box.state)
    # its own address, from the node's pod range, not the node's
    assert status.pod_ip != net.node_ip
    assert ipaddress.ip_address(status.pod_ip) in ipaddress.ip_network(net.pod_cidr)
    assert restarts(status) == 0
    # kubectl logs and exec go through the kubelet's address (its serving certificate checked)
    logs = kubectl(node_box, "-n", ns, "logs", "demo").stdout
    assert f"demo listening on port {DEMO_PORT}" in logs
    # in-cluster clients: the kubernetes Service's ClusterIP reaches the API server
    svc = Kube(node_box.state.kubeconfig).core.read_namespaced_service("kubernetes", "default")
    assert svc.spec is not None and svc.spec.cluster_ip is not None
    out = kubectl(
        node_box, "-n", ns, "exec", "demo", "--", "/demo", "connect", svc.spec.cluster_ip, "443"
    )
    assert f"connected to {svc.spec.cluster_ip}:443" in out.stdout
    # the host (where the product runs) reaches the pod's IP
    with socket.create_connection((status.pod_ip, DEMO_PORT), timeout=5) as conn:
        assert conn.recv(100) == b"hello from demo\n"
    # the pod asks the node's DNS, in the cluster's domain, and nothing else
    conf = kubectl(node_box, "-n", ns, "exec", "demo", "--", "/demo", "cat", "/etc/resolv.conf")
    lines = [line.split() for line in conf.stdout.splitlines() if line.strip()]
    assert [x[1] for x in lines if x[0] == "nameserver"] == [net.node_ip], conf.stdout
    search = next(x[1:] for x in lines if x[0] == "search")
    assert search[:3] == [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def test_the_node_dns_answers_the_cluster_zone_only(node_box: Box, ns: str) -> None:
    """CoreDNS on the node: Services by name, from the API as it changes; any other name
    NXDOMAIN (nothing is forwarded). (Pods by headless-Service names: test_cluster_ha.)"""
    net = node.net_of(node_box.state)
    ask: Callable[[str], tuple[str, list[str]]] = lambda name: dnsquery.resolve(  # noqa: E731
        net.node_ip, name
    )
    assert ask("kubernetes.default.svc.cluster.local") == ("NOERROR", [netns.API_SERVICE_IP])
    assert ask("example.com")[0] == "NXDOMAIN"
    assert ask(f"absent.{ns}.svc.cluster.local")[0] == "NXDOMAIN"
    kube = Kube(node_box.state.kubeconfig)
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "named", "namespace": ns},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "none"}},
        }
    )
    named_spec = kube.core.read_namespaced_service("named", ns).spec
    assert named_spec is not None
    ip = named_spec.cluster_ip
    wait_until(
        lambda: ask(f"named.{ns}.svc.cluster.local") == ("NOERROR", [ip]),
        "the new Service's name to resolve",
        30,
    )


def _rules(netns_name: str | None) -> str:
    """Every IPv4 and IPv6 rule (``iptables-save``, ``ip6tables-save``) of the node's
    namespace, or of the machine's (None)."""
    inside = ["ip", "netns", "exec", netns_name] if netns_name else []
    return "".join(
        subprocess.run([*inside, cmd], capture_output=True, text=True, check=True).stdout
        for cmd in ("iptables-save", "ip6tables-save")
    )


def test_kube_proxy_serves_cluster_ips_inside_the_node_only(
    node_box: Box, demo_image: str, ns: str
) -> None:
    """A pod reaches another pod of the same bridge through a Service's ClusterIP
    (kube-proxy's iptables rules, masquerading), the kubernetes Service stays the API
    forwarder's (not programmed: pods reach the API), and every rule is in the node's
    network namespace, none on the machine."""
    st = sandbox.status(node_box.directory)
    assert any(c.name == "kube-proxy" and c.running for c in st.components)
    kube = Kube(node_box.state.kubeconfig)
    create_pod(
        node_box,
        ns,
        {**demo_pod("server"), "metadata": {"name": "server", "labels": {"app": "server"}}},
    )
    create_pod(node_box, ns, demo_pod("client"))
    kube.core.create_namespaced_service(
        ns,
        cast(  # Any: the client validates a dict body into a V1Service (validate_call)
            Any,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "server"},
                "spec": {
                    "selector": {"app": "server"},
                    "ports": [{"port": 80, "targetPort": DEMO_PORT}],
                },
            },
        ),
    )
    for name in ("server", "client"):
        wait_until(lambda n=name: ready(pod_status(node_box, ns, n)), f"{name} Ready", 90)
    server_spec = kube.core.read_namespaced_service("server", ns).spec
    assert server_spec is not None and server_spec.cluster_ip is not None
    cluster_ip = server_spec.cluster_ip
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(netns.SERVICE_RANGE)

    def reached() -> str | None:  # kube-proxy programs the Service within its sync period
        out = kubectl(
            node_box,
            "-n",
            ns,
            "exec",
            "client",
            "--",
            "/demo",
            "connect",
            cluster_ip,
            "80",
            check=False,
        )
        return out.stdout if out.returncode == 0 else None

    assert f"connected to {cluster_ip}:80" in wait_until(reached, "client to reach server:80", 60)
    net = node.net_of(node_box.state)
    inside, outside = _rules(net.netns), _rules(None)
    assert f"{ns}/server" in inside and cluster_ip in inside
    assert "KUBE-PROXY-CANARY" in inside  # kube-proxy's own chain, in each table it uses
    assert cluster_ip not in outside and "KUBE-PROXY-CANARY" not in outside
    # the kubernetes Service: labelled out of kube-proxy, no rule; pods still reach the API
    api = kube.core.read_namespaced_service("kubernetes", "default")
    assert api.metadata is not None and api.metadata.labels is not None
    assert api.metadata.labels.get(node.SERVICE_PROXY_NAME) == node.API_SERVICE_PROXY
    assert "default/kubernetes" not in inside
    assert api.spec is not None and api.spec.cluster_ip is not None
    out = kubectl(
        node_box, "-n", ns, "exec", "client", "--", "/demo", "connect", api.spec.cluster_ip, "443"
    )
    assert f"connected to {api.spec.cluster_ip}:443" in out.stdout


def test_failing_probes_judged_by_the_kubelet(node_box: Box, demo_image: str, ns: str) -> None:
    create_pod(node_box, ns, demo_pod("live-fails", liveness=1))
    create_pod(node_box, ns, demo_pod("ready-fails", readiness=1))
    create_pod(node_box, ns, demo_pod("healthy"))
    # a failing liveness probe: the kubelet kills and restarts the container, again and again
    wait_until(lambda: restarts(pod_status(node_box, ns, "live-fails")) >= 2, "two restarts", 120)
    described = kubectl(node_box, "-n", ns, "describe", "pod", "live-fails").stdout
    assert "Liveness probe failed" in described
    # a failing readiness probe: running, never Ready, never restarted
    healthy = wait_until(
        lambda: (s := pod_status(node_box, ns, "healthy")) and ready(s) and s, "healthy Ready"
    )
    rf = pod_status(node_box, ns, "ready-fails")
    assert rf.phase == "Running" and not ready(rf) and restarts(rf) == 0
    assert (
        "Readiness probe failed"
        in kubectl(node_box, "-n", ns, "describe", "pod", "ready-fails").stdout
    )
    assert restarts(healthy) == 0


def test_down_leaves_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A node sandbox of its own, with a pod running, stopped: no process, no mount under its
    folder, no network namespace, no veth, no route."""
    directory = tmp_path_factory.mktemp("down") / "sandbox-node"  # short: unix socket paths
    state = sandbox.up(directory, TOOLS_DIR, with_node=True, timeout=90)
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "p", "image": node.PAUSE_IMAGE, "imagePullPolicy": "Never"}]
            },
        }
        box = Box(state, directory, [])
        wait_until(
            lambda: kubectl(box, "get", "serviceaccount", "default", check=False).returncode == 0,
            "the default ServiceAccount",
        )
        create_pod(box, "default", pod)
        wait_until(lambda: ready(pod_status(box, "default", "p")), "the pod Ready", 90)
        shims = node._our_shims(state)
        assert shims, "a running pod has a shim"
        assert node.mounts_under(directory)
    finally:
        sandbox.down(directory)
    net = node.net_of(state)
    assert not [p.name for p in state.processes if p.alive()]
    assert not [pid for pid, binary in shims if alive(pid, binary)]
    assert not node.mounts_under(directory)
    assert not netns.exists(net)
    assert not Path(f"/sys/class/net/{net.host_if}").exists()
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True)
    assert net.pod_cidr not in routes.stdout
    assert not directory.exists()
    assert not os.path.exists(net.netns_path)
