"""Vault ACL policies: a parser for the path-block subset and an evaluator that matches
request paths the way Vault does (exact paths, a trailing ``*`` prefix glob, ``+`` for one
path segment), choosing among several matching rules by Vault's documented priority.
Pure; no IO.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bootstrap.errors import BootstrapError

_BLOCK = re.compile(r'path\s+"(?P<path>[^"]*)"\s*\{(?P<body>[^{}]*)\}', re.MULTILINE)
_CAPS = re.compile(r"capabilities\s*=\s*\[(?P<caps>[^\]]*)\]")


class PolicyParseError(BootstrapError):
    pass


@dataclass(frozen=True)
class Rule:
    path: str
    capabilities: frozenset[str]

    @property
    def is_glob(self) -> bool:
        return self.path.endswith("*")

    def matches(self, request: str) -> bool:
        pattern = self.path[:-1] if self.is_glob else self.path
        if "+" not in pattern:
            return request.startswith(pattern) if self.is_glob else request == pattern
        pat_segs = pattern.split("/")
        req_segs = request.split("/")
        if self.is_glob:
            # Every segment but the last must match exactly (or be '+'); the last pattern
            # segment is a prefix of the corresponding request segment.
            if len(req_segs) < len(pat_segs):
                return False
            for i, seg in enumerate(pat_segs):
                last = i == len(pat_segs) - 1
                if seg == "+":
                    continue
                if last:
                    if not req_segs[i].startswith(seg):
                        return False
                elif seg != req_segs[i]:
                    return False
            return True
        if len(req_segs) != len(pat_segs):
            return False
        return all(p == "+" or p == r for p, r in zip(pat_segs, req_segs, strict=True))


def _priority_key(rule: Rule) -> tuple[int, int, int, int, str]:
    """Sort key: higher means the rule wins (Vault's policy priority rules)."""
    p = rule.path
    firsts = [i for i in (p.find("+"), p.find("*")) if i >= 0]
    first_wild = min(firsts) if firsts else len(p) + 1  # later wildcard wins
    not_glob = 0 if rule.is_glob else 1  # a rule not ending in * wins
    plus_count = -p.count("+")  # fewer + segments win
    return (first_wild, not_glob, plus_count, len(p), p)  # longer, then lexically larger


def parse_policy(text: str, name: str = "<policy>") -> list[Rule]:
    stripped = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("#", "//"))
    )
    rules: list[Rule] = []
    for m in _BLOCK.finditer(stripped):
        caps = _CAPS.search(m.group("body"))
        if caps is None:
            raise PolicyParseError(f"policy {name}: path {m.group('path')!r} has no capabilities")
        values = frozenset(c.strip().strip('"') for c in caps.group("caps").split(",") if c.strip())
        rules.append(Rule(m.group("path"), values))
    leftover = _BLOCK.sub("", stripped).strip()
    if leftover:
        raise PolicyParseError(f"policy {name}: cannot parse {leftover[:60]!r}")
    return rules


def allowed(rules: list[Rule], request: str, capability: str = "read") -> bool:
    """Whether a request path gets ``capability`` under these rules (deny wins in a rule)."""
    matching = [r for r in rules if r.matches(request)]
    if not matching:
        return False
    best = max(matching, key=_priority_key)
    # Vault merges rules with the same path pattern across policies; within one pattern
    # 'deny' overrides every other capability.
    merged: set[str] = set()
    for r in matching:
        if r.path == best.path:
            merged |= r.capabilities
    return "deny" not in merged and capability in merged
