"""Integration fixtures: one real sandbox (etcd, kube-apiserver, OpenBao) per test session,
started as processes; unique namespaces and Vault paths per test. A missing tool fails the
run (tools.require raises); nothing is skipped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap import sandbox, vault
from bootstrap.settings import Settings

TOOLS_DIR = Path(
    os.environ.get(
        "BOOTSTRAP_TOOLS_DIR", Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"
    )
)


@dataclass
class Box:
    state: sandbox.SandboxState
    directory: Path
    initial_health: list[vault.Health]

    def settings(self, **kw: object) -> Settings:
        base = {
            "sandbox_dir": self.directory,
            "tools_dir": TOOLS_DIR,
            "kubeconfig": Path(self.state.kubeconfig),
            "vault_addrs": tuple(self.state.bao_addrs),
            "custody_file": self.directory / "custody" / "vault-init.json",
            "audit_file": str(self.directory / "audit" / "bao-0.log"),
            "state_dir": self.directory / "state",
            "wait_timeout": 60.0,
        }
        base.update(kw)
        return Settings(**base)  # type: ignore[arg-type]


def _start(tmp: Path, ha: bool) -> Iterator[Box]:
    directory = tmp / ("sandbox-ha" if ha else "sandbox")
    state = sandbox.up(directory, TOOLS_DIR, ha=ha, timeout=90)
    try:
        yield Box(state, directory, [vault.health(a) for a in state.bao_addrs])
    finally:
        sandbox.down(directory, keep=bool(os.environ.get("KEEP_SANDBOX")))


@pytest.fixture(scope="session")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    yield from _start(tmp_path_factory.mktemp("it"), ha=False)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for namespaces and Vault paths of one test."""
    return uuid.uuid4().hex[:8]
