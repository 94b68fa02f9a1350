"""The node of the node sandbox (``sandbox.up --node``): containerd with runc, the CNI
plugins, kubelet, kube-proxy and kube-scheduler, so that one Node registers, turns Ready and
runs pods from images built here (never pulled), and Services' ClusterIPs work.

Everything the node runs lives in its own network namespace (``netns``): containerd (so the
CNI bridge and the pods' veths land there), kubelet (its address is the Node's InternalIP;
the API server reaches it for logs and exec) and kube-proxy (its iptables rules are the
namespace's own, gone with it). kube-scheduler runs beside the control plane on loopback.
Their files live under ``<sandbox>/node/``: containerd's root, state and socket, kubelet's
root, the CNI configuration and IP allocations, the images, kube-proxy's configuration.

Stopping (:func:`stop_workloads`, then :func:`cleanup`) kills every container through
containerd while it still runs, then unmounts everything under the sandbox folder (kubelet
bind-mounts its root, containerd mounts rootfs and pod network namespaces) and removes the
network namespace with its veth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bootstrap.clients import procs
from bootstrap.core.errors import SandboxError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.sandbox import kubeconfig, netns, pki
from bootstrap.sandbox.processes import clean_env, healthy
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import oci, versions

NODE_NAME = "sandbox-node"
PAUSE_IMAGE = f"localhost/cluster-secrets-bootstrap/pause:{versions.PAUSE}"
#: containerd's namespace for the CRI (kubelet's images and containers).
CRI_NAMESPACE = "k8s.io"
#: The tools the node runs, besides the control plane's.
COMPONENTS = (
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
    "coredns",
    "pause",
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "cni-plugins",
    "iptables",
)
#: The node's processes, in the order they stop.
PROCESSES = ("kube-scheduler", "kube-proxy", "kubelet", "containerd", "coredns", "apiproxy")
#: The cluster's DNS domain (kubelet's clusterDomain; CoreDNS serves it).
CLUSTER_DOMAIN = "cluster.local"
CNI_BIN = "/usr/lib/cni"

Say = Callable[[str], None]


def net_of(state: SandboxState) -> netns.NodeNet:
    if state.node is None:
        raise SandboxError(f"the sandbox in {state.directory} has no node")
    return netns.NodeNet(**state.node)


def node_dir(state: SandboxState) -> Path:
    return Path(state.directory) / "node"


def socket_path(state: SandboxState) -> Path:
    """containerd's socket (and ``<it>.ttrpc``): short, a socket's path holds 107 bytes."""
    return node_dir(state) / "c.sock"


#: The longest socket path kubelet makes under its root ("pod-resources/<10 digits>").
_KUBELET_SOCKET = "node/kubelet/pod-resources/0123456789"


def check_folder(directory: Path) -> None:
    """Refuse a sandbox folder whose path leaves containerd's and kubelet's unix sockets over
    the 107 bytes a socket's path may hold (they fail late and obscurely otherwise)."""
    longest = directory / _KUBELET_SOCKET
    if len(str(longest).encode()) > 107:
        raise SandboxError(
            f"the sandbox folder's path ({len(str(directory))} bytes) is too long for the node's "
            f"unix sockets ({longest} would exceed 107 bytes): choose a shorter one"
        )


def _inside(net: netns.NodeNet) -> list[str]:
    """The prefix that runs a program in the node's network namespace (and nothing else of
    it: kubelet and containerd share the machine's mounts)."""
    return ["nsenter", f"--net={net.netns_path}", "--"]


def ctr(state: SandboxState, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``ctr`` against the node's containerd, in the CRI's namespace; one that hangs past
    ``timeout`` is a SandboxError."""
    argv = ["ctr", "--address", str(socket_path(state)), "--namespace", CRI_NAMESPACE, *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"`{' '.join(argv)}` took over {timeout:.0f}s") from None


def import_image(state: SandboxState, archive: Path) -> None:
    """Import an OCI archive (``oci.write_archive``) into the node's image store; kubelet
    then runs it with ``imagePullPolicy: Never`` (or IfNotPresent)."""
    out = ctr(state, "images", "import", str(archive), timeout=300)
    if out.returncode != 0:
        raise SandboxError(f"ctr images import {archive} failed: {out.stderr.strip()}")


def pause_archive(pause_binary: Path, out: Path) -> oci.Built:
    """The pod sandbox image: our ``pause`` alone."""
    layer = oci.Tree().file("pause", pause_binary, 0o755)
    return oci.write_archive(out, PAUSE_IMAGE, [layer], oci.ImageConfig(entrypoint=("/pause",)))


# -- processes ----------------------------------------------------------------------------


def start_apiproxy(state: SandboxState, apiserver_port: int, say: Say) -> None:
    net = net_of(state)
    say(f"API forwarder {netns.API_SERVICE_IP}:443 (node) -> 127.0.0.1:{apiserver_port}")
    script = Path(__file__).with_name("apiproxy.py")
    proc = state.launch(
        "apiproxy",
        [
            sys.executable,
            str(script),
            net.netns,
            netns.API_SERVICE_IP,
            "443",
            str(apiserver_port),
        ],
        clean_env(),
        f"{net.netns} {netns.API_SERVICE_IP}:443 -> 127.0.0.1:{apiserver_port}",
    )

    def listening() -> None:
        if not proc.alive():
            raise SandboxError(f"the API forwarder exited:\n{proc.tail()}")
        if "listening on" not in proc.tail():
            raise Pending("not listening yet")

    wait_for(listening, "the API forwarder to listen", WaitSettings(20, 0.05, 0.5))


def _corefile(kubeconfig_path: Path) -> str:
    """The cluster's zone (and reverse zones) from the API; every other name NXDOMAIN: no
    question leaves the sandbox."""
    return (
        f"{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{\n"
        "    errors\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig_path}\n"
        "        pods insecure\n"
        "    }\n"
        "    cache 5\n"
        "}\n"
        ".:53 {\n"
        "    errors\n"
        "    template ANY ANY {\n"
        "        rcode NXDOMAIN\n"
        "    }\n"
        "}\n"
    )


def _dns_rbac() -> list[JsonObject]:
    """What CoreDNS's kubernetes plugin reads, for its own user only."""
    name = "sandbox:coredns"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": pki.DNS_USER}
            ],
        },
    ]


def start_dns(
    state: SandboxState,
    binary: str,
    certs: pki.SandboxPKI,
    node_certs: pki.NodePKI,
    wait: WaitSettings,
    say: Say,
) -> None:
    """CoreDNS in the node's namespace, on port 53 of its addresses (kubelet gives pods the
    node's address as their nameserver), reading the API through the forwarder; waits until
    it answers ``kubernetes.default.svc``."""
    from bootstrap.clients.kube import Kube
    from bootstrap.sandbox import dnsquery

    net = net_of(state)
    d = node_dir(state) / "dns"
    d.mkdir(parents=True, exist_ok=True)
    kc = d / "coredns.kubeconfig"
    kubeconfig.write(
        kc,
        f"https://{netns.API_SERVICE_IP}:443",
        certs.ca_cert,
        pki.DNS_USER,
        kubeconfig.cert_user(node_certs.dns_cert, node_certs.dns_key),
    )
    kube = Kube(state.kubeconfig)
    for obj in _dns_rbac():
        kube.apply(obj)
    corefile = d / "Corefile"
    corefile.write_text(_corefile(kc), encoding="utf-8")
    say(f"DNS: CoreDNS v{versions.COREDNS} at {net.node_ip}:53 ({CLUSTER_DOMAIN})")
    proc = state.launch(
        "coredns",
        [*_inside(net), binary, "-conf", str(corefile), "-dns.port", "53"],
        clean_env(),
        f"{net.node_ip}:53 {CLUSTER_DOMAIN}",
        binary=binary,
    )
    api = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"

    def answering() -> None:
        if not proc.alive():
            raise SandboxError(f"CoreDNS exited (log {proc.log}):\n{proc.tail()}")
        try:
            code, found = dnsquery.resolve(net.node_ip, api, timeout=1.0)
        except (OSError, dnsquery.DnsError) as exc:
            raise Pending(f"{api}: {exc}") from None
        if found != [netns.API_SERVICE_IP]:
            raise Pending(f"{api}: {code} {found}")

    wait_for(answering, "the node's DNS to answer", wait)


def _containerd_config(state: SandboxState, runc: str) -> str:
    d = node_dir(state)
    sock = socket_path(state)
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "version = 2",
        f"root = {json.dumps(str(d / 'containerd' / 'root'))}",
        f"state = {json.dumps(str(d / 'containerd' / 'state'))}",
        "[grpc]",
        f"  address = {json.dumps(str(sock))}",
        "[ttrpc]",
        f"  address = {json.dumps(str(sock) + '.ttrpc')}",
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {json.dumps(str(d / 'containerd' / 'opt'))}",
        f"{cri}]",
        f"  sandbox_image = {json.dumps(PAUSE_IMAGE)}",
        # without it runc fails "can't get final child's PID from pipe": a container here
        # may not lower its oom_score_adj (no CAP_SYS_RESOURCE)
        "  restrict_oom_score_adj = true",
        # pods' network namespaces under the state folder, not /var/run/netns
        "  netns_mounts_under_state_dir = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  disable_apparmor = true",
        "  disable_hugetlb_controller = true",
        f"{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"{cri}.containerd.runtimes.runc.options]",
        f"  BinaryName = {json.dumps(runc)}",
        f"  Root = {json.dumps(str(d / 'runc'))}",
        "  SystemdCgroup = false",
        f"{cri}.cni]",
        f"  bin_dir = {json.dumps(CNI_BIN)}",
        f"  conf_dir = {json.dumps(str(d / 'cni' / 'net.d'))}",
        "  max_conf_num = 1",
    ]
    return "\n".join(lines) + "\n"


def _cni_config(state: SandboxState) -> JsonObject:
    """A bridge in the node's namespace, addresses from host-local (its allocations under the
    sandbox folder), the loopback plugin being containerd's own."""
    net = net_of(state)
    return {
        "cniVersion": "1.0.0",
        "name": "sandbox",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": net.pod_cidr, "gateway": net.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node_dir(state) / "cni" / "ipam"),
                },
            }
        ],
    }


def start_containerd(
    state: SandboxState, binaries: dict[str, str], tools_dir: Path, wait: WaitSettings, say: Say
) -> None:
    d = node_dir(state)
    for sub in ("containerd", "cni/net.d", "cni/ipam", "runc", "images"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "cni" / "net.d" / "10-sandbox.conflist").write_text(
        json.dumps(_cni_config(state), indent=2) + "\n", encoding="utf-8"
    )
    config = d / "containerd" / "config.toml"
    config.write_text(_containerd_config(state, binaries["runc"]), encoding="utf-8")
    say(f"containerd ({socket_path(state)}) with runc, in {net_of(state).netns}")
    # the shim and runc are found on PATH
    shim_dir = Path(binaries["containerd-shim-runc-v2"]).parent
    env = clean_env({"PATH": f"{shim_dir}:/usr/sbin:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    proc = state.launch(
        "containerd",
        [*_inside(net_of(state)), binaries["containerd"], "--config", str(config)],
        env,
        f"containerd {socket_path(state)!s}",
        binary=binaries["containerd"],
    )

    def answering() -> None:
        if not proc.alive():
            raise SandboxError(f"containerd exited (log {proc.log}):\n{proc.tail()}")
        try:
            out = ctr(state, "version", timeout=10)
        except SandboxError as exc:
            raise Pending(str(exc)) from None
        if out.returncode != 0:
            raise Pending(out.stderr.strip())

    wait_for(answering, "containerd to answer", wait)
    built = pause_archive(Path(binaries["pause"]), d / "images" / "pause.tar")
    import_image(state, built.path)


def _write_yaml(path: Path, obj: JsonObject) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")


def start_kubelet(
    state: SandboxState, binary: str, certs: pki.SandboxPKI, node_certs: pki.NodePKI, say: Say
) -> None:
    net = net_of(state)
    d = node_dir(state)
    root = d / "kubelet"
    kc = d / "kubelet.kubeconfig"
    # through the forwarder in the node's namespace: the API server stays on loopback
    kubeconfig.write(
        kc,
        f"https://{netns.API_SERVICE_IP}:443",
        certs.ca_cert,
        f"system:node:{NODE_NAME}",
        kubeconfig.cert_user(node_certs.kubelet_client_cert, node_certs.kubelet_client_key),
    )
    config = d / "kubelet.yaml"
    _write_yaml(
        config,
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": net.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",  # the node's own loopback
            "healthzPort": 10248,
            "tlsCertFile": str(node_certs.kubelet_serving_cert),
            "tlsPrivateKeyFile": str(node_certs.kubelet_serving_key),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(certs.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{socket_path(state)}",
            # this machine: cgroup v1 controllers beside a cgroup2 mount, no systemd, no
            # CAP_SYS_RESOURCE, maybe swap
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "podLogsDir": str(d / "pod-logs"),
            "volumePluginDir": str(d / "volume-plugins"),
            # pods ask the node's CoreDNS, nothing else: no question leaves the sandbox
            "resolvConf": "",
            "clusterDNS": [net.node_ip],
            "clusterDomain": CLUSTER_DOMAIN,
            # imported images cannot be pulled again: never collected, no eviction
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "registerNode": True,
            "serializeImagePulls": False,
            # sandbox only: Secret volumes follow their Secret within about 10 s instead of
            # a minute (a pod started without its Secret sees it that much sooner)
            "syncFrequency": "10s",
        },
    )
    say(f"kubelet: Node {NODE_NAME} at {net.node_ip} (pods {net.pod_cidr})")
    state.launch(
        "kubelet",
        [
            *_inside(net),
            binary,
            f"--config={config}",
            f"--kubeconfig={kc}",
            f"--root-dir={root}",
            f"--cert-dir={d / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={net.node_ip}",
            "--v=1",
        ],
        clean_env({"PATH": f"/usr/sbin:/sbin:{os.environ.get('PATH', '/usr/bin:/bin')}"}),
        f"Node {NODE_NAME} {net.node_ip}",
        binary=binary,
    )


def start_scheduler(
    state: SandboxState, binary: str, certs: pki.SandboxPKI, node_certs: pki.NodePKI, port: int
) -> None:
    config = node_dir(state) / "scheduler.kubeconfig"
    kubeconfig.write(
        config,
        state.apiserver_url,
        certs.ca_cert,
        "system:kube-scheduler",
        kubeconfig.cert_user(node_certs.scheduler_cert, node_certs.scheduler_key),
    )
    state.launch(
        "kube-scheduler",
        [
            binary,
            f"--kubeconfig={config}",
            f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=1",
        ],
        clean_env(),
        f"v{versions.KUBERNETES}",
        f"https://127.0.0.1:{port}/healthz",
    )


#: kube-proxy leaves alone every Service carrying this label (whatever its value).
SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
#: The value the ``kubernetes`` Service carries: the API forwarder serves its ClusterIP.
API_SERVICE_PROXY = "sandbox-apiproxy"
KUBE_PROXY_HEALTHZ_PORT = 10256


def kube_proxy_config(net: netns.NodeNet, kubeconfig_path: Path) -> JsonObject:
    """kube-proxy's configuration on the node: iptables mode, every address it serves and
    every rule it writes inside the node's network namespace, no global setting touched.

    - ``masqueradeAll``: a pod reaching a ClusterIP whose endpoint is a pod on the same
      bridge must get the reply through the node (there is no br_netfilter: the reply would
      go straight over the bridge, from an address the client never called);
    - conntrack left as it is (``maxPerCore: 0``, zero timeouts): ``nf_conntrack_max`` is the
      machine's, not the namespace's;
    - NodePorts only on the node's address (no ``route_localnet``), healthz on the node's
      address (the sandbox's health check reaches it through the veth), metrics on the
      namespace's loopback; the OOM score is not lowered."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.node_ip,
        "healthzBindAddress": f"{net.node_ip}:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "bindAddressHardFail": True,
        "mode": "iptables",
        "iptables": {
            "masqueradeAll": True,
            "localhostNodePorts": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "1s",
        },
        "detectLocalMode": "ClusterCIDR",
        "clusterCIDR": net.pod_cidr,
        "nodePortAddresses": [f"{net.node_ip}/32"],
        "oomScoreAdj": 0,
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    }


def keep_api_service_unproxied(state: SandboxState, wait: WaitSettings) -> None:
    """Label the ``kubernetes`` Service so that kube-proxy leaves it alone: its ClusterIP is
    the API forwarder's own address in the node's namespace, and its EndpointSlice names the
    API server on the machine's loopback, which a DNAT from the node would never reach. (The
    API server's reconciler of that Service rewrites only its ports and type.)"""
    from bootstrap.clients.kube import Kube

    kube = Kube(state.kubeconfig)

    def labelled() -> None:
        svc = kube.get("v1", "Service", "kubernetes", "default")
        if svc is None:
            raise Pending("the API server has not made the kubernetes Service yet")
        if (svc["metadata"].get("labels") or {}).get(SERVICE_PROXY_NAME) != API_SERVICE_PROXY:
            kube.core.patch_namespaced_service(
                "kubernetes",
                "default",
                {"metadata": {"labels": {SERVICE_PROXY_NAME: API_SERVICE_PROXY}}},
            )

    wait_for(labelled, "the kubernetes Service labelled for no kube-proxy", wait)


def start_kube_proxy(
    state: SandboxState,
    binary: str,
    certs: pki.SandboxPKI,
    node_certs: pki.NodePKI,
    wait: WaitSettings,
    say: Say,
) -> None:
    """kube-proxy in the node's namespace, through the API forwarder like kubelet, once the
    ``kubernetes`` Service is out of its reach; waited for until it answers its healthz."""
    net = net_of(state)
    d = node_dir(state)
    kc = d / "kube-proxy.kubeconfig"
    kubeconfig.write(
        kc,
        f"https://{netns.API_SERVICE_IP}:443",
        certs.ca_cert,
        "system:kube-proxy",
        kubeconfig.cert_user(node_certs.proxy_cert, node_certs.proxy_key),
    )
    keep_api_service_unproxied(state, wait)
    config = d / "kube-proxy.yaml"
    _write_yaml(config, kube_proxy_config(net, kc))
    say(f"kube-proxy (iptables) in {net.netns}: Services of {netns.SERVICE_RANGE}")
    proc = state.launch(
        "kube-proxy",
        [*_inside(net), binary, f"--config={config}", "--v=1"],
        # iptables, iptables-restore and iptables-save are found on PATH
        clean_env({"PATH": f"/usr/sbin:/sbin:{os.environ.get('PATH', '/usr/bin:/bin')}"}),
        f"iptables, in {net.netns}",
        f"http://{net.node_ip}:{KUBE_PROXY_HEALTHZ_PORT}/healthz",
        binary=binary,
    )
    healthy(proc, wait)


def node_condition(state: SandboxState) -> dict[str, str]:
    """The Node's Ready condition as the API server has it (``{}`` when not registered or
    the API server does not answer)."""
    from bootstrap.clients.kube import Kube

    try:
        node = Kube(state.kubeconfig).core.read_node(NODE_NAME)
    except Exception:
        return {}
    taints = ",".join(t.key for t in (node.spec.taints if node.spec else None) or [])
    for cond in (node.status.conditions if node.status else None) or []:
        if cond.type == "Ready":
            return {
                "ready": cond.status or "",
                "reason": cond.reason or "",
                "message": cond.message or "",
                "taints": taints,
            }
    return {"ready": "Unknown", "reason": "no Ready condition yet", "message": "", "taints": taints}


def wait_ready(state: SandboxState, wait: WaitSettings) -> None:
    """Until the Node is Ready and schedulable (the node lifecycle controller lifts its
    not-ready taint a moment after); fails at once if a node process exited."""

    def ready() -> None:
        dead = [p.name for p in state.processes if p.name in PROCESSES and not p.alive()]
        if dead:
            tails = "".join(
                f"\n--- {p.name} ---\n{p.tail()}" for p in state.processes if p.name in dead
            )
            raise SandboxError(f"{', '.join(dead)} exited{tails}")
        cond = node_condition(state)
        if cond.get("ready") != "True" or cond.get("taints"):
            raise Pending(f"Node {NODE_NAME}: {cond or 'not registered'}")

    wait_for(ready, f"Node {NODE_NAME} to be Ready", wait)


# -- stopping -----------------------------------------------------------------------------


def stop_workloads(state: SandboxState) -> list[str]:
    """Stop kube-scheduler and kubelet, then kill and remove every container through
    containerd (its shims exit with their tasks). Returns the processes stopped."""
    stopped: list[str] = []
    for name in ("kube-scheduler", "kubelet"):
        for p in state.processes:
            if p.name == name and p.stop():
                stopped.append(name)
    containerd = [p for p in state.processes if p.name == "containerd"]
    if not containerd or not containerd[0].alive():
        return stopped
    tasks = ctr(state, "tasks", "ls", "-q", timeout=30).stdout.split()
    for task in tasks:
        ctr(state, "tasks", "kill", "--signal", "SIGKILL", task, timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        # TASK PID STATUS; containerd's CRI deletes the tasks of exited containers itself
        rows = [r.split() for r in ctr(state, "tasks", "ls", timeout=30).stdout.splitlines()[1:]]
        if not any(r[-1] == "RUNNING" for r in rows if r):
            break
        time.sleep(0.1)
    for row in ctr(state, "tasks", "ls", timeout=30).stdout.splitlines()[1:]:
        if row.split():
            ctr(state, "tasks", "delete", row.split()[0], timeout=30)
    for container in ctr(state, "containers", "ls", "-q", timeout=30).stdout.split():
        ctr(state, "containers", "delete", container, timeout=30)
    return stopped


def _our_shims(state: SandboxState) -> list[tuple[int, str]]:
    """Shims of this node's containerd still running (their command line names its
    socket): started by our containerd, so ours to stop."""
    address = str(socket_path(state))
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
            pids.append((int(entry.name), argv[0].decode()))
    return pids


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or under ``directory`` (the machine's mount table), deepest first."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def cleanup(state: SandboxState) -> list[str]:
    """After the node's processes stopped: leftover shims (ours: they name our socket)
    stopped by pid, every mount under the sandbox folder undone, the network namespace and
    its veth removed. Returns what could not be cleaned."""
    problems = []
    for pid, binary in _our_shims(state):
        procs.stop(pid, binary, timeout=5)
    directory = Path(state.directory)
    for _ in range(5):  # stacked and shared mounts may need several passes
        points = mounts_under(directory)
        if not points:
            break
        for point in points:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = mounts_under(directory)
    if left:
        problems.append(f"still mounted: {', '.join(left)}")
    if state.node is not None:
        problems += netns.delete(net_of(state))
    return problems
