"""Disaster recovery at scale: how long ``invoke dr.restore`` takes from the snapshot file to
every Secret synced, on generated catalogs.

Per size: sandbox A is bootstrapped with a generated catalog (every key generated, so Vault
holds a value for every Secret), ``dr.snapshot`` writes a snapshot, the custody record is
copied aside and A is destroyed; sandbox B (new PKI, issuer and ports) is started and
``dr.restore`` runs through the CLI as a user runs it. The restore's wall time is from the
command's start to its exit (it exits 0 only once the operator has synced every Secret), and
the per-phase seconds come from its JSON report.

    uv run python benchmarks/dr.py --sizes 50 500 [--ha] [--operator 1.4.1 --qps 500 --burst 1000]

Both sandboxes run the chosen operator (1.4.1 by default, its client rate raised by ``--qps``
and ``--burst``); after the restore, B's API server and OpenBao take the same work as the
placeholders, operator and populate phases from a bare loop (benchmarks/limits.py): the limit
lines.

The generated catalog is the one of benchmarks/vault_config.py (n services in 20
namespaces, three secrets each and two of ten shared reads: 5 destination Secrets per
service), with generated values instead of none.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import TOOLS_DIR, catalog_text  # noqa: E402
from benchmarks.limits import LIMITS, THREADS, measure_limits  # noqa: E402
from bootstrap import sandbox  # noqa: E402
from bootstrap.clients.kube import Kube  # noqa: E402
from bootstrap.tooling import versions  # noqa: E402

PHASES = ("dr-restore", "placeholders", "vault-ready", "vault-config", "operator", "populate")


def cli(task: str, env: dict[str, str], *args: str) -> tuple[float, str]:
    """``invoke TASK ARGS`` as a user runs it; (seconds, output). Fails loudly."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    full.update(env)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", task, *args],
        cwd=HERE.parent,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"{task} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return seconds, proc.stdout + proc.stderr


def env_for(directory: Path, state: sandbox.SandboxState, state_dir: Path) -> dict[str, str]:
    return {
        "INVOKE_BOOTSTRAP_KUBECONFIG": state.kubeconfig,
        "INVOKE_BOOTSTRAP_VAULT_ADDRS": ",".join(state.bao_addrs),
        "INVOKE_BOOTSTRAP_CUSTODY_FILE": str(directory / "custody" / "vault-init.json"),
        "INVOKE_BOOTSTRAP_SANDBOX_DIR": str(directory),
        "INVOKE_BOOTSTRAP_STATE_DIR": str(state_dir),
        "INVOKE_BOOTSTRAP_WAIT_TIMEOUT": "900",
        "INVOKE_BOOTSTRAP_SYNC_ENGINE": state.sync_engine,
    }


def one(n: int, ha: bool, tmp: Path, operator: sandbox.OperatorOptions) -> dict[str, Any]:
    catalog = tmp / "catalog.yaml"
    catalog.write_text(
        f"name: dr{n}\n" + catalog_text(n).replace("null}", "{generate: {length: 24}}}"),
        encoding="utf-8",
    )
    a_dir = tmp / "a"
    a = sandbox.up(a_dir, TOOLS_DIR, ha=False, timeout=120, operator=operator)
    try:
        env = env_for(a_dir, a, tmp / "a-state")
        bootstrap_s, _ = cli("bootstrap", env, "--catalog", str(catalog))
        snap = tmp / "offsite" / "vault.snap"
        snap.parent.mkdir()
        snapshot_s, _ = cli("dr.snapshot", env, "--catalog", str(catalog), "--out", str(snap))
        shutil.copytree(a_dir / "custody", tmp / "offsite" / "custody")
    finally:
        sandbox.down(a_dir)
    b_dir = tmp / "b"
    b = sandbox.up(b_dir, TOOLS_DIR, ha=ha, timeout=120, operator=operator)
    try:
        env = env_for(b_dir, b, tmp / "b-state")
        report = tmp / "restore.json"
        restore_s, _ = cli(
            "dr.restore",
            env,
            "--catalog",
            str(catalog),
            "--snapshot",
            str(snap),
            "--keys",
            str(tmp / "offsite" / "custody" / "vault-init.json"),
            "--report",
            str(report),
        )
        phases = {p["name"]: p for p in json.loads(report.read_text())["phases"]}
        print(f"... limit loops: {n} services", file=sys.stderr, flush=True)
        limits = measure_limits(Kube(b.kubeconfig), b, b_dir, n)
    finally:
        sandbox.down(b_dir)
    populate = phases["populate"]
    return {
        "services": n,
        "secrets": 5 * n,
        "snapshot_bytes": snap.stat().st_size,
        "bootstrap_a": bootstrap_s,
        "snapshot": snapshot_s,
        "restore": restore_s,
        "phases": {name: phases[name]["seconds"] for name in (*PHASES, "verify")},
        "populate_writes": sum(a["verb"] != "check" for a in populate["actions"]),
        "limits": limits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--ha", action="store_true", help="restore into three OpenBao nodes")
    parser.add_argument("--operator", default=versions.VSO, help="the sandboxes' operator")
    parser.add_argument("--qps", type=float, default=500.0, help="1.4.1's --kube-client-qps")
    parser.add_argument("--burst", type=int, default=1000, help="1.4.1's --kube-client-burst")
    args = parser.parse_args()
    operator = sandbox.OperatorOptions(args.operator, args.qps, args.burst)
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"dr-bench-{n}-") as tmp:
            print(f"... {n} services", file=sys.stderr, flush=True)
            rows.append(one(n, args.ha, Path(tmp), operator))
    cores = os.cpu_count()
    print(
        f"\ndr.restore from a snapshot file to every Secret synced ({cores} cores"
        f"{', 3 OpenBao nodes in B' if args.ha else ', 1 OpenBao node'}; "
        f"VSO {operator.describe()})\n"
    )
    head = [
        "services",
        "Secrets",
        "snapshot KiB",
        "A bootstrap s",
        "dr.snapshot s",
        "dr.restore s",
        *(f"{p} s" for p in (*PHASES, "verify")),
        "populate writes",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(" --- " for _ in head) + "|")
    for r in rows:
        cells = [
            str(r["services"]),
            str(r["secrets"]),
            f"{r['snapshot_bytes'] / 1024:.0f}",
            f"{r['bootstrap_a']:.1f}",
            f"{r['snapshot']:.1f}",
            f"{r['restore']:.1f}",
            *(f"{r['phases'][p]:.1f}" for p in (*PHASES, "verify")),
            str(r["populate_writes"]),
        ]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nlimit lines: the same work from a bare loop ({THREADS} requests at once, "
        "benchmarks/limits.py) on B after the restore\n"
    )
    print("| services | phase | limit: what | count | limit s | phase s | x limit |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        for phase, (what, count) in LIMITS.items():
            limit, took = r["limits"][phase], r["phases"][phase]
            print(
                f"| {r['services']} | {phase} | {what} | {count(r['services'])} | "
                f"{limit:.2f} | {took:.2f} | {took / limit if limit else 0.0:.1f}x |"
            )


if __name__ == "__main__":
    main()
