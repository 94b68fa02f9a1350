"""The service catalog: one YAML file that drives everything.

``load_catalog(path)`` returns a validated :class:`Catalog` or raises :class:`CatalogError`
listing every problem with the file, the line (where the YAML parser can give it), the entry
and the field. Pure apart from reading the one file.
"""

from __future__ import annotations

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
    ValidationError,
    field_validator,
    model_validator,
)

from bootstrap import conventions as conv
from bootstrap.errors import CatalogError

DURATION = re.compile(r"^(?:\d+(?:h|m|s))+$")


def _dns_label(value: str) -> str:
    if not conv.DNS1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def duration_seconds(value: str) -> int:
    """Seconds in a Go-style duration such as ``30s``, ``1h30m``."""
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", value):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def _duration(value: str) -> str:
    if not DURATION.match(value) or duration_seconds(value) == 0:
        raise ValueError(f"{value!r} is not a positive duration like '30s', '5m' or '1h'")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Duration = Annotated[str, AfterValidator(_duration)]


def _check_keys(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if not conv.SECRET_KEY.match(key) or len(key) > 253:
            raise ValueError(f"key {key!r} is not a valid Secret key ([-._a-zA-Z0-9]+)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Generate(_Model):
    """A value generated once, then kept (never regenerated on a re-run)."""

    length: int = Field(default=32, ge=8, le=4096)
    alphabet: Literal["alnum", "hex", "base64url", "ascii"] = "alnum"


class Copy(_Model):
    """Copy of another Vault KV path's key, e.g. ``shared/aws-creds`` key ``access-key``."""

    path: str
    key: str


class Source(_Model):
    """Where one key's real value comes from. Exactly one field is set."""

    env: str | None = None
    file: str | None = None
    command: list[str] | None = None
    generate: Generate | None = None
    copy_: Copy | None = Field(default=None, alias="copy")
    prompt: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        chosen = [
            n
            for n in ("env", "file", "command", "generate", "copy_", "prompt")
            if getattr(self, n) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "a value source takes exactly one of env, file, command, generate, copy, prompt"
                f" (got {len(chosen)})"
            )
        return self

    @property
    def kind(self) -> str:
        for n in ("env", "file", "command", "generate", "copy_", "prompt"):
            if getattr(self, n) is not None:
                return n.rstrip("_")
        raise AssertionError("unreachable: validated to have one source")


class SecretSpec(_Model):
    """One secret: the keys it carries, and where each key's value comes from."""

    keys: dict[str, Source | None] = Field(min_length=1)
    destination: DnsLabel | None = None
    refresh_after: Duration | None = Field(default=None, alias="refreshAfter")

    @field_validator("keys")
    @classmethod
    def _key_names(cls, value: dict[str, Source | None]) -> dict[str, Source | None]:
        return _check_keys(value)


class Read(_Model):
    """A shared or infrastructure secret a service reads, e.g. ``shared/ovh-dns``."""

    path: str
    destination: DnsLabel | None = None

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


RestartKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class RestartTarget(_Model):
    kind: RestartKind
    name: DnsLabel


class Service(_Model):
    name: str
    namespace: DnsLabel
    secrets: dict[str, SecretSpec] = Field(default_factory=dict)
    reads: list[Read] = Field(default_factory=list)
    restart: list[RestartTarget] = Field(default_factory=list)
    refresh_after: Duration | None = Field(default=None, alias="refreshAfter")

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
        if value in conv.RESERVED_PREFIXES:
            raise ValueError(f"{value!r} is reserved for the {value}/ Vault path prefix")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, SecretSpec]) -> dict[str, SecretSpec]:
        for name in value:
            _dns_label(name)
        return value


class Defaults(_Model):
    refresh_after: Duration = Field(default="30s", alias="refreshAfter")
    token_ttl: Duration = Field(default="1h", alias="tokenTTL")
    audience: str = "vault"


class ScopedSecret(_Model):
    """A shared or infrastructure secret, declared once at the top of the catalog."""

    keys: dict[str, Source | None] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _key_names(cls, value: dict[str, Source | None]) -> dict[str, Source | None]:
        return _check_keys(value)


class Catalog(_Model):
    version: Literal[1] = 1
    #: Names this catalog's objects (label secrets-bootstrap/catalog, policy header) so that
    #: several catalogs can share a cluster and prune never crosses between them.
    name: DnsLabel = "default"
    defaults: Defaults = Field(default_factory=Defaults)
    shared: dict[str, ScopedSecret] = Field(default_factory=dict)
    infrastructure: dict[str, ScopedSecret] = Field(default_factory=dict)
    services: list[Service] = Field(min_length=1)

    @field_validator("shared", "infrastructure")
    @classmethod
    def _scoped_names(cls, value: dict[str, ScopedSecret]) -> dict[str, ScopedSecret]:
        for name in value:
            _dns_label(name)
        return value

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of silently keeping the last."""


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _FastLoader(CParser, _UniqueKeyLoader):
        """The same loader reading libyaml's events: scanning and parsing run in C (most of
        the time a large catalog took), composing and constructing stay in Python, so hooks
        on _UniqueKeyLoader's composer and constructor apply (those on its reader, scanner
        or parser do not)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        # libyaml would compose too; keep composing in Python, as _UniqueKeyLoader does.
        get_single_node = _UniqueKeyLoader.get_single_node
        check_node = _UniqueKeyLoader.check_node
        get_node = _UniqueKeyLoader.get_node

    _Loader: type[_UniqueKeyLoader] = _FastLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _Loader = _UniqueKeyLoader


def _line_index(
    node: yaml.Node,
    path: tuple[Any, ...],
    out: dict[tuple[Any, ...], int],
    dupes: list[tuple[tuple[Any, ...], str, int]],
) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in seen:
                dupes.append((path, str(key), key_node.start_mark.line + 1))
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out, dupes)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out, dupes)


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
            label = f"services[{loc[1]}]" + (f" ({name!s})" if name is not None else "")
            rest = loc[2:]
        elif len(loc) >= 2 and loc[0] in ("shared", "infrastructure"):
            label = f"{loc[0]}/{loc[1]}"
            rest = loc[2:]
        elif loc:
            label = str(loc[0])
            rest = loc[1:]
        else:
            label = "(document)"
            rest = ()
        if rest:
            label += " field " + ".".join(str(p) for p in rest)
        return label

    def where(self, loc: tuple[Any, ...]) -> str:
        line = self.line(loc)
        prefix = f"{self.source}:{line}" if line is not None else self.source
        return f"{prefix}: {self.entry(loc)}"


_ALIASES = {"copy_": "copy", "refresh_after": "refreshAfter", "token_ttl": "tokenTTL"}


def _pydantic_problems(err: ValidationError, loc8: _Locator) -> Iterator[str]:
    for e in err.errors():
        loc = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in e["loc"])
        # Drop pydantic's union branch labels (e.g. 'Source') from the location.
        loc = tuple(p for p in loc if p not in ("Source", "function-after[_exactly_one(), Source]"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}"
        elif e["type"] == "literal_error" and loc and loc[-1] == "kind":
            msg = (
                f"unknown restart kind {e.get('input')!r}: "
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


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog text. Raises :class:`CatalogError` and nothing else for bad input."""
    # One parse: the composed node gives the line numbers and, constructed, the data.
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(source, [f"{where}: malformed YAML: {problem}"]) from None
    except (ValueError, RecursionError) as exc:  # e.g. bad unicode in exotic inputs
        raise CatalogError(source, [f"{source}: unreadable YAML: {exc}"]) from None
    if node is None:
        raise CatalogError(source, [f"{source}: the catalog is empty"])
    lines: dict[tuple[Any, ...], int] = {}
    dupes: list[tuple[tuple[Any, ...], str, int]] = []
    _line_index(node, (), lines, dupes)
    try:
        data = loader.construct_document(node)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise CatalogError(source, [f"{source}: malformed YAML: {exc}"]) from None
    finally:
        loader.dispose()
    loc8 = _Locator(source, data, lines)
    if dupes:
        raise CatalogError(
            source,
            [
                f"{source}:{line}: {loc8.entry(path)}: duplicate key {key!r}"
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
    return cat


def load_catalog(path: str | Path) -> Catalog:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(str(p), [f"{p}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(str(p), [f"{p}: cannot read: {exc}"]) from None
    return parse_catalog(text, str(p))
