"""Task entry points. Thin: parse flags, call the library, print.

Every configuration key is declared in ``ns.configure`` below, so ``invoke.yaml`` and
``INVOKE_BOOTSTRAP_*`` environment variables can override it. Run ``invoke --list``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke import Collection, Context, Exit, task
from rich.console import Console
from rich.table import Table

from bootstrap import pipeline, tools
from bootstrap.catalog import Catalog, load_catalog
from bootstrap.check import rendered_from_catalog, rendered_from_dir, run_check
from bootstrap.errors import BootstrapError, CheckFailed
from bootstrap.output import write_tree
from bootstrap.phases import registered
from bootstrap.render import render_tree
from bootstrap.settings import Settings

DEFAULTS: dict[str, Any] = {
    "bootstrap": {
        "catalog": "catalog.yaml",
        "state_dir": ".bootstrap",
        "tools_dir": str(Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"),
        "sandbox_dir": ".sandbox",
        "terraform_binary": "tofu",
        "wait_timeout": 120,
        "debug": False,
    }
}

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def settings(c: Context, catalog: str | None = None) -> Settings:
    b = c.config.bootstrap
    return Settings(
        catalog=Path(catalog or b.catalog),
        state_dir=Path(b.state_dir),
        tools_dir=Path(os.path.expanduser(b.tools_dir)),
        sandbox_dir=Path(b.sandbox_dir),
        terraform_binary=b.terraform_binary,
        wait_timeout=float(b.wait_timeout),
    )


def friendly(fn: F) -> F:
    """Turn product errors into a clean message and exit code (traceback only with debug)."""

    @functools.wraps(fn)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        try:
            return fn(c, *args, **kwargs)
        except BootstrapError as exc:
            if c.config.bootstrap.debug:
                raise
            raise Exit(f"error: {exc}", code=exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _catalog(c: Context, path: str | None) -> tuple[Settings, Catalog]:
    s = settings(c, path)
    return s, load_catalog(s.catalog)


# -- top-level tasks --------------------------------------------------------------------


@task(
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "out": "directory to (re)write: vault/policies, vault/roles, manifests/<ns>",
    }
)
@friendly
def render(c, out="rendered", catalog=None):  # type: ignore[no-untyped-def]
    """Render policies, roles, operator manifests and Terraform inputs for GitOps review."""
    _, cat = _catalog(c, catalog)
    files = render_tree(cat)
    write_tree(Path(out), files)
    console.print(
        f"wrote {len(files)} files to {out}/ "
        f"({len(cat.services)} services, {len(cat.namespaces)} namespaces)"
    )


@task(
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "rendered": "check a directory written by 'invoke render' instead of the catalog",
    }
)
@friendly
def check(c, catalog=None, rendered=None):  # type: ignore[no-untyped-def]
    """Prove every VaultStaticSecret is readable under its role and no service reads another's."""
    if rendered:
        result = run_check(rendered_from_dir(Path(rendered)))
        source = rendered
    else:
        s, cat = _catalog(c, catalog)
        result = run_check(rendered_from_catalog(cat))
        source = str(s.catalog)
    if not result.ok:
        raise CheckFailed(result.findings)
    console.print(
        f"check passed for {source}: {result.static_secrets} VaultStaticSecrets readable "
        f"under their roles, {result.roles} roles, {result.pairs} service pairs isolated"
    )


def _phase_flags(only: list[str], start: str | None, skip: list[str]) -> list[str]:
    names = [p.name for p in registered()]
    return pipeline.select(names, only, start, skip)


def _print_results(results: list[pipeline.PhaseResult], dry_run: bool) -> None:
    table = Table(title="plan" if dry_run else "bootstrap")
    for col in ("phase", "status", "action", "target", "reason", "seconds"):
        table.add_column(col)
    for r in results:
        if not r.actions:
            table.add_row(r.name, r.status, "", "", r.error or "", f"{r.seconds:.2f}")
        for i, a in enumerate(r.actions):
            table.add_row(
                r.name if i == 0 else "",
                r.status if i == 0 else "",
                a.verb,
                a.target,
                a.reason,
                f"{r.seconds:.2f}" if i == 0 else "",
            )
    console.print(table)


def _run_pipeline(
    c: Context,
    catalog: str | None,
    only: list[str],
    start: str | None,
    skip: list[str],
    dry_run: bool,
    report: str | None,
) -> None:
    s, cat = _catalog(c, catalog)
    selected = _phase_flags(only, start, skip)
    ctx = pipeline.RunContext(settings=s, catalog=cat, dry_run=dry_run)
    results = pipeline.run(
        registered(), ctx, selected, on_event=lambda ph, msg: err.print(f"[bold]{ph}[/]: {msg}")
    )
    _print_results(results, dry_run)
    rep = pipeline.report(results)
    path = (
        Path(report)
        if report
        else s.state_dir / "reports" / ("plan.json" if dry_run else "bootstrap.json")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    err.print(f"report: {path}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BootstrapError(f"phase {failed[0].name} failed: {failed[0].error}")


_PHASE_HELP = {
    "catalog": "service catalog (default from invoke.yaml)",
    "only": "run only this phase (repeatable)",
    "start": "start from this phase",
    "skip": "skip this phase (repeatable)",
    "report": "write the JSON report here (default .bootstrap/reports/)",
}


@task(iterable=["only", "skip"], help=_PHASE_HELP)
@friendly
def bootstrap(c, catalog=None, only=None, start=None, skip=None, report=None):  # type: ignore[no-untyped-def]
    """Run the bootstrap phases in order (each idempotent and safe to re-run)."""
    _run_pipeline(c, catalog, only or [], start, skip or [], dry_run=False, report=report)


@task(iterable=["only", "skip"], help=_PHASE_HELP)
@friendly
def plan(c, catalog=None, only=None, start=None, skip=None, report=None):  # type: ignore[no-untyped-def]
    """Show what every phase would change, without changing anything."""
    _run_pipeline(c, catalog, only or [], start, skip or [], dry_run=True, report=report)


# -- catalog ----------------------------------------------------------------------------


@task(help={"catalog": "service catalog (default from invoke.yaml)"})
@friendly
def validate(c, catalog=None):  # type: ignore[no-untyped-def]
    """Validate the catalog and summarise it."""
    s, cat = _catalog(c, catalog)
    table = Table(title=f"{s.catalog}: valid")
    for col in ("service", "namespace", "secrets", "reads", "restart"):
        table.add_column(col)
    for svc in cat.services:
        table.add_row(
            svc.name,
            svc.namespace,
            ", ".join(svc.secrets),
            ", ".join(r.path for r in svc.reads),
            ", ".join(f"{t.kind}/{t.name}" for t in svc.restart),
        )
    console.print(table)


# -- tools ------------------------------------------------------------------------------


@task(iterable=["name"], help={"name": "install only this tool (repeatable)"})
@friendly
def install(c, name=None):  # type: ignore[no-untyped-def]
    """Build or find every external tool at its pinned version (idempotent, cached)."""
    s = settings(c)
    results = tools.install(
        name or None, s.tools_dir, progress=lambda n, m: err.print(f"[bold]{n}[/]: {m}")
    )
    table = Table(title=f"tools ({s.tools_dir})")
    for col in ("tool", "version", "status", "seconds", "path / detail"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.name, r.version, r.status, f"{r.seconds:.1f}", str(r.path) if r.path else r.detail
        )
    console.print(table)


@task(name="list")
@friendly
def list_tools(c):  # type: ignore[no-untyped-def]
    """Show each tool, its pinned version and licence, and where it was found."""
    s = settings(c)
    table = Table(title="tools")
    for col in ("tool", "version", "licence", "found at"):
        table.add_column(col)
    for spec in tools.TOOLS.values():
        path = None if spec.unavailable else tools.find(spec.name, s.tools_dir)
        table.add_row(
            spec.name,
            spec.version,
            spec.licence,
            str(path) if path else (spec.unavailable or "missing"),
        )
    console.print(table)


# -- development ------------------------------------------------------------------------


@task
def lint(c):  # type: ignore[no-untyped-def]
    """ruff (lint and format), mypy on the library, import-linter layer contracts."""
    c.run("ruff check .", pty=False)
    c.run("ruff format --check .", pty=False)
    c.run("mypy", pty=False)
    c.run("lint-imports", pty=False)


@task(help={"pytest_args": "extra arguments for pytest, e.g. '-k catalog -x'"})
def test(c, pytest_args=""):  # type: ignore[no-untyped-def]
    """Everything CI runs: lint, install the tools (cached), then the whole test suite."""
    lint(c)
    install(c)
    c.run(f"pytest {pytest_args}", pty=False)


catalog_ns = Collection("catalog", validate)
tools_ns = Collection("tools", install, list_tools)

ns = Collection(bootstrap, plan, render, check, lint, test, catalog_ns, tools_ns)
ns.configure(DEFAULTS)
