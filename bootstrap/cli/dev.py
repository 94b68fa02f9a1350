"""The development tasks: lint, docs, test. Each runs its tools through ``run`` (invoke's
``Context.run`` in tasks.py), so their output streams into the terminal and CI's log as it
comes, and a failing tool ends the task with its exit code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bootstrap.cli.common import CRASH_EXIT, console, e, err
from bootstrap.core.errors import BootstrapError, UsageError

Run = Callable[[str], object]

#: The fast tier's one end-to-end test: a whole bootstrap through the CLI on the current
#: operator, exiting only once every Secret is synced.
FAST_END_TO_END = (
    "tests/integration/test_operator_sync.py::"
    "test_first_bootstrap_exits_only_once_every_secret_is_synced[vso1.4.1]"
)


def lint(run: Run, collection: Any) -> None:
    run("ruff check .")
    run("ruff format --check .")
    run("mypy")
    run("lint-imports")
    docs(run, collection, check=True, out="docs/_build/html")


def docs(run: Run, collection: Any, check: bool, out: str) -> None:
    from bootstrap.tooling import docgen

    stale = docgen.write_pages(Path("docs"), docgen.pages(collection, CRASH_EXIT), check=check)
    if stale and check:
        raise BootstrapError(
            "generated docs differ from the code: "
            + ", ".join(f"docs/{p}" for p in stale)
            + "; run 'invoke docs' and commit them"
        )
    for rel in stale:
        console.print(f"docs: wrote docs/{e(rel)}")
    run(f"sphinx-build -q -W --keep-going -n -b html -d docs/_build/doctrees docs {out}")
    console.print(f"docs: built {e(out)}/index.html")


def test(
    run: Run,
    collection: Any,
    install: Callable[[bool], None],
    *,
    pytest_args: str,
    workers: int,
    fast: bool,
    repeat: int,
    drills: bool,
) -> None:
    """Lint, then the tier asked for; ``install(everything)`` builds the tools it needs."""
    from bootstrap.tooling import tools

    if sum(map(bool, (fast, repeat, drills))) > 1:
        raise UsageError("--fast, --repeat and --drills are different runs; pick one")
    lint(run, collection)
    if fast:
        run(f"pytest -q -m 'not integration' {pytest_args}")
        install(False)  # the sandbox without a node: what bootstrap needs
        run(f"pytest -q -p no:randomly {FAST_END_TO_END} {pytest_args}")
        return
    tools.install_debian_packages(lambda m: err.print(f"[bold]test[/]: {e(m)}"))
    install(True)
    if drills:  # one at a time: a drill's hog must not share the machine with another test
        run(f"pytest -q -p no:randomly -m drill {pytest_args}")
        return
    if repeat:
        run(f"python -m tests.flakehunt --repeat {repeat} --workers {workers} -- {pytest_args}")
        return
    # whole files per worker (--dist loadfile): a file's module fixtures are made once
    parallel = f"-n {workers} --dist loadfile " if workers > 0 else ""
    # the slowest tests, in CI's log: what keeps the warm run within its 15 minutes
    run(f"pytest {parallel}--durations=15 {pytest_args}")
