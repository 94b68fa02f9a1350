"""Policy evaluation tables: Vault's path matching and priority rules."""

from __future__ import annotations

import pytest

from bootstrap.policy import PolicyParseError, Rule, allowed, parse_policy


def rules(*specs: tuple[str, str]) -> list[Rule]:
    return [Rule(p, frozenset(c.split(","))) for p, c in specs]


@pytest.mark.parametrize(
    ("pattern", "request_path", "match"),
    [
        ("secret/data/app/*", "secret/data/app/config", True),
        ("secret/data/app/*", "secret/data/app/a/b", True),
        ("secret/data/app/*", "secret/data/app", False),
        ("secret/data/app/*", "secret/data/application/x", False),
        ("secret/data/app*", "secret/data/application/x", True),
        ("secret/data/shared/ovh-dns", "secret/data/shared/ovh-dns", True),
        ("secret/data/shared/ovh-dns", "secret/data/shared/ovh-dns2", False),
        ("secret/data/+/config", "secret/data/app/config", True),
        ("secret/data/+/config", "secret/data/app/x/config", False),
        ("secret/data/+/config", "secret/data/app/credentials", False),
        ("secret/+/+/config", "secret/data/app/config", True),
        ("secret/data/+/c*", "secret/data/app/credentials", True),
        ("secret/data/+/c*", "secret/data/app/x/credentials", False),
        ("secret/data/+/*", "secret/data/app/x/y", True),
        ("secret/+/app/*", "secret/data/app/config", True),
        ("secret/+/app/*", "secret/data/other/config", False),
    ],
)
def test_matching(pattern: str, request_path: str, match: bool) -> None:
    assert Rule(pattern, frozenset({"read"})).matches(request_path) is match


@pytest.mark.parametrize(
    ("specs", "request_path", "expected"),
    [
        # exact path beats a glob
        (
            (("secret/data/app/*", "read"), ("secret/data/app/admin", "deny")),
            "secret/data/app/admin",
            False,
        ),
        # a later first wildcard wins
        ((("secret/data/*", "deny"), ("secret/data/app/*", "read")), "secret/data/app/x", True),
        ((("secret/*", "read"), ("secret/data/+/x", "deny")), "secret/data/app/x", False),
        # fewer + segments win
        (
            (("secret/data/+/+", "deny"), ("secret/data/+/config", "read")),
            "secret/data/app/config",
            True,
        ),
        # same path in two policies: capabilities merge, deny wins
        (
            (("secret/data/app/*", "read"), ("secret/data/app/*", "deny")),
            "secret/data/app/x",
            False,
        ),
        ((("secret/data/app/*", "list"), ("secret/data/app/*", "read")), "secret/data/app/x", True),
        # nothing matches: denied
        ((("secret/data/app/*", "read"),), "secret/data/other/x", False),
        # the glob whose wildcard comes later is the more specific one and wins
        (
            (("secret/data/app/c*", "read"), ("secret/data/app/*", "deny")),
            "secret/data/app/config",
            True,
        ),
        # same first-wildcard position, both globs: the longer pattern wins
        (
            (("secret/data/+/config*", "read"), ("secret/data/+/*", "deny")),
            "secret/data/app/config",
            True,
        ),
    ],
)
def test_priority(specs: tuple[tuple[str, str], ...], request_path: str, expected: bool) -> None:
    assert allowed(rules(*specs), request_path) is expected


def test_parse_round_trip() -> None:
    text = """# comment
path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
path "secret/data/shared/x" { capabilities = ["read"] }
"""
    parsed = parse_policy(text)
    assert parsed == [
        Rule("secret/data/app/*", frozenset({"read", "list"})),
        Rule("secret/data/shared/x", frozenset({"read"})),
    ]


def test_parse_rejects_what_it_cannot_read() -> None:
    with pytest.raises(PolicyParseError, match="cannot parse"):
        parse_policy('path "a" { capabilities = ["read"] }\nbogus = 1\n', "p")
    with pytest.raises(PolicyParseError, match="no capabilities"):
        parse_policy('path "a" { policy = "read" }\n', "p")
