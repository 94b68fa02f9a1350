"""Security review, catalog input (issue 10): reserved names, anchored ASCII patterns, length
limits, capped durations, YAML aliases and size, value-source rules, copy permissions. Every
refusal is a located CatalogError (exit 2); nothing else escapes the parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.core.errors import CatalogError
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import MAX_CATALOG_BYTES, load_catalog, parse_catalog
from bootstrap.model.vaultplan import ADMIN_POLICY


def catalog(
    name: str = "app",
    namespace: str = "apps",
    secret: str = "config",  # noqa: S107 - a secret's name
    key: str = "level",
    source: str = "{env: LEVEL}",
    extra: str = "",
    head: str = "",
) -> str:
    return (
        f"{head}services:\n  - name: {name}\n    namespace: {namespace}\n    secrets:\n"
        f"      {secret}:\n        keys:\n          {key}: {source}\n{extra}"
    )


def problems(text: str) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "cat.yaml")
    assert info.value.exit_code == 2
    assert all(p.startswith("cat.yaml") for p in info.value.problems)
    return "\n".join(info.value.problems)


def test_the_helper_builds_a_valid_catalog() -> None:
    cat = parse_catalog(catalog(), "cat.yaml")
    assert cat.service("app").secrets["config"].keys["level"] is not None


# -- item 1: reserved names -------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "root", ADMIN_POLICY, "shared", "infrastructure"])
def test_reserved_service_names_are_refused(name: str) -> None:
    found = problems(catalog(name=name))
    assert "cat.yaml:2: services[0]" in found and "field name" in found
    assert "reserved" in found


def test_the_admin_policy_name_is_the_one_vault_config_writes() -> None:
    assert conv.ADMIN_POLICY == ADMIN_POLICY == "bootstrap-admin"
    assert ADMIN_POLICY in conv.RESERVED_SERVICE_NAMES


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease"])
def test_system_namespaces_are_refused(namespace: str) -> None:
    found = problems(catalog(namespace=namespace))
    assert "cat.yaml:3: services[0] (app) field namespace" in found
    assert f"namespace {namespace!r} is reserved" in found


# -- item 2: parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "line"),
    [
        ("name", '"app\\n"', 2),
        ("namespace", '"apps\\n"', 3),
        ("secret", '"config\\n"', 5),
    ],
)
def test_a_trailing_newline_is_not_a_dns_label(field: str, value: str, line: int) -> None:
    found = problems(catalog(**{field: value}))
    assert f"cat.yaml:{line}:" in found and "is not a DNS-1123 label" in found


def test_non_ascii_digits_are_refused() -> None:
    assert "not a DNS-1123 label" in problems(catalog(name="app\u0663"))
    found = problems(catalog(head='defaults:\n  refreshAfter: "\u0663\u0660s"\n'))
    assert "cat.yaml:2: defaults field refreshAfter" in found
    assert "not a positive duration" in found


def test_durations_with_a_trailing_newline_are_refused() -> None:
    assert "not a positive duration" in problems(catalog(head='defaults:\n  tokenTTL: "1h\\n"\n'))


@pytest.mark.parametrize("field", ["name", "namespace", "secret"])
def test_labels_longer_than_63_characters_are_refused(field: str) -> None:
    assert parse_catalog(catalog(**{field: "a" * 63}), "cat.yaml")
    found = problems(catalog(**{field: "a" * 64}))
    assert "64 characters long; a DNS-1123 label has at most 63" in found


def test_destination_and_catalog_name_longer_than_63_are_refused() -> None:
    text = catalog().replace("config:\n", "config:\n        destination: " + "d" * 64 + "\n")
    assert "64 characters long" in problems(text)
    assert "64 characters long" in problems(catalog(head="name: " + "c" * 64 + "\n"))


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ('"."', "refused by Kubernetes"),
        ('".."', "refused by Kubernetes"),
        ("..data", "refused by Kubernetes"),
        ("..2024_01_01", "refused by Kubernetes"),
        ("_raw", "the key the Vault Secrets Operator writes itself"),
        ('"level\\n"', "not a valid Secret key"),
        ("k" * 254, "longer than 253 characters"),
    ],
)
def test_secret_keys_kubernetes_or_the_operator_refuse(key: str, says: str) -> None:
    found = problems(catalog(key=key))
    assert "cat.yaml:7: services[0] (app) field secrets.config.keys." in found
    assert says in found


def test_dotted_keys_that_kubernetes_accepts_still_pass() -> None:
    for key in (".env", "tls.crt", "a..b", "_raw2", "k" * 253):
        assert parse_catalog(catalog(key=key), "cat.yaml")


@pytest.mark.parametrize(
    ("head", "field"),
    [
        ("defaults:\n  refreshAfter: 99999999h\n", "refreshAfter"),
        ("defaults:\n  tokenTTL: 8761h\n", "tokenTTL"),
        ("defaults:\n  refreshAfter: 525601m\n", "refreshAfter"),
        ("defaults:\n  refreshAfter: " + "9" * 5000 + "s\n", "refreshAfter"),
    ],
)
def test_durations_are_capped_at_a_year(head: str, field: str) -> None:
    found = problems(catalog(head=head))
    assert f"defaults field {field}" in found
    assert "longer than 8760h" in found and "Go's time.Duration" in found


@pytest.mark.parametrize(
    ("value", "suggested"),
    [("1h30m", "90m"), ("1m30s", "90s"), ("2h0m", "2h"), ("0h45s", "45s")],
)
@pytest.mark.parametrize(
    ("where", "line", "field"),
    [
        ("head", 2, "defaults field refreshAfter"),
        ("service", 4, "services[0] (app) field refreshAfter"),
        ("secret", 6, "services[0] (app) field secrets.config.refreshAfter"),
    ],
)
def test_refresh_after_is_one_number_and_one_unit(
    value: str, suggested: str, where: str, line: int, field: str
) -> None:
    """VSO 1.4.1's CRD refuses a compound refreshAfter; the catalog says so, and where."""
    text = {
        "head": catalog(head=f"defaults:\n  refreshAfter: {value}\n"),
        "service": catalog(namespace=f"apps\n    refreshAfter: {value}"),
        "secret": catalog().replace("keys:", f"refreshAfter: {value}\n        keys:"),
    }[where]
    found = problems(text)
    assert f"cat.yaml:{line}: {field}: {value!r} is not a duration VSO 1.4.1 accepts" in found
    assert conv.VSO_REFRESH_PATTERN in found
    assert f"one number and one unit, e.g. {suggested!r}" in found


def test_token_ttl_keeps_compound_durations() -> None:
    cat = parse_catalog(catalog(head="defaults:\n  tokenTTL: 1h30m\n"), "cat.yaml")
    assert cat.defaults.token_ttl == "1h30m"


def test_a_year_is_still_accepted() -> None:
    cat = parse_catalog(catalog(head="defaults:\n  refreshAfter: 8760h\n"), "cat.yaml")
    assert cat.defaults.refresh_after == "8760h"


def test_yaml_anchors_and_aliases_are_refused_with_their_line() -> None:
    found = problems("x: &a [1, 2]\ny: *a\n" + catalog())
    assert "cat.yaml:1: YAML anchor '&a' is not allowed" in found
    assert "cat.yaml:2: YAML alias '*a' is not allowed" in found


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    levels = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    found = problems("\n".join(levels) + "\n" + catalog())
    assert "YAML anchor '&a0' is not allowed" in found
    assert "further anchors or aliases not listed" in found


def test_a_recursive_alias_is_a_catalog_error_not_a_recursion_error() -> None:
    assert "YAML anchor '&loop'" in problems("x: &loop [*loop]\n" + catalog())
    assert "YAML anchor '&m'" in problems("x: &m {a: *m}\n" + catalog())


def test_deep_nesting_is_refused() -> None:
    found = problems("x: " + "[" * 100 + "]" * 100 + "\n" + catalog())
    assert "cat.yaml:1: nested deeper than 32 levels" in found
    assert "cat.yaml:1:" in problems("x: " + "[" * 50000 + "]" * 50000 + "\n" + catalog())


def test_a_catalog_over_one_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    # Would be an alias bomb and a malformed document if it were ever parsed.
    text = "x: &a [*a]\n" + "#" * MAX_CATALOG_BYTES + "\n["
    big.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(big)
    (problem,) = info.value.problems
    assert problem.startswith(f"{big}: ") and "at most 1048576 bytes (1 MiB)" in problem
    assert f"{len(text)} bytes;" in problem
    with pytest.raises(CatalogError, match="at most 1048576 bytes"):
        parse_catalog(big.read_text(encoding="utf-8"), "big.yaml")


def test_a_catalog_that_is_not_utf8_is_a_catalog_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(catalog().encode() + b"# \xff\xfe\n")
    with pytest.raises(CatalogError, match="not UTF-8 text"):
        load_catalog(bad)


@pytest.mark.parametrize(
    "text",
    [
        "when: !!timestamp 2020-13-45\n",
        "x: !!python/object:os.system {}\n",
        "a: 1\n---\nb: 2\n",
        "x: !!int 0x\n",
        "? [a, b]\n: c\n",
        "x: !!binary ===\n",
    ],
)
def test_every_parser_failure_is_a_catalog_error(text: str) -> None:
    assert problems(text + catalog())


# -- item 3: value sources, at validation ------------------------------------------------


@pytest.mark.parametrize(
    "name", ["VAULT_TOKEN", "VAULT_ADDR", "BAO_TOKEN", "KUBECONFIG", "vault_x"]
)
def test_env_sources_may_not_name_the_bootstraps_own_credentials(name: str) -> None:
    found = problems(catalog(source=f"{{env: {name}}}"))
    assert "cat.yaml:7: services[0] (app) field secrets.config.keys.level.env" in found
    assert f"environment variable {name} may not be a value source" in found


def test_env_names_must_be_names() -> None:
    assert "not an environment variable name" in problems(catalog(source="{env: 'A=B'}"))


def test_an_empty_command_is_refused_at_validation() -> None:
    found = problems(catalog(source="{command: []}"))
    assert "field secrets.config.keys.level.command" in found
    assert "command: [] names no program" in found
    assert "program name is empty" in problems(catalog(source="{command: ['']}"))
    assert "NUL character" in problems(catalog(source='{command: [echo, "a\\0"]}'))


@pytest.mark.parametrize(
    "path", ["/proc/self/environ", "//proc/1/environ", "/proc/../proc/self/mem", "/dev/zero"]
)
def test_kernel_files_are_refused_at_validation(path: str) -> None:
    found = problems(catalog(source=f"{{file: '{path}'}}"))
    assert "field secrets.config.keys.level.file" in found and "never read" in found


def test_encoding_base64_on_file_and_command_only() -> None:
    cat = parse_catalog(catalog(source="{file: v.bin, encoding: base64}"), "cat.yaml")
    src = cat.service("app").secrets["config"].keys["level"]
    assert src is not None and src.encoding == "base64" and src.kind == "file"
    assert parse_catalog(catalog(source="{command: [cat, v], encoding: base64}"), "cat.yaml")
    found = problems(catalog(source="{env: LEVEL, encoding: base64}"))
    assert "encoding applies to file and command sources only, not env" in found
    assert "'base64'" in problems(catalog(source="{file: v, encoding: hex}"))


SHARED = (
    "shared:\n  dns:\n    keys:\n      token: {env: DNS}\n"
    "  aws:\n    keys:\n      key: {env: AWS}\n"
)


def test_a_service_copies_its_own_paths_and_its_reads() -> None:
    text = SHARED + catalog(
        source="{copy: {path: shared/dns, key: token}}",
        extra=(
            "          mine: {copy: {path: app/other, key: x}}\n"
            "      other:\n        keys:\n          x: null\n"
            "    reads: [shared/dns]\n"
        ),
    )
    assert parse_catalog(text, "cat.yaml")


def test_copy_of_another_services_path_is_refused() -> None:
    text = catalog(
        source="{copy: {path: other/config, key: a}}",
        extra="  - name: other\n    namespace: other\n    secrets:\n"
        "      config:\n        keys: {a: null}\n",
    )
    found = problems(text)
    assert "cat.yaml:7: services[0] (app) field secrets.config.keys.level.copy" in found
    assert "copies other/config, another service's path" in found


def test_copy_of_a_shared_secret_the_service_does_not_read_is_refused() -> None:
    text = SHARED + catalog(
        source="{copy: {path: shared/aws, key: key}}", extra="    reads: [shared/dns]\n"
    )
    found = problems(text)
    assert "copies shared/aws, which service 'app' does not read" in found


def test_shared_copies_only_what_every_reader_reads() -> None:
    blind = SHARED.replace("token: {env: DNS}", "token: {copy: {path: shared/aws, key: key}}")
    found = problems(blind + catalog(extra="    reads: [shared/dns]\n"))
    assert "cat.yaml:4: shared/dns field keys.token.copy" in found
    assert "service(s) app read shared/dns and not shared/aws" in found
    assert parse_catalog(blind + catalog(extra="    reads: [shared/dns, shared/aws]\n"), "c")
    into = SHARED.replace("token: {env: DNS}", "token: {copy: {path: app/config, key: level}}")
    assert "may copy only another shared or infrastructure secret" in problems(into + catalog())


def test_copy_paths_and_keys_are_checked() -> None:
    assert "must be a KV path" in problems(catalog(source="{copy: {path: x, key: a}}"))
    assert "must be a KV path" in problems(catalog(source="{copy: {path: a/b/c, key: a}}"))
    assert "copies itself" in problems(catalog(source="{copy: {path: app/config, key: level}}"))
    text = SHARED + catalog(
        source="{copy: {path: shared/dns, key: nope}}", extra="    reads: [shared/dns]\n"
    )
    assert "copies key 'nope' of shared/dns, which declares no such key" in problems(text)


def test_prompts_are_printable_text() -> None:
    found = problems(catalog(source='{prompt: "Password\\e[2J\\e]0;owned\\a"}'))
    assert "field secrets.config.keys.level.prompt" in found
    assert "must be 1 to 200 printable characters" in found
    assert "must be 1 to 200" in problems(catalog(source='{prompt: ""}'))
    assert parse_catalog(catalog(source="{prompt: '[bold]Password[/] for app'}"), "cat.yaml")
