"""Phase 5, operator resources: per namespace, each service's ServiceAccount and VaultAuth and
one VaultStaticSecret per secret, plus the operator's default VaultConnection when the product
is told where Vault is (as the operator sees it). Server-side apply with one field manager;
everything carries the managed-by label; with prune, managed objects that left the catalog
are deleted; nothing unlabelled is ever touched.

Facts come from a few dozen LISTs (:func:`read_cluster`), not a request per object. Apply
goes in waves (:func:`waves`: namespaces, then kind by kind, deletes last in reverse), each
wave a few requests at a time (:data:`WORKERS`); the first failure stops the phase.

An object that exists without the product's labels for this catalog (a Helm-made
ServiceAccount, another catalog's VaultAuth) is never taken over: the plan reports a problem.

Hand-over from placeholders (docs/explanation/operators.md): a destination Secret that the
bootstrap made (it
carries the placeholder marker, or the product's labels for this catalog) and that was not
created by the operator gets ``destination.create: false`` (VSO replaces only its data, on
every VSO version), or, in ``owner`` mode for current VSO releases, ``create: true`` with
``overwrite: true``. A Secret this catalog's VaultStaticSecret already syncs in place
(``migrate.namespace`` hands Secrets over so) stays handed over. Any other existing Secret is
never handed over (the plan reports a problem): the operator would replace its data. Secrets
that do not exist use ``create: true``.

In place, the Secret must carry the two labels a current operator selects its Secret cache
on (``conventions.OPERATOR_CACHE_LABELS``; the placeholders phase puts them on every
placeholder): without them VSO 1.4.1 finds it drifted on every refresh and restarts the
targets each time. A Secret the product made without them (by an earlier release, or moved
by ``migrate``) gets them here, before its VaultStaticSecret is applied. The plan says which
operator the cluster's CRD shows (``model.operator_api``) and which hand-over follows. In
``owner`` mode every VaultStaticSecret says ``create: true, overwrite: true``, the Secret
taken over or not: a current operator syncs again and restarts the targets on any change of
a spec, so the spec never changes with the Secret's state. For the same reason, where the CRD
declares ``destination.transformation`` every VaultStaticSecret says ``transformation: {}``,
as the operator's own update (adding its finalizer) writes it: else that update changes the
spec just after the first sync, and where Vault held the values already (a rebuild, a
re-run after the operator's objects were deleted) the targets restarted once."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bootstrap.clients.kube import Kube
from bootstrap.core import failpoints
from bootstrap.core.errors import UsageError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.parallel import in_parallel
from bootstrap.model import conventions as conv
from bootstrap.model import eso
from bootstrap.model.actions import Action
from bootstrap.model.domain import VSO_API, syncs
from bootstrap.model.operator_api import VSS_CRD, OperatorApi, read_crd
from bootstrap.model.render import (
    labels,
    render_service_account,
    render_static_secret,
    render_vault_auth,
)
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import vso

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
#: One line on what the phase does.
SUMMARY = (
    "ServiceAccounts and the sync engine's objects per namespace (VaultAuths and "
    "VaultStaticSecrets, or SecretStores and ExternalSecrets)"
)

#: (apiVersion, kind) of every kind this phase manages for VSO, in apply order.
KINDS = (
    ("v1", "ServiceAccount"),
    (VSO_API, "VaultConnection"),
    (VSO_API, "VaultAuth"),
    (VSO_API, "VaultStaticSecret"),
)
#: Every kind of either engine, in apply order.
ALL_KINDS = (*KINDS, *eso.KINDS[1:])


def kinds_of(engine: str) -> tuple[tuple[str, str], ...]:
    """The kinds this phase manages for a sync engine, in apply order."""
    return eso.KINDS if engine == "eso" else KINDS


SELECTOR = f"{conv.MANAGED_BY_LABEL}={conv.MANAGED_BY_VALUE}"
#: Requests in flight at once, reading and applying (at most the client's connection pool:
#: more would open, and discard with a warning, a connection each). A constant, not a
#: setting: on 2 cores 8, 10, 12 and 16 were alike, the API server's own work being the bound.
WORKERS = 8


@dataclass
class OperatorFacts:
    #: (kind, namespace, name) -> object as the cluster has it, for every managed object
    #: and every object the catalog wants.
    objects: dict[tuple[str, str, str], JsonObject]
    #: destination Secrets that exist and were not created by the operator
    placeholders: set[tuple[str, str]]
    #: keys of a placeholder Secret that the catalog (so Vault) does not have: the operator's
    #: in-place sync replaces the whole data, and they disappear
    dropped_keys: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    #: destination Secrets that exist but are neither placeholders nor the product's: never
    #: handed to the operator (it would replace their data)
    foreign: dict[tuple[str, str], str] = field(default_factory=dict)
    #: namespaces the cluster has (objects in the others need one created first)
    namespaces: set[str] = field(default_factory=set)
    #: what the cluster's VaultStaticSecret CRD offers
    api: OperatorApi = field(default_factory=lambda: OperatorApi(installed=True))
    #: placeholder Secrets without the labels the operator's Secret cache selects
    unlabelled: set[tuple[str, str]] = field(default_factory=set)
    #: ESO: Vault's address in each SecretStore (:func:`store_server`)
    store_server: str = ""
    #: ESO: placeholders still holding the marker and not yet marked for Reloader to ignore
    #: (``eso.RELOADER_IGNORE``): marked before their ExternalSecret is applied
    unguarded: set[tuple[str, str]] = field(default_factory=set)


def _key(obj: JsonObject) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def ours(secret: JsonObject, catalog: str) -> bool:
    """Pure: a Secret (as JSON) the bootstrap made: a key still carries the placeholder marker,
    or it has the product's labels of this catalog (the placeholders phase writes both; the
    operator, filling it in place, keeps the labels and replaces the data). Placeholders of
    earlier releases carry ``app.kubernetes.io/managed-by: cluster-secrets-bootstrap``."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if (
        labels.get(conv.SECRET_MANAGED_LABEL) == conv.MANAGED_BY_VALUE
        and labels.get(conv.CATALOG_LABEL) == catalog
    ):
        return True
    if managed_by(secret, catalog):
        return True
    return _holds_marker(secret)


def _holds_marker(secret: JsonObject) -> bool:
    """Pure: a key of the Secret (as JSON) still carries the placeholder marker."""
    return any(
        conv.is_placeholder(base64.b64decode(v)) for v in (secret.get("data") or {}).values() if v
    )


def handed_in_place(vss: JsonObject | None, destination: str, catalog: str) -> bool:
    """Pure: a VaultStaticSecret of this catalog syncs into ``destination`` in place
    (``create: false``) already: the Secret was handed to the operator by the product (by
    this phase, or by ``migrate.namespace``, whose Secrets carry neither a placeholder marker
    nor the product's labels), so it is not someone else's."""
    if vss is None or not managed_by(vss, catalog):
        return False
    dest = (vss.get("spec") or {}).get("destination") or {}
    return dest.get("name") == destination and not dest.get("create")


def owned_by_operator(secret: JsonObject) -> bool:
    """Pure: the operator created the Secret (a VaultStaticSecret, or ESO's ExternalSecret,
    owns it)."""
    refs = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") in ("VaultStaticSecret", "ExternalSecret") for r in refs)


def desired(
    ctx: RunContext,
    placeholders: set[tuple[str, str]],
    api: OperatorApi | None = None,
    server: str = "",
) -> list[JsonObject]:
    """The objects the catalog wants; ``api``: what the cluster's VaultStaticSecret CRD
    declares (a spec as a current operator writes it back, see ``render_static_secret``);
    ``server``: with ESO, Vault's address in the SecretStores (:func:`store_server`)."""
    if ctx.settings.sync_engine == "eso":
        return desired_eso(ctx, placeholders, server or store_server(ctx))
    mode = ctx.settings.handover
    if mode not in ("inplace", "owner"):
        raise UsageError(f"bootstrap.handover is {mode!r}; expected 'inplace' or 'owner'")
    out: list[JsonObject] = []
    for svc in sorted(ctx.catalog.services, key=lambda s: s.name):
        out.append(render_service_account(ctx.catalog, svc))
        out.append(render_vault_auth(ctx.catalog, svc))
    for sync in syncs(ctx.catalog):
        has_placeholder = (sync.namespace, sync.destination) in placeholders
        # what the cluster's CRD knows (v0.1.0's drops an unknown field, so it is left out)
        extra = {"transformation": api is None or api.transformation}
        if mode == "owner":
            # the same spec before and after the take-over: a spec change restarts
            out.append(
                render_static_secret(ctx.catalog, sync, create=True, overwrite=True, **extra)
            )
        elif has_placeholder:
            out.append(render_static_secret(ctx.catalog, sync, create=False, **extra))
        else:
            out.append(render_static_secret(ctx.catalog, sync, **extra))
    if ctx.settings.vault_connection_address:
        out.append(
            {
                "apiVersion": VSO_API,
                "kind": "VaultConnection",
                "metadata": {
                    "name": "default",
                    "namespace": ctx.settings.operator_namespace,
                    "labels": labels(ctx.catalog),
                },
                "spec": {"address": ctx.settings.vault_connection_address},
            }
        )
    return out


def store_server(ctx: RunContext) -> str:
    """Vault's address in each SecretStore: as the operator sees it (the setting
    vault_connection_address), else the address the product itself uses."""
    return ctx.settings.vault_connection_address or ctx.target.leader


def desired_eso(
    ctx: RunContext, placeholders: set[tuple[str, str]], server: str
) -> list[JsonObject]:
    """The objects the catalog wants with ESO: each service's ServiceAccount and
    SecretStore (Vault at ``server``), and an ExternalSecret per destination (``Merge`` into
    a placeholder the bootstrap made, ``Owner`` where none exists)."""
    out = [
        render_service_account(ctx.catalog, svc)
        for svc in sorted(ctx.catalog.services, key=lambda s: s.name)
    ]
    namespaces = sorted(
        {s.namespace for s in ctx.catalog.services} | {s.namespace for s in syncs(ctx.catalog)}
    )
    for ns in namespaces:
        mine = frozenset(name for space, name in placeholders if space == ns)
        out += eso.render_namespace(ctx.catalog, ns, server, mine)
    return out


def _contains(have: Any, want: Any) -> bool:
    """True when every field we set is there with our value (the server may add more)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_contains(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(_contains(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _differs(want: JsonObject, have: JsonObject) -> list[str]:
    fields = []
    if not _contains(have.get("metadata", {}).get("labels", {}), want["metadata"].get("labels")):
        fields.append("labels")
    for top in ("spec",):
        if top in want and not _contains(have.get(top), want[top]):
            fields.append(top)
    return fields


def managed_by(obj: JsonObject, catalog: str) -> bool:
    """Pure: the object carries the product's labels for this catalog."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(conv.MANAGED_BY_LABEL) == conv.MANAGED_BY_VALUE
        and labels.get(conv.CATALOG_LABEL) == catalog
    )


@dataclass(frozen=True)
class CreateNamespace(Action):
    """A namespace the catalog's objects go into, missing from the cluster."""

    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class LabelSecret(Action):
    """Put labels on an existing Secret (a merge patch: its other labels and data stay)."""

    namespace: str
    name: str
    labels: dict[str, str]


def plan_labels(facts: OperatorFacts, mode: str) -> list[Action]:
    """Pure: in place, each placeholder the operator's Secret cache cannot see gets its
    labels before its VaultStaticSecret is applied."""
    if mode != "inplace":
        return []
    wanted = conv.OPERATOR_CACHE_LABELS_TEXT
    return [
        LabelSecret(
            "update",
            f"Secret {ns}/{name}",
            f"labels {wanted}: a current operator syncs into it in place only if its Secret "
            "cache sees it (else it re-syncs and restarts the targets on every refresh)",
            namespace=ns,
            name=name,
            labels=dict(conv.OPERATOR_CACHE_LABELS),
        )
        for ns, name in sorted(facts.unlabelled)
    ]


def handover_note(facts: OperatorFacts, mode: str) -> Action:
    """Pure: a line saying which operator the CRD shows and the hand-over that follows."""
    count = len(facts.placeholders)
    if mode == "merge":
        how = (
            "hand-over merge: creationPolicy Merge into each placeholder the bootstrap made "
            f"({count} now): ESO writes Vault's keys into it and owns nothing; Owner where "
            "none exists"
        )
    elif mode == "owner":
        how = (
            "hand-over owner: create true with overwrite true, the operator takes each "
            f"placeholder over ({count} now); the placeholders phase then leaves them to it"
        )
    else:
        how = (
            "hand-over in place: create false into each placeholder the bootstrap made "
            f"({count} now), which carries the labels of the operator's Secret cache"
        )
    return Action("check", "operator", f"{facts.api.describe()}; {how}")


@dataclass(frozen=True)
class AnnotateSecret(Action):
    """Put annotations on an existing Secret (a merge patch: the rest stays)."""

    namespace: str
    name: str
    annotations: dict[str, str]


def plan_guards(facts: OperatorFacts) -> list[Action]:
    """Pure: ESO: each placeholder ESO has not filled yet is marked for Stakater Reloader to
    ignore before its ExternalSecret is applied (verify takes the mark off once it holds
    Vault's values), so the hand-over restarts nothing whenever Reloader gets to it."""
    return [
        AnnotateSecret(
            "update",
            f"Secret {ns}/{name}",
            f"annotation {eso.RELOADER_IGNORE}=true until ESO has filled it: Stakater Reloader "
            "restarts nothing for the hand-over",
            namespace=ns,
            name=name,
            annotations={eso.RELOADER_IGNORE: "true"},
        )
        for ns, name in sorted(facts.unguarded)
    ]


@dataclass(frozen=True)
class ApplyObject(Action):
    """Server-side apply of one object with the product's field manager."""

    obj: JsonObject
    #: a spec update the operator answers with one restart of each rollout target
    restarts: bool = False


@dataclass(frozen=True)
class DeleteObject(Action):
    api_version: str
    kind_: str
    namespace: str
    name: str


def plan_namespaces(
    want: list[JsonObject], existing: set[str], ns_labels: dict[str, str]
) -> list[Action]:
    """Namespaces the wanted objects need that the cluster lacks (the placeholders phase
    usually made them; a run that starts at operator, or a namespace removed since, did not)."""
    needed = sorted({o["metadata"]["namespace"] for o in want if o["metadata"].get("namespace")})
    return [
        CreateNamespace("create", f"namespace {ns}", "missing", name=ns, labels=ns_labels)
        for ns in needed
        if ns not in existing
    ]


def plan_objects(
    want: list[JsonObject], facts: OperatorFacts, prune: bool, catalog: str = "default"
) -> list[Action]:
    actions: list[Action] = []
    wanted = {_key(o) for o in want}
    for obj in want:
        key = _key(obj)
        target = f"{key[0]} {key[1]}/{key[2]}"
        have = facts.objects.get(key)
        if have is None:
            actions.append(ApplyObject("create", target, "missing", obj=obj))
        elif not managed_by(have, catalog):
            owner = (have.get("metadata", {}).get("labels") or {}).get(conv.CATALOG_LABEL)
            whose = f"catalog {owner!r}" if owner else "someone else (not the bootstrap)"
            actions.append(
                Action(
                    "problem",
                    target,
                    f"exists and belongs to {whose}: refusing to take it over (rename the "
                    "service, or remove or relabel that object)",
                )
            )
        else:
            diff = _differs(obj, have)
            if diff:
                actions.append(ApplyObject("update", target, f"{', '.join(diff)} differ", obj=obj))
    if prune:
        for key, have in sorted(facts.objects.items()):
            if have.get("metadata", {}).get("deletionTimestamp"):
                continue  # being deleted already (the operator's finalizer holds it a moment)
            if key not in wanted and managed_by(have, catalog):
                actions.append(
                    DeleteObject(
                        "delete",
                        f"{key[0]} {key[1]}/{key[2]}",
                        "no longer in the catalog",
                        api_version=have["apiVersion"],
                        kind_=key[0],
                        namespace=key[1],
                        name=key[2],
                    )
                )
    return actions


def _restart_note(action: Action) -> Action:
    """An update of a VaultStaticSecret's spec, on an operator that syncs again and restarts
    the rollout targets on any spec change, says so."""
    if (
        isinstance(action, ApplyObject)
        and action.verb == "update"
        and action.obj["kind"] == "VaultStaticSecret"
        and "spec" in action.reason
        and action.obj["spec"].get("rolloutRestartTargets")
    ):
        note = "; the operator syncs again and restarts its rollout targets once"
        return ApplyObject(
            action.verb, action.target, action.reason + note, obj=action.obj, restarts=True
        )
    return action


def waves(actions: list[Action]) -> list[list[Action]]:
    """Pure: the changes of a plan in the order they must happen, as groups whose members
    may run at once: namespaces, then the applies kind by kind in :data:`KINDS` order (a
    VaultAuth names its ServiceAccount, a VaultStaticSecret its VaultAuth), then the deletes
    kind by kind in reverse order. Empty groups are left out; within a group, plan order."""
    order = {kind: i for i, (_, kind) in enumerate(ALL_KINDS)}
    groups: dict[tuple[int, int], list[Action]] = {}
    for action in actions:
        if not action.changes:
            continue
        match action:
            case CreateNamespace():
                rank = (0, 0)
            case LabelSecret() | AnnotateSecret():
                rank = (0, 1)
            case ApplyObject(obj=obj):
                rank = (1, order[obj["kind"]])
            case DeleteObject(kind_=kind):
                rank = (2, -order[kind])
            case _:
                rank = (3, 0)  # unknown: apply refuses it, after everything else
        groups.setdefault(rank, []).append(action)
    return [groups[rank] for rank in sorted(groups)]


def read_cluster(
    kube: Kube,
    namespaces: Sequence[str],
    workers: int,
    kinds: Sequence[tuple[str, str]] = KINDS,
) -> tuple[dict[tuple[str, str], JsonObject], dict[tuple[str, str, str], JsonObject]]:
    """What the plan reads, in LISTs (a few dozen requests, not one per object): every
    Secret of each catalog namespace, by (namespace, name), and the objects of the managed
    kinds, by key.

    The operator's kinds are listed once each, cluster-wide and without a selector: only
    the operator's users make them, so the lists stay the size of what it serves, and they
    hold both the managed objects of namespaces that left the catalog (prune) and unlabelled
    ones in the way (problems). ServiceAccounts are everywhere (every namespace's default,
    controllers', workloads'), so they are listed per catalog namespace (those in the way),
    plus the labelled ones cluster-wide (managed ones anywhere, for prune)."""
    reads: list[tuple[str, str, str | None, str | None]] = [
        ("v1", "Secret", ns, None) for ns in namespaces
    ]
    reads += [("v1", "ServiceAccount", ns, None) for ns in namespaces]
    reads += [("v1", "ServiceAccount", None, SELECTOR)]
    reads += [(api, kind, None, None) for api, kind in kinds if kind != "ServiceAccount"]
    found = in_parallel(lambda r: kube.list_objects(*r), reads, workers)
    secrets: dict[tuple[str, str], JsonObject] = {}
    objects: dict[tuple[str, str, str], JsonObject] = {}
    for (_, kind, _, _), items in zip(reads, found, strict=True):
        for item in items:
            if kind == "Secret":
                meta = item["metadata"]
                secrets[(meta.get("namespace") or "", meta["name"])] = item
            else:
                objects[_key(item)] = item
    return secrets, objects


def relevant(
    listed: dict[tuple[str, str, str], JsonObject], wanted: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], JsonObject]:
    """Pure: of the listed objects, those the plan looks at: every one labelled managed by
    the product (whatever its catalog: :func:`plan_objects` tells them apart), and every one
    the catalog wants, labelled or not."""
    return {
        key: obj
        for key, obj in listed.items()
        if key in wanted
        or ((obj.get("metadata") or {}).get("labels") or {}).get(conv.MANAGED_BY_LABEL)
        == conv.MANAGED_BY_VALUE
    }


class Operator(PhaseBase[OperatorFacts], name="operator", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> OperatorFacts:
        kube = ctx.target.kube
        engine = ctx.settings.sync_engine
        if engine == "eso":
            api = eso.read_crd(
                kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", eso.ES_CRD)
            )
        else:
            api = read_crd(kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", VSS_CRD))
        existing_ns = kube.namespaces()
        wanted_ns = {s.namespace for s in ctx.catalog.services} | {
            s.namespace for s in syncs(ctx.catalog)
        }
        catalog_ns = sorted(wanted_ns & existing_ns)
        kinds = kinds_of(engine) if api.installed else kinds_of(engine)[:1]
        secrets, listed = read_cluster(kube, catalog_ns, min(WORKERS, kube.pool_size), kinds)
        placeholders: set[tuple[str, str]] = set()
        unlabelled: set[tuple[str, str]] = set()
        unguarded: set[tuple[str, str]] = set()
        dropped: dict[tuple[str, str], list[str]] = {}
        foreign: dict[tuple[str, str], str] = {}
        for sync in syncs(ctx.catalog):
            secret = secrets.get((sync.namespace, sync.destination))
            if secret is not None and not owned_by_operator(secret):
                if engine == "eso":
                    es = listed.get(("ExternalSecret", sync.namespace, sync.destination))
                    handed = eso.handed_by_merge(es, sync.destination, ctx.catalog.name)
                else:
                    vss = listed.get(("VaultStaticSecret", sync.namespace, sync.destination))
                    handed = handed_in_place(vss, sync.destination, ctx.catalog.name)
                if not ours(secret, ctx.catalog.name) and not handed:
                    foreign[(sync.namespace, sync.destination)] = sync.kv_path
                    continue
                placeholders.add((sync.namespace, sync.destination))
                if engine == "eso":  # ESO merges: it labels the Secret itself, drops no key
                    meta = secret.get("metadata") or {}
                    guarded = (meta.get("annotations") or {}).get(eso.RELOADER_IGNORE) == "true"
                    if not guarded and _holds_marker(secret):
                        unguarded.add((sync.namespace, sync.destination))
                    continue
                if not conv.operator_cache_sees((secret.get("metadata") or {}).get("labels")):
                    unlabelled.add((sync.namespace, sync.destination))
                extra = sorted(set(secret.get("data") or {}) - set(sync.keys) - {"_raw"})
                if extra:
                    dropped[(sync.namespace, sync.destination)] = extra
        server = store_server(ctx) if engine == "eso" else ""
        objects = relevant(listed, {_key(o) for o in desired(ctx, placeholders, api, server)})
        return OperatorFacts(
            objects, placeholders, dropped, foreign, existing_ns, api, unlabelled, server, unguarded
        )

    def plan(self, ctx: RunContext, facts: OperatorFacts) -> list[Action]:
        eso_engine = ctx.settings.sync_engine == "eso"
        if eso_engine and not facts.api.installed:
            return [
                Action(
                    "problem",
                    f"CustomResourceDefinition {eso.ES_CRD}",
                    "missing or not serving external-secrets.io/v1: install the External "
                    "Secrets Operator (2.x; its Helm chart) first, or set sync_engine to vso; "
                    "the product writes its SecretStores and ExternalSecrets, never the "
                    "operator itself",
                )
            ]
        if not facts.api.installed:
            return [
                Action(
                    "problem",
                    f"CustomResourceDefinition {VSS_CRD}",
                    "missing: install the Vault Secrets Operator (its Helm chart) first; "
                    "the product writes its VaultAuths and VaultStaticSecrets, never the "
                    "operator itself",
                )
            ]
        if facts.foreign:
            return [
                Action(
                    "problem",
                    f"Secret {ns}/{name}",
                    f"exists and was not made by the bootstrap (no placeholder marker, not "
                    f"labelled {conv.MANAGED_BY_LABEL}={conv.MANAGED_BY_VALUE} for catalog "
                    f"{ctx.catalog.name!r}): the operator would write {path} into it; "
                    "rename the destination in the catalog, or move that Secret away",
                )
                for (ns, name), path in sorted(facts.foreign.items())
            ]
        if ctx.settings.handover == "owner" and not facts.api.overwrite and not eso_engine:
            return [
                Action(
                    "problem",
                    "handover owner",
                    "needs a current Vault Secrets Operator: the VaultStaticSecret CRD on this "
                    "cluster has no destination.overwrite (VSO v0.1.0 lacks it), so the operator "
                    "would refuse the existing placeholder Secrets "
                    f"({len(facts.placeholders)}); use handover 'inplace' (the default)",
                )
            ]
        warnings = [
            Action(
                "check",
                f"Secret {ns}/{name}",
                f"keys {', '.join(keys)} are not in the catalog, so not in Vault: the operator's "
                "in-place sync replaces the whole data and drops them",
            )
            for (ns, name), keys in sorted(facts.dropped_keys.items())
        ]
        want = desired(ctx, facts.placeholders, facts.api, facts.store_server)
        objects = plan_objects(want, facts, ctx.settings.prune, ctx.catalog.name)
        if facts.api.restarts_on_spec_change:
            objects = [_restart_note(a) for a in objects]
        return [
            handover_note(facts, "merge" if eso_engine else ctx.settings.handover),
            *warnings,
            *plan_namespaces(want, facts.namespaces, labels(ctx.catalog)),
            *plan_labels(facts, ctx.settings.handover),
            *(plan_guards(facts) if eso_engine else []),
            *objects,
        ]

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        kube = ctx.target.kube
        if any(a.changes for a in actions) and ctx.restart_baseline is None:
            # what the catalog's restart targets show before anything is handed over: the
            # verify phase proves from here that the hand-over restarted none
            ctx.restart_baseline = vso.take_baseline(
                kube, vso.existing_targets(kube, syncs(ctx.catalog))
            )
        for action in actions:
            if isinstance(action, ApplyObject) and action.restarts:
                ns = action.obj["metadata"]["namespace"]
                for t in action.obj["spec"].get("rolloutRestartTargets") or []:
                    key = (ns, str(t.get("kind")), str(t.get("name")))
                    ctx.expected_restarts[key] = ctx.expected_restarts.get(key, 0) + 1

        def execute(action: Action) -> None:
            match action:
                case CreateNamespace(name=name, labels=ns_labels):
                    kube.ensure_namespace(name, ns_labels)
                case LabelSecret(namespace=ns, name=name, labels=wanted):
                    kube.merge_patch("v1", "Secret", name, ns, {"metadata": {"labels": wanted}})
                case AnnotateSecret(namespace=ns, name=name, annotations=wanted):
                    kube.merge_patch(
                        "v1", "Secret", name, ns, {"metadata": {"annotations": wanted}}
                    )
                case ApplyObject(obj=obj):
                    kube.apply(obj)
                    failpoints.point("operator:applied")
                case DeleteObject(api_version=api_version, kind_=kind, namespace=ns, name=name):
                    kube.delete(api_version, kind, name, ns or None)
                case _:
                    raise TypeError(f"operator cannot apply {action.kind}")

        for wave in waves(actions):
            in_parallel(execute, wave, min(WORKERS, kube.pool_size))
