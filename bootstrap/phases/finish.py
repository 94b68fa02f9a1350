"""Phase 8, finish: revoke the root token once the bootstrap-admin credential is in custody.
Later runs authenticate with $VAULT_TOKEN/$BAO_TOKEN or that credential."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.model.actions import Action
from bootstrap.phases.pipeline import RunContext
from bootstrap.runtime import credentials

log = logging.getLogger(__name__)


@dataclass
class FinishFacts:
    root_usable: bool
    admin_present: bool


class Finish:
    name = "finish"
    summary = "revoke the root token (the bootstrap-admin credential stays in custody)"
    tools: tuple[str, ...] = ()

    def facts(self, ctx: RunContext) -> FinishFacts:
        custody = ctx.target.custody
        return FinishFacts(
            root_usable=credentials.root_usable(custody),
            admin_present=credentials.admin_present(custody),
        )

    def plan(self, ctx: RunContext, facts: FinishFacts) -> list[Action]:
        if not facts.root_usable:
            return []
        if not facts.admin_present:
            return [
                Action("check", "root token", "kept: no bootstrap-admin credential in custody yet")
            ]
        return [Action("delete", "root token", "first configuration done; revoke it")]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        if not any(a.verb == "delete" for a in actions):
            return
        t = ctx.target
        record = t.custody.load()
        assert record is not None
        vault.revoke_self(vault.active_addr(t.vault_addrs), record.root_token)
        failpoints.point("finish:revoked")
        credentials.record_root_revoked(t.custody, time.time())
        ctx.session.invalidate()
        log.info("root token revoked")
