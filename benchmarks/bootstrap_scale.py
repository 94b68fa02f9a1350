"""The whole ``invoke bootstrap`` at scale, on generated catalogs.

Per size: a fresh sandbox (etcd, kube-apiserver, kube-controller-manager, one OpenBao node and
the real Vault Secrets Operator v0.1.0) is started, then ``invoke bootstrap`` runs through
the CLI as a user runs it, from scratch, and then with nothing to change (no-op, three times by
default: the median is printed, with the range). The
wall time is from the command's start to its exit (it exits 0 only once the operator has
synced every destination Secret); the per-phase seconds come from its JSON report. The time
to start the sandbox is printed apart: the goal is about the bootstrap, after the sandbox is
up.

    uv run python benchmarks/bootstrap_scale.py --sizes 50 200 500

The generated catalog is the one of benchmarks/vault_config.py (n services in 20
namespaces, three secrets each and two of ten shared reads: 5 destination Secrets per
service), every key generated, so populate writes a value for every Secret.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import TOOLS_DIR, catalog_text  # noqa: E402
from benchmarks.dr import cli, env_for  # noqa: E402
from bootstrap import sandbox  # noqa: E402
from bootstrap.phases.pipeline import PHASE_ORDER  # noqa: E402
from bootstrap.tooling import versions  # noqa: E402

#: Requests a second VSO v0.1.0's Kubernetes client sends per kind (controller-runtime 0.14's
#: default QPS, one rate limiter per REST client and so per kind; not configurable in v0.1.0).
VSO_QPS = 20.0
PHASES = tuple(p for p in PHASE_ORDER if p != "dr-restore")  # what bootstrap runs


def phase_seconds(report: Path) -> dict[str, float]:
    phases = json.loads(report.read_text(encoding="utf-8"))["phases"]
    return {p["name"]: float(p["seconds"]) for p in phases}


def one(n: int, tmp: Path, noop_runs: int) -> dict[str, Any]:
    catalog = tmp / "catalog.yaml"
    catalog.write_text(
        f"name: scale{n}\n" + catalog_text(n).replace("null}", "{generate: {length: 24}}}"),
        encoding="utf-8",
    )
    box_dir = tmp / "sandbox"
    started = time.monotonic()
    box = sandbox.up(box_dir, TOOLS_DIR, ha=False, timeout=120)
    up_s = time.monotonic() - started
    try:
        env = env_for(box_dir, box, tmp / "state")
        runs: dict[str, Any] = {}
        noops: list[dict[str, Any]] = []
        for i in range(1 + noop_runs):
            kind = "scratch" if i == 0 else "noop"
            report = tmp / f"{kind}-{i}.json"
            seconds, _ = cli("bootstrap", env, "--catalog", str(catalog), "--report", str(report))
            run = {"seconds": seconds, "phases": phase_seconds(report)}
            if kind == "scratch":
                runs[kind] = run
            else:
                noops.append(run)
        # the no-op run of median wall time (the operator's refreshes load the API server
        # unevenly: one run alone varies by a second), with the range of all
        noops.sort(key=lambda r: r["seconds"])
        runs["noop"] = {
            **noops[len(noops) // 2],
            "range": [noops[0]["seconds"], noops[-1]["seconds"]],
        }
    finally:
        sandbox.down(box_dir)
    return {"services": n, "secrets": 5 * n, "sandbox_up": up_s, **runs}


def print_tables(rows: list[dict[str, Any]]) -> None:
    cores = os.cpu_count()
    print(
        f"\ninvoke bootstrap on a fresh sandbox ({cores} cores, 1 OpenBao node, VSO "
        f"{versions.VSO}, hashicorp/kubernetes {versions.TF_PROVIDER_KUBERNETES})\n"
    )
    head = [
        "services",
        "Secrets",
        "run",
        "total s",
        "without verify s",
        *(f"{p} s" for p in PHASES),
        "operator floor s",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for r in rows:
        for kind in ("scratch", "noop"):
            run = r[kind]
            spread = run.get("range")
            cells = [
                str(r["services"]),
                str(r["secrets"]),
                "from scratch" if kind == "scratch" else f"no-op, median of {r['noop_runs']}",
                f"{run['seconds']:.1f}"
                + (f" ({spread[0]:.1f}-{spread[1]:.1f})" if spread and len(spread) == 2 else ""),
                f"{run['seconds'] - run['phases'].get('verify', 0.0):.1f}",
                *(f"{run['phases'].get(p, 0.0):.2f}" for p in PHASES),
                f"{r['secrets'] / VSO_QPS:.0f}" if kind == "scratch" else "0",
            ]
            print("| " + " | ".join(cells) + " |")
    print(
        "\n'without verify': the command's wall time less the verify phase, which waits for "
        "the operator.\n'operator floor': Secrets / "
        f"{VSO_QPS:.0f}: VSO {versions.VSO} updates each destination Secret once when it "
        "first syncs, through a client\nlimited to 20 requests a second per kind "
        "(controller-runtime's default; v0.1.0 has no flag to raise it)."
    )
    print(
        "\nsandbox start (not counted above): "
        + ", ".join(f"{r['services']} services {r['sandbox_up']:.1f} s" for r in rows)
    )
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        span = (hi["services"] - lo["services"]) / 100
        print(
            f"\nseconds per 100 services, from {lo['services']} to {hi['services']} services "
            "(from scratch; a phase that grows linearly has the same figure at every size)\n"
        )
        head = ["phase", *(f"{r['services']}: s/100" for r in rows), "slope s/100"]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---", *("---:" for _ in head[1:])]) + "|")
        for p in (*PHASES, "total"):

            def sec(r: dict[str, Any], p: str = p) -> float:
                run = r["scratch"]
                return float(run["seconds"] if p == "total" else run["phases"].get(p, 0.0))

            cells = [p, *(f"{sec(r) / (r['services'] / 100):.2f}" for r in rows)]
            cells.append(f"{(sec(hi) - sec(lo)) / span:.2f}")
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--noop-runs", type=int, default=3, help="no-op runs per size (median)")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"scale-bench-{n}-") as tmp:
            print(f"... {n} services", file=sys.stderr, flush=True)
            rows.append(
                {**one(n, Path(tmp), max(1, args.noop_runs)), "noop_runs": max(1, args.noop_runs)}
            )
    print_tables(rows)


if __name__ == "__main__":
    main()
