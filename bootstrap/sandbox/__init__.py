"""The sandbox: a real local control plane as plain processes on loopback (the envtest
pattern, plus the controllers and the operator) -- etcd, kube-apiserver,
kube-controller-manager, OpenBao (raft storage, not dev mode: it starts uninitialized and
sealed) and the Vault Secrets Operator (1.4.1 by default, or v0.1.0: ``OperatorOptions``) --
with its state in one directory.

One module per component: ``control_plane`` (etcd, kube-apiserver,
kube-controller-manager), ``openbao``, ``secrets_operator`` (installed as a cluster would
install it, running as its own ServiceAccount); ``state`` and ``processes`` record and probe
what runs, ``kubeconfig`` and ``pki`` give the clients their credentials. This module starts,
inspects, restarts and stops the whole.

It is the test substrate and the default target of ``invoke bootstrap`` on a machine with no
cluster configured. The sandbox never initializes or unseals OpenBao; the bootstrap does.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bootstrap.clients import procs, vault
from bootstrap.core.errors import BootstrapError, SandboxError, WaitTimeout
from bootstrap.core.waits import WaitSettings
from bootstrap.sandbox import (
    control_plane,
    external_secrets,
    netns,
    node,
    openbao,
    pki,
    reloader,
    secrets_operator,
)
from bootstrap.sandbox.processes import Proc, healthy
from bootstrap.sandbox.secrets_operator import (
    OPERATOR_NAMESPACE,
    OPERATOR_SERVICE_ACCOUNT,
    OperatorOptions,
)
from bootstrap.sandbox.state import STATE_FILE, SandboxState
from bootstrap.tooling import tools, versions

__all__ = [
    "OPERATOR_NAMESPACE",
    "OPERATOR_SERVICE_ACCOUNT",
    "STATE_FILE",
    "OperatorOptions",
    "Proc",
    "SandboxState",
    "down",
    "restart",
    "status",
    "up",
]

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: The tools a sandbox runs (the operator's, of the version asked for, besides).
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "bao")
#: The operator's process name in the sandbox, whatever its version.
OPERATOR = "vault-secrets-operator"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one sandbox, all distinct."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    operator_metrics: int
    operator_probe: int
    #: (API, cluster) per OpenBao node.
    bao: list[tuple[int, int]]

    @classmethod
    def allocate(cls, bao_nodes: int) -> Ports:
        ports = procs.free_ports(6 + 2 * bao_nodes)
        bao = [(ports[6 + 2 * i], ports[7 + 2 * i]) for i in range(bao_nodes)]
        etcd_client, etcd_peer, apiserver, kcm, metrics, probe = ports[:6]
        return cls(etcd_client, etcd_peer, apiserver, kcm, metrics, probe, bao)


def _waits(timeout: float) -> WaitSettings:
    return WaitSettings(timeout=timeout, initial=0.2, maximum=1.0)


def up(
    directory: Path,
    tools_dir: Path,
    *,
    ha: bool = False,
    with_node: bool = False,
    timeout: float = 60.0,
    progress: Progress | None = None,
    operator: OperatorOptions | None = None,
) -> SandboxState:
    """Start the sandbox; ``with_node``: the node sandbox (``node``: containerd, kubelet,
    kube-scheduler; one Node, Ready before this returns); ``operator``: which Vault Secrets
    Operator runs, and how (default: 1.4.1 with its own defaults). Refuses if one already
    runs in ``directory``; on failure stops what it started and keeps the state for
    inspection."""
    say = progress or (lambda msg: log.info("%s", msg))
    operator = operator or OperatorOptions()
    directory = directory.resolve()
    _clear_stopped(directory, say)
    found: dict[str, Path | None] = {}
    if with_node:
        if os.geteuid() != 0:
            raise SandboxError("the node sandbox runs containers and network namespaces: as root")
        node.check_folder(directory)

        # the first node sandbox builds what only the node needs (tools.install --node)
        def built(name: str, msg: str) -> None:
            if not msg.startswith(("cached", "found")):
                say(f"{name}: {msg}")

        found = {r.name: r.path for r in tools.install(list(tools.NODE), tools_dir, built)}
    names = [*COMPONENTS, *(node.COMPONENTS if with_node else ())]
    binaries = {n: str(found.get(n) or tools.require(n, tools_dir)) for n in names}
    binaries[OPERATOR] = str(tools.require(operator.tool, tools_dir))
    if operator.engine == "eso" and operator.reloader:  # ESO restarts nothing: Reloader does
        binaries[reloader.PROCESS] = str(tools.require(tools.RELOADER, tools_dir))
    started = time.monotonic()
    directory.mkdir(parents=True)
    os.chmod(directory, 0o700)
    ports = Ports.allocate(3 if ha else 1)
    certs = pki.generate(directory / "pki")
    net = netns.allocate() if with_node else None
    node_certs = pki.issue_node(directory / "pki", node.NODE_NAME, net.node_ip) if net else None
    state = SandboxState(
        directory=str(directory),
        kubeconfig=str(directory / "kubeconfig"),
        apiserver_url=f"https://127.0.0.1:{ports.apiserver}",
        ca_cert=str(certs.ca_cert),
        etcd_url=f"http://127.0.0.1:{ports.etcd_client}",
        bao_addrs=[f"http://127.0.0.1:{a}" for a, _ in ports.bao],
        ha=ha,
        started_at=time.time(),
        sa_issuer=control_plane.sa_issuer(secrets.token_hex(4)),
        node=net.as_dict() if net else None,
        operator_version=operator.version,
        sync_engine=operator.engine,
    )
    control_plane.write_admin_kubeconfig(state, certs)
    try:
        if net is not None:
            state.save()  # down finds the network namespace whatever happens next
            say(f"network namespace {net.netns}: node {net.node_ip}, pods {net.pod_cidr}")
            netns.create(net)
        _start(state, binaries, certs, node_certs, ports, tools_dir, _waits(timeout), say, operator)
    except (SandboxError, WaitTimeout, OSError, BootstrapError) as exc:
        # every component's state and last log lines: which one exited, and what the others
        # were doing then (a control plane that dies without a word is read from its peers)
        tails = "".join(
            f"\n--- {p.name}: {'running' if p.alive() else 'exited'} (log {p.log}) ---\n" + p.tail()
            for p in state.processes
        )
        down(directory, keep=True)
        raise SandboxError(
            f"sandbox did not start: {exc}{tails}\n(state kept in {directory} for inspection)"
        ) from None
    say(f"sandbox up in {time.monotonic() - started:.1f}s")
    return state


def _clear_stopped(directory: Path, say: Progress) -> None:
    """Refuse a running sandbox; remove the state a stopped one left."""
    existing = SandboxState.load(directory)
    if existing is None:
        return
    if existing.running() or (existing.node is not None and netns.exists(node.net_of(existing))):
        raise SandboxError(
            f"a sandbox already runs in {directory} (apiserver {existing.apiserver_url}, "
            f"OpenBao {existing.bao_addr}); 'invoke sandbox.down' stops it"
        )
    say(f"removing the state of a stopped sandbox in {directory}")
    shutil.rmtree(directory)


def _start(
    state: SandboxState,
    binaries: dict[str, str],
    certs: pki.SandboxPKI,
    node_certs: pki.NodePKI | None,
    ports: Ports,
    tools_dir: Path,
    wait: WaitSettings,
    say: Progress,
    operator: OperatorOptions,
) -> None:
    """Every component in order, each waited for before what needs it starts."""
    control_plane.start_etcd(state, binaries["etcd"], ports.etcd_peer, say)
    openbao.start_nodes(state, binaries["bao"], ports.bao, say)
    if node_certs is not None:
        # the image store is ready by the time the API server is
        node.start_containerd(state, binaries, tools_dir, wait, say)
    # kube-apiserver gives etcd 20 s, then exits; on a busy machine etcd has taken longer
    healthy(state.process("etcd"), wait)
    control_plane.start_apiserver(
        state, binaries["kube-apiserver"], certs, ports.apiserver, say, node_certs
    )
    control_plane.wait_apiserver(state, certs, wait)
    control_plane.start_controller_manager(
        state, binaries["kube-controller-manager"], certs, ports.controller_manager
    )
    if node_certs is not None:
        node.start_apiproxy(state, ports.apiserver, say)
        node.start_dns(state, binaries["coredns"], certs, node_certs, wait, say)
        kubelet_started = time.monotonic()
        node.start_kubelet(state, binaries["kubelet"], certs, node_certs, say)
        node.start_scheduler(
            state, binaries["kube-scheduler"], certs, node_certs, procs.free_ports(1)[0]
        )
    openbao.wait_answering(state, wait)
    healthy(state.process("kube-controller-manager"), wait)
    if operator.engine == "eso":
        say(f"{operator.describe()} in namespace {external_secrets.NAMESPACE}")
        external_secrets.install(state, tools_dir)
        external_secrets.start(
            state,
            binaries[OPERATOR],
            ports.operator_metrics,
            ports.operator_probe,
            operator.flags(),
        )
        healthy(state.process(external_secrets.PROCESS), wait)
        if operator.reloader:
            say(f"Stakater Reloader v{versions.RELOADER} in namespace {reloader.NAMESPACE}")
            reloader.install(state, tools_dir)
            reloader.start(state, binaries[reloader.PROCESS])
            healthy(state.process(reloader.PROCESS), wait)
    else:
        _start_vso(state, binaries, ports, tools_dir, wait, say, operator)
    if node_certs is not None:
        healthy(state.process("kube-scheduler"), wait)
        node.wait_ready(state, wait)
        say(
            f"Node {node.NODE_NAME} Ready and schedulable "
            f"{time.monotonic() - kubelet_started:.1f}s after kubelet started"
        )
        node.start_kube_proxy(state, binaries["kube-proxy"], certs, node_certs, wait, say)


def _start_vso(
    state: SandboxState,
    binaries: dict[str, str],
    ports: Ports,
    tools_dir: Path,
    wait: WaitSettings,
    say: Progress,
    operator: OperatorOptions,
) -> None:
    say(f"Vault Secrets Operator {operator.describe()} in namespace {state.operator_namespace}")
    secrets_operator.install(state, tools_dir, operator.version)
    secrets_operator.start(
        state, binaries[OPERATOR], ports.operator_metrics, ports.operator_probe, operator
    )
    try:
        healthy(state.process("vault-secrets-operator"), wait)
    except SandboxError:
        # VSO v0.1.0 exits when its first API discovery fails (seen once on a busy machine:
        # "connection refused" from an API server that had just answered /readyz). Once,
        # with everything else running, it is started again.
        others = [p for p in state.processes if p.name != "vault-secrets-operator"]
        if not all(p.alive() for p in others):
            raise
        say("the operator exited as it started; starting it once more")
        new = restart(Path(state.directory), "vault-secrets-operator", wait.timeout)
        state.processes = [new if p.name == new.name else p for p in state.processes]


def restart(directory: Path, name: str, timeout: float = 60.0) -> Proc:
    """Start one stopped (or killed) component again with its original command line."""
    state = SandboxState.load(directory.resolve())
    if state is None:
        raise SandboxError(f"no sandbox in {directory}")
    old = state.process(name)
    if old.alive():
        raise SandboxError(f"{name} still runs (pid {old.pid})")
    pid = procs.start(old.argv, Path(old.log), env=old.env, cwd=Path(old.cwd) if old.cwd else None)
    new = replace(old, pid=pid, started=procs.start_time(pid))
    state.processes = [new if p.name == name else p for p in state.processes]
    state.save()
    if new.health:
        healthy(new, _waits(timeout))
    return new


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    running: bool
    detail: str
    log: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    netns: str
    netns_exists: bool
    address: str
    pod_cidr: str
    ready: str
    reason: str


@dataclass(frozen=True)
class SandboxStatus:
    """What runs in a sandbox (``sandbox.status``; ``--json`` prints :meth:`as_dict`)."""

    directory: str
    running: bool
    kubeconfig: str = ""
    components: tuple[ComponentStatus, ...] = ()
    ha: bool = False
    operator_version: str = ""
    operator_licence: str = ""
    node: NodeStatus | None = None
    #: ``vso`` or ``eso`` (then operator_version and _licence are ESO's).
    sync_engine: str = "vso"

    def as_dict(self) -> dict[str, object]:
        """The JSON of ``sandbox.status --json``."""
        if not self.components and not self.kubeconfig:
            return {"running": self.running, "directory": self.directory}
        out: dict[str, object] = {
            "running": self.running,
            "directory": self.directory,
            "kubeconfig": self.kubeconfig,
            "components": [asdict(c) for c in self.components],
            "ha": self.ha,
            "operator": {
                "engine": self.sync_engine,
                "version": self.operator_version,
                "licence": self.operator_licence,
            },
        }
        if self.node is not None:
            out["node"] = asdict(self.node)
        return out


def status(directory: Path) -> SandboxStatus:
    state = SandboxState.load(directory.resolve())
    if state is None:
        return SandboxStatus(directory=str(directory.resolve()), running=False)
    comps = []
    for p in state.processes:
        up_ = p.alive()
        detail = p.detail
        if p.name.startswith("bao-") and up_:
            addr = state.bao_addrs[int(p.name.split("-")[1])]
            detail = f"{addr} {vault.health(addr).state}"
        comps.append(ComponentStatus(p.name, p.pid, up_, detail, p.log))
    node_status = None
    if state.node is not None:
        net = node.net_of(state)
        cond = node.node_condition(state) if state.process("kube-apiserver").alive() else {}
        node_status = NodeStatus(
            name=node.NODE_NAME,
            netns=net.netns,
            netns_exists=netns.exists(net),
            address=net.node_ip,
            pod_cidr=net.pod_cidr,
            ready=cond.get("ready", "Unknown"),
            reason=cond.get("reason", "API server not answering"),
        )
    eso = state.sync_engine == "eso"
    return SandboxStatus(
        directory=state.directory,
        running=any(c.running for c in comps),
        kubeconfig=state.kubeconfig,
        components=tuple(comps),
        ha=state.ha,
        operator_version=versions.ESO if eso else state.operator_version,
        operator_licence=tools.TOOLS[
            tools.ESO if eso else tools.operator_tool(state.operator_version)
        ].licence,
        node=node_status,
        sync_engine=state.sync_engine,
    )


#: Stop order: the API server's clients first, then the API server, then the rest.
_STOP_FIRST = (
    *node.PROCESSES,
    "vault-secrets-operator",
    external_secrets.PROCESS,
    reloader.PROCESS,
    "kube-controller-manager",
    "kube-apiserver",
)


def down(directory: Path, *, keep: bool = False) -> list[str]:
    """Stop the processes this sandbox started (by pid), then remove its state unless kept.
    A node sandbox's containers are killed first (through containerd), its mounts undone and
    its network namespace removed, kept or not; what cannot be is an error."""
    directory = directory.resolve()
    state = SandboxState.load(directory)
    stopped: list[str] = []
    problems: list[str] = []
    if state is not None:
        if state.node is not None:
            try:
                stopped += node.stop_workloads(state)
            except SandboxError as exc:  # containerd hung: its processes stop by pid below
                problems.append(str(exc))
        order = sorted(
            state.processes,
            key=lambda p: _STOP_FIRST.index(p.name) if p.name in _STOP_FIRST else len(_STOP_FIRST),
        )
        for p in order:
            if p.stop():
                stopped.append(p.name)
        if state.node is not None:
            problems += node.cleanup(state)
    if problems:
        raise SandboxError(f"sandbox in {directory} not wholly cleaned: {'; '.join(problems)}")
    if not keep and directory.exists():
        shutil.rmtree(directory)
    return stopped
