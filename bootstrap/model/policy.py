"""Vault ACL policies, read and evaluated the way Vault and OpenBao do. Pure; no IO.

- :func:`parse_policy` reads policy text as the servers do: HCL (version 1 syntax: ``#``,
  ``//`` and ``/* */`` comments, quoted or bare keys, string escapes such as ``\\u002a``,
  several blocks for one path) or JSON; strips a leading ``/`` from paths; maps the old
  ``policy = "read"|"write"|"sudo"|"deny"`` field to capabilities; knows every capability.
  Whatever it cannot read with certainty raises :class:`PolicyParseError` naming the line
  and the text: nothing is skipped silently.
- :func:`evaluate` answers which capabilities a request path gets under a set of rules:
  exact paths, a trailing ``*`` prefix glob, ``+`` for one path segment; among several
  matching rules the one of highest priority wins (Vault's documented order), rules with the
  same path merge, and ``deny`` overrides the rest.
- :class:`PathIndex` finds which of many concrete paths a rule can match without testing
  every one of them (a tree of path segments; sorted children for prefix globs).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from bootstrap.core.errors import BootstrapError

#: Every capability Vault or OpenBao accepts in a policy (``subscribe`` is Vault's,
#: ``scan`` OpenBao's). Anything else makes the server refuse the policy.
CAPABILITIES = frozenset(
    {"deny", "create", "read", "update", "patch", "delete", "list", "sudo", "subscribe", "scan"}
)
#: The old ``policy = "..."`` field of a path block, as the servers translate it.
OLD_POLICIES: dict[str, tuple[str, ...]] = {
    "deny": ("deny",),
    "read": ("read", "list"),
    "write": ("create", "read", "update", "delete", "list"),
    "sudo": ("create", "read", "update", "delete", "list", "sudo"),
}
#: Keys a path block may hold (Vault's and OpenBao's together).
PATH_KEYS = frozenset(
    {
        "comment",
        "policy",
        "capabilities",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
        "subscribe_event_types",
        "pagination_limit",
        "expiration",
        "list_scan_response_keys_filter_path",
    }
)
#: Keys that can make a plain request fail although the capability is there (MFA, control
#: groups, response wrapping, required parameters, an expiry): a read is not provable.
CONDITION_KEYS = frozenset(
    {
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "mfa_methods",
        "control_group",
        "expiration",
    }
)


class PolicyParseError(BootstrapError):
    pass


@dataclass(frozen=True)
class Rule:
    """One path block: the (normalised) path pattern and the capabilities it grants."""

    path: str
    capabilities: frozenset[str]
    #: Path-block keys that may refuse a request the capability allows (see CONDITION_KEYS).
    conditions: frozenset[str] = frozenset()
    #: The policy the rule comes from (for messages only).
    policy: str = field(default="", compare=False)

    @property
    def is_glob(self) -> bool:
        return self.path.endswith("*")

    @cached_property
    def segment_wildcards(self) -> bool:
        """Whether the servers treat the path as a ``+`` (segment wildcard) pattern."""
        p = self.path
        return p == "+" or "/+" in p or p.startswith("+/")

    @cached_property
    def parts(self) -> tuple[str, ...]:
        """The pattern's segments, the trailing ``*`` removed; ``+`` parts are wildcards."""
        return tuple((self.path[:-1] if self.is_glob else self.path).split("/"))

    @cached_property
    def priority(self) -> tuple[int, int, int, int, str]:
        """Sort key: the higher one wins among rules matching one request (Vault's order:
        an exact path first; then the later first wildcard, not ending in ``*``, fewer ``+``
        segments, the longer pattern, the lexically larger one)."""
        stem = self.path[:-1] if self.is_glob else self.path
        if not self.segment_wildcards:
            if not self.is_glob:
                return (1 << 30, 1, 0, len(stem), stem)
            return (len(stem), 0, 0, len(stem), stem)
        plus = sum(1 for p in self.parts if p == "+")
        return (self.path.index("+"), 0 if self.is_glob else 1, -plus, len(stem), stem)

    def matches(self, request: str) -> bool:
        if not self.segment_wildcards:
            if self.is_glob:
                return request.startswith(self.path[:-1])
            return request == self.path
        pat = self.parts
        req = request.split("/")
        if len(req) < len(pat) or (not self.is_glob and len(req) != len(pat)):
            return False
        last = len(pat) - 1
        for i, seg in enumerate(pat):
            if seg == "+" or seg == req[i]:
                continue
            if self.is_glob and i == last and req[i].startswith(seg):
                continue
            return False
        return True


@dataclass(frozen=True)
class Grant:
    """What one request gets: the capabilities of the winning rule (merged with rules of the
    same path; empty on deny or when nothing matches) and that rule's conditions."""

    capabilities: frozenset[str]
    conditions: frozenset[str]
    rule: Rule | None


class Rules(list[Rule]):
    """A role's rules, looked up by path: :func:`evaluate` on a ``Rules`` finds the rules of
    an exact path in a dict and tries only the glob and ``+`` rules one by one, so a role of
    thousands of exact paths (one per declared read) answers each request in constant time
    rather than in time linear in its rules (issue 23, finding 12). Build it once, whole:
    the index is made on first use and does not follow later changes to the list."""

    _exact: dict[str, list[Rule]] | None = None
    _patterns: list[Rule] | None = None

    def by_path(self) -> tuple[dict[str, list[Rule]], list[Rule]]:
        if self._exact is None or self._patterns is None:
            exact: dict[str, list[Rule]] = {}
            patterns: list[Rule] = []
            for r in self:
                if r.is_glob or r.segment_wildcards:
                    patterns.append(r)
                else:
                    exact.setdefault(r.path, []).append(r)
            self._exact, self._patterns = exact, patterns
        return self._exact, self._patterns


def evaluate(rules: list[Rule], request: str) -> Grant:
    if isinstance(rules, Rules):
        exact, patterns = rules.by_path()
        # an exact path outranks every pattern: its rules (merged) decide alone
        rules = exact.get(request) or [r for r in patterns if r.matches(request)]
    best: tuple[int, int, int, int, str] | None = None
    caps: set[str] = set()
    conditions: set[str] = set()
    winner: Rule | None = None
    for r in rules:
        if not r.matches(request):
            continue
        key = r.priority  # equal keys mean the same path: the servers merge those rules
        if best is None or key > best:
            best, winner = key, r
            caps, conditions = set(r.capabilities), set(r.conditions)
        elif key == best:
            caps |= r.capabilities
            conditions |= r.conditions
    if "deny" in caps:
        return Grant(frozenset(), frozenset(), winner)
    return Grant(frozenset(caps), frozenset(conditions), winner)


def capabilities(rules: list[Rule], request: str) -> frozenset[str]:
    return evaluate(rules, request).capabilities


def allowed(rules: list[Rule], request: str, capability: str = "read") -> bool:
    """Whether a request path gets ``capability`` under these rules (deny wins in a rule)."""
    return capability in evaluate(rules, request).capabilities


# -- parsing ----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\f\v]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<heredoc><<)
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.\-]*)
  | (?P<punct>[{}\[\]=,])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}


@dataclass
class _Tok:
    kind: str
    text: str
    line: int
    value: Any = None


@dataclass
class _Item:
    keys: list[str]
    value: Any  # str | int | float | bool | list | _Obj
    line: int


@dataclass
class _Obj:
    items: list[_Item]


class _Syntax(Exception):
    def __init__(self, line: int, message: str, text: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.text = text


def _unquote(raw: str, line: int) -> str:
    """A double-quoted HCL string's value (Go's escapes, as HCL version 1 reads them)."""
    body = raw[1:-1]
    if "${" in body:
        raise _Syntax(line, "interpolation syntax '${' is not supported", raw)
    if "\\" not in body:
        return body  # nothing to unescape (the policies the product writes)
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(esc)
        if width is not None:
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _Syntax(line, f"invalid escape '\\{esc}{digits}'", raw)
            code = int(digits, 16)
            if esc == "x" and code >= 0x80:
                raise _Syntax(line, f"escape '\\x{digits}' is a raw byte, not a character", raw)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _Syntax(line, f"escape '\\{esc}{digits}' is not a valid character", raw)
            out.append(chr(code))
            i += 2 + width
            continue
        octal = body[i + 1 : i + 4]
        if len(octal) == 3 and all(c in "01234567" for c in octal):
            code = int(octal, 8)
            if code >= 0x80:
                raise _Syntax(line, f"escape '\\{octal}' is a raw byte, not a character", raw)
            out.append(chr(code))
            i += 4
            continue
        raise _Syntax(line, f"invalid escape '\\{esc}'", raw)
    return "".join(out)


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    line = 1
    # finditer skips what no token matches: a gap between two matches is the error
    for m in _TOKEN.finditer(text):
        if m.start() != pos:
            break
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "space":
            line += tok.count("\n")
            pos = m.end()
            continue
        if kind == "heredoc":
            raise _Syntax(line, "heredoc strings are not supported", text[pos:].split("\n")[0])
        if kind == "string":
            out.append(_Tok("string", tok, line, _unquote(tok, line)))
        elif kind == "number":
            out.append(_Tok("number", tok, line, tok))
        elif kind == "ident":
            value: Any = {"true": True, "false": False}.get(tok, tok)
            out.append(_Tok("bool" if isinstance(value, bool) else "ident", tok, line, value))
        elif kind == "punct":
            out.append(_Tok(tok, tok, line))
        line += tok.count("\n")
        pos = m.end()
    if pos < len(text):
        rest = text[pos:].split("\n", 1)[0]
        what = "unterminated comment" if rest.startswith("/*") else "unexpected text"
        if rest.startswith('"'):
            what = "unterminated string"
        raise _Syntax(line, what, rest[:60])
    return out


_E = TypeVar("_E")


class _Parser:
    """HCL version 1 object lists: ``key+ = value`` or ``key+ { ... }``, items optionally
    separated by commas; values are strings, numbers, booleans, lists and objects."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else _Tok("", "", 1)
            raise _Syntax(last.line, "unexpected end of the policy", last.text)
        self.i += 1
        return tok

    def sequence(
        self, parse: Callable[[], _E], closing: str | None, opening: _Tok | None = None
    ) -> list[_E]:
        """Elements up to ``closing`` (None: the end of the policy), optionally separated by
        commas. A missing ``closing`` is blamed on ``opening``, else on the last token."""
        out: list[_E] = []
        while True:
            tok = self.peek()
            if tok is None:
                if closing is None:
                    return out
                at = opening or self.toks[-1]
                raise _Syntax(at.line, f"missing '{closing}'", at.text)
            if tok.kind == closing:
                self.i += 1
                return out
            if tok.kind == ",":
                self.i += 1
                continue
            out.append(parse())

    def object_list(self, closing: str | None) -> list[_Item]:
        return self.sequence(self.item, closing)

    def item(self) -> _Item:
        keys: list[str] = []
        first = self.peek()
        line = first.line if first else 1
        while True:
            tok = self.take()
            if tok.kind in ("ident", "string"):
                keys.append(str(tok.value))
                continue
            if tok.kind == "=" and len(keys) == 1:
                return _Item(keys, self.value(), line)
            if tok.kind == "{" and keys:
                return _Item(keys, _Obj(self.object_list("}")), line)
            raise _Syntax(tok.line, "expected a key, '=' or '{'", tok.text)

    def value(self) -> Any:
        tok = self.take()
        if tok.kind in ("string", "bool"):
            return tok.value
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text or "e" in tok.text.lower() else tok.text
        if tok.kind == "{":
            return _Obj(self.object_list("}"))
        if tok.kind == "[":
            return self.sequence(self.value, "]", tok)
        raise _Syntax(tok.line, "expected a value", tok.text)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members in order (duplicates kept)."""


def _from_json(value: Any) -> Any:
    if isinstance(value, _Pairs):
        return _Obj([_Item([k], _from_json(v), 1) for k, v in value])
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _json_items(text: str) -> list[_Item]:
    try:
        doc = json.loads(text, object_pairs_hook=_Pairs)
    except ValueError as exc:
        raise _Syntax(getattr(exc, "lineno", 1), "invalid JSON", text.strip()[:60]) from None
    top = _from_json(doc)
    if not isinstance(top, _Obj):
        raise _Syntax(1, "a JSON policy must be an object", text.strip()[:60])
    items: list[_Item] = []
    for it in top.items:
        if it.keys == ["path"] and isinstance(it.value, _Obj):
            # The servers' JSON reader turns {"path": {"p": {...}}} into blocks path "p".
            for sub in it.value.items:
                body = sub.value
                if not isinstance(body, _Obj) or all(isinstance(x.value, _Obj) for x in body.items):
                    raise _Syntax(1, "unsupported JSON shape for path", sub.keys[0])
                items.append(_Item(["path", sub.keys[0]], body, 1))
        else:
            items.append(it)
    return items


def _strings(value: Any, key: str, line: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Syntax(line, f"{key} must be a list of strings", repr(value)[:60])
    return list(value)


def _rule(path: str, body: _Obj, line: int, name: str) -> Rule:
    seen: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for it in body.items:
        key = it.keys[0]
        if len(it.keys) != 1 or key not in PATH_KEYS:
            raise _Syntax(it.line, f"path {path!r}: unknown key", " ".join(it.keys))
        if key in seen:
            raise _Syntax(it.line, f"path {path!r}: {key} is set twice", key)
        seen[key], lines[key] = it.value, it.line
    caps: list[str] = []
    if "capabilities" in seen:
        caps = _strings(seen["capabilities"], "capabilities", lines["capabilities"])
        for c in caps:
            if c not in CAPABILITIES:
                raise _Syntax(lines["capabilities"], f"path {path!r}: unknown capability", c)
    if "policy" in seen:
        old = seen["policy"]
        if not isinstance(old, str) or old not in OLD_POLICIES:
            raise _Syntax(
                lines["policy"], f"path {path!r}: invalid policy (the servers refuse it)", str(old)
            )
        caps = ["deny"] if old == "deny" else [*caps, *OLD_POLICIES[old]]
    if "deny" in caps:
        caps = ["deny"]
    if "{{" in path:
        raise _Syntax(line, "templated path: what it grants depends on the token's identity", path)
    if path.startswith("/"):
        path = path[1:]  # as the servers do: paths start after the API's leading '/'
    if "+*" in path:
        raise _Syntax(line, "'+*' in a path (the servers refuse it)", path)
    conditions = frozenset(k for k in seen if k in CONDITION_KEYS)
    return Rule(path, frozenset(caps), conditions, name)


#: One path block exactly as the product renders it (see render.policy_block): a path without
#: quotes, escapes, templates or ``+*``, capabilities as a flat list of plain words.
_PLAIN_BLOCK = (
    r'path "([^"\\\n{}$+]*(?:\+(?!\*)[^"\\\n{}$+]*)*)" \{\n'
    r'  capabilities = \[((?:"[a-z]+"(?:, )?)*)\]\n\}'
)
_PLAIN_POLICY = re.compile(rf"(?:[ \t\n]*(?:#[^\n]*|{_PLAIN_BLOCK}))*[ \t\n]*")
_PLAIN_BLOCKS = re.compile(_PLAIN_BLOCK)
_PLAIN_WORD = re.compile(r'"([a-z]+)"')


def _plain_rules(text: str, name: str) -> list[Rule] | None:
    """The rules of a policy written exactly as the product renders its own (comments and
    plain path blocks), read without the general parser; None for any other text (the
    general parser reads it). The static check reads thousands of such policies (issue 23,
    finding 12); tests/unit/test_policy.py shows both readers agree."""
    if _PLAIN_POLICY.fullmatch(text) is None:
        return None
    rules: list[Rule] = []
    for m in _PLAIN_BLOCKS.finditer(text):
        caps = _PLAIN_WORD.findall(m.group(2))
        if not set(caps) <= CAPABILITIES:
            return None
        path = m.group(1)
        if path.startswith("/"):
            path = path[1:]
        rules.append(Rule(path, frozenset(["deny"] if "deny" in caps else caps), frozenset(), name))
    return rules


def parse_policy(text: str, name: str = "<policy>", where: str | None = None) -> list[Rule]:
    """The rules of one policy. ``where`` (default ``policy <name>``) starts every error."""
    where = where or f"policy {name}"
    plain = _plain_rules(text, name)
    if plain is not None:
        return plain
    try:
        if text.strip().startswith("{"):
            items = _json_items(text)
        else:
            items = _Parser(_tokens(text)).object_list(None)
        rules: list[Rule] = []
        for it in items:
            key = it.keys[0]
            if key == "name" and len(it.keys) == 1 and isinstance(it.value, str):
                continue
            if key != "path":
                raise _Syntax(it.line, "unknown top-level key", " ".join(it.keys))
            if len(it.keys) != 2 or not isinstance(it.value, _Obj):
                raise _Syntax(it.line, 'expected path "<path>" { ... }', " ".join(it.keys))
            rules.append(_rule(it.keys[1], it.value, it.line, name))
        return rules
    except _Syntax as exc:
        raise PolicyParseError(f"{where}:{exc.line}: {exc.message}: {exc.text!r}") from None


# -- an index of concrete paths ---------------------------------------------------------

T = TypeVar("T")


class _Node(Generic[T]):
    __slots__ = ("children", "entries", "names")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.entries: list[tuple[str, T]] = []
        self.names: list[str] | None = None  # sorted children names, built on first use

    def sorted_names(self) -> list[str]:
        if self.names is None:
            self.names = sorted(self.children)
        return self.names

    def subtree(self) -> Iterator[tuple[str, T]]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield from node.entries
            stack.extend(node.children.values())


class PathIndex(Generic[T]):
    """Concrete request paths (each with a value), indexed by segment. :meth:`matching`
    yields the ones a rule matches, visiting only the branches the rule can reach: a literal
    segment follows one child, ``+`` every child, and a trailing glob the children whose
    name starts with the pattern's last segment (a range of the sorted names)."""

    def __init__(self) -> None:
        self._root: _Node[T] = _Node()

    def add(self, path: str, value: T) -> None:
        node = self._root
        for seg in path.split("/"):
            child = node.children.get(seg)
            if child is None:
                child = node.children[seg] = _Node()
                node.names = None
            node = child
        node.entries.append((path, value))

    def matching(self, rule: Rule, under: tuple[str, ...] = ()) -> Iterator[tuple[str, T]]:
        """The indexed paths the rule matches, each read as ``under`` joined with it (so
        one index serves several mounts or API prefixes); yields the indexed path."""
        parts = rule.parts
        wild = rule.segment_wildcards  # else even a '+' part is literal
        last = len(parts) - 1
        for i, seg in enumerate(under):
            part = parts[i]
            if i == last and rule.is_glob:
                if (wild and part == "+") or seg.startswith(part):
                    yield from self._root.subtree()
                return
            if i == last or not ((wild and part == "+") or part == seg):
                return  # the pattern ends, or differs, within the fixed segments
        nodes = [self._root]
        rest = parts[len(under) :]
        last = len(rest) - 1
        for i, part in enumerate(rest):
            if i == last and rule.is_glob:
                for node in nodes:
                    if wild and part == "+":
                        for child in node.children.values():
                            yield from child.subtree()
                        continue
                    names = node.sorted_names()
                    for k in range(bisect.bisect_left(names, part), len(names)):
                        if not names[k].startswith(part):
                            break
                        yield from node.children[names[k]].subtree()
                return
            if wild and part == "+":
                nodes = [c for n in nodes for c in n.children.values()]
            else:
                nodes = [n.children[part] for n in nodes if part in n.children]
            if not nodes:
                return
        for node in nodes:
            yield from node.entries
