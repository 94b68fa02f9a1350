"""Hunting flakes: run the integration suite N times, each round in a random order of its own
(pytest-randomly's seed), and say per test how often it passed, which seeds it failed with,
and which tests are slowest. ``invoke test --repeat N`` runs it; so does
``python -m tests.flakehunt --repeat N [pytest args]``.

A test that fails once in N is a bug (in the product or in the test): the seed printed
beside it replays the round's order (``pytest -p randomly --randomly-seed=SEED``).
"""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Outcome:
    """One test's results over the rounds."""

    passed: int = 0
    failed_seeds: list[int] = field(default_factory=list)
    skipped: int = 0
    seconds: list[float] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.passed + len(self.failed_seeds)


def read_junit(text: str) -> dict[str, tuple[str, float]]:
    """Test id -> (``passed``, ``failed`` or ``skipped``, seconds) of one junit XML report
    (errors in set-up or tear-down count as failures)."""
    out: dict[str, tuple[str, float]] = {}
    # pytest wrote it, in a folder of our own, a moment ago
    for case in ET.fromstring(text).iter("testcase"):  # noqa: S314
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        seconds = float(case.get("time") or 0.0)
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            state = "failed"
        elif "skipped" in tags:
            state = "skipped"
        else:
            state = "passed"
        # a test that passed and then errored in tear-down appears twice: failed wins
        if out.get(name, ("", 0.0))[0] != "failed":
            out[name] = (state, seconds)
    return out


def merge(rounds: list[tuple[int, dict[str, tuple[str, float]]]]) -> dict[str, Outcome]:
    """Per-test outcomes of several rounds, each (seed, read_junit result)."""
    outcomes: dict[str, Outcome] = defaultdict(Outcome)
    for seed, results in rounds:
        for name, (state, seconds) in results.items():
            o = outcomes[name]
            if state == "passed":
                o.passed += 1
            elif state == "failed":
                o.failed_seeds.append(seed)
            else:
                o.skipped += 1
            if state != "skipped":
                o.seconds.append(seconds)
    return dict(outcomes)


def report(outcomes: dict[str, Outcome], rounds: int, slowest: int = 15) -> list[str]:
    lines: list[str] = []
    flaky = {n: o for n, o in outcomes.items() if o.failed_seeds}
    lines.append(f"{len(outcomes)} tests over {rounds} round(s): {len(flaky)} failed at least once")
    if flaky:
        lines.append("")
        lines.append(f"{'passed':>8}  {'failed with seed(s)':<28}  test")
        for name, o in sorted(flaky.items()):
            seeds = ", ".join(str(s) for s in o.failed_seeds)
            lines.append(f"{o.passed:>4}/{o.runs:<3}  {seeds:<28}  {name}")
    timed = [
        (statistics.median(o.seconds), max(o.seconds), n) for n, o in outcomes.items() if o.seconds
    ]
    timed.sort(reverse=True)
    if timed:
        lines.append("")
        lines.append(f"slowest {min(slowest, len(timed))} (median, max seconds):")
        for med, top, name in timed[:slowest]:
            lines.append(f"  {med:7.1f} {top:7.1f}  {name}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--suite", default="tests/integration", help="what to run")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rounds: list[tuple[int, dict[str, tuple[str, float]]]] = []
    with tempfile.TemporaryDirectory(prefix="flakehunt-") as tmp:
        for i in range(1, args.repeat + 1):
            seed = random.randrange(1, 2**31)
            xml = Path(tmp) / f"round-{i}.xml"
            cmd = [
                sys.executable, "-m", "pytest", args.suite, "-q", "-p", "randomly",
                f"--randomly-seed={seed}", f"--junitxml={xml}",
                *(["-n", str(args.workers), "--dist", "loadfile"] if args.workers > 0 else []),
                *args.pytest_args,
            ]  # fmt: skip
            print(f"round {i}/{args.repeat}, seed {seed}: {shlex.join(cmd[2:])}", flush=True)
            started = time.monotonic()
            code = subprocess.call(cmd)
            took = time.monotonic() - started
            if not xml.is_file():
                print(f"round {i}: pytest exited {code} without a report", file=sys.stderr)
                return 2
            results = read_junit(xml.read_text())
            failed = sum(1 for s, _ in results.values() if s == "failed")
            print(f"round {i}: exit {code}, {len(results)} tests, {failed} failed, {took:.0f}s")
            rounds.append((seed, results))
    outcomes = merge(rounds)
    print("\n".join(report(outcomes, len(rounds))))
    return 1 if any(o.failed_seeds for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
