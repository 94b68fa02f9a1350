"""The External Secrets Operator in the sandbox (the sync engine ``eso``), installed as its Helm
chart installs it: its 25 CRDs (``deploy/crds/bundle.yaml``), its namespace, a ServiceAccount
bound to the controller's ClusterRole as the chart's RBAC template renders it with default
values. It runs as a process whose kubeconfig authenticates as that ServiceAccount (not as
cluster admin), so the RBAC a real install grants is what is exercised. Only the controller
runs: the chart's validating webhook and its certificate controller are optional and the
product needs neither."""

from __future__ import annotations

from pathlib import Path

from bootstrap.core.jsondoc import JsonObject
from bootstrap.sandbox import kubeconfig
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import manifests, versions

#: The process's name in the sandbox, and the release name of its Helm install.
PROCESS = "external-secrets"
#: Its namespace and ServiceAccount, as ``helm install external-secrets`` names them.
NAMESPACE = "external-secrets"
SERVICE_ACCOUNT = "external-secrets"


def crds(tools_dir: Path) -> list[JsonObject]:
    """Its CustomResourceDefinitions, from the bundle of its own source tree."""
    return manifests.eso_crds(tools_dir)


def rbac(tools_dir: Path, namespace: str = NAMESPACE) -> list[JsonObject]:
    """The controller's ClusterRole and its binding to the ServiceAccount, as the chart's
    ``rbac.yaml`` renders them with its default ``values.yaml``."""
    return manifests.eso_rbac(tools_dir, namespace)


def install(state: SandboxState, tools_dir: Path) -> None:
    """Its CRDs, namespace, ServiceAccount and RBAC, and its kubeconfig as that account."""
    from bootstrap.clients.kube import Kube

    kube = Kube(state.kubeconfig)
    defs = crds(tools_dir)
    for crd in defs:
        kube.apply(crd)
    kube.wait_crds_established([c["metadata"]["name"] for c in defs])
    kubeconfig.service_account(
        kube, state, NAMESPACE, SERVICE_ACCOUNT, rbac(tools_dir), "eso.kubeconfig"
    )


def start(
    state: SandboxState, binary: str, metrics_port: int, live_port: int, flags: list[str]
) -> None:
    """The controller's process, as its ServiceAccount (``eso.kubeconfig``); ``flags``: its
    client rate and concurrency (``OperatorOptions.flags``; none: ESO's own defaults, one
    reconcile at a time, client 50 requests a second, burst 100)."""
    state.launch(
        PROCESS,
        [
            binary,
            f"--metrics-addr=127.0.0.1:{metrics_port}",
            f"--live-addr=127.0.0.1:{live_port}",
            "--loglevel=info",
            "--zap-time-encoding=rfc3339",
            *flags,
        ],
        clean_env({"KUBECONFIG": str(Path(state.directory) / "eso.kubeconfig")}),
        f"ESO v{versions.ESO} (Apache-2.0){', ' + ' '.join(flags) if flags else ''}, "
        f"probes 127.0.0.1:{live_port}",
        f"http://127.0.0.1:{live_port}/readyz",
    )
