"""The node sandbox's pure parts: kube-proxy's configuration and how kube-proxy is built."""

from __future__ import annotations

from pathlib import Path

from bootstrap.sandbox import netns, node
from bootstrap.tooling import tools

NET = netns.NodeNet("csb-node-1", "csbh1", "csbn1", "10.123.45.0/24")


def test_kube_proxy_config_keeps_everything_in_the_node_namespace() -> None:
    cfg = node.kube_proxy_config(NET, Path("/s/node/kube-proxy.kubeconfig"))
    assert cfg["apiVersion"] == "kubeproxy.config.k8s.io/v1alpha1"
    assert cfg["kind"] == "KubeProxyConfiguration"
    assert cfg["mode"] == "iptables"
    assert cfg["hostnameOverride"] == node.NODE_NAME
    assert cfg["clientConnection"] == {"kubeconfig": "/s/node/kube-proxy.kubeconfig"}
    # the pods' range, for what is local; every ClusterIP connection masqueraded (no
    # br_netfilter: a reply between pods of one bridge would skip the node otherwise)
    assert cfg["clusterCIDR"] == "10.123.45.128/25" == NET.pod_cidr
    assert cfg["iptables"]["masqueradeAll"] is True
    # addresses: the node's own (healthz, NodePorts) and the namespace's loopback (metrics)
    assert cfg["bindAddress"] == "10.123.45.2"
    assert cfg["healthzBindAddress"] == f"10.123.45.2:{node.KUBE_PROXY_HEALTHZ_PORT}"
    assert cfg["metricsBindAddress"].startswith("127.0.0.1:")
    assert cfg["nodePortAddresses"] == ["10.123.45.2/32"]
    assert cfg["iptables"]["localhostNodePorts"] is False  # no route_localnet
    # no global setting: conntrack's table size and timeouts left as they are, OOM score kept
    ct = cfg["conntrack"]
    assert ct["maxPerCore"] == 0 and ct["min"] == 0
    for key in ("tcpEstablishedTimeout", "tcpCloseWaitTimeout", "udpTimeout", "udpStreamTimeout"):
        assert ct[key] == "0s", key
    assert cfg["oomScoreAdj"] == 0


def test_kube_proxy_config_follows_the_node_network() -> None:
    other = netns.NodeNet("csb-node-2", "csbh2", "csbn2", "10.188.7.0/24")
    cfg = node.kube_proxy_config(other, Path("/k"))
    assert cfg["clusterCIDR"] == "10.188.7.128/25"
    assert cfg["bindAddress"] == "10.188.7.2"
    assert cfg["nodePortAddresses"] == ["10.188.7.2/32"]


def test_kube_proxy_is_a_node_component_built_like_kubelet() -> None:
    assert "kube-proxy" in node.COMPONENTS and "iptables" in node.COMPONENTS
    # stopped before the API forwarder it talks through, after the scheduler
    assert node.PROCESSES.index("kube-proxy") < node.PROCESSES.index("apiproxy")
    proxy, kubelet = tools.TOOLS["kube-proxy"], tools.TOOLS["kubelet"]
    assert (proxy.origin, proxy.go_module, proxy.version) == (
        kubelet.origin,
        kubelet.go_module,
        kubelet.version,
    )
    assert proxy.main == "k8s.io/kubernetes/cmd/kube-proxy"
    assert tools._GO_REPLACES["kube-proxy"] is tools._GO_REPLACES["kubelet"]
    # iptables, like the container runtime, is a Debian package the machine installs
    assert tools.TOOLS["iptables"].origin == "debian"
    assert tools.TOOLS["iptables"].licence == "GPL-2.0-only"  # run, never linked
    assert "iptables" in tools.DEBIAN_INSTALL.split()
    # each package once, in the order apt-get is given them (invoke test installs them)
    assert tools.DEBIAN_PACKAGES == (
        "containerd",
        "runc",
        "containernetworking-plugins",
        "iptables",
    )
