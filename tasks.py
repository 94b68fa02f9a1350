"""Task entry points. Thin: declare each task's flags, build the typed settings, call one
library function (``bootstrap.cli``), which does the work and prints its result.

Every configuration key is declared in ``ns.configure`` below, so ``invoke.yaml`` and
``INVOKE_BOOTSTRAP_*`` environment variables can override it. Run ``invoke --list``.
"""

from __future__ import annotations

from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import Task, task

from bootstrap.cli import catalog as catalog_cli
from bootstrap.cli import dev, migrate, run, sandbox, tools
from bootstrap.cli import help as h
from bootstrap.cli.common import CRASH_EXIT, DEFAULTS, friendly, settings

__all__ = ["CRASH_EXIT", "DEFAULTS", "ns"]

# The phases, the sandbox and the tool installer (with the Kubernetes, Vault and Terraform
# clients they import) are imported by the library functions that use them, so that
# 'check', 'render' and 'catalog.validate' start quickly.


def _phase_task(name: str, dry_run: bool, doc: str) -> Task[Any]:
    """``bootstrap`` and ``plan``: the same flags, one pipeline; only ``dry_run`` differs."""

    def body(
        c: Context,
        catalog: str | None = None,
        only: list[str] | None = None,
        start: str | None = None,
        skip: list[str] | None = None,
        report: str | None = None,
        prune: bool = False,
        rotate: bool = False,
        skip_quiet_check: bool = False,
    ) -> None:
        run.phases(
            settings(c, catalog, prune=prune or None, rotate=rotate or None),
            dry_run=dry_run,
            only=only or [],
            start=start,
            skip=skip or [],
            report=report,
            skip_quiet_check=skip_quiet_check,
        )

    body.__name__ = body.__qualname__ = name
    body.__doc__ = doc
    made: Task[Any] = task(name=name, iterable=["only", "skip"], help=h.PHASES)(friendly(body))
    return made


bootstrap = _phase_task(
    "bootstrap", False, "Run the bootstrap phases in order (each idempotent and safe to re-run)."
)
plan = _phase_task("plan", True, "Show what every phase would change, without changing anything.")


@task(help=h.RENDER)
@friendly
def render(
    c: Context,
    out: str = "rendered",
    catalog: str | None = None,
    populate_job: bool = False,
    vault_addr: str | None = None,
    image: str | None = None,
) -> None:
    """Render policies, roles, operator manifests and Terraform inputs for GitOps review."""
    catalog_cli.render(settings(c, catalog), out, populate_job, vault_addr, image)


@task(help=h.CHECK)
@friendly
def check(
    c: Context,
    catalog: str | None = None,
    rendered: str | None = None,
    vault_addr: str | None = None,
    image: str | None = None,
) -> None:
    """Prove every synced path is readable under its role and no service reads another's."""
    catalog_cli.check(settings(c, catalog), rendered, vault_addr, image)


@task(name="status", help=h.STATUS)
@friendly
def status_(c: Context, catalog: str | None = None, json_: bool = False) -> None:
    """Per service and secret: Vault version, Secret state, last sync, restart targets."""
    run.status(settings(c, catalog), json_)


@task(name="rotation", help=h.ROTATION)
@friendly
def rotation(c: Context, secret: str, catalog: str | None = None) -> None:
    """Rotate one secret to a sentinel and back; wait for the Secret and restarts each time."""
    run.rotation(settings(c, catalog), secret)


@task(name="snapshot", iterable=["age_recipient"], help=h.DR_SNAPSHOT)
@friendly
def dr_snapshot(
    c: Context,
    out: str,
    catalog: str | None = None,
    age_recipient: list[str] | None = None,
    force: bool = False,
    plan: bool = False,
) -> None:
    """Take a raft snapshot of the running Vault, with a manifest (never the unseal keys)."""
    run.dr_snapshot(settings(c, catalog), out, list(age_recipient or []), force, plan)


@task(name="restore", iterable=["age_identity"], help=h.DR_RESTORE)
@friendly
def dr_restore(
    c: Context,
    snapshot: str,
    keys: str | None = None,
    catalog: str | None = None,
    age_identity: list[str] | None = None,
    force: bool = False,
    plan: bool = False,
    report: str | None = None,
) -> None:
    """Restore a snapshot onto a new target, open it with the original keys, re-point, re-sync."""
    s = settings(c, catalog)
    run.dr_restore(s, snapshot, keys, list(age_identity or []), force, plan, report or None)


@task(name="discover", iterable=["namespace"], help=h.MIGRATE_DISCOVER)
@friendly
def migrate_discover(
    c: Context,
    namespace: list[str] | None = None,
    out: str | None = None,
    catalog: str | None = None,
) -> None:
    """Find secret-copier Jobs/CronJobs, the Secrets they copied and hand-made Secrets."""
    migrate.discover(settings(c, catalog), list(namespace or []), out)


@task(name="namespace", iterable=["ns", "allow_type"], help=h.MIGRATE_NAMESPACE)
@friendly
def migrate_namespace(
    c: Context,
    ns: list[str] | None = None,
    all_: bool = False,
    catalog: str | None = None,
    force: bool = False,
    plan: bool = False,
    allow_type: list[str] | None = None,
) -> None:
    """Move namespaces off copiers: back up, values into Vault, operator objects, same bytes."""
    s = settings(c, catalog)
    migrate.namespaces(s, list(ns or []), all_, force, plan, list(allow_type or []))


@task(name="rollback", iterable=["ns"], help=h.MIGRATE_ROLLBACK)
@friendly
def migrate_rollback(
    c: Context, ns: list[str] | None = None, catalog: str | None = None, plan: bool = False
) -> None:
    """Put migrated namespaces back as they were: Secrets, copiers; remove operator objects."""
    migrate.rollback(settings(c, catalog), list(ns or []), plan)


@task(help=h.VALIDATE)
@friendly
def validate(c: Context, catalog: str | None = None) -> None:
    """Validate the catalog and summarise it."""
    catalog_cli.validate(settings(c, catalog))


@task(iterable=["name"], help=h.INSTALL)
@friendly
def install(
    c: Context,
    name: list[str] | None = None,
    node: bool = False,
    all_: bool = False,
    peers: bool = False,
) -> None:
    """Build or find the external tools at their pinned versions (idempotent, cached): by
    default what bootstrap and the sandbox without a node need (the sync engine of
    sync_engine; for vso the operator of sandbox_operator_version); --node adds the node's
    tools and images, --all everything."""
    tools.install(settings(c), list(name or []), node, all_, peers)


@task(name="build", iterable=["name"], help=h.IMAGES_BUILD)
@friendly
def images_build(c: Context, name: list[str] | None = None) -> None:
    """Build the node's container images as OCI archives in the tools cache (each rebuilt
    only when its content changed): openbao, vault-secrets-operator (1.4.1 and 0.1.0), demo,
    bootstrap."""
    tools.images_build(settings(c), list(name or []))


@task(name="list")
@friendly
def list_tools(c: Context) -> None:
    """Show each tool, its pinned version and licence, and where it was found."""
    tools.list_tools(settings(c))


def _run(c: Context) -> dev.Run:
    return lambda command: c.run(command, pty=False)


@task
@friendly
def lint(c: Context) -> None:
    """ruff (lint and format), mypy on the library, import-linter layer contracts, and the
    documentation: its generated pages equal to the code, the site built without a warning."""
    dev.lint(_run(c), ns)


@task(help=h.DOCS)
@friendly
def docs(c: Context, check: bool = False, out: str = "docs/_build/html") -> None:
    """Generate the reference pages (tasks, settings, catalog format, exit codes, the catalog's
    JSON Schema) from the code, then build the documentation site, warnings as errors."""
    dev.docs(_run(c), ns, check, out)


@task(help=h.TEST)
@friendly
def test(
    c: Context,
    pytest_args: str = "",
    workers: int = 2,
    fast: bool = False,
    repeat: int = 0,
    drills: bool = False,
) -> None:
    """Everything CI runs: lint, the node sandbox's Debian packages (as root, when missing),
    install the tools (cached), then the whole test suite."""
    s = settings(c)
    dev.test(
        _run(c),
        ns,
        lambda everything: tools.install(s, [], False, everything, False),
        pytest_args=pytest_args,
        workers=int(workers),
        fast=fast,
        repeat=int(repeat),
        drills=drills,
    )


@task(help=h.SANDBOX_UP)
@friendly
def up(c: Context, ha: bool = False, node: bool = False) -> None:
    """Start etcd, kube-apiserver and OpenBao (uninitialized, sealed) as local processes;
    with --node also a Node (containerd, kubelet, kube-scheduler) that runs pods."""
    sandbox.up(settings(c), ha, node)


@task(name="status", help=h.SANDBOX_STATUS)
@friendly
def sandbox_status(c: Context, json_: bool = False) -> None:
    """Tell what runs in the sandbox, and where."""
    sandbox.status(settings(c), json_)


@task(name="env")
@friendly
def sandbox_env(c: Context) -> None:
    """Print the exports that point kubectl, bao and the product at the sandbox."""
    sandbox.env(settings(c))


@task(help=h.SANDBOX_DOWN)
@friendly
def down(c: Context, keep: bool = False) -> None:
    """Stop the processes the sandbox started (by pid); remove its state unless --keep."""
    sandbox.down(settings(c), keep)


@task(name="create", help=h.CLUSTER_CREATE)
@friendly
def cluster_create(
    c: Context, catalog: str | None = None, replicas: int = 1, kind: bool = False
) -> None:
    """OpenBao (sealed, uninitialized), the operator and one demo workload per restart
    target, as pods, on the node sandbox or (--kind) a kind cluster; writes the settings
    'bootstrap' needs next."""
    sandbox.cluster_create(settings(c, catalog), int(replicas), kind)


@task(name="delete", help=h.CLUSTER_DELETE)
@friendly
def cluster_delete(c: Context, kind: bool = False) -> None:
    """Delete what cluster.create made: its namespaces on the node sandbox, or (--kind) the
    kind cluster it made."""
    sandbox.cluster_delete(settings(c), kind)


ns = Collection(
    bootstrap,
    plan,
    render,
    check,
    status_,
    lint,
    docs,
    test,
    Collection("catalog", validate),
    Collection("tools", install, list_tools),
    Collection("images", images_build),
    Collection("cluster", cluster_create, cluster_delete),
    Collection("sandbox", up, sandbox_status, sandbox_env, down),
    Collection("verify", rotation),
    Collection("dr", dr_snapshot, dr_restore),
    Collection("migrate", migrate_discover, migrate_namespace, migrate_rollback),
)
ns.configure(DEFAULTS)
