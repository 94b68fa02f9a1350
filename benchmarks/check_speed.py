"""Benchmark the static check on generated catalogs.

For each size N (services with three secrets and two shared reads each, in 20 namespaces,
the shape of benchmarks/vault_config.py), times:
  - loading and validating the catalog file,
  - the check itself (what vault-config would write, the operator resources, every finding),
  - the whole command, 'invoke check --catalog FILE', as a user runs it.

    uv run python benchmarks/check_speed.py --sizes 500,1000,2000

Prints a table; writes only to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import catalog_text
from bootstrap.model.catalog import load_catalog
from bootstrap.model.check import rendered_from_catalog, run_check

ROOT = Path(__file__).resolve().parent.parent


def measure(n: int, work: Path) -> tuple[float, float, float, int, int]:
    path = work / f"catalog-{n}.yaml"
    path.write_text(catalog_text(n), encoding="utf-8")
    started = time.perf_counter()
    catalog = load_catalog(path)
    loaded = time.perf_counter()
    result = run_check(rendered_from_catalog(catalog))
    checked = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "check", "--catalog", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    command = time.perf_counter() - checked
    if proc.returncode != 0:
        raise SystemExit(f"invoke check failed on {n} services:\n{proc.stderr[-2000:]}")
    return loaded - started, checked - loaded, command, len(result.findings), result.pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="500,1000,2000", help="comma-separated service counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            rows.append((n, *measure(n, Path(tmp))))
            print(f"measured {n} services", file=sys.stderr)
    print(f"static check on generated catalogs ({os.cpu_count()} cores)\n")
    print("| services | load catalog (s) | check (s) | invoke check (s) | findings | pairs |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, load, check, command, findings, pairs in rows:
        print(f"| {n} | {load:.2f} | {check:.2f} | {command:.2f} | {findings} | {pairs} |")


if __name__ == "__main__":
    main()
