from __future__ import annotations

from typing import Any

import requests

from bootstrap.clients.kube import Kube
from bootstrap.core.waits import WaitSettings
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import PhaseResult, RunContext
from bootstrap.phases.registry import run_phases

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


def demo_env() -> dict[str, str]:
    """The fake values of examples/demo.env, for the example catalog's env sources."""
    from tests.conftest import ROOT

    out = {}
    for line in (ROOT / "examples" / "demo.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def admin_api(box: Any) -> Any:
    """A Vault API client with the bootstrap-admin credential the first run put in custody."""
    from bootstrap.clients import vault
    from bootstrap.runtime.custody import FileCustody

    admin = FileCustody(box.settings().custody_file).load_extra("admin")
    assert admin is not None
    return vault.Api(box.state.bao_addr, admin["token"])


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

    r = vso.rollout(kube, RestartTarget(kind=kind, name=name), ns)  # type: ignore[arg-type]
    return r.revision if r else ""


def events_of(kube: Kube, ns: str, name: str) -> list[Any]:
    from bootstrap.runtime import vso

    return vso.events(kube, ns).get(name, [])


def invoke_cli(args: list[str], env: dict[str, str], ok: bool = True) -> Any:
    """Run ``invoke ARGS`` as a user does; returns the finished process."""
    import os
    import subprocess
    import sys

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


def generated_catalog(
    p: str,
    secrets: dict[str, list[str]],
    *,
    refresh: str | None = None,
    restart: list[tuple[str, str]] | None = None,
) -> Catalog:
    """One service ``p`` in namespace ``p`` whose keys are all generated: ``secrets`` maps
    each secret to its keys."""
    keys = {
        name: "{" + ", ".join(f"{k}: {{generate: {{length: 16}}}}" for k in ks) + "}"
        for name, ks in secrets.items()
    }
    text = f"name: {p}\nservices:\n  - name: {p}\n    namespace: {p}\n"
    if refresh:
        text += f"    refreshAfter: {refresh}\n"
    text += "    secrets:\n" + "".join(f"      {n}: {{keys: {k}}}\n" for n, k in keys.items())
    if restart:
        text += "    restart:\n" + "".join(
            f"      - {{kind: {kind}, name: {name}}}\n" for kind, name in restart
        )
    return parse_catalog(text, f"{p}.yaml")
