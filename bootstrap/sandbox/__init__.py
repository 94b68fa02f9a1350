"""The sandbox: a real local control plane as plain processes on loopback (the envtest
pattern, plus the controllers and the operator) -- etcd, kube-apiserver,
kube-controller-manager, OpenBao (raft storage, not dev mode: it starts uninitialized and
sealed) and the Vault Secrets Operator v0.1.0 -- with its state in one directory.

The operator is installed as a cluster would install it: its own five CRDs, its namespace,
a ServiceAccount bound to the ClusterRole and leader-election Role of its source tree's
``config/rbac``, and a default VaultConnection to OpenBao. It runs as a process whose
kubeconfig authenticates as that ServiceAccount (not as cluster admin), so the RBAC a real
install grants is what is exercised.

It is the test substrate and the default target of ``invoke bootstrap`` on a machine with no
cluster configured. The sandbox never initializes or unseals OpenBao; the bootstrap does.
No node runs here: Deployments get ReplicaSets and rollouts get revisions, but no pod starts.
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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bootstrap.clients import procs, vault
from bootstrap.core.errors import BootstrapError, SandboxError, WaitTimeout
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model import conventions
from bootstrap.sandbox import pki
from bootstrap.tooling import tools, versions

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


#: Where the operator runs, as its Helm chart installs it by default.
OPERATOR_NAMESPACE = conventions.OPERATOR_NAMESPACE
OPERATOR_SERVICE_ACCOUNT = "vault-secrets-operator-controller-manager"
#: Lifetime of the operator's ServiceAccount token (its kubeconfig), like the certificates.
OPERATOR_TOKEN_SECONDS = 30 * 24 * 3600


@dataclass
class Proc:
    name: str
    binary: str
    pid: int
    log: str
    #: How to start it again (``restart``); never holds a secret (tokens live in files).
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    #: An HTTP(S) endpoint that answers 200 once it serves ("" for none).
    health: str = ""
    #: Its start time (procs.start_time): pid and start time say it is still ours.
    started: str = ""

    def alive(self) -> bool:
        return procs.alive(self.pid, self.binary, self.started)

    def stop(self) -> bool:
        """Stop it (SIGTERM, then SIGKILL) if it is still the process we started."""
        return procs.stop(self.pid, self.binary, started=self.started)


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
    operator_namespace: str = OPERATOR_NAMESPACE

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
        return [p for p in self.processes if p.alive()]

    def process(self, name: str) -> Proc:
        for p in self.processes:
            if p.name == name:
                return p
        raise SandboxError(f"the sandbox in {self.directory} has no component {name!r}")


Progress = Callable[[str], None]


def _get_ok(url: str, ctx: ssl.SSLContext) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:  # noqa: S310
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _https_ok(url: str, state_ca: Path, cert: Path, key: Path) -> tuple[bool, str]:
    ctx = ssl.create_default_context(cafile=str(state_ca))
    ctx.load_cert_chain(str(cert), str(key))
    return _get_ok(url, ctx)


def _http_ok(url: str) -> tuple[bool, str]:
    """GET a loopback health endpoint (self-signed TLS is not verified: it only says up)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _get_ok(url, ctx)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _kubeconfig(server: str, ca: Path, user: str, credentials: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sandbox",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
    }


def _write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump(config))


def _cert_user(cert: Path, key: Path) -> dict[str, str]:
    return {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a component: ours without Vault/OpenBao settings or tokens (the
    operator's Vault client would read VAULT_ADDR and VAULT_TOKEN) or a foreign KUBECONFIG."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_")) and k != "KUBECONFIG"
    }
    env.update(extra or {})
    return env


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
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "bao", "vault-secrets-operator")
    binaries = {n: str(tools.require(n, tools_dir)) for n in names}
    started = time.monotonic()
    directory.mkdir(parents=True)
    os.chmod(directory, 0o700)
    n_bao = 3 if ha else 1
    ports = procs.free_ports(6 + 2 * n_bao)
    etcd_client, etcd_peer, api_port, kcm_port, vso_metrics, vso_probe = ports[:6]
    bao_ports = [(ports[6 + 2 * i], ports[7 + 2 * i]) for i in range(n_bao)]
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
    _write_kubeconfig(
        directory / "kubeconfig",
        _kubeconfig(
            state.apiserver_url,
            certs.ca_cert,
            "sandbox-admin",
            _cert_user(certs.admin_cert, certs.admin_key),
        ),
    )
    logs = directory / "logs"
    wait = WaitSettings(timeout=timeout, initial=0.2, maximum=1.0)

    def launch(
        name: str, argv: list[str], env: dict[str, str], detail: str = "", health: str = ""
    ) -> None:
        pid = procs.start(argv, logs / f"{name}.log", env=env)
        state.processes.append(
            Proc(
                name,
                argv[0],
                pid,
                str(logs / f"{name}.log"),
                argv,
                env,
                detail,
                health,
                procs.start_time(pid),
            )
        )
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
            _clean_env(),
            state.etcd_url,
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
            launch(f"bao-{i}", [binaries["bao"], "server", f"-config={conf}"], _clean_env())
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
            _clean_env(),
            state.apiserver_url,
        )

        def apiserver_ready() -> None:
            _dead_check(state)
            ok, seen = _https_ok(
                f"{state.apiserver_url}/readyz", certs.ca_cert, certs.admin_cert, certs.admin_key
            )
            if not ok:
                raise Pending(f"/readyz: {seen}")

        wait_for(apiserver_ready, f"kube-apiserver {state.apiserver_url} to be ready", wait)
        _start_controller_manager(
            state, binaries["kube-controller-manager"], certs, kcm_port, launch
        )
        for addr in state.bao_addrs:

            def bao_answers(addr: str = addr) -> None:
                _dead_check(state)
                h = vault.health(addr)
                if h.code is None:
                    raise Pending(h.state)

            wait_for(bao_answers, f"OpenBao {addr} to answer", wait)
        _healthy(state, state.process("kube-controller-manager"), wait)
        say(f"Vault Secrets Operator v{versions.VSO} in namespace {state.operator_namespace}")
        _install_operator(state, tools_dir)
        launch(
            "vault-secrets-operator",
            [
                binaries["vault-secrets-operator"],
                "--leader-elect=false",
                f"--metrics-bind-address=127.0.0.1:{vso_metrics}",
                f"--health-probe-bind-address=127.0.0.1:{vso_probe}",
                # info, not the development default (debug): its debug lines on Secret
                # drift carry the Secret's data
                "--zap-log-level=info",
            ],
            _clean_env(
                {
                    "KUBECONFIG": str(directory / "operator.kubeconfig"),
                    "OPERATOR_NAMESPACE": state.operator_namespace,
                }
            ),
            f"v{versions.VSO}, probes 127.0.0.1:{vso_probe}",
            f"http://127.0.0.1:{vso_probe}/readyz",
        )
        _healthy(state, state.process("vault-secrets-operator"), wait)
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


Launch = Callable[..., None]


def _healthy(state: SandboxState, proc: Proc, wait: WaitSettings) -> None:
    def probe() -> None:
        if not proc.alive():
            raise SandboxError(f"{proc.name} exited (log {proc.log}):\n{_tail(Path(proc.log))}")
        ok, seen = _http_ok(proc.health)
        if not ok:
            raise Pending(f"{proc.health}: {seen}")

    wait_for(probe, f"{proc.name} to answer {proc.health}", wait)


def _start_controller_manager(
    state: SandboxState, binary: str, certs: pki.SandboxPKI, port: int, launch: Launch
) -> None:
    """kube-controller-manager with its own client certificate; each controller uses its
    own ServiceAccount credentials, as in a cluster. Without it Deployments get no
    ReplicaSets, owner references never cascade and namespaces never finish deleting."""
    directory = Path(state.directory)
    config = directory / "controller-manager.kubeconfig"
    _write_kubeconfig(
        config,
        _kubeconfig(
            state.apiserver_url,
            certs.ca_cert,
            "system:kube-controller-manager",
            _cert_user(certs.controller_manager_cert, certs.controller_manager_key),
        ),
    )
    launch(
        "kube-controller-manager",
        [
            binary,
            f"--kubeconfig={config}",
            f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={directory / 'pki' / 'controller-manager'}",
            f"--root-ca-file={certs.ca_cert}",
            f"--service-account-private-key-file={certs.sa_key}",
            "--use-service-account-credentials=true",
            "--controllers=*",
            "--v=1",
        ],
        _clean_env(),
        f"v{versions.KUBERNETES}",
        f"https://127.0.0.1:{port}/healthz",
    )


def _install_operator(state: SandboxState, tools_dir: Path) -> None:
    """The operator's CRDs, namespace, ServiceAccount and RBAC (from its own source tree),
    its kubeconfig as that ServiceAccount, and the default VaultConnection to OpenBao."""
    from bootstrap.clients.kube import Kube

    config = tools.operator_config(tools_dir)
    kube = Kube(state.kubeconfig)
    crds = [
        doc
        for path in sorted((config / "crd" / "bases").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    ]
    if len(crds) != 5:
        raise SandboxError(f"expected the operator's five CRDs in {config}, found {len(crds)}")
    for crd in crds:
        kube.apply(crd)
    kube.wait_crds_established([c["metadata"]["name"] for c in crds])
    ns = state.operator_namespace
    prefix = "vault-secrets-operator-"
    kube.ensure_namespace(ns)
    kube.ensure_service_account(ns, OPERATOR_SERVICE_ACCOUNT)
    subject = [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": ns}]
    rbac = "rbac.authorization.k8s.io/v1"
    for file_name, kind in (("role.yaml", "ClusterRole"), ("leader_election_role.yaml", "Role")):
        (doc,) = [
            d
            for d in yaml.safe_load_all((config / "rbac" / file_name).read_text(encoding="utf-8"))
            if d
        ]
        name = prefix + doc["metadata"]["name"]
        meta: dict[str, Any] = (
            {"name": name} if kind == "ClusterRole" else {"name": name, "namespace": ns}
        )
        kube.apply({"apiVersion": rbac, "kind": kind, "metadata": meta, "rules": doc["rules"]})
        kube.apply(
            {
                "apiVersion": rbac,
                "kind": f"{kind}Binding",
                "metadata": {**meta, "name": name.removesuffix("-role") + "-rolebinding"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
                "subjects": subject,
            }
        )
    token = kube.token(ns, OPERATOR_SERVICE_ACCOUNT, [], OPERATOR_TOKEN_SECONDS)
    _write_kubeconfig(
        Path(state.directory) / "operator.kubeconfig",
        _kubeconfig(
            state.apiserver_url, Path(state.ca_cert), OPERATOR_SERVICE_ACCOUNT, {"token": token}
        ),
    )
    # As the operator's Helm chart does with defaultVaultConnection: VaultAuths without a
    # vaultConnectionRef use this one.
    kube.apply(
        {
            "apiVersion": "secrets.hashicorp.com/v1beta1",
            "kind": "VaultConnection",
            "metadata": {"name": "default", "namespace": ns},
            "spec": {"address": state.bao_addr},
        }
    )


def restart(directory: Path, name: str, timeout: float = 60.0) -> Proc:
    """Start one stopped (or killed) component again with its original command line."""
    state = SandboxState.load(directory.resolve())
    if state is None:
        raise SandboxError(f"no sandbox in {directory}")
    old = state.process(name)
    if old.alive():
        raise SandboxError(f"{name} still runs (pid {old.pid})")
    pid = procs.start(old.argv, Path(old.log), env=old.env)
    new = replace(old, pid=pid, started=procs.start_time(pid))
    state.processes = [new if p.name == name else p for p in state.processes]
    state.save()
    if new.health:
        _healthy(state, new, WaitSettings(timeout=timeout, initial=0.2, maximum=1.0))
    return new


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _dead_check(state: SandboxState) -> None:
    dead = [p.name for p in state.processes if not p.alive()]
    if dead:
        raise SandboxError(f"{', '.join(dead)} exited")


def status(directory: Path) -> dict[str, Any]:
    state = SandboxState.load(directory.resolve())
    if state is None:
        return {"running": False, "directory": str(directory.resolve())}
    comps = []
    for p in state.processes:
        up_ = p.alive()
        detail = p.detail
        if p.name.startswith("bao-") and up_:
            addr = state.bao_addrs[int(p.name.split("-")[1])]
            detail = f"{addr} {vault.health(addr).state}"
        comps.append({"name": p.name, "pid": p.pid, "running": up_, "detail": detail, "log": p.log})
    return {
        "running": any(c["running"] for c in comps),
        "directory": state.directory,
        "kubeconfig": state.kubeconfig,
        "components": comps,
        "ha": state.ha,
    }


#: Stop order: the API server's clients first, then the API server, then the rest.
_STOP_FIRST = ("vault-secrets-operator", "kube-controller-manager", "kube-apiserver")


def down(directory: Path, *, keep: bool = False) -> list[str]:
    """Stop the processes this sandbox started (by pid), then remove its state unless kept."""
    directory = directory.resolve()
    state = SandboxState.load(directory)
    stopped: list[str] = []
    if state is not None:
        order = sorted(
            state.processes,
            key=lambda p: _STOP_FIRST.index(p.name) if p.name in _STOP_FIRST else len(_STOP_FIRST),
        )
        for p in order:
            if p.stop():
                stopped.append(p.name)
    if not keep and directory.exists():
        shutil.rmtree(directory)
    return stopped
