"""Task entry points. Thin: parse flags, call the library, print.

Every configuration key is declared in ``ns.configure`` below, so ``invoke.yaml`` and
``INVOKE_BOOTSTRAP_*`` environment variables can override it. Run ``invoke --list``.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke import Collection, Context, Exit, Task, task
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bootstrap.core.errors import BootstrapError, CheckFailed
from bootstrap.core.output import write_tree
from bootstrap.model.actions import printed
from bootstrap.model.catalog import Catalog, load_catalog
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.render import render_tree
from bootstrap.model.reserved import argv_text, check_reserved, command_sources
from bootstrap.model.settings import Settings

if TYPE_CHECKING:
    from bootstrap.phases import pipeline
    from bootstrap.runtime.target import Target

# The phases, the sandbox and the tool installer (with the Kubernetes, Vault and Terraform
# clients they import) are imported by the tasks that use them, so that 'check', 'render'
# and 'catalog.validate' start quickly.


#: Every configuration key, with its default, taken from the typed Settings (one source).
DEFAULTS: dict[str, Any] = {"bootstrap": {**Settings.config_defaults(), "debug": False}}


def _console(stream: Any) -> Console:
    """A terminal gets rich's own width; a pipe or CI log gets whole lines (no table cut to
    80 columns)."""
    return Console(file=stream, width=None if stream.isatty() else 400)


console = _console(sys.stdout)
err = _console(sys.stderr)
F = TypeVar("F", bound=Callable[..., Any])
#: Exit code of an unexpected exception (EX_SOFTWARE).
CRASH_EXIT = 70


def _e(value: object) -> str:
    """Untrusted text (names, paths, messages from the catalog, Vault or Kubernetes) made
    safe for rich: printed literally, never read as markup."""
    return escape(str(value))


def settings(c: Context, catalog: str | None = None, **overrides: Any) -> Settings:
    """Typed settings from the invoke configuration (invoke.yaml, INVOKE_BOOTSTRAP_*), with
    task flags (``overrides``) winning; a bad or unknown key is refused naming its source."""
    return Settings.from_config(
        c.config.bootstrap,
        sources=_sources(c),
        known=frozenset({"debug"}),
        catalog=catalog or None,
        **overrides,
    )


def _sources(c: Context) -> dict[str, str]:
    """Where each ``bootstrap`` key was last set, in invoke's order of precedence: its
    system, user and project files, ``INVOKE_BOOTSTRAP_*``, then a runtime file (-f)."""
    cfg = c.config
    layers = [
        ("_system", "_system_path"),
        ("_user", "_user_path"),
        ("_project", "_project_path"),
        ("_env", None),
        ("_runtime", "_runtime_path"),
    ]
    out: dict[str, str] = {}
    for layer, path in layers:
        section = (getattr(cfg, layer, None) or {}).get("bootstrap") or {}
        for key in section:
            out[key] = (
                f"environment variable INVOKE_BOOTSTRAP_{str(key).upper()}"
                if path is None
                else f"file {getattr(cfg, path, None) or 'invoke.yaml'}"
            )
    return out


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
        except Exception as exc:  # a bug: its message may hold anything, so only its type
            if c.config.bootstrap.debug:
                raise
            raise Exit(
                f"error: unexpected {type(exc).__name__} (a bug; INVOKE_BOOTSTRAP_DEBUG=1 "
                "shows the traceback)",
                code=CRASH_EXIT,
            ) from None

    return wrapper  # type: ignore[return-value]


def _load(s: Settings) -> Catalog:
    """The validated catalog, also checked against the settings (reserved names and places,
    file sources' folders): a CatalogError, exit 2, otherwise."""
    cat = load_catalog(s.catalog)
    check_reserved(cat, s)
    return cat


def _catalog(c: Context, path: str | None) -> tuple[Settings, Catalog]:
    s = settings(c, path)
    return s, _load(s)


def _on_cluster(c: Context, path: str | None) -> tuple[Settings, Catalog, Target, Any]:
    """Settings, catalog, the configured cluster (or a running sandbox; never starts one) and
    a Vault client on it with the token the credentials module finds."""
    from bootstrap.runtime import target as target_mod
    from bootstrap.runtime.credentials import api_for_target

    s, cat = _catalog(c, path)
    t = target_mod.resolve(s, start_sandbox=False)
    return s, cat, t, api_for_target(t)


# -- top-level tasks --------------------------------------------------------------------


@task(
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "out": "directory to (re)write: vault/policies, vault/roles, manifests/<ns>",
        "populate_job": "also write populate-job/: the populate step as a Kubernetes Job, "
        "its Vault policy and role (default: the setting populate_job)",
        "vault_addr": "Vault's address as the Job's pod reaches it (default: the setting "
        "vault_connection_address)",
        "image": "the product's image for the Job (default: the one images.build makes)",
    }
)
@friendly
def render(c, out="rendered", catalog=None, populate_job=False, vault_addr=None, image=None):  # type: ignore[no-untyped-def]
    """Render policies, roles, operator manifests and Terraform inputs for GitOps review."""
    s, cat = _catalog(c, catalog)
    files = render_tree(cat)
    secret_command = None
    if populate_job or s.populate_job:
        from bootstrap.model.populate_job import job_notes

        job_files, secret_command = _populate_job_files(s, cat, vault_addr, image)
        files.update(job_files)
        notes = job_notes(cat)
        if not s.populate_job:
            notes.insert(
                0,
                "vault-config writes the Job's policy and role (populate-job/vault/) only "
                "with the setting populate_job: true",
            )
        for note in notes:
            console.print(f"note (populate Job): {_e(note)}")
    write_tree(Path(out), files)
    console.print(
        f"wrote {len(files)} files to {_e(out)}/ "
        f"({len(cat.services)} services, {len(cat.namespaces)} namespaces)"
    )
    if secret_command:
        console.print(
            "the populate Job reads the files of the catalog's file: sources from a Secret "
            "you make (never in the rendered tree); make it with:",
            highlight=False,
        )
        console.print(f"    {_e(secret_command)}", highlight=False, soft_wrap=True)


def _populate_job_files(
    s: Settings, cat: Catalog, vault_addr: str | None, image: str | None
) -> tuple[dict[str, str], str | None]:
    """populate-job/, and the command that makes the Secret of the files the catalog's
    ``file:`` sources read (issue 23, finding 3: their contents never go into the tree; they
    are not even read here, only found)."""
    from bootstrap.core.errors import UsageError
    from bootstrap.model import populate_job as pj

    options = _populate_job_options(s, vault_addr, image)
    names, problems = pj.catalog_files(cat)
    base = s.catalog.resolve().parent
    paths: dict[str, str] = {}
    size = 0
    for rel in names:
        f = base / rel
        try:
            st = f.stat()
        except OSError as exc:
            problems.append(
                f"file {rel}: cannot find it for the Job's files Secret: {exc.strerror}"
            )
            continue
        if not f.is_file():
            problems.append(f"file {rel}: not a regular file")
            continue
        size += st.st_size
        # as the user will type it: relative to the current folder when below it
        try:
            paths[rel] = str(f.relative_to(Path.cwd().resolve()))
        except ValueError:
            paths[rel] = str(f)
    if size > pj.CONFIGMAP_MAX_BYTES:
        problems.append(
            f"the files total {size} bytes, over a Secret's limit of "
            f"{pj.CONFIGMAP_MAX_BYTES} bytes (1 MiB)"
        )
    if problems:
        raise UsageError(
            "cannot render the populate Job:\n" + "\n".join(f"  {p}" for p in problems)
        )
    try:
        files = pj.render_files(cat, options, s.catalog.read_text(encoding="utf-8"), names)
    except ValueError as exc:
        raise UsageError(f"cannot render the populate Job: {exc}") from None
    argv = pj.files_secret_command(options, paths)
    return files, (pj.shell_line(argv) if argv else None)


def _populate_job_options(s: Settings, vault_addr: str | None, image: str | None) -> Any:
    """The Job's options as render takes them: Vault's address (the flag or the setting
    vault_connection_address) and the product's image (the flag or the one images.build
    makes)."""
    from bootstrap.core.errors import UsageError
    from bootstrap.model import populate_job as pj
    from bootstrap.tooling import images

    addr = vault_addr or s.vault_connection_address
    if not addr:
        raise UsageError(
            "the populate Job needs Vault's address as its pod reaches it: --vault-addr or "
            "the setting vault_connection_address"
        )
    return pj.JobOptions(
        access=pj.PopulateAccess(s.populate_namespace, s.populate_service_account),
        image=image or images.references().bootstrap,
        vault_addr=addr,
        env_secret=s.populate_env_secret,
    )


@task(
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "rendered": "check a directory written by 'invoke render' (maybe edited by hand) "
        "against what render writes for the catalog",
        "vault_addr": "with --rendered: the Vault address the populate Job was rendered with "
        "(default: the setting vault_connection_address)",
        "image": "with --rendered: the image the populate Job was rendered with (default: "
        "the one images.build makes)",
    }
)
@friendly
def check(c, catalog=None, rendered=None, vault_addr=None, image=None):  # type: ignore[no-untyped-def]
    """Prove every VaultStaticSecret is readable under its role and no service reads another's."""
    # one burst of allocations that all live until the process ends: no cyclic collection is
    # worth its scan (the one after a pause scanned every object again: 0.2 s at 10,000
    # services), and at the end they are set aside from the collector for good
    gc.disable()
    try:
        _check(c, catalog, rendered, vault_addr, image)
    finally:
        gc.freeze()
        gc.enable()


def _check(
    c: Context, catalog: str | None, rendered: str | None, vault_addr: str | None, image: str | None
) -> None:
    s, cat = _catalog(c, catalog)
    if rendered:
        from bootstrap.model.check_tree import POPULATE_DIR, Reference, check_tree

        root = Path(rendered)
        expected = render_tree(cat)
        if (root / POPULATE_DIR).exists() or s.populate_job:
            expected.update(_populate_job_files(s, cat, vault_addr, image)[0])
        ref = Reference(expected, s.operator_namespace, s.vault_connection_address)
        result = check_tree(root, ref)
        source = f"{rendered} (against {s.catalog})"
    else:
        result = run_check(rendered_from_catalog(cat))
        source = str(s.catalog)
    if not result.ok:
        raise CheckFailed(result.findings)
    console.print(
        f"check passed for {_e(source)}: {result.static_secrets} VaultStaticSecrets readable "
        f"under their roles, {result.roles} roles, {result.pairs} service pairs isolated"
    )
    if not rendered:
        _print_commands(cat)


def _print_commands(cat: Catalog) -> None:
    """Every command the catalog's sources would run, and the key each feeds (issue 23,
    finding 1): what a reviewer must see before allowing them. Never a value."""
    commands = command_sources(cat)
    if commands:
        console.print(
            f"commands the catalog runs (setting catalog_commands: allow; populate runs each "
            f"for a key without a real value in Vault): {len(commands)}",
            highlight=False,
        )
        lines = [f"  secret {_e(p)} key {_e(k)}: {_e(argv_text(a))}" for p, k, a in commands]
        console.print("\n".join(lines), highlight=False)


def _phase_flags(
    only: list[str], start: str | None, skip: list[str], restore: bool = False
) -> list[str]:
    from bootstrap.phases import pipeline
    from bootstrap.phases.registry import registered

    names = [p.name for p in registered(restore)]
    return pipeline.select(names, only, start, skip)


def _print_results(
    results: list[pipeline.PhaseResult], dry_run: bool, title: str = "bootstrap"
) -> None:
    table = Table(title="plan" if dry_run else title)
    for col in ("phase", "status", "changes", "seconds"):
        table.add_column(col)
    for r in results:
        changes = sum(a.changes for a in r.actions)
        table.add_row(_e(r.name), _e(r.status), str(changes), f"{r.seconds:.2f}")
    console.print(table)
    for r in results:
        if r.actions:
            console.print(f"[bold]{_e(r.name)}[/]")
        lines = [f"  {v:7} {_e(t)}: {_e(why)}" for v, t, why in printed(r.actions)]
        if lines:
            console.print("\n".join(lines), highlight=False)
        if r.error:
            console.print(f"[bold]{_e(r.name)}[/] failed: {_e(r.error)}", highlight=False)


def _run_pipeline(
    c: Context,
    catalog: str | None,
    only: list[str],
    start: str | None,
    skip: list[str],
    dry_run: bool,
    report: str | None,
    prune: bool,
    rotate: bool = False,
    restore: Any = None,
    default_report: str | None = None,
    skip_quiet_check: bool = False,
) -> list[pipeline.PhaseResult]:
    from bootstrap.phases import pipeline
    from bootstrap.phases.registry import run_phases

    s = settings(c, catalog, prune=prune or None, rotate=rotate or None)
    cat = _load(s)
    selected = _phase_flags(only, start, skip, restore=restore is not None)
    ctx = pipeline.RunContext(
        settings=s,
        catalog=cat,
        dry_run=dry_run,
        restore=restore,
        quiet_check=not skip_quiet_check,
    )
    default = default_report or ("plan.json" if dry_run else "bootstrap.json")
    path = Path(report) if report else s.state_dir / "reports" / default
    try:
        with pipeline.reporting(path) as results:
            run_phases(
                ctx,
                selected,
                on_event=lambda ph, msg: err.print(f"[bold]{_e(ph)}[/]: {_e(msg)}"),
                results=results,
            )
    finally:
        err.print(f"report: {_e(path)}")
    _print_results(results, dry_run, "dr.restore" if restore is not None else "bootstrap")
    if dry_run:
        _print_commands(cat)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BootstrapError(f"phase {failed[0].name} failed: {failed[0].error}")
    return list(results)


_PHASE_HELP = {
    "catalog": "service catalog (default from invoke.yaml)",
    "only": "run only this phase (repeatable)",
    "start": "start from this phase",
    "skip": "skip this phase (repeatable)",
    "report": "write the JSON report here (default .bootstrap/reports/)",
    "prune": "also remove managed objects that left the catalog (never unmanaged ones)",
    "rotate": "populate: replace real values from their sources (regenerate generated ones)",
    "skip_quiet_check": "verify: do not watch the restart targets for one refresh period after "
    "a hand-over (the proof that the operator restarts nothing while Vault is unchanged)",
}


def _phase_task(name: str, dry_run: bool, doc: str) -> Task:
    """``bootstrap`` and ``plan``: the same flags, one pipeline; only ``dry_run`` differs."""

    def run(  # type: ignore[no-untyped-def]
        c,
        catalog=None,
        only=None,
        start=None,
        skip=None,
        report=None,
        prune=False,
        rotate=False,
        skip_quiet_check=False,
    ):
        _run_pipeline(
            c,
            catalog,
            only or [],
            start,
            skip or [],
            dry_run,
            report,
            prune,
            rotate,
            skip_quiet_check=skip_quiet_check,
        )

    run.__name__ = run.__qualname__ = name
    run.__doc__ = doc
    return task(name=name, iterable=["only", "skip"], help=_PHASE_HELP)(friendly(run))


bootstrap = _phase_task(
    "bootstrap", False, "Run the bootstrap phases in order (each idempotent and safe to re-run)."
)
plan = _phase_task("plan", True, "Show what every phase would change, without changing anything.")


@task(
    name="status",
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "json": "print JSON instead of a table",
    },
)
@friendly
def status_(c, catalog=None, json_=False):  # type: ignore[no-untyped-def]
    """Per service and secret: Vault version, Secret state, last sync, restart targets."""
    from bootstrap.commands import status as status_mod

    _, cat, t, api = _on_cluster(c, catalog)
    rows = status_mod.collect(cat, t.kube, api)
    if json_:
        console.print_json(json.dumps([r.as_dict() for r in rows]))
        return
    table = Table(title=f"status ({_e(t.description)})")
    for col in (
        "service",
        "namespace/secret",
        "vault path",
        "version",
        "state",
        "last sync",
        "restart targets",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            _e(r.service),
            _e(f"{r.namespace}/{r.secret}"),
            _e(r.vault_path),
            _e(r.vault_version),
            _e(r.state + (f": {r.detail}" if r.detail else "")),
            _e(r.last_sync),
            _e(r.restarts),
        )
    console.print(table)


@task(
    name="rotation",
    help={"secret": "SERVICE/SECRET of the catalog", "catalog": "service catalog"},
)
@friendly
def rotation(c, secret, catalog=None):  # type: ignore[no-untyped-def]
    """Rotate one secret to a sentinel and back; wait for the Secret and restarts each time."""
    from bootstrap.commands.rotation import rotation_test
    from bootstrap.core.waits import WaitSettings

    s, cat, t, api = _on_cluster(c, catalog)
    result = rotation_test(
        cat,
        secret,
        t.kube,
        api,
        WaitSettings(timeout=s.wait_timeout),
        say=lambda m: err.print(f"[bold]rotation[/]: {_e(m)}"),
    )
    console.print(f"rotation test passed for {_e(result['secret'])} ({_e(result['vault_path'])})")
    for target, revisions in result["revisions"].items():
        console.print(f"  {_e(target)}: revisions {_e(' -> '.join(revisions))}", highlight=False)


# -- disaster recovery ------------------------------------------------------------------


@task(
    name="snapshot",
    iterable=["age_recipient"],
    help={
        "out": "the snapshot file to write (mode 0600); its manifest goes to OUT.manifest.json",
        "catalog": "service catalog (its name goes into the manifest)",
        "age_recipient": "encrypt to this age (age1...) or SSH public key (repeatable)",
        "force": "replace OUT if it exists",
        "plan": "say what would be written, change nothing",
    },
)
@friendly
def dr_snapshot(c, out, catalog=None, age_recipient=None, force=False, plan=False):  # type: ignore[no-untyped-def]
    """Take a raft snapshot of the running Vault, with a manifest (never the unseal keys)."""
    from bootstrap.commands import dr
    from bootstrap.runtime import target as target_mod

    s, cat = _catalog(c, catalog)
    t = target_mod.resolve(s, start_sandbox=False)
    p = dr.plan(t, Path(out), list(age_recipient or []), force)
    if plan:
        for line in p.lines():
            console.print(f"  would {_e(line)}", highlight=False)
        return
    m = dr.take(p, t, cat.name, list(age_recipient or []))
    console.print(
        f"wrote {_e(out)} ({m.bytes} bytes, sha256 {m.sha256}, raft index {m.raft_index}"
        + (", age-encrypted" if m.encryption else "")
        + f") and {_e(p.manifest)}",
        highlight=False,
    )
    console.print(
        "keep both off-site, and a copy of the custody record apart from them: dr.restore "
        "needs all three",
        highlight=False,
    )


@task(
    name="restore",
    iterable=["age_identity"],
    help={
        "snapshot": "the snapshot file dr.snapshot wrote (its manifest beside it)",
        "keys": "a copy of the original cluster's custody record (vault-init.json, its "
        "vault-init.admin.json beside it); default: the target's custody already holds it",
        "catalog": "service catalog (default from invoke.yaml)",
        "age_identity": "age identity file for an encrypted snapshot (repeatable)",
        "force": "restore over a Vault holding other data (says what it destroys; its root "
        "token in VAULT_TOKEN), and set aside another init record in custody; never skips a "
        "check of the snapshot, its server kind or version, or the keys",
        "plan": "say what would be restored, replaced and re-pointed; change nothing",
        "report": "write the JSON report here (default .bootstrap/reports/dr-restore.json)",
    },
)
@friendly
def dr_restore(  # type: ignore[no-untyped-def]
    c, snapshot, keys=None, catalog=None, age_identity=None, force=False, plan=False, report=None
):
    """Restore a snapshot onto a new target, open it with the original keys, re-point, re-sync."""
    from dataclasses import replace

    from bootstrap.model.snapshot import RestoreRequest
    from bootstrap.phases.dr_restore import check_keys, check_snapshot

    request = RestoreRequest(
        Path(snapshot),
        Path(keys) if keys else None,
        force,
        tuple(Path(p) for p in age_identity or []),
    )
    # every file is checked before the cluster is touched (even locked); the snapshot's bytes
    # checked here are the bytes restored
    request = replace(request, verified=check_snapshot(request))
    check_keys(request)
    results = _run_pipeline(
        c,
        catalog,
        [],
        None,
        [],
        plan,
        report or None,
        False,
        restore=request,
        default_report="dr-restore-plan.json" if plan else "dr-restore.json",
    )
    problems = [a for r in results for a in r.actions if a.verb == "problem"]
    if problems:  # a plan that cannot be applied as it stands fails
        raise BootstrapError(
            f"the plan has {len(problems)} problem(s): "
            + "; ".join(f"{a.target}: {a.reason}" for a in problems)
        )


# -- migration off secret copiers -------------------------------------------------------


#: The migrate tasks' flags.
_MIGRATE_HELP: dict[str, dict[str, str]] = {
    "discover": {
        "namespace": "search only this namespace (repeatable; default: all but Kubernetes' own)",
        "out": "write a draft catalog fragment here (keys' names only, never values)",
        "catalog": "the catalog the fragment goes into (its services keep their names)",
    },
    "namespace": {
        "ns": "the namespace to move (repeatable)",
        "all": "every namespace of the catalog, one after the other",
        "catalog": "the catalog, with the migrate.discover fragment merged in",
        "force": "replace other real values Vault holds at a mapped path",
        "plan": "show each step per namespace; change nothing",
        "allow_type": "also move Secrets of this non-Opaque type, e.g. kubernetes.io/tls "
        "(repeatable; never kubernetes.io/service-account-token)",
    },
    "rollback": {
        "ns": "the namespace to put back (repeatable)",
        "catalog": "the catalog the migration used",
        "plan": "show what it would put back; change nothing",
    },
}


@task(name="discover", iterable=["namespace"], help=_MIGRATE_HELP["discover"])
@friendly
def migrate_discover(c, namespace=None, out=None, catalog=None):  # type: ignore[no-untyped-def]
    """Find secret-copier Jobs/CronJobs, the Secrets they copied and hand-made Secrets."""
    from bootstrap.commands import migrate
    from bootstrap.model.migration import discover, fragment, paths
    from bootstrap.runtime import target as target_mod

    s = settings(c, catalog)
    cat = _load(s) if s.catalog.exists() else None
    t = target_mod.resolve(s, start_sandbox=False)
    workloads, secrets = migrate.observe(t.kube, list(namespace or []) or None)
    found = discover(workloads, secrets, cat, s.migrate_copier_selectors)
    table = Table(title=f"secret copiers ({_e(t.description)})")
    for col in ("copier", "found by", "reads", "writes into", "suspended"):
        table.add_column(col, overflow="fold")
    for cp in found.copiers:
        table.add_row(
            _e(cp.ref),
            _e(cp.why),
            _e(
                ", ".join(
                    [f"{ns}/{n}" for ns, n in cp.sources]
                    + [f"makes {ns}/{n}" for ns, n in cp.creates]
                )
                or "?"
            ),
            _e(", ".join(cp.targets) or "?"),
            "yes" if cp.workload.suspended else "no",
        )
    console.print(table)
    where = paths(found)
    table = Table(title="Secrets the catalog would own")
    for col in ("namespace/secret", "keys", "found as", "vault path", "problem"):
        table.add_column(col, overflow="fold")
    for cp in found.copies:
        for ns in cp.namespaces:
            origin = "source" if ns == cp.source else f"copy of {cp.source}/{cp.name}"
            problem = "values differ from the source's" if ns in cp.differs else ""
            table.add_row(
                _e(f"{ns}/{cp.name}"),
                _e(", ".join(cp.keys)),
                _e(origin),
                _e(where[(ns, cp.name)]),
                _e(problem),
            )
    for h in found.handmade:
        table.add_row(
            _e(f"{h.namespace}/{h.name}"), _e(", ".join(h.keys)), "by hand", _e(h.path), ""
        )
    for ns_, name, why in found.unmigratable:
        table.add_row(_e(f"{ns_}/{name}"), "", "not migratable", "", _e(why))
    console.print(table)
    if out:
        Path(out).write_text(
            fragment(found, name=cat.name if cat else "migrated"), encoding="utf-8"
        )
        console.print(f"wrote the draft catalog fragment {_e(out)}")
    for cp in found.conflicts:
        err.print(
            f"conflict: {_e(cp.name)} differs between {_e(cp.source)} and "
            f"{_e(', '.join(cp.differs))}: one shared path cannot hold both; settle it first"
        )


def _migration_context(c: Context, catalog: str | None) -> tuple[Settings, Catalog, Any, Any]:
    from bootstrap.runtime import target as target_mod
    from bootstrap.runtime.credentials import api_for_target

    s, cat = _catalog(c, catalog)
    t = target_mod.resolve(s, start_sandbox=False)
    return s, cat, t, api_for_target(t)


def _say_actions(title: str, actions: list[Any]) -> None:
    console.print(f"[bold]{_e(title)}[/]")
    for a in actions:
        console.print(f"  {a.verb:7} {_e(a.target)}: {_e(a.reason)}", highlight=False)


@task(name="namespace", iterable=["ns", "allow_type"], help=_MIGRATE_HELP["namespace"])
@friendly
def migrate_namespace(
    c, ns=None, all_=False, catalog=None, force=False, plan=False, allow_type=None
):  # type: ignore[no-untyped-def]
    """Move namespaces off copiers: back up, values into Vault, operator objects, same bytes."""
    from bootstrap.commands import migrate
    from bootstrap.core.waits import WaitSettings
    from bootstrap.runtime.lock import cluster_lock

    s, cat, t, api = _migration_context(c, catalog)
    namespaces = list(cat.namespaces) if all_ else list(ns or [])
    if not namespaces:
        raise BootstrapError("name a namespace (--ns NS, repeatable) or --all")
    allowed = migrate.allowed_types(allow_type or [])
    with cluster_lock(t.kube, s.lock_namespace):
        # several namespaces are all planned before any moves: one refused, none written
        # (issue 23, finding 2); each is planned again, on what is there, right before it moves
        for name in namespaces if len(namespaces) > 1 else []:
            f = migrate.namespace_facts(
                t.kube, api, cat, name, s.state_dir, s.migrate_copier_selectors
            )
            actions = migrate.plan_namespace(f, cat, force, allowed)
            error = migrate.refused(name, actions)
            if error is not None:
                _say_actions(f"migrate {name} (refused)", actions)
                raise error
        for name in namespaces:
            f = migrate.namespace_facts(
                t.kube, api, cat, name, s.state_dir, s.migrate_copier_selectors
            )
            actions = migrate.plan_namespace(f, cat, force, allowed)
            _say_actions(f"migrate {name}" + (" (plan)" if plan else ""), actions)
            error = migrate.refused(name, actions)
            if error is not None:
                raise error
            if plan:
                continue
            migrate.apply_namespace(
                t.kube, api, cat, f, actions, s.state_dir, WaitSettings(timeout=s.wait_timeout)
            )
            report = migrate.namespace_report(t.kube, cat, f, actions)
            path = s.state_dir / "reports" / f"migrate-{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            moved = ", ".join(m["path"] for m in report["values_moved"]) or "none (there already)"
            copiers = ", ".join(f"{x['copier']} {x['done']}" for x in report["copiers"]) or "none"
            console.print(
                f"{_e(name)}: migrated; values moved: {_e(moved)}; synced by the operator: "
                f"{_e(', '.join(report['secrets_synced']))}; copiers: {_e(copiers)}; left by "
                f"hand: {_e(', '.join(report['left_by_hand']) or 'nothing')}; report {_e(path)}",
                highlight=False,
            )


@task(name="rollback", iterable=["ns"], help=_MIGRATE_HELP["rollback"])
@friendly
def migrate_rollback(c, ns=None, catalog=None, plan=False):  # type: ignore[no-untyped-def]
    """Put migrated namespaces back as they were: Secrets, copiers; remove operator objects."""
    from bootstrap.commands import migrate
    from bootstrap.runtime.lock import cluster_lock

    s, cat, t, _ = _migration_context(c, catalog)
    if not ns:
        raise BootstrapError("name a namespace (--ns NS, repeatable)")
    with cluster_lock(t.kube, s.lock_namespace):
        for name in ns:
            actions = migrate.plan_rollback(t.kube, cat, name, s.state_dir)
            _say_actions(f"rollback {name}" + (" (plan)" if plan else ""), actions)
            if not plan:
                migrate.apply_rollback(t.kube, name, actions, s.state_dir)
                console.print(f"{_e(name)}: rolled back", highlight=False)


# -- catalog ----------------------------------------------------------------------------


#: catalog.validate prints its table for catalogs of at most this many services.
VALIDATE_TABLE_ROWS = 500


@task(help={"catalog": "service catalog (default from invoke.yaml)"})
@friendly
def validate(c, catalog=None):  # type: ignore[no-untyped-def]
    """Validate the catalog and summarise it."""
    s, cat = _catalog(c, catalog)
    if len(cat.services) > VALIDATE_TABLE_ROWS:
        # a table of thousands of rows takes rich seconds to lay out, and nobody reads it
        console.print(
            f"{_e(s.catalog)}: valid: {len(cat.services)} services in {len(cat.namespaces)} "
            f"namespaces, {sum(len(x.secrets) for x in cat.services)} secrets, "
            f"{sum(len(x.reads) for x in cat.services)} reads (no table above "
            f"{VALIDATE_TABLE_ROWS} services)",
            highlight=False,
        )
        return
    table = Table(title=f"{_e(s.catalog)}: valid")
    for col in ("service", "namespace", "secrets", "reads", "restart"):
        table.add_column(col)
    for svc in cat.services:
        table.add_row(
            _e(svc.name),
            _e(svc.namespace),
            _e(", ".join(svc.secrets)),
            _e(", ".join(r.path for r in svc.reads)),
            _e(", ".join(f"{t.kind}/{t.name}" for t in svc.restart)),
        )
    console.print(table)


# -- tools ------------------------------------------------------------------------------


@task(
    iterable=["name"],
    help={
        "name": "install only this tool (repeatable)",
        "node": "also what the node sandbox and cluster.create need: kubelet, kube-scheduler, "
        "kube-proxy, CoreDNS, pause, the Debian packages' programs, and the images",
        "all": "every tool: both operators and the node's, and the images (what the tests use)",
        "peers": "also build the vault-config benchmark's peers (terraform-provider-vault, "
        "bank-vaults) from ../shared/vendor/; minutes the first time, about 1.4 GB of Go modules",
    },
)
@friendly
def install(c, name=None, node=False, all_=False, peers=False):  # type: ignore[no-untyped-def]
    """Build or find the external tools at their pinned versions (idempotent, cached): by
    default what bootstrap and the sandbox without a node need (the operator of
    sandbox_operator_version); --node adds the node's tools and images, --all everything."""
    from bootstrap.tooling import tools, versions

    s = settings(c)
    wanted = name or tools.scope(operator=s.sandbox_operator_version, node=node, everything=all_)
    results = tools.install(
        wanted,
        s.tools_dir,
        progress=lambda n, m: err.print(f"[bold]{_e(n)}[/]: {_e(m)}", highlight=False),
        sources={
            tools.operator_tool(versions.VSO): s.vso_source,
            tools.operator_tool(versions.VSO_V0): s.vso_v0_source,
            "terraform-provider-kubernetes": s.kubernetes_provider_source,
        },
        peers=peers,
    )
    table = Table(title=f"tools ({_e(s.tools_dir)})")
    for col in ("tool", "version", "status", "seconds", "path", "origin"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(
            _e(r.name),
            _e(r.version),
            _e(r.status),
            f"{r.seconds:.1f}",
            _e(r.path or ""),
            _e(r.detail),
        )
    console.print(table)
    if not name and (node or all_):  # the node's images too (seconds when nothing changed)
        _build_images(s)


def _build_images(s: Settings, names: list[str] | None = None) -> list[Any]:
    from bootstrap.tooling import images

    return images.build(
        names,
        s.tools_dir,
        progress=lambda n, m: err.print(f"[bold]image {_e(n)}[/]: {_e(m)}", highlight=False),
    )


@task(
    name="build",
    iterable=["name"],
    help={
        "name": "build only this image (repeatable): openbao, vault-secrets-operator (both "
        "versions) or vault-secrets-operator:1.4.1 / :0.1.0, demo, bootstrap"
    },
)
@friendly
def images_build(c, name=None):  # type: ignore[no-untyped-def]
    """Build the node's container images as OCI archives in the tools cache (each rebuilt
    only when its content changed): openbao, vault-secrets-operator (1.4.1 and 0.1.0), demo,
    bootstrap."""
    from bootstrap.tooling import images

    s = settings(c)
    results = _build_images(s, name or None)
    table = Table(title=f"images ({_e(images.images_dir(s.tools_dir))})")
    for col in ("image", "status", "MB", "seconds", "archive", "licences"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(
            _e(r.ref),
            _e(r.status),
            f"{r.size / 1e6:.1f}",
            f"{r.seconds:.1f}",
            _e(r.path),
            _e(", ".join(sorted(set(images.LICENCES[r.key].values())))),
        )
    console.print(table)


@task(name="list")
@friendly
def list_tools(c):  # type: ignore[no-untyped-def]
    """Show each tool, its pinned version and licence, and where it was found."""
    from bootstrap.tooling import tools

    s = settings(c)
    table = Table(title="tools")
    for col in ("tool", "version", "licence", "found at", "origin"):
        table.add_column(col, overflow="fold")
    for spec in [*tools.TOOLS.values(), *tools.PEERS.values()]:
        path = tools.find(spec.name, s.tools_dir)
        peer = spec.name in tools.PEERS
        table.add_row(
            _e(spec.name) + (" (benchmark peer)" if peer else ""),
            _e(spec.version or (tools.debian_version(spec) if spec.origin == "debian" else "")),
            _e(spec.licence),
            _e(path)
            if path
            else f"missing: run '{tools.DEBIAN_INSTALL}'"
            if spec.origin == "debian"
            else f"missing: run 'invoke tools.install{' --peers' if peer else ''}'",
            _e(tools.origin(spec.name, path, s.tools_dir) if path else spec.source),
        )
    console.print(table)


# -- development ------------------------------------------------------------------------


@task
def lint(c):  # type: ignore[no-untyped-def]
    """ruff (lint and format), mypy on the library, import-linter layer contracts, and the
    documentation: its generated pages equal to the code, the site built without a warning."""
    c.run("ruff check .", pty=False)
    c.run("ruff format --check .", pty=False)
    c.run("mypy", pty=False)
    c.run("lint-imports", pty=False)
    docs(c, check=True)


@task(
    help={
        "check": "do not write the generated pages: fail when one differs from the code",
        "out": "where the site goes",
    }
)
@friendly
def docs(c, check=False, out="docs/_build/html"):  # type: ignore[no-untyped-def]
    """Generate the reference pages (tasks, settings, catalog format, exit codes, the catalog's
    JSON Schema) from the code, then build the documentation site, warnings as errors."""
    from bootstrap.tooling import docgen

    stale = docgen.write_pages(Path("docs"), docgen.pages(ns, CRASH_EXIT), check=check)
    if stale and check:
        raise BootstrapError(
            "generated docs differ from the code: "
            + ", ".join(f"docs/{p}" for p in stale)
            + "; run 'invoke docs' and commit them"
        )
    for rel in stale:
        console.print(f"docs: wrote docs/{_e(rel)}")
    c.run(f"sphinx-build -q -W --keep-going -n -b html docs {out}", pty=False)
    console.print(f"docs: built {_e(out)}/index.html")


#: The fast tier's one end-to-end test: a whole bootstrap through the CLI on the current
#: operator, exiting only once every Secret is synced.
FAST_END_TO_END = (
    "tests/integration/test_operator_sync.py::"
    "test_first_bootstrap_exits_only_once_every_secret_is_synced[vso1.4.1]"
)


@task(
    help={
        "pytest_args": "extra arguments for pytest, e.g. '-k catalog -x'",
        "workers": "pytest-xdist workers, each with a sandbox of its own (0: one process)",
        "fast": "the edit loop's tier: lint, unit tests and one end-to-end bootstrap",
        "repeat": "hunt flakes: the integration suite N times in random orders, with "
        "per-test pass counts, the seeds of failures and the slowest tests",
        "drills": "the long drills alone (a busy machine, a lost leader), not the suite",
    }
)
def test(c, pytest_args="", workers=2, fast=False, repeat=0, drills=False):  # type: ignore[no-untyped-def]
    """Everything CI runs: lint, the node sandbox's Debian packages (as root, when missing),
    install the tools (cached), then the whole test suite."""
    from bootstrap.tooling import tools

    if sum(map(bool, (fast, repeat, drills))) > 1:
        raise Exit("error: --fast, --repeat and --drills are different runs; pick one", code=2)
    lint(c)
    if fast:
        c.run(f"pytest -q -m 'not integration' {pytest_args}", pty=False)
        install(c)  # the sandbox without a node: what bootstrap needs
        c.run(f"pytest -q -p no:randomly {FAST_END_TO_END} {pytest_args}", pty=False)
        return
    try:
        tools.install_debian_packages(lambda m: err.print(f"[bold]test[/]: {_e(m)}"))
    except BootstrapError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from None
    install(c, all_=True)
    if drills:  # one at a time: a drill's hog must not share the machine with another test
        c.run(f"pytest -q -p no:randomly -m drill {pytest_args}", pty=False)
        return
    if repeat:
        c.run(
            f"python -m tests.flakehunt --repeat {int(repeat)} --workers {int(workers)} "
            f"-- {pytest_args}",
            pty=False,
        )
        return
    # whole files per worker (--dist loadfile): a file's module fixtures are made once
    parallel = f"-n {int(workers)} --dist loadfile " if int(workers) > 0 else ""
    # the slowest tests, in CI's log: what keeps the warm run within its 15 minutes
    c.run(f"pytest {parallel}--durations=15 {pytest_args}", pty=False)


# -- sandbox ----------------------------------------------------------------------------


@task(
    help={
        "ha": "three OpenBao nodes in one raft cluster instead of one",
        "node": "the node sandbox: containerd, runc, kubelet and kube-scheduler too, one Node "
        "(as root; setting bootstrap.sandbox_node)",
    }
)
@friendly
def up(c, ha=False, node=False):  # type: ignore[no-untyped-def]
    """Start etcd, kube-apiserver and OpenBao (uninitialized, sealed) as local processes;
    with --node also a Node (containerd, kubelet, kube-scheduler) that runs pods."""
    from bootstrap import sandbox

    s = settings(c)
    state = sandbox.up(
        s.sandbox_dir,
        s.tools_dir,
        ha=ha,
        with_node=node or s.sandbox_node,
        timeout=s.wait_timeout,
        progress=lambda m: err.print(f"[bold]sandbox[/]: {_e(m)}"),
        operator=sandbox.OperatorOptions.of(s),
    )
    for key, value in state.env().items():
        console.print(f"export {key}={_e(value)}", highlight=False)


@task(name="status", help={"json": "print JSON instead of a table"})
@friendly
def sandbox_status(c, json_=False):  # type: ignore[no-untyped-def]
    """Tell what runs in the sandbox, and where."""
    from bootstrap import sandbox

    s = settings(c)
    st = sandbox.status(s.sandbox_dir)
    if json_:
        console.print_json(json.dumps(st))
        return
    if not st.get("components"):
        console.print(f"no sandbox in {_e(st['directory'])}")
        return
    op = st["operator"]
    table = Table(
        title=f"sandbox {_e(st['directory'])}"
        + (" (HA)" if st["ha"] else "")
        + f", Vault Secrets Operator v{_e(op['version'])} ({_e(op['licence'])})"
    )
    for col in ("component", "pid", "state", "detail"):
        table.add_column(col)
    for comp in st["components"]:
        table.add_row(
            _e(comp["name"]),
            str(comp["pid"] or ""),
            "running" if comp["running"] else "stopped",
            _e(comp["detail"]),
        )
    console.print(table)
    if "node" in st:
        n = st["node"]
        console.print(
            f"Node {_e(n['name'])} {_e(n['address'])} (pods {_e(n['pod_cidr'])}, network "
            f"namespace {_e(n['netns'])}{'' if n['netns_exists'] else ', missing'}): "
            f"Ready={_e(n['ready'])} {_e(n['reason'])}",
            highlight=False,
        )
    console.print(f"KUBECONFIG={_e(st['kubeconfig'])}")


@task(name="env")
@friendly
def sandbox_env(c):  # type: ignore[no-untyped-def]
    """Print the exports that point kubectl, bao and the product at the sandbox."""
    from bootstrap import sandbox

    s = settings(c)
    state = sandbox.SandboxState.load(s.sandbox_dir.resolve())
    if state is None:
        raise BootstrapError(f"no sandbox in {s.sandbox_dir}; 'invoke sandbox.up' starts one")
    for key, value in state.env().items():
        console.print(f"export {key}={_e(value)}", highlight=False)


@task(help={"keep": "keep the state directory (data, logs, kubeconfig)"})
@friendly
def down(c, keep=False):  # type: ignore[no-untyped-def]
    """Stop the processes the sandbox started (by pid); remove its state unless --keep."""
    from bootstrap import sandbox

    s = settings(c)
    stopped = sandbox.down(s.sandbox_dir, keep=keep)
    console.print(
        f"stopped: {_e(', '.join(stopped)) or 'nothing was running'}"
        + ("" if keep else f"; removed {_e(s.sandbox_dir)}")
    )


@task(
    name="create",
    help={
        "catalog": "service catalog (default from invoke.yaml)",
        "replicas": "OpenBao replicas: 1 or 3",
        "kind": "on a kind cluster (made if absent; needs kind and Docker) instead of the "
        "node sandbox",
    },
)
@friendly
def cluster_create(c, catalog=None, replicas=1, kind=False):  # type: ignore[no-untyped-def]
    """OpenBao (sealed, uninitialized), the operator and one demo workload per restart
    target, as pods, on the node sandbox or (--kind) a kind cluster; writes the settings
    'bootstrap' needs next."""
    from bootstrap.commands import cluster

    s, cat = _catalog(c, catalog)
    started = time.monotonic()
    say = lambda m: err.print(f"[bold]cluster[/]: {_e(m)}")  # noqa: E731
    if kind:
        from bootstrap.commands import kind as kind_cluster

        done = kind_cluster.create(s, cat, s.kind_cluster, int(replicas), say=say)
    else:
        done = cluster.create(s, cat, int(replicas), say=say)
    pods = ", ".join(f"{n} {ip}" for n, ip in sorted(done.openbao_pods.items()))
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in done.seconds.items())
    console.print(
        f"cluster created in {time.monotonic() - started:.1f}s ({steps}): "
        f"{done.applied} objects, OpenBao pods {_e(pods)}, the operator VSO "
        f"{_e(done.operator)} with its VaultConnection {_e(done.vault_service)} (OpenBao's "
        "Service)",
        highlight=False,
    )
    console.print(f"next: . {_e(str(done.env_file))} && invoke bootstrap", highlight=False)


@task(
    name="delete",
    help={"kind": "delete the kind cluster cluster.create --kind made (setting kind_cluster)"},
)
@friendly
def cluster_delete(c, kind=False):  # type: ignore[no-untyped-def]
    """Delete what cluster.create made: its namespaces on the node sandbox, or (--kind) the
    kind cluster it made."""
    from bootstrap.commands import cluster

    say = lambda m: err.print(f"[bold]cluster[/]: {_e(m)}")  # noqa: E731
    if kind:
        from bootstrap.commands import kind as kind_cluster

        s = settings(c)
        kind_cluster.delete(s, s.kind_cluster, say=say)
        console.print(f"deleted kind cluster {_e(s.kind_cluster)}")
        return
    gone = cluster.delete(settings(c), say=say)
    console.print(f"deleted {len(gone)} namespace(s): {_e(', '.join(gone)) or 'none'}")


catalog_ns = Collection("catalog", validate)
dr_ns = Collection("dr", dr_snapshot, dr_restore)
migrate_ns = Collection("migrate", migrate_discover, migrate_namespace, migrate_rollback)
verify_ns = Collection("verify", rotation)
sandbox_ns = Collection("sandbox", up, sandbox_status, sandbox_env, down)
tools_ns = Collection("tools", install, list_tools)
images_ns = Collection("images", images_build)
cluster_ns = Collection("cluster", cluster_create, cluster_delete)

ns = Collection(
    bootstrap,
    plan,
    render,
    check,
    status_,
    lint,
    docs,
    test,
    catalog_ns,
    tools_ns,
    images_ns,
    cluster_ns,
    sandbox_ns,
    verify_ns,
    dr_ns,
    migrate_ns,
)
ns.configure(DEFAULTS)
