"""Phase 6, populate (post-deploy jobs): write every real value from its source into KV v2 with
check-and-set. A key that already holds a real value is left alone unless rotate is set; a
generated value is generated once and kept; a placeholder is never written into Vault.

The plan says which keys would be written, from which kind of source; it resolves nothing
(no command runs, no file is read, nobody is prompted). Apply resolves every value before
writing anything, and reports every failure together with nothing written."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.clients.kv import read_kv, read_kv_value
from bootstrap.clients.vault import VaultRequestError
from bootstrap.core import failpoints
from bootstrap.core.errors import BootstrapError, VaultStateError
from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action, Verb, check
from bootstrap.model.catalog import Source
from bootstrap.model.domain import kv_secrets
from bootstrap.model.reserved import argv_text
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import sources

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "real values from their sources into KV v2 (check-and-set)"


@dataclass
class KvState:
    """A KV path as Vault has it: the catalog's keys (with their sources), and which of them
    hold a real value (not a placeholder). Values themselves stay out of facts and plans."""

    path: str
    keys: dict[str, Source | None]
    real: frozenset[str]
    version: int


@dataclass(frozen=True)
class WriteKv(Action):
    """Write these keys of one path, their values resolved from their sources at apply time,
    merged over what the path holds, with check-and-set on the version the plan saw."""

    path: str
    version: int
    sources: tuple[tuple[str, Source], ...]


def _source_text(src: Source) -> str:
    """A source's kind, and for a command what it runs (program and arguments, never a
    value): the plan says every command it would run (issue 23, finding 1)."""
    return f"command {argv_text(src.command)}" if src.command else src.kind


def plan_kv(kv: KvState, rotate: bool) -> list[Action]:
    """Pure: the actions for one path."""
    new = {
        key: src
        for key, src in kv.keys.items()
        if src is not None and (key not in kv.real or rotate)
    }
    kept = sorted(k for k in kv.keys if k in kv.real and k not in new)
    manual = sorted(k for k, src in kv.keys.items() if src is None and k not in kv.real)
    actions: list[Action] = []
    target = f"secret {kv.path}"
    if new:
        verb: Verb = "create" if kv.version == 0 else "update"
        from_ = ", ".join(f"{k} ({_source_text(src)})" for k, src in sorted(new.items()))
        actions.append(
            WriteKv(
                verb,
                target,
                f"written (keys {from_})",
                path=kv.path,
                version=kv.version,
                sources=tuple(sorted(new.items())),
            )
        )
    elif kept and not manual:
        actions.append(check(target, "unchanged"))
    if manual:
        actions.append(check(target, f"skipped: no source for {', '.join(manual)} (put by hand)"))
    if kept and new:
        actions.append(check(target, f"skipped-real-value ({', '.join(kept)})"))
    return actions


class Populate(PhaseBase[list[KvState]], name="populate", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> list[KvState]:
        api = ctx.vault

        def read(item: tuple[str, dict[str, Source | None]]) -> KvState:
            value = read_kv_value(api, item[0])
            ctx.kv_seen[item[0]] = value  # for verify (see RunContext.kv_seen)
            real = frozenset(k for k, v in value.data.items() if not conv.is_placeholder(v))
            return KvState(item[0], item[1], real, value.version)

        return list(api.parallel(read, kv_secrets(ctx.catalog)))

    def plan(self, ctx: RunContext, facts: list[KvState]) -> list[Action]:
        # rotation is a one-shot request: the convergence re-plan checks the state only
        rotate = ctx.settings.rotate and not ctx.converging
        return [a for kv in facts for a in plan_kv(kv, rotate)]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        api = ctx.vault
        writes = [a for a in actions if isinstance(a, WriteKv) and a.changes]
        base_dir = ctx.settings.catalog.resolve().parent
        roots = ctx.settings.source_file_roots

        def read_vault(path: str, key: str) -> str | None:
            return read_kv(api, path)[0].get(key)

        # every value resolved (and checked) before anything is written; sources one at a
        # time (commands, prompts), then what each path holds now, read in parallel: only
        # paths the plan saw holding something (a path it saw empty merges over nothing, and
        # check-and-set 0 writes it only if it is still empty)
        resolved: list[tuple[WriteKv, dict[str, str]]] = []
        failures: list[str] = []
        for w in writes:
            new, problems = resolve_values(
                w, base_dir, read_vault, roots, ctx.settings.catalog_commands
            )
            failures += problems
            if not problems:
                resolved.append((w, new))
        ready: list[tuple[WriteKv, dict[str, str]]] = []
        if not failures:
            seen = [w.path for w, _ in resolved if w.version]
            held = dict(zip(seen, api.parallel(lambda p: read_kv(api, p), seen), strict=True))
            for w, new in resolved:
                have, version = held.get(w.path, ({}, 0))
                if version != w.version:
                    raise _changed(w)
                merged, problems = merge(w.path, have, new)
                failures += problems
                ready.append((w, merged))
        if failures:
            raise BootstrapError(
                f"populate wrote nothing: {len(failures)} value(s) could not be used:\n"
                + "\n".join(f"  {f}" for f in failures)
            )

        def write(item: tuple[WriteKv, dict[str, str]]) -> None:
            w, data = item
            ctx.kv_seen.pop(w.path, None)
            if w.version == 0:
                ctx.first_fill.add(w.path)  # for verify's quiet check
            try:
                api.write(
                    f"{conv.KV_MOUNT}/data/{w.path}",
                    {"options": {"cas": w.version}, "data": data},
                )
            except VaultRequestError as exc:
                if exc.status == 400 and "check-and-set" in str(exc):
                    raise _changed(w) from None
                raise
            failpoints.point("populate:write")

        api.parallel(write, ready)
        log.info("populate wrote %d secret(s)", len(ready))


def _changed(w: WriteKv) -> VaultStateError:
    return VaultStateError(
        f"{w.path} changed in Vault while the bootstrap ran (check-and-set version "
        f"{w.version} no longer current); run again"
    )


def resolve_values(
    w: WriteKv,
    base_dir: Path,
    read_vault: sources.VaultReader,
    file_roots: Sequence[str | Path] = (),
    commands: str = "off",
) -> tuple[dict[str, str], list[str]]:
    """Each key's value from its source, or why it cannot be used (never the value)."""
    problems: list[str] = []
    new: dict[str, str] = {}
    for key, src in w.sources:
        where = f"{w.path} key {key}"
        try:
            value = sources.resolve(
                src, base_dir, read_vault, file_roots=file_roots, commands=commands
            )
        except sources.SourceError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if conv.is_placeholder(value):
            problems.append(f"{where}: the source gave a placeholder; refusing to write it")
            continue
        new[key] = value
    return new, problems


def merge(path: str, have: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Pure: the new values over what the path holds, unless the whole would not fit in one
    Kubernetes Secret."""
    merged = {**have, **new}
    size = conv.secret_size(merged)
    if size > conv.SECRET_MAX_BYTES:
        return {}, [
            f"secret {path}: its keys and values total {size} bytes, over Kubernetes' limit "
            f"of {conv.SECRET_MAX_BYTES} bytes (1 MiB) for one Secret; nothing written"
        ]
    return merged, []
