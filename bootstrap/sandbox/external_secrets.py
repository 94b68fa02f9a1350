"""The External Secrets Operator in the sandbox (the sync engine ``eso``), installed as its Helm
chart installs it: its 25 CRDs (``deploy/crds/bundle.yaml``), its namespace, a ServiceAccount
bound to the controller's ClusterRole as the chart's RBAC template renders it with default
values. It runs as a process whose kubeconfig authenticates as that ServiceAccount (not as
cluster admin), so the RBAC a real install grants is what is exercised. Only the controller
runs: the chart's validating webhook and its certificate controller are optional and the
product needs neither."""

from __future__ import annotations

from pathlib import Path

import yaml

from bootstrap.core.errors import SandboxError, ToolError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.sandbox import kubeconfig
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import chart, tools, versions

#: The process's name in the sandbox, and the release name of its Helm install.
PROCESS = "external-secrets"
#: Its namespace and ServiceAccount, as ``helm install external-secrets`` names them.
NAMESPACE = "external-secrets"
SERVICE_ACCOUNT = "external-secrets"
#: The controller's ClusterRole in the chart's rendering.
CONTROLLER_ROLE = f"{PROCESS}-controller"


def _config(tools_dir: Path) -> Path:
    return tools.engine_config(tools_dir)


def crds(tools_dir: Path) -> list[JsonObject]:
    """Its CustomResourceDefinitions, from the bundle of its own source tree."""
    path = _config(tools_dir) / "crds.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    if len(docs) != versions.ESO_CRD_COUNT or any(
        d.get("kind") != "CustomResourceDefinition" for d in docs
    ):
        raise SandboxError(
            f"expected the {versions.ESO_CRD_COUNT} CRDs of ESO v{versions.ESO} in {path}, "
            f"found {len(docs)}"
        )
    return docs


def rbac(tools_dir: Path, namespace: str = NAMESPACE) -> list[JsonObject]:
    """The controller's ClusterRole and its binding to the ServiceAccount, as the chart's
    ``rbac.yaml`` renders them with its default ``values.yaml``."""
    config = _config(tools_dir)
    try:
        objects = chart.render(
            (config / "rbac.yaml").read_text(encoding="utf-8"),
            yaml.safe_load((config / "values.yaml").read_text(encoding="utf-8")),
            chart="external-secrets",
            release=PROCESS,
            namespace=namespace,
            where=str(config / "rbac.yaml"),
        )
    except (OSError, ToolError) as exc:
        raise SandboxError(f"ESO's RBAC: {exc}") from None
    wanted = [
        o
        for o in objects
        if o.get("kind") in ("ClusterRole", "ClusterRoleBinding")
        and (o.get("metadata") or {}).get("name") == CONTROLLER_ROLE
    ]
    if len(wanted) != 2:
        raise SandboxError(
            f"ESO's chart ({config / 'rbac.yaml'}) renders no ClusterRole and binding "
            f"{CONTROLLER_ROLE}"
        )
    return wanted


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
    state: SandboxState,
    binary: str,
    metrics_port: int,
    live_port: int,
    concurrent: int = 0,
    qps: float = 0.0,
    burst: int = 0,
) -> None:
    """The controller's process, as its ServiceAccount (``eso.kubeconfig``); 0: ESO's own
    default (one reconcile at a time, client 50 requests a second, burst 100)."""
    extra = []
    if concurrent:
        extra.append(f"--concurrent={concurrent}")
    if qps:
        extra.append(f"--client-qps={qps:g}")
    if burst:
        extra.append(f"--client-burst={burst}")
    state.launch(
        PROCESS,
        [
            binary,
            f"--metrics-addr=127.0.0.1:{metrics_port}",
            f"--live-addr=127.0.0.1:{live_port}",
            "--loglevel=info",
            "--zap-time-encoding=rfc3339",
            *extra,
        ],
        clean_env({"KUBECONFIG": str(Path(state.directory) / "eso.kubeconfig")}),
        f"ESO v{versions.ESO} (Apache-2.0){', ' + ' '.join(extra) if extra else ''}, "
        f"probes 127.0.0.1:{live_port}",
        f"http://127.0.0.1:{live_port}/readyz",
    )
