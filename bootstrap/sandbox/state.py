"""What a sandbox is: its addresses, its processes and where its files are, kept in
``state.json`` in its directory so that later commands (status, env, restart, down) find it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bootstrap.clients import procs
from bootstrap.core.errors import SandboxError
from bootstrap.model import conventions
from bootstrap.sandbox.processes import Proc

STATE_FILE = "state.json"


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
    operator_namespace: str = conventions.OPERATOR_NAMESPACE
    #: the ServiceAccount token issuer: one of its own per sandbox, as every cluster has
    sa_issuer: str = ""
    #: The node sandbox's network (netns.NodeNet's fields); None without a node.
    node: dict[str, str] | None = None
    #: The Vault Secrets Operator version the sandbox runs (sandboxes of earlier releases of
    #: this product, which have no such field, ran v0.1.0).
    operator_version: str = "0.1.0"
    #: The sync engine the sandbox runs: ``vso`` (the operator of operator_version) or
    #: ``eso`` (the External Secrets Operator).
    sync_engine: str = "vso"

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

    def launch(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        detail: str = "",
        health: str = "",
        cwd: Path | None = None,
        binary: str = "",
    ) -> Proc:
        """Start a component (logging to ``logs/<name>.log``) and record it at once, so that
        ``down`` stops it whatever happens next. ``binary``: the program that runs once a
        wrapper (``argv[0]``, e.g. nsenter) has exec'd it; waited for, as pid and start time
        stay the wrapper's."""
        log = Path(self.directory) / "logs" / f"{name}.log"
        pid = procs.start(argv, log, env=env, cwd=cwd)
        if binary:
            deadline = time.monotonic() + 10
            while not procs.alive(pid, binary) and time.monotonic() < deadline:
                time.sleep(0.05)
        proc = Proc(
            name,
            binary or argv[0],
            pid,
            str(log),
            argv,
            env,
            detail,
            health,
            procs.start_time(pid),
            str(cwd or ""),
        )
        self.processes.append(proc)
        self.save()
        return proc

    def raise_if_exited(self) -> None:
        dead = [p.name for p in self.processes if not p.alive()]
        if dead:
            raise SandboxError(f"{', '.join(dead)} exited")
