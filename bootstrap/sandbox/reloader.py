"""Stakater Reloader in the sandbox, beside the External Secrets Operator (which restarts
nothing): installed as its manifests install it (a ServiceAccount bound to the ClusterRole of
its module's ``deployments/kubernetes/manifests/clusterrole.yaml``), run as a process whose
kubeconfig authenticates as that ServiceAccount. It rolls out a workload annotated
``secret.reloader.stakater.com/reload: <Secret names>`` when one of those Secrets' data
changes; with ``--reload-strategy=annotations`` it stamps the pod template with
``reloader.stakater.com/last-reloaded-from`` (no environment variable added to containers).

Reloader serves its liveness and metrics on port 9090 of every interface, fixed in its code:
one sandbox with Reloader per machine at a time (a port taken is said before it starts)."""

from __future__ import annotations

import socket
from pathlib import Path

from bootstrap.core.errors import SandboxError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.sandbox import kubeconfig
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import manifests, versions

PROCESS = "reloader"
#: Where it runs, as its manifests name it.
NAMESPACE = "reloader"
SERVICE_ACCOUNT = manifests.RELOADER_SERVICE_ACCOUNT
ROLE = manifests.RELOADER_ROLE
#: Its HTTP port (liveness /live, /metrics): fixed in its code.
PORT = 9090


def rbac(tools_dir: Path) -> list[JsonObject]:
    """Its ClusterRole (from its module) and the binding to its ServiceAccount."""
    return manifests.reloader_rbac(tools_dir, NAMESPACE)


def install(state: SandboxState, tools_dir: Path) -> None:
    """Its namespace, ServiceAccount and RBAC, and its kubeconfig as that account."""
    from bootstrap.clients.kube import Kube

    kube = Kube(state.kubeconfig)
    kubeconfig.service_account(
        kube, state, NAMESPACE, SERVICE_ACCOUNT, rbac(tools_dir), "reloader.kubeconfig"
    )


def _port_taken() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", PORT))  # noqa: S104 - where Reloader will bind
        except OSError:
            return True
    return False


def start(state: SandboxState, binary: str) -> None:
    """Its process, as its ServiceAccount (``reloader.kubeconfig``)."""
    if _port_taken():
        raise SandboxError(
            f"port {PORT} is taken: Stakater Reloader binds it (fixed in its code); stop what "
            "listens there (another sandbox with sync_engine eso?) and start again"
        )
    state.launch(
        PROCESS,
        [binary, "--reload-strategy=annotations", "--log-level=info"],
        clean_env({"KUBECONFIG": str(Path(state.directory) / "reloader.kubeconfig")}),
        f"Stakater Reloader v{versions.RELOADER} (Apache-2.0), reload strategy annotations, "
        f"probes :{PORT}",
        f"http://127.0.0.1:{PORT}/live",
    )
