"""Benchmark validation and the static check on the largest catalogs the 1 MiB cap admits
(issue 23, finding 12: each within 2 s on 2 cores).

Shapes, written in flow style so that they fit under the cap:
  - ``wide``: 10,000 services, each in its own namespace, each with one secret and one of ten shared
    reads;
  - ``deep``: one service reading 5,000 shared secrets.

For each, times (seconds of wall clock, and of CPU: on a busy machine the CPU time is the
figure that compares):
  - ``load``: loading and validating the file, and the settings check (``load_catalog``,
    ``check_reserved``), in this process;
  - ``check``: the static check in this process (``run_check(rendered_from_catalog(...))``);
  - ``invoke catalog.validate`` and ``invoke check``: the whole commands, as a user runs
    them (a Python process each: its start-up and imports included).

    uv run python benchmarks/catalog_scale.py [--repeat 3]

Prints a table (best of ``--repeat`` runs); writes only to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.model.catalog import MAX_CATALOG_BYTES, gc_paused, load_catalog
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.reserved import check_reserved
from bootstrap.model.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def wide(n: int = 10_000) -> str:
    shared = "".join(f"  s{i}: {{keys: {{k: null}}}}\n" for i in range(10))
    services = "".join(
        f"- {{name: s{i}, namespace: n{i}, secrets: {{c: {{keys: {{a: null}}}}}}, "
        f"reads: [shared/s{i % 10}]}}\n"
        for i in range(n)
    )
    return f"shared:\n{shared}services:\n{services}"


def deep(n: int = 5_000) -> str:
    shared = "".join(f"  r{i}: {{keys: {{k: null}}}}\n" for i in range(n))
    reads = ",".join(f"shared/r{i}" for i in range(n))
    return f"shared:\n{shared}services:\n- {{name: one, namespace: one, reads: [{reads}]}}\n"


def cpu() -> float:
    """CPU seconds (user and system) of this process and its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def best(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """The best wall-clock and the best CPU seconds of ``repeat`` runs of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeat):
        started, used = time.perf_counter(), cpu()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu() - used)
    return min(walls), min(cpus)


def cli(*argv: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"invoke {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")


def measure(path: Path, repeat: int) -> list[tuple[float, float]]:
    def load() -> None:
        check_reserved(load_catalog(path), Settings(catalog=path))

    catalog = load_catalog(path)

    def check() -> None:
        with gc_paused():  # as 'invoke check' runs it
            result = run_check(rendered_from_catalog(catalog))
        assert result.ok, result.findings[:3]

    return [
        best(load, repeat),
        best(check, repeat),
        best(lambda: cli("catalog.validate", "--catalog", str(path)), repeat),
        best(lambda: cli("check", "--catalog", str(path)), repeat),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in (("wide: 10,000 services", wide()), ("deep: 5,000 reads", deep())):
            size = len(text.encode())
            assert size <= MAX_CATALOG_BYTES, (name, size)
            path = Path(tmp) / "catalog.yaml"
            path.write_text(text, encoding="utf-8")
            rows.append((name, size, measure(path, args.repeat)))
            print(f"measured {name}", file=sys.stderr)
    print(
        f"catalog validation and static check at scale ({os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}; best of {args.repeat}); seconds as wall clock / CPU\n"
    )
    print("| catalog | bytes | load | check | invoke catalog.validate | invoke check |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, times in rows:
        cells = " | ".join(f"{wall:.2f} / {used:.2f}" for wall, used in times)
        print(f"| {name} | {size} | {cells} |")


if __name__ == "__main__":
    main()
