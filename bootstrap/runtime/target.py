"""Which cluster and which Vault a run talks to, and where its keys are kept.

A kubeconfig given in settings, in $KUBECONFIG or at ~/.kube/config means a real cluster
(Vault addresses then come from settings or $VAULT_ADDR/$BAO_ADDR), unless it is the sandbox's
own kubeconfig (as after ``eval "$(invoke sandbox.env)"``): then the sandbox is the target,
its custody included. With none of those, the local sandbox is the target: reused when it
runs, started when it does not.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bootstrap import sandbox
from bootstrap.clients.kube import Kube
from bootstrap.core.errors import UsageError, WaitTimeout
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model.settings import Settings
from bootstrap.runtime.custody import Custody, FileCustody, KubernetesSecretCustody

log = logging.getLogger(__name__)


@dataclass
class Target:
    kubeconfig: Path
    vault_addrs: list[str]
    sandbox: sandbox.SandboxState | None
    custody: Custody
    kube: Kube

    @property
    def leader(self) -> str:
        return self.vault_addrs[0]

    @property
    def description(self) -> str:
        kind = "sandbox" if self.sandbox else "cluster"
        return f"{kind} {self.kube.host}, Vault {', '.join(self.vault_addrs)}"


def _configured_kubeconfig(settings: Settings) -> Path | None:
    if settings.kubeconfig:
        return settings.kubeconfig
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    default = Path.home() / ".kube" / "config"
    return default if default.exists() else None


def statefulset_addrs(sts: JsonObject, pods: list[JsonObject], scheme: str, port: int) -> list[str]:
    """Pure: the Vault node addresses of a StatefulSet's pods, pod 0 first; :class:`Pending`
    (saying which) while a pod the StatefulSet wants has no IP yet. Pods of another owner
    matching the selector are not counted."""
    meta = sts.get("metadata") or {}
    name = str(meta.get("name") or "")
    replicas = int((sts.get("spec") or {}).get("replicas") or 1)
    uid = meta.get("uid")
    ips: dict[int, str] = {}
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        owners = pmeta.get("ownerReferences") or []
        if uid and not any(o.get("uid") == uid for o in owners):
            continue
        suffix = str(pmeta.get("name") or "").removeprefix(f"{name}-")
        if not suffix.isdigit():
            continue
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            ips[int(suffix)] = str(ip)
    missing = [f"{name}-{i}" for i in range(replicas) if i not in ips]
    if missing:
        raise Pending(f"no IP yet for pod(s) {', '.join(missing)}")
    hosts = {i: f"[{ip}]" if ":" in ip else ip for i, ip in ips.items()}  # IPv6 in brackets
    return [f"{scheme}://{hosts[i]}:{port}" for i in range(replicas)]


def _statefulset_addrs(kube: Kube, settings: Settings) -> list[str]:
    """The Vault addresses of ``settings.vault_statefulset``, waiting (within wait_timeout)
    until each of its pods has an IP."""
    ref = settings.vault_statefulset or ""
    namespace, _, name = ref.partition("/")
    if not namespace or not name or "/" in name:
        raise UsageError(
            f"bootstrap.vault_statefulset is {ref!r}; expected NAMESPACE/NAME of Vault's "
            "StatefulSet"
        )
    sts = kube.get("apps/v1", "StatefulSet", name, namespace)
    if sts is None:
        raise UsageError(
            f"Vault's StatefulSet {namespace}/{name} (bootstrap.vault_statefulset) does not exist"
        )
    labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def probe() -> list[str]:
        pods = kube.list_objects("v1", "Pod", namespace, label_selector=selector or None)
        return statefulset_addrs(sts, pods, settings.vault_scheme, settings.vault_port)

    try:
        return wait_for(
            probe,
            f"the pods of Vault's StatefulSet {namespace}/{name} to have IPs",
            WaitSettings(timeout=settings.wait_timeout, maximum=2.0),
        )
    except WaitTimeout as exc:
        raise UsageError(str(exc)) from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def resolve(settings: Settings, *, start_sandbox: bool = True) -> Target:
    kubeconfig = _configured_kubeconfig(settings)
    box: sandbox.SandboxState | None = sandbox.SandboxState.load(settings.sandbox_dir.resolve())
    if kubeconfig is not None and not (box and _same_file(Path(box.kubeconfig), kubeconfig)):
        box = None  # a real cluster (a kubeconfig that is not the sandbox's own)
    if kubeconfig is None:
        if box is None or not box.running():
            if not start_sandbox:
                raise UsageError(
                    "no cluster configured and no sandbox running; 'invoke sandbox.up' starts one"
                )
            log.info("no cluster configured: starting the local sandbox")
            box = sandbox.up(
                settings.sandbox_dir,
                settings.tools_dir,
                ha=False,
                with_node=settings.sandbox_node,
                timeout=settings.wait_timeout,
                operator=sandbox.OperatorOptions.of(settings),
            )
        kubeconfig = Path(box.kubeconfig)
    addrs = list(settings.vault_addrs)
    kube = Kube(kubeconfig, settings.kube_context)
    if not addrs and settings.vault_statefulset:
        addrs = _statefulset_addrs(kube, settings)
    if not addrs and box is not None:
        addrs = list(box.bao_addrs)
    if not addrs:
        env = os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
        if env:
            addrs = [env]
    if not addrs:
        raise UsageError(
            "no Vault address: set bootstrap.vault_addrs, bootstrap.vault_statefulset, "
            "VAULT_ADDR or BAO_ADDR"
        )
    custody: Custody
    if settings.custody == "kubernetes":
        custody = KubernetesSecretCustody(kube, settings.custody_namespace, settings.custody_secret)
    elif settings.custody == "file":
        path = settings.custody_file or (
            Path(box.directory) / "custody" / "vault-init.json"
            if box
            else settings.state_dir / "custody" / "vault-init.json"
        )
        custody = FileCustody(path)
    else:
        raise UsageError(
            f"setting custody is {settings.custody!r}; expected 'file' or 'kubernetes'"
        )
    return Target(kubeconfig=kubeconfig, vault_addrs=addrs, sandbox=box, custody=custody, kube=kube)
