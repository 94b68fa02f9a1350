"""The whole ``invoke bootstrap`` at scale, on generated catalogs.

Per sync engine and size: a fresh sandbox (etcd, kube-apiserver, kube-controller-manager, one
OpenBao node and the real sync engine: the Vault Secrets Operator 1.4.1 with its client rate
raised by ``--qps``/``--burst``, and v0.1.0, whose client is fixed at 20 requests a second per
kind; or ``eso``, the External Secrets Operator 2.9.0 with the same client flags and Stakater
Reloader) is started, one Deployment per service (no pods: the sandbox has no node, but its
controller rolls out a revision per restart) is made as the service's restart target, then
``invoke bootstrap`` runs through the CLI as a user runs it, from scratch, and then with nothing
to change (no-op, three times by default: the median is printed, with the range). The wall time
is from the command's start to its exit (it exits 0 only once the operator has synced every
destination Secret, and, from scratch, once verify has watched the restart targets for one
refresh period: the quiet check); the per-phase seconds come from its JSON report. After the no-
op runs the Deployments are watched for one more refresh period, and their rollouts counted: a
hand-over and re-runs that restart nothing leave every one at revision 1. The time to start the
sandbox is printed apart: the goal is about the bootstrap, after the sandbox is up.

    uv run python benchmarks/bootstrap_scale.py --sizes 50 200 500
    uv run python benchmarks/bootstrap_scale.py --sizes 500 --operators 1.4.1 --qps 500 --burst 1000
    uv run python benchmarks/bootstrap_scale.py --sizes 50 --operators 1.4.1,0.1.0,eso

The generated catalog is the one of benchmarks/vault_config.py (n services in 20
namespaces, three secrets each and two of ten shared reads: 5 destination Secrets per
service), every key generated, so populate writes a value for every Secret; each service
restarts its Deployment.
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

from benchmarks.common import (  # noqa: E402
    ENGINES,
    TOOLS_DIR,
    catalog_text,
    engine_label,
    operator_options,
)
from benchmarks.dr import cli, env_for  # noqa: E402
from benchmarks.limits import LIMITS, THREADS, measure_limits  # noqa: E402
from bootstrap import sandbox  # noqa: E402
from bootstrap.clients.kube import Kube  # noqa: E402
from bootstrap.core.errors import BootstrapError  # noqa: E402
from bootstrap.model.catalog import RestartTarget  # noqa: E402
from bootstrap.phases.registry import registered  # noqa: E402
from bootstrap.runtime import vso  # noqa: E402
from bootstrap.tooling import versions  # noqa: E402

#: Requests a second an operator's Kubernetes client sends without a flag: controller-
#: runtime's default QPS (VSO v0.1.0: one rate limiter per REST client and so per kind, not
#: configurable; 1.4.1: the same default, raised with --kube-client-qps).
DEFAULT_QPS = 20.0
#: ESO 2.9.0's client rate without a flag (--client-qps).
ESO_DEFAULT_QPS = 50.0
PHASES = tuple(p.name for p in registered())  # what bootstrap runs
#: The generated catalog's refresh period (the catalog's default), in seconds.
REFRESH = 30.0


def with_restarts(text: str) -> str:
    """Each generated service restarts a Deployment of its own name."""
    out = []
    for line in text.splitlines():
        out.append(line)
        if line.startswith("  - name: svc"):
            name = line.split(": ", 1)[1]
            out.append(f"    restart: [{{kind: Deployment, name: {name}}}]")
    return "\n".join(out) + "\n"


def deployments(kube: Kube, n: int) -> None:
    """One Deployment per service, in its namespace (made here first: the workloads are there
    before the bootstrap, as on a cluster whose apps wait for their Secrets)."""
    for ns in sorted({f"ns{i % 20}" for i in range(n)}):
        kube.ensure_namespace(ns)
    for i in range(n):
        name = f"svc{i}"
        kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": f"ns{i % 20}"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": "app", "image": "none"}]},
                    },
                },
            },
            field_manager="benchmark",
        )


def rollouts(kube: Kube, n: int) -> int:
    """Rollouts beyond each Deployment's first revision, summed."""
    total = 0
    for ns in sorted({f"ns{i % 20}" for i in range(n)}):
        for d in kube.list_objects("apps/v1", "Deployment", ns):
            rev = ((d.get("metadata") or {}).get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "1"
            )
            total += int(rev) - 1
    return total


def write_catalog(path: Path, name: str, n: int) -> Path:
    """The generated catalog of n services, every key generated, each service restarting a
    Deployment of its own name (made by :func:`deployments`)."""
    path.write_text(
        f"name: {name}\n"
        + with_restarts(catalog_text(n).replace("null}", "{generate: {length: 24}}}")),
        encoding="utf-8",
    )
    return path


def quiet_then_rollouts(kube: Kube, n: int) -> tuple[int, int]:
    """Watch the n Deployments for one more refresh period with nothing changed in Vault
    (the quiet check's watch), then count their rollouts beyond revision 1: (1 if the watch
    saw a restart, else 0; the rollouts)."""
    watched = [
        vso.Watched(f"ns{i % 20}", RestartTarget(kind="Deployment", name=f"svc{i}"), (), REFRESH)
        for i in range(n)
    ]
    seen = 0
    try:
        vso.watch_quiet(kube, _NoVault(), watched, REFRESH + vso.QUIET_MARGIN)  # type: ignore[arg-type]
    except BootstrapError as exc:  # counted, and said
        print(f"restarts while nothing changed: {exc}", file=sys.stderr)
        seen = 1
    return seen, rollouts(kube, n)


def phase_seconds(report: Path) -> dict[str, float]:
    phases = json.loads(report.read_text(encoding="utf-8"))["phases"]
    return {p["name"]: float(p["seconds"]) for p in phases}


def changed_phases(report: Path) -> list[str]:
    """The phases of a run that did not end ``no-change``."""
    phases = json.loads(report.read_text(encoding="utf-8"))["phases"]
    return [p["name"] for p in phases if p["status"] != "no-change"]


def one(n: int, tmp: Path, noop_runs: int, operator: sandbox.OperatorOptions) -> dict[str, Any]:
    catalog = write_catalog(tmp / "catalog.yaml", f"scale{n}", n)
    box_dir = tmp / "sandbox"
    started = time.monotonic()
    box = sandbox.up(box_dir, TOOLS_DIR, ha=False, timeout=120, operator=operator)
    up_s = time.monotonic() - started
    try:
        kube = Kube(box.kubeconfig)
        deployments(kube, n)
        env = env_for(box_dir, box, tmp / "state")
        runs: dict[str, Any] = {}
        noops: list[dict[str, Any]] = []
        for i in range(1 + noop_runs):
            kind = "scratch" if i == 0 else "noop"
            report = tmp / f"{kind}-{i}.json"
            seconds, _ = cli("bootstrap", env, "--catalog", str(catalog), "--report", str(report))
            run = {
                "seconds": seconds,
                "phases": phase_seconds(report),
                "changed": changed_phases(report),
            }
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
            # every no-op run, not only the median: which phases changed anything
            "changed": sorted({c for r in noops for c in r["changed"]}),
        }
        # one more refresh period with nothing changed, then count the rollouts
        restarts_during, restarts = quiet_then_rollouts(kube, n)
        print(f"... limit loops: {n} services", file=sys.stderr, flush=True)
        limits = measure_limits(kube, box, box_dir, n)
    finally:
        sandbox.down(box_dir)
    return {
        "services": n,
        "secrets": 5 * n,
        "sandbox_up": up_s,
        "rollouts": restarts,
        "storm_seen": restarts_during,
        "operator": operator,
        "limits": limits,
        **runs,
    }


class _NoVault:
    """The watch reads Vault's writes only to explain a restart; with no paths, none."""

    def read(self, path: str) -> None:
        return None


def qps_of(operator: sandbox.OperatorOptions) -> float:
    if operator.engine == "eso":
        return operator.qps or ESO_DEFAULT_QPS
    if operator.version == versions.VSO_V0 or not operator.qps:
        return DEFAULT_QPS
    return operator.qps


def print_tables(rows: list[dict[str, Any]]) -> None:
    cores = os.cpu_count()
    print(
        f"\ninvoke bootstrap on a fresh sandbox ({cores} cores, 1 OpenBao node, OpenTofu "
        f"{versions.OPENTOFU}, hashicorp/kubernetes {versions.TF_PROVIDER_KUBERNETES}); "
        "operators:"
    )
    for op in dict.fromkeys(r["operator"] for r in rows):
        print(f"- {op.describe()}" if op.engine == "eso" else f"- VSO {op.describe()}")
    print()
    head = [
        "operator",
        "services",
        "Secrets",
        "run",
        "total s",
        "without verify s",
        *(f"{p} s" for p in PHASES),
        "client floor s",
        "rollouts",
        "phases changed",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for r in rows:
        for kind in ("scratch", "noop"):
            run = r[kind]
            spread = run.get("range")
            cells = [
                engine_label(r["operator"]),
                str(r["services"]),
                str(r["secrets"]),
                "from scratch" if kind == "scratch" else f"no-op, median of {r['noop_runs']}",
                f"{run['seconds']:.1f}"
                + (f" ({spread[0]:.1f}-{spread[1]:.1f})" if spread and len(spread) == 2 else ""),
                f"{run['seconds'] - run['phases'].get('verify', 0.0):.1f}",
                *(f"{run['phases'].get(p, 0.0):.2f}" for p in PHASES),
                f"{r['secrets'] / qps_of(r['operator']):.0f}" if kind == "scratch" else "0",
                "-" if kind == "scratch" else str(r["rollouts"]),
                "-" if kind == "scratch" else (", ".join(run["changed"]) or "none"),
            ]
            print("| " + " | ".join(cells) + " |")
    print(
        "\n'without verify': the command's wall time less the verify phase, which waits for "
        "the operator and then\nwatches the restart targets for one refresh period "
        f"({REFRESH:.0f} s + {vso.QUIET_MARGIN:.0f} s; from scratch only).\n'client floor': "
        "Secrets / the operator's client rate (VSO: 20 a second per kind by default, v0.1.0 "
        "always; ESO: 50):\neach destination Secret is written once when it first syncs.\n"
        "'rollouts': Deployment rollouts beyond revision 1 after the from-scratch run, the "
        "no-op runs and one more\nrefresh period: the hand-over and the re-runs restart "
        "nothing when it is 0."
    )
    print(
        f"\nlimit lines: the same work from a bare loop ({THREADS} requests at once, "
        "benchmarks/limits.py) on the same sandbox, after the runs; 'x limit': the phase's "
        "seconds from scratch over its limit's\n"
    )
    print("| operator | services | phase | limit: what | count | limit s | phase s | x limit |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        for phase, (what, count) in LIMITS.items():
            limit = r["limits"][phase]
            took = r["scratch"]["phases"].get(phase, 0.0)
            print(
                f"| {engine_label(r['operator'])} | {r['services']} | {phase} | {what} | "
                f"{count(r['services'])} | {limit:.2f} | {took:.2f} | "
                f"{took / limit if limit else 0.0:.1f}x |"
            )
    print(
        "\nsandbox start (not counted above): "
        + ", ".join(f"{r['services']} services {r['sandbox_up']:.1f} s" for r in rows)
    )
    by_op: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_op.setdefault(engine_label(r["operator"]), []).append(r)
    for version, its in by_op.items():
        slopes(version, its)


def slopes(version: str, rows: list[dict[str, Any]]) -> None:
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        span = (hi["services"] - lo["services"]) / 100
        print(
            f"\n{version}: seconds per 100 services, from {lo['services']} to "
            f"{hi['services']} services (from scratch; a phase that grows linearly has the "
            "same figure at every size)\n"
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
    parser.add_argument(
        "--operators",
        default=",".join(ENGINES),
        help=f"sync engines, comma-separated: VSO versions or eso (default {','.join(ENGINES)})",
    )
    parser.add_argument(
        "--qps", type=float, default=500.0, help="1.4.1's --kube-client-qps, ESO's --client-qps"
    )
    parser.add_argument(
        "--burst", type=int, default=1000, help="1.4.1's --kube-client-burst, ESO's --client-burst"
    )
    parser.add_argument(
        "--max-reconciles",
        type=int,
        default=0,
        help="1.4.1's --max-concurrent-reconciles (0: its 100), ESO's --concurrent (0: its 1)",
    )
    args = parser.parse_args()
    rows = []
    for version in args.operators.split(","):
        operator = operator_options(version, args.qps, args.burst, args.max_reconciles)
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix=f"scale-bench-{n}-") as tmp:
                print(f"... {engine_label(operator)}: {n} services", file=sys.stderr, flush=True)
                noop = max(1, args.noop_runs)
                rows.append({**one(n, Path(tmp), noop, operator), "noop_runs": noop})
    print_tables(rows)


if __name__ == "__main__":
    main()
