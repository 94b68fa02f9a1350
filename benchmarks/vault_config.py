"""Benchmark the vault-config phase against a real OpenBao on the sandbox.

For each catalog size N (services with three secrets and two shared reads each):
  - configuration from scratch (wall time, write requests),
  - a re-run with nothing to change (wall time, write requests),
  - the same configuration applied by OpenTofu with the hashicorp/vault provider, when that
    provider is in the tools' filesystem mirror (the peer).
Write requests are counted from OpenBao's audit log (create/update/delete operations).
After the table, one row compares the product's Vault client (hvac on its keep-alive adapter,
retries included) with a bare http.client loop on one keep-alive connection, for the same
``--reads`` policy reads on one thread.

    uv run python benchmarks/vault_config.py --sizes 50,200,500,1000 --reads 2000

Prints a table; changes nothing outside a temporary directory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hvac
from common import TOOLS_DIR, catalog_text, sandbox_settings

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.core.waits import WaitSettings
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext, run
from bootstrap.phases.vault_config import VaultConfig
from bootstrap.phases.vault_ready import VaultReady
from bootstrap.runtime.credentials import resolve_token
from bootstrap.runtime.target import Target, resolve
from bootstrap.tooling import tools

PROVIDER_DIR = TOOLS_DIR / "terraform-mirror" / "registry.opentofu.org" / "hashicorp" / "vault"


def generated(n: int) -> Catalog:
    return parse_catalog(catalog_text(n), f"generated-{n}.yaml")


def audit_writes(log: Path) -> int:
    count = 0
    if not log.exists():
        return 0
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        req = entry.get("request") or {}
        if entry.get("type") == "request" and req.get("operation") in (
            "create",
            "update",
            "delete",
        ):
            count += 1
    return count


def timed_config(settings: Settings, catalog: Catalog, target: Target) -> tuple[float, str]:
    ctx = RunContext(settings, catalog)
    ctx.target_ = target
    started = time.perf_counter()
    (result,) = run([VaultConfig()], ctx, ["vault-config"])
    elapsed = time.perf_counter() - started
    if result.status == "failed":
        raise SystemExit(f"vault-config failed: {result.error}")
    return elapsed, result.status


def peer_hcl(catalog: Catalog) -> str:
    from bootstrap.model import conventions as conv
    from bootstrap.model.render import render_policy, render_role

    out = [
        'terraform {\n  required_providers {\n    vault = { source = "hashicorp/vault" }\n  }\n}\n',
        'provider "vault" {}\n',
    ]
    for svc in catalog.services:
        role = render_role(catalog, svc)
        policy = render_policy(svc, catalog.name).replace("${", "$${")
        out.append(
            f'resource "vault_policy" "{svc.name}" {{\n  name = "{svc.name}"\n'
            f"  policy = <<EOT\n{policy}EOT\n}}\n"
            f'resource "vault_kubernetes_auth_backend_role" "{svc.name}" {{\n'
            f'  backend = "{conv.AUTH_MOUNT}"\n  role_name = "{svc.name}"\n'
            f"  bound_service_account_names = {json.dumps(role['bound_service_account_names'])}\n"
            f"  bound_service_account_namespaces = "
            f"{json.dumps(role['bound_service_account_namespaces'])}\n"
            f"  token_policies = {json.dumps(role['token_policies'])}\n"
            f'  token_ttl = {role["token_ttl"]}\n  audience = "{role["audience"]}"\n}}\n'
        )
    return "\n".join(out)


def run_peer(catalog: Catalog, addr: str, token: str, work: Path) -> float | str:
    if not PROVIDER_DIR.exists():
        return "n/a (hashicorp/vault provider not in the mirror)"
    tofu = tools.require("tofu", TOOLS_DIR)
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf").write_text(peer_hcl(catalog))
    cli = work / "tofurc"
    cli.write_text(
        "provider_installation {\n  filesystem_mirror {\n"
        f'    path = "{TOOLS_DIR}/terraform-mirror"\n  }}\n}}\n'
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli),
        "VAULT_ADDR": addr,
        "VAULT_TOKEN": token,
        "TF_IN_AUTOMATION": "1",
    }
    subprocess.run(
        [str(tofu), "init", "-input=false"], cwd=work, env=env, check=True, capture_output=True
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [str(tofu), "apply", "-auto-approve", "-input=false", "-parallelism=10"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1:]}"
    return elapsed


PRODUCT = "hvac + keep-alive adapter (the product)"
BARE = "bare http.client loop"
REQUESTS = "hvac's default adapter (requests)"


def read_costs(addr: str, token: str, names: list[str], reads: int) -> dict[str, float]:
    """Microseconds per policy read, the same reads on one thread, best of three rounds:
    the product's client (hvac + the keep-alive adapter), a bare http.client loop on one
    keep-alive connection, and hvac's default requests-based adapter."""
    paths = [f"sys/policies/acl/{names[i % len(names)]}" for i in range(reads)]
    api = vault.Api(addr, token)
    default = hvac.Client(url=addr, token=token)
    parts = urllib.parse.urlsplit(addr)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    headers = {"X-Vault-Token": token, "X-Vault-Request": "true"}

    def product() -> None:
        for p in paths:
            assert api.read(p) is not None

    def bare() -> None:
        for p in paths:
            conn.request("GET", f"/v1/{p}", headers=headers)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200 and body["data"]

    def hvac_default() -> None:
        for p in paths:
            assert default.read(p) is not None

    clients = {PRODUCT: product, BARE: bare, REQUESTS: hvac_default}
    best = dict.fromkeys(clients, float("inf"))
    for _ in range(3):
        for name, fn in clients.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    conn.close()
    default.adapter.close()
    return {name: t / reads * 1e6 for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200,500,1000")
    parser.add_argument("--reads", type=int, default=2000, help="reads per client in the row")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    costs: dict[str, float] = {}
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-{n}-"))
        box = sandbox.up(tmp / "sandbox", TOOLS_DIR, timeout=90)
        try:
            settings = sandbox_settings(tmp, box)
            catalog = generated(n)
            target = resolve(settings)
            ctx = RunContext(settings, catalog)
            ctx.target_ = target
            ctx.wait = WaitSettings(timeout=60, initial=0.1, maximum=0.5)
            (ready,) = run([VaultReady()], ctx, ["vault-ready"])
            if ready.status == "failed":
                raise SystemExit(f"vault-ready failed: {ready.error}")
            log = tmp / "sandbox" / "bao-0" / "audit.log"
            w0 = audit_writes(log)
            scratch, _ = timed_config(settings, catalog, target)
            w1 = audit_writes(log)
            noop, status = timed_config(settings, catalog, target)
            w2 = audit_writes(log)
            assert status == "no-change", status
            token, _ = resolve_token(target.custody)
            peer = run_peer(generated(n), box.bao_addr, token, tmp / "peer")
            if not costs and args.reads > 0:
                names = [svc.name for svc in catalog.services]
                costs = read_costs(box.bao_addr, token, names, args.reads)
            rows.append((n, scratch, w1 - w0, noop, w2 - w1, peer))
            print(
                f"N={n}: scratch {scratch:.2f}s ({w1 - w0} writes), no-op {noop:.2f}s "
                f"({w2 - w1} writes), peer {peer}",
                file=sys.stderr,
                flush=True,
            )
        finally:
            sandbox.down(tmp / "sandbox")
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nvault-config against OpenBao {tools.TOOLS['bao'].version} on the sandbox; "
        f"{os.cpu_count()} cores"
    )
    print(
        "| services | from scratch (s) | writes | no-op re-run (s) | writes | OpenTofu peer (s) "
        "| speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, scratch, w_s, noop, w_n, peer in rows:
        speed = f"{peer / scratch:.0f}x" if isinstance(peer, float) else "n/a"
        peer_txt = f"{peer:.2f}" if isinstance(peer, float) else peer
        print(f"| {n} | {scratch:.2f} | {w_s} | {noop:.2f} | {w_n} | {peer_txt} | {speed} |")
    if costs:
        print(f"\n{args.reads} policy reads on one thread, keep-alive connections:")
        print("| client | per read (us) | vs bare |")
        print("|---|---:|---:|")
        for name in (PRODUCT, BARE, REQUESTS):
            print(f"| {name} | {costs[name]:.0f} | {costs[name] / costs[BARE]:.2f}x |")


if __name__ == "__main__":
    main()
