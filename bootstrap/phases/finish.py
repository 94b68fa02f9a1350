"""Phase 8, finish: revoke the root token once the bootstrap-admin credential is in custody.
Later runs authenticate with $VAULT_TOKEN/$BAO_TOKEN or that credential."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError
from bootstrap.model.actions import Action, check
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import credentials

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "revoke the root token (the bootstrap-admin credential stays in custody)"


@dataclass
class FinishFacts:
    root_usable: bool
    admin_present: bool


@dataclass(frozen=True)
class RevokeRoot(Action):
    """Revoke the root token (then record it in custody and drop the run's session)."""


def plan_finish(facts: FinishFacts) -> list[Action]:
    """Pure: revoke the root token once the bootstrap-admin credential is in custody."""
    if not facts.root_usable:
        return []
    if not facts.admin_present:
        return [check("root token", "kept: no bootstrap-admin credential in custody yet")]
    return [RevokeRoot("delete", "root token", "first configuration done; revoke it")]


class Finish(PhaseBase[FinishFacts], name="finish", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> FinishFacts:
        custody = ctx.target.custody
        return FinishFacts(
            root_usable=credentials.root_token(custody) is not None,
            admin_present=credentials.admin_present(custody),
        )

    def plan(self, ctx: RunContext, facts: FinishFacts) -> list[Action]:
        return plan_finish(facts)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case RevokeRoot():
                    self._revoke(ctx)
                case Action(verb="check"):
                    pass
                case _:
                    raise TypeError(f"finish cannot apply {action.kind}")

    def _revoke(self, ctx: RunContext) -> None:
        t = ctx.target
        root = credentials.root_token(t.custody)
        if root is None:
            raise VaultStateError(f"no usable root token in {t.custody.description} to revoke")
        vault.revoke_self(vault.active_addr(t.vault_addrs), root)
        failpoints.point("finish:revoked")
        credentials.record_root_revoked(t.custody, time.time())
        ctx.session.invalidate()
        log.info("root token revoked")
