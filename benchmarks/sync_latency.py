"""Benchmark: how long the real sync engine (VSO 1.4.1 and v0.1.0, ESO 2.9.0) takes to bring
the values the populate phase wrote into N Kubernetes Secrets, with verify's nudge versus
waiting for the operator alone (v0.1.0: its ``refreshAfter: 30s``; 1.4.1: its own retry of a
failed read, 5 s at first, then backing off; ESO: its own retry).

For each size N (VaultStaticSecrets; five secrets per service, in 20 namespaces at most) and
each mode, on one sandbox, a generated catalog of its own goes through the bootstrap: the
placeholders, vault-config and operator phases (the operator meets empty Vault paths), then
populate writes every value, then verify runs:

- nudged: verify as it is (it nudges each pending VaultStaticSecret: one reconcile, now);
- waiting: verify with ``verify_nudge`` off (the operator's own retry or refresh brings
  them).

The time is taken from the end of populate until every Secret holds Vault's value (a watch on
Secrets sees each update as it happens), so it does not include what verify does afterwards.
Each catalog's namespaces are deleted before the next run, so the operator's steady refresh
of one run does not slow the other.

    uv run python benchmarks/sync_latency.py --sizes 10,100,500 [--operators 1.4.1,0.1.0,eso]
        [--qps Q --burst B --max-reconciles M]   (1.4.1's and ESO's client and concurrency)

Prints a table; changes nothing outside a temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from kubernetes import watch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ENGINES, TOOLS_DIR, engine_label, operator_options, sandbox_settings
from bootstrap import sandbox
from bootstrap.clients.kv import read_kv
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.domain import syncs
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext
from bootstrap.phases.registry import run_phases
from bootstrap.runtime import vso
from bootstrap.tooling import versions

PER_SERVICE = 5
#: verify's own polling, as the product does it (every second at most)
POLL = WaitSettings(timeout=300, initial=0.2, maximum=1.0)


def generated(n: int, prefix: str) -> Catalog:
    services = []
    value = "{value: {generate: {length: 16}}}"
    for i in range(-(-n // PER_SERVICE)):
        count = min(PER_SERVICE, n - i * PER_SERVICE)
        secrets_ = "\n".join(
            f"      s{j}: {{destination: {prefix}{i}-s{j}, keys: {value}}}" for j in range(count)
        )
        services.append(
            f"  - name: {prefix}{i}\n    namespace: {prefix}-ns{i % 20}\n    secrets:\n{secrets_}\n"
        )
    text = f"name: {prefix}\ndefaults: {{refreshAfter: 30s}}\nservices:\n" + "".join(services)
    return parse_catalog(text, f"{prefix}.yaml")


def phases(ctx: RunContext, names: list[str]) -> float:
    started = time.perf_counter()
    results = run_phases(ctx, names)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SystemExit(f"{failed[0].name} failed: {failed[0].error}")
    return time.perf_counter() - started


class Watch(threading.Thread):
    """Notes when every Secret first holds Vault's value, from a watch on Secrets (events as
    they happen, no polling load on the API server while the operator works)."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(daemon=True)
        api = ctx.vault
        self.kube = ctx.target.kube
        self.want = {
            (s.namespace, s.destination): read_kv(api, s.kv_path)[0] for s in syncs(ctx.catalog)
        }
        self.left = set(self.want)
        self.done_after: float | None = None
        self.watch = watch.Watch()  # type: ignore[no-untyped-call]
        self.started = time.perf_counter()

    def run(self) -> None:
        for event in self.watch.stream(self.kube.core.list_secret_for_all_namespaces):  # type: ignore[no-untyped-call]
            obj = event["object"]
            key = (obj.metadata.namespace, obj.metadata.name)
            if key not in self.left:
                continue
            data = {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}
            if vso.classify(self.want[key], data) == "synced":
                self.left.discard(key)
                if not self.left:
                    self.done_after = time.perf_counter() - self.started
                    self.watch.stop()  # type: ignore[no-untyped-call]
                    return


def one_run(settings: Settings, catalog: Catalog) -> float:
    ctx = RunContext(settings, catalog)
    ctx.wait = POLL
    phases(ctx, ["placeholders", "vault-ready", "vault-config", "operator", "populate"])
    watcher = Watch(ctx)
    watcher.start()
    phases(ctx, ["verify"])
    watcher.join(timeout=60)
    if watcher.done_after is None:
        raise SystemExit("verify passed but the watcher never saw every Secret synced")
    kube = ctx.target.kube
    for ns in catalog.namespaces:
        kube.delete_namespace(ns)

    def gone() -> None:
        left = set(catalog.namespaces) & kube.namespaces()
        if left:
            raise Pending(f"{len(left)} namespaces still there")

    wait_for(gone, "the run's namespaces to be deleted", POLL)
    return watcher.done_after


def measure(n: int, operator: sandbox.OperatorOptions) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"sync-{n}-"))
    box = sandbox.up(tmp / "sandbox", TOOLS_DIR, timeout=90, operator=operator)
    try:
        settings = sandbox_settings(tmp, box, wait_timeout=300.0)
        nudged = one_run(settings, generated(n, "nudged"))
        label = engine_label(operator)
        print(f"{label} N={n}: nudged {nudged:.2f}s", file=sys.stderr, flush=True)
        waited = one_run(
            replace(settings, verify_nudge=False, state_dir=tmp / "state-waiting"),
            generated(n, "waiting"),
        )
        print(f"{label} N={n}: waiting {waited:.2f}s", file=sys.stderr, flush=True)
        return nudged, waited
    finally:
        sandbox.down(tmp / "sandbox")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="10,100,500")
    parser.add_argument(
        "--operators",
        default=",".join(ENGINES),
        help=f"sync engines, comma-separated: VSO versions or eso (default {','.join(ENGINES)})",
    )
    parser.add_argument("--qps", type=float, default=0.0, help="1.4.1's --kube-client-qps")
    parser.add_argument("--burst", type=int, default=0, help="1.4.1's --kube-client-burst")
    parser.add_argument("--max-reconciles", type=int, default=0)
    args = parser.parse_args()
    operators = [
        operator_options(v, args.qps, args.burst, args.max_reconciles)
        for v in args.operators.split(",")
    ]
    rows = [
        (op, n, *measure(n, op))
        for op in operators
        for n in (int(s) for s in args.sizes.split(","))
    ]
    print(
        "\nSeconds from the end of populate until every Secret holds Vault's value; "
        f"OpenBao {versions.OPENBAO}, sandbox on {os.cpu_count()} cores; operators: "
        + "; ".join(
            op.describe() if op.engine == "eso" else f"VSO {op.describe()}" for op in operators
        )
    )
    print(
        "| operator | Secrets synced | nudged by verify (s) | waiting for the operator "
        "alone (s) | nudge speed-up |"
    )
    print("|---|---:|---:|---:|---:|")
    for op, n, nudged, waited in rows:
        print(
            f"| {engine_label(op)} | {n} | {nudged:.2f} | {waited:.2f} | {waited / nudged:.1f}x |"
        )
    print(
        "\n'waiting for the operator alone': verify with the nudge off. VSO v0.1.0 reads a "
        "secret whose read failed\nagain only at its refreshAfter (30 s here); VSO 1.4.1 "
        "retries a failed read itself, 5 s after the failure at first.\nESO 2.9.0 retries a "
        "failed read on its own schedule (the column above is what it gives)."
    )


if __name__ == "__main__":
    main()
