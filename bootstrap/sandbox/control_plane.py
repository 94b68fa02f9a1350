"""The Kubernetes control plane of the sandbox: etcd, kube-apiserver (with the admin's
kubeconfig) and kube-controller-manager. No node runs: Deployments get ReplicaSets and
rollouts get revisions, but no pod starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.sandbox import kubeconfig, pki
from bootstrap.sandbox.processes import clean_env, https_ok
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import versions


def sa_issuer(unique: str) -> str:
    """The ServiceAccount issuer of one sandbox (distinct per sandbox, as clusters' are)."""
    return f"https://sandbox-{unique}.cluster-secrets-bootstrap.invalid"


Say = Callable[[str], None]


def write_admin_kubeconfig(state: SandboxState, certs: pki.SandboxPKI) -> None:
    """The kubeconfig the sandbox hands out (``sandbox.env``): cluster admin by certificate."""
    kubeconfig.write(
        Path(state.kubeconfig),
        state.apiserver_url,
        certs.ca_cert,
        "sandbox-admin",
        kubeconfig.cert_user(certs.admin_cert, certs.admin_key),
    )


def start_etcd(state: SandboxState, binary: str, peer_port: int, say: Say) -> None:
    say(f"etcd on {state.etcd_url.removeprefix('http://')}")
    peer = f"http://127.0.0.1:{peer_port}"
    state.launch(
        "etcd",
        [
            binary,
            "--name",
            "sandbox",
            "--data-dir",
            str(Path(state.directory) / "etcd"),
            "--listen-client-urls",
            state.etcd_url,
            "--advertise-client-urls",
            state.etcd_url,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"sandbox={peer}",
            "--unsafe-no-fsync",
            "--log-level",
            "info",  # a slow start says where it is (at warn its log stayed empty)
        ],
        clean_env(),
        state.etcd_url,
        f"{state.etcd_url}/health",
    )


def start_apiserver(
    state: SandboxState,
    binary: str,
    certs: pki.SandboxPKI,
    port: int,
    say: Say,
    node: pki.NodePKI | None = None,
) -> None:
    """With ``node`` (the node sandbox): the Node authorizer for kubelet, the ServiceAccount
    admission plugin (pods get their tokens) and the API server's way to kubelets (its
    client certificate, and the CA that signed kubelet's serving certificate). It stays
    bound to loopback either way (the node reaches it through the forwarder)."""
    say(f"kube-apiserver on {state.apiserver_url}")
    if node is None:
        mode = ["--authorization-mode", "RBAC", "--disable-admission-plugins", "ServiceAccount"]
    else:
        mode = [
            "--authorization-mode",
            "Node,RBAC",
            "--enable-admission-plugins",
            "NodeRestriction",
            f"--kubelet-client-certificate={node.apiserver_kubelet_cert}",
            f"--kubelet-client-key={node.apiserver_kubelet_key}",
            f"--kubelet-certificate-authority={certs.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
    state.launch(
        "kube-apiserver",
        [
            binary,
            "--etcd-servers",
            state.etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(port),
            "--cert-dir",
            str(Path(state.directory) / "pki"),
            "--tls-cert-file",
            str(certs.serving_cert),
            "--tls-private-key-file",
            str(certs.serving_key),
            "--client-ca-file",
            str(certs.ca_cert),
            "--service-account-issuer",
            state.sa_issuer or sa_issuer("default"),
            "--service-account-key-file",
            str(certs.sa_pub),
            "--service-account-signing-key-file",
            str(certs.sa_key),
            "--service-cluster-ip-range",
            "10.0.0.0/24",
            *mode,
            "--allow-privileged=true",
            "--v",
            "1",
        ],
        clean_env(),
        state.apiserver_url,
    )


def wait_apiserver(state: SandboxState, certs: pki.SandboxPKI, wait: WaitSettings) -> None:
    """Until ``/readyz`` answers 200 to the admin; fails at once if a component exited."""

    def ready() -> None:
        state.raise_if_exited()
        ok, seen = https_ok(
            f"{state.apiserver_url}/readyz", certs.ca_cert, certs.admin_cert, certs.admin_key
        )
        if not ok:
            raise Pending(f"/readyz: {seen}")

    wait_for(ready, f"kube-apiserver {state.apiserver_url} to be ready", wait)


def start_controller_manager(
    state: SandboxState, binary: str, certs: pki.SandboxPKI, port: int
) -> None:
    """kube-controller-manager with its own client certificate; each controller uses its
    own ServiceAccount credentials, as in a cluster. Without it Deployments get no
    ReplicaSets, owner references never cascade and namespaces never finish deleting."""
    directory = Path(state.directory)
    config = directory / "controller-manager.kubeconfig"
    kubeconfig.write(
        config,
        state.apiserver_url,
        certs.ca_cert,
        "system:kube-controller-manager",
        kubeconfig.cert_user(certs.controller_manager_cert, certs.controller_manager_key),
    )
    state.launch(
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
        clean_env(),
        f"v{versions.KUBERNETES}",
        f"https://127.0.0.1:{port}/healthz",
    )
