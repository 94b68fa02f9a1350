"""What the Vault Secrets Operator shows of its work, read from the cluster, and why a
VaultStaticSecret is stuck, read from Vault. Both operators the product is proven with are
read as they are (see ``model.operator_api``): VSO 1.4.1 and v0.1.0.

Facts from VSO 1.4.1's source and changelog:

- every sync is a ``SecretSynced`` event (no ``SecretRotated`` since 1.0); a failed Vault read
  is ``VaultClientError`` with Vault's own error; the status holds ``conditions``
  (``SecretSynced``, ``Healthy``, ``Ready``, ``RolloutRestart``) and ``lastGeneration``, the
  spec generation it last reconciled; ``SecretSynced`` may stay False after Vault recovers
  (#1225), so the bytes decide, as with v0.1.0;
- ``_raw`` may be absent (excluded per object or with ``--global-transformation-options``);
- a rollout restart stamps the same annotation as v0.1.0 and records a
  ``RolloutRestartTriggered`` event.

Facts from VSO v0.1.0's source:

- a synced Secret holds Vault's keys plus ``_raw`` (Vault's whole response as JSON); with
  ``destination.create: false`` VSO replaces the Secret's whole ``data``, so placeholder keys
  that Vault lacks disappear;
- VaultStaticSecret status holds only ``secretMAC``; what happened is told by events on the
  object: ``SecretSynced`` (first sync), ``SecretRotated`` (a change, with rollout restarts),
  ``SecretSync`` (read, nothing to change), and the errors below;
- a failed kv-v2 read (403, no such path, sealed) is recorded as ``VaultClientError``
  "Vault secret was empty" -- the Vault error itself is lost (a shadowed variable in its
  reconciler) -- and retried only after refreshAfter; a failed login
  (``VaultClientConfigError``) is retried with backoff; only a spec change makes it try at
  once. So :func:`diagnose` finds the cause itself, in Vault;
- a rollout restart stamps ``vso.secrets.hashicorp.com/restartedAt`` (RFC 3339, whole
  seconds) on the workload's pod template.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.clients.vault import Api
from bootstrap.core.errors import BootstrapError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.output import short
from bootstrap.core.parallel import in_parallel
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import RestartTarget, duration_seconds
from bootstrap.model.domain import (
    DEPLOYMENT_REVISION,
    VSO_API,
    WORKLOAD_API,
    Sync,
    restart_stamp,
)
from bootstrap.model.operator_api import VSS_CRD, OperatorApi, read_crd
from bootstrap.model.policy import PolicyParseError, Rule, allowed, parse_policy
from bootstrap.model.restarts import (
    STORM_REPEATS,
    Restart,
    Storm,
    find_storm,
    new_restarts,
    parse_stamp,
)

RAW_KEY = "_raw"

SYNC_REASONS = frozenset(
    {
        "SecretSynced",
        "SecretRotated",
        "SecretSync",
        # the External Secrets Operator's, on an ExternalSecret
        "Created",
        "Updated",
    }
)
#: Not an event: a current operator's status condition SecretSynced False, read as one.
CONDITION_FALSE = "SecretSynced=False"
ERROR_REASONS = frozenset(
    {
        "VaultClientError",
        "VaultClientConfigError",
        "SecretSyncError",
        "VaultStaticSecretError",
        # VSO 1.4.1's further failures of one sync
        "SecretDataBuilderError",
        "TransformationError",
        CONDITION_FALSE,
        # the External Secrets Operator's, on an ExternalSecret
        "UpdateFailed",
        "SecretSyncedError",
        "Ready=False",  # its Ready condition False, read as an event (_condition_outcome)
    }
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class OperatorEvent:
    """One event the operator recorded on a VaultStaticSecret."""

    name: str
    reason: str
    message: str
    count: int
    last_seen: dt.datetime
    order: int  # resourceVersion: orders events recorded within the same second

    @property
    def error(self) -> bool:
        return self.reason in ERROR_REASONS

    @property
    def outcome(self) -> bool:
        """A sync attempt's result (not, e.g., a rollout restart note)."""
        return self.reason in SYNC_REASONS or self.error

    def describe(self) -> str:
        return f"{self.reason}: {short(self.message)}"


def _event(ev: Any) -> OperatorEvent:
    meta = ev.metadata
    when = ev.last_timestamp or ev.event_time or ev.first_timestamp or meta.creation_timestamp
    rv = str(meta.resource_version or "0")
    return OperatorEvent(
        name=ev.involved_object.name,
        reason=ev.reason or "",
        message=ev.message or "",
        count=int(ev.count or 1),
        last_seen=when or _EPOCH,
        order=int(rv) if rv.isdigit() else 0,
    )


def events(
    kube: Kube, namespace: str, kind: str = "VaultStaticSecret"
) -> dict[str, list[OperatorEvent]]:
    """Events on the VaultStaticSecrets (or another ``kind``: ESO's ExternalSecrets) of a
    namespace, per object, oldest first."""
    out: dict[str, list[OperatorEvent]] = {}
    for ev in kube.list_events(namespace, kind):
        e = _event(ev)
        out.setdefault(e.name, []).append(e)
    for evs in out.values():
        evs.sort(key=lambda e: (e.last_seen, e.order))
    return out


def latest_outcome(evs: list[OperatorEvent]) -> OperatorEvent | None:
    """The last sync result recorded (success or error), if any."""
    for ev in reversed(evs):
        if ev.outcome:
            return ev
    return None


def last_sync(evs: list[OperatorEvent]) -> OperatorEvent | None:
    for ev in reversed(evs):
        if ev.reason in SYNC_REASONS:
            return ev
    return None


def classify(vault_data: dict[str, str], secret: dict[str, bytes] | None) -> str:
    """Pure: the state of one destination Secret against Vault's latest data.

    missing (no Secret), placeholder (a key still carries the marker), synced (every key
    Vault has, with Vault's value; VSO's ``_raw`` is ignored), stale (anything else)."""
    if secret is None:
        return "missing"
    data = {k: v for k, v in secret.items() if k != RAW_KEY}
    if not data or any(conv.is_placeholder(v) for v in data.values()):
        return "placeholder"
    if vault_data and all(data.get(k) == v.encode() for k, v in vault_data.items()):
        return "synced"
    return "stale"


def state_of(
    vault_data: dict[str, str],
    secret: dict[str, bytes] | None,
    evs: list[OperatorEvent],
    written: dt.datetime | None = None,
    vss: JsonObject | None = None,
    condition_type: str = "SecretSynced",
) -> tuple[str, str]:
    """Pure: (state, detail) of one destination Secret, from its bytes and the operator's
    events on its VaultStaticSecret; ``error`` when it is not synced and the operator's last
    attempt failed (the detail gives the event's reason and message) -- unless that attempt
    may have come before Vault's latest version was ``written``. Without such an event (they
    expire), a current operator's ``SecretSynced`` condition False (on ``vss``) says the
    same, judged by its last transition (``condition_type``: ESO's ExternalSecret says it
    with ``Ready``)."""
    state = classify(vault_data, secret)
    if state == "synced":
        return state, ""
    outcome = latest_outcome(evs)
    if outcome is None or not outcome.error:
        outcome = _condition_outcome(vss, condition_type) or outcome
    if outcome is not None and outcome.error:
        # Event times are whole seconds: the attempt was in [last_seen, last_seen + 1s). Only
        # an attempt surely after Vault's latest write is an error of the present.
        if written is not None and outcome.last_seen < written:
            note = "the operator's last attempt may predate Vault's latest version"
            return state, f"{note} ({outcome.describe()})"
        return "error", outcome.describe()
    if not vault_data:
        return state, "no value in Vault yet"
    return state, ""


def _condition_outcome(vss: JsonObject | None, kind: str = "SecretSynced") -> OperatorEvent | None:
    """A current operator's ``SecretSynced`` condition (or another ``kind``) False, as the
    error event it stands for (None without one)."""
    cond = condition(vss, kind)
    if cond is None or cond.get("status") != "False":
        return None
    when = parse_stamp(str(cond.get("lastTransitionTime") or "")) or _EPOCH
    return OperatorEvent(
        name=str(((vss or {}).get("metadata") or {}).get("name") or ""),
        reason=CONDITION_FALSE if kind == "SecretSynced" else f"{kind}=False",
        message=str(cond.get("message") or cond.get("reason") or ""),
        count=1,
        last_seen=when,
        order=0,
    )


@dataclass
class Observed:
    """The destination Secrets and the operator's events of some namespaces, read with one
    list request per namespace and kind."""

    secrets: dict[str, dict[str, dict[str, bytes]]]
    events: dict[str, dict[str, list[OperatorEvent]]]

    def secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get(namespace, {}).get(name)

    def events_of(self, namespace: str, name: str) -> list[OperatorEvent]:
        return self.events.get(namespace, {}).get(name, [])


def observe(kube: Kube, namespaces: list[str], kind: str = "VaultStaticSecret") -> Observed:
    """Secrets and operator events (on ``kind``) of the namespaces that exist (lists in
    parallel)."""
    existing = kube.namespaces()
    present = [ns for ns in sorted(set(namespaces)) if ns in existing]
    secrets = in_parallel(kube.list_secrets, present, 8)
    evs = in_parallel(lambda ns: events(kube, ns, kind), present, 8)
    return Observed(dict(zip(present, secrets, strict=True)), dict(zip(present, evs, strict=True)))


# -- workloads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """A restart target as the cluster shows it: the operator's restart annotation, and the
    revision its controller rolled out (a Deployment's revision annotation, a StatefulSet's
    update revision, a DaemonSet's observed generation)."""

    target: str
    restarted_at: str
    revision: str


def rollout(kube: Kube, target: RestartTarget, namespace: str) -> Rollout | None:
    obj = kube.get(WORKLOAD_API[target.kind], target.kind, target.name, namespace)
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    at = restart_stamp(template.get("annotations"))
    if target.kind == "Deployment":
        revision = str((meta.get("annotations") or {}).get(DEPLOYMENT_REVISION, ""))
    elif target.kind == "StatefulSet":
        revision = str(status.get("updateRevision") or "")
    else:
        observed = status.get("observedGeneration")
        revision = str(observed) if observed == meta.get("generation") else ""
    return Rollout(f"{target.kind}/{target.name}", at, revision)


# -- why a VaultStaticSecret is stuck -------------------------------------------------------


def _role_rules(api: Api, policies: list[str], problems: list[str]) -> list[Rule]:
    rules: list[Rule] = []
    for pol in policies:
        if pol == "default":
            continue
        resp = api.read(f"sys/policies/acl/{pol}")
        text = ((resp or {}).get("data") or {}).get("policy")
        if text is None:
            problems.append(f"policy {pol!r} does not exist in Vault")
            continue
        try:
            rules += parse_policy(text, pol)
        except PolicyParseError as exc:
            problems.append(str(exc))
    return rules


OPERATOR_NAMESPACE = conv.OPERATOR_NAMESPACE


def auth_ref(vss: JsonObject, operator_namespace: str = OPERATOR_NAMESPACE) -> tuple[str, str]:
    """(namespace, name) of the VaultAuth a VaultStaticSecret uses: its vaultAuthRef in its
    own namespace, else ``default`` in the operator's namespace."""
    ref = (vss.get("spec") or {}).get("vaultAuthRef")
    if ref:
        return (vss["metadata"]["namespace"], str(ref))
    return (operator_namespace, "default")


def missing_auths(kube: Kube, operator_namespace: str = OPERATOR_NAMESPACE) -> list[str]:
    """VaultStaticSecrets (anywhere) whose VaultAuth does not exist. VSO v0.1.0 looks a
    missing VaultAuth up for 30 s (60 tries, 500 ms apart) with the only worker of its
    VaultStaticSecret controller, over and over: each such object holds up every sync."""
    auths = {
        (a["metadata"]["namespace"], a["metadata"]["name"]) for a in kube.list(VSO_API, "VaultAuth")
    }
    out = []
    for vss in kube.list(VSO_API, "VaultStaticSecret"):
        ref = auth_ref(vss, operator_namespace)
        if ref not in auths:
            meta = vss["metadata"]
            out.append(f"{meta['namespace']}/{meta['name']} (VaultAuth {ref[0]}/{ref[1]})")
    return sorted(out)


def diagnose(
    api: Api,
    kube: Kube,
    ns: str,
    name: str,
    vss: JsonObject | None,
    operator_namespace: str = OPERATOR_NAMESPACE,
) -> str:
    """What in Vault or the cluster keeps VaultStaticSecret ``ns/name`` from syncing, checked
    the way the operator meets it: its VaultAuth, the role's bindings, the role's policies on
    the path (a 403), the path's value. Empty when nothing is wrong any more."""
    if vss is None:
        return f"no VaultStaticSecret {ns}/{name} (the operator phase creates it)"
    spec = vss.get("spec") or {}
    auth_ns, auth_name = auth_ref(vss, operator_namespace)
    auth = kube.get(VSO_API, "VaultAuth", auth_name, auth_ns)
    if auth is None:
        return f"VaultAuth {auth_ns}/{auth_name} does not exist"
    problems: list[str] = []
    status = auth.get("status") or {}
    if status and not status.get("valid", False) and status.get("error"):
        problems.append(f"VaultAuth {auth_ns}/{auth_name} is invalid: {short(status['error'])}")
    k8s = (auth.get("spec") or {}).get("kubernetes") or {}
    role_name = k8s.get("role", "")
    sa = k8s.get("serviceAccount", "")
    mount = (auth.get("spec") or {}).get("mount") or conv.AUTH_MOUNT
    api_path = f"{spec.get('mount')}/data/{spec.get('path')}"
    resp = api.read(f"auth/{mount}/role/{role_name}")
    role = (resp or {}).get("data")
    if role is None:
        problems.append(f"role {role_name!r} does not exist in Vault (auth/{mount})")
    else:
        names = role.get("bound_service_account_names") or []
        namespaces = role.get("bound_service_account_namespaces") or []
        if sa not in names and "*" not in names:
            problems.append(f"role {role_name!r} is bound to ServiceAccounts {names}, not {sa!r}")
        if ns not in namespaces and "*" not in namespaces:
            problems.append(f"role {role_name!r} is bound to namespaces {namespaces}, not {ns!r}")
        policies = list(
            dict.fromkeys([*(role.get("token_policies") or []), *(role.get("policies") or [])])
        )
        if not allowed(_role_rules(api, policies, problems), api_path):
            problems.append(
                f"role {role_name!r} (policies {policies}) may not read {api_path}: "
                "Vault answers 403"
            )
    if api.read(api_path) is None:
        problems.append(f"no value in Vault at {api_path}")
    return "; ".join(problems)


# -- the operator's API, and what its status says -----------------------------------------


def operator_api(kube: Kube) -> OperatorApi:
    """What the cluster's VaultStaticSecret CRD declares (one read)."""
    return read_crd(kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", VSS_CRD))


def condition(vss: JsonObject | None, kind: str) -> JsonObject | None:
    """A status condition of a VaultStaticSecret (VSO 1.4.1), or None."""
    for cond in ((vss or {}).get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def unreconciled(vss: JsonObject | None) -> str:
    """Why a current operator's status says nothing of the spec as it is now ("" when it
    does, or on v0.1.0, whose status has no ``lastGeneration``): a spec generation it has
    not reconciled yet. (A ``SecretSynced`` condition False is read by :func:`state_of`.)"""
    generation = ((vss or {}).get("metadata") or {}).get("generation")
    last = ((vss or {}).get("status") or {}).get("lastGeneration")
    if isinstance(last, int) and isinstance(generation, int) and last < generation:
        return f"the operator has not reconciled spec generation {generation} yet (at {last})"
    return ""


def tried(vss: JsonObject) -> bool:
    """Pure: a current operator has reconciled this VaultStaticSecret at its current spec
    (its status is of the current generation), whatever came of it."""
    status = vss.get("status") or {}
    generation = (vss.get("metadata") or {}).get("generation")
    return generation is not None and status.get("lastGeneration") == generation


def tried_already(kube: Kube, refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Of ``refs`` (namespace, name), the VaultStaticSecrets a current operator has
    reconciled at their current spec (one list per namespace). Only these are nudged: one it
    has not reconciled yet it will reconcile by its own watch, and a nudge on top makes two
    reconciles back to back -- the second reads the Secret from the operator's cache before
    the first's write reaches it, finds it drifted, syncs again and restarts the targets
    (seen on VSO 1.4.1: a first fill that restarted a workload)."""
    wanted = set(refs)
    out = []
    for ns in sorted({ns for ns, _ in refs}):
        for vss in kube.list_objects(VSO_API, "VaultStaticSecret", ns):
            ref = (ns, vss["metadata"]["name"])
            if ref in wanted and tried(vss):
                out.append(ref)
    return sorted(out)


# -- restart history ------------------------------------------------------------------------


def _stamp(template: JsonObject | None) -> dt.datetime | None:
    annotations = ((template or {}).get("metadata") or {}).get("annotations") or {}
    value = restart_stamp(annotations)
    return parse_stamp(value) if value else None


class RolloutHistory:
    """The rollout history of the workloads of some namespaces: one list of ReplicaSets and
    one of ControllerRevisions per namespace, read on first use."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lists: dict[tuple[str, str], list[JsonObject]] = {}

    def _list(self, kind: str, namespace: str) -> list[JsonObject]:
        key = (kind, namespace)
        if key not in self._lists:
            self._lists[key] = self.kube.list_objects(
                WORKLOAD_API.get(kind, "apps/v1"), kind, namespace
            )
        return self._lists[key]

    def workload(self, target: RestartTarget, namespace: str) -> JsonObject | None:
        """The restart target as the cluster has it (from one list of its kind), or None."""
        for obj in self._list(target.kind, namespace):
            if (obj.get("metadata") or {}).get("name") == target.name:
                return obj
        return None

    def restarts(self, target: RestartTarget, namespace: str) -> list[Restart]:
        """Each distinct restart stamp the operator put on the workload's pod template that
        its history still holds (a Deployment's ReplicaSets; a StatefulSet's or DaemonSet's
        ControllerRevisions), oldest first, with the revision that carried it."""
        obj = self.workload(target, namespace)
        if obj is None:
            return []
        uid = (obj.get("metadata") or {}).get("uid")
        found: dict[dt.datetime, Restart] = {}

        def owned(item: JsonObject) -> bool:
            refs = (item.get("metadata") or {}).get("ownerReferences") or []
            return any(r.get("uid") == uid for r in refs)

        if target.kind == "Deployment":
            for rs in self._list("ReplicaSet", namespace):
                if not owned(rs):
                    continue
                at = _stamp((rs.get("spec") or {}).get("template"))
                rev = str(
                    ((rs.get("metadata") or {}).get("annotations") or {}).get(
                        DEPLOYMENT_REVISION, ""
                    )
                )
                if at is not None:
                    found.setdefault(at, Restart(at, rev))
        else:
            for cr in self._list("ControllerRevision", namespace):
                if not owned(cr):
                    continue
                template = (((cr.get("data") or {}).get("spec") or {}).get("template")) or {}
                at = _stamp(template)
                if at is not None:
                    found.setdefault(at, Restart(at, str(cr.get("revision") or "")))
        current = _stamp((obj.get("spec") or {}).get("template"))
        if current is not None and current not in found:
            found[current] = Restart(current, "")
        return sorted(found.values(), key=lambda r: r.at)


def vault_writes(api: Api, path: str, mount: str = conv.KV_MOUNT) -> list[dt.datetime]:
    """When each version Vault still holds of a KV v2 secret was written (its metadata)."""
    meta = (api.read(f"{mount}/metadata/{path}") or {}).get("data") or {}
    out = []
    for version in (meta.get("versions") or {}).values():
        stamp = parse_stamp(str((version or {}).get("created_time") or ""))
        if stamp is not None:
            out.append(stamp)
    return sorted(out)


def storm_of(
    history: RolloutHistory,
    api: Api,
    target: RestartTarget,
    namespace: str,
    paths: list[str],
    refresh_seconds: float,
    now: dt.datetime | None = None,
) -> Storm | None:
    """A restart storm of one target (see ``model.restarts``): its restarts, and the writes
    of the Vault paths that restart it (read only when it restarted often enough for one).
    Ongoing when its last restart is within three refresh periods (at least two minutes); a
    write explains a restart that came as long after it (an operator down a while syncs it
    late)."""
    marks = history.restarts(target, namespace)
    if len(marks) <= STORM_REPEATS:
        return None
    writes = {p: vault_writes(api, p) for p in sorted(set(paths))}
    recent = dt.timedelta(seconds=max(3 * refresh_seconds, 120.0))
    return find_storm(
        f"{target.kind}/{target.name}",
        marks,
        writes,
        now or dt.datetime.now(dt.UTC),
        recent,
        recent,
    )


def storm_cause(kube: Kube, namespace: str, target: RestartTarget) -> str:
    """Why a current operator may restart ``target`` on every refresh: a VaultStaticSecret
    that restarts it writes (``create: false``) into a Secret without the labels its Secret
    cache selects (hashicorp/vault-secrets-operator#1212). "" when none does, or when the
    cluster serves no VaultStaticSecret (another sync engine)."""
    if not operator_api(kube).installed:
        return ""
    labels = kube.list_metadata(f"/api/v1/namespaces/{namespace}/secrets", "Secrets")
    blind = []
    for vss in kube.list_objects(VSO_API, "VaultStaticSecret", namespace):
        spec = vss.get("spec") or {}
        targets = spec.get("rolloutRestartTargets") or []
        if not any(t.get("kind") == target.kind and t.get("name") == target.name for t in targets):
            continue
        dest = spec.get("destination") or {}
        if dest.get("create"):
            continue
        have = (labels.get(str(dest.get("name") or "")) or {}).get("labels") or {}
        if not conv.operator_cache_sees(have):
            blind.append(f"{namespace}/{dest.get('name')}")
    if not blind:
        return ""
    return (
        f"Secret(s) {', '.join(sorted(blind))} lack the labels a current operator's Secret "
        f"cache selects ({conv.OPERATOR_CACHE_LABELS_TEXT}): with destination.create false it "
        "finds them drifted on every refresh and restarts the targets each time "
        "(hashicorp/vault-secrets-operator#1212); 'invoke bootstrap' puts the labels back"
    )


@dataclass(frozen=True)
class Watched:
    """A restart target to watch, with the Vault paths that restart it (their writes explain
    a restart) and its longest refresh period."""

    namespace: str
    target: RestartTarget
    paths: tuple[str, ...]
    refresh_seconds: float
    #: restarts with no Vault write that are expected (a spec change the operator answers
    #: with a restart): only more than these are a problem
    allowed: int = 0

    @property
    def name(self) -> str:
        return f"{self.target.kind} {self.namespace}/{self.target.name}"

    @property
    def key(self) -> tuple[str, str, str]:
        """(namespace, kind, name): the target, whatever the paths and refresh watched."""
        return (self.namespace, self.target.kind, self.target.name)


@dataclass(frozen=True)
class Baseline:
    """The restarts of some targets at a moment: what a later watch counts from."""

    at: dt.datetime
    #: by target (``Watched.key``)
    known: dict[tuple[str, str, str], list[Restart]]


def take_baseline(kube: Kube, watched: list[Watched]) -> Baseline:
    """The restarts ``watched`` have now (their rollout history)."""
    at = dt.datetime.now(dt.UTC)
    history = RolloutHistory(kube)
    return Baseline(at, {w.key: history.restarts(w.target, w.namespace) for w in watched})


def watched_targets(
    wanted: list[Sync], exists: Callable[[str, RestartTarget], bool]
) -> list[Watched]:
    """Pure but for ``exists``: the restart targets of ``wanted`` that exist, each with the
    Vault paths that restart it and its longest refresh period."""
    paths: dict[tuple[str, RestartTarget], set[str]] = {}
    refresh: dict[tuple[str, RestartTarget], float] = {}
    for s in wanted:
        for t in s.restart:
            key = (s.namespace, t)
            paths.setdefault(key, set()).add(s.kv_path)
            refresh[key] = max(refresh.get(key, 0.0), float(duration_seconds(s.refresh_after)))
    return [
        Watched(ns, t, tuple(sorted(paths[(ns, t)])), refresh[(ns, t)])
        for (ns, t) in sorted(paths, key=lambda k: (k[0], k[1].kind, k[1].name))
        if exists(ns, t)
    ]


def existing_targets(kube: Kube, wanted: list[Sync]) -> list[Watched]:
    """The restart targets of ``wanted`` that exist in the cluster (one list per kind and
    namespace)."""
    history = RolloutHistory(kube)
    return watched_targets(wanted, lambda ns, t: history.workload(t, ns) is not None)


#: Added to the longest refresh period a quiet check waits: the operator's own processing.
QUIET_MARGIN = 3.0
#: The longest refresh period a quiet check after a hand-over watches: a target whose
#: VaultStaticSecrets refresh less often is not watched (said), else verify would wait as
#: long (an hour for ``refreshAfter: 1h``); ``invoke status`` names a storm there later.
QUIET_LIMIT = 120.0


def quiet_seconds(watched: list[Watched]) -> float:
    """How long a quiet check watches: one refresh period of the slowest VaultStaticSecret
    (the operator re-reads each within its ``refreshAfter``, jitter only shortening it),
    plus :data:`QUIET_MARGIN`."""
    return max((w.refresh_seconds for w in watched), default=0.0) + QUIET_MARGIN


def watch_quiet(
    kube: Kube,
    api: Api,
    watched: list[Watched],
    seconds: float,
    say: Callable[[str], None] | None = None,
    baseline: Baseline | None = None,
) -> None:
    """Watch ``watched`` for ``seconds``; raise :class:`BootstrapError` naming each target
    the operator restarted meanwhile with no Vault write to explain it (a restart storm, or
    a hand-over that is not quiet). ``baseline``: the restarts known at an earlier moment
    (:func:`baseline`, taken before a hand-over), counted from then instead of from now.
    Polls every second or two."""
    start = baseline or take_baseline(kube, watched)
    known = start.known
    deadline = time.monotonic() + seconds

    def probe() -> None:
        history = RolloutHistory(kube)
        restarted = []
        for w in watched:
            now = history.restarts(w.target, w.namespace)
            before = known.get(w.key, [])
            if now == before:
                continue
            writes = [x for p in w.paths for x in vault_writes(api, p)]
            new = new_restarts(now, before, writes, start.at)[w.allowed :]
            if new:
                revs = [r.revision for r in new if r.revision]
                at = ", ".join(r.at.isoformat() for r in new)
                restarted.append(
                    f"{w.name} restarted {len(new)} time(s) at {at}"
                    + (f" (revision {', '.join(revs)})" if revs else "")
                    + f" with no change in Vault ({', '.join(w.paths)})"
                )
        if restarted:
            causes = sorted({c for w in watched if (c := storm_cause(kube, w.namespace, w.target))})
            raise BootstrapError(
                "the operator restarted workloads while nothing changed in Vault: "
                + "; ".join(restarted)
                + ("; " + "; ".join(causes) if causes else "")
            )
        left = deadline - time.monotonic()
        if left > 0:
            raise Pending(f"{len(watched)} restart target(s) quiet so far, {left:.0f}s to go")

    wait_for(
        probe,
        f"{len(watched)} restart target(s) to stay quiet for {seconds:.0f}s",
        WaitSettings(timeout=seconds + 60.0, initial=1.0, maximum=2.0),
    )
    if say is not None:
        say(f"no restart target restarted in {seconds:.0f}s (one refresh period)")
