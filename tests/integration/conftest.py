"""Integration fixtures: one real sandbox (etcd, kube-apiserver, kube-controller-manager,
OpenBao and the Vault Secrets Operator 1.4.1, what users run) per test session, started as
processes; a second one with VSO v0.1.0 (``box_v0``), started only by the files that prove
the core paths on both operators (the ``core`` fixture, parametrized by version); a third
with the External Secrets Operator as the sync engine (``eso_box``, for test_eso.py); unique
namespaces and Vault paths per test. A missing tool fails the run (tools.require raises);
nothing is skipped, and no test plays the operator's part."""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.model.settings import Settings
from bootstrap.tooling import versions
from tests.integration.helpers import demo_env, invoke_cli

HERE = Path(__file__).resolve().parent

TOOLS_DIR = Path(
    os.environ.get(
        "BOOTSTRAP_TOOLS_DIR", Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"
    )
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is an integration test: ``pytest -m "not integration"`` runs
    the unit tests alone. (The hook sees the whole session's items: only ours are marked.)"""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@dataclass
class Box:
    state: sandbox.SandboxState
    directory: Path
    initial_health: list[vault.Health]

    @property
    def operator_version(self) -> str:
        return self.state.operator_version

    @property
    def current_operator(self) -> bool:
        """VSO 1.4.1 (status conditions, annotation nudges, restarts on spec changes), not
        v0.1.0."""
        return self.state.operator_version != versions.VSO_V0

    def settings(self, **kw: object) -> Settings:
        base = {
            "sandbox_dir": self.directory,
            "tools_dir": TOOLS_DIR,
            "kubeconfig": Path(self.state.kubeconfig),
            "vault_addrs": tuple(self.state.bao_addrs),
            "custody_file": self.directory / "custody" / "vault-init.json",
            "audit_file": str(self.directory / "bao-0" / "audit.log"),
            "state_dir": self.directory / "state",
            "wait_timeout": 60.0,
            # the example catalog's command source (examples/demo.env sets it for the CLI)
            "catalog_commands": "allow",
            "sync_engine": self.state.sync_engine,
        }
        base.update(kw)
        return Settings(**base)  # type: ignore[arg-type]

    def cli_env(self, state_dir: Path | None = None, **extra: str) -> dict[str, str]:
        """The INVOKE_BOOTSTRAP_* settings that point `invoke` at this sandbox."""
        s = self.settings(**({"state_dir": state_dir} if state_dir else {}))
        return {
            "INVOKE_BOOTSTRAP_KUBECONFIG": str(s.kubeconfig),
            "INVOKE_BOOTSTRAP_VAULT_ADDRS": ",".join(s.vault_addrs),
            "INVOKE_BOOTSTRAP_CUSTODY_FILE": str(s.custody_file),
            "INVOKE_BOOTSTRAP_AUDIT_FILE": str(s.audit_file),
            "INVOKE_BOOTSTRAP_STATE_DIR": str(s.state_dir),
            "INVOKE_BOOTSTRAP_SANDBOX_DIR": str(self.directory),
            "INVOKE_BOOTSTRAP_CATALOG_COMMANDS": s.catalog_commands,
            "INVOKE_BOOTSTRAP_SYNC_ENGINE": s.sync_engine,
            **extra,
        }


def _start(
    tmp: Path, ha: bool, operator: str = versions.VSO, engine: str = "vso"
) -> Generator[Box, None, None]:
    name = "sandbox-eso" if engine == "eso" else f"sandbox-{operator}"
    directory = tmp / ("sandbox-ha" if ha else name)
    options = sandbox.OperatorOptions(operator, engine=engine)
    state = sandbox.up(directory, TOOLS_DIR, ha=ha, timeout=90, operator=options)
    try:
        yield Box(state, directory, [vault.health(a) for a in state.bao_addrs])
    finally:
        sandbox.down(directory, keep=bool(os.environ.get("KEEP_SANDBOX")))


@pytest.fixture(scope="session")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """The session's sandbox, with VSO 1.4.1."""
    yield from _start(tmp_path_factory.mktemp("it"), ha=False)


@pytest.fixture(scope="session")
def box_v0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A sandbox with VSO v0.1.0, for the core paths proven on both operators."""
    yield from _start(tmp_path_factory.mktemp("it-v0"), ha=False, operator=versions.VSO_V0)


@pytest.fixture(scope="module")
def eso_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A sandbox whose sync engine is the External Secrets Operator 2.9.0 (no VSO), gone at
    the end of the file that uses it (only test_eso.py does): left running, its operator
    logs in to Vault on every refresh of every ExternalSecret for the rest of the session."""
    yield from _start(tmp_path_factory.mktemp("it-eso"), ha=False, engine="eso")


@pytest.fixture(scope="module")
def first_run_eso(eso_box: Box) -> dict[str, Any]:
    """The first bootstrap of the ESO sandbox, through the CLI with sync_engine eso."""
    return _first_run(eso_box)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for namespaces and Vault paths of one test."""
    return uuid.uuid4().hex[:8]


def _first_run(box: Box) -> dict[str, Any]:
    env = {**os.environ, **demo_env(), **box.cli_env()}
    report = box.directory / "first-report.json"
    proc = invoke_cli(["bootstrap", "--report", str(report)], env)
    return {"output": proc.stdout + proc.stderr, "report": report.read_text(), "env": env}


@pytest.fixture(scope="session")
def first_run(box: Box) -> dict[str, Any]:
    """The very first bootstrap of the session's OpenBao, every phase, through the CLI as a
    user runs it: it exits 0 only once the operator has synced every Secret."""
    return _first_run(box)


@pytest.fixture(scope="session")
def first_run_v0(box_v0: Box) -> dict[str, Any]:
    """The same on the sandbox with VSO v0.1.0."""
    return _first_run(box_v0)


@dataclass
class Core:
    """A sandbox bootstrapped with the example catalog, of one operator version."""

    box: Box
    first_run: dict[str, Any]

    @property
    def version(self) -> str:
        return self.box.operator_version


@pytest.fixture(scope="session", params=[versions.VSO, versions.VSO_V0], ids=lambda v: f"vso{v}")
def core(request: pytest.FixtureRequest) -> Core:
    """The core paths (sync, hand-over, rotation, isolation) run on both operators: VSO
    1.4.1 and v0.1.0, each a sandbox of its own, bootstrapped once with the example catalog."""
    if request.param == versions.VSO:
        return Core(request.getfixturevalue("box"), request.getfixturevalue("first_run"))
    return Core(request.getfixturevalue("box_v0"), request.getfixturevalue("first_run_v0"))


@pytest.fixture(scope="module")
def node_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A node sandbox of its own (``sandbox.up --node``): the control plane plus containerd,
    kubelet, kube-proxy and kube-scheduler; its Node is Ready (and kube-proxy answering) once
    this yields. One per file that uses it, gone at the file's end: starting one takes about
    11 s, while one left running for the rest of the session (test_cluster's cluster: its
    pods, the operator's refreshes, the kubelet's probes) loads the 2 cores every later test
    runs on."""
    directory = tmp_path_factory.mktemp("node") / "sandbox-node"
    state = sandbox.up(directory, TOOLS_DIR, with_node=True, timeout=90)
    try:
        yield Box(state, directory, [vault.health(a) for a in state.bao_addrs])
    finally:
        sandbox.down(directory, keep=bool(os.environ.get("KEEP_SANDBOX")))
