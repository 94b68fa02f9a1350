"""The service catalog: one YAML file that drives everything.

``load_catalog(path)`` returns a validated :class:`Catalog` or raises :class:`CatalogError`
listing every problem with the file, the line (where the YAML parser can give it), the entry
and the field. Pure apart from reading the one file.
"""

from __future__ import annotations

import contextlib
import gc
import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bootstrap.core.errors import CatalogError
from bootstrap.model import conventions as conv

#: The largest catalog file read (the YAML parser holds the whole document in memory).
MAX_CATALOG_BYTES = 1024 * 1024
#: Deepest nesting of mappings and sequences accepted (the catalog's own shape needs 7).
MAX_DEPTH = 32
#: Longest duration accepted: Go's time.Duration (the operator's refreshAfter, Vault's TTLs)
#: overflows past about 2562047h; a year is far beyond any sensible period and far below that.
MAX_DURATION_HOURS = 8760

DURATION = re.compile(r"\A(?:[0-9]+[hms])+\Z")
#: The one spelling of a duration accepted (issue 23, finding 11): each unit at most once,
#: in the order h, m, s, numbers without leading zeros, no zero parts (``1h30m``, ``90s``;
#: not ``1h1h1h``, ``30m1h``, ``00000000000030s``, ``1h0m``). What the catalog says is
#: then exactly what is rendered.
CANONICAL_DURATION = re.compile(r"\A(?=.)(?:[1-9][0-9]*h)?(?:[1-9][0-9]*m)?(?:[1-9][0-9]*s)?\Z")
_DURATION_PART = re.compile(r"([0-9]+)([hms])")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
#: Environment variable names (POSIX portable: ASCII letters, digits, underscore).
ENV_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
#: Environment variables that hold the bootstrap's own credentials and targets.
RESERVED_ENV_PREFIXES = ("VAULT_", "BAO_")
RESERVED_ENV_NAMES = ("KUBECONFIG",)
#: Kernel file systems a file source may never read (``/proc/self/environ`` holds the
#: bootstrap's own environment, tokens included; devices never end).
FORBIDDEN_FILE_ROOTS = ("/proc", "/sys", "/dev")


def show(value: object, limit: int = 80) -> str:
    """``repr`` of untrusted input for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" + f" ({len(text)} chars)"


def _dns_label(value: str) -> str:
    if not conv.is_dns_label(value):
        if conv.DNS1123_LABEL.fullmatch(value):
            raise ValueError(
                f"{show(value)} is {len(value)} characters long; a DNS-1123 label has at most "
                f"{conv.DNS1123_LABEL_MAX}"
            )
        raise ValueError(
            f"{show(value)} is not a DNS-1123 label (lower-case ASCII letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {conv.DNS1123_LABEL_MAX} "
            "characters)"
        )
    return value


def _namespace(value: str) -> str:
    _dns_label(value)
    if value in conv.RESERVED_NAMESPACES:
        raise ValueError(
            f"namespace {value!r} is reserved ({conv.RESERVED_NAMESPACES[value]}); "
            "put services in namespaces of their own"
        )
    return value


def duration_seconds(value: str) -> int:
    """Seconds in a Go-style duration such as ``30s``, ``1h30m`` (validated input)."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def _duration(value: str) -> str:
    _duration_value(value)
    return _canonical_duration(value)


def _duration_value(value: str) -> str:
    if DURATION.fullmatch(value) is None:
        raise ValueError(
            f"{show(value)} is not a positive duration like '30s', '5m' or '1h' "
            "(ASCII digits, units h, m, s)"
        )
    # Bound the digits before converting, so a thousand-digit number is a message too.
    if any(len(n.lstrip("0")) > 12 for n, _ in _DURATION_PART.findall(value)) or (
        duration_seconds(value) > MAX_DURATION_HOURS * 3600
    ):
        raise ValueError(
            f"{show(value)} is longer than {MAX_DURATION_HOURS}h, the longest duration accepted "
            "(far longer values overflow Go's time.Duration in the operator and in Vault)"
        )
    if duration_seconds(value) == 0:
        raise ValueError(f"{show(value)} is not a positive duration like '30s', '5m' or '1h'")
    return value


def _canonical_duration(value: str) -> str:
    if CANONICAL_DURATION.fullmatch(value) is None:
        raise ValueError(
            f"{show(value)} is not written canonically: each unit at most once, in the order "
            f"h, m, s, numbers without leading zeros and no zero parts; write {canonical(value)!r}"
        )
    return value


def canonical(value: str) -> str:
    """The canonical spelling of a duration (``1h1h1h`` -> ``3h``, ``0030s`` -> ``30s``,
    ``30m1h`` -> ``1h30m``): hours, minutes and seconds, each below its next unit."""
    seconds = duration_seconds(value)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def one_unit(value: str) -> str | None:
    """The same period as a duration such as ``1h30m`` written with one number and one unit
    (the largest unit that fits: ``90m``); None when ``value`` is not such a duration."""
    if DURATION.fullmatch(value) is None:
        return None
    seconds = duration_seconds(value)
    for unit in "hm":
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _refresh_after(value: str) -> str:
    """A duration the operator's CRD accepts for ``refreshAfter``: VSO 1.4.1 requires one
    number and one unit (``90m``; ``1h30m`` is refused by the API server). ``tokenTTL`` is
    Vault's and keeps accepting compound durations."""
    _duration_value(value)
    if conv.VSO_REFRESH.fullmatch(value) is None:
        raise ValueError(
            f"{show(value)} is not a duration VSO 1.4.1 accepts for refreshAfter (pattern "
            f"{conv.VSO_REFRESH_PATTERN}): one number and one unit, e.g. {one_unit(value)!r}"
        )
    return _canonical_duration(value)


def _secret_key(value: str) -> str:
    problem = conv.secret_key_problem(value)
    if problem is not None:
        raise ValueError(f"key {show(value)} {problem}")
    return value


def _env_name(value: str) -> str:
    if ENV_NAME.fullmatch(value) is None:
        raise ValueError(
            f"{show(value)} is not an environment variable name (ASCII letters, digits, '_')"
        )
    upper = value.upper()
    if upper.startswith(RESERVED_ENV_PREFIXES) or upper in RESERVED_ENV_NAMES:
        raise ValueError(
            f"environment variable {value} may not be a value source: VAULT_*, BAO_* and "
            "KUBECONFIG hold the bootstrap's own credentials and targets"
        )
    return value


def _file_path(value: str) -> str:
    if not value or "\x00" in value:
        raise ValueError("a file source needs a path (without NUL characters)")
    normal = posixpath.normpath(value)
    if normal.startswith("/"):
        normal = "/" + normal.lstrip("/")  # '//proc' is '/proc'
    if any(normal == r or normal.startswith(r + "/") for r in FORBIDDEN_FILE_ROOTS):
        raise ValueError(
            f"file {show(value)} is under {', '.join(FORBIDDEN_FILE_ROOTS)}: kernel and device "
            "files are never read (/proc/self/environ holds the bootstrap's own tokens)"
        )
    return value


def _command(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("command: [] names no program; give at least the program to run")
    if not value[0]:
        raise ValueError("command: the program name is empty")
    if any("\x00" in arg for arg in value):
        raise ValueError("command: an argument holds a NUL character")
    return value


def _prompt(value: str) -> str:
    # Shown on the operator's terminal: no escape sequences, no line breaks.
    if not value or len(value) > 200 or not value.isprintable():
        raise ValueError(
            f"prompt {show(value)} must be 1 to 200 printable characters (no control "
            "characters or terminal escape sequences)"
        )
    return value


def _audience(value: str) -> str:
    if not value or len(value) > 253 or not all("!" <= ch <= "~" for ch in value):
        raise ValueError(
            f"audience {show(value)} must be 1 to 253 printable ASCII characters without spaces"
        )
    return value


#: What the JSON Schema of the catalog (``docs/catalog.schema.json``, for editors) says of the
#: constrained strings: the part of each validator a pattern can say. The validators above
#: stay the authority (reserved names, bounds, canonical spellings).
_LABEL_SCHEMA = {
    "type": "string",
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "maxLength": conv.DNS1123_LABEL_MAX,
}
_DURATION_PATTERN = "^([1-9][0-9]*h)?([1-9][0-9]*m)?([1-9][0-9]*s)?$"

DnsLabel = Annotated[str, AfterValidator(_dns_label), WithJsonSchema(_LABEL_SCHEMA)]
Namespace = Annotated[str, AfterValidator(_namespace), WithJsonSchema(_LABEL_SCHEMA)]
Duration = Annotated[
    str,
    AfterValidator(_duration),
    WithJsonSchema({"type": "string", "pattern": _DURATION_PATTERN, "minLength": 2}),
]
RefreshAfter = Annotated[
    str,
    AfterValidator(_refresh_after),
    WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]*(s|m|h)$"}),
]
SecretKey = Annotated[
    str,
    AfterValidator(_secret_key),
    WithJsonSchema({"type": "string", "pattern": "^[-._a-zA-Z0-9]+$", "maxLength": 253}),
]
EnvName = Annotated[
    str,
    AfterValidator(_env_name),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}),
]
FilePath = Annotated[str, AfterValidator(_file_path), WithJsonSchema({"type": "string"})]
Command = Annotated[
    list[str],
    AfterValidator(_command),
    WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 1}),
]
Audience = Annotated[
    str,
    AfterValidator(_audience),
    WithJsonSchema({"type": "string", "pattern": "^[!-~]{1,253}$"}),
]
Prompt = Annotated[
    str,
    AfterValidator(_prompt),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200}),
]


class _Model(BaseModel):
    # Each field's docstring is its description: in the JSON Schema and the reference page.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


class Generate(_Model):
    """A value generated once, then kept (never regenerated on a re-run)."""

    length: int = Field(default=32, ge=8, le=4096)
    """Characters in the generated value (8 to 4096)."""
    alphabet: Literal["alnum", "hex", "base64url", "ascii"] = "alnum"
    """Characters drawn from: ``alnum`` (letters and digits), ``hex``, ``base64url`` or
    ``ascii`` (printable ASCII without space)."""


class Copy(_Model):
    """Copy of another Vault KV path's key, e.g. ``shared/aws-creds`` key ``access-key``.
    Which paths a key may copy from is checked against the catalog (see
    ``_copy_problems``): only what the services that receive the value may read anyway."""

    path: str
    """The KV path to copy from: ``<service>/<secret>``, ``shared/<name>`` or
    ``infrastructure/<name>``."""
    key: SecretKey
    """The key of that path whose value is copied."""

    @field_validator("path")
    @classmethod
    def _two_labels(cls, value: str) -> str:
        owner, _, name = value.partition("/")
        if not (conv.is_dns_label(owner) and conv.is_dns_label(name)):
            raise ValueError(
                f"{show(value)} must be a KV path '<service>/<secret>', 'shared/<name>' or "
                "'infrastructure/<name>'"
            )
        return value

    @property
    def owner(self) -> str:
        return self.path.partition("/")[0]


SOURCE_KINDS = ("env", "file", "command", "generate", "copy_", "prompt")


class Source(_Model):
    """Where one key's real value comes from: exactly one of env, file, command, generate,
    copy and prompt."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [k.rstrip("_")]} for k in SOURCE_KINDS]}
    )

    env: EnvName | None = None
    """An environment variable of the run (never ``VAULT_*``, ``BAO_*`` or ``KUBECONFIG``)."""
    file: FilePath | None = None
    """A file, relative to the catalog's folder; read only inside it or below a
    ``source_file_roots`` entry (checked against the settings, and again when read, symlinks
    resolved). Never under ``/proc``, ``/sys`` or ``/dev``."""
    command: Command | None = None
    """A program and its arguments; its standard output is the value. Runs only with the
    setting ``catalog_commands: allow``, and only a program inside the catalog's folder."""
    generate: Generate | None = None
    """A random value generated once, then kept."""
    copy_: Copy | None = Field(default=None, alias="copy")
    """The value of another KV path's key, one the receiving services may read anyway."""
    prompt: Prompt | None = None
    """Asked on the terminal (not echoed) when the run needs it."""
    encoding: Literal["base64"] | None = None
    """``base64``: store the file's or command's bytes base64-encoded (binary values).
    Without it the content must be UTF-8 text."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        chosen = [n for n in SOURCE_KINDS if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "a value source takes exactly one of env, file, command, generate, copy, prompt"
                f" (got {len(chosen)})"
            )
        if self.encoding is not None and chosen[0] not in ("file", "command"):
            raise ValueError(
                f"encoding applies to file and command sources only, not {chosen[0].rstrip('_')}"
            )
        return self

    @property
    def kind(self) -> str:
        for n in SOURCE_KINDS:
            if getattr(self, n) is not None:
                return n.rstrip("_")
        raise AssertionError("unreachable: validated to have one source")


class SecretSpec(_Model):
    """One secret: the keys it carries, and where each key's value comes from."""

    keys: dict[SecretKey, Source | None] = Field(min_length=1)
    """The secret's keys, each with where its value comes from (empty: filled by hand)."""
    destination: DnsLabel | None = None
    """The Kubernetes Secret's name in the service's namespace (default: the secret's name)."""
    refresh_after: RefreshAfter | None = Field(default=None, alias="refreshAfter")
    """How often the operator re-reads it (default: the service's, then the catalog's)."""


class Read(_Model):
    """A shared or infrastructure secret a service reads, e.g. ``shared/ovh-dns``."""

    path: str
    """``shared/<name>`` or ``infrastructure/<name>``, declared at the top of the catalog."""
    destination: DnsLabel | None = None
    """The Kubernetes Secret's name in the service's namespace (default: ``<name>``)."""

    @field_validator("path")
    @classmethod
    def _scoped(cls, value: str) -> str:
        scope, _, name = value.partition("/")
        if scope not in conv.RESERVED_PREFIXES or not name or "/" in name:
            raise ValueError(f"{value!r} must be 'shared/<name>' or 'infrastructure/<name>'")
        return value

    @property
    def scope(self) -> str:
        return self.path.partition("/")[0]

    @property
    def name(self) -> str:
        return self.path.partition("/")[2]


def _path_or_read(schema: dict[str, Any]) -> None:
    """In the JSON Schema, a ``reads`` entry may be the path alone (see ``_short_reads``)."""
    schema["items"] = {"anyOf": [schema["items"], {"type": "string"}]}


RestartKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class RestartTarget(_Model):
    """A workload the operator restarts (a rollout) when one of the service's secrets changes."""

    kind: RestartKind
    """``Deployment``, ``StatefulSet`` or ``DaemonSet``."""
    name: DnsLabel
    """Its name, in the service's namespace."""


class Service(_Model):
    """A service: its own identity (ServiceAccount, role, policy) and the secrets it reads."""

    name: Annotated[str, WithJsonSchema(_LABEL_SCHEMA)]
    """The service's name: its ServiceAccount, Vault role and policy, and its KV folder
    ``secret/<name>/``. A few names are reserved (``shared``, ``infrastructure``, ...)."""
    namespace: Namespace
    """The namespace its ServiceAccount and Secrets live in (not a system namespace)."""
    secrets: dict[DnsLabel, SecretSpec] = Field(default_factory=dict)
    """The service's own secrets, by name: KV path ``<service>/<name>``."""
    reads: list[Read] = Field(default_factory=list, json_schema_extra=_path_or_read)
    """Shared or infrastructure secrets it reads (a path string is short for ``{path: ...}``)."""
    restart: list[RestartTarget] = Field(default_factory=list)
    """Workloads to roll out when one of its secrets changes in Vault."""
    refresh_after: RefreshAfter | None = Field(default=None, alias="refreshAfter")
    """How often the operator re-reads its secrets (default: the catalog's)."""

    @field_validator("reads", mode="before")
    @classmethod
    def _short_reads(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("name")
    @classmethod
    def _service_name(cls, value: str) -> str:
        _dns_label(value)
        if value in conv.RESERVED_SERVICE_NAMES:
            raise ValueError(
                f"service name {value!r} is reserved: {conv.RESERVED_SERVICE_NAMES[value]}"
            )
        return value


class Defaults(_Model):
    """Values every service gets unless it says otherwise."""

    refresh_after: RefreshAfter = Field(default="30s", alias="refreshAfter")
    """How often the operator re-reads a secret: one number and one unit (VSO 1.4.1's rule)."""
    token_ttl: Duration = Field(default="1h", alias="tokenTTL")
    """The TTL of the tokens each service's kubernetes auth role issues."""
    audience: Audience = "vault"
    """The ServiceAccount token audience every role requires and every VaultAuth asks for."""


class ScopedSecret(_Model):
    """A shared or infrastructure secret, declared once at the top of the catalog."""

    keys: dict[SecretKey, Source | None] = Field(min_length=1)
    """Its keys, each with where its value comes from (empty: filled by hand)."""


class Catalog(_Model):
    """The service catalog: the one file every path, policy, role and object derives from."""

    version: Literal[1] = 1
    """The catalog format's version: 1."""
    name: DnsLabel = "default"
    """Names this catalog's objects (label ``secrets-bootstrap/catalog``, policy header) so
    that several catalogs can share a cluster and prune never crosses between them."""
    defaults: Defaults = Field(default_factory=Defaults)
    """Values every service gets unless it says otherwise."""
    shared: dict[DnsLabel, ScopedSecret] = Field(default_factory=dict)
    """Secrets several services read (``secret/shared/<name>``), each only by those that
    declare it in ``reads``."""
    infrastructure: dict[DnsLabel, ScopedSecret] = Field(default_factory=dict)
    """Secrets of the platform (``secret/infrastructure/<name>``), read the same way."""
    services: list[Service] = Field(min_length=1)
    """The services, at least one."""
    #: Where each entry sits in the file (set by parse_catalog), for located messages.
    _locator: _Locator | None = PrivateAttr(default=None)

    def __eq__(self, other: object) -> bool:
        # Two catalogs with the same content are equal wherever their entries sit.
        if not isinstance(other, Catalog):
            return NotImplemented
        return self.__dict__ == other.__dict__

    # unhashable, as a mutable-looking model with __eq__ must be; typeshed types __hash__ as
    # a method, which None is not
    __hash__ = None  # type: ignore[assignment]

    def where(self, loc: tuple[Any, ...]) -> str:
        """'file:line: entry, field' for an entry, e.g. ``("services", 0, "namespace")``."""
        if self._locator is None:
            return _Locator("<catalog>", self.model_dump(by_alias=True), {}).where(loc)
        return self._locator.where(loc)

    # -- derived views -----------------------------------------------------------------
    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    def scoped(self, scope: str) -> dict[str, ScopedSecret]:
        return self.shared if scope == conv.SHARED else self.infrastructure

    @property
    def namespaces(self) -> list[str]:
        return sorted({s.namespace for s in self.services})

    def refresh_after(self, service: Service, secret: SecretSpec | None = None) -> str:
        if secret is not None and secret.refresh_after:
            return secret.refresh_after
        return service.refresh_after or self.defaults.refresh_after


# ----------------------------------------------------------------------------------------
# Loading, with line numbers for every problem.


#: libyaml's parser when PyYAML was built with it (much faster on large files), else PyYAML's.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


#: The implicit resolvers of YAML 1.1 plain scalars, by first character (PyYAML's own table,
#: as its SafeLoader uses it: ``null``, booleans, numbers, timestamps, ``<<``, ``=``).
_IMPLICIT: dict[Any, list[tuple[str, Any]]] = yaml.resolver.Resolver.yaml_implicit_resolvers
_TAG = "tag:yaml.org,2002:"
#: First characters for which a plain scalar may be something other than a string.
_RESOLVABLE = frozenset(k for k in _IMPLICIT if k is not None)
_WILDCARD = bool(_IMPLICIT.get(None))
_NOTHING: Any = object()


class _Frame:
    """An open mapping or sequence while the events are read."""

    __slots__ = ("container", "is_map", "key", "key_line", "key_raw", "path", "seen", "want_key")

    def __init__(self, container: Any, path: tuple[Any, ...]) -> None:
        self.container = container
        self.is_map = isinstance(container, dict)
        self.path = path
        self.want_key = True
        self.key: Any = None
        self.key_raw: Any = None
        self.key_line = 0
        self.seen: set[Any] = set()


def _tag_text(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Construct(Exception):
    """A value YAML cannot build (a plain ``=``, a merge key): a message, and its line."""


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _plain(value: str) -> Any:
    """A plain scalar's value as PyYAML's SafeLoader builds it (YAML 1.1 implicit types)."""
    tag = next(
        (
            t
            for t, regexp in (
                *_IMPLICIT.get(value[0] if value else "", ()),
                *_IMPLICIT.get(None, ()),
            )
            if regexp.match(value)
        ),
        None,
    )
    if tag is None:
        return value
    if tag == _TAG + "merge":
        raise _Construct(
            "YAML merge key '<<' is not allowed in a catalog (write the entries out instead)"
        )
    if tag == _TAG + "value":
        raise _Construct(f"malformed YAML: could not determine a constructor for the tag {tag!r}")
    node = yaml.ScalarNode(tag, value)
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)


def _read_events(
    text: str, source: str
) -> tuple[Any, dict[tuple[Any, ...], int], list[tuple[tuple[Any, ...], str, int]]]:
    """One pass over the parser's events (libyaml's when PyYAML has it), building the data
    as PyYAML's SafeLoader would, with the line of every entry and the duplicate mapping keys
    (YAML keeps the last silently). Refused on the way, before anything else looks at the
    data: anchors and aliases (an alias bomb expands exponentially, a recursive alias never
    ends), explicit tags (``!!binary``, ``!!str``, any ``!tag``: a tag changes what a
    reviewed entry means, e.g. ``? !!binary Y29uZmln`` is the key ``config``; issue 23,
    finding 5), merge keys, nesting deeper than MAX_DEPTH, a second document. Linear in the
    size of the text: the catalog is read once (issue 23, finding 12).

    Returns the data (``_NOTHING`` for a stream without a document), the lines and the
    duplicates; raises CatalogError for what it refuses, yaml.YAMLError for what the parser
    cannot read."""
    problems: list[str] = []
    later: str | None = None  # the first value that cannot be built: after the problems
    lines: dict[tuple[Any, ...], int] = {}
    dupes: list[tuple[tuple[Any, ...], str, int]] = []
    root: Any = _NOTHING
    stack: list[_Frame] = []
    building = True
    documents = 0
    scalar_t, alias_t = yaml.ScalarEvent, yaml.AliasEvent
    mapping_t, sequence_t = yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    event: Any
    value: Any
    path: tuple[Any, ...]
    parent: _Frame | None
    resolvable = _RESOLVABLE
    for event in yaml.parse(text, Loader=_Loader):
        kind = type(event)
        if kind is scalar_t and building and event.anchor is None and event.tag is None and stack:
            # the common case, kept short: a plain or quoted scalar in a mapping or a list
            raw = event.value
            if event.implicit[0] and (_WILDCARD or raw[:1] in resolvable):
                try:
                    value = _plain(raw)
                except _Construct as exc:
                    problems.append(f"{source}:{event.start_mark.line + 1}: {exc}")
                    building = False
                    continue
            else:
                value = raw
            parent = stack[-1]
            if not parent.is_map:
                path = (*parent.path, len(parent.container))
                parent.container.append(value)
                lines.setdefault(path, event.start_mark.line + 1)
            elif parent.want_key:
                line = event.start_mark.line + 1
                if raw in parent.seen:
                    dupes.append((parent.path, str(raw), line))
                parent.seen.add(raw)
                parent.key, parent.key_raw, parent.key_line = value, raw, line
                parent.want_key = False
            else:
                parent.container[parent.key] = value
                lines[(*parent.path, parent.key_raw)] = parent.key_line
                parent.want_key = True
            continue
        if kind in ends:
            if stack:
                stack.pop()
            continue
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents == 2 and later is None:
                later = (
                    f"{source}:{event.start_mark.line + 1}: malformed YAML: expected a single "
                    "document in the stream, but found another document"
                )
                building = False
            continue
        if kind not in (scalar_t, mapping_t, sequence_t, alias_t):
            continue  # stream and document ends
        line = event.start_mark.line + 1
        anchor = event.anchor
        if kind is alias_t:
            problems.append(
                f"{source}:{line}: YAML alias '*{str(anchor)[:40]}' is not allowed in a catalog "
                "(write the value out instead)"
            )
            building = False
        elif anchor is not None:
            problems.append(
                f"{source}:{line}: YAML anchor '&{str(anchor)[:40]}' is not allowed in a "
                "catalog (anchors and aliases are refused; write the values out instead)"
            )
            building = False
        if kind is not alias_t and event.tag is not None:
            problems.append(
                f"{source}:{line}: explicit YAML tag {show(_tag_text(event.tag), 60)} is not "
                "allowed in a catalog (it changes what the value means; write the plain value)"
            )
            building = False
        if (kind is mapping_t or kind is sequence_t) and len(stack) >= MAX_DEPTH:
            problems.append(
                f"{source}:{line}: nested deeper than {MAX_DEPTH} levels; not a catalog"
            )
            break
        if len(problems) >= 10:
            problems.append(f"{source}: (further anchors or aliases not listed, nor tags)")
            break
        if not building:
            if kind is mapping_t or kind is sequence_t:
                stack.append(_Frame(None, ()))  # depth only
            continue
        # the value: a scalar now, a container filled by the events that follow
        if kind is scalar_t:
            try:
                value = _plain(event.value) if event.implicit[0] else event.value
            except _Construct as exc:
                problems.append(f"{source}:{line}: {exc}")
                building = False
                continue
        elif kind is mapping_t:
            value = {}
        elif kind is sequence_t:
            value = []
        else:
            continue
        parent = stack[-1] if stack else None
        if parent is None:
            path = ()
            root = value
            lines.setdefault(path, line)
        elif not parent.is_map:
            path = (*parent.path, len(parent.container))
            parent.container.append(value)
            lines.setdefault(path, line)
        elif parent.want_key:
            if kind is not scalar_t:
                later = later or f"{source}:{line}: malformed YAML: found unhashable key"
                building = False
                stack.append(_Frame(None, ()))
                continue
            raw = event.value
            if raw in parent.seen:
                dupes.append((parent.path, str(raw), line))
            parent.seen.add(raw)
            parent.key, parent.key_raw, parent.key_line = value, raw, line
            parent.want_key = False
            continue
        else:
            path = (*parent.path, parent.key_raw)
            parent.container[parent.key] = value
            lines[path] = parent.key_line
            parent.want_key = True
        if kind is not scalar_t:
            stack.append(_Frame(value, path))
    if problems:
        raise CatalogError(source, problems)
    if later is not None:
        raise CatalogError(source, [later])
    return root, lines, dupes


def _read(
    text: str, source: str
) -> tuple[Any, dict[tuple[Any, ...], int], list[tuple[tuple[Any, ...], str, int]]]:
    """:func:`_read_events`, with every parser failure a CatalogError."""
    try:
        return _read_events(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(source, [f"{where}: malformed YAML: {problem}"]) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # e.g. a plain timestamp such as 2020-13-45, which YAML 1.1 reads as a date
        raise CatalogError(
            source, [f"{source}: unreadable YAML: {type(exc).__name__}: {show(str(exc), 200)}"]
        ) from None


class _Locator:
    """Turns a location inside the document into 'file:line: entry, field' text."""

    def __init__(self, source: str, data: Any, lines: dict[tuple[Any, ...], int]) -> None:
        self.source = source
        self.data = data
        self.lines = lines

    def line(self, loc: tuple[Any, ...]) -> int | None:
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def entry(self, loc: tuple[Any, ...]) -> str:
        if len(loc) >= 2 and loc[0] == "services" and isinstance(loc[1], int):
            name = None
            services = self.data.get("services") if isinstance(self.data, dict) else None
            if isinstance(services, list) and loc[1] < len(services):
                item = services[loc[1]]
                if isinstance(item, dict):
                    name = item.get("name")
            label = f"services[{loc[1]}]"
            if name is not None:
                plain = isinstance(name, str) and conv.is_dns_label(name)
                label += f" ({name})" if plain else f" ({show(name, 40)})"
            rest = loc[2:]
        elif len(loc) >= 2 and loc[0] in ("shared", "infrastructure"):
            name = loc[1]
            plain = isinstance(name, str) and conv.is_dns_label(name)
            label = f"{loc[0]}/{name}" if plain else f"{loc[0]}/{show(name, 40)}"
            rest = loc[2:]
        elif loc:
            label = str(loc[0]) if isinstance(loc[0], str) else show(loc[0], 40)
            rest = loc[1:]
        else:
            label = "(document)"
            rest = ()
        if rest:
            label += " field " + ".".join(
                p if isinstance(p, str) and len(p) <= 80 and p.isprintable() else show(p, 40)
                for p in (str(q) if isinstance(q, int) else q for q in rest)
            )
        return label

    def where(self, loc: tuple[Any, ...]) -> str:
        line = self.line(loc)
        prefix = f"{self.source}:{line}" if line is not None else self.source
        return f"{prefix}: {self.entry(loc)}"


_ALIASES = {"copy_": "copy", "refresh_after": "refreshAfter", "token_ttl": "tokenTTL"}


def _drop_from_loc(part: Any) -> bool:
    """Pydantic's own labels in an error location (union branches, validators, dict keys)."""
    return isinstance(part, str) and (part in ("Source", "[key]") or part.startswith("function-"))


def _pydantic_problems(err: ValidationError, loc8: _Locator) -> Iterator[str]:
    for e in err.errors():
        loc = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in e["loc"])
        loc = tuple(p for p in loc if not _drop_from_loc(p))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {show(loc[-1], 60)}"
        elif e["type"] == "literal_error" and loc and loc[-1] == "kind":
            msg = (
                f"unknown restart kind {show(e.get('input'), 60)}: "
                "expected Deployment, StatefulSet or DaemonSet"
            )
        yield f"{loc8.where(loc)}: {msg}"


def _consistency_problems(cat: Catalog, loc8: _Locator) -> Iterator[str]:
    seen: dict[str, int] = {}
    for i, svc in enumerate(cat.services):
        if svc.name in seen:
            yield (
                f"{loc8.where(('services', i, 'name'))}: duplicate service {svc.name!r} "
                f"(first declared as services[{seen[svc.name]}])"
            )
        else:
            seen[svc.name] = i
        if not svc.secrets and not svc.reads:
            yield f"{loc8.where(('services', i))}: declares no secrets and reads none"
        read_paths: set[str] = set()
        for j, read in enumerate(svc.reads):
            if read.name not in cat.scoped(read.scope):
                yield (
                    f"{loc8.where(('services', i, 'reads', j))}: reads {read.path!r}, "
                    f"which is not declared under '{read.scope}:'"
                )
            if read.path in read_paths:
                yield f"{loc8.where(('services', i, 'reads', j))}: reads {read.path!r} twice"
            read_paths.add(read.path)
        targets: set[tuple[str, str]] = set()
        for j, target in enumerate(svc.restart):
            if (target.kind, target.name) in targets:
                yield (
                    f"{loc8.where(('services', i, 'restart', j))}: restart target "
                    f"{target.kind}/{target.name} listed twice"
                )
            targets.add((target.kind, target.name))
    yield from _copy_problems(cat, loc8)
    # Two VaultStaticSecrets may not write the same Secret in one namespace.
    owners: dict[tuple[str, str], str] = {}
    for i, svc in enumerate(cat.services):
        for sname, spec in svc.secrets.items():
            dest = spec.destination or sname
            where = ("services", i, "secrets", sname)
            yield from _claim(owners, (svc.namespace, dest), f"{svc.name}/{sname}", where, loc8)
        for j, read in enumerate(svc.reads):
            dest = read.destination or read.name
            yield from _claim(
                owners,
                (svc.namespace, dest),
                f"{svc.name} reads {read.path}",
                ("services", i, "reads", j),
                loc8,
            )


def _declared_keys(cat: Catalog, path: str) -> set[str] | None:
    """The keys the catalog declares at a KV path (None: the catalog does not declare it)."""
    owner, _, name = path.partition("/")
    if owner in conv.RESERVED_PREFIXES:
        scoped = cat.scoped(owner).get(name)
        return set(scoped.keys) if scoped is not None else None
    for svc in cat.services:
        if svc.name == owner and name in svc.secrets:
            return set(svc.secrets[name].keys)
    return None


def _copy_problems(cat: Catalog, loc8: _Locator) -> Iterator[str]:
    """``copy:`` reads Vault with the bootstrap's own token, so the catalog must say that the
    value may flow there: a service's secret copies only from the service's own paths or
    its declared reads; a shared or infrastructure secret copies only from another shared or
    infrastructure secret that every service reading it also reads."""
    readers: dict[str, list[Service]] = {}
    for svc in cat.services:
        for read in svc.reads:
            readers.setdefault(read.path, []).append(svc)

    def common(target: str, copy: Copy, key: str) -> Iterator[str]:
        if copy.path == target and copy.key == key:
            yield "copies itself"
            return
        keys = _declared_keys(cat, copy.path)
        if keys is not None and copy.key not in keys:
            yield f"copies key {copy.key!r} of {copy.path}, which declares no such key"

    for i, svc in enumerate(cat.services):
        may_read = {r.path for r in svc.reads}
        for sname, spec in svc.secrets.items():
            for key, src in spec.keys.items():
                if src is None or src.copy_ is None:
                    continue
                copy = src.copy_
                where = loc8.where(("services", i, "secrets", sname, "keys", key, "copy"))
                target = conv.kv_path(svc.name, sname)
                if copy.owner in conv.RESERVED_PREFIXES and copy.path not in may_read:
                    yield (
                        f"{where}: copies {copy.path}, which service {svc.name!r} does not "
                        "read; a service may copy only its own paths and its declared reads"
                    )
                elif copy.owner not in conv.RESERVED_PREFIXES and copy.owner != svc.name:
                    yield (
                        f"{where}: copies {copy.path}, another service's path; a service may "
                        f"copy only its own paths ({svc.name}/...) and its declared reads"
                    )
                else:
                    yield from (f"{where}: {m}" for m in common(target, copy, key))
    for scope in conv.RESERVED_PREFIXES:
        for name, scoped in cat.scoped(scope).items():
            target = conv.kv_path(scope, name)
            for key, src in scoped.keys.items():
                if src is None or src.copy_ is None:
                    continue
                copy = src.copy_
                where = loc8.where((scope, name, "keys", key, "copy"))
                if copy.owner not in conv.RESERVED_PREFIXES:
                    yield (
                        f"{where}: copies {copy.path}, a service's path; a shared or "
                        "infrastructure secret may copy only another shared or infrastructure "
                        "secret"
                    )
                    continue
                if _declared_keys(cat, copy.path) is None:
                    yield (
                        f"{where}: copies {copy.path}, which is not declared under '{copy.owner}:'"
                    )
                    continue
                blind = sorted(
                    s.name
                    for s in readers.get(target, [])
                    if copy.path not in {r.path for r in s.reads}
                )
                if blind and copy.path != target:
                    yield (
                        f"{where}: copies {copy.path} into {target}, but service(s) "
                        f"{', '.join(blind)} read {target} and not {copy.path}; the copy would "
                        "hand them its value"
                    )
                    continue
                yield from (f"{where}: {m}" for m in common(target, copy, key))


def _claim(
    owners: dict[tuple[str, str], str],
    key: tuple[str, str],
    who: str,
    where: tuple[Any, ...],
    loc8: _Locator,
) -> Iterator[str]:
    if key in owners:
        yield (
            f"{loc8.where(where)}: Secret {key[1]!r} in namespace {key[0]!r} would be "
            f"written by both {owners[key]} and {who}; set 'destination' on one of them"
        )
    else:
        owners[key] = who


def _too_large(source: str, size: int) -> CatalogError:
    return CatalogError(
        source,
        [f"{source}: {size} bytes; a catalog may hold at most {MAX_CATALOG_BYTES} bytes (1 MiB)"],
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a burst of allocations that all survive
    (loading a catalog, rendering and checking it): each collection would scan every object
    made so far again, which took more than half the time of checking 10,000 services (issue
    23, finding 12). Memory without cycles is still freed at once; the collector is back on
    (as it was) when the block ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog text. Raises :class:`CatalogError` and nothing else for bad input."""
    with gc_paused():
        return _parse_catalog(text, source)


def _parse_catalog(text: str, source: str) -> Catalog:
    if len(text) > MAX_CATALOG_BYTES:
        raise _too_large(source, len(text.encode("utf-8", "replace")))
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_CATALOG_BYTES:
        raise _too_large(source, size)
    data, lines, dupes = _read(text, source)
    if data is _NOTHING:
        raise CatalogError(source, [f"{source}: the catalog is empty"])
    loc8 = _Locator(source, data, lines)
    if dupes:
        raise CatalogError(
            source,
            [
                f"{source}:{line}: {loc8.entry(path)}: duplicate key {show(key, 60)}"
                for path, key, line in dupes
            ],
        )
    if not isinstance(data, dict):
        raise CatalogError(source, [f"{source}:1: the catalog must be a mapping with 'services:'"])
    try:
        cat = Catalog.model_validate(data)
    except ValidationError as err:
        raise CatalogError(source, list(_pydantic_problems(err, loc8))) from None
    problems = list(_consistency_problems(cat, loc8))
    if problems:
        raise CatalogError(source, problems)
    cat._locator = loc8
    return cat


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog file (at most MAX_CATALOG_BYTES, checked before parsing)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_CATALOG_BYTES + 1)
            if len(raw) > MAX_CATALOG_BYTES:
                try:
                    size = os.fstat(fh.fileno()).st_size
                except OSError:
                    size = 0
                raise _too_large(str(p), max(size, len(raw)))
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(str(p), [f"{p}: no such file"]) from None
    except UnicodeDecodeError as exc:
        raise CatalogError(
            str(p), [f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})"]
        ) from None
    except OSError as exc:
        raise CatalogError(str(p), [f"{p}: cannot read: {exc.strerror or exc}"]) from None
    return parse_catalog(text, str(p))
