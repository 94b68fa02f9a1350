"""Phase 2, placeholders: OpenTofu/Terraform applies ``terraform/``, creating the catalog's
namespaces and one placeholder Secret per destination Secret, so workloads can start before
Vault holds real values.

- Namespaces and Secrets that exist already (and are not in the Terraform state) are used as
  they are, never adopted.
- Secret data is write-only for Terraform: sent once at creation, never read back, so real
  values never enter its plan or state, and a re-apply never puts placeholders back.
- Terraform never destroys without ``--prune``: a namespace or Secret that left the catalog
  stays in Terraform's inputs (the plan says "kept"), and any other delete or replacement
  Terraform plans is refused as a problem."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bootstrap.clients.terraform import Change, Workspace
from bootstrap.model.actions import Action, Verb, check, problem
from bootstrap.model.render import placeholder_tfvars
from bootstrap.phases.pipeline import PhaseBase, RunContext

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "namespaces and placeholder Secrets through Terraform/OpenTofu"
#: The tools (by name in bootstrap.tooling.tools) this phase runs.
TOOLS = ("tofu", "terraform-provider-kubernetes")

VERBS: dict[str, Verb] = {"create": "create", "update": "update", "delete": "delete"}
NAMESPACE = "kubernetes_namespace_v1.this"
SECRET = "kubernetes_secret_v1.placeholder"  # noqa: S105 - a resource address
SERVICE_LABEL = "secrets-bootstrap/service"


@dataclass
class PlaceholderFacts:
    changes: list[Change]
    adopted: list[str]  # existing namespaces/Secrets left as they are
    kept: list[str]  # in Terraform's state, out of the catalog, kept (no --prune)


def workspace(ctx: RunContext) -> Workspace:
    s = ctx.settings
    return Workspace(
        s.state_dir / "terraform",
        s.terraform_binary,
        s.tools_dir,
        backend=s.terraform_backend,
        backend_namespace=s.lock_namespace,
        kubeconfig=ctx.target.kubeconfig,
    )


def _index(address: str) -> str:
    """'kubernetes_secret_v1.placeholder["ns/name"]' -> 'ns/name'."""
    return address.split('["', 1)[1].removesuffix('"]')


def inputs(
    ctx: RunContext, state: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The module's inputs: what Terraform owns or may create, plus (without prune) what it
    owns that left the catalog, so that it is kept rather than destroyed."""
    t = ctx.target
    tfvars = placeholder_tfvars(ctx.catalog)
    existing_ns = t.kube.namespaces()
    adopted: list[str] = []
    kept: list[str] = []
    namespaces = []
    for ns in tfvars["namespaces"]:
        if f'{NAMESPACE}["{ns}"]' in state or ns not in existing_ns:
            namespaces.append(ns)
        else:
            adopted.append(f"namespace {ns}")
    secrets = {}
    for key, spec in tfvars["secrets"].items():
        owned = f'{SECRET}["{key}"]' in state
        if owned or t.kube.read_secret(spec["namespace"], spec["name"]) is None:
            secrets[key] = spec
        else:
            adopted.append(f"Secret {key}")
    if not ctx.settings.prune:
        for address, values in sorted(state.items()):
            if address.startswith(f"{NAMESPACE}[") and _index(address) not in namespaces:
                namespaces.append(_index(address))
                kept.append(f"namespace {_index(address)}")
            elif address.startswith(f"{SECRET}[") and _index(address) not in secrets:
                meta = (values.get("metadata") or [{}])[0]
                secrets[_index(address)] = {
                    "namespace": meta.get("namespace", ""),
                    "name": meta.get("name", ""),
                    "service": (meta.get("labels") or {}).get(SERVICE_LABEL, ""),
                    "data": {},  # write-only, sent only at creation: never sent again
                }
                kept.append(f"Secret {_index(address)}")
    tfvars.update(
        namespaces=sorted(namespaces),
        secrets=secrets,
        kubeconfig_path=str(t.kubeconfig),
        kube_context=ctx.settings.kube_context or "",
    )
    return tfvars, adopted, kept


@dataclass(frozen=True)
class TerraformChange(Action):
    """A change in Terraform's plan (one resource), applied with the whole plan."""

    address: str
    tf_actions: tuple[str, ...]


def plan_placeholders(facts: PlaceholderFacts, prune: bool) -> list[Action]:
    """Pure: Terraform's changes as actions; a delete or replace without prune is a problem."""
    actions = [check(item, "exists already: used as it is") for item in facts.adopted]
    actions += [
        check(item, "left the catalog: kept (--prune lets Terraform delete it)")
        for item in facts.kept
    ]
    for ch in facts.changes:
        verbs = [VERBS[a] for a in ch.actions if a in VERBS]
        if not verbs:
            continue
        if "delete" in verbs and not prune:
            what = "replace" if len(verbs) > 1 else "delete"
            actions.append(
                problem(
                    ch.address,
                    f"Terraform would {what} it (destroying what it holds); refused "
                    "without --prune",
                )
            )
            continue
        verb: Verb = "update" if len(verbs) > 1 else verbs[0]
        actions.append(
            TerraformChange(verb, ch.address, "/".join(ch.actions), ch.address, tuple(ch.actions))
        )
    return actions


class Placeholders(PhaseBase, name="placeholders", summary=SUMMARY, tools=TOOLS):
    def __init__(self) -> None:
        #: The run's Terraform workspace (a phase object lives for one run).
        self._ws: Workspace | None = None

    def _workspace(self, ctx: RunContext) -> Workspace:
        if self._ws is None:
            self._ws = workspace(ctx)
        return self._ws

    def facts(self, ctx: RunContext) -> PlaceholderFacts:
        ws = self._workspace(ctx)
        ws.prepare({})  # the module and backend, so state can be read
        tfvars, adopted, kept = inputs(ctx, ws.state())
        ws.prepare(tfvars)
        return PlaceholderFacts(ws.plan(), adopted, kept)

    def plan(self, ctx: RunContext, facts: PlaceholderFacts) -> list[Action]:
        return plan_placeholders(facts, ctx.settings.prune)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        # Terraform applies its whole plan at once: one apply for every change listed
        if any(isinstance(a, TerraformChange) for a in actions):
            self._workspace(ctx).apply()
