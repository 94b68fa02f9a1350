"""The isolation proof: the indexed search finds exactly what a plain pairwise reference
finds (every role against every other service's probes, and every scope's), on random
services, synced paths, declarations and rules, and on the example with random edits."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.model import conventions as conv
from bootstrap.model.catalog import load_catalog
from bootstrap.model.check import (
    PROBE,
    exempt,
    isolation,
    isolation_finding,
    probes,
    rendered_from_catalog,
    run_check,
)
from bootstrap.model.policy import Rule, allowed, capabilities, parse_policy
from tests.conftest import EXAMPLE


def reference(
    rules: dict[str, list[Rule]],
    services: list[str],
    synced: set[str],
    declared: dict[str, set[str]],
) -> list[str]:
    """Straightforward: each role, each other service's probes, then each scope probe."""
    all_probes = probes(services, synced)
    by_owner = defaultdict(list)
    for p in all_probes:
        by_owner[p.owner].append(p)
    out: list[str] = []
    for a in sorted(rules):
        mine = declared.get(a, set())
        for b in sorted(services):
            if b == a:
                continue
            for p in sorted(by_owner[b], key=lambda p: p.api_path):
                caps = capabilities(rules[a], p.api_path)
                if caps and not exempt(a, p, mine):
                    out.append(isolation_finding(a, p, caps, mine))
        for p in sorted((p for p in all_probes if p.scoped), key=lambda p: p.api_path):
            caps = capabilities(rules[a], p.api_path)
            if caps and not exempt(a, p, mine):
                out.append(isolation_finding(a, p, caps, mine))
    return out


def main_reference(rules: dict[str, list[Rule]], reads_by_role: dict[str, set[str]]) -> list[str]:
    """The pairwise proof as main had it (read on data paths only)."""
    findings = []
    services = sorted(rules)
    all_paths = {p for paths in reads_by_role.values() for p in paths}
    for a in services:
        for b in services:
            if a == b:
                continue
            probe_paths = {p for p in reads_by_role.get(b, set()) if p.split("/")[0] == b}
            probe_paths.add(f"{b}/{PROBE}")
            for path in sorted(probe_paths):
                api_path = f"{conv.KV_MOUNT}/data/{path}"
                if allowed(rules[a], api_path):
                    findings.append(f"role {a}: can read {b}'s private path {api_path!r}")
        for path in sorted(all_paths - reads_by_role.get(a, set())):
            if path.split("/")[0] in conv.RESERVED_PREFIXES:
                api_path = f"{conv.KV_MOUNT}/data/{path}"
                if allowed(rules[a], api_path):
                    findings.append(f"role {a}: can read {api_path!r}, which it does not declare")
    return findings


def _role_and_path(finding: str) -> tuple[str, str]:
    m = re.match(r"role (\S+): can .*?'(secret/[^']*)'", finding)
    assert m, finding
    return m.group(1), m.group(2)


NAMES = ["a", "ab", "web", "webapp", "x+y"]
OWNERS = [*NAMES, "shared", "infrastructure", "nobody"]
SEGMENTS = [
    "secret",
    "data",
    "metadata",
    "destroy",
    "+",
    "",
    "a",
    "ab",
    "w",
    "web",
    "webapp",
    "shared",
    "sh",
    "config",
    "c",
    PROBE,
    "x+y",
    "sys",
]
patterns = st.builds(
    lambda segs, glob: "/".join(segs) + ("*" if glob else ""),
    st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=5),
    st.booleans(),
)
rule = st.builds(
    Rule,
    patterns,
    st.frozensets(st.sampled_from(["read", "list", "update", "deny"]), max_size=3),
)
synced_paths = st.sets(
    st.builds(
        lambda o, n: f"{o}/{n}",
        st.sampled_from(OWNERS),
        st.sampled_from(["config", "c", "cred", "ab/x"]),
    ),
    max_size=8,
)


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[dict[str, list[Rule]], list[str], set[str], dict[str, set[str]]]:
    services = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    synced = draw(synced_paths)
    rules = {s: draw(st.lists(rule, max_size=5)) for s in services}
    declared = {
        s: draw(st.sets(st.sampled_from(sorted(synced)))) if synced else set() for s in services
    }
    return rules, sorted(services), synced, declared


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_indexed_proof_equals_pairwise_reference(
    world: tuple[dict[str, list[Rule]], list[str], set[str], dict[str, set[str]]],
) -> None:
    rules, services, synced, declared = world
    assert isolation(rules, services, synced, declared) == reference(
        rules, services, synced, declared
    )


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_every_finding_of_mains_proof_is_still_found(
    world: tuple[dict[str, list[Rule]], list[str], set[str], dict[str, set[str]]],
) -> None:
    rules, services, synced, declared = world
    new = {_role_and_path(f) for f in isolation(rules, services, synced, declared)}
    assert {_role_and_path(f) for f in main_reference(rules, declared)} <= new


def _example() -> tuple[dict[str, list[Rule]], list[str], set[str], dict[str, set[str]]]:
    r = rendered_from_catalog(load_catalog(EXAMPLE))
    rules = {name: parse_policy(r.policies[name], name) for name in r.roles}
    declared: dict[str, set[str]] = defaultdict(set)
    for d in r.manifests:
        if d["kind"] == "VaultStaticSecret":
            declared[d["spec"]["vaultAuthRef"]].add(d["spec"]["path"])
    synced = {p for paths in declared.values() for p in paths}
    return rules, sorted(r.roles), synced, dict(declared)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(_example()[0])), rule), max_size=4))
def test_example_with_random_extra_rules(edits: list[tuple[str, Rule]]) -> None:
    rules, services, synced, declared = _example()
    for role, extra in edits:
        rules[role] = [*rules[role], extra]
    assert isolation(rules, services, synced, declared) == reference(
        rules, services, synced, declared
    )


@pytest.mark.parametrize(
    ("extra", "found"),
    [
        ("secret/data/*", 16),
        ("secret/data/+/config", 3),
        ("secret/+/webapp/*", 25),
        ("secret/data/web*", 6),
        ("secret/metadata/+/", 7),
        ("*", 108),
        ("secret/data/webapp/config", 1),
        ("secret/data/backup/nothing", 0),
    ],
)
def test_table_of_broad_rules(extra: str, found: int) -> None:
    rules, services, synced, declared = _example()
    rules["cert-manager"] = [*rules["cert-manager"], Rule(extra, frozenset({"read"}))]
    fast = isolation(rules, services, synced, declared)
    assert fast == reference(rules, services, synced, declared)
    assert len(fast) == found


def test_the_example_is_isolated() -> None:
    assert isolation(*_example()) == []
    assert run_check(rendered_from_catalog(load_catalog(EXAMPLE))).findings == []
