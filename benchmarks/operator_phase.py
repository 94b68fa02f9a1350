"""Where the operator, populate and verify phases' time goes at scale, with VSO 1.4.1.

Per variant, a fresh sandbox (VSO 1.4.1, its client at ``--qps``/``--burst``, ``--max-
reconciles`` workers) and the generated catalog of benchmarks/bootstrap_scale.py (n services in
20 namespaces, 5 destination Secrets each, every key generated, a Deployment per service as
its restart target). ``invoke bootstrap`` runs through the CLI as a user runs it, in steps:
``--only`` preflight, placeholders, vault-ready and vault-config first (not counted), then

- ``default``: ``--only operator``, then ``--start populate --skip-quiet-check``: the
  product's order. The operator reconciles each VaultStaticSecret as it is applied, and each
  first reconcile fails (the path is empty until populate), so every one is reconciled again
  after populate;
- ``paused``: the same, with the sandbox's operator process stopped (SIGSTOP) for the operator
  phase and continued (SIGCONT) right after it: the phase alone, on a machine the operator
  leaves to it, and the operator's whole sync left to verify;
- ``values-first``: ``--only populate`` first, then ``--only operator``, then ``--start verify
  --skip-quiet-check``: Vault holds every value before any VaultStaticSecret exists, so each
  first reconcile syncs.

Each step's phase seconds come from its JSON report; the sum is what the three phases cost the
run. Then the Deployments' rollouts beyond revision 1 are counted after one more refresh
period (0: no variant restarted a workload). The quiet check is skipped in every variant (it
watches one refresh period whatever the variant). A second table says where each step's CPU
went: seconds by the sandbox's processes (from /proc), by the product's CLI runs, by the rest
of the machine, and the machine's busy share of all its cores; its last row per variant is
the refresh period watched at the end, when nothing changes (this script's own watch is in
"other").

    uv run python benchmarks/operator_phase.py --sizes 500
    uv run python benchmarks/operator_phase.py --sizes 200 --variants default,values-first
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.bootstrap_scale import (  # noqa: E402
    deployments,
    phase_seconds,
    quiet_then_rollouts,
    write_catalog,
)
from benchmarks.common import TOOLS_DIR, CpuMeter, operator_options  # noqa: E402
from benchmarks.dr import cli, env_for  # noqa: E402
from bootstrap import sandbox  # noqa: E402
from bootstrap.clients.kube import Kube  # noqa: E402
from bootstrap.tooling import versions  # noqa: E402

VARIANTS = ("default", "paused", "values-first")
BEFORE = ("preflight", "placeholders", "vault-ready", "vault-config")


def steps(variant: str) -> list[tuple[str, list[str]]]:
    """The ``invoke bootstrap`` runs of a variant after the first four phases, in order:
    (name, arguments)."""
    operator = ("operator", ["--only", "operator"])
    if variant == "values-first":
        return [
            ("populate", ["--only", "populate"]),
            operator,
            ("verify", ["--start", "verify", "--skip-quiet-check"]),
        ]
    return [operator, ("populate+verify", ["--start", "populate", "--skip-quiet-check"])]


def one(n: int, variant: str, tmp: Path, qps: float, burst: int, workers: int) -> dict[str, Any]:
    catalog = write_catalog(tmp / "catalog.yaml", f"phase{n}", n)
    box_dir = tmp / "sandbox"
    box = sandbox.up(
        box_dir,
        TOOLS_DIR,
        ha=False,
        timeout=120,
        operator=operator_options(versions.VSO, qps, burst, workers),
    )
    try:
        kube = Kube(box.kubeconfig)
        deployments(kube, n)
        env = env_for(box_dir, box, tmp / "state")
        first = [a for p in BEFORE for a in ("--only", p)]
        cli("bootstrap", env, "--catalog", str(catalog), *first)
        operator = box.process(sandbox.OPERATOR)
        meter = CpuMeter({p.name: p.pid for p in box.processes})
        phases: dict[str, float] = {}
        cpu: dict[str, dict[str, float]] = {}
        for name, args in steps(variant):
            meter.start()
            pause = variant == "paused" and name == "operator"
            if pause:
                if not operator.alive():
                    raise SystemExit("the sandbox's operator process is gone")
                os.kill(operator.pid, signal.SIGSTOP)
            try:
                report = tmp / f"{name}.json"
                cli("bootstrap", env, "--catalog", str(catalog), *args, "--report", str(report))
            finally:
                if pause:
                    os.kill(operator.pid, signal.SIGCONT)
            cpu[name] = meter.stop()
            for phase, seconds in phase_seconds(report).items():
                phases[phase] = phases.get(phase, 0.0) + seconds
        # one more refresh period with nothing changed, watched, then count the rollouts;
        # its CPU is what the operator's refreshes cost a cluster where nothing changes
        meter.start()
        _, restarts = quiet_then_rollouts(kube, n)
        cpu["refresh period"] = meter.stop()
    finally:
        sandbox.down(box_dir)
    return {
        "services": n,
        "variant": variant,
        "phases": phases,
        "rollouts": restarts,
        "cpu": cpu,
    }


def print_table(rows: list[dict[str, Any]], qps: float, burst: int, workers: int) -> None:
    print(
        f"\nVSO {versions.VSO} (--kube-client-qps {qps:g}, --kube-client-burst {burst}, "
        f"--max-concurrent-reconciles {workers or 100}), {os.cpu_count()} cores; seconds per "
        "phase from the reports, the quiet check skipped:\n"
    )
    head = ["services", "variant", "operator s", "populate s", "verify s", "sum s", "rollouts"]
    print("| " + " | ".join(head) + " |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        p = r["phases"]
        three = [p.get(k, 0.0) for k in ("operator", "populate", "verify")]
        cells = [str(r["services"]), r["variant"], *(f"{s:.1f}" for s in three)]
        print("| " + " | ".join([*cells, f"{sum(three):.1f}", str(r["rollouts"])]) + " |")


#: The CPU table's columns: the sandbox's processes by name, then the product's CLI runs.
CPU_COLUMNS = (
    (sandbox.OPERATOR, "VSO"),
    ("kube-apiserver", "kube-apiserver"),
    ("etcd", "etcd"),
    ("bao-0", "OpenBao"),
    ("kube-controller-manager", "controller-manager"),
    ("product", "the product's CLI"),
)


def print_cpu(rows: list[dict[str, Any]]) -> None:
    """Where each step's CPU went: seconds by process, the rest of the machine, and the
    machine's busy share of all its cores over the step."""
    print(
        f"\nCPU seconds per step ({os.cpu_count()} cores; busy: the whole machine's share of "
        "all cores over the step):\n"
    )
    head = ["services", "variant", "step", *(label for _, label in CPU_COLUMNS)]
    print("| " + " | ".join([*head, "other", "machine busy s", "busy %"]) + " |")
    print("|---:|---|---|" + "---:|" * (len(CPU_COLUMNS) + 3))
    for r in rows:
        for step, c in r["cpu"].items():
            named = [c.get(key, 0.0) for key, _ in CPU_COLUMNS]
            # the machine's and the processes' tick counts differ by a tick or so: never < 0
            other = max(c["machine busy"] - sum(named), 0.0)
            share = 100.0 * c["machine busy"] / c["machine"] if c["machine"] else 0.0
            cells = [str(r["services"]), r["variant"], step, *(f"{s:.1f}" for s in named)]
            cells += [f"{other:.1f}", f"{c['machine busy']:.1f}", f"{share:.0f}"]
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500])
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--qps", type=float, default=500.0, help="--kube-client-qps")
    parser.add_argument("--burst", type=int, default=1000, help="--kube-client-burst")
    parser.add_argument(
        "--max-reconciles", type=int, default=0, help="--max-concurrent-reconciles (0: its 100)"
    )
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    rows = []
    for n in args.sizes:
        for variant in variants:
            print(f"... {variant}: {n} services", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory(prefix=f"phase-bench-{n}-") as tmp:
                rows.append(one(n, variant, Path(tmp), args.qps, args.burst, args.max_reconciles))
    print_table(rows, args.qps, args.burst, args.max_reconciles)
    print_cpu(rows)


if __name__ == "__main__":
    main()
