"""Policy evaluation tables: Vault's path matching and priority rules."""

from __future__ import annotations

import pytest

from bootstrap.model.policy import (
    PathIndex,
    PolicyParseError,
    Rule,
    allowed,
    capabilities,
    evaluate,
    parse_policy,
)


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
    with pytest.raises(PolicyParseError, match="unknown top-level key: 'bogus'"):
        parse_policy('path "a" { capabilities = ["read"] }\nbogus = 1\n', "p")
    with pytest.raises(PolicyParseError, match="invalid policy"):
        parse_policy('path "a" { policy = "list" }\n', "p")  # the servers refuse it too


# -- reading policies the way Vault and OpenBao do (issue 10, item 6) --------------------

READ = frozenset({"read"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Vault strips one leading '/'
        ('path "/secret/data/x/*" { capabilities = ["read"] }', [("secret/data/x/*", READ)]),
        # HCL string escapes
        ('path "secret/data/\\u002a" { capabilities = ["read"] }', [("secret/data/*", READ)]),
        ('path "secret/data/\\x2a" { capabilities = ["read"] }', [("secret/data/*", READ)]),
        ('path "a\\"b" { capabilities = ["read"] }', [('a"b', READ)]),
        ('path "a" { capabilities = ["\\u0072ead"] }', [("a", READ)]),
        # the old policy field, translated as the servers do
        ('path "a" { policy = "read" }', [("a", frozenset({"read", "list"}))]),
        (
            'path "a" { policy = "write" }',
            [("a", frozenset({"create", "read", "update", "delete", "list"}))],
        ),
        (
            'path "a" { policy = "sudo" }',
            [("a", frozenset({"create", "read", "update", "delete", "list", "sudo"}))],
        ),
        ('path "a" { policy = "deny" }', [("a", frozenset({"deny"}))]),
        ('path "a" { capabilities = ["read", "deny"] }', [("a", frozenset({"deny"}))]),
        # every capability
        (
            'path "a" { capabilities = ["create", "update", "patch", "delete", "list", "sudo",'
            ' "subscribe", "scan", "read"] }',
            [
                (
                    "a",
                    frozenset(
                        {"create", "update", "patch", "delete", "list", "sudo", "subscribe"}
                        | {"scan", "read"}
                    ),
                )
            ],
        ),
        # comments of every kind, including inside a list
        (
            '/* a block\n comment */ path "a" {\n  # one\n  // two\n'
            '  capabilities = [/* x */ "read",]  # three\n}',
            [("a", READ)],
        ),
        # spacing and quoting of the path key
        ('path"a"{capabilities=["read"]}', [("a", READ)]),
        ('"path" "a" {\n"capabilities" = ["read"]\n}', [("a", READ)]),
        (
            'path "a" { capabilities = ["read"] }, path "b" { capabilities = ["read"] }',
            [("a", READ), ("b", READ)],
        ),
        # a block with no capabilities grants nothing (but still takes part in priority)
        ('path "a" {}', [("a", frozenset())]),
        # JSON, which the servers accept too
        ('{"path": {"a/*": {"capabilities": ["read"]}}}', [("a/*", READ)]),
        # a top-level name is allowed and means nothing
        ('name = "x"\npath "a" { capabilities = ["read"] }', [("a", READ)]),
    ],
)
def test_parse_like_vault(text: str, expected: list[tuple[str, frozenset[str]]]) -> None:
    assert [(r.path, r.capabilities) for r in parse_policy(text, "p")] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "a" { capabilities = ["READ"] }', "unknown capability: 'READ'"),
        ('path "a" { capabilities = ["read"] capabilities = ["update"] }', "set twice"),
        ('path "a" { capabilities = ["read"] bogus = 1 }', "unknown key: 'bogus'"),
        ('path "a" { capabilities = "read" }', "must be a list of strings"),
        ('path "a/+*" { capabilities = ["read"] }', "'+*'"),
        ('path "secret/data/{{identity.entity.id}}/*" { capabilities = ["read"] }', "templated"),
        ('path "a" { capabilities = ["read"] } /* open', "unterminated comment"),
        ('path "a" { capabilities = ["read"]', "missing '}'"),
        ('path "a" <<EOF\nx\nEOF', "heredoc"),
        ('path "${var.x}" { capabilities = ["read"] }', "interpolation"),
        ('path "\\q" { capabilities = ["read"] }', "invalid escape"),
        ('path "\\xff" { capabilities = ["read"] }', "raw byte"),
        ('path = { "a" = { capabilities = ["read"] } }', "expected path"),
        ('path "a" "b" { capabilities = ["read"] }', "expected path"),
        ('{"path": [{"a": {"capabilities": ["read"]}}]}', "expected path"),
    ],
)
def test_parse_refuses_with_line_and_text(text: str, message: str) -> None:
    with pytest.raises(PolicyParseError, match=r"^vault/policies/p\.hcl:\d+: ") as exc:
        parse_policy(text, "p", where="vault/policies/p.hcl")
    assert message in str(exc.value)


def test_blocks_for_one_path_merge_as_in_vault() -> None:
    text = """
path "secret/data/x/*" { capabilities = ["read"] }
path "/secret/data/x/*" { capabilities = ["update"] }
path "secret/data/y/*" { capabilities = ["read"] }
path "secret/data/y/*" { policy = "deny" }
"""
    rules_ = parse_policy(text, "p")
    assert capabilities(rules_, "secret/data/x/a") == {"read", "update"}
    assert capabilities(rules_, "secret/data/y/a") == frozenset()


def test_a_plus_inside_a_segment_is_literal_and_ranks_as_vault_ranks_it() -> None:
    # 'a/b+c/*' is a prefix rule for Vault (its first wildcard is the '*'), so it outranks
    # 'a/b+c/+', whose first wildcard comes earlier.
    r = rules(("a/b+c/*", "read"), ("a/b+c/+", "deny"))
    assert allowed(r, "a/b+c/d") is True
    assert Rule("a/b+c", frozenset({"read"})).matches("a/b+c") is True
    assert Rule("a/b+c", frozenset({"read"})).matches("a/bxc") is False


def test_conditions_are_kept() -> None:
    (rule,) = parse_policy('path "a" { capabilities = ["read"] mfa_methods = ["m"] }', "p")
    assert rule.conditions == {"mfa_methods"}
    assert evaluate([rule], "a").conditions == {"mfa_methods"}


# -- the path index --------------------------------------------------------------------

INDEXED = [
    "secret/data/webapp/config",
    "secret/data/webapp/credentials",
    "secret/data/web/x",
    "secret/data/shared/ovh-dns",
    "secret/metadata/webapp/",
    "secret/data/a+b/c",
    "sys/policies/acl/x",
]


@pytest.mark.parametrize(
    "pattern",
    [
        "secret/data/webapp/*",
        "secret/data/web*",
        "secret/data/+/config",
        "secret/data/+/c*",
        "secret/+/webapp/*",
        "secret/data/webapp/config",
        "secret/metadata/+/",
        "secret/metadata/webapp/*",
        "secret/*",
        "*",
        "+/+/+/+",
        "secret/data/a+b/c",
        "secret/data/a+b/*",
        "s*",
        "secret/data/",
        "nothing/*",
    ],
)
def test_index_finds_what_matches_finds(pattern: str) -> None:
    rule = Rule(pattern, frozenset({"read"}))
    index: PathIndex[int] = PathIndex()
    for i, p in enumerate(INDEXED):
        index.add(p, i)
    expected = sorted(p for p in INDEXED if rule.matches(p))
    assert sorted(p for p, _ in index.matching(rule)) == expected
    # the same index below a fixed prefix
    below: PathIndex[int] = PathIndex()
    for i, p in enumerate(INDEXED):
        if p.startswith("secret/data/"):
            below.add(p.removeprefix("secret/data/"), i)
    under = sorted("secret/data/" + p for p, _ in below.matching(rule, ("secret", "data")))
    assert under == [p for p in expected if p.startswith("secret/data/")]
