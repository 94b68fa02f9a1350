"""``invoke check --rendered DIR``: a rendered tree, maybe edited by hand, against what the
product renders for the catalog (issue 23, finding 6). Pure; reads the tree, nothing else.

The static check (:mod:`bootstrap.model.check`) proves what the tree's policies, roles and
operator objects allow; it cannot know what the catalog meant. This module re-renders the
catalog (the caller passes the files ``invoke render`` would write, ``populate-job/``
included when the tree has it) and reports every difference as a finding naming the file and
the field, except the differences it knows to be safe:

- policies compared as Vault reads them (any HCL or JSON spelling of the same rules);
- roles compared as Vault holds them (a list or a comma-separated string, ``policies`` for
  ``token_policies``, the ``default`` policy Vault attaches anyway, a TTL as seconds or a
  duration);
- manifests compared object by object, whatever file holds them; extra labels (not on a
  Namespace) and annotations at the top of an object's metadata; on a VaultStaticSecret,
  ``vaultAuthRef`` written with its namespace, ``destination.create`` either way,
  ``destination.overwrite: false``, ``transformation`` left out (v0.1.0's CRD) or with
  ``excludeRaw`` and no ``transformationRefs``; on the populate Job, ``--expect-denied PATH``
  appended to its arguments. A VaultAuth's ``allowedNamespaces``, ``vaultConnectionRef`` and
  ``vaultAuthGlobalRef`` and a VaultStaticSecret's ``hmacSecretData`` and ``refreshAfter``
  are left to the static check, which names every unsafe value of them with its risk.

Everything else is a finding: a wider or narrower policy (a glob, a deny, a ``..``, a listing),
a policy or role the catalog does not render, a VaultAuth or VaultStaticSecret pointing
elsewhere, a field the product does not render, a Secret, Role or RoleBinding in
``populate-job/``, a changed Job, image or Vault address, any value in the Job's ConfigMap
besides the catalog. A finding never shows a value that may be secret (a Secret's, a
ConfigMap's, an environment variable's, a placeholder's).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.output import MARKER
from bootstrap.model import conventions as conv
from bootstrap.model.check import (
    ESO_KINDS,
    CheckResult,
    Rendered,
    _key,
    _shape_problem,
    _str_list,
    policy_drift,
    rendered_from_dir,
    run_check,
)
from bootstrap.model.policy import PolicyParseError, parse_policy

POPULATE_DIR = "populate-job"
TFVARS = "terraform/placeholders.auto.tfvars.json"
#: Kinds whose values may be secret: a finding never shows them.
VALUE_KINDS = frozenset({"Secret", "ConfigMap"})
_MISSING = object()


@dataclass(frozen=True)
class Reference:
    """What the product renders for the catalog, and the settings the tree depends on."""

    #: Every file ``invoke render`` writes for the catalog (relative path -> text).
    files: dict[str, str]
    operator_namespace: str = conv.OPERATOR_NAMESPACE
    #: The operator's default VaultConnection's address the product applies (the setting
    #: vault_connection_address), if any.
    vault_connection_address: str | None = None
    #: ESO (sync_engine eso): the Vault address the tree's SecretStores were rendered with.
    eso_server: str = ""


def check_tree(root: Path, ref: Reference) -> CheckResult:
    """The static check on the tree, then every difference from what the product renders."""
    r = rendered_from_dir(root)
    r.operator_namespace = ref.operator_namespace
    r.eso_server = ref.eso_server
    result = run_check(r)
    result.findings += drift(root, r, ref)
    return result


# -- the differences ----------------------------------------------------------------------


def drift(root: Path, r: Rendered, ref: Reference) -> list[str]:
    out: list[str] = []
    want = ref.files
    out += _policies(root, r, want)
    out += _roles(root, r, want)
    out += _manifests(root, r, want, ref)
    out += _tfvars(root, want)
    out += _populate_job(root, want, ref)
    out += _stray_files(root, want)
    return out


def _stray_files(root: Path, want: dict[str, str]) -> list[str]:
    """Files the product never writes outside vault/ and manifests/ (the static check names
    those in its two folders)."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel == MARKER or rel in want:
            continue
        if rel.split("/", 1)[0] in ("vault", "manifests"):
            continue
        out.append(f"{p}: not a file 'invoke render' writes for this catalog")
    return out


# -- policies -----------------------------------------------------------------------------


def _policies(root: Path, r: Rendered, want: dict[str, str]) -> list[str]:
    want_policies = _names(want, "vault/policies/", ".hcl")
    out = []
    granted = {p.lower() for role in r.roles.values() for p in _role_policies(role)}
    for name in sorted(set(want_policies) | set(r.policies)):
        rel = want_policies.get(name)
        if name not in r.policies:
            out.append(f"{root}/{rel}: missing; the product renders policy {name} for this catalog")
            continue
        where = r.origin("policy", name)
        if rel is None:
            if name in granted:  # one that no role grants: the static check names it
                out.append(
                    f"{where}: policy {name} is not one the product renders for this catalog"
                )
            continue
        if name != conv.ADMIN_POLICY:  # the static check compares that one
            out += policy_drift(where, name, want[rel], r.policies[name])
    return out


def _names(files: dict[str, str], prefix: str, suffix: str) -> dict[str, str]:
    return {
        rel.removeprefix(prefix).removesuffix(suffix): rel
        for rel in files
        if rel.startswith(prefix) and rel.endswith(suffix) and "/" not in rel.removeprefix(prefix)
    }


# -- roles --------------------------------------------------------------------------------


def _role_policies(role: JsonObject) -> list[str]:
    out: list[str] = []
    for key in ("token_policies", "policies"):
        for p in _str_list(role.get(key, [])) or []:
            if p and p.lower() not in out:
                out.append(p.lower())
    return out


_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: Any) -> Any:
    """A TTL as Vault takes it (seconds, or a duration string) in seconds; anything else as
    it is (then it differs)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        parts = _DURATION.findall(value)
        if parts and "".join(n + u for n, u in parts) == value:
            return sum(int(n) * _UNIT[u] for n, u in parts)
    return value


def _role_normal(role: JsonObject) -> JsonObject:
    out: JsonObject = {}
    for key, value in role.items():
        if key in ("token_policies", "policies"):
            continue
        if key in ("bound_service_account_names", "bound_service_account_namespaces"):
            listed = _str_list(value)
            out[key] = sorted(listed) if listed is not None else value
        elif key == "token_ttl":
            out[key] = _seconds(value)
        else:
            out[key] = value
    policies = [p for p in _role_policies(role) if p != "default"]
    out["token_policies"] = sorted(policies)
    return out


def role_drift(where: str, name: str, want_text: str, have: JsonObject) -> list[str]:
    want = _role_normal(json.loads(want_text))
    got = _role_normal(have)
    out = []
    for key in sorted(set(want) | set(got)):
        w, h = want.get(key, _MISSING), got.get(key, _MISSING)
        if _same(w, h):
            continue
        what = f"{where}: role {name}: field {key!r}"
        if w is _MISSING:
            out.append(f"{what} is {_show(h)}; the product renders no such field")
        elif h is _MISSING:
            out.append(f"{what} is missing; the product renders {_show(w)}")
        else:
            out.append(f"{what} is {_show(h)}; the product renders {_show(w)}")
    return out


def _roles(root: Path, r: Rendered, want: dict[str, str]) -> list[str]:
    want_roles = _names(want, "vault/roles/", ".json")
    out = []
    for name in sorted(set(want_roles) | set(r.roles)):
        rel = want_roles.get(name)
        if name not in r.roles:
            out.append(f"{root}/{rel}: missing; the product renders role {name} for this catalog")
        elif rel is None:
            out.append(
                f"{r.origin('role', name)}: role {name} is not one the product renders for this "
                "catalog"
            )
        else:
            out += role_drift(r.origin("role", name), name, want[rel], r.roles[name])
    return out


# -- manifests ----------------------------------------------------------------------------

Key = tuple[str, str, str]


def _docs(text: str) -> list[JsonObject]:
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def _manifests(root: Path, r: Rendered, want: dict[str, str], ref: Reference) -> list[str]:
    expected: dict[Key, tuple[str, JsonObject]] = {}
    for rel, text in want.items():
        if rel.startswith("manifests/"):
            for doc in _docs(text):
                expected[_key(doc)] = (rel, doc)
    have: dict[Key, JsonObject] = {}
    for doc in r.manifests:
        have.setdefault(_key(doc), doc)
    out = []
    for key in sorted(set(expected) | set(have)):
        kind, ns, name = key
        if key not in have:
            rel = expected[key][0]
            out.append(
                f"{root}/{rel}: {kind} {ns}/{name} is missing; the product renders it for "
                "this catalog"
            )
            continue
        where = r.object_where(kind, ns, name)
        if key not in expected:
            if kind == "VaultConnection":
                out += _connection(where, have[key], ref)
            elif kind in ("ServiceAccount", "VaultAuth", "VaultStaticSecret", *ESO_KINDS):
                out.append(f"{where}: not rendered by the product for this catalog")
            # other kinds: the static check names them, with what they would open up
            continue
        out += object_drift(where, expected[key][1], have[key], ref)
    return out


def _connection(where: str, doc: JsonObject, ref: Reference) -> list[str]:
    address = (doc.get("spec") or {}).get("address")
    if ref.vault_connection_address and address == ref.vault_connection_address:
        return []
    applied = (
        f"the operator's default connection the product applies holds "
        f"{ref.vault_connection_address!r} (the setting vault_connection_address)"
        if ref.vault_connection_address
        else "the product applies none (the setting vault_connection_address is unset)"
    )
    return [
        f"{where}: spec.address is {_show(address)}: a VaultAuth using this connection sends "
        f"its ServiceAccount's token there; {applied}"
    ]


def _walk(want: Any, have: Any, field: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(want, dict) and isinstance(have, dict):
        for k in sorted(set(want) | set(have), key=str):
            sub = f"{field}.{k}" if field else str(k)
            yield from _walk(want.get(k, _MISSING), have.get(k, _MISSING), sub)
    elif (
        isinstance(want, list)
        and isinstance(have, list)
        and len(want) == len(have)
        and all(isinstance(x, dict) for x in (*want, *have))
    ):
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            yield from _walk(w, h, f"{field}[{i}]")
    elif not _same(want, have):
        yield field, want, have


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML means them: a boolean is not a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


#: What a difference in one field would let happen, said with the finding.
RISKS = {
    ("VaultAuth", "spec.kubernetes.role"): "it would log in with another role",
    ("VaultAuth", "spec.kubernetes.serviceAccount"): (
        "it would log in with another ServiceAccount's token"
    ),
    ("VaultStaticSecret", "spec.destination.name"): (
        "the operator would write this service's values into another Secret (another "
        "service's, maybe)"
    ),
    ("VaultStaticSecret", "spec.path"): (
        "the Secret would hold another Vault path than the catalog gives it"
    ),
    ("VaultStaticSecret", "spec.mount"): "the Secret would be read from another mount",
    ("VaultStaticSecret", "spec.vaultAuthRef"): "it would be read with another VaultAuth's role",
    ("VaultStaticSecret", "spec.rolloutRestartTargets"): (
        "the operator would restart other workloads than the catalog names"
    ),
}


def object_drift(where: str, want: JsonObject, have: JsonObject, ref: Reference) -> list[str]:
    kind, ns, _name = _key(want)
    out = []
    for field, w, h in _walk(want, have, ""):
        if _safe(kind, ns, field, w, h, ref):
            continue
        shown = not _secret_field(kind, field)
        risk = RISKS.get((kind, field)) or next(
            (
                v
                for (k, f), v in RISKS.items()
                if k == kind and field.startswith((f + ".", f + "["))
            ),
            "",
        )
        if w is _MISSING:
            text = (
                f"{field} is {_show(h)}; the product renders no such field"
                if shown
                else f"{field} is set (value not shown); the product renders no such field"
            )
        elif h is _MISSING:
            text = f"{field} is missing; the product renders " + (_show(w) if shown else "it")
        else:
            text = (
                f"{field} is {_show(h)}; the product renders {_show(w)}"
                if shown
                else f"{field} differs from what the product renders (value not shown)"
            )
        out.append(f"{where}: {text}" + (f": {risk}" if risk else ""))
    return out


def _secret_field(kind: str, field: str) -> bool:
    """Whether a field may hold a value: a Secret's or ConfigMap's data, a container's
    environment."""
    if kind in VALUE_KINDS and field.split(".")[0] in ("data", "stringData", "binaryData"):
        return True
    return ".env" in field and "envFrom" not in field


#: Fields whose every unsafe value the static check names, with what it would open up: the
#: comparison leaves them to it (one finding per edit).
STATIC_CHECK_FIELDS = frozenset(
    {
        ("VaultAuth", "spec.allowedNamespaces"),
        ("VaultAuth", "spec.vaultConnectionRef"),
        ("VaultAuth", "spec.vaultAuthGlobalRef"),
        ("VaultStaticSecret", "spec.hmacSecretData"),
        ("VaultStaticSecret", "spec.refreshAfter"),
    }
)


def _safe(kind: str, ns: str, field: str, want: Any, have: Any, ref: Reference) -> bool:
    if (kind, field) in STATIC_CHECK_FIELDS:
        return True
    if want is _MISSING and (
        field.startswith("metadata.annotations.")
        or (field.startswith("metadata.labels.") and kind != "Namespace")
    ):
        return True
    if want is _MISSING and field == "metadata.annotations":
        return isinstance(have, dict)
    if kind == "VaultStaticSecret":
        if field == "spec.vaultAuthRef":
            return isinstance(want, str) and have == f"{ns}/{want}"
        if field == "spec.destination.create":
            return isinstance(have, bool)
        if field == "spec.destination.overwrite":
            return want is _MISSING and have is False
        if field == "spec.destination.transformation":
            return want == {} and have is _MISSING
        if field == "spec.destination.transformation.excludeRaw":
            return want is _MISSING and isinstance(have, bool)
        if field == "spec.destination.transformation.transformationRefs":
            return want is _MISSING and have == []
    if kind == "Job" and field.endswith("].args") and isinstance(want, list):
        extra = have[len(want) :] if isinstance(have, list) and have[: len(want)] == want else None
        return (
            extra is not None
            and len(extra) % 2 == 0
            and all(
                extra[i] == "--expect-denied" and isinstance(extra[i + 1], str)
                for i in range(0, len(extra), 2)
            )
        )
    return False


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


# -- terraform/ ---------------------------------------------------------------------------


def _tfvars(root: Path, want: dict[str, str]) -> list[str]:
    if TFVARS not in want:
        return []
    p = root / TFVARS
    if not p.is_file():
        return [f"{p}: missing; the product renders it for this catalog"]
    try:
        have = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{p}: cannot read: {type(exc).__name__}"]
    return [
        f"{p}: {field or '(the whole file)'} differs from what the product renders (values "
        "not shown: placeholders)"
        for field, _w, _h in _walk(json.loads(want[TFVARS]), have, "")
    ]


# -- populate-job/ ------------------------------------------------------------------------


def _populate_job(root: Path, want: dict[str, str], ref: Reference) -> list[str]:
    """populate-job/: its policy and role as Vault reads them, its manifests object by
    object; no other object (a Secret, a Role, a RoleBinding: the product renders none)."""
    out: list[str] = []
    for rel, text in sorted(want.items()):
        if not rel.startswith(f"{POPULATE_DIR}/"):
            continue
        p = root / rel
        if not p.is_file():
            out.append(f"{p}: missing; the product renders it for this catalog")
            continue
        try:
            have_text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.append(f"{p}: cannot read: {type(exc).__name__}")
            continue
        if rel.endswith(".hcl"):
            name = Path(rel).stem
            try:
                parse_policy(have_text, name)
            except PolicyParseError as exc:
                out.append(f"{p}: {exc}")
                continue
            out += policy_drift(str(p), name, text, have_text)
        elif rel.endswith(".json"):
            try:
                have = json.loads(have_text)
            except json.JSONDecodeError as exc:
                out.append(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}")
                continue
            if not isinstance(have, dict):
                out.append(f"{p}: a role must be a JSON object")
                continue
            out += role_drift(str(p), Path(rel).stem, text, have)
        else:
            out += _job_manifests(p, text, have_text, ref)
    return out


#: What an object the product never renders in populate-job/ would do.
JOB_EXTRA = {
    "Secret": (
        "a Secret in the tree puts its values in Git (base64 is no encryption); make it with "
        "kubectl as 'invoke render --populate-job' prints"
    ),
    "Role": "RBAC for the Job: the product renders none (the Job never calls the Kubernetes API)",
    "ClusterRole": "RBAC for the Job: the product renders none",
    "RoleBinding": "RBAC for the Job: the product renders none",
    "ClusterRoleBinding": "RBAC for the Job: the product renders none",
}


def _job_manifests(p: Path, want_text: str, have_text: str, ref: Reference) -> list[str]:
    try:
        have_docs = list(yaml.safe_load_all(have_text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        return [f"{p}{at}: invalid YAML: {getattr(exc, 'problem', None) or type(exc).__name__}"]
    want = {_key(d): d for d in _docs(want_text)}
    have: dict[Key, JsonObject] = {}
    out = []
    for doc in have_docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            out.append(f"{p}: a document is not a mapping")
            continue
        key = _key(doc)
        if shape := _shape_problem(doc):
            out.append(f"{p}: {key[0] or '(no kind)'} {key[1]}/{key[2]}: {shape}")
            continue
        if key in have:
            out.append(f"{p}: {key[0]} {key[1]}/{key[2]}: declared twice")
        have[key] = doc
    for key in sorted(set(want) | set(have)):
        kind, ns, name = key
        where = f"{p}: {kind or '(no kind)'} {ns}/{name}"
        if key not in have:
            out.append(f"{where}: missing; the product renders it")
        elif key not in want:
            out.append(
                f"{where}: not rendered by the product"
                + (f": {JOB_EXTRA[kind]}" if kind in JOB_EXTRA else "")
            )
        else:
            out += [
                f"{p}: {f}" for f in object_drift(f"{kind} {ns}/{name}", want[key], have[key], ref)
            ]
    return out
