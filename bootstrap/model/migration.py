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
#: Secrets no migration touches: made by Kubernetes, Helm, the operator or the product.
SKIPPED_TYPES = frozenset(
    {
        "kubernetes.io/service-account-token",
        "helm.sh/release.v1",
        "bootstrap.kubernetes.io/token",
    }
)


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

    @property
    def ref(self) -> str:
        return f"{self.workload.kind} {self.workload.namespace}/{self.workload.name}"


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


def parse_script(script: str, env: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(Secrets read, namespaces written) by the kubectl commands of a copier's script.

    Each command (split at ``|``, ``;``, ``&&``, new lines) is read on its own: ``kubectl get
    secret NAME -n NS`` (or ``secret/NAME``, ``--namespace[=]NS``) is a read; ``kubectl
    apply|create|replace ... -n NS`` a write. ``for ns in a b c; do`` loops and environment
    variables name namespaces too."""
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
                for ns in namespaces or ["default"]:
                    reads.append((ns, name))
        elif verb in ("apply", "create", "replace"):
            writes += namespaces
    return reads, sorted(set(writes) - {ns for ns, _ in reads} or set(writes))


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
        if not (by_label or by_script):
            continue
        reads, writes = parse_script(w.script, w.env)
        why = f"label {by_label}" if by_label else "its script reads a Secret and writes it"
        out.append(Copier(w, why, tuple(dict.fromkeys(reads)), tuple(writes)))
    return sorted(out, key=lambda c: (c.workload.namespace, c.workload.name))


# -- copies and hand-made Secrets -------------------------------------------------------------


def _candidate(s: SecretSeen) -> bool:
    return not (
        s.managed or s.owned or s.type in SKIPPED_TYPES or s.type.startswith("kubernetes.io/")
    )


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
) -> Discovery:
    """Copiers, the Secrets they copied (by their reads, else by equal names across the
    namespaces they write), and the hand-made Secrets left in the namespaces concerned."""
    copiers = find_copiers(workloads, selectors)
    by_name: dict[str, list[SecretSeen]] = defaultdict(list)
    for s in secrets:
        if _candidate(s):
            by_name[s.name].append(s)
    copies: list[Copy] = []
    taken: set[tuple[str, str]] = set()
    for name, found in sorted(by_name.items()):
        sources = [(ns, c.ref) for c in copiers for ns, n in c.sources if n == name]
        targets = {t for c in copiers if any(n == name for _, n in c.sources) for t in c.targets}
        here = {s.namespace: s for s in found}
        if sources:
            source = next((ns for ns, _ in sources if ns in here), sources[0][0])
            namespaces = [source, *sorted((targets | set(here)) - {source})]
            namespaces = [ns for ns in namespaces if ns in here]
        elif len(here) > 1 and len({s.digest for s in found}) == 1:
            ordered = sorted(found, key=lambda s: (s.created, s.namespace))
            source, namespaces = ordered[0].namespace, [s.namespace for s in ordered]
        else:
            continue
        if len(namespaces) < 2 or source not in here:
            continue
        ref = here[source]
        differs = tuple(ns for ns in namespaces[1:] if here[ns].digest != ref.digest)
        keys = tuple(sorted({k for ns in namespaces for k in here[ns].keys}))
        copies.append(
            Copy(
                name,
                source,
                tuple(namespaces),
                keys,
                tuple(sorted({r for _, r in sources})),
                differs,
            )
        )
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
    handmade = []
    for s in sorted(secrets, key=lambda s: (s.namespace, s.name)):
        if (s.namespace, s.name) in owned:
            continue
        if s.namespace in concerned and _candidate(s) and (s.namespace, s.name) not in taken:
            handmade.append(
                HandMade(s.namespace, s.name, s.keys, f"{services[s.namespace]}/{s.name}")
            )
    return Discovery(copiers, copies, handmade, services)


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
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
