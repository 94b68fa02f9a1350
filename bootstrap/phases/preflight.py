"""Phase 1, preflight: the catalog is valid (it was loaded to get here) and claims none of the
product's own names under these settings, the static check passes, and every tool the later
phases need is present at its pinned version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bootstrap.model.actions import Action
from bootstrap.model.check import rendered_from_catalog, run_check
from bootstrap.model.reserved import reserved_problems
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.tooling import tools

#: One line on what the phase does.
SUMMARY = "catalog valid, static check clean, tools present"


@dataclass
class PreflightFacts:
    tools: dict[str, Path | None]
    findings: list[str]
    reserved: list[str]


class Preflight(PhaseBase[PreflightFacts], name="preflight", summary=SUMMARY):
    def __init__(self, needed_tools: tuple[str, ...] = ()) -> None:
        self.needed = needed_tools

    def facts(self, ctx: RunContext) -> PreflightFacts:
        needed = [
            n
            for n in self.needed
            if ctx.settings.terraform_binary == "tofu" or not n.startswith(("tofu", "terraform-"))
        ]
        found = {name: tools.find(name, ctx.settings.tools_dir) for name in needed}
        result = run_check(rendered_from_catalog(ctx.catalog))
        return PreflightFacts(found, result.findings, reserved_problems(ctx.catalog, ctx.settings))

    def plan(self, ctx: RunContext, facts: PreflightFacts) -> list[Action]:
        actions = [
            Action(
                "check",
                "catalog",
                f"{ctx.settings.catalog}: {len(ctx.catalog.services)} services valid",
            )
        ]
        actions += [Action("problem", "catalog", p) for p in facts.reserved]
        actions += [Action("problem", "static check", f) for f in facts.findings]
        if not facts.findings:
            actions.append(Action("check", "static check", "policies, roles and manifests agree"))
        for name, path in sorted(facts.tools.items()):
            spec = tools.TOOLS[name]
            if path is None:
                actions.append(
                    Action(
                        "problem",
                        f"tool {name}",
                        f"{spec.version} missing; run 'invoke tools.install'",
                    )
                )
            else:
                actions.append(Action("check", f"tool {name}", f"{spec.version} at {path}"))
        return actions

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        """Nothing to change: preflight only proves the ground is firm."""
