"""What every task shares: the consoles, settings from invoke's configuration (with the
source of each key), product errors as exit codes, the catalog and the target."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TextIO, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit, UnexpectedExit
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bootstrap.core.errors import BootstrapError
from bootstrap.model.actions import printed
from bootstrap.model.catalog import Catalog, load_catalog
from bootstrap.model.reserved import argv_text, check_reserved, command_sources
from bootstrap.model.settings import Settings

if TYPE_CHECKING:
    from bootstrap.clients.vault import Api
    from bootstrap.phases.pipeline import PhaseResult
    from bootstrap.runtime.target import Target

P = ParamSpec("P")
R = TypeVar("R")
#: Exit code of an unexpected exception (EX_SOFTWARE).
CRASH_EXIT = 70
#: Every configuration key, with its default, taken from the typed Settings (one source).
DEFAULTS: dict[str, Any] = {"bootstrap": {**Settings.config_defaults(), "debug": False}}


def make_console(stream: TextIO) -> Console:
    """A terminal gets rich's own width; a pipe or CI log gets whole lines (no table cut to
    80 columns)."""
    return Console(file=stream, width=None if stream.isatty() else 400)


console = make_console(sys.stdout)
err = make_console(sys.stderr)


def e(value: object) -> str:
    """Untrusted text (names, paths, messages from the catalog, Vault or Kubernetes) made
    safe for rich: printed literally, never read as markup."""
    return escape(str(value))


def say(prefix: str) -> Callable[[str], None]:
    """A progress line on standard error, ``prefix: message``."""
    return lambda m: err.print(f"[bold]{e(prefix)}[/]: {e(m)}", highlight=False)


def table(title: str, columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    """Print a table whose cells are already escaped; long cells fold."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*row)
    console.print(t)


# -- settings from invoke's configuration -----------------------------------------------------


def settings(c: Context, catalog: str | None = None, **overrides: Any) -> Settings:
    """Typed settings from the invoke configuration (invoke.yaml, INVOKE_BOOTSTRAP_*), with
    task flags (``overrides``) winning; a bad or unknown key is refused naming its source."""
    return Settings.from_config(
        c.config.bootstrap,
        sources=sources(c.config),
        known=frozenset({"debug"}),
        environ=os.environ,
        catalog=catalog or None,
        **overrides,
    )


def sources(cfg: Any) -> dict[str, str]:
    """Where each ``bootstrap`` key was last set, in invoke's order of precedence: its
    system, user and project files, ``INVOKE_BOOTSTRAP_*``, then a runtime file (-f)."""
    layers = [
        ("_system", "_system_path"),
        ("_user", "_user_path"),
        ("_project", "_project_path"),
        ("_env", None),
        ("_runtime", "_runtime_path"),
    ]
    out: dict[str, str] = {}
    for layer, path in layers:
        section: Mapping[str, Any] = (getattr(cfg, layer, None) or {}).get("bootstrap") or {}
        for key in section:
            out[key] = (
                f"environment variable INVOKE_BOOTSTRAP_{str(key).upper()}"
                if path is None
                else f"file {getattr(cfg, path, None) or 'invoke.yaml'}"
            )
    return out


def friendly(fn: Callable[Concatenate[Context, P], R]) -> Callable[Concatenate[Context, P], R]:
    """Turn product errors into a clean message and exit code (traceback only with debug)."""

    @functools.wraps(fn)
    def wrapper(c: Context, /, *args: P.args, **kwargs: P.kwargs) -> R:
        logging.basicConfig(
            level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        try:
            return fn(c, *args, **kwargs)
        except BootstrapError as exc:
            if c.config.bootstrap.debug:
                raise
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except (Exit, UnexpectedExit):  # invoke's own: a command that failed said so itself
            raise
        except Exception as exc:  # a bug: its message may hold anything, so only its type
            if c.config.bootstrap.debug:
                raise
            raise Exit(
                f"error: unexpected {type(exc).__name__} (a bug; INVOKE_BOOTSTRAP_DEBUG=1 "
                "shows the traceback)",
                code=CRASH_EXIT,
            ) from None

    return wrapper


# -- the catalog and the target ---------------------------------------------------------------


def load(s: Settings) -> Catalog:
    """The validated catalog, also checked against the settings (reserved names and places,
    file sources' folders): a CatalogError, exit 2, otherwise."""
    cat = load_catalog(s.catalog)
    check_reserved(cat, s)
    return cat


def on_cluster(s: Settings) -> tuple[Catalog, Target, Api]:
    """The catalog, the configured cluster (or a running sandbox; never starts one) and a
    Vault client on it with the token the credentials module finds."""
    from bootstrap.runtime import target as target_mod
    from bootstrap.runtime.credentials import api_for_target

    cat = load(s)
    t = target_mod.resolve(s, start_sandbox=False)
    return cat, t, api_for_target(t)


# -- printing results -------------------------------------------------------------------------


def print_commands(cat: Catalog) -> None:
    """Every command the catalog's sources would run, and the key each feeds (issue 23,
    finding 1): what a reviewer must see before allowing them. Never a value."""
    commands = command_sources(cat)
    if commands:
        console.print(
            f"commands the catalog runs (setting catalog_commands: allow; populate runs each "
            f"for a key without a real value in Vault): {len(commands)}",
            highlight=False,
        )
        lines = [f"  secret {e(p)} key {e(k)}: {e(argv_text(a))}" for p, k, a in commands]
        console.print("\n".join(lines), highlight=False)


def print_results(results: list[PhaseResult], dry_run: bool, title: str = "bootstrap") -> None:
    t = Table(title="plan" if dry_run else title)
    for col in ("phase", "status", "changes", "seconds"):
        t.add_column(col)
    for r in results:
        changes = sum(a.changes for a in r.actions)
        t.add_row(e(r.name), e(r.status), str(changes), f"{r.seconds:.2f}")
    console.print(t)
    for r in results:
        if r.actions:
            console.print(f"[bold]{e(r.name)}[/]")
        lines = [f"  {v:7} {e(t_)}: {e(why)}" for v, t_, why in printed(r.actions)]
        if lines:
            console.print("\n".join(lines), highlight=False)
        if r.error:
            console.print(f"[bold]{e(r.name)}[/] failed: {e(r.error)}", highlight=False)


def say_actions(title: str, actions: Iterable[Any]) -> None:
    console.print(f"[bold]{e(title)}[/]")
    for a in actions:
        console.print(f"  {a.verb:7} {e(a.target)}: {e(a.reason)}", highlight=False)
