"""Static check: prove, before anything is applied, that the policies, roles and operator
manifests agree and keep every service to its own secrets.

- every VaultStaticSecret's path is readable under the policies of the role its VaultAuth
  uses (evaluated as Vault does: ``*`` suffix glob, ``+`` segment wildcard, priority);
- the VaultStaticSecret, its VaultAuth, the ServiceAccount, the namespace and the role agree
  (the usual cause of VSO 403s);
- each role binds its own ServiceAccount in one namespace (no ``*``, not ``default``), names
  an audience, and grants its own policy and no other;
- a service's policies grant nothing outside the KV mount ``secret/`` (no ``auth/``, no
  ``sys/``) and nothing there but read and list;
- isolation: no role gets any capability on another service's paths (data, metadata,
  delete, undelete, destroy, subkeys, listing), nor on a shared or infrastructure secret it
  does not declare (and only read on those it declares);
- the operator's own isolation (VSO 1.4.1's fields): no VaultAuth lets other namespaces use
  it (``allowedNamespaces``) or takes its connection or defaults from elsewhere
  (``vaultConnectionRef`` of another namespace, ``vaultAuthGlobalRef``); no VaultStaticSecret
  uses another namespace's VaultAuth or SecretTransformation, or takes over an existing
  Secret (``destination.overwrite``); ``refreshAfter`` is one VSO 1.4.1 accepts, and restart
  targets are not silenced by ``hmacSecretData: false``; kinds of the operator the product
  never renders (VaultAuthGlobal, VaultDynamicSecret, ...) are findings, each with its risk.

Works on what vault-config writes for a catalog (:func:`bootstrap.model.render.vault_acl`, also
the source of ``invoke render`` and of the vault-config plan) with the operator resources,
or on a rendered directory (GitOps review), read the way Vault reads it. Whatever cannot be
read is a finding naming the file and the text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap.core.errors import BootstrapError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model import eso
from bootstrap.model.catalog import Catalog, one_unit
from bootstrap.model.policy import (
    PathIndex,
    PolicyParseError,
    Rule,
    Rules,
    capabilities,
    evaluate,
    parse_policy,
)
from bootstrap.model.render import ADMIN_POLICY_TEXT, operator_resources, vault_acl

PROBE = "__check_probe__"
#: A service the catalog does not hold (yet): a rule reaching its paths reaches beyond the
#: paths the catalog gives a role, whatever denies keep today's services out.
NEW_SERVICE = "__check_new_service__"
#: The KV version 2 API prefixes below the mount, one per kind of request on a secret.
KV_APIS = ("data", "metadata", "delete", "undelete", "destroy", "subkeys")
#: What a service policy may grant at all (inside ``secret/``).
READ_ONLY = frozenset({"read", "list"})
#: Role fields the product writes, plus ``policies`` (Vault's older name for token_policies).
ROLE_FIELDS = frozenset(
    {
        "bound_service_account_names",
        "bound_service_account_namespaces",
        "token_policies",
        "policies",
        "token_ttl",
        "audience",
    }
)
KINDS = ("ServiceAccount", "VaultAuth", "VaultStaticSecret")
#: The External Secrets Operator's kinds the product renders (sync_engine eso).
ESO_KINDS = ("SecretStore", "ExternalSecret")
#: ESO's kinds the product never renders, and what each would open up.
FOREIGN_ESO_KINDS = {
    "ClusterSecretStore": "cluster-wide, it serves every namespace with one Vault identity",
    "ClusterExternalSecret": "it writes ExternalSecrets into every namespace it selects",
    "PushSecret": "it writes a Secret's data into Vault, outside the catalog",
    "ClusterPushSecret": "it writes Secrets' data of the namespaces it selects into Vault",
}
#: The operator's kinds (VSO 1.4.1) the product never renders, and what each would open up
#: in a service's namespace. A VaultConnection is one only in a service namespace (the
#: operator's default one lives in the operator's namespace).
FOREIGN_OPERATOR_KINDS = {
    "VaultAuthGlobal": (
        "it supplies what the VaultAuths naming it leave unset (their VaultConnection, Vault "
        "namespace, headers, params, role), for the namespaces it allows"
    ),
    "VaultConnection": (
        "a VaultAuth that names it logs in at the address it holds, with its ServiceAccount's "
        "token, instead of through the operator's default connection"
    ),
    "VaultDynamicSecret": (
        "it syncs credentials from any Vault mount the role reaches, outside the catalog"
    ),
    "VaultPKISecret": "it issues certificates from a PKI mount, outside the catalog",
    "HCPAuth": (
        "it authenticates to HCP with a service principal, outside Vault's policies, for the "
        "namespaces it allows"
    ),
    "HCPVaultSecretsApp": (
        "it syncs an HCP Vault Secrets app into a Secret, outside the catalog and Vault's policies"
    ),
    "SecretTransformation": (
        "its templates rewrite the Secrets of every VaultStaticSecret that names it, from any "
        "namespace"
    ),
    "CSISecrets": (
        "it hands Vault secrets to pods through the CSI driver, beside the Secrets the "
        "catalog declares"
    ),
}
#: Vault attaches this policy to every token a kubernetes auth role issues.
DEFAULT_POLICY = "default"

#: Each role's rules (every policy it grants, parsed).
RulesByRole = dict[str, list[Rule]]
#: Per role, the secrets below the mount it reads (its VaultStaticSecrets' paths) or
#: declares.
ReadsByRole = dict[str, set[str]]


@dataclass
class Rendered:
    policies: dict[str, str] = field(default_factory=dict)
    roles: dict[str, JsonObject] = field(default_factory=dict)
    manifests: list[JsonObject] = field(default_factory=list)
    #: Where a policy or role was read from ("policy:<name>" / "role:<name>" -> file).
    origins: dict[str, str] = field(default_factory=dict)
    #: What could not be read at all (each one a finding).
    problems: list[str] = field(default_factory=list)
    #: Where the operator's default VaultConnection lives (the setting operator_namespace).
    operator_namespace: str = conv.OPERATOR_NAMESPACE
    #: ESO: the Vault address every SecretStore must name (the address rendered with).
    eso_server: str = ""

    def origin(self, kind: str, name: str) -> str:
        return self.origins.get(f"{kind}:{name}", f"{kind} {name}")

    def object_where(self, kind: str, ns: str, name: str) -> str:
        """``FILE: Kind ns/name`` for a manifest read from a tree, ``Kind ns/name`` for one
        built from the catalog."""
        label = f"{kind or '(no kind)'} {ns}/{name}"
        file = self.origins.get(f"manifest:{kind}/{ns}/{name}")
        return f"{file}: {label}" if file else label


@dataclass
class CheckResult:
    findings: list[str]
    static_secrets: int
    roles: int
    pairs: int
    #: ESO: the ExternalSecrets checked (sync_engine eso)
    external_secrets: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings


def rendered_from_catalog(catalog: Catalog, engine: str = "vso", server: str = "") -> Rendered:
    """Exactly what vault-config writes for the catalog (its desired policies and roles, the
    bootstrap-admin policy included) and the sync engine's objects: VSO's operator resources,
    or with ``engine`` ``eso`` the ServiceAccounts, SecretStores (Vault at ``server``) and
    ExternalSecrets."""
    acl = vault_acl(catalog)
    out = Rendered(dict(acl.policies), {n: dict(r) for n, r in acl.roles.items()})
    if engine == "eso":
        out.eso_server = server
        for docs in eso.render_catalog(catalog, server).values():
            out.manifests += docs
        return out
    for docs in operator_resources(catalog).values():
        out.manifests += docs
    return out


def _expected(root: Path, p: Path) -> bool:
    rel = p.relative_to(root).parts
    if rel[0] == "vault":
        return len(rel) == 3 and (
            (rel[1] == "policies" and p.suffix == ".hcl")
            or (rel[1] == "roles" and p.suffix == ".json")
        )
    return len(rel) == 3 and p.suffix == ".yaml"  # manifests/<namespace>/<file>.yaml


def rendered_from_dir(root: Path) -> Rendered:
    """Read a tree written by ``invoke render`` (possibly edited by hand). What cannot be
    read becomes a finding; files the check would not read are findings too."""
    if not root.is_dir():
        raise BootstrapError(f"{root}: not a directory written by 'invoke render'")
    out = Rendered()
    for top in ("vault", "manifests"):
        for p in sorted((root / top).rglob("*")):
            if p.is_file() and not _expected(root, p):
                out.problems.append(f"{p}: unexpected file; the check does not read it")
    for p in sorted((root / "vault" / "policies").glob("*.hcl")):
        text = _read(p, out)
        if text is not None:
            name = p.stem.lower()  # Vault keeps policy names in lower case
            if name in out.policies:
                out.problems.append(f"{p}: policy {name!r} is defined twice")
            out.policies[name] = text
            out.origins[f"policy:{name}"] = str(p)
    for p in sorted((root / "vault" / "roles").glob("*.json")):
        text = _read(p, out)
        if text is None:
            continue
        try:
            role = json.loads(text)
        except json.JSONDecodeError as exc:
            out.problems.append(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}")
            continue
        if not isinstance(role, dict):
            out.problems.append(f"{p}: a role must be a JSON object, not {type(role).__name__}")
            continue
        out.roles[p.stem] = role
        out.origins[f"role:{p.stem}"] = str(p)
    for p in sorted((root / "manifests").glob("*/*.yaml")):
        text = _read(p, out)
        if text is None:
            continue
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            out.problems.append(f"{p}: invalid YAML: {exc}")
            continue
        for doc in docs:
            if isinstance(doc, dict) and (shape := _shape_problem(doc)):
                kind, ns, name = _key(doc)
                out.problems.append(f"{p}: {kind or '(no kind)'} {ns}/{name}: {shape}")
            elif isinstance(doc, dict):
                out.manifests.append(doc)
                kind, ns, name = _key(doc)
                key = f"manifest:{kind}/{ns}/{name}"
                seen = out.origins.get(key)
                out.origins[key] = str(p) if seen is None else f"{seen} and {p}"
            elif doc is not None:
                out.problems.append(f"{p}: a document is not a mapping: {str(doc)[:60]!r}")
    if not out.roles and not out.manifests and not out.problems:
        raise BootstrapError(f"{root}: holds no vault/roles or manifests; run 'invoke render'")
    return out


def _read(p: Path, out: Rendered) -> str | None:
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.problems.append(f"{p}: cannot read: {exc}")
        return None


def _mapping(value: Any) -> JsonObject:
    """A field that must be a mapping; anything else reads as empty (a finding elsewhere)."""
    return value if isinstance(value, dict) else {}


def _shape_problem(doc: JsonObject) -> str | None:
    """What makes a manifest unreadable as the operator's objects are: a metadata, spec or
    spec.kubernetes that is not a mapping."""
    for name, value in (
        ("metadata", doc.get("metadata", {})),
        ("spec", doc.get("spec", {})),
        ("spec.kubernetes", _mapping(doc.get("spec")).get("kubernetes", {})),
        ("spec.destination", _mapping(doc.get("spec")).get("destination", {})),
    ):
        if not isinstance(value, dict):
            return f"{name} is not a mapping but {type(value).__name__}"
    return None


def _key(doc: JsonObject) -> tuple[str, str, str]:
    meta = _mapping(doc.get("metadata"))
    return (str(doc.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")))


# -- roles ------------------------------------------------------------------------------


def _str_list(value: Any) -> list[str] | None:
    """A list field as Vault reads it: a list of strings, or one comma-separated string."""
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return [x.strip() for x in value]
    return None


@dataclass
class RoleView:
    """A role as Vault would hold it."""

    names: list[str]
    namespaces: list[str]
    policies: list[str]  # lower case, as Vault keeps them
    audience: str


def _role_view(name: str, role: JsonObject, where: str, findings: list[str]) -> RoleView:
    for key in sorted(set(role) - ROLE_FIELDS):
        findings.append(
            f"{where}: field {key!r} is not one the product writes; the check cannot "
            "vouch for what it does"
        )
    lists: dict[str, list[str]] = {}
    for key in ("bound_service_account_names", "bound_service_account_namespaces"):
        value = _str_list(role.get(key, []))
        if value is None:
            findings.append(f"{where}: {key} must be a list of names, not {role.get(key)!r}")
        lists[key] = value or []
    policies: list[str] = []
    for key in ("token_policies", "policies"):
        value = _str_list(role.get(key, []))
        if value is None:
            findings.append(f"{where}: {key} must be a list of names, not {role.get(key)!r}")
        policies += [p.lower() for p in value or [] if p and p.lower() not in policies]
    audience = role.get("audience", "")
    if not isinstance(audience, str):
        findings.append(f"{where}: audience must be a string, not {audience!r}")
        audience = ""
    return RoleView(
        lists["bound_service_account_names"],
        lists["bound_service_account_namespaces"],
        policies,
        audience,
    )


def _role_findings(name: str, view: RoleView, policies: dict[str, str]) -> list[str]:
    out: list[str] = []
    own_policy = conv.policy_name(name)
    own_sa = conv.service_account_name(name)
    extra = [p for p in view.policies if p not in (own_policy, DEFAULT_POLICY)]
    if extra:
        out.append(
            f"role {name}: grants policies {extra} besides its own {own_policy!r}; a "
            "service's role grants only its own policy"
        )
    for pol in view.policies:
        if pol not in policies and pol != DEFAULT_POLICY:
            out.append(f"role {name}: policy {pol!r} does not exist")
    if any("*" in n for n in view.names):
        out.append(
            f"role {name}: bound_service_account_names {view.names} hold a wildcard: "
            "ServiceAccounts other than the service's can log in"
        )
    elif [n for n in view.names if n != own_sa]:
        out.append(
            f"role {name}: binds ServiceAccounts {view.names}; a service's role binds only "
            f"its own ServiceAccount {own_sa!r}"
        )
    if "default" in view.names:
        out.append(
            f"role {name}: binds the ServiceAccount 'default', which every pod of a "
            "namespace runs as unless told otherwise"
        )
    if any("*" in n for n in view.namespaces):
        out.append(
            f"role {name}: bound_service_account_namespaces {view.namespaces} hold a "
            "wildcard: ServiceAccounts of other namespaces can log in"
        )
    elif len(view.namespaces) > 1:
        out.append(
            f"role {name}: binds {len(view.namespaces)} namespaces {view.namespaces}; a "
            "service's role binds its one namespace"
        )
    if not view.audience.strip():
        out.append(
            f"role {name}: audience is empty, so Vault accepts the ServiceAccount's tokens "
            "whatever their audience"
        )
    return out


# -- what a service's policies may grant ------------------------------------------------


def _reaches_outside_kv(rule: Rule) -> bool:
    """Whether the rule can match a path outside the KV mount (``auth/``, ``sys/``, ...)."""
    first = rule.parts[0]
    if rule.segment_wildcards and first == "+":
        return True
    if rule.is_glob and len(rule.parts) == 1:
        return True  # 'secret*' matches 'secret-other/...', '*' everything
    return first != conv.KV_MOUNT


def _words(caps: frozenset[str]) -> str:
    names = sorted(caps)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _grant_findings(role: str, rules: list[Rule]) -> list[str]:
    out: list[str] = []
    seen: set[tuple[str, str, frozenset[str]]] = set()
    for r in rules:
        caps = r.capabilities - {"deny"}
        if not caps or (r.policy, r.path, caps) in seen:
            continue
        seen.add((r.policy, r.path, caps))
        if _reaches_outside_kv(r):
            out.append(
                f"role {role}: policy {r.policy} grants {_words(caps)} on {r.path!r}, outside "
                f"the KV mount '{conv.KV_MOUNT}/' (auth/, sys/, other mounts)"
            )
        elif caps - READ_ONLY:
            out.append(
                f"role {role}: policy {r.policy} grants {_words(caps - READ_ONLY)} on "
                f"{r.path!r}; a service's policy only reads and lists"
            )
    return out


# -- policies as the product renders them (issue 23, finding 6) ----------------------


def _merged(rules: list[Rule]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Path -> (capabilities, conditions), blocks of one path merged as Vault merges them."""
    out: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for rule in rules:
        caps, conds = out.get(rule.path, (frozenset(), frozenset()))
        out[rule.path] = (caps | rule.capabilities, conds | rule.conditions)
    return out


def _caps(caps: frozenset[str]) -> str:
    return "[" + ", ".join(sorted(caps)) + "]"


def policy_drift(where: str, name: str, want_text: str, have_text: str) -> list[str]:
    """Differences between two policies as Vault reads them, one finding per path."""
    want = _merged(parse_policy(want_text, name))
    try:
        have = _merged(parse_policy(have_text, name))
    except PolicyParseError:
        return []  # the static check names what cannot be read
    out = []
    for path in sorted(set(want) | set(have)):
        w, h = want.get(path), have.get(path)
        what = f"{where}: policy {name}: path {path!r}"
        if w is None and h is not None:
            why = _path_risk(path, h[0])
            out.append(
                f"{what} grants {_caps(h[0])}; the product renders no such path for this "
                f"policy{why}"
            )
        elif h is None and w is not None:
            out.append(f"{what} is missing; the product renders it with {_caps(w[0])}")
        elif w is not None and h is not None and w != h:
            if w[0] != h[0]:
                out.append(f"{what} grants {_caps(h[0])}; the product renders {_caps(w[0])} there")
            if w[1] != h[1]:
                out.append(f"{what} sets {_caps(h[1])}; the product renders none of them there")
    return out


def _path_risk(path: str, caps: frozenset[str]) -> str:
    parts = path.split("/")
    if ".." in parts or "." in parts:
        return " (a path with '..' or '.' segments, which the check cannot vouch for)"
    if "deny" in caps:
        return (
            " (a deny beside a wider grant: every path not denied, a later service's too, "
            "is granted)"
        )
    if path.endswith("*") or "+" in parts:
        return " (a glob reaches paths the catalog never gave this policy, later ones too)"
    if "list" in caps and "/metadata/" in f"{path}/":
        return " (a listing shows the names of secrets beyond this service's own)"
    return ""


# -- isolation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A concrete request path that belongs to someone: a service's private secret (or the
    listing of its folder), or a shared/infrastructure secret."""

    api_path: str
    owner: str  # the service, or the scope ('shared', 'infrastructure')
    logical: str  # below the mount: 'webapp/config'; 'webapp/' for the folder's listing
    api: str  # data, metadata, delete, ...

    @property
    def scoped(self) -> bool:
        return self.owner in conv.RESERVED_PREFIXES


def probes(services: list[str], synced: set[str], apis: tuple[str, ...] = KV_APIS) -> list[Probe]:
    """Every path the isolation proof asks about: for each service and scope, each synced
    secret under it and one made-up name (what a glob would also match), through every KV
    API, and the listing of its folder."""
    names: dict[str, set[str]] = {s: {PROBE} for s in (*services, *conv.RESERVED_PREFIXES)}
    for path in synced:
        owner, _, rest = path.partition("/")
        if owner in names and rest:
            names[owner].add(rest)
    out: list[Probe] = []
    for owner in sorted(names):
        for name in sorted(names[owner]):
            logical = f"{owner}/{name}"
            out += [Probe(f"{conv.KV_MOUNT}/{api}/{logical}", owner, logical, api) for api in apis]
        out.append(Probe(f"{conv.KV_MOUNT}/metadata/{owner}/", owner, f"{owner}/", "metadata"))
    return out


def exempt(role: str, probe: Probe, declared: set[str]) -> bool:
    """Whether a role may hold capabilities on a probe: its own paths, and the data of the
    shared/infrastructure secrets it declares."""
    if probe.scoped:
        return probe.api == "data" and probe.logical in declared
    return probe.owner == role


def isolation_finding(role: str, probe: Probe, caps: frozenset[str], declared: set[str]) -> str:
    can = f"role {role}: can {_words(caps)}"
    if probe.owner == NEW_SERVICE:
        return (
            f"{can} {probe.api_path!r}: its rules reach beyond the paths the catalog gives it "
            "(a glob or '+' that denies do not close: the secrets of any service added later)"
        )
    if not probe.scoped:
        return f"{can} {probe.owner}'s private path {probe.api_path!r}"
    if probe.logical in declared:
        return (
            f"{can} {probe.api_path!r}; it declares only reading "
            f"{conv.kv_data_path(probe.logical)!r}"
        )
    return f"{can} {probe.api_path!r}, which it does not declare"


def isolation(
    rules: RulesByRole, services: list[str], synced: set[str], declared: ReadsByRole
) -> list[str]:
    """Findings of the isolation proof over :func:`probes`, per role (sorted): other
    services' paths first (by owner, then path), then shared and infrastructure paths.

    Scales with what each rule can reach rather than with pairs of roles: a rule grants a
    probe only if it matches it, so each rule is looked up in an index of the probes' paths
    below ``secret/<api>/`` (a tree of path segments), and only the probes it reaches are
    evaluated, with every rule of the role (priority, merging, deny)."""
    index: PathIndex[Probe] = PathIndex()
    for p in probes(services, synced, ("data",)):  # one entry per logical path
        index.add(p.logical, p)
    out: list[str] = []
    for role in sorted(rules):
        role_rules = rules[role]
        mine = declared.get(role, set())
        private: list[tuple[str, str, str]] = []
        scoped: list[tuple[str, str]] = []
        for path, probe in _reached(role_rules, index).items():
            if exempt(role, probe, mine):
                continue
            caps = capabilities(role_rules, path)
            if not caps:
                continue
            text = isolation_finding(role, probe, caps, mine)
            if probe.scoped:
                scoped.append((path, text))
            else:
                private.append((probe.owner, path, text))
        out += [t for _o, _p, t in sorted(private)] + [t for _p, t in sorted(scoped)]
    return out


def _reached(rules: list[Rule], index: PathIndex[Probe]) -> dict[str, Probe]:
    """The probes (by request path, through every KV API) that some rule granting anything
    matches; whether the role ends up with capabilities there is for the caller to
    evaluate."""
    reached: dict[str, Probe] = {}
    for rule in rules:
        if not rule.capabilities - {"deny"}:
            continue
        for api in KV_APIS:
            for _logical, probe in index.matching(rule, (conv.KV_MOUNT, api)):
                if probe.logical.endswith("/") and api != "metadata":
                    continue  # a folder's listing only exists as metadata
                full = Probe(
                    f"{conv.KV_MOUNT}/{api}/{probe.logical}", probe.owner, probe.logical, api
                )
                reached[full.api_path] = full
    return reached


# -- the check --------------------------------------------------------------------------


def run_check(r: Rendered) -> CheckResult:
    findings: list[str] = list(r.problems)
    parsed = _parsed_policies(r, findings)
    views: dict[str, RoleView] = {}
    for name in sorted(r.roles):
        views[name] = _role_view(name, r.roles[name], r.origin("role", name), findings)
        findings += _role_findings(name, views[name], r.policies)
    role_rules = {name: _rules_of(view, parsed) for name, view in views.items()}
    objects = _objects(r, findings)
    for (kind, ns, name), doc in objects.items():
        if kind == "VaultAuth":
            where = r.object_where(kind, ns, name)
            findings += _vault_auth_isolation(
                where, ns, _mapping(doc.get("spec")), r.operator_namespace
            )
    static_secrets = [d for d in r.manifests if d.get("kind") == "VaultStaticSecret"]
    # What each role legitimately reads: its VaultStaticSecrets' paths.
    reads_by_role: ReadsByRole = defaultdict(set)
    auth_memo: AuthMemo = {}
    for vss in static_secrets:
        read = _static_secret(r, vss, objects, views, role_rules, findings, auth_memo)
        if read is not None:
            reads_by_role[read[0]].add(read[1])
    # ... and its ExternalSecrets' paths (ESO)
    external = [d for d in r.manifests if d.get("kind") == "ExternalSecret"]
    store_memo: AuthMemo = {}
    for es in external:
        for role, path in _external_secret(r, es, objects, views, role_rules, findings, store_memo):
            reads_by_role[role].add(path)
    for name in sorted(role_rules):
        findings += _grant_findings(name, role_rules[name])
    synced = {p for paths in reads_by_role.values() for p in paths}
    # and a service the catalog does not hold, with secrets named like today's
    future = {f"{NEW_SERVICE}/{p.partition('/')[2]}" for p in synced if "/" in p}
    seen_future: set[str] = set()
    for text in isolation(
        role_rules, [*sorted(r.roles), NEW_SERVICE], synced | future, reads_by_role
    ):
        if f"/{NEW_SERVICE}/" in text:  # one such finding per role says it all
            role = text.split(":", 1)[0]
            if role in seen_future:
                continue
            seen_future.add(role)
        findings.append(text)
    findings += _policy_findings(r, parsed, views, role_rules)
    n = len(r.roles)
    return CheckResult(
        findings=findings,
        static_secrets=len(static_secrets),
        roles=n,
        pairs=n * (n - 1),
        external_secrets=len(external),
    )


def _at(r: Rendered, obj: JsonObject, texts: list[str]) -> list[str]:
    """``model.eso``'s findings (each starting ``Kind ns/name``) with the object's file."""
    label = eso.object_label(obj)
    return [r.object_where(*_key(obj)) + t.removeprefix(label) for t in texts]


def _store_chain(
    r: Rendered,
    store: JsonObject,
    objects: Objects,
    views: dict[str, RoleView],
    findings: list[str],
) -> tuple[str, RoleView | None]:
    """A SecretStore along its chain (provider, KV v2 at the product's mount, kubernetes
    auth at the product's mount, ServiceAccount, role and its bindings, server): its
    findings, and (role name, the role's view; None where the chain breaks)."""
    kind, ns, name = _key(store)
    where = r.object_where(kind, ns, name)
    findings += _at(r, store, eso.isolation_findings([store], r.eso_server))
    vault = eso.vault_provider(store)
    if not vault:
        return "", None
    if vault.get("path") != conv.KV_MOUNT or vault.get("version") != "v2":
        findings.append(
            f"{where}: path {vault.get('path')!r} version {vault.get('version')!r}, expected "
            f"{conv.KV_MOUNT!r} version 'v2'"
        )
    k8s = _mapping(_mapping(vault.get("auth")).get("kubernetes"))
    if k8s.get("mountPath") != conv.AUTH_MOUNT:
        findings.append(
            f"{where}: kubernetes auth mountPath is {k8s.get('mountPath')!r}, expected "
            f"{conv.AUTH_MOUNT!r}"
        )
    sa_ref = _mapping(k8s.get("serviceAccountRef"))
    sa = str(sa_ref.get("name", ""))
    if ("ServiceAccount", ns, sa) not in objects:
        findings.append(f"{where}: serviceAccountRef {sa!r} is not rendered in namespace {ns!r}")
    binding = {"serviceAccount": sa, "audiences": sa_ref.get("audiences") or []}
    return _bound_role(where, str(k8s.get("role", "")), binding, ns, views, findings)


def _external_secret(
    r: Rendered,
    es: JsonObject,
    objects: Objects,
    views: dict[str, RoleView],
    role_rules: RulesByRole,
    findings: list[str],
    memo: AuthMemo,
) -> list[tuple[str, str]]:
    """Check one ExternalSecret along its chain (SecretStore of its namespace, role,
    policies); returns the (role, path) pairs it reads."""
    kind, ns, name = _key(es)
    where = r.object_where(kind, ns, name)
    findings += _at(r, es, eso.isolation_findings([es], r.eso_server))
    spec = _mapping(es.get("spec"))
    ref = _mapping(spec.get("secretStoreRef"))
    if ref.get("kind", "SecretStore") != "SecretStore":
        return []  # a ClusterSecretStore: named above
    entries = [*(spec.get("data") or []), *(spec.get("dataFrom") or [])]
    other = sorted(
        {
            str(_mapping(_mapping(e.get("sourceRef")).get("storeRef")).get("name"))
            for e in entries
            if isinstance(e, dict) and _mapping(e.get("sourceRef")).get("storeRef")
        }
        - {str(ref.get("name"))}
    )
    if other:
        findings.append(
            f"{where}: reads through another store ({', '.join(other)}) than its "
            f"secretStoreRef; the product renders one store per ExternalSecret"
        )
    store_name = str(ref.get("name", ""))
    store = objects.get(("SecretStore", ns, store_name))
    if store is None:
        findings.append(
            f"{where}: secretStoreRef {store_name!r} names no SecretStore in namespace {ns!r}"
        )
        return []
    key = (ns, store_name)
    if key not in memo:  # a store's own findings once, however many ExternalSecrets use it
        memo[key] = _store_chain(r, store, objects, views, findings)
    role_name, view = memo[key]
    if view is None:
        return []
    out = []
    for path in eso.paths_read(es):
        findings += _readable(where, f"{conv.KV_MOUNT}/data/{path}", role_name, view, role_rules)
        out.append((role_name, path))
    return out


def _readable(
    where: str, api_path: str, role_name: str, view: RoleView, role_rules: RulesByRole
) -> list[str]:
    """Whether a role's policies let it read one KV v2 API path, unconditionally."""
    grant = evaluate(role_rules[role_name], api_path)
    if "read" not in grant.capabilities:
        return [
            f"{where}: path {api_path!r} is not readable under role "
            f"{role_name!r} (policies {view.policies})"
        ]
    if grant.conditions:
        return [
            f"{where}: reading {api_path!r} under role {role_name!r} depends on "
            f"{sorted(grant.conditions)} of its policy; the check cannot prove it succeeds"
        ]
    return []


def _policy_findings(
    r: Rendered, parsed: dict[str, list[Rule]], views: dict[str, RoleView], role_rules: RulesByRole
) -> list[str]:
    """Issue 23, finding 6: what the isolation proof does not see. The listing of the whole
    mount; a path with ``..`` or ``.`` segments (never rendered; Vault takes it literally);
    a policy no role grants (only the bootstrap-admin policy is one); the bootstrap-admin
    policy other than the product renders it."""
    out: list[str] = []
    root_listing = f"{conv.KV_MOUNT}/metadata/"
    for role in sorted(role_rules):
        caps = capabilities(role_rules[role], root_listing)
        if caps:
            out.append(
                f"role {role}: can {_words(caps)} {root_listing!r}: the names of every "
                "secret of the mount, every service's"
            )
    for name in sorted(parsed):
        where = r.origin("policy", name)
        for rule in parsed[name]:
            if {"..", "."} & set(rule.path.split("/")):
                out.append(
                    f"{where}: path {rule.path!r} has a '..' or '.' segment; the product "
                    "renders none, and the check cannot vouch for what it matches"
                )
    granted = {p for view in views.values() for p in view.policies}
    for name in sorted(set(r.policies) - granted - {conv.ADMIN_POLICY, DEFAULT_POLICY}):
        out.append(
            f"{r.origin('policy', name)}: policy {name}: no role grants it; the product "
            f"renders no such policy (only {conv.ADMIN_POLICY}, for the bootstrap credential)"
        )
    if conv.ADMIN_POLICY in r.policies and parsed.get(conv.ADMIN_POLICY):
        out += policy_drift(
            r.origin("policy", conv.ADMIN_POLICY),
            conv.ADMIN_POLICY,
            ADMIN_POLICY_TEXT,
            r.policies[conv.ADMIN_POLICY],
        )
    return out


def _parsed_policies(r: Rendered, findings: list[str]) -> dict[str, list[Rule]]:
    """Each policy's rules; one that cannot be parsed is a finding and grants nothing."""
    parsed: dict[str, list[Rule]] = {}
    for name, text in sorted(r.policies.items()):
        try:
            parsed[name] = parse_policy(text, name, where=r.origin("policy", name))
        except PolicyParseError as exc:
            findings.append(str(exc))
            parsed[name] = []
    return parsed


def _rules_of(view: RoleView, parsed: dict[str, list[Rule]]) -> list[Rule]:
    """Every rule a role's token holds. Vault attaches the 'default' policy to every
    token; if the tree defines one, it counts for every role."""
    names = [*view.policies, DEFAULT_POLICY]
    return Rules(rule for pol in dict.fromkeys(names) for rule in parsed.get(pol, []))


Objects = dict[tuple[str, str, str], JsonObject]


def _objects(r: Rendered, findings: list[str]) -> Objects:
    """The manifests by (kind, namespace, name); duplicates and kinds the check does not
    evaluate are findings (the operator's other kinds with what they would open up)."""
    objects: Objects = {}
    for d in r.manifests:
        key = _key(d)
        if key in objects:
            findings.append(f"{r.object_where(*key)}: declared twice")
        objects[key] = d
    # The namespaces the catalog's services live in (where their objects are rendered).
    service_namespaces = {ns for kind, ns, _name in objects if kind in KINDS}
    for key in objects:
        kind, ns, _name = key
        if kind in KINDS or kind in ESO_KINDS:
            continue
        if kind in FOREIGN_ESO_KINDS:
            findings.append(
                f"{r.object_where(*key)}: a kind of the External Secrets Operator the product "
                f"never renders: {FOREIGN_ESO_KINDS[kind]}"
            )
        elif kind in FOREIGN_OPERATOR_KINDS and (
            kind != "VaultConnection" or ns in service_namespaces
        ):
            findings.append(
                f"{r.object_where(*key)}: a kind of the operator the product never renders: "
                f"{FOREIGN_OPERATOR_KINDS[kind]}"
            )
        else:
            findings.append(
                f"{r.object_where(*key)}: not a kind 'invoke render' writes; the check does "
                "not evaluate it"
            )
    return objects


AuthMemo = dict[tuple[str, str], tuple[str, RoleView | None]]


def _vault_auth_chain(
    r: Rendered,
    auth: JsonObject,
    ns: str,
    auth_name: str,
    objects: Objects,
    views: dict[str, RoleView],
    findings: list[str],
) -> tuple[str, RoleView | None]:
    """A VaultAuth along its chain (method, mount, ServiceAccount, role and its bindings):
    its findings, and (role name, the role's view; None where the role does not exist)."""
    auth_where = r.object_where("VaultAuth", ns, auth_name)
    auth_spec = _mapping(auth.get("spec"))
    k8s = _mapping(auth_spec.get("kubernetes"))
    role_name = str(k8s.get("role", ""))
    findings += _auth_findings(auth_where, auth_spec, ns, objects)
    return _bound_role(auth_where, role_name, k8s, ns, views, findings)


def _bound_role(
    where: str,
    role_name: str,
    k8s: JsonObject,
    ns: str,
    views: dict[str, RoleView],
    findings: list[str],
) -> tuple[str, RoleView | None]:
    """The role an object logs in with, and whether it binds the object's ServiceAccount,
    namespace and audience (``k8s``: ``serviceAccount``, ``audiences``); None: no such role."""
    view = views.get(role_name)
    if view is None:
        findings.append(f"{where}: role {role_name!r} does not exist")
        return role_name, None
    findings += _binding_findings(where, k8s, ns, role_name, view)
    return role_name, view


def _static_secret(
    r: Rendered,
    vss: JsonObject,
    objects: Objects,
    views: dict[str, RoleView],
    role_rules: RulesByRole,
    findings: list[str],
    auth_memo: AuthMemo,
) -> tuple[str, str] | None:
    """Check one VaultStaticSecret along its chain (VaultAuth, ServiceAccount, role,
    policies); returns (role, path) it reads, None where the chain breaks before a role."""
    kind, ns, name = _key(vss)
    spec = _mapping(vss.get("spec"))
    where = r.object_where(kind, ns, name)
    if spec.get("type") != "kv-v2":
        findings.append(f"{where}: type is {spec.get('type')!r}, expected 'kv-v2'")
    if spec.get("mount") != conv.KV_MOUNT:
        findings.append(f"{where}: mount is {spec.get('mount')!r}, expected {conv.KV_MOUNT!r}")
    findings += _static_secret_fields(where, ns, spec)
    ref = spec.get("vaultAuthRef")
    if not ref:
        findings.append(
            f"{where}: no vaultAuthRef, so the operator would use the default VaultAuth of its "
            f"own namespace (another role); name the VaultAuth of namespace {ns!r}"
        )
        return None
    ref_ns, _, auth_name = str(ref).rpartition("/")
    if ref_ns and ref_ns != ns:
        findings.append(
            f"{where}: vaultAuthRef {ref!r} names a VaultAuth of namespace {ref_ns!r}: the "
            f"Secret would be read with another namespace's role; a VaultStaticSecret uses "
            f"the VaultAuth of its own namespace {ns!r}"
        )
        return None
    auth = objects.get(("VaultAuth", ns, auth_name))
    if auth is None:
        findings.append(f"{where}: vaultAuthRef {ref!r} names no VaultAuth in namespace {ns!r}")
        return None
    key = (ns, auth_name)
    if key not in auth_memo:
        # a VaultAuth's own findings once, however many VaultStaticSecrets name it
        auth_memo[key] = _vault_auth_chain(r, auth, ns, auth_name, objects, views, findings)
    role_name, view = auth_memo[key]
    if view is None:
        return None
    api_path = f"{spec.get('mount')}/data/{spec.get('path')}"
    findings += _readable(where, api_path, role_name, view, role_rules)
    return role_name, str(spec.get("path"))


def _auth_findings(where: str, spec: JsonObject, ns: str, objects: Objects) -> list[str]:
    """A VaultAuth's method and mount, and its ServiceAccount rendered beside it."""
    out: list[str] = []
    if spec.get("method") != "kubernetes":
        out.append(f"{where}: method is {spec.get('method')!r}, expected 'kubernetes'")
    if spec.get("mount") != conv.AUTH_MOUNT:
        out.append(f"{where}: mount is {spec.get('mount')!r}, expected {conv.AUTH_MOUNT!r}")
    sa = str(_mapping(spec.get("kubernetes")).get("serviceAccount", ""))
    if ("ServiceAccount", ns, sa) not in objects:
        out.append(f"{where}: serviceAccount {sa!r} is not rendered in namespace {ns!r}")
    return out


def _vault_auth_isolation(
    where: str, ns: str, spec: JsonObject, operator_ns: str = conv.OPERATOR_NAMESPACE
) -> list[str]:
    """A VaultAuth's fields (VSO 1.4.1) that would let other namespaces use it, or let
    another namespace decide where or how it logs in."""
    out: list[str] = []
    allowed = spec.get("allowedNamespaces")
    if allowed is not None:
        names = _str_list(allowed) if isinstance(allowed, list) else None
        if names is None:
            out.append(f"{where}: allowedNamespaces must be a list of namespaces, not {allowed!r}")
        elif "*" in names:
            out.append(
                f"{where}: allowedNamespaces {names} lets VaultStaticSecrets of every "
                f"namespace log in with it, under its role; the product leaves it unset "
                f"(namespace {ns!r} only)"
            )
        elif others := [n for n in names if n != ns]:
            out.append(
                f"{where}: allowedNamespaces {names} lets VaultStaticSecrets of namespaces "
                f"{others} log in with it, under its role; the product leaves it unset "
                f"(namespace {ns!r} only)"
            )
    conn = spec.get("vaultConnectionRef")
    if conn and conn != f"{operator_ns}/default":
        conn_ns, _, conn_name = str(conn).rpartition("/")
        if conn_ns and conn_ns != ns:
            out.append(
                f"{where}: vaultConnectionRef {conn!r} names a VaultConnection of namespace "
                f"{conn_ns!r}: its ServiceAccount's token would go to the address that "
                "namespace sets; the product leaves it unset (the operator's default "
                "connection)"
            )
        else:  # issue 23, finding 6: a connection of its own namespace is foreign too
            out.append(
                f"{where}: vaultConnectionRef {conn!r} names VaultConnection "
                f"{conn_ns or ns}/{conn_name}, not the operator's default connection: its "
                "ServiceAccount's token would go to the address that object holds; the "
                "product leaves it unset"
            )
    global_ref = spec.get("vaultAuthGlobalRef")
    if global_ref:
        ref = global_ref if isinstance(global_ref, dict) else {}
        if ref.get("name"):
            target = f"VaultAuthGlobal {ref.get('namespace') or ns}/{ref['name']}"
        elif ref.get("namespace"):
            target = f"the default VaultAuthGlobal of namespace {ref['namespace']!r}"
        else:
            target = "the default VaultAuthGlobal of its namespace or the operator's"
        out.append(
            f"{where}: vaultAuthGlobalRef names {target}, which would supply "
            "what this VaultAuth leaves unset (its VaultConnection, Vault namespace, headers, "
            "params) from an object the check cannot vouch for; the product renders none"
        )
    return out


def _static_secret_fields(where: str, ns: str, spec: JsonObject) -> list[str]:
    """A VaultStaticSecret's fields (VSO 1.4.1) that reach into another namespace, take
    over a Secret, or that the operator would refuse or ignore."""
    out: list[str] = []
    dest = spec.get("destination") or {}
    dest = dest if isinstance(dest, dict) else {}
    if dest.get("overwrite") is True:
        out.append(
            f"{where}: destination.overwrite is true: the operator would replace any existing "
            f"Secret {dest.get('name')!r} in namespace {ns!r}, whoever made it; the product "
            "renders create: true without overwrite"
        )
    transformation = dest.get("transformation") or {}
    refs = transformation.get("transformationRefs") if isinstance(transformation, dict) else []
    for i, tref in enumerate(refs if isinstance(refs, list) else []):
        other = tref.get("namespace") if isinstance(tref, dict) else None
        if other and other != ns:
            out.append(
                f"{where}: destination.transformation.transformationRefs[{i}] names "
                f"SecretTransformation {other}/{tref.get('name')}: templates of namespace "
                f"{other!r} would decide what the Secret holds"
            )
    if "refreshAfter" in spec:
        refresh = spec["refreshAfter"]
        if not (isinstance(refresh, str) and conv.VSO_REFRESH.fullmatch(refresh)):
            same = one_unit(refresh) if isinstance(refresh, str) else None
            out.append(
                f"{where}: refreshAfter {refresh!r} is refused by VSO 1.4.1's CRD (pattern "
                f"{conv.VSO_REFRESH_PATTERN}): one number and one unit"
                + (f", e.g. {same!r}" if same else "")
            )
    targets = spec.get("rolloutRestartTargets")
    if spec.get("hmacSecretData") is False and targets:
        names = [
            f"{t.get('kind')}/{t.get('name')}" if isinstance(t, dict) else repr(t)
            for t in (targets if isinstance(targets, list) else [targets])
        ]
        out.append(
            f"{where}: hmacSecretData is false, so the operator ignores rolloutRestartTargets "
            f"{names}: they would never restart; the product renders hmacSecretData: true"
        )
    elif "hmacSecretData" in spec and spec["hmacSecretData"] is not True:
        # issue 23, finding 6: without the HMAC the operator sees no drift of the Secret
        out.append(
            f"{where}: hmacSecretData is {spec['hmacSecretData']!r}: the operator would keep no "
            "HMAC of the data, so it would neither see a Secret changed by hand nor restart "
            "anything; the product renders hmacSecretData: true"
        )
    return out


def _binding_findings(where: str, k8s: JsonObject, ns: str, role: str, view: RoleView) -> list[str]:
    """Whether the role a VaultAuth names lets its ServiceAccount, namespace and audience
    log in."""
    out: list[str] = []
    sa = str(k8s.get("serviceAccount", ""))
    if sa not in view.names and "*" not in view.names:
        out.append(
            f"role {role}: bound_service_account_names {view.names} do not "
            f"include {sa!r} used by {where}"
        )
    if ns not in view.namespaces and "*" not in view.namespaces:
        out.append(
            f"role {role}: bound_service_account_namespaces {view.namespaces} "
            f"do not include {ns!r} of {where}"
        )
    if view.audience and view.audience not in (k8s.get("audiences") or []):
        out.append(
            f"{where}: audiences {k8s.get('audiences')} lack the role's audience {view.audience!r}"
        )
    return out
