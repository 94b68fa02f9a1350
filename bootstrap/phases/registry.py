"""The registry of bootstrap phases, in order, and the run that holds the cluster lock. Each
phase implements :class:`bootstrap.phases.pipeline.Phase`."""

from __future__ import annotations

from typing import Any

from bootstrap.phases.dr_restore import DrRestore
from bootstrap.phases.finish import Finish
from bootstrap.phases.operator import Operator
from bootstrap.phases.pipeline import Listener, Phase, PhaseResult, RunContext, run
from bootstrap.phases.placeholders import Placeholders
from bootstrap.phases.populate import Populate
from bootstrap.phases.preflight import Preflight
from bootstrap.phases.vault_config import VaultConfig
from bootstrap.phases.vault_ready import VaultReady
from bootstrap.phases.verify import Verify
from bootstrap.runtime import target
from bootstrap.runtime.lock import cluster_lock


def registered(restore: bool = False) -> list[Phase[Any]]:
    """Phases available in this version, in bootstrap order; with ``restore`` (``invoke
    dr.restore``), the restore of a snapshot right after preflight, before anything else
    changes."""
    later: list[Phase[Any]] = [
        Placeholders(),
        VaultReady(),
        VaultConfig(),
        Operator(),
        Populate(),
        Verify(),
        Finish(),
    ]
    needed = tuple(sorted({tool for phase in later for tool in phase.tools}))
    return [Preflight(needed), *([DrRestore()] if restore else []), *later]


def run_phases(
    ctx: RunContext,
    selected: list[str],
    on_event: Listener | None = None,
    results: list[PhaseResult] | None = None,
) -> list[PhaseResult]:
    """Resolve the target (cluster or sandbox) when a selected phase needs it, hold the
    cluster-wide lock for the run, and run the phases (results appended to ``results`` as
    they come, see :func:`bootstrap.phases.pipeline.run`)."""
    needs_target = any(name != "preflight" for name in selected)
    if needs_target and ctx.target_ is None:
        ctx.target_ = target.resolve(ctx.settings, start_sandbox=not ctx.dry_run)
    if not needs_target or ctx.dry_run:
        return run(registered(ctx.restore is not None), ctx, selected, on_event, results)
    with cluster_lock(ctx.target.kube, ctx.settings.lock_namespace) as held:
        ctx.stop_reason = lambda: (
            "the bootstrap lock was taken over" if held.lost.is_set() else None
        )
        return run(registered(ctx.restore is not None), ctx, selected, on_event, results)


def run_populate_only(
    ctx: RunContext, on_event: Listener | None = None, results: list[PhaseResult] | None = None
) -> list[PhaseResult]:
    """The populate phase alone, with the Vault client the caller put in ``ctx.vault_api``:
    no target, no cluster lock, no custody (the populate Job, inside the cluster, whose
    token grants nothing but the catalog's KV paths)."""
    if ctx.vault_api is None:
        raise ValueError("run_populate_only needs ctx.vault_api")
    return run([Populate()], ctx, ["populate"], on_event, results)
