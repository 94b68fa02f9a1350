"""Phase 2, placeholders: OpenTofu/Terraform applies ``terraform/``, creating the catalog's
namespaces and one placeholder Secret per destination Secret, so workloads can start before
Vault holds real values.

- Namespaces and Secrets that exist already (and are not in the Terraform state) are used as
  they are, never adopted.
- Secret data is write-only for Terraform: sent once at creation, never read back, so real
  values never enter its plan or state, and a re-apply never puts placeholders back.
- Terraform never destroys without ``--prune``: a namespace or Secret that left the catalog
  stays in Terraform's inputs (the plan says "kept"), and any other delete or replacement
  Terraform plans is refused as a problem.
- Terraform and the operator never both manage one Secret. In place (the default hand-over)
  they touch different fields: Terraform the metadata it set (the product's labels and the
  operator's cache labels), the operator the data alone. A placeholder the operator has
  taken over (``handover: owner``: it owns it now, by an owner reference, and relabels it) is
  dropped from Terraform's state (``state rm``, never destroyed): Terraform would otherwise
  put its labels back on every run, and the operator see a change."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from bootstrap.clients.kube import Kube
from bootstrap.clients.terraform import Change, Workspace
from bootstrap.core.errors import BootstrapError
from bootstrap.core.jsondoc import JsonObject
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
#: A placeholder Secret's address: in the module instance of its namespace (see
#: terraform/main.tf); before that module existed, ``LEGACY_SECRET[...]`` at the root.
SECRET = 'module.namespace["{ns}"].kubernetes_secret_v1.placeholder'  # noqa: S105 - an address
LEGACY_SECRET = "kubernetes_secret_v1.placeholder"  # noqa: S105 - a resource address
SERVICE_LABEL = "secrets-bootstrap/service"
_SECRET_ADDRESS = re.compile(
    r'^(?:module\.namespace\["[^"]*"\]\.)?kubernetes_secret_v1\.placeholder\["(.+)"\]$'
)


def secret_address(key: str) -> str:
    """The address of the placeholder Secret ``<namespace>/<name>``."""
    return f'{SECRET.format(ns=key.split("/", 1)[0])}["{key}"]'


@dataclass
class PlaceholderFacts:
    changes: list[Change]
    adopted: list[str]  # existing namespaces/Secrets left as they are
    kept: list[str]  # in Terraform's state, out of the catalog, kept (no --prune)
    #: state address -> the VaultStaticSecret that owns the Secret now (taken over)
    released: dict[str, str] = field(default_factory=dict)


def taken_over(state: dict[str, JsonObject], live: Live) -> dict[str, str]:
    """Pure: the state's placeholder Secrets that a VaultStaticSecret owns now (the operator
    took them over), by address, each with its owner's name."""
    out = {}
    for address, values in state.items():
        if not _SECRET_ADDRESS.match(address):
            continue
        meta = (values.get("metadata") or [{}])[0]
        have = live.secrets.get((meta.get("namespace", ""), meta.get("name", "")))
        if have is None or have.get("uid") != meta.get("uid"):
            continue
        for ref in have.get("ownerReferences") or []:
            if ref.get("kind") == "VaultStaticSecret":
                out[address] = f"{meta.get('namespace', '')}/{ref.get('name', '')}"
    return out


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
    """'...kubernetes_secret_v1.placeholder["ns/name"]' -> 'ns/name'."""
    return address.rsplit('["', 1)[1].removesuffix('"]')


@dataclass
class Live:
    """What the cluster has, by metadata only (one list per namespace): namespace -> its
    metadata, and (namespace, name) -> a Secret's metadata."""

    namespaces: dict[str, JsonObject]
    secrets: dict[tuple[str, str], JsonObject]


def live_objects(kube: Kube, namespaces: set[str]) -> Live:
    have = kube.list_metadata("/api/v1/namespaces", "namespaces")
    secrets: dict[tuple[str, str], JsonObject] = {}
    for ns in sorted(namespaces & set(have)):
        for name, meta in kube.list_metadata(f"/api/v1/namespaces/{ns}/secrets", "Secrets").items():
            secrets[(ns, name)] = meta
    return Live(have, secrets)


def moves(state: dict[str, JsonObject]) -> dict[str, str]:
    """Pure: the state's Secrets still at their old address -> their address now."""
    return {
        address: secret_address(_index(address))
        for address in state
        if address.startswith(f"{LEGACY_SECRET}[")
    }


#: Label and annotation prefixes the module's provider block ignores (``ignore_labels``,
#: ``ignore_annotations`` in terraform/main.tf): the External Secrets Operator's marks on a
#: Secret it merges into, and the product's mark for Stakater Reloader during a hand-over.
IGNORED_PREFIXES = ("reconcile.external-secrets.io/", "reloader.stakater.com/ignore")


def _visible(values: dict[str, str] | None) -> dict[str, str]:
    """Labels or annotations without those the kubernetes provider leaves out of its state and
    diffs: keys under a ``*kubernetes.io`` prefix (``kubernetes.io/metadata.name``, which the
    API server puts on every namespace), except ``app.kubernetes.io`` and
    ``service.beta.kubernetes.io`` (its structures.go, isInternalKey), and those the module
    tells it to ignore (:data:`IGNORED_PREFIXES`)."""

    def internal(key: str) -> bool:
        if key.startswith(IGNORED_PREFIXES):
            return True
        host = key.split("/", 1)[0] if "/" in key else key
        if host in ("app.kubernetes.io", "service.beta.kubernetes.io"):
            return False
        return host.endswith("kubernetes.io") or "deprecated.daemonset.template.generation" in key

    return {k: v for k, v in (values or {}).items() if not internal(k)}


def matches_state(state: dict[str, JsonObject], live: Live) -> bool:
    """Pure: every object of the state is in the cluster as the state has it (the same object,
    by uid, with the same labels and annotations): what a refresh would find unchanged."""

    def same(want: JsonObject, have: JsonObject | None) -> bool:
        return (
            have is not None
            and bool(want.get("uid"))
            and have.get("uid") == want.get("uid")
            and _visible(have.get("labels")) == _visible(want.get("labels"))
            and _visible(have.get("annotations")) == _visible(want.get("annotations"))
        )

    for address, values in state.items():
        meta = (values.get("metadata") or [{}])[0]
        if address.startswith(f"{NAMESPACE}["):
            if not same(meta, live.namespaces.get(_index(address))):
                return False
        elif _SECRET_ADDRESS.match(address):
            key = (meta.get("namespace", ""), meta.get("name", ""))
            if not same(meta, live.secrets.get(key)):
                return False
        else:
            return False  # something this module does not make: let Terraform judge
    return True


def inputs(
    ctx: RunContext, state: dict[str, JsonObject], live: Live
) -> tuple[JsonObject, list[str], list[str]]:
    """The module's inputs: what Terraform owns or may create, plus (without prune) what it
    owns that left the catalog, so that it is kept rather than destroyed."""
    t = ctx.target
    tfvars = placeholder_tfvars(ctx.catalog)
    owned_secrets = {_index(a) for a in state if _SECRET_ADDRESS.match(a)}
    adopted: list[str] = []
    kept: list[str] = []
    namespaces = []
    for ns in tfvars["namespaces"]:
        if f'{NAMESPACE}["{ns}"]' in state or ns not in live.namespaces:
            namespaces.append(ns)
        else:
            adopted.append(f"namespace {ns}")
    secrets = {}
    for key, spec in tfvars["secrets"].items():
        if key in owned_secrets or (spec["namespace"], spec["name"]) not in live.secrets:
            secrets[key] = spec
        else:
            adopted.append(f"Secret {key}")
    if not ctx.settings.prune:
        for address, values in sorted(state.items()):
            if address.startswith(f"{NAMESPACE}[") and _index(address) not in namespaces:
                namespaces.append(_index(address))
                kept.append(f"namespace {_index(address)}")
            elif _SECRET_ADDRESS.match(address) and _index(address) not in secrets:
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


@dataclass(frozen=True)
class ReleaseSecret(Action):
    """Drop a placeholder the operator took over from Terraform's state (never destroyed)."""

    address: str


def plan_placeholders(facts: PlaceholderFacts, prune: bool) -> list[Action]:
    """Pure: Terraform's changes as actions; a delete or replace without prune is a problem.
    A Secret the operator took over is released from Terraform's state instead of changed."""
    actions = [check(item, "exists already: used as it is") for item in facts.adopted]
    actions += [
        check(item, "left the catalog: kept (--prune lets Terraform delete it)")
        for item in facts.kept
    ]
    actions += [
        ReleaseSecret(
            "update",
            address,
            f"VaultStaticSecret {owner} owns it now (the operator took it over): dropped from "
            "Terraform's state, not destroyed; Terraform leaves it to the operator",
            address,
        )
        for address, owner in sorted(facts.released.items())
    ]
    for ch in facts.changes:
        if ch.address in facts.released:
            continue
        verbs = [VERBS[a] for a in ch.actions if a in VERBS]
        if not verbs and ch.previous:
            reason = f"renamed in Terraform's state (was {ch.previous}); the object is unchanged"
            actions.append(TerraformChange("update", ch.address, reason, ch.address, ch.actions))
            continue
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


class Placeholders(PhaseBase[PlaceholderFacts], name="placeholders", summary=SUMMARY, tools=TOOLS):
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
        state = ws.state()
        wanted = {ns for ns in placeholder_tfvars(ctx.catalog)["namespaces"]}
        owned = {(v.get("metadata") or [{}])[0].get("namespace", "") for v in state.values()}
        live = live_objects(ctx.target.kube, wanted | owned)
        tfvars, adopted, kept = inputs(ctx, state, live)
        renames = moves(state)
        ws.prepare(tfvars, renames)
        if not renames and ws.unchanged_since_apply() and matches_state(state, live):
            # The inputs, module, tools and state are those of the last apply, and the
            # cluster has every object as that apply left it: the plan would be empty.
            log.info(
                "placeholders: the Terraform state, its inputs and the cluster are as the "
                "last apply left them: no plan needed"
            )
            return PlaceholderFacts([], adopted, kept)
        return PlaceholderFacts(ws.plan(), adopted, kept, taken_over(state, live))

    def plan(self, ctx: RunContext, facts: PlaceholderFacts) -> list[Action]:
        return plan_placeholders(facts, ctx.settings.prune)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        ws = self._workspace(ctx)
        released = [a.address for a in actions if isinstance(a, ReleaseSecret)]
        if released:
            ws.forget(released)
            if not any(isinstance(a, TerraformChange) for a in actions):
                return
            # the plan was made with them in the state: plan again without them
            again = plan_placeholders(self.facts(ctx), ctx.settings.prune)
            refused = [a for a in again if a.verb == "problem"]
            if refused:
                raise BootstrapError(
                    "placeholders: " + "; ".join(f"{a.target}: {a.reason}" for a in refused)
                )
            actions = again
        # Terraform applies its whole plan at once: one apply for every change listed
        if any(isinstance(a, TerraformChange) for a in actions):
            ws.apply()
