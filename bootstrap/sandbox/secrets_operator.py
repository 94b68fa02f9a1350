"""The Vault Secrets Operator in the sandbox, installed as a cluster would install it: its own
CRDs, its namespace, a ServiceAccount bound to the ClusterRole and leader-election Role of its
source tree's ``config/rbac``, and a default VaultConnection to OpenBao. It runs as a process
whose kubeconfig authenticates as that ServiceAccount (not as cluster admin), so the RBAC a
real install grants is what is exercised."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.core.errors import SandboxError
from bootstrap.model import conventions
from bootstrap.sandbox import kubeconfig
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import tools, versions

if TYPE_CHECKING:
    from bootstrap.clients.kube import Kube

#: Where the operator runs, as its Helm chart installs it by default.
OPERATOR_NAMESPACE = conventions.OPERATOR_NAMESPACE
OPERATOR_SERVICE_ACCOUNT = "vault-secrets-operator-controller-manager"
#: Lifetime of the operator's ServiceAccount token (its kubeconfig), like the certificates.
OPERATOR_TOKEN_SECONDS = 30 * 24 * 3600
_RBAC = "rbac.authorization.k8s.io/v1"


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def install(state: SandboxState, tools_dir: Path) -> None:
    """The operator's CRDs, namespace, ServiceAccount and RBAC (from its own source tree),
    its kubeconfig as that ServiceAccount, and the default VaultConnection to OpenBao."""
    from bootstrap.clients.kube import Kube

    config = tools.operator_config(tools_dir)
    kube = Kube(state.kubeconfig)
    crds = [
        doc
        for path in sorted((config / "crd" / "bases").glob("*.yaml"))
        for doc in _documents(path)
    ]
    if len(crds) != 5:
        raise SandboxError(f"expected the operator's five CRDs in {config}, found {len(crds)}")
    for crd in crds:
        kube.apply(crd)
    kube.wait_crds_established([c["metadata"]["name"] for c in crds])
    ns = state.operator_namespace
    kube.ensure_namespace(ns)
    kube.ensure_service_account(ns, OPERATOR_SERVICE_ACCOUNT)
    for file_name, kind in (("role.yaml", "ClusterRole"), ("leader_election_role.yaml", "Role")):
        (doc,) = _documents(config / "rbac" / file_name)
        for obj in _role_and_binding(kind, doc, ns):
            kube.apply(obj)
    token = kube.token(ns, OPERATOR_SERVICE_ACCOUNT, [], OPERATOR_TOKEN_SECONDS)
    kubeconfig.write(
        Path(state.directory) / "operator.kubeconfig",
        state.apiserver_url,
        Path(state.ca_cert),
        OPERATOR_SERVICE_ACCOUNT,
        {"token": token},
    )
    default_connection(kube, ns, state.bao_addr)


def default_connection(kube: Kube, namespace: str, address: str) -> None:
    """The operator's default VaultConnection, as its Helm chart's defaultVaultConnection
    makes it: VaultAuths without a vaultConnectionRef use this one."""
    kube.apply(
        {
            "apiVersion": "secrets.hashicorp.com/v1beta1",
            "kind": "VaultConnection",
            "metadata": {"name": "default", "namespace": namespace},
            "spec": {"address": address},
        }
    )


def _role_and_binding(kind: str, doc: dict[str, Any], ns: str) -> list[dict[str, Any]]:
    """A (Cluster)Role of the operator's source tree, named as its Helm chart names it, and
    its binding to the operator's ServiceAccount."""
    name = "vault-secrets-operator-" + doc["metadata"]["name"]
    meta: dict[str, Any] = (
        {"name": name} if kind == "ClusterRole" else {"name": name, "namespace": ns}
    )
    return [
        {"apiVersion": _RBAC, "kind": kind, "metadata": meta, "rules": doc["rules"]},
        {
            "apiVersion": _RBAC,
            "kind": f"{kind}Binding",
            "metadata": {**meta, "name": name.removesuffix("-role") + "-rolebinding"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [
                {"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": ns}
            ],
        },
    ]


def start(state: SandboxState, binary: str, metrics_port: int, probe_port: int) -> None:
    """The operator's process, as its ServiceAccount (``operator.kubeconfig``)."""
    state.launch(
        "vault-secrets-operator",
        [
            binary,
            "--leader-elect=false",
            f"--metrics-bind-address=127.0.0.1:{metrics_port}",
            f"--health-probe-bind-address=127.0.0.1:{probe_port}",
            # info, not the development default (debug): its debug lines on Secret
            # drift carry the Secret's data
            "--zap-log-level=info",
        ],
        clean_env(
            {
                "KUBECONFIG": str(Path(state.directory) / "operator.kubeconfig"),
                "OPERATOR_NAMESPACE": state.operator_namespace,
            }
        ),
        f"v{versions.VSO}, probes 127.0.0.1:{probe_port}",
        f"http://127.0.0.1:{probe_port}/readyz",
    )
