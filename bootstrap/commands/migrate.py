"""Migration off secret copiers, on a cluster: ``migrate.discover`` reads the Jobs, CronJobs
and Secrets and finds the copiers and what they left where (see
:mod:`bootstrap.model.migration`); ``migrate.namespace`` backs a namespace up, moves its
values into Vault, writes the operator's objects, proves the same bytes and stops the
copiers; ``migrate.rollback`` puts it back. Values never leave this module (a digest stands
for them in every plan and report).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.clients.vault import Api
from bootstrap.core import failpoints
from bootstrap.core.errors import BootstrapError, UsageError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model import conventions as conv
from bootstrap.model import eso
from bootstrap.model.actions import Action, check, problem
from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import VSO_API, WORKLOAD_API, Sync, syncs
from bootstrap.model.migration import (
    COPY_ANNOTATIONS,
    REPLICATE_TO,
    Copier,
    Copy,
    SecretSeen,
    WorkloadSeen,
    discover,
    find_copiers,
    not_migratable,
)
from bootstrap.model.operator_api import VSS_CRD, OperatorApi
from bootstrap.model.render import render_service_account, render_static_secret, render_vault_auth
from bootstrap.runtime.custody import write_private
from bootstrap.runtime.vso import RAW_KEY, operator_api

log = logging.getLogger(__name__)

#: Namespaces never searched: Kubernetes' own.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def digest(data: dict[str, str] | None) -> str:
    """sha256 over the sorted keys and their (base64) values: equal data, equal digest."""
    h = hashlib.sha256()
    for key in sorted(data or {}):
        h.update(key.encode() + b"\0" + base64.b64decode((data or {})[key] or "") + b"\0")
    return h.hexdigest()


def _secret(obj: JsonObject, *, synced: bool = False) -> SecretSeen:
    """What discovery and the migration's checks see of a Secret: names, a digest, never
    values. ``synced``: written by the operator from Vault (its ``_raw`` key is not data)."""
    meta = obj.get("metadata") or {}
    data = dict(obj.get("data") or {})
    if synced:
        data.pop(RAW_KEY, None)
    annotations = meta.get("annotations") or {}
    copied_by, copied_from = next(
        (
            (tool, str(annotations[key]))
            for key, tool in COPY_ANNOTATIONS.items()
            if annotations.get(key)
        ),
        ("", ""),
    )
    to = str(annotations.get(REPLICATE_TO) or "")
    return SecretSeen(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        keys=tuple(sorted(data)),
        digest=digest(data),
        type=str(obj.get("type") or "Opaque"),
        labels=dict(meta.get("labels") or {}),
        owned=bool(meta.get("ownerReferences")),
        created=str(meta.get("creationTimestamp") or ""),
        immutable=bool(obj.get("immutable")),
        size=sum(len(str(k).encode()) + len(base64.b64decode(v or "")) for k, v in data.items()),
        copied_from=copied_from,
        copied_by=copied_by,
        copies_to=tuple(n.strip() for n in to.split(",") if n.strip()),
    )


def _pod_spec(obj: JsonObject) -> JsonObject:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _workload(obj: JsonObject) -> WorkloadSeen:
    meta = obj.get("metadata") or {}
    pod = _pod_spec(obj)
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    # `sh -c "SCRIPT"`: the script is what runs; keep it as it is (new lines included)
    parts = []
    for c in containers:
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if len(argv) >= 3 and argv[1] == "-c":
            parts.append(str(argv[2]))
        else:
            parts.append(" ".join(str(p) for p in argv))
    script = "\n".join(parts)
    env = {
        str(e["name"]): str(e.get("value") or "")
        for c in containers
        for e in c.get("env") or []
        if "name" in e and "value" in e
    }
    owners = meta.get("ownerReferences") or []
    return WorkloadSeen(
        kind=str(obj.get("kind")),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        images=tuple(str(c.get("image", "")) for c in containers),
        script=script,
        env=env,
        suspended=bool((obj.get("spec") or {}).get("suspend")),
        owned=any(o.get("kind") == "CronJob" for o in owners),
    )


def observe(
    kube: Kube, namespaces: list[str] | None = None, *, secrets: bool = True
) -> tuple[list[WorkloadSeen], list[SecretSeen]]:
    """Jobs, CronJobs and (unless ``secrets`` is false) Secrets of the given namespaces
    (default: every namespace but Kubernetes' own and the product's)."""
    own = {conv.OPERATOR_NAMESPACE}
    chosen = sorted(set(namespaces)) if namespaces else None

    def wanted(obj: JsonObject) -> bool:
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if chosen is not None:
            return ns in chosen
        return ns not in SYSTEM_NAMESPACES and ns not in own

    workloads: list[WorkloadSeen] = []
    for kind in ("CronJob", "Job"):
        workloads += [_workload(o) for o in kube.list("batch/v1", kind) if wanted(o)]
    found = [_secret(o) for o in kube.list("v1", "Secret") if wanted(o)] if secrets else []
    return workloads, found


# -- moving one namespace, and back ----------------------------------------------------------
#
# migrate.namespace NS, in this order, each step idempotent and recorded in the namespace's
# backup file (<state_dir>/migrate/<ns>.json, mode 0600: it holds the Secrets' values):
# back up the namespace's Secrets the catalog maps (and, once, each copier concerned as it
# was), push their values into Vault (check-and-set; a different real value there is refused
# without --force), label each Secret for the operator's Secret cache (a merge patch of the
# two labels only, see LabelForOperator), apply the namespace's ServiceAccounts, VaultAuths
# and VaultStaticSecrets (destination create: false: the Secret stays the same object), wait
# until each Secret holds exactly its old bytes again (written by the operator), then suspend
# each copier concerned, or delete it once every namespace it touches is migrated, and see
# that the labels are still there. Refusals come before any write.
#
# With the External Secrets Operator (setting sync_engine: eso) the same steps write each
# service's SecretStore and an ExternalSecret per Secret (creationPolicy Merge: the Secret
# stays the same object, ESO labels it itself, so no label step), wait until ESO reports it
# synced with the same bytes, and then name the Secrets in each restart target's Stakater
# Reloader annotation (metadata only; the old value is in the backup), as verify does after a
# bootstrap's hand-over.
#
# migrate.rollback NS: delete the namespace's operator objects (VaultStaticSecrets or
# ExternalSecrets first, so the operator stops writing; ESO's finalizer is waited out), put
# each backed-up Secret back as it was (data, type, labels, annotations: the operator's labels
# go with its _raw key or its data hash), put each copier and each Reloader annotation back
# as it was, and set the backup aside.

#: The operator objects a migration applies, deleted in this order by a rollback.
OPERATOR_KINDS = (
    (VSO_API, "VaultStaticSecret"),
    (VSO_API, "VaultAuth"),
    ("v1", "ServiceAccount"),
)
#: The same with ESO: the reverse of its apply order.
ESO_KINDS = tuple(reversed(eso.KINDS))


def operator_kinds(engine: str) -> tuple[tuple[str, str], ...]:
    """Pure: the kinds a migration writes for a sync engine, in a rollback's delete order."""
    return ESO_KINDS if engine == "eso" else OPERATOR_KINDS


def backup_path(state_dir: Path, namespace: str) -> Path:
    return state_dir / "migrate" / f"{namespace}.json"


def copier_path(state_dir: Path, ref: str) -> Path:
    return state_dir / "migrate" / "copiers" / (ref.replace(" ", "-").replace("/", "_") + ".json")


def _pristine(obj: JsonObject) -> JsonObject:
    """An object as it would be created again: kind, name, labels, annotations, spec."""
    meta = obj.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if meta.get(k)}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": keep,
        "spec": obj.get("spec"),
    }


def _strings(value: object, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{what} is not a map of strings")
    return dict(value)


#: A restart target as a backup names it: "Kind namespace/name".
_TARGET = re.compile(r"(Deployment|StatefulSet|DaemonSet) [a-z0-9][-a-z0-9]*/[a-z0-9][-.a-z0-9]*")


def target_ref(target: eso.Target) -> str:
    ns, kind, name = target
    return f"{kind} {ns}/{name}"


def parse_target(ref: str) -> eso.Target:
    kind, where = ref.split(" ", 1)
    ns, name = where.split("/", 1)
    return (ns, kind, name)


@dataclass(frozen=True)
class SecretRecord:
    """A Secret as the migration backs it up and puts it back: type, data (base64, as the
    API gives it), labels and annotations."""

    type: str
    data: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of_object(cls, obj: JsonObject) -> SecretRecord:
        meta = obj.get("metadata") or {}
        return cls(
            str(obj.get("type") or "Opaque"),
            dict(obj.get("data") or {}),
            dict(meta.get("labels") or {}),
            dict(meta.get("annotations") or {}),
        )

    @classmethod
    def of_json(cls, doc: object, what: str) -> SecretRecord:
        if not isinstance(doc, dict):
            raise ValueError(f"{what} is not an object")
        kind = doc.get("type", "Opaque")
        if not isinstance(kind, str):
            raise ValueError(f"{what}: its type is not a string")
        return cls(
            kind or "Opaque",
            _strings(doc.get("data") or {}, f"{what}: its data"),
            _strings(doc.get("labels") or {}, f"{what}: its labels"),
            _strings(doc.get("annotations") or {}, f"{what}: its annotations"),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "data": self.data,
            "labels": self.labels,
            "annotations": self.annotations,
        }


@dataclass(frozen=True)
class Backup:
    """A namespace's backup (``<state>/migrate/<namespace>.json``, mode 0600): its mapped
    Secrets as they were, the copiers concerned, and whether the migration is done."""

    namespace: str
    secrets: dict[str, SecretRecord]
    done: bool = False
    created: float = 0.0
    copiers: tuple[str, ...] = ()
    #: ESO: each restart target ("Kind namespace/name") and its Reloader annotation as it
    #: was ("" when it had none): a rollback puts it back
    targets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Backup | None:
        """The backup at ``path`` (None when there is none); one that is not a backup this
        module wrote is an error naming the file and what is wrong, never its values."""
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            secrets = doc.get("secrets")
            if not isinstance(secrets, dict):
                raise ValueError("no 'secrets' object")
            copiers = doc.get("copiers") or []
            if not isinstance(copiers, list) or not all(isinstance(c, str) for c in copiers):
                raise ValueError("'copiers' is not a list of names")
            done, created = doc.get("done", False), doc.get("created", 0.0)
            if not isinstance(done, bool) or not isinstance(created, int | float):
                raise ValueError("'done' or 'created' has the wrong type")
            targets = _strings(doc.get("targets") or {}, "'targets'")
            if not all(_TARGET.fullmatch(t) for t in targets):
                raise ValueError("'targets' names something other than a restart target")
            return cls(
                str(doc.get("namespace") or path.stem),
                {
                    str(name): SecretRecord.of_json(rec, f"secret {name!r}")
                    for name, rec in secrets.items()
                },
                done,
                float(created),
                tuple(copiers),
                targets,
            )
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise BootstrapError(
                f"{path}: not a migration backup this product wrote ({exc}); move it aside "
                "to start the namespace afresh"
            ) from None

    def as_json(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "secrets": {name: rec.as_json() for name, rec in self.secrets.items()},
            "done": self.done,
            "created": self.created,
            "copiers": list(self.copiers),
            **({"targets": self.targets} if self.targets else {}),
        }

    def save(self, path: Path, *, overwrite: bool) -> None:
        write_private(path, json.dumps(self.as_json(), indent=2), overwrite=overwrite)


@dataclass
class NamespaceFacts:
    namespace: str
    syncs: list[Sync]
    #: destination -> the Secret as it is now
    current: dict[str, SecretRecord]
    backup: Backup | None
    #: kv path -> (data, version) in Vault
    kv: dict[str, tuple[dict[str, str], int]]
    #: kv path -> {"ns/name": base64 data} of other namespaces' Secrets mapped to that path
    #: and not yet migrated (a conflict when their data differs)
    others: dict[str, dict[str, dict[str, str]]]
    #: operator objects of the catalog in the namespace: (kind, name)
    present: set[tuple[str, str]]
    copiers: list[Copier]
    #: namespaces whose migration is done (by their backups)
    migrated: set[str] = field(default_factory=set)
    #: what the cluster's VaultStaticSecret CRD declares
    operator: OperatorApi = field(default_factory=lambda: OperatorApi(installed=True))
    #: (namespace, name) -> the Secret as discovery sees it: each one the catalog maps to a
    #: path this namespace fills, in every namespace reading that path
    seen: dict[tuple[str, str], SecretSeen] = field(default_factory=dict)
    #: what discovery finds copied among those
    copies: list[Copy] = field(default_factory=list)
    #: ESO: Vault's address in the SecretStores (as the operator reaches it)
    server: str = ""
    #: ESO: each restart target of the namespace that exists, and its Reloader annotation
    #: as it is now ("" when it has none)
    reload: dict[eso.Target, str] = field(default_factory=dict)

    @property
    def engine(self) -> str:
        return self.operator.engine


@dataclass(frozen=True)
class BackupNamespace(Action):
    """Write the namespace's backup (its mapped Secrets, the copiers concerned): once."""

    namespace: str


@dataclass(frozen=True)
class PushValues(Action):
    """Write a backed-up Secret's values to a KV path, check-and-set on the version seen (the
    values are read from the backup at apply time: an action never holds them)."""

    path: str
    destination: str  # the Secret whose backed-up values go there
    version: int  # check-and-set on the version seen


@dataclass(frozen=True)
class LabelForOperator(Action):
    """Put the labels a current operator selects its Secret cache on
    (``conventions.OPERATOR_CACHE_LABELS``) on a Secret handed over in place, by a merge patch
    of those labels only (its data, other labels and annotations stay; the backup, taken
    before, holds it without them). VSO 0.10 and later read a ``create: false`` destination
    for their drift check through that cache only: without the labels VSO 1.4.1 finds the
    Secret drifted on every refresh, writes it again and restarts its rollout targets each
    time (hashicorp/vault-secrets-operator#1212), so they go on before its VaultStaticSecret.

    ``recheck``: once the copiers are stopped, put them back only if they are gone (a
    copier that replaced the Secret, or deleted and created it, before it stopped took them
    off; the operator never puts labels on a Secret it did not create)."""

    destination: str
    recheck: bool = False


@dataclass(frozen=True)
class ApplyOperatorObject(Action):
    """Server-side apply one ServiceAccount, VaultAuth or VaultStaticSecret."""

    obj: JsonObject = field(hash=False, compare=False)


@dataclass(frozen=True)
class AwaitBytes(Action):
    """Wait until the operator has written the Secret with exactly its backed-up bytes."""

    destination: str


@dataclass(frozen=True)
class AnnotateReloadTarget(Action):
    """ESO: name the namespace's Secrets in a restart target's Stakater Reloader annotation
    (metadata only: nothing rolls out), once they hold their bytes from Vault."""

    workload: eso.Target
    value: str


@dataclass(frozen=True)
class StopCopier(Action):
    """Suspend a copier CronJob, or delete it once every namespace it touches is moved."""

    ref: str
    delete: bool


@dataclass(frozen=True)
class MarkMigrated(Action):
    """Record in the backup that the namespace is migrated (a re-run then does nothing)."""

    namespace: str


def _values(record: SecretRecord) -> dict[str, str] | str:
    """A backed-up Secret's values as Vault stores them (UTF-8 text), or the key that is not."""
    out = {}
    for key, b64 in sorted(record.data.items()):
        try:
            out[key] = base64.b64decode(b64).decode("utf-8")
        except UnicodeDecodeError:
            return str(key)
    return out


def wanted_objects(
    catalog: Catalog, namespace: str, api: OperatorApi | None = None, server: str = ""
) -> list[JsonObject]:
    """The namespace's ServiceAccounts, VaultAuths and VaultStaticSecrets (``create: false``;
    with ``transformation: {}`` where the CRD declares it: else a current operator's own
    first update changes the spec after the first sync, and it restarts the targets). With
    ESO (``api.engine``): the ServiceAccounts, each service's SecretStore (Vault at
    ``server``) and an ExternalSecret per Secret, ``Merge`` into it (it exists: it is what
    moves)."""
    out: list[JsonObject] = []
    if api is not None and api.engine == "eso":
        out += [
            render_service_account(catalog, svc)
            for svc in sorted(catalog.services, key=lambda s: s.name)
            if svc.namespace == namespace
        ]
        mine = frozenset(s.destination for s in syncs(catalog) if s.namespace == namespace)
        return out + eso.render_namespace(catalog, namespace, server, mine)
    settled = api is not None and api.transformation
    for svc in sorted(catalog.services, key=lambda s: s.name):
        if svc.namespace == namespace:
            out += [render_service_account(catalog, svc), render_vault_auth(catalog, svc)]
    for sync in syncs(catalog):
        if sync.namespace == namespace:
            out.append(render_static_secret(catalog, sync, create=False, transformation=settled))
    return out


SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"  # noqa: S105 - a type


def readers(catalog: Catalog, kv_path: str) -> list[Sync]:
    """Every service (and its Secret) that reads one KV path."""
    return [s for s in syncs(catalog) if s.kv_path == kv_path]


def _readers_text(found: list[Sync]) -> str:
    return ", ".join(f"{r.service} ({r.namespace}/{r.destination})" for r in found)


def _secret_refusal(
    record: SecretRecord, seen: SecretSeen | None, allow_types: frozenset[str]
) -> str | None:
    """Why a Secret must not move into Vault at all (issue 23, finding 2), None when it may."""
    kind = record.type
    labels = record.labels
    if kind == SERVICE_ACCOUNT_TOKEN:
        return (
            f"a {SERVICE_ACCOUNT_TOKEN} Secret is a ServiceAccount's credential: it never "
            "moves into Vault (no flag allows it)"
        )
    if kind != "Opaque" and kind not in allow_types:
        return (
            f"its type is {kind}, not Opaque: only '--allow-type {kind}' moves it, once every "
            "reader of the path may hold it"
        )
    if conv.MANAGED_BY_VALUE in (
        labels.get(conv.SECRET_MANAGED_LABEL),
        labels.get(conv.MANAGED_BY_LABEL),
    ):
        return f"{conv.PRODUCT} made it (its label): it is no copier's Secret to migrate"
    if labels.get("tfstate") == "true":
        return "it is OpenTofu's state (label tfstate=true), not an application's Secret"
    if seen is not None and seen.operator_owned:
        return "the Vault Secrets Operator made it and owns it (its owner labels)"
    if seen is not None and seen.owned:
        return "it has ownerReferences: its controller owns it and would write it again"
    if seen is not None:
        return not_migratable(seen)
    return None


def _shared_refusal(f: NamespaceFacts, catalog: Catalog, s: Sync) -> str | None:
    """A shared or infrastructure path takes only a copy discovery found, held alike by every
    namespace the catalog says reads the path (issue 23, finding 2): never one namespace's
    own Secret, which the path's other readers would then read."""
    scope = s.kv_path.split("/", 1)[0]
    if scope not in conv.RESERVED_PREFIXES:
        return None
    found = readers(catalog, s.kv_path)
    who = _readers_text(found)
    if len({r.namespace for r in found}) < 2:
        return (
            f"a {scope}/ path takes only a copy found in every namespace reading it, and only "
            f"{who} reads it: put the Secret under the service's own path"
        )
    mine = f.seen.get((f.namespace, s.destination))
    for r in found:
        theirs = f.seen.get((r.namespace, r.destination))
        if theirs is None:
            return (
                f"{r.service} reads it too, and {r.namespace} holds no Secret {r.destination}: "
                f"not a copy held by the namespaces reading the path (readers: {who})"
            )
        if mine is not None and theirs.digest != mine.digest:
            return (
                f"{f.namespace}/{s.destination} and {r.namespace}/{r.destination} hold "
                f"different values for this one path; settle them first (readers: {who})"
            )
    held = {(r.namespace, r.destination) for r in found}
    if not any(
        c.name == s.destination and held <= {(ns, c.name) for ns in c.namespaces} and not c.differs
        for c in f.copies
    ):
        return (
            "'migrate.discover' does not find it as one copy held by every reader of the path "
            f"(readers: {who}; a copy keeps its name in every namespace)"
        )
    return None


def refusals(
    f: NamespaceFacts,
    catalog: Catalog,
    records: dict[str, SecretRecord],
    allow_types: frozenset[str] = frozenset(),
) -> list[Action]:
    """Pure: the namespace's mapped Secrets that must not move, each naming the Secret, the
    catalog path and why."""
    out = []
    for s in f.syncs:
        seen = f.seen.get((f.namespace, s.destination))
        why = _secret_refusal(records[s.destination], seen, allow_types)
        why = why or _shared_refusal(f, catalog, s)
        if why is not None:
            out.append(
                problem(f"Secret {f.namespace}/{s.destination}", f"not moved to {s.kv_path}: {why}")
            )
    return out


def allowed_types(flags: list[str]) -> frozenset[str]:
    """The ``--allow-type`` values: Secret types (never a ServiceAccount's token)."""
    for kind in flags:
        if kind == SERVICE_ACCOUNT_TOKEN:
            raise UsageError(
                f"--allow-type {kind}: a ServiceAccount's token never moves into Vault"
            )
        if kind == "Opaque" or not re.fullmatch(r"[A-Za-z0-9][-A-Za-z0-9_./]{0,252}", kind):
            raise UsageError(f"--allow-type {kind!r}: not a non-Opaque Secret type")
    return frozenset(flags)


def refused(namespace: str, actions: list[Action]) -> BootstrapError | None:
    """The error the CLI raises for a plan with problems (nothing was written), or None."""
    problems = [a for a in actions if a.verb == "problem"]
    if not problems:
        return None
    return BootstrapError(
        f"{namespace}: nothing written: " + "; ".join(f"{a.target}: {a.reason}" for a in problems)
    )


def plan_namespace(
    f: NamespaceFacts,
    catalog: Catalog,
    force: bool,
    allow_types: frozenset[str] = frozenset(),
) -> list[Action]:
    """Pure: what moving one namespace still takes, or why it must not."""
    ns = f.namespace
    if not f.syncs:
        return [
            problem(
                ns,
                "the catalog declares no Secret in this namespace: merge the "
                "fragment of 'invoke migrate.discover' into the catalog first",
            )
        ]
    if f.backup is not None and f.backup.done:
        return [check(ns, "migrated already")]
    if not f.operator.installed:
        return [
            problem(
                ns,
                "no External Secrets Operator here (its ExternalSecret CRD does not serve "
                f"{eso.ESO_API}): install it (2.x) first, or set sync_engine to vso; nothing "
                "would write the Secrets"
                if f.engine == "eso"
                else "no Vault Secrets Operator here (its VaultStaticSecret CRD is not "
                "installed): install it first; nothing would write the Secrets",
            )
        ]
    records = (f.backup.secrets if f.backup else {}) or {
        s.destination: f.current[s.destination] for s in f.syncs if s.destination in f.current
    }
    missing = [s.destination for s in f.syncs if s.destination not in records]
    if missing:
        return [
            problem(f"Secret {ns}/{m}", "does not exist: nothing to migrate from") for m in missing
        ]
    gone = sorted({s.destination for s in f.syncs if s.destination not in f.current})
    if gone:
        return [
            problem(
                f"Secret {ns}/{g}",
                "backed up, but does not exist any more: 'invoke migrate.rollback' puts it back",
            )
            for g in gone
        ]
    problems: list[Action] = refusals(f, catalog, records, allow_types)
    if problems:
        return problems
    pushes: list[Action] = []
    for s in f.syncs:
        values = _values(records[s.destination])
        if isinstance(values, str):
            problems.append(
                problem(
                    f"Secret {ns}/{s.destination}",
                    f"key {values!r} is not UTF-8 text; Vault's KV holds text: encode it first",
                )
            )
            continue
        for where, data in sorted(f.others.get(s.kv_path, {}).items()):
            if data != records[s.destination].data:
                problems.append(
                    problem(
                        s.kv_path,
                        f"{ns}/{s.destination} and {where} hold "
                        "different values for this one path; settle them first",
                    )
                )
        have, version = f.kv.get(s.kv_path, ({}, 0))
        if have == values:
            continue
        if have and not force:
            problems.append(
                problem(
                    s.kv_path,
                    f"Vault holds other values than {ns}/"
                    f"{s.destination} (version {version}); --force replaces them",
                )
            )
            continue
        if any(a.path == s.kv_path for a in pushes if isinstance(a, PushValues)):
            continue  # two destinations, one path: the same values (checked above)
        pushes.append(
            PushValues(
                "update" if have else "create",
                s.kv_path,
                f"the values of {ns}/{s.destination} ({len(values)} keys); read by "
                + _readers_text(readers(catalog, s.kv_path)),
                s.kv_path,
                s.destination,
                version,
            )
        )
    if problems:
        return problems
    actions: list[Action] = []
    if f.backup is None:
        actions.append(
            BackupNamespace(
                "create",
                f"backup {ns}",
                f"{len(records)} Secrets and {len(f.copiers)} copiers, as they are",
                ns,
            )
        )
    actions += pushes
    if f.engine != "eso":  # ESO labels a Secret it merges into itself
        actions += plan_labels(f)
    for obj in wanted_objects(catalog, ns, f.operator, f.server):
        key = (obj["kind"], obj["metadata"]["name"])
        if key not in f.present:
            actions.append(
                ApplyOperatorObject("create", f"{key[0]} {ns}/{key[1]}", "missing", obj=obj)
            )
    actions += [
        AwaitBytes(
            "check",
            f"Secret {ns}/{s.destination}",
            "wait until ESO synced it, with the same bytes"
            if f.engine == "eso"
            else "wait until the operator wrote the same bytes",
            s.destination,
        )
        for s in f.syncs
    ]
    if f.engine == "eso":
        actions += plan_reload(f)
    done = f.migrated | {ns}
    dests = set(_destinations(f))
    for c in f.copiers:
        if not c.deletable:
            # issue 23, finding 4: it writes no Secret into another namespace and carries no
            # copier label: never deleted; suspended only when it reads a Secret handed over
            read = sorted(n for where, n in c.sources if where == ns and n in dests)
            if read and c.workload.kind == "CronJob":
                actions.append(
                    StopCopier(
                        "update",
                        c.ref,
                        f"suspended, not deleted: it reads Secret {ns}/{read[0]}, which the "
                        "operator writes from now on, and applies into its own namespace only "
                        "(no copier); resume it once it no longer writes that Secret",
                        c.ref,
                        False,
                    )
                )
            else:
                actions.append(
                    check(c.ref, "writes no Secret into another namespace: left as it is")
                )
            continue
        touched = {c.workload.namespace, *c.targets, *(n for n, _ in c.sources)}
        last = touched <= done
        actions.append(
            StopCopier(
                "delete" if last else "update",
                c.ref,
                f"{c.why}, into {', '.join(c.foreign) or 'other namespaces'}: every namespace "
                "it touches is migrated"
                if last
                else "suspended while other namespaces still get copies",
                c.ref,
                last,
            )
        )
    if f.copiers and f.engine != "eso":
        actions += [
            LabelForOperator(
                "check",
                f"Secret {ns}/{dest}",
                "its labels still there once the copiers are stopped (a copier run that "
                "replaced the Secret before took them off: put back)",
                dest,
                recheck=True,
            )
            for dest in _destinations(f)
        ]
    actions.append(MarkMigrated("update", f"backup {ns}", "record the namespace as migrated", ns))
    return actions


def plan_reload(f: NamespaceFacts) -> list[Action]:
    """Pure: ESO: the namespace's restart targets (that exist) whose Stakater Reloader
    annotation does not name all their Secrets yet: named, others' names kept first."""
    out: list[Action] = []
    for target, ours in eso.reload_targets(f.syncs).items():
        if target not in f.reload:
            out.append(
                check(
                    target_ref(target),
                    "not deployed: not annotated for Reloader (a bootstrap once it is deployed "
                    "annotates it)",
                )
            )
            continue
        value = eso.reload_value(f.reload[target], ours)
        if value is None:
            continue
        out.append(
            AnnotateReloadTarget(
                "update",
                target_ref(target),
                f"{eso.RELOAD_ANNOTATION}={value}: Stakater Reloader rolls it out when ESO "
                "changes these Secrets' data (metadata only: no rollout now; the backup keeps "
                "the annotation as it was)",
                target,
                value,
            )
        )
    return out


def _destinations(f: NamespaceFacts) -> list[str]:
    return sorted({s.destination for s in f.syncs})


def plan_labels(f: NamespaceFacts) -> list[Action]:
    """Pure: a label step for each mapped Secret that a current operator's Secret cache cannot
    see yet (see :class:`LabelForOperator`); none for one that carries the labels already (a
    re-run after a kill, or a Secret that had them)."""
    out: list[Action] = []
    for dest in _destinations(f):
        record = f.current.get(dest)
        have = record.labels if record is not None else {}
        if conv.operator_cache_sees(have):
            continue
        reason = (
            f"labels {conv.OPERATOR_CACHE_LABELS_TEXT} (a merge patch of these two only) "
            "before its VaultStaticSecret: a current operator (VSO 0.10 and later) checks the "
            "Secret through its cache of Secrets with these labels, and without them writes it "
            "again and restarts its targets on every refresh"
        )
        replaced = [
            f"{k}={have[k]}"
            for k, v in conv.OPERATOR_CACHE_LABELS.items()
            if k in have and have[k] != v
        ]
        if replaced:
            reason += (
                f"; replaces {', '.join(replaced)} (the backup keeps it; whatever set it must "
                "not set it back)"
            )
        out.append(LabelForOperator("update", f"Secret {f.namespace}/{dest}", reason, dest))
    return out


def copiers_touching(
    workloads: list[WorkloadSeen], namespace: str, selectors: tuple[str, ...]
) -> list[Copier]:
    return [
        c
        for c in find_copiers(workloads, selectors)
        if namespace in {c.workload.namespace, *c.targets, *(n for n, _ in c.sources)}
    ]


def _migrated(state_dir: Path) -> set[str]:
    folder = state_dir / "migrate"
    out = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        backup = Backup.load(path)
        if backup is not None and backup.done:
            out.add(backup.namespace)
    return out


def build_facts(
    namespace: str,
    catalog: Catalog,
    secrets: list[JsonObject],
    workloads: list[WorkloadSeen],
    selectors: tuple[str, ...],
    *,
    kv: dict[str, tuple[dict[str, str], int]] | None = None,
    synced: set[tuple[str, str]] | None = None,
    backup: Backup | None = None,
    present: set[tuple[str, str]] | None = None,
    migrated: set[str] | None = None,
    operator: OperatorApi | None = None,
    server: str = "",
    reload: dict[eso.Target, str] | None = None,
) -> NamespaceFacts:
    """Pure: a namespace's facts from what was read. ``secrets``: the Secrets (objects as
    the API gives them) the catalog maps to the paths this namespace fills, in every
    namespace; ``synced``: those a VaultStaticSecret (or an ExternalSecret) writes already."""
    synced = synced or set()
    mine = [s for s in syncs(catalog) if s.namespace == namespace]
    filled = {s.kv_path for s in mine}
    objects = {
        (str(o["metadata"].get("namespace", "")), str(o["metadata"].get("name", ""))): o
        for o in secrets
    }
    current = {
        s.destination: SecretRecord.of_object(objects[(namespace, s.destination)])
        for s in mine
        if (namespace, s.destination) in objects
    }
    others: dict[str, dict[str, dict[str, str]]] = {}
    for s in syncs(catalog):
        if s.namespace == namespace or s.kv_path not in filled:
            continue
        if (s.namespace, s.destination) in synced:
            continue  # synced by the operator from Vault: not a second source
        obj = objects.get((s.namespace, s.destination))
        if obj is not None:
            data = dict(obj.get("data") or {})
            data.pop(RAW_KEY, None)
            others.setdefault(s.kv_path, {})[f"{s.namespace}/{s.destination}"] = data
    seen = {key: _secret(obj, synced=key in synced) for key, obj in objects.items()}
    # copies of any type: the type is the refusals' business (plan_namespace), not discovery's
    types = frozenset(s.type for s in seen.values()) - {SERVICE_ACCOUNT_TOKEN}
    found = discover(workloads, list(seen.values()), None, selectors, types)
    return NamespaceFacts(
        namespace,
        mine,
        current,
        backup,
        kv if kv is not None else {},
        others,
        present or set(),
        copiers_touching(workloads, namespace, selectors),
        migrated or set(),
        operator or OperatorApi(installed=True),
        seen,
        found.copies,
        server,
        reload or {},
    )


def namespace_facts(
    kube: Kube,
    api: Api,
    catalog: Catalog,
    namespace: str,
    state_dir: Path,
    selectors: tuple[str, ...],
    engine: str = "vso",
    server: str = "",
) -> NamespaceFacts:
    """What moving ``namespace`` depends on, read from the cluster, Vault and the state
    folder. ``engine``: the sync engine (``vso`` or ``eso``); ``server``: Vault's address
    in ESO's SecretStores."""
    mine = [s for s in syncs(catalog) if s.namespace == namespace]
    filled = {s.kv_path for s in mine}
    secrets = []
    for s in syncs(catalog):
        if s.kv_path in filled:
            obj = kube.get("v1", "Secret", s.destination, s.namespace)
            if obj is not None:
                secrets.append(obj)
    backup = Backup.load(backup_path(state_dir, namespace))
    kv = {s.kv_path: read_kv(api, s.kv_path) for s in mine}
    crd = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
    operator = eso.read_crd(kube.get(*crd, eso.ES_CRD)) if engine == "eso" else operator_api(kube)
    synced: set[tuple[str, str]] = set()
    present = set()
    reload: dict[eso.Target, str] = {}
    if operator.installed:
        api_version, kind = eso.sync_object(engine)
        for o in kube.list(api_version, kind):
            meta = o["metadata"]
            target = ((o.get("spec") or {}).get("target") or {}).get("name") or meta["name"]
            synced.add((meta["namespace"], target if engine == "eso" else meta["name"]))
        for api_version, kind in operator_kinds(engine):
            for o in kube.list(api_version, kind, namespace=namespace):
                if managed_by_catalog(o, catalog):
                    present.add((kind, o["metadata"]["name"]))
    if engine == "eso":
        for ns, kind, name in eso.reload_targets(mine):
            obj = kube.get(WORKLOAD_API[kind], kind, name, ns)
            if obj is not None:
                annotations = (obj.get("metadata") or {}).get("annotations") or {}
                reload[(ns, kind, name)] = str(annotations.get(eso.RELOAD_ANNOTATION) or "")
    workloads, _ = observe(kube, secrets=False)
    return build_facts(
        namespace,
        catalog,
        secrets,
        workloads,
        selectors,
        kv=kv,
        synced=synced,
        backup=backup,
        present=present,
        migrated=_migrated(state_dir),
        operator=operator,
        server=server,
        reload=reload,
    )


def managed_by_catalog(obj: JsonObject, catalog: Catalog) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(conv.MANAGED_BY_LABEL) == conv.MANAGED_BY_VALUE
        and labels.get(conv.CATALOG_LABEL) == catalog.name
    )


def _same_bytes(kube: Kube, namespace: str, name: str, record: SecretRecord) -> str:
    obj = kube.get("v1", "Secret", name, namespace) or {}
    data = dict(obj.get("data") or {})
    raw = data.pop(RAW_KEY, None)
    if raw is None:
        raise Pending("not written by the operator yet")
    if data != record.data:
        raise Pending("its keys differ from the backed-up ones")
    return "same bytes"


def _same_bytes_eso(kube: Kube, namespace: str, name: str, record: SecretRecord) -> str:
    """ESO merged into the Secret (its ExternalSecret says synced, the Secret carries ESO's
    label) and its data is exactly the backed-up data (Merge keeps the object and its keys)."""
    es = kube.get(eso.ESO_API, "ExternalSecret", name, namespace)
    if eso.ready(es) is None:
        raise Pending(f"ExternalSecret not synced yet: {eso.why_not_synced(es, None)}")
    obj = kube.get("v1", "Secret", name, namespace) or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(eso.MANAGED_LABEL) != "true":
        raise Pending("not written by ESO yet (no label of its)")
    if dict(obj.get("data") or {}) != record.data:
        raise Pending("its keys differ from the backed-up ones")
    return "same bytes"


def _label(kube: Kube, namespace: str, name: str, recheck: bool) -> None:
    if recheck:
        obj = kube.get("v1", "Secret", name, namespace)
        if obj is None:
            raise BootstrapError(
                f"Secret {namespace}/{name} is gone: a copier deleted it before it was stopped; "
                "'invoke migrate.rollback' puts it back as backed up"
            )
        if conv.operator_cache_sees((obj.get("metadata") or {}).get("labels")):
            return
        log.warning(
            "Secret %s/%s lost the labels of the operator's Secret cache while a copier still "
            "ran (it replaced the Secret): put back",
            namespace,
            name,
        )
    patch = {"metadata": {"labels": dict(conv.OPERATOR_CACHE_LABELS)}}
    kube.merge_patch("v1", "Secret", name, namespace, patch)
    if not recheck:
        failpoints.point("migrate:labelled")


def _backed_up(backup: Backup | None, path: Path, name: str) -> SecretRecord:
    """A Secret's record in the backup; the backup or the record gone is an error."""
    if backup is None or name not in backup.secrets:
        raise BootstrapError(f"{path}: holds no backup of Secret {name} (moved or edited?)")
    return backup.secrets[name]


def apply_namespace(
    kube: Kube,
    api: Api,
    catalog: Catalog,
    f: NamespaceFacts,
    actions: list[Action],
    state_dir: Path,
    ws: WaitSettings,
) -> None:
    path = backup_path(state_dir, f.namespace)
    for action in actions:
        backup = Backup.load(path)
        match action:
            case BackupNamespace():
                records = {s.destination: f.current[s.destination] for s in f.syncs}
                for c in f.copiers:
                    obj = kube.get(
                        "batch/v1", c.workload.kind, c.workload.name, c.workload.namespace
                    )
                    where = copier_path(state_dir, c.ref)
                    if obj is not None and not where.exists():
                        write_private(where, json.dumps(_pristine(obj), indent=2), overwrite=False)
                Backup(
                    f.namespace,
                    records,
                    False,
                    time.time(),
                    tuple(c.ref for c in f.copiers),
                    {target_ref(t): value for t, value in sorted(f.reload.items())},
                ).save(path, overwrite=False)
                failpoints.point("migrate:backed-up")
            case PushValues(path=kv_path, destination=dest, version=version):
                values = _values(_backed_up(backup, path, dest))
                if isinstance(values, str):  # planned only for UTF-8 values: changed since
                    raise BootstrapError(f"{path}: key {values!r} of {dest} is not UTF-8 text")
                api.write(
                    f"{conv.KV_MOUNT}/data/{kv_path}", {"data": values, "options": {"cas": version}}
                )
                failpoints.point("migrate:pushed")
            case LabelForOperator(destination=dest, recheck=recheck):
                _label(kube, f.namespace, dest, recheck)
            case ApplyOperatorObject(obj=obj):
                kube.apply(obj)
                failpoints.point("migrate:applied")
            case AwaitBytes(destination=dest):
                same = _same_bytes_eso if f.engine == "eso" else _same_bytes
                wait_for(
                    partial(same, kube, f.namespace, dest, _backed_up(backup, path, dest)),
                    f"Secret {f.namespace}/{dest} to hold its bytes from Vault",
                    ws,
                )
            case AnnotateReloadTarget(workload=(ns, kind, name), value=value):
                annotate_reload(kube, (ns, kind, name), value)
            case StopCopier(ref=ref, delete=delete):
                c = next(c for c in f.copiers if c.ref == ref)
                w = c.workload
                if delete:
                    kube.delete("batch/v1", w.kind, w.name, w.namespace)
                elif w.kind == "CronJob":
                    kube.patch_suspend(w.namespace, w.name, True)
                failpoints.point("migrate:copier")
            case MarkMigrated():
                if backup is None:
                    raise BootstrapError(f"{path}: the backup is gone; nothing marked migrated")
                replace(backup, done=True).save(path, overwrite=True)
            case Action(verb="check"):
                pass
            case _:
                raise TypeError(f"migrate.namespace cannot apply {action.kind}")


def annotate_reload(kube: Kube, target: eso.Target, value: str | None) -> None:
    """Set (or, ``None``, remove) a restart target's Reloader annotation: a merge patch of
    that annotation only."""
    ns, kind, name = target
    kube.merge_patch(
        WORKLOAD_API[kind],
        kind,
        name,
        ns,
        {"metadata": {"annotations": {eso.RELOAD_ANNOTATION: value}}},
        field_manager=eso.RELOAD_FIELD_MANAGER,
    )


# -- rollback --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteOperatorObject(Action):
    """Delete one of the catalog's operator objects in the namespace."""

    api_version: str
    kind_: str
    name: str
    namespace: str


@dataclass(frozen=True)
class RestoreSecret(Action):
    """Put a Secret back exactly as backed up: data, type, labels, annotations."""

    namespace: str
    name: str


@dataclass(frozen=True)
class RestoreCopier(Action):
    """Re-create a deleted copier, or resume a suspended one, as it was before."""

    ref: str


@dataclass(frozen=True)
class RestoreReloadTarget(Action):
    """ESO: put a restart target's Reloader annotation back as the backup has it."""

    workload: eso.Target
    value: str  # "" : it had none


@dataclass(frozen=True)
class AwaitGone(Action):
    """ESO: wait until the deleted ExternalSecrets are gone (ESO's finalizer released), so
    ESO writes none of the Secrets once they are put back."""

    api_version: str
    kind_: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class SetBackupAside(Action):
    """Rename the backup (kept): a later migration of the namespace starts afresh."""

    namespace: str


def plan_rollback(kube: Kube, catalog: Catalog, namespace: str, state_dir: Path) -> list[Action]:
    backup = Backup.load(backup_path(state_dir, namespace))
    if backup is None:
        return [check(namespace, "no backup: nothing to roll back")]
    actions: list[Action] = []
    crd = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
    kinds: list[tuple[str, str]] = []
    if kube.get(*crd, eso.ES_CRD) is not None:  # whichever engine moved it: both, if there
        kinds += ESO_KINDS[:2]
    if kube.get(*crd, VSS_CRD) is not None:
        kinds += OPERATOR_KINDS[:2]
    kinds.append(("v1", "ServiceAccount"))
    # the objects that write Secrets first (VaultStaticSecrets, ExternalSecrets), then what
    # they log in with, then the ServiceAccounts
    kinds.sort(key=lambda k: k[1] not in ("VaultStaticSecret", "ExternalSecret"))
    for api_version, kind in kinds:
        deleted = []
        for o in kube.list(api_version, kind, namespace=namespace):
            if managed_by_catalog(o, catalog):
                name = o["metadata"]["name"]
                deleted.append(name)
                actions.append(
                    DeleteOperatorObject(
                        "delete",
                        f"{kind} {namespace}/{name}",
                        "made by the migration",
                        api_version,
                        kind,
                        name,
                        namespace,
                    )
                )
        if kind == "ExternalSecret" and deleted:
            actions.append(
                AwaitGone(
                    "check",
                    f"ExternalSecrets in {namespace}",
                    f"wait until ESO released {len(deleted)} (its finalizer): it writes none "
                    "of the Secrets once they are put back",
                    api_version,
                    kind,
                    tuple(deleted),
                )
            )
    # the Reloader annotations before the Secrets: Reloader reads the workloads live when a
    # Secret changes, so putting the old values back rolls nothing out (as with VSO)
    for ref, value in sorted(backup.targets.items()):
        target = parse_target(ref)
        ns, kind, name = target
        obj = kube.get(WORKLOAD_API[kind], kind, name, ns)
        if obj is None:
            continue
        have = ((obj.get("metadata") or {}).get("annotations") or {}).get(eso.RELOAD_ANNOTATION)
        if str(have or "") != value:
            actions.append(
                RestoreReloadTarget(
                    "update",
                    ref,
                    f"its {eso.RELOAD_ANNOTATION} back as it was" + ("" if value else " (none)"),
                    target,
                    value,
                )
            )
    for name, record in sorted(backup.secrets.items()):
        obj = kube.get("v1", "Secret", name, namespace)
        if obj is None or SecretRecord.of_object(obj) != record:
            actions.append(
                RestoreSecret(
                    "update",
                    f"Secret {namespace}/{name}",
                    "back to its backed-up data, labels and annotations",
                    namespace,
                    name,
                )
            )
    for ref in backup.copiers:
        where = copier_path(state_dir, ref)
        if not where.exists():
            continue
        pristine = json.loads(where.read_text(encoding="utf-8"))
        meta = pristine["metadata"]
        obj = kube.get("batch/v1", pristine["kind"], meta["name"], meta["namespace"])
        if obj is None or _pristine(obj) != pristine:
            actions.append(
                RestoreCopier(
                    "create" if obj is None else "update",
                    ref,
                    "back as it was before the migration",
                    ref,
                )
            )
    actions.append(
        SetBackupAside(
            "update",
            f"backup {namespace}",
            "set aside (kept): a later migration starts afresh",
            namespace,
        )
    )
    return actions


def _gone(kube: Kube, namespace: str, api_version: str, kind: str, names: set[str]) -> str:
    left = sorted(
        n
        for o in kube.list(api_version, kind, namespace=namespace)
        if (n := o["metadata"]["name"]) in names
    )
    if left:
        raise Pending(
            f"{len(left)} still there (first: {left[0]}), held by ESO's finalizer until ESO "
            "releases them: is ESO running? Nothing was put back yet; run the rollback again "
            "once it runs"
        )
    return "gone"


def apply_rollback(
    kube: Kube,
    namespace: str,
    actions: list[Action],
    state_dir: Path,
    ws: WaitSettings | None = None,
) -> None:
    path = backup_path(state_dir, namespace)
    for action in actions:
        match action:
            case DeleteOperatorObject(api_version=v, kind_=k, name=n, namespace=ns):
                kube.delete(v, k, n, ns)
            case AwaitGone(api_version=v, kind_=k, names=names):
                wait_for(
                    partial(_gone, kube, namespace, v, k, set(names)),
                    f"the {k}s of {namespace} to be gone",
                    ws or WaitSettings(),
                )
            case RestoreReloadTarget(workload=workload, value=value):
                annotate_reload(kube, workload, value or None)
            case RestoreSecret(name=name):
                record = _backed_up(Backup.load(path), path, name)
                kube.put_secret_record(namespace, name, record.as_json())
            case RestoreCopier(ref=ref):
                pristine = json.loads(copier_path(state_dir, ref).read_text(encoding="utf-8"))
                meta = pristine["metadata"]
                if kube.get("batch/v1", pristine["kind"], meta["name"], meta["namespace"]):
                    # the migration only suspends: resume as it was
                    suspend = bool((pristine.get("spec") or {}).get("suspend"))
                    kube.patch_suspend(meta["namespace"], meta["name"], suspend)
                else:
                    kube.create_object(pristine)
            case SetBackupAside():
                path.rename(path.with_name(f"{namespace}.rolled-back-{int(time.time())}.json.bak"))
            case Action(verb="check"):
                pass
            case _:
                raise TypeError(f"migrate.rollback cannot apply {action.kind}")


@dataclass(frozen=True)
class NamespaceReport:
    """What a namespace's migration did, by name only (``migrate-<namespace>.json``)."""

    namespace: str
    #: (KV path, the Secret ``namespace/name`` its values came from)
    values_moved: tuple[tuple[str, str], ...]
    secrets_synced: tuple[str, ...]
    #: the Secrets given the labels of the operator's Secret cache (see LabelForOperator)
    labelled: tuple[str, ...]
    #: (copier, "deleted" or "suspended")
    copiers: tuple[tuple[str, str], ...]
    left_by_hand: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "values_moved": [{"path": p, "from": src} for p, src in self.values_moved],
            "secrets_synced": list(self.secrets_synced),
            "labelled": list(self.labelled),
            "copiers": [{"copier": c, "done": done} for c, done in self.copiers],
            "left_by_hand": list(self.left_by_hand),
        }


def namespace_report(
    kube: Kube, catalog: Catalog, f: NamespaceFacts, actions: list[Action]
) -> NamespaceReport:
    """What a namespace's migration did, by name only: values moved, Secrets the operator now
    syncs (and those labelled for its Secret cache), copiers suspended or removed, and the
    Secrets there the catalog does not map (left as they are, by hand)."""
    mapped = {s.destination for s in f.syncs}
    left = []
    for obj in kube.list("v1", "Secret", namespace=f.namespace):
        meta = obj.get("metadata") or {}
        if (
            obj.get("type", "Opaque") == "Opaque"
            and not meta.get("ownerReferences")
            and meta.get("name") not in mapped
        ):
            left.append(str(meta.get("name")))
    return NamespaceReport(
        namespace=f.namespace,
        values_moved=tuple(
            (a.path, f"{f.namespace}/{a.destination}") for a in actions if isinstance(a, PushValues)
        ),
        secrets_synced=tuple(sorted(mapped)),
        labelled=tuple(
            a.destination for a in actions if isinstance(a, LabelForOperator) and not a.recheck
        ),
        copiers=tuple(
            (a.ref, "deleted" if a.delete else "suspended")
            for a in actions
            if isinstance(a, StopCopier)
        ),
        left_by_hand=tuple(sorted(left)),
    )
