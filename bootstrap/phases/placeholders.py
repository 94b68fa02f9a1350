"""Phase 2, placeholders: OpenTofu/Terraform applies ``terraform/``, creating the catalog's
namespaces and one placeholder Secret per destination Secret, so workloads can start before
Vault holds real values. Namespaces and Secrets that exist already (and are not in the
Terraform state) are used as they are; real data is never replaced (ignore_changes = [data])."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bootstrap.pipeline import Action, RunContext, Verb
from bootstrap.render import placeholder_tfvars
from bootstrap.target import Target
from bootstrap.terraform import Change, Workspace

log = logging.getLogger(__name__)

VERBS: dict[str, Verb] = {"create": "create", "update": "update", "delete": "delete"}


@dataclass
class PlaceholderFacts:
    changes: list[Change]
    adopted: list[str]  # existing namespaces/Secrets left as they are


def workspace(ctx: RunContext) -> Workspace:
    ws: Workspace | None = ctx.shared.get("terraform")
    if ws is None:
        t: Target = ctx.shared["target"]
        s = ctx.settings
        ws = Workspace(
            s.state_dir / "terraform",
            s.terraform_binary,
            s.tools_dir,
            backend=s.terraform_backend,
            backend_namespace=s.lock_namespace,
            kubeconfig=t.kubeconfig,
        )
        ctx.shared["terraform"] = ws
    return ws


def inputs(ctx: RunContext, in_state: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The module's inputs: only what Terraform owns or may create."""
    t: Target = ctx.shared["target"]
    tfvars = placeholder_tfvars(ctx.catalog)
    existing_ns = t.kube.namespaces()
    adopted: list[str] = []
    namespaces = []
    for ns in tfvars["namespaces"]:
        if f'kubernetes_namespace.this["{ns}"]' in in_state or ns not in existing_ns:
            namespaces.append(ns)
        else:
            adopted.append(f"namespace {ns}")
    secrets = {}
    for key, spec in tfvars["secrets"].items():
        owned = f'kubernetes_secret.placeholder["{key}"]' in in_state
        if owned or t.kube.read_secret(spec["namespace"], spec["name"]) is None:
            secrets[key] = spec
        else:
            adopted.append(f"Secret {key}")
    tfvars.update(
        namespaces=namespaces,
        secrets=secrets,
        kubeconfig_path=str(t.kubeconfig),
        kube_context=ctx.settings.kube_context or "",
    )
    return tfvars, adopted


class Placeholders:
    name = "placeholders"
    summary = "namespaces and placeholder Secrets through Terraform/OpenTofu"
    tools: tuple[str, ...] = ("tofu", "terraform-provider-kubernetes")

    def facts(self, ctx: RunContext) -> PlaceholderFacts:
        ws = workspace(ctx)
        ws.prepare({})  # the module and backend, so state can be listed
        in_state = ws.state_addresses()
        tfvars, adopted = inputs(ctx, in_state)
        ws.prepare(tfvars)
        return PlaceholderFacts(ws.plan(), adopted)

    def plan(self, ctx: RunContext, facts: PlaceholderFacts) -> list[Action]:
        actions = [Action("check", item, "exists already: used as it is") for item in facts.adopted]
        for ch in facts.changes:
            verbs = [VERBS[a] for a in ch.actions if a in VERBS]
            if not verbs:
                continue
            verb: Verb = "update" if len(verbs) > 1 else verbs[0]
            actions.append(
                Action(
                    verb,
                    ch.address,
                    "/".join(ch.actions),
                    payload=("terraform",),
                )
            )
        return actions

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        if any(a.changes for a in actions):
            workspace(ctx).apply()
