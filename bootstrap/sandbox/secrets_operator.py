"""The Vault Secrets Operator in the sandbox, installed as a cluster would install it: its own
CRDs, its namespace, a ServiceAccount bound to the ClusterRole and leader-election Role of its
source tree's ``config/rbac``, and a default VaultConnection to OpenBao. It runs as a process
whose kubeconfig authenticates as that ServiceAccount (not as cluster admin), so the RBAC a
real install grants is what is exercised.

Which version runs is :class:`OperatorOptions` (the settings ``sandbox_operator_*``): 1.4.1,
what users run today (BUSL-1.1: built and run here only for the sandbox, the tests and the
benchmarks), by default, or v0.1.0 (MPL-2.0). Each brings its own CRDs (ten and five) and
RBAC from its own source tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.core.errors import SandboxError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions
from bootstrap.sandbox import kubeconfig
from bootstrap.sandbox.processes import clean_env
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import tools, versions

if TYPE_CHECKING:
    from bootstrap.clients.kube import Kube
    from bootstrap.model.settings import Settings

#: Where the operator runs, as its Helm chart installs it by default.
OPERATOR_NAMESPACE = conventions.OPERATOR_NAMESPACE
OPERATOR_SERVICE_ACCOUNT = "vault-secrets-operator-controller-manager"
_RBAC = "rbac.authorization.k8s.io/v1"
#: The number of CRDs each version's source tree declares (a build missing some is refused).
CRD_COUNT = versions.VSO_CRD_COUNT


@dataclass(frozen=True)
class OperatorOptions:
    """Which operator the sandbox runs, and its client and concurrency settings (0: the
    operator's own defaults, as its Helm chart leaves them)."""

    version: str = versions.VSO
    qps: float = 0.0
    burst: int = 0
    max_reconciles: int = 0
    #: The sync engine: ``vso`` (this operator, of ``version``) or ``eso`` (the External
    #: Secrets Operator instead, with the same client rate and concurrency).
    engine: str = "vso"
    #: With ``eso``: run Stakater Reloader beside it (it binds a fixed port, so one per
    #: machine: a second ESO sandbox, e.g. a DR rehearsal's new cluster, runs without).
    reloader: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ("vso", "eso"):
            raise SandboxError(f"sync_engine is {self.engine!r}; expected vso or eso")
        if self.version not in versions.VSO_VERSIONS:
            raise SandboxError(
                f"sandbox_operator_version is {self.version!r}; expected one of "
                f"{', '.join(versions.VSO_VERSIONS)}"
            )
        if self.qps < 0 or self.burst < 0 or self.max_reconciles < 0:
            raise SandboxError(
                "sandbox_operator_qps, _burst and _max_reconciles must not be negative"
            )

    @property
    def tool(self) -> str:
        return tools.ESO if self.engine == "eso" else tools.operator_tool(self.version)

    @property
    def licence(self) -> str:
        return tools.TOOLS[self.tool].licence

    def flags(self) -> list[str]:
        """Command-line flags for the client rate and concurrency (1.4.1 only: v0.1.0 has
        none; its client is fixed at 20 requests a second per kind, one worker). With the
        engine ``eso``: ESO's own (``--concurrent``, ``--client-qps``, ``--client-burst``)."""
        if self.engine == "eso":
            out = [f"--concurrent={self.max_reconciles}"] if self.max_reconciles else []
            out += [f"--client-qps={self.qps:g}"] if self.qps else []
            return out + ([f"--client-burst={self.burst}"] if self.burst else [])
        if self.version == versions.VSO_V0:
            return []
        out = []
        if self.qps:
            out.append(f"--kube-client-qps={self.qps:g}")
        if self.burst:
            out.append(f"--kube-client-burst={self.burst}")
        if self.max_reconciles:
            out.append(f"--max-concurrent-reconciles={self.max_reconciles}")
        return out

    @classmethod
    def of(cls, settings: Settings) -> OperatorOptions:
        """The options the settings ``sandbox_operator_*`` give."""
        return cls(
            settings.sandbox_operator_version,
            settings.sandbox_operator_qps,
            settings.sandbox_operator_burst,
            settings.sandbox_operator_max_reconciles,
            settings.sync_engine,
        )

    def describe(self) -> str:
        """E.g. 'v1.4.1 (BUSL-1.1), client qps 500 burst 1000'."""
        extra = ", ".join(self.flags()).replace("--", "")
        name = f"External Secrets Operator v{versions.ESO}" if self.engine == "eso" else ""
        return f"{name or 'v' + self.version} ({self.licence})" + (f", {extra}" if extra else "")


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def crds(tools_dir: Path, version: str) -> list[JsonObject]:
    """The CustomResourceDefinitions of an operator version, from its own source tree."""
    config = tools.operator_config(tools_dir, version)
    out = [
        doc
        for path in sorted((config / "crd" / "bases").glob("*.yaml"))
        for doc in _documents(path)
    ]
    if len(out) != CRD_COUNT[version]:
        raise SandboxError(
            f"expected the {CRD_COUNT[version]} CRDs of VSO v{version} in {config}, "
            f"found {len(out)}"
        )
    return out


def install(state: SandboxState, tools_dir: Path, version: str = versions.VSO) -> None:
    """The operator's CRDs, namespace, ServiceAccount and RBAC (from its own source tree),
    its kubeconfig as that ServiceAccount, and the default VaultConnection to OpenBao."""
    from bootstrap.clients.kube import Kube

    config = tools.operator_config(tools_dir, version)
    kube = Kube(state.kubeconfig)
    crds_ = crds(tools_dir, version)
    for crd in crds_:
        kube.apply(crd)
    kube.wait_crds_established([c["metadata"]["name"] for c in crds_])
    ns = state.operator_namespace
    rbac = [
        obj
        for file_name, kind in (("role.yaml", "ClusterRole"), ("leader_election_role.yaml", "Role"))
        for obj in _role_and_binding(kind, _documents(config / "rbac" / file_name)[0], ns)
    ]
    kubeconfig.service_account(
        kube, state, ns, OPERATOR_SERVICE_ACCOUNT, rbac, "operator.kubeconfig"
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


def _role_and_binding(kind: str, doc: JsonObject, ns: str) -> list[JsonObject]:
    """A (Cluster)Role of the operator's source tree, named as its Helm chart names it, and
    its binding to the operator's ServiceAccount."""
    name = "vault-secrets-operator-" + doc["metadata"]["name"]
    meta: JsonObject = {"name": name} if kind == "ClusterRole" else {"name": name, "namespace": ns}
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


def start(
    state: SandboxState,
    binary: str,
    metrics_port: int,
    probe_port: int,
    options: OperatorOptions | None = None,
) -> None:
    """The operator's process, as its ServiceAccount (``operator.kubeconfig``)."""
    options = options or OperatorOptions()
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
            *options.flags(),
        ],
        clean_env(
            {
                "KUBECONFIG": str(Path(state.directory) / "operator.kubeconfig"),
                "OPERATOR_NAMESPACE": state.operator_namespace,
            }
        ),
        f"{options.describe()}, probes 127.0.0.1:{probe_port}",
        f"http://127.0.0.1:{probe_port}/readyz",
    )
