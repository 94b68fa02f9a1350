"""The migration tasks: migrate.discover, migrate.namespace, migrate.rollback."""

from __future__ import annotations

import json
from pathlib import Path

from bootstrap.cli.common import console, e, err, load, on_cluster, say_actions, table
from bootstrap.core.errors import BootstrapError
from bootstrap.model.settings import Settings


def discover(s: Settings, namespaces: list[str], out: str | None) -> None:
    from bootstrap.commands import migrate
    from bootstrap.model.migration import discover as find
    from bootstrap.model.migration import fragment, paths
    from bootstrap.runtime import target as target_mod

    cat = load(s) if s.catalog.exists() else None
    t = target_mod.resolve(s, start_sandbox=False)
    workloads, secrets = migrate.observe(t.kube, namespaces or None)
    found = find(workloads, secrets, cat, s.migrate_copier_selectors)
    table(
        f"secret copiers ({e(t.description)})",
        ("copier", "found by", "reads", "writes into", "suspended"),
        (
            (
                e(cp.ref),
                e(cp.why),
                e(
                    ", ".join(
                        [f"{ns}/{n}" for ns, n in cp.sources]
                        + [f"makes {ns}/{n}" for ns, n in cp.creates]
                    )
                    or "?"
                ),
                e(", ".join(cp.targets) or "?"),
                "yes" if cp.workload.suspended else "no",
            )
            for cp in found.copiers
        ),
    )
    where = paths(found)
    rows: list[tuple[str, ...]] = []
    for cp in found.copies:
        for ns in cp.namespaces:
            origin = "source" if ns == cp.source else f"copy of {cp.source}/{cp.name}"
            problem = "values differ from the source's" if ns in cp.differs else ""
            rows.append(
                (
                    e(f"{ns}/{cp.name}"),
                    e(", ".join(cp.keys)),
                    e(origin),
                    e(where[(ns, cp.name)]),
                    e(problem),
                )
            )
    for h in found.handmade:
        rows.append((e(f"{h.namespace}/{h.name}"), e(", ".join(h.keys)), "by hand", e(h.path), ""))
    for ns_, name, why in found.unmigratable:
        rows.append((e(f"{ns_}/{name}"), "", "not migratable", "", e(why)))
    table(
        "Secrets the catalog would own",
        ("namespace/secret", "keys", "found as", "vault path", "problem"),
        rows,
    )
    if out:
        Path(out).write_text(
            fragment(found, name=cat.name if cat else "migrated"), encoding="utf-8"
        )
        console.print(f"wrote the draft catalog fragment {e(out)}")
    for cp in found.conflicts:
        err.print(
            f"conflict: {e(cp.name)} differs between {e(cp.source)} and "
            f"{e(', '.join(cp.differs))}: one shared path cannot hold both; settle it first"
        )


def namespaces(
    s: Settings, names: list[str], every: bool, force: bool, plan: bool, allow_types: list[str]
) -> None:
    """Move namespaces off their copiers under the run's lock: all planned before any moves
    (one refused, none written), each planned again right before it moves, a report each."""
    from bootstrap.commands import migrate
    from bootstrap.core.waits import WaitSettings
    from bootstrap.runtime.lock import cluster_lock

    cat, t, api = on_cluster(s)
    chosen = list(cat.namespaces) if every else names
    if not chosen:
        raise BootstrapError("name a namespace (--ns NS, repeatable) or --all")
    allowed = migrate.allowed_types(allow_types)
    # the sync engine, and Vault's address in ESO's SecretStores (as the operator phase)
    engine = (s.sync_engine, s.vault_connection_address or t.leader)
    with cluster_lock(t.kube, s.lock_namespace):
        # several namespaces are all planned before any moves: one refused, none written
        # (issue 23, finding 2); each is planned again, on what is there, right before it moves
        for name in chosen if len(chosen) > 1 else []:
            f = migrate.namespace_facts(
                t.kube, api, cat, name, s.state_dir, s.migrate_copier_selectors, *engine
            )
            actions = migrate.plan_namespace(f, cat, force, allowed)
            error = migrate.refused(name, actions)
            if error is not None:
                say_actions(f"migrate {name} (refused)", actions)
                raise error
        for name in chosen:
            f = migrate.namespace_facts(
                t.kube, api, cat, name, s.state_dir, s.migrate_copier_selectors, *engine
            )
            actions = migrate.plan_namespace(f, cat, force, allowed)
            say_actions(f"migrate {name}" + (" (plan)" if plan else ""), actions)
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
            path.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
            moved = ", ".join(p for p, _ in report.values_moved) or "none (there already)"
            copiers = ", ".join(f"{c} {done}" for c, done in report.copiers) or "none"
            console.print(
                f"{e(name)}: migrated; values moved: {e(moved)}; synced by the operator: "
                f"{e(', '.join(report.secrets_synced))}; copiers: {e(copiers)}; left by "
                f"hand: {e(', '.join(report.left_by_hand) or 'nothing')}; report {e(path)}",
                highlight=False,
            )


def rollback(s: Settings, names: list[str], plan: bool) -> None:
    from bootstrap.commands import migrate
    from bootstrap.core.waits import WaitSettings
    from bootstrap.runtime.lock import cluster_lock

    cat, t, _ = on_cluster(s)
    if not names:
        raise BootstrapError("name a namespace (--ns NS, repeatable)")
    with cluster_lock(t.kube, s.lock_namespace):
        for name in names:
            actions = migrate.plan_rollback(t.kube, cat, name, s.state_dir)
            say_actions(f"rollback {name}" + (" (plan)" if plan else ""), actions)
            if not plan:
                migrate.apply_rollback(
                    t.kube, name, actions, s.state_dir, WaitSettings(timeout=s.wait_timeout)
                )
                console.print(f"{e(name)}: rolled back", highlight=False)
