"""What the Vault Secrets Operator shows of its work, read from the cluster, and why a
VaultStaticSecret is stuck, read from Vault.

Facts from VSO v0.1.0's source that shape this module:

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.clients.vault import Api
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import RestartTarget
from bootstrap.model.domain import DEPLOYMENT_REVISION, RESTART_ANNOTATION, VSO_API, WORKLOAD_API
from bootstrap.model.policy import PolicyParseError, Rule, allowed, parse_policy

RAW_KEY = "_raw"

SYNC_REASONS = frozenset({"SecretSynced", "SecretRotated", "SecretSync"})
ERROR_REASONS = frozenset(
    {"VaultClientError", "VaultClientConfigError", "SecretSyncError", "VaultStaticSecretError"}
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def short(message: str, limit: int = 240) -> str:
    """One line of at most ``limit`` characters (VSO's messages quote Vault's multi-line
    errors)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def events(kube: Kube, namespace: str) -> dict[str, list[OperatorEvent]]:
    """Events on the VaultStaticSecrets of a namespace, per object, oldest first."""
    out: dict[str, list[OperatorEvent]] = {}
    for ev in kube.list_events(namespace, "VaultStaticSecret"):
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
) -> tuple[str, str]:
    """Pure: (state, detail) of one destination Secret, from its bytes and the operator's
    events on its VaultStaticSecret; ``error`` when it is not synced and the operator's last
    attempt failed (the detail gives the event's reason and message) -- unless that attempt
    may have come before Vault's latest version was ``written``."""
    state = classify(vault_data, secret)
    if state == "synced":
        return state, ""
    outcome = latest_outcome(evs)
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


def observe(kube: Kube, namespaces: list[str]) -> Observed:
    """Secrets and operator events of the namespaces that exist (lists in parallel)."""
    existing = kube.namespaces()
    present = [ns for ns in sorted(set(namespaces)) if ns in existing]
    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = pool.map(kube.list_secrets, present)
        evs = pool.map(lambda ns: events(kube, ns), present)
        return Observed(
            dict(zip(present, secrets, strict=True)), dict(zip(present, evs, strict=True))
        )


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
    at = (template.get("annotations") or {}).get(RESTART_ANNOTATION, "")
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


def auth_ref(vss: dict[str, Any], operator_namespace: str = OPERATOR_NAMESPACE) -> tuple[str, str]:
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
    vss: dict[str, Any] | None,
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
