"""OpenBao in the sandbox: one node, or three in one raft cluster (``ha``), each with raft
storage and a file audit device. Not dev mode: the nodes start uninitialized and sealed;
the bootstrap initializes and unseals them, never the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bootstrap.clients import vault
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState

Say = Callable[[str], None]


#: The audit log, relative to each node's own folder (its working folder). The same text in
#: every node's configuration and every sandbox's: OpenBao compares its declared audit
#: devices with the table in its data, and refuses to become active when they differ (so a
#: snapshot restored into another sandbox, or a follower taking over, would never lead).
AUDIT_LOG = "audit.log"


def config(node: int, data: Path, api: int, cluster: int, peers: list[int]) -> str:
    """A node's configuration (HCL): raft storage joining ``peers``, a plain-HTTP loopback
    listener, and the file audit device (:data:`AUDIT_LOG`)."""
    joins = "".join(
        f'  retry_join {{\n    leader_api_addr = "http://127.0.0.1:{p}"\n  }}\n' for p in peers
    )
    return (
        # A lone node: performance_multiplier 1, raft's tightest timings (the default, 5, is
        # for busy production networks). A node waits its heartbeat timeout before it calls an
        # election, so it leads about a second after unseal instead of five or more. Not with
        # peers: on a loaded 2-core machine the tight timeouts kept a follower unhealthy, and
        # autopilot never promoted it to voter (seen once in CI). Sandbox only: real clusters
        # keep what their operators configured.
        f'storage "raft" {{\n  path = "{data}"\n  node_id = "bao-{node}"\n'
        + ("" if peers or node else "  performance_multiplier = 1\n")
        + f"{joins}}}\n\n"
        f'listener "tcp" {{\n  address = "127.0.0.1:{api}"\n'
        f'  cluster_address = "127.0.0.1:{cluster}"\n  tls_disable = true\n}}\n\n'
        f'api_addr = "http://127.0.0.1:{api}"\ncluster_addr = "http://127.0.0.1:{cluster}"\n'
        f'disable_mlock = true\nui = false\nlog_level = "info"\n\n'
        # OpenBao takes audit devices only from its configuration (declarative).
        f'audit "file" "file" {{\n  description = "sandbox audit log"\n'
        f'  options {{\n    file_path = "{AUDIT_LOG}"\n  }}\n}}\n'
    )


def start_nodes(state: SandboxState, binary: str, ports: list[tuple[int, int]], say: Say) -> None:
    """Start one node per (API port, cluster port); in HA each joins the others."""
    directory = Path(state.directory)
    for i, (api, cluster) in enumerate(ports):
        data = directory / f"bao-{i}"
        (data / "raft").mkdir(parents=True)
        peers = [a for j, (a, _) in enumerate(ports) if j != i] if state.ha else []
        conf = data / "config.hcl"
        conf.write_text(config(i, data / "raft", api, cluster, peers), encoding="utf-8")
        say(f"OpenBao node bao-{i} on 127.0.0.1:{api} (raft, uninitialized and sealed)")
        state.launch(f"bao-{i}", [binary, "server", f"-config={conf}"], clean_env(), cwd=data)


def wait_answering(state: SandboxState, wait: WaitSettings) -> None:
    """Until every node answers its health endpoint (sealed and uninitialized count)."""
    for addr in state.bao_addrs:

        def answers(addr: str = addr) -> None:
            state.raise_if_exited()
            h = vault.health(addr)
            if h.code is None:
                raise Pending(h.state)

        wait_for(answers, f"OpenBao {addr} to answer", wait)
