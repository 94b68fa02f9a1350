"""Tasks that run the pipeline or read a cluster: bootstrap, plan, status, verify.rotation,
dr.snapshot and dr.restore."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap.cli.common import (
    console,
    e,
    err,
    load,
    on_cluster,
    print_commands,
    print_results,
    table,
)
from bootstrap.cli.common import say as say_to
from bootstrap.core.errors import BootstrapError
from bootstrap.model.settings import Settings

if TYPE_CHECKING:
    from bootstrap.model.snapshot import RestoreRequest
    from bootstrap.phases.pipeline import PhaseResult


def phases(
    s: Settings,
    *,
    dry_run: bool,
    only: list[str],
    start: str | None,
    skip: list[str],
    report: str | None,
    skip_quiet_check: bool = False,
    restore: RestoreRequest | None = None,
    default_report: str | None = None,
) -> list[PhaseResult]:
    """Run (or plan) the selected phases; the report written however the run ends; the
    results printed; a failed phase is an error."""
    from bootstrap.phases import pipeline
    from bootstrap.phases.registry import registered, run_phases

    cat = load(s)
    names = [p.name for p in registered(restore is not None)]
    selected = pipeline.select(names, only, start, skip)
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
                on_event=lambda ph, msg: err.print(f"[bold]{e(ph)}[/]: {e(msg)}"),
                results=results,
            )
    finally:
        err.print(f"report: {e(path)}")
    print_results(results, dry_run, "dr.restore" if restore is not None else "bootstrap")
    if dry_run:
        print_commands(cat)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise BootstrapError(f"phase {failed[0].name} failed: {failed[0].error}")
    return list(results)


def status(s: Settings, as_json: bool) -> None:
    from bootstrap.commands import status as status_mod

    cat, t, api = on_cluster(s)
    rows = status_mod.collect(cat, t.kube, api, s.sync_engine)
    if as_json:
        console.print_json(json.dumps([r.as_dict() for r in rows]))
        return
    table(
        f"status ({e(t.description)})",
        (
            "service",
            "namespace/secret",
            "vault path",
            "version",
            "state",
            "last sync",
            "restart targets",
        ),
        (
            (
                e(r.service),
                e(f"{r.namespace}/{r.secret}"),
                e(r.vault_path),
                e(r.vault_version),
                e(r.state + (f": {r.detail}" if r.detail else "")),
                e(r.last_sync),
                e(r.restarts),
            )
            for r in rows
        ),
    )


def rotation(s: Settings, secret: str) -> None:
    from bootstrap.commands.rotation import rotation_test
    from bootstrap.core.waits import WaitSettings

    cat, t, api = on_cluster(s)
    result = rotation_test(
        cat,
        secret,
        t.kube,
        api,
        WaitSettings(timeout=s.wait_timeout),
        say=say_to("rotation"),
        engine=s.sync_engine,
    )
    console.print(f"rotation test passed for {e(result.secret)} ({e(result.vault_path)})")
    for target, revisions in result.revisions.items():
        console.print(f"  {e(target)}: revisions {e(' -> '.join(revisions))}", highlight=False)


def dr_snapshot(s: Settings, out: str, age_recipients: list[str], force: bool, plan: bool) -> None:
    from bootstrap.commands import dr
    from bootstrap.runtime import target as target_mod

    cat = load(s)
    t = target_mod.resolve(s, start_sandbox=False)
    p = dr.plan(t, Path(out), age_recipients, force)
    if plan:
        for line in p.lines():
            console.print(f"  would {e(line)}", highlight=False)
        return
    m = dr.take(p, t, cat.name, age_recipients)
    console.print(
        f"wrote {e(out)} ({m.bytes} bytes, sha256 {m.sha256}, raft index {m.raft_index}"
        + (", age-encrypted" if m.encryption else "")
        + f") and {e(p.manifest)}",
        highlight=False,
    )
    console.print(
        "keep both off-site, and a copy of the custody record apart from them: dr.restore "
        "needs all three",
        highlight=False,
    )


def dr_restore(
    s: Settings,
    snapshot: str,
    keys: str | None,
    age_identities: list[str],
    force: bool,
    plan: bool,
    report: str | None,
) -> None:
    from bootstrap.model.snapshot import RestoreRequest
    from bootstrap.phases.dr_restore import check_keys, check_snapshot

    request = RestoreRequest(
        Path(snapshot), Path(keys) if keys else None, force, tuple(Path(p) for p in age_identities)
    )
    # every file is checked before the cluster is touched (even locked); the snapshot's bytes
    # checked here are the bytes restored
    request = replace(request, verified=check_snapshot(request))
    check_keys(request)
    results = phases(
        s,
        dry_run=plan,
        only=[],
        start=None,
        skip=[],
        report=report,
        restore=request,
        default_report="dr-restore-plan.json" if plan else "dr-restore.json",
    )
    problems = [a for r in results for a in r.actions if a.verb == "problem"]
    if problems:  # a plan that cannot be applied as it stands fails
        raise BootstrapError(
            f"the plan has {len(problems)} problem(s): "
            + "; ".join(f"{a.target}: {a.reason}" for a in problems)
        )
