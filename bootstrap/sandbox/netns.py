"""The node sandbox's network: a network namespace of its own, joined to the machine by one
veth pair, with addresses from a private /24 no route of the machine uses.

One block ``10.X.Y.0/24`` per node sandbox:

- ``.1/30`` the host's end of the veth, ``.2/30`` the node's end (the Node's InternalIP);
- ``.128/25`` the pods (a CNI bridge in the node's namespace, gateway ``.129``); the host
  routes it through the veth, so the product, running outside, reaches pod IPs;
- the node's namespace holds the ``kubernetes`` Service's ClusterIP on its loopback, where
  the API forwarder (``apiproxy``) listens: kubelet and in-cluster clients reach the API
  server there, and the API server itself stays bound to the host's loopback.

The node's namespace has no default route and the host forwards nothing (its
``ip_forward`` is untouched): pods reach the node, the host's end of the veth and the API
through the forwarder, nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bootstrap.core.errors import SandboxError

#: Where ``ip netns`` keeps its namespaces.
NETNS_DIR = Path("/run/netns")
#: The Service range of the sandbox's API server (``--service-cluster-ip-range``), and the
#: ClusterIP of the ``kubernetes`` Service in it.
SERVICE_RANGE = "10.0.0.0/24"
API_SERVICE_IP = "10.0.0.1"


@dataclass(frozen=True)
class NodeNet:
    netns: str
    host_if: str
    node_if: str
    block: str  # 10.X.Y.0/24

    def _at(self, offset: int) -> str:
        return str(ipaddress.ip_network(self.block)[offset])

    @property
    def host_ip(self) -> str:
        return self._at(1)

    @property
    def node_ip(self) -> str:
        return self._at(2)

    @property
    def pod_cidr(self) -> str:
        return f"{self._at(128)}/25"

    @property
    def pod_gateway(self) -> str:
        return self._at(129)

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=30)
    except FileNotFoundError:
        raise SandboxError(
            f"the node sandbox needs '{argv[0]}' (apt-get install iproute2 util-linux)"
        ) from None
    if check and out.returncode != 0:
        raise SandboxError(f"`{' '.join(argv)}` exited {out.returncode}: {out.stderr.strip()}")
    return out


def _networks_in_use() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Every IPv4 network the machine routes or holds an address in (the default route
    aside), and the API server's Service range."""
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        ipaddress.ip_network(SERVICE_RANGE)
    ]
    routes = json.loads(_run("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]")
    for r in routes:
        dst = r.get("dst", "")
        if dst and dst != "default":
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    addrs = json.loads(_run("ip", "-j", "-4", "addr").stdout or "[]")
    for link in addrs:
        for a in link.get("addr_info", []):
            used.append(
                ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False)
            )
    return used


def allocate() -> NodeNet:
    """Names and a /24 for a new node network: a free block of 10.100.0.0 to 10.199.255.0,
    checked against the machine's routes and addresses (other node sandboxes' included)."""
    used = _networks_in_use()
    for _ in range(200):
        block = ipaddress.ip_network(
            f"10.{100 + secrets.randbelow(100)}.{secrets.randbelow(256)}.0/24"
        )
        if not any(block.overlaps(u) for u in used):
            break
    else:
        raise SandboxError("no free private /24 in 10.100.0.0/16-10.199.0.0/16 for the node")
    tag = secrets.token_hex(4)
    # interface names hold 15 characters at most
    return NodeNet(f"csb-node-{tag}", f"csbh{tag}", f"csbn{tag}", str(block))


def create(net: NodeNet) -> None:
    """The namespace, the veth pair, the addresses and the host's route to the pods."""
    if net.netns_path.exists():
        raise SandboxError(f"network namespace {net.netns} already exists")
    _run("ip", "netns", "add", net.netns)
    _run("ip", "link", "add", net.host_if, "type", "veth", "peer", "name", net.node_if)
    _run("ip", "link", "set", net.node_if, "netns", net.netns)
    _run("ip", "addr", "add", f"{net.host_ip}/30", "dev", net.host_if)
    _run("ip", "link", "set", net.host_if, "up")
    inside = ("ip", "-n", net.netns)
    _run(*inside, "link", "set", "lo", "up")
    _run(*inside, "addr", "add", f"{API_SERVICE_IP}/32", "dev", "lo")
    _run(*inside, "addr", "add", f"{net.node_ip}/30", "dev", net.node_if)
    _run(*inside, "link", "set", net.node_if, "up")
    # the node routes between the pods' bridge and the veth (its own namespace's setting)
    _run("ip", "netns", "exec", net.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    _run("ip", "route", "add", net.pod_cidr, "via", net.node_ip, "dev", net.host_if)


def exists(net: NodeNet) -> bool:
    return net.netns_path.exists()


def delete(net: NodeNet) -> list[str]:
    """Remove the namespace and the host's end of the veth (its route goes with it); what
    could not be removed is returned, not raised (``down`` goes on)."""
    problems = []
    if net.netns_path.exists():
        out = _run("ip", "netns", "delete", net.netns, check=False)
        if out.returncode != 0:
            problems.append(f"ip netns delete {net.netns}: {out.stderr.strip()}")
    if Path(f"/sys/class/net/{net.host_if}").exists():
        out = _run("ip", "link", "delete", net.host_if, check=False)
        if out.returncode != 0 and Path(f"/sys/class/net/{net.host_if}").exists():
            problems.append(f"ip link delete {net.host_if}: {out.stderr.strip()}")
    return problems
