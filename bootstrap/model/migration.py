"""Migration off secret-copier jobs (the seed's section 7), as pure logic: which Jobs and
CronJobs copy Secrets across namespaces, which Secrets they left where, which Secrets were
made by hand, and the catalog fragment that puts all of them in Vault under the path
convention (``shared/<name>`` for a Secret found in several namespaces, ``<service>/<secret>``
otherwise).

What is read from the cluster comes in as plain data (:class:`SecretSeen`,
:class:`WorkloadSeen`): names, keys and a digest of the values, never the values.
"""

from __future__ import annotations

import re
import shlex
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import yaml

from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import syncs
from bootstrap.model.settings import Settings

#: Label selectors (``key=value``) that mark a Job or CronJob as a secret copier (the
#: setting ``migrate_copier_selectors``).
DEFAULT_SELECTORS = Settings.migrate_copier_selectors
#: A script copies Secrets when it reads one with kubectl and writes into a namespace.
READ_SECRET = re.compile(
    r"\bkubectl\b[^|;&\n]*\bget\s+secrets?\b|\bkubectl\b[^|;&\n]*\bget\s+secrets?/"
)
WRITE = re.compile(r"\bkubectl\b[^|;&\n]*\b(apply|create|replace)\b")
#: ``kubectl create secret generic|tls|docker-registry NAME --from-literal ...``: a Job that
#: makes a Secret from values written in its own spec.
CREATE_SECRET = re.compile(r"\bkubectl\b[^|;&\n]*\bcreate\s+secret\b")
#: Secrets no migration touches: made by Kubernetes, Helm, the operator or the product.
SKIPPED_TYPES = frozenset(
    {
        "kubernetes.io/service-account-token",
        "helm.sh/release.v1",
        "bootstrap.kubernetes.io/token",
    }
)


#: Annotations by which in-cluster replicators mark their copies ("ns/name" of the source):
#: kubernetes-replicator (mittwald) and emberstack's reflector. A copy is never a source.
COPY_ANNOTATIONS = {
    "replicator.v1.mittwald.de/replicate-from": "kubernetes-replicator",
    "reflector.v1.k8s.emberstack.com/reflects": "reflector",
}
#: kubernetes-replicator's annotation on a source naming the namespaces it is pushed into.
REPLICATE_TO = "replicator.v1.mittwald.de/replicate-to"
#: The largest Secret a migration can hand over: the operator writes every value twice (the
#: data, and Vault's response as JSON under ``_raw``), and Kubernetes refuses a Secret whose
#: data exceeds 1 MiB: anything larger times out waiting for the operator.
MIGRATE_MAX_BYTES = conv.SECRET_MAX_BYTES // 2 - 16 * 1024
#: Labels of a Secret the Vault Secrets Operator made (and owns) itself.
OPERATOR_OWNER_LABELS = {"app.kubernetes.io/component": "secret-sync"}
OPERATOR_OWNER_UID_LABEL = "secrets.hashicorp.com/vso-ownerRefUID"


@dataclass(frozen=True)
class SecretSeen:
    namespace: str
    name: str
    keys: tuple[str, ...]
    #: sha256 over the sorted keys and values: equal digests mean equal data
    digest: str
    type: str = "Opaque"
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    owned: bool = False  # has ownerReferences (a controller's)
    created: str = ""
    immutable: bool = False
    #: bytes of its keys and values (decoded)
    size: int = 0
    #: "ns/name" of the Secret a replicator copied this one from (its annotation), and which
    copied_from: str = ""
    copied_by: str = ""
    #: namespaces a kubernetes-replicator source says it is pushed into (``replicate-to``)
    copies_to: tuple[str, ...] = ()

    @property
    def operator_owned(self) -> bool:
        """Made by the Vault Secrets Operator (its owner labels)."""
        return OPERATOR_OWNER_UID_LABEL in self.labels or all(
            self.labels.get(k) == v for k, v in OPERATOR_OWNER_LABELS.items()
        )

    @property
    def managed(self) -> bool:
        """Made by the product: a placeholder (``secrets-bootstrap/managed-by``; earlier
        releases used ``app.kubernetes.io/managed-by``)."""
        return conv.MANAGED_BY_VALUE in (
            self.labels.get(conv.SECRET_MANAGED_LABEL),
            self.labels.get(conv.MANAGED_BY_LABEL),
        )


@dataclass(frozen=True)
class WorkloadSeen:
    kind: str  # CronJob or Job
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    images: tuple[str, ...] = ()
    #: every container's command and args, joined (shell scripts included)
    script: str = ""
    #: containers' environment (name -> value), for $VARS in the script
    env: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    suspended: bool = False
    owned: bool = False  # a Job a CronJob made: its CronJob is the copier


@dataclass(frozen=True)
class Copier:
    workload: WorkloadSeen
    why: str
    sources: tuple[tuple[str, str], ...]  # (namespace, Secret name) it reads
    targets: tuple[str, ...]  # namespaces it writes into
    #: found by a label of ``migrate_copier_selectors``
    by_label: bool = False
    #: (namespace, Secret name) it makes with ``kubectl create secret`` (values in its spec)
    creates: tuple[tuple[str, str], ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.workload.kind} {self.workload.namespace}/{self.workload.name}"

    @property
    def foreign(self) -> tuple[str, ...]:
        """The namespaces other than its own it writes Secrets into."""
        own = self.workload.namespace
        if not (self.sources or self.creates):
            return ()
        return tuple(t for t in self.targets if t != own)

    @property
    def deletable(self) -> bool:
        """A copier a migration may delete (issue 23, finding 4): one carrying a copier label,
        or one that reads (or makes) a Secret and writes it into another namespace. A Job that
        reads its own Secret and applies something in its own namespace is not one."""
        return self.by_label or bool(self.foreign)


@dataclass(frozen=True)
class Copy:
    """One Secret name found in several namespaces (a copier's doing)."""

    name: str
    source: str  # the namespace it is copied from
    namespaces: tuple[str, ...]  # every namespace holding it, the source first
    keys: tuple[str, ...]
    copiers: tuple[str, ...]
    #: namespaces whose data differs from the source's (a conflict when not empty)
    differs: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        """Copied into several namespaces: one shared path every namespace holding it reads.
        Copied into one: each namespace's service keeps it under its own path."""
        return len(self.namespaces) > 2


@dataclass(frozen=True)
class HandMade:
    namespace: str
    name: str
    keys: tuple[str, ...]
    path: str  # where the catalog puts it: <service>/<secret>


@dataclass
class Discovery:
    copiers: list[Copier]
    copies: list[Copy]
    handmade: list[HandMade]
    #: per namespace, the service the fragment gives it
    services: dict[str, str]
    #: (namespace, Secret, why) found but left out: no migration can hand it over
    unmigratable: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Copy]:
        return [c for c in self.copies if c.differs]


# -- copiers --------------------------------------------------------------------------------


def _matches(labels: dict[str, str], selector: str) -> bool:
    key, _, value = selector.partition("=")
    return labels.get(key.strip()) == value.strip() if value else key.strip() in labels


def _words(script: str) -> list[str]:
    try:
        return shlex.split(script, comments=False, posix=True)
    except ValueError:
        return script.split()


def _expand(word: str, env: dict[str, str], loops: dict[str, list[str]]) -> list[str]:
    """A namespace word: literal, ``$VAR``/``${VAR}`` from a for-loop or the environment."""
    m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", word)
    if not m:
        return [word] if re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", word) else []
    var = m.group(1)
    if var in loops:
        return loops[var]
    if var in env:
        return [v for v in re.split(r"[\s,]+", env[var]) if v]
    return []


def _namespace_after(words: list[str], i: int) -> str | None:
    w = words[i]
    if w in ("-n", "--namespace") and i + 1 < len(words):
        return words[i + 1]
    if w.startswith("--namespace="):
        return w.split("=", 1)[1]
    if w.startswith("-n") and len(w) > 2 and not w.startswith("--"):
        return w[2:]
    return None


#: kubectl flags whose value is the next word.
VALUED_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "-o",
        "--output",
        "-l",
        "--selector",
        "-f",
        "--filename",
        "--context",
        "--kubeconfig",
        "--field-manager",
    }
)


def _positional(words: list[str]) -> list[str]:
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in VALUED_FLAGS:
            skip = True
        elif not w.startswith("-"):
            out.append(w)
    return out


def parse_script(
    script: str, env: dict[str, str], own: str = "default"
) -> tuple[list[tuple[str, str]], list[str]]:
    """(Secrets read, namespaces written) by the kubectl commands of a copier's script.

    Each command (split at ``|``, ``;``, ``&&``, new lines) is read on its own: ``kubectl get
    secret NAME -n NS`` (or ``secret/NAME``, ``--namespace[=]NS``) is a read; ``kubectl
    apply|create|replace ... -n NS`` a write. ``for ns in a b c; do`` loops and environment
    variables name namespaces too. A command without a namespace works in ``own`` (kubectl
    in a pod: the pod's namespace)."""
    reads, writes, _ = _parse(script, env, own)
    return reads, writes


def _parse(
    script: str, env: dict[str, str], own: str
) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]]]:
    """(Secrets read, namespaces written, Secrets made by ``kubectl create secret``)."""
    script = script.replace("\\\n", " ")  # line continuations
    loops: dict[str, list[str]] = {}
    for m in re.finditer(
        r"\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\s+([^;\n]*?)\s*(;|\n)\s*do\b", script
    ):
        values: list[str] = []
        for word in _words(m.group(2)):
            values += _expand(word, env, {})
        loops[m.group(1)] = values
    reads: list[tuple[str, str]] = []
    writes: list[str] = []
    creates: list[tuple[str, str]] = []
    for command in re.split(r"\|\||&&|[|;\n]", script):
        words = _words(command)
        if "kubectl" not in words:
            continue
        words = words[words.index("kubectl") + 1 :]
        namespaces: list[str] = []
        for i in range(len(words)):
            ns = _namespace_after(words, i)
            if ns is not None:
                namespaces += _expand(ns, env, loops)
        positional = _positional(words)
        verb = positional[0] if positional else ""
        if verb == "get":
            rest = positional[1:]
            names: list[str] = []
            if rest and rest[0] in ("secret", "secrets"):
                names = [w for w in rest[1:2] if re.fullmatch(r"[a-z0-9][-a-z0-9.]*", w)]
            elif rest and rest[0].startswith(("secret/", "secrets/")):
                names = [rest[0].split("/", 1)[1]]
            for name in names:
                for ns in namespaces or [own]:
                    reads.append((ns, name))
        elif verb in ("apply", "create", "replace"):
            if verb == "create" and positional[1:2] == ["secret"] and len(positional) > 3:
                made = positional[3]
                if re.fullmatch(r"[a-z0-9][-a-z0-9.]*", made):
                    creates += [(ns, made) for ns in namespaces or [own]]
                    writes += namespaces or [own]
                    continue
            writes += namespaces
    written = sorted(set(writes) - {ns for ns, _ in reads} or set(writes))
    return reads, written, creates


def find_copiers(
    workloads: list[WorkloadSeen], selectors: tuple[str, ...] = DEFAULT_SELECTORS
) -> list[Copier]:
    """The Jobs and CronJobs that copy Secrets: by label, or by a script that reads a Secret
    with kubectl and writes into a namespace. A Job made by a CronJob is its CronJob's."""
    out = []
    for w in workloads:
        if w.owned:
            continue
        by_label = next((s for s in selectors if _matches(w.labels, s)), None)
        by_script = bool(READ_SECRET.search(w.script) and WRITE.search(w.script))
        by_create = bool(CREATE_SECRET.search(w.script))
        if not (by_label or by_script or by_create):
            continue
        reads, writes, creates = _parse(w.script, w.env, w.namespace)
        if by_label:
            why = f"label {by_label}"
        elif by_script:
            why = "its script reads a Secret and writes it"
        else:
            why = "its script makes a Secret with 'kubectl create secret' (values in its spec)"
        copier = Copier(
            w,
            why,
            tuple(dict.fromkeys(reads)),
            tuple(writes),
            by_label=by_label is not None,
            creates=tuple(dict.fromkeys(creates)),
        )
        if by_script and not by_label and not copier.foreign and not creates:
            why = "its script reads a Secret and applies into its own namespace only (no copier)"
            copier = Copier(w, why, copier.sources, copier.targets)
        out.append(copier)
    return sorted(out, key=lambda c: (c.workload.namespace, c.workload.name))


# -- copies and hand-made Secrets -------------------------------------------------------------


def _candidate(s: SecretSeen, allowed: frozenset[str] = frozenset()) -> bool:
    if s.managed or s.owned or s.operator_owned or s.type in SKIPPED_TYPES:
        return False
    return s.type in allowed or not s.type.startswith("kubernetes.io/")


def not_migratable(s: SecretSeen) -> str | None:
    """Why no migration can hand this Secret over to the operator (None when one can): it
    would be refused by the catalog, or time out waiting for the operator."""
    if not conv.is_dns_label(s.name):
        return (
            f"its name is not a DNS-1123 label of at most {conv.DNS1123_LABEL_MAX} characters "
            "(a catalog secret name and a destination must be one): rename it first"
        )
    if s.immutable:
        return "it is immutable: the operator cannot write into it (make a mutable copy first)"
    if s.size > MIGRATE_MAX_BYTES:
        return (
            f"{s.size} bytes of data: the operator writes each value twice (its data and "
            f"'{conv.OPERATOR_RAW_KEY}'), over the 1 MiB a Secret may hold; at most "
            f"{MIGRATE_MAX_BYTES} bytes migrate"
        )
    bad = next((k for k in s.keys if conv.secret_key_problem(k)), None)
    if bad is not None:
        return f"its key {bad!r} {conv.secret_key_problem(bad)}: no catalog may declare it"
    return None


def _source(
    name: str,
    here: dict[str, SecretSeen],
    copiers: list[Copier],
) -> tuple[str | None, list[str]]:
    """Where the original of the Secrets named ``name`` lives, and who copied them: the side
    copiers read from that no copier writes it into (a chain's first link), then the side a
    replicator's annotation names; a replicator's copy never; among several, the oldest. Not
    the namespace a copier runs in: that is no evidence of anything (issue 23, finding 10)."""
    mirrors = {ns for ns, s in here.items() if s.copied_from}
    by: list[str] = [c.ref for c in copiers if any(n == name for _, n in c.sources)]
    by += sorted({s.copied_by for s in here.values() if s.copied_by})

    def oldest(namespaces: set[str]) -> str | None:
        pool = [here[ns] for ns in namespaces if ns in here and ns not in mirrors]
        return min(pool, key=lambda s: (s.created, s.namespace)).namespace if pool else None

    read = {ns for c in copiers for ns, n in c.sources if n == name}
    written = {t for c in copiers if any(n == name for _, n in c.sources) for t in c.targets}
    for candidates in (read - written, read):
        found = oldest(candidates)
        if found is not None:
            return found, by
    named = {s.copied_from.split("/", 1)[0] for s in here.values() if s.copied_from}
    named |= {ns for ns, s in here.items() if s.copies_to}
    return oldest(named), by


def service_for(namespace: str, catalog: Catalog | None) -> str:
    """The service a namespace's Secrets belong to: the catalog's first in that namespace,
    else one named after the namespace (not a reserved name)."""
    if catalog is not None:
        for svc in catalog.services:
            if svc.namespace == namespace:
                return svc.name
    return namespace if namespace not in conv.RESERVED_SERVICE_NAMES else f"{namespace}-app"


def discover(
    workloads: list[WorkloadSeen],
    secrets: list[SecretSeen],
    catalog: Catalog | None = None,
    selectors: tuple[str, ...] = DEFAULT_SELECTORS,
    allowed_types: frozenset[str] = frozenset(),
) -> Discovery:
    """Copiers, the Secrets they copied (by their reads, a replicator's annotations, else by
    equal values under one name across namespaces), and the hand-made Secrets left in the
    namespaces concerned; Secrets no migration can hand over are listed apart, with why."""
    copiers = find_copiers(workloads, selectors)
    by_name: dict[str, list[SecretSeen]] = defaultdict(list)
    unmigratable: list[tuple[str, str, str]] = []
    for s in secrets:
        if not _candidate(s, allowed_types):
            continue
        why = not_migratable(s)
        if why is not None:
            unmigratable.append((s.namespace, s.name, why))
        elif s.copied_from and s.copied_from.split("/", 1)[-1] != s.name:
            unmigratable.append(
                (
                    s.namespace,
                    s.name,
                    f"a {s.copied_by} copy of {s.copied_from} under another name: migrate "
                    f"the source, then read its path with destination {s.name}",
                )
            )
        else:
            by_name[s.name].append(s)
    copies: list[Copy] = []
    taken: set[tuple[str, str]] = set()
    for name, found in sorted(by_name.items()):
        here = {s.namespace: s for s in found}
        if len(here) < 2:
            continue
        source, by = _source(name, here, copiers)
        if source is None and len({s.digest for s in found}) == 1:
            ordered = sorted(found, key=lambda s: (s.created, s.namespace))
            source = next((s.namespace for s in ordered if not s.copied_from), None)
        if source is None:
            continue
        copied = {t for c in copiers if any(n == name for _, n in c.sources) for t in c.targets}
        namespaces = [source, *sorted((copied | set(here)) - {source})]
        namespaces = [ns for ns in namespaces if ns in here]
        ref = here[source]
        differs = tuple(ns for ns in namespaces[1:] if here[ns].digest != ref.digest)
        keys = tuple(sorted({k for ns in namespaces for k in here[ns].keys}))
        copies.append(Copy(name, source, tuple(namespaces), keys, tuple(sorted(set(by))), differs))
        taken |= {(ns, name) for ns in namespaces}
    concerned = (
        {ns for c in copies for ns in c.namespaces}
        | {t for c in copiers for t in c.targets}
        | {ns for c in copiers for ns, _ in c.sources}
    )
    if catalog is not None:
        concerned |= set(catalog.namespaces)
    services = {ns: service_for(ns, catalog) for ns in sorted(concerned)}
    # the catalog's own destination Secrets are not hand-made: they are the catalog's already
    owned = {(s.namespace, s.destination) for s in syncs(catalog)} if catalog is not None else set()
    skip = owned | taken | {(ns, n) for ns, n, _ in unmigratable}
    handmade = []
    for s in sorted(secrets, key=lambda s: (s.namespace, s.name)):
        if (s.namespace, s.name) in skip:
            continue
        if s.namespace in concerned and _candidate(s, allowed_types):
            handmade.append(
                HandMade(s.namespace, s.name, s.keys, f"{services[s.namespace]}/{s.name}")
            )
    # shown where hand-made Secrets are looked for, and wherever one name sits in several
    # namespaces (a copy that cannot move)
    spread: dict[str, set[str]] = defaultdict(set)
    for s in secrets:
        spread[s.name].add(s.namespace)
    unmigratable = sorted(
        (ns, n, why)
        for ns, n, why in unmigratable
        if (ns, n) not in owned and (ns in concerned or len(spread[n]) > 1)
    )
    return Discovery(copiers, copies, handmade, services, unmigratable)


def paths(d: Discovery) -> dict[tuple[str, str], str]:
    """Where each (namespace, Secret) found goes in Vault (its KV path)."""
    out: dict[tuple[str, str], str] = {}
    for c in d.copies:
        for ns in c.namespaces:
            out[(ns, c.name)] = (
                f"{conv.SHARED}/{c.name}" if c.shared else f"{d.services[ns]}/{c.name}"
            )
    for h in d.handmade:
        out[(h.namespace, h.name)] = h.path
    return out


def fragment(d: Discovery, name: str = "migrated") -> str:
    """A catalog (valid on its own) declaring everything found: a shared secret per copy, a
    secret per hand-made Secret, a service per namespace reading them; keys with no source
    (``null``: ``migrate.namespace`` moves the values found into Vault)."""
    shared: dict[str, Any] = {}
    services: dict[str, dict[str, Any]] = {}

    def service(ns: str) -> dict[str, Any]:
        return services.setdefault(
            ns, {"name": d.services[ns], "namespace": ns, "secrets": {}, "reads": []}
        )

    for c in d.copies:
        if not c.shared:
            for ns in c.namespaces:
                service(ns)["secrets"][c.name] = {"keys": dict.fromkeys(c.keys)}
            continue
        shared[c.name] = {"keys": dict.fromkeys(c.keys)}
        for ns in c.namespaces:
            service(ns)["reads"].append({"path": f"{conv.SHARED}/{c.name}", "destination": c.name})
    for h in d.handmade:
        service(h.namespace)["secrets"][h.name] = {"keys": dict.fromkeys(h.keys)}
    doc: dict[str, Any] = {"version": 1, "name": name}
    if shared:
        doc["shared"] = shared
    doc["services"] = []
    for ns in sorted(services):
        svc = {k: v for k, v in services[ns].items() if v}
        doc["services"].append(svc)
    header = (
        "# Draft catalog fragment written by 'invoke migrate.discover': review it, then merge\n"
        "# it into the catalog. Keys carry no source (null): 'invoke migrate.namespace' moves\n"
        "# the values found in the cluster into Vault. Names of keys only, never values.\n"
    )
    if d.unmigratable:
        header += "# Not in this fragment: no migration can hand these Secrets over:\n"
        for ns, n, why in d.unmigratable:
            header += "#   " + _comment(f"{ns}/{n}: {why}") + "\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _comment(text: str) -> str:
    """One line of a YAML comment: printable ASCII only (a name cannot end the comment)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)
