"""Phase 8, finish: revoke the root token once the bootstrap-admin credential is in custody.
Later runs authenticate with $VAULT_TOKEN/$BAO_TOKEN or that credential."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bootstrap import failpoints, vault
from bootstrap.phases.vault_config import ADMIN_EXTRA, ROOT_REVOKED_EXTRA
from bootstrap.pipeline import Action, RunContext
from bootstrap.target import Target

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
        t: Target = ctx.shared["target"]
        record = t.custody.load()
        revoked = t.custody.load_extra(ROOT_REVOKED_EXTRA) is not None
        return FinishFacts(
            root_usable=bool(record and record.root_token and not record.pgp and not revoked),
            admin_present=t.custody.load_extra(ADMIN_EXTRA) is not None,
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
        t: Target = ctx.shared["target"]
        record = t.custody.load()
        assert record is not None
        c = vault.client(vault.active_addr(t.vault_addrs), record.root_token)
        try:
            with vault.translated("revoking the root token"):
                c.auth.token.revoke_self()
        except vault.VaultRequestError as exc:
            if exc.status != 403:  # 403: already revoked or expired
                raise
        failpoints.point("finish:revoked")
        t.custody.store_extra(ROOT_REVOKED_EXTRA, {"revoked_at": time.time()})
        ctx.shared.pop("vault_api", None)
        log.info("root token revoked")
