"""The sandbox: a real local control plane as plain processes on loopback (the envtest
pattern) -- etcd, kube-apiserver and OpenBao (raft storage, not dev mode: it starts
uninitialized and sealed) -- with its state in one directory.

It is the test substrate and the default target of ``invoke bootstrap`` on a machine with no
cluster configured. The sandbox never initializes or unseals OpenBao; the bootstrap does.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap import pki, procs, tools, vault
from bootstrap.errors import BootstrapError, SandboxError, WaitTimeout
from bootstrap.waits import Pending, WaitSettings, wait_for

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class Proc:
    name: str
    binary: str
    pid: int
    log: str


@dataclass
class SandboxState:
    directory: str
    kubeconfig: str
    apiserver_url: str
    ca_cert: str
    etcd_url: str
    bao_addrs: list[str]
    ha: bool
    processes: list[Proc] = field(default_factory=list)
    started_at: float = 0.0
    vso: str = ""  # why VSO is not running, or "running"

    @property
    def bao_addr(self) -> str:
        return self.bao_addrs[0]

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": self.kubeconfig,
            "BAO_ADDR": self.bao_addr,
            "VAULT_ADDR": self.bao_addr,
        }

    @classmethod
    def load(cls, directory: Path) -> SandboxState | None:
        path = directory / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        data["processes"] = [Proc(**p) for p in data.get("processes", [])]
        return cls(**data)

    def save(self) -> None:
        path = Path(self.directory) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def running(self) -> list[Proc]:
        return [p for p in self.processes if procs.alive(p.pid, p.binary)]


Progress = Callable[[str], None]


def _https_ok(url: str, state_ca: Path, cert: Path, key: Path) -> tuple[bool, str]:
    ctx = ssl.create_default_context(cafile=str(state_ca))
    ctx.load_cert_chain(str(cert), str(key))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:  # noqa: S310
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _kubeconfig(server: str, p: pki.SandboxPKI) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sandbox",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {"server": server, "certificate-authority-data": b64(p.ca_cert)},
            }
        ],
        "users": [
            {
                "name": "sandbox-admin",
                "user": {
                    "client-certificate-data": b64(p.admin_cert),
                    "client-key-data": b64(p.admin_key),
                },
            }
        ],
        "contexts": [
            {"name": "sandbox", "context": {"cluster": "sandbox", "user": "sandbox-admin"}}
        ],
    }


def _bao_config(
    node: int, data: Path, api: int, cluster: int, peers: list[int], audit_log: Path
) -> str:
    joins = "".join(
        f'  retry_join {{\n    leader_api_addr = "http://127.0.0.1:{p}"\n  }}\n' for p in peers
    )
    return (
        f'storage "raft" {{\n  path = "{data}"\n  node_id = "bao-{node}"\n{joins}}}\n\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{api}"\n'
        f'  cluster_address = "127.0.0.1:{cluster}"\n  tls_disable = true\n}}\n\n'
        f'api_addr = "http://127.0.0.1:{api}"\ncluster_addr = "http://127.0.0.1:{cluster}"\n'
        f'disable_mlock = true\nui = false\nlog_level = "info"\n\n'
        # OpenBao takes audit devices only from its configuration (declarative).
        f'audit "file" "file" {{\n  description = "sandbox audit log"\n'
        f'  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
    )


def up(
    directory: Path,
    tools_dir: Path,
    *,
    ha: bool = False,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> SandboxState:
    """Start the sandbox. Refuses if one already runs in ``directory``."""
    say = progress or (lambda msg: log.info("%s", msg))
    directory = directory.resolve()
    existing = SandboxState.load(directory)
    if existing is not None:
        if existing.running():
            raise SandboxError(
                f"a sandbox already runs in {directory} (apiserver {existing.apiserver_url}, "
                f"OpenBao {existing.bao_addr}); 'invoke sandbox.down' stops it"
            )
        say(f"removing the state of a stopped sandbox in {directory}")
        shutil.rmtree(directory)
    binaries = {n: str(tools.require(n, tools_dir)) for n in ("etcd", "kube-apiserver", "bao")}
    started = time.monotonic()
    directory.mkdir(parents=True)
    os.chmod(directory, 0o700)
    n_bao = 3 if ha else 1
    ports = procs.free_ports(3 + 2 * n_bao)
    etcd_client, etcd_peer, api_port = ports[:3]
    bao_ports = [(ports[3 + 2 * i], ports[4 + 2 * i]) for i in range(n_bao)]
    certs = pki.generate(directory / "pki")
    state = SandboxState(
        directory=str(directory),
        kubeconfig=str(directory / "kubeconfig"),
        apiserver_url=f"https://127.0.0.1:{api_port}",
        ca_cert=str(certs.ca_cert),
        etcd_url=f"http://127.0.0.1:{etcd_client}",
        bao_addrs=[f"http://127.0.0.1:{a}" for a, _ in bao_ports],
        ha=ha,
        started_at=time.time(),
    )
    (directory / "kubeconfig").write_text(
        yaml.safe_dump(_kubeconfig(state.apiserver_url, certs)), encoding="utf-8"
    )
    os.chmod(directory / "kubeconfig", 0o600)
    logs = directory / "logs"

    def launch(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        pid = procs.start(argv, logs / f"{name}.log", env=env)
        state.processes.append(Proc(name, argv[0], pid, str(logs / f"{name}.log")))
        state.save()

    try:
        say(f"etcd on 127.0.0.1:{etcd_client}")
        launch(
            "etcd",
            [
                binaries["etcd"],
                "--name",
                "sandbox",
                "--data-dir",
                str(directory / "etcd"),
                "--listen-client-urls",
                state.etcd_url,
                "--advertise-client-urls",
                state.etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster",
                f"sandbox=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ],
        )
        for i, (api, cluster) in enumerate(bao_ports):
            data = directory / f"bao-{i}"
            (data / "raft").mkdir(parents=True)
            peers = [a for j, (a, _) in enumerate(bao_ports) if j != i] if ha else []
            conf = data / "config.hcl"
            (directory / "audit").mkdir(exist_ok=True)
            audit_log = directory / "audit" / f"bao-{i}.log"
            conf.write_text(
                _bao_config(i, data / "raft", api, cluster, peers, audit_log), encoding="utf-8"
            )
            say(f"OpenBao node bao-{i} on 127.0.0.1:{api} (raft, uninitialized and sealed)")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
            launch(f"bao-{i}", [binaries["bao"], "server", f"-config={conf}"], env)
        say(f"kube-apiserver on {state.apiserver_url}")
        launch(
            "kube-apiserver",
            [
                binaries["kube-apiserver"],
                "--etcd-servers",
                state.etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                "--secure-port",
                str(api_port),
                "--cert-dir",
                str(directory / "pki"),
                "--tls-cert-file",
                str(certs.serving_cert),
                "--tls-private-key-file",
                str(certs.serving_key),
                "--client-ca-file",
                str(certs.ca_cert),
                "--service-account-issuer",
                SA_ISSUER,
                "--service-account-key-file",
                str(certs.sa_pub),
                "--service-account-signing-key-file",
                str(certs.sa_key),
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                "--authorization-mode",
                "RBAC",
                "--disable-admission-plugins",
                "ServiceAccount",
                "--allow-privileged=true",
                "--v",
                "1",
            ],
        )
        state.vso = (
            "not started: " + tools.TOOLS["vault-secrets-operator"].unavailable
            if tools.TOOLS["vault-secrets-operator"].unavailable
            else "not built"
        )
        state.save()
        wait = WaitSettings(timeout=timeout, initial=0.2, maximum=1.0)

        def apiserver_ready() -> None:
            _dead_check(state)
            ok, seen = _https_ok(
                f"{state.apiserver_url}/readyz", certs.ca_cert, certs.admin_cert, certs.admin_key
            )
            if not ok:
                raise Pending(f"/readyz: {seen}")

        wait_for(apiserver_ready, f"kube-apiserver {state.apiserver_url} to be ready", wait)
        for addr in state.bao_addrs:

            def bao_answers(addr: str = addr) -> None:
                _dead_check(state)
                h = vault.health(addr)
                if h.code is None:
                    raise Pending(h.state)

            wait_for(bao_answers, f"OpenBao {addr} to answer", wait)
        _install_operator_crds(state)
    except (SandboxError, WaitTimeout, OSError, BootstrapError) as exc:
        tails = "".join(
            f"\n--- {p.name} ({p.log}) ---\n" + _tail(Path(p.log)) for p in state.processes
        )
        down(directory, keep=True)
        raise SandboxError(
            f"sandbox did not start: {exc}{tails}\n(state kept in {directory} for inspection)"
        ) from None
    say(f"sandbox up in {time.monotonic() - started:.1f}s")
    return state


def _install_operator_crds(state: SandboxState) -> None:
    """VSO v0.1.0 with its CRDs where it can be had; else the stand-in CRDs (see crds.py)."""
    from bootstrap.crds import standin_crds
    from bootstrap.kube import Kube

    vso = tools.TOOLS["vault-secrets-operator"]
    kube = Kube(state.kubeconfig)
    for crd in standin_crds():
        kube.apply(crd)
    kube.wait_crds_established([c["metadata"]["name"] for c in standin_crds()])
    state.vso = f"not running ({vso.unavailable}); stand-in CRDs installed for its kinds"
    state.save()


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _dead_check(state: SandboxState) -> None:
    dead = [p.name for p in state.processes if not procs.alive(p.pid, p.binary)]
    if dead:
        raise SandboxError(f"{', '.join(dead)} exited")


def status(directory: Path) -> dict[str, Any]:
    state = SandboxState.load(directory.resolve())
    if state is None:
        return {"running": False, "directory": str(directory.resolve())}
    comps = []
    for p in state.processes:
        up_ = procs.alive(p.pid, p.binary)
        detail = ""
        if p.name.startswith("bao-") and up_:
            addr = state.bao_addrs[int(p.name.split("-")[1])]
            detail = f"{addr} {vault.health(addr).state}"
        elif p.name == "kube-apiserver":
            detail = state.apiserver_url
        elif p.name == "etcd":
            detail = state.etcd_url
        comps.append({"name": p.name, "pid": p.pid, "running": up_, "detail": detail, "log": p.log})
    comps.append(
        {
            "name": "vault-secrets-operator",
            "pid": None,
            "running": False,
            "detail": state.vso,
            "log": "",
        }
    )
    return {
        "running": any(c["running"] for c in comps),
        "directory": state.directory,
        "kubeconfig": state.kubeconfig,
        "components": comps,
        "ha": state.ha,
    }


def down(directory: Path, *, keep: bool = False) -> list[str]:
    """Stop the processes this sandbox started (by pid), then remove its state unless kept."""
    directory = directory.resolve()
    state = SandboxState.load(directory)
    stopped: list[str] = []
    if state is not None:
        # apiserver before etcd; OpenBao nodes in any order.
        order = sorted(state.processes, key=lambda p: p.name != "kube-apiserver")
        for p in order:
            if procs.stop(p.pid, p.binary):
                stopped.append(p.name)
    if not keep and directory.exists():
        shutil.rmtree(directory)
    return stopped
