"""Benchmark: how long the real Vault Secrets Operator v0.1.0 takes to bring new Vault values
into N Kubernetes Secrets, with verify's nudge versus waiting for ``refreshAfter: 30s``.

For each size N (VaultStaticSecrets; five secrets per service, 20 namespaces at most), on a
fresh sandbox: bootstrap a generated catalog (vault-ready, vault-config, operator, populate,
verify), so every Secret is synced and the operator is in its steady refresh cycle. Then,
twice, write a new version of every secret to Vault and time, from the start of the writes,
until every Secret holds the new value (a watcher thread polls the cluster):

- nudged: the verify phase (it nudges each pending VaultStaticSecret: one reconcile, now);
- waiting: the verify phase with ``verify_nudge`` off (the operator's own 30s refresh).

The verify phase's own polling (every 0.5s at most here) is the same in both runs.

    uv run python benchmarks/sync_latency.py --sizes 10,100,500

Prints a table; changes nothing outside a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap import conventions as conv
from bootstrap import sandbox, versions, vso
from bootstrap.catalog import Catalog, parse_catalog
from bootstrap.kv import kv_secrets, read_kv
from bootstrap.phases import run_phases
from bootstrap.phases.vault_config import api_for
from bootstrap.pipeline import RunContext
from bootstrap.render import syncs
from bootstrap.settings import Settings
from bootstrap.waits import WaitSettings

TOOLS_DIR = Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"
PER_SERVICE = 5
POLL = WaitSettings(timeout=300, initial=0.1, maximum=0.5)


def generated(n: int) -> Catalog:
    services = []
    for i in range(-(-n // PER_SERVICE)):
        count = min(PER_SERVICE, n - i * PER_SERVICE)
        value = "{value: {generate: {length: 16}}}"
        secrets_ = "\n".join(
            f"      s{j}: {{destination: svc{i}-s{j}, keys: {value}}}" for j in range(count)
        )
        services.append(f"  - name: svc{i}\n    namespace: ns{i % 20}\n    secrets:\n{secrets_}\n")
    text = "defaults: {refreshAfter: 30s}\nservices:\n" + "".join(services)
    return parse_catalog(text, f"generated-{n}.yaml")


def phases(ctx: RunContext, names: list[str]) -> float:
    started = time.perf_counter()
    results = run_phases(ctx, names)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SystemExit(f"{failed[0].name} failed: {failed[0].error}")
    return time.perf_counter() - started


def rotate_all(ctx: RunContext) -> dict[str, str]:
    """A new version of every secret of the catalog, written in parallel."""
    api = api_for(ctx)
    paths = [path for path, _ in kv_secrets(ctx.catalog)]
    values = {path: secrets.token_hex(8) for path in paths}

    def write(path: str) -> None:
        _, version = read_kv(api, path)
        api.write(
            f"{conv.KV_MOUNT}/data/{path}",
            {"options": {"cas": version}, "data": {"value": values[path]}},
        )

    api.parallel(write, paths)
    return values


class Watch(threading.Thread):
    """Polls the cluster (one list per namespace) and notes when every Secret first holds
    its new value: the end of the measurement, whatever the verify phase does after it."""

    def __init__(self, ctx: RunContext, values: dict[str, str]) -> None:
        super().__init__(daemon=True)
        t = ctx.shared["target"]
        self.kube = t.kube
        self.want = [(s.namespace, s.destination, values[s.kv_path]) for s in syncs(ctx.catalog)]
        self.started = time.perf_counter()
        self.done_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        namespaces = sorted({ns for ns, _, _ in self.want})
        while not self.stop.is_set():
            seen = {ns: self.kube.list_secrets(ns) for ns in namespaces}
            if all(
                vso.classify({"value": v}, seen[ns].get(name)) == "synced"
                for ns, name, v in self.want
            ):
                self.done_after = time.perf_counter() - self.started
                return
            self.stop.wait(0.2)


def timed_sync(ctx: RunContext) -> float:
    watch = Watch(ctx, rotate_all(ctx))
    watch.start()
    phases(ctx, ["verify"])
    watch.join(timeout=60)
    watch.stop.set()
    if watch.done_after is None:
        raise SystemExit("verify passed but the watcher never saw every Secret synced")
    return watch.done_after


def measure(n: int) -> tuple[float, float, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"sync-{n}-"))
    box = sandbox.up(tmp / "sandbox", TOOLS_DIR, timeout=90)
    try:
        settings = Settings(
            sandbox_dir=tmp / "sandbox",
            tools_dir=TOOLS_DIR,
            kubeconfig=Path(box.kubeconfig),
            vault_addrs=tuple(box.bao_addrs),
            custody_file=tmp / "sandbox" / "custody" / "vault-init.json",
            audit_file=str(tmp / "sandbox" / "audit" / "bao-0.log"),
            state_dir=tmp / "state",
            wait_timeout=300,
        )
        catalog = generated(n)
        ctx = RunContext(settings, catalog)
        ctx.shared["wait"] = POLL
        first = phases(
            ctx, ["placeholders", "vault-ready", "vault-config", "operator", "populate", "verify"]
        )
        print(f"N={n}: first bootstrap {first:.1f}s", file=sys.stderr, flush=True)
        nudged = timed_sync(ctx)
        print(f"N={n}: nudged {nudged:.2f}s", file=sys.stderr, flush=True)
        waiting_ctx = RunContext(replace(settings, verify_nudge=False), catalog)
        waiting_ctx.shared.update(ctx.shared)
        waited = timed_sync(waiting_ctx)
        print(f"N={n}: waiting {waited:.2f}s", file=sys.stderr, flush=True)
        return first, nudged, waited
    finally:
        sandbox.down(tmp / "sandbox")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10,100,500")
    args = parser.parse_args()
    rows = [(n, *measure(n)) for n in (int(s) for s in args.sizes.split(","))]
    print(
        f"\nSecrets updated after new Vault values, VSO v{versions.VSO} and OpenBao "
        f"{versions.OPENBAO} on the sandbox; {os.cpu_count()} cores"
    )
    print(
        "| VaultStaticSecrets | first bootstrap (s) | nudged by verify (s) "
        "| waiting for refreshAfter 30s (s) | nudge speed-up |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n, first, nudged, waited in rows:
        print(f"| {n} | {first:.1f} | {nudged:.2f} | {waited:.2f} | {waited / nudged:.1f}x |")


if __name__ == "__main__":
    main()
