from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from bootstrap.clients.kube import Kube
from bootstrap.core.waits import WaitSettings
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import PhaseResult, RunContext
from bootstrap.phases.registry import run_phases

if TYPE_CHECKING:
    from bootstrap.clients import vault

FAST = WaitSettings(timeout=120, initial=0.1, maximum=0.5)


def run(
    settings: Settings, catalog: Catalog, phases: list[str]
) -> tuple[list[PhaseResult], RunContext]:
    ctx = RunContext(settings, catalog)
    ctx.wait = FAST
    results = run_phases(ctx, phases)
    return results, ctx


def statuses(results: list[PhaseResult]) -> dict[str, str]:
    return {r.name: r.status for r in results if r.status != "skipped"}


def verified(results: list[PhaseResult]) -> bool:
    """verify ran and found every Secret synced: it waited ("applied"), or the operator had
    already synced them all when it looked ("no-change"). Right after populate either can
    happen: the operator retries a failed sync within milliseconds at first, and may land
    between populate's write and verify's first look."""
    return statuses(results).get("verify") in ("applied", "no-change")


def login(
    addr: str, kube: Kube, namespace: str, service_account: str, role: str, audience: str = "vault"
) -> str:
    """Log in through kubernetes auth with a TokenRequest token; returns the Vault token."""
    jwt = kube.token(namespace, service_account, [audience], 600)
    resp = requests.post(
        f"{addr}/v1/auth/{conv.AUTH_MOUNT}/login", json={"role": role, "jwt": jwt}, timeout=10
    )
    assert resp.status_code == 200, f"login as {namespace}/{service_account}: {resp.status_code}"
    return str(resp.json()["auth"]["client_token"])


def kv_read(addr: str, token: str, path: str) -> int:
    """HTTP status of a KV v2 read of <mount>/data/<path>."""
    resp = requests.get(
        f"{addr}/v1/{conv.KV_MOUNT}/data/{path}", headers={"X-Vault-Token": token}, timeout=10
    )
    return resp.status_code


def kv_write(addr: str, token: str, path: str, data: dict[str, Any]) -> None:
    resp = requests.post(
        f"{addr}/v1/{conv.KV_MOUNT}/data/{path}",
        headers={"X-Vault-Token": token},
        json={"data": data},
        timeout=10,
    )
    assert resp.status_code in (200, 204), resp.status_code


def exports_of(path: Path) -> dict[str, str]:
    """The variables of a file of ``export KEY=VALUE`` lines (``cluster.env``)."""
    import shlex

    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = shlex.split(value)[0]
    return out


def demo_env() -> dict[str, str]:
    """The fake values of examples/demo.env, for the example catalog's env sources."""
    from tests.conftest import ROOT

    out = {}
    for line in (ROOT / "examples" / "demo.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def admin_api(box: Any) -> vault.Api:
    """A Vault API client with the bootstrap-admin credential the first run put in custody."""
    from bootstrap.clients import vault
    from bootstrap.runtime.custody import FileCustody

    admin = FileCustody(box.settings().custody_file).load_extra("admin")
    assert admin is not None
    return vault.Api(box.state.bao_addr, admin["token"])


def prove_isolation(box: Any, catalog: Catalog) -> int:
    """For every ordered pair (A, B): A reads its own and declared paths (each must hold a
    value), 403 on B's private paths and on every shared/infrastructure path it does not
    declare. Reads only. Returns checks made."""
    from bootstrap.model.domain import syncs
    from bootstrap.runtime.target import resolve

    kube = resolve(box.settings()).kube
    all_paths = {s.kv_path for s in syncs(catalog)}
    scoped_all = {p for p in all_paths if p.split("/")[0] in conv.RESERVED_PREFIXES}
    checks = 0
    for a in catalog.services:
        vt = login(box.state.bao_addr, kube, a.namespace, a.name, a.name, catalog.defaults.audience)
        own = {s.kv_path for s in syncs(catalog) if s.service == a.name}
        for path in own:
            assert kv_read(box.state.bao_addr, vt, path) == 200, f"{a.name} cannot read {path}"
            checks += 1
        for path in scoped_all - own:
            assert kv_read(box.state.bao_addr, vt, path) == 403, f"{a.name} reads {path}"
            checks += 1
        for b in catalog.services:
            if b.name == a.name:
                continue
            for secret in [*b.secrets, "anything"]:
                path = f"{b.name}/{secret}"
                assert kv_read(box.state.bao_addr, vt, path) == 403, f"{a.name} reads {path}"
                checks += 1
    return checks


# -- the operator and workloads --------------------------------------------------------


def wait_until(check: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` (returns a truthy value when done) until it is; fail past ``timeout``."""
    from bootstrap.core.waits import Pending, wait_for

    def probe() -> Any:
        got = check()
        if not got:
            raise Pending("not yet")
        return got

    return wait_for(probe, what, WaitSettings(timeout=timeout, initial=0.1, maximum=0.5))


def workload(kube: Kube, ns: str, kind: str, name: str, paused: bool = False) -> None:
    """A Deployment, StatefulSet or DaemonSet with no pods (the sandbox has no node), so
    its controller still rolls out revisions when the pod template changes."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "none"}]},
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = 0
    if kind == "StatefulSet":
        spec["serviceName"] = name
    if paused:
        spec["paused"] = True
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        },
        field_manager="test",
    )


def revision(kube: Kube, ns: str, kind: str, name: str) -> str:
    from bootstrap.model.catalog import RestartTarget
    from bootstrap.runtime import vso

    r = vso.rollout(kube, RestartTarget(kind=kind, name=name), ns)
    return r.revision if r else ""


def events_of(kube: Kube, ns: str, name: str) -> list[Any]:
    from bootstrap.runtime import vso

    return vso.events(kube, ns).get(name, [])


def invoke_cli(args: list[str], env: dict[str, str], ok: bool = True) -> Any:
    """Run ``invoke ARGS`` as a user does; returns the finished process."""
    from tests.conftest import ROOT

    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def service_catalog_text(
    p: str,
    secrets: dict[str, dict[str, str]],
    *,
    refresh: str | None = None,
    restart: list[tuple[str, str]] | None = None,
) -> str:
    """A catalog ``p`` of one service ``p`` in namespace ``p``: ``secrets`` maps each secret
    to its keys, each key to its source as YAML (``"{env: X}"``, ``"null"``)."""
    text = f"name: {p}\nservices:\n  - name: {p}\n    namespace: {p}\n"
    if refresh:
        text += f"    refreshAfter: {refresh}\n"
    text += "    secrets:\n"
    for name, keys in secrets.items():
        text += f"      {name}:\n        keys:\n"
        text += "".join(f"          {key}: {source}\n" for key, source in keys.items())
    if restart:
        text += "    restart:\n" + "".join(
            f"      - {{kind: {kind}, name: {name}}}\n" for kind, name in restart
        )
    return text


GENERATED = "{generate: {length: 16}}"


def generated_catalog_text(p: str, secrets: dict[str, list[str]], **kw: Any) -> str:
    """``service_catalog_text`` whose keys are all generated: ``secrets`` maps each secret to
    its keys."""
    keys = {name: dict.fromkeys(ks, GENERATED) for name, ks in secrets.items()}
    return service_catalog_text(p, keys, **kw)


def generated_catalog(p: str, secrets: dict[str, list[str]], **kw: Any) -> Catalog:
    """``generated_catalog_text``, parsed."""
    return parse_catalog(generated_catalog_text(p, secrets, **kw), f"{p}.yaml")


# -- `invoke bootstrap` as a process, killed or held at a failpoint ----------------------


def start_task(task: str, env: dict[str, str], *args: str, failpoints: str = "") -> Any:
    """``invoke TASK ARGS`` as a user runs it, in a session of its own (a failpoint's kill
    takes its whole group, and so can a test), with this machine's environment less any Vault
    address or token, plus ``env``; ``BOOTSTRAP_FAILPOINTS`` is ``failpoints`` alone."""
    from bootstrap.core.failpoints import ENV
    from tests.conftest import ROOT

    full = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    full.update(env)
    full.pop(ENV, None)
    if failpoints:
        full[ENV] = failpoints
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", task, *args],
        cwd=ROOT,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def start_bootstrap(env: dict[str, str], *args: str, failpoints: str = "") -> Any:
    """``invoke bootstrap ARGS`` (see ``start_task``)."""
    return start_task("bootstrap", env, *args, failpoints=failpoints)


def task_cli(
    task: str, env: dict[str, str], *args: str, failpoints: str = "", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``invoke TASK ARGS`` to its end (see ``start_task``)."""
    return finish(start_task(task, env, *args, failpoints=failpoints), timeout)


def finish(proc: Any, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Wait for a started bootstrap; past ``timeout`` its whole group is killed and the test
    fails."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(
            f"bootstrap still ran after {timeout}s: {out[-2000:]}{err[-2000:]}"
        ) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: Any) -> None:
    """SIGKILL a started bootstrap and everything in its session, as a lost machine would."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def bootstrap_cli(
    env: dict[str, str], *args: str, failpoints: str = "", timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``invoke bootstrap ARGS`` to its end (see ``start_task``)."""
    return task_cli("bootstrap", env, *args, failpoints=failpoints, timeout=timeout)


@dataclass
class Held:
    """A bootstrap held at a failpoint; ``done`` is its end, once released."""

    proc: Any
    done: subprocess.CompletedProcess[str] | None = None


@contextmanager
def held_at(
    point: str,
    folder: Path,
    env: dict[str, str],
    *args: str,
    timeout: float = 600,
    task: str = "bootstrap",
) -> Iterator[Held]:
    """``invoke TASK ARGS`` (default ``bootstrap``) paused at failpoint ``point``: enters once
    the run is there (it says so itself: the failpoint touches ``<folder>/go.reached``),
    releases it on the way out and waits for its end (``Held.done``)."""
    go = folder / "go"
    held = Held(start_task(task, env, *args, failpoints=f"{point}=pause:{go}"))
    try:
        wait_until(
            lambda: go.with_name("go.reached").exists() or held.proc.poll() is not None,
            f"{task} to reach {point}",
            timeout=timeout,
        )
        if not go.with_name("go.reached").exists():
            ended = finish(held.proc)
            raise AssertionError(
                f"the bootstrap ended (exit {ended.returncode}) before {point}: "
                f"{ended.stdout[-2000:]}{ended.stderr[-2000:]}"
            )
        yield held
    finally:
        go.touch()
        if held.proc.returncode is None:
            held.done = finish(held.proc, timeout)


def operator_reconciles(box: Any) -> float:
    """Reconciles of VaultStaticSecrets the sandbox's operator has finished, any result:
    controller-runtime's own counter on its metrics endpoint (both versions have it). It
    counts every VaultStaticSecret of the sandbox: a rise says the operator is at work."""
    proc = box.state.process("vault-secrets-operator")
    flag = "--metrics-bind-address="
    addr = next(a.removeprefix(flag) for a in proc.argv if a.startswith(flag))
    text = requests.get(f"http://{addr}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("controller_runtime_reconcile_total{") and (
            'controller="vaultstaticsecret"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def kill_a_standby(box: Any) -> str:
    """SIGKILL one OpenBao node of an HA sandbox that is neither active nor node 0 (the
    operator's VaultConnection names node 0); return its name once it is dead."""
    import os
    import signal

    from bootstrap import sandbox
    from bootstrap.clients import vault

    state = sandbox.SandboxState.load(box.directory)
    assert state is not None
    active = vault.active_addr(box.state.bao_addrs)
    victim = next(
        f"bao-{i}" for i, addr in enumerate(box.state.bao_addrs) if i != 0 and addr != active
    )
    os.kill(state.process(victim).pid, signal.SIGKILL)
    wait_until(lambda: not state.process(victim).alive(), f"{victim} to die")
    return victim
