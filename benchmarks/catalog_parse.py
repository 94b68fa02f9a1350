"""Benchmark catalog loading on large and hostile input (no cluster needed).

Times ``load_catalog`` plus the settings check (what every task does before anything else):
  - a generated catalog just under the 1 MiB cap (valid, many services),
  - the same shape over the cap (refused before parsing),
  - every file of the bad-input corpus (tests/corpus/bad), slowest first.

    uv run python benchmarks/catalog_parse.py [--top 10]

Prints a table; writes only to a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootstrap.core.errors import CatalogError
from bootstrap.model.catalog import MAX_CATALOG_BYTES, load_catalog
from bootstrap.model.reserved import check_reserved
from bootstrap.model.settings import Settings

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "bad"
SERVICE = (
    "  - name: service-{0}\n    namespace: ns-{1}\n    secrets:\n      config:\n"
    "        keys:\n          password: {{generate: {{length: 32}}}}\n"
    "          level: {{env: LEVEL_{0}}}\n    reads: [shared/dns]\n"
)
HEAD = "shared:\n  dns:\n    keys:\n      token: {env: DNS_TOKEN}\nservices:\n"


def generated(limit: int) -> str:
    parts, size, i = [HEAD], len(HEAD), 0
    while True:
        part = SERVICE.format(i, i)
        if size + len(part) > limit:
            return "".join(parts)
        parts.append(part)
        size += len(part)
        i += 1


def timed(path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        check_reserved(load_catalog(path), Settings(catalog=path))
        outcome = "valid"
    except CatalogError as exc:
        outcome = f"refused ({len(exc.problems)} problem(s))"
    return time.perf_counter() - started, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=10, help="corpus files to list")
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        under = Path(tmp) / "just-under-1MiB.yaml"
        under.write_text(generated(MAX_CATALOG_BYTES), encoding="utf-8")
        over = Path(tmp) / "2MiB.yaml"
        over.write_text(generated(2 * MAX_CATALOG_BYTES), encoding="utf-8")
        for path in (under, over):
            seconds, outcome = timed(path)
            rows.append((f"{path.name} ({path.stat().st_size} bytes)", seconds, outcome))
    corpus = [(p.name, *timed(p)) for p in sorted(CORPUS.glob("*.yaml"))]
    corpus.sort(key=lambda r: r[1], reverse=True)
    width = max(len(r[0]) for r in rows + corpus)
    print(f"{'catalog':<{width}}  {'seconds':>8}  outcome")
    for name, seconds, outcome in rows + corpus[: args.top]:
        print(f"{name:<{width}}  {seconds:8.3f}  {outcome}")
    total = sum(r[1] for r in corpus)
    print(f"{len(corpus)} corpus files: {total:.3f} s in all, slowest {corpus[0][1]:.3f} s")


if __name__ == "__main__":
    main()
