"""Phase 6, populate (post-deploy jobs): resolve every real value from its source, then write
KV v2 with check-and-set. A key that already holds a real value is left alone unless rotate is
set; a generated value is generated once and kept; a placeholder is never written into Vault.
Every source is resolved before anything is written; all failures are reported together."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bootstrap.clients.kv import read_kv
from bootstrap.clients.vault import VaultRequestError
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError
from bootstrap.model import conventions as conv
from bootstrap.model.actions import Action, Verb
from bootstrap.model.catalog import Source
from bootstrap.model.domain import kv_secrets
from bootstrap.phases.pipeline import RunContext
from bootstrap.runtime import sources

log = logging.getLogger(__name__)


@dataclass
class KvState:
    path: str
    keys: dict[str, Source | None]
    data: dict[str, str]
    version: int


class Populate:
    name = "populate"
    summary = "real values from their sources into KV v2 (check-and-set)"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> list[KvState]:
        api = ctx.vault
        paths = kv_secrets(ctx.catalog)

        def read(item: tuple[str, dict[str, Source | None]]) -> KvState:
            data, version = read_kv(api, item[0])
            return KvState(item[0], item[1], data, version)

        return list(api.parallel(read, paths))

    def plan(self, ctx: RunContext, facts: list[KvState]) -> list[Action]:
        rotate = ctx.settings.rotate and not ctx.converging
        base_dir = ctx.settings.catalog.resolve().parent
        actions: list[Action] = []
        problems: list[Action] = []

        def read_vault(path: str, key: str) -> str | None:
            return read_kv(ctx.vault, path)[0].get(key)

        for kv in facts:
            new: dict[str, str] = {}
            kept: list[str] = []
            manual: list[str] = []
            for key, src in kv.keys.items():
                have = kv.data.get(key)
                real = have is not None and not conv.is_placeholder(have)
                if real and not (rotate and src is not None):
                    kept.append(key)
                    continue
                if src is None:
                    manual.append(key)
                    continue
                if ctx.dry_run:
                    new[key] = ""
                    continue
                try:
                    value = sources.resolve(
                        src, base_dir, read_vault, file_roots=ctx.settings.source_file_roots
                    )
                except sources.SourceError as exc:
                    problems.append(Action("problem", f"{kv.path} key {key}", str(exc)))
                    continue
                if conv.is_placeholder(value):
                    problems.append(
                        Action(
                            "problem",
                            f"{kv.path} key {key}",
                            "the source gave a placeholder; refusing to write it",
                        )
                    )
                    continue
                new[key] = value
            merged = {**kv.data, **new}
            size = conv.secret_size(merged)
            if new and not ctx.dry_run and size > conv.SECRET_MAX_BYTES:
                problems.append(
                    Action(
                        "problem",
                        f"secret {kv.path}",
                        f"its keys and values total {size} bytes, over Kubernetes' limit of "
                        f"{conv.SECRET_MAX_BYTES} bytes (1 MiB) for one Secret; nothing written",
                    )
                )
                continue
            if new:
                verb: Verb = "create" if kv.version == 0 else "update"
                actions.append(
                    Action(
                        verb,
                        f"secret {kv.path}",
                        f"written (keys {', '.join(sorted(new))})",
                        payload=("write", kv.path, kv.version, merged),
                    )
                )
            elif kept and not manual:
                actions.append(Action("check", f"secret {kv.path}", "unchanged"))
            if manual:
                actions.append(
                    Action(
                        "check",
                        f"secret {kv.path}",
                        f"skipped: no source for {', '.join(sorted(manual))} (put by hand)",
                    )
                )
            if kept and new:
                actions.append(
                    Action(
                        "check",
                        f"secret {kv.path}",
                        f"skipped-real-value ({', '.join(sorted(kept))})",
                    )
                )
        return problems + actions if problems else actions

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        api = ctx.vault
        writes = [a for a in actions if a.changes and a.payload and a.payload[0] == "write"]

        def write(a: Action) -> None:
            _, path, version, data = a.payload
            try:
                api.write(
                    f"{conv.KV_MOUNT}/data/{path}", {"options": {"cas": version}, "data": data}
                )
            except VaultRequestError as exc:
                if exc.status == 400 and "check-and-set" in str(exc):
                    raise VaultStateError(
                        f"{path} changed in Vault while the bootstrap ran (check-and-set "
                        f"version {version} no longer current); run again"
                    ) from None
                raise
            failpoints.point("populate:write")

        api.parallel(write, writes)
        log.info("populate wrote %d secret(s)", len(writes))
