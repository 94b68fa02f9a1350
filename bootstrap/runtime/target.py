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
from bootstrap.core.errors import UsageError
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
            )
        kubeconfig = Path(box.kubeconfig)
    addrs = list(settings.vault_addrs)
    if not addrs and box is not None:
        addrs = list(box.bao_addrs)
    if not addrs:
        env = os.environ.get("VAULT_ADDR") or os.environ.get("BAO_ADDR")
        if env:
            addrs = [env]
    if not addrs:
        raise UsageError("no Vault address: set bootstrap.vault_addrs, VAULT_ADDR or BAO_ADDR")
    kube = Kube(kubeconfig, settings.kube_context)
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
            f"bootstrap.runtime.custody is {settings.custody!r}; expected 'file' or 'kubernetes'"
        )
    return Target(kubeconfig=kubeconfig, vault_addrs=addrs, sandbox=box, custody=custody, kube=kube)
