"""Issue 23 (security and robustness, round 3), the catalog's half: command sources off by
default and confined when allowed (finding 1), explicit YAML tags (finding 5), the product's
own names (finding 9), rendering that YAML 1.1 readers cannot misread and canonical
durations (finding 11), indexed policy evaluation (finding 12)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

import tasks
from bootstrap.core.errors import CatalogError
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.policy import Rule, Rules, evaluate
from bootstrap.model.render import dump_yaml_docs, render_tree
from bootstrap.model.reserved import command_sources, reserved_problems
from bootstrap.model.settings import Settings
from bootstrap.runtime.sources import SourceError, program_path, resolve


def commands_catalog(*argv: str) -> str:
    items = ", ".join(repr(a) for a in argv)
    return (
        "services:\n  - name: app\n    namespace: apps\n    secrets:\n      config:\n"
        f"        keys:\n          level: {{command: [{items}]}}\n"
    )


def problems(text: str, **settings: object) -> str:
    cat = parse_catalog(text, "cat.yaml")
    return "\n".join(reserved_problems(cat, Settings(**settings)))  # type: ignore[arg-type]


# -- finding 1: command sources ------------------------------------------------------------

#: The attacker catalogs of the finding: the custody file, and the run's environment.
ATTACKS = [
    ("cat", "/root/.sandbox/custody/vault-init.json"),
    ("sh", "-c", 'tr "\\0" "\\n" < /proc/$PPID/environ'),
    ("/bin/sh", "-c", "env"),
    ("./../../bin/sh", "-c", "env"),
]


@pytest.mark.parametrize("argv", ATTACKS, ids=lambda a: a[0])
@pytest.mark.parametrize("setting", ["off", "allow"])
def test_issue_23_finding_1_attacker_commands_are_refused_under_both_settings(
    argv: tuple[str, ...], setting: str
) -> None:
    found = problems(commands_catalog(*argv), catalog_commands=setting)
    assert "cat.yaml:7: services[0] (app) field secrets.config.keys.level.command" in found
    if setting == "off":
        assert "catalog commands are off" in found
        assert "catalog_commands: allow" in found and "INVOKE_BOOTSTRAP_CATALOG_COMMANDS" in found
    else:
        assert "a command source runs only a program inside the catalog's folder" in found


def test_issue_23_finding_1_commands_are_off_by_default_in_every_task(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(commands_catalog("./fetch"), encoding="utf-8")
    context = Context(Config(overrides={"bootstrap": dict(tasks.DEFAULTS["bootstrap"])}))
    for task, extra in (("validate", {}), ("check", {}), ("render", {"out": str(tmp_path / "o")})):
        with pytest.raises(Exit) as info:
            getattr(tasks, task)(context, catalog=str(path), **extra)
        assert info.value.code == 2
        assert f"{path}:7: services[0] (app)" in str(info.value.message)
        assert "catalog commands are off" in str(info.value.message)
    assert not (tmp_path / "o").exists()


def test_issue_23_finding_1_allowed_commands_are_programs_in_the_catalogs_folder() -> None:
    assert problems(commands_catalog("./fetch", "--name", "x"), catalog_commands="allow") == ""
    assert problems(commands_catalog("bin/fetch"), catalog_commands="allow") == ""
    assert "bare name" in problems(commands_catalog("fetch"), catalog_commands="allow")
    assert "absolute path" in problems(commands_catalog("/usr/bin/env"), catalog_commands="allow")
    assert "outside the catalog's folder" in problems(
        commands_catalog("bin/../../x"), catalog_commands="allow"
    )


def test_issue_23_finding_1_arguments_naming_custody_or_state_are_refused(tmp_path: Path) -> None:
    custody = tmp_path / "keys" / "vault-init.json"
    state = tmp_path / "state"
    s = {
        "catalog_commands": "allow",
        "catalog": tmp_path / "catalog.yaml",
        "custody_file": custody,
        "state_dir": state,
    }
    for arg in (str(custody), f"--in={state}/reports", "state/custody/x.json", "keys"):
        found = problems(commands_catalog("./fetch", arg), **s)
        assert "names" in found and "state, sandbox or custody" in found, arg
    assert problems(commands_catalog("./fetch", "values/x"), **s) == ""


def test_issue_23_finding_1_the_setting_is_validated() -> None:
    assert Settings.from_config({"catalog_commands": "Allow"}).catalog_commands == "allow"
    assert Settings.from_config({"catalog_commands": False}).catalog_commands == "off"
    with pytest.raises(Exception, match=r"catalog_commands.*INVOKE_BOOTSTRAP_CATALOG_COMMANDS"):
        Settings.from_config({"catalog_commands": "yes"})


def test_issue_23_finding_1_a_command_never_runs_while_commands_are_off(tmp_path: Path) -> None:
    cat = parse_catalog(commands_catalog("./fetch"), "cat.yaml")
    src = cat.services[0].secrets["config"].keys["level"]
    assert src is not None
    with pytest.raises(SourceError, match="catalog commands are off"):
        resolve(src, tmp_path, lambda p, k: None)


def _program(folder: Path, name: str = "fetch", mode: int = 0o755) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho value\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_issue_23_finding_1_the_program_file_is_checked_where_it_runs(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    real = _program(folder)
    assert program_path("./fetch", folder, as_root=False) == real
    (folder / "link").symlink_to("/bin/sh")
    with pytest.raises(SourceError, match="outside the catalog's folder"):
        program_path("./link", folder, as_root=False)
    (folder / "dir").mkdir()
    with pytest.raises(SourceError, match="not a regular file"):
        program_path("./dir", folder, as_root=False)
    with pytest.raises(SourceError, match="No such file"):
        program_path("./missing", folder, as_root=False)
    _program(folder, "plain", 0o644)
    if os.geteuid() != 0:  # root may execute any file with an x bit; 0644 has none
        with pytest.raises(SourceError, match="not executable"):
            program_path("./plain", folder, as_root=False)
    with pytest.raises(SourceError, match="bare name"):
        program_path("sh", folder, as_root=False)


def test_issue_23_finding_1_as_root_the_program_must_be_reachable_by_nobody(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "catalog"
    _program(folder, "private", 0o700)
    tmp_path.chmod(0o755)
    # pytest's own folder above tmp_path is 0700: nobody cannot reach anything in it
    with pytest.raises(SourceError, match=r"user nobody .* not searchable by others"):
        program_path("./private", folder, as_root=True)


def test_issue_23_finding_1_check_lists_every_command() -> None:
    text = (
        "shared:\n  dns:\n    keys:\n      token: {command: [./dns-token, --zone, 'a b']}\n"
        + commands_catalog("./fetch", "--key", "level").replace("services:\n", "services:\n", 1)
    )
    cat = parse_catalog(text, "cat.yaml")
    assert command_sources(cat) == [
        ("app/config", "level", ["./fetch", "--key", "level"]),
        ("shared/dns", "token", ["./dns-token", "--zone", "a b"]),
    ]


# -- finding 5: explicit YAML tags -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "tag"),
    [
        (
            "services:\n  - name: app\n    namespace: apps\n    secrets:\n"
            "      ? !!binary Y29uZmln\n      : {keys: {a: null}}\n",
            5,
            "!!binary",
        ),
        ("version: !!int '1'\nservices: []\n", 1, "!!int"),
        ("name: !!str default\nservices: []\n", 1, "!!str"),
        ("services: !custom []\n", 1, "!custom"),
        ("services:\n  - !!map {name: app}\n", 2, "!!map"),
        ("name: ! x\nservices: []\n", 1, "'!'"),
    ],
)
def test_issue_23_finding_5_explicit_tags_are_refused(text: str, line: int, tag: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "cat.yaml")
    message = str(info.value)
    assert f"cat.yaml:{line}: explicit YAML tag" in message
    assert tag.strip("'") in message


# -- finding 9: the product's own names ------------------------------------------------------


@pytest.mark.parametrize("name", ["response-wrapping", "control-group"])
def test_issue_23_finding_9_vault_builtin_policies_are_reserved(name: str) -> None:
    text = commands_catalog("./x").replace("name: app", f"name: {name}")
    with pytest.raises(CatalogError, match=f"service name '{name}' is reserved"):
        parse_catalog(text, "cat.yaml")


def _destination(namespace: str, secret: str) -> str:
    return (
        f"services:\n  - name: app\n    namespace: {namespace}\n    secrets:\n"
        f"      {secret}:\n        keys: {{a: null}}\n"
    )


@pytest.mark.parametrize(
    "secret", ["vault-init", "vault-init-admin", "vault-init-root-revoked", "vault-init-replaced-x"]
)
def test_issue_23_finding_9_custody_secrets_are_reserved(secret: str) -> None:
    found = problems(_destination("vault-bootstrap", secret))
    assert "cat.yaml:5: services[0] (app) field secrets." in found
    assert "custody" in found
    assert problems(_destination("apps", secret)) == ""


def test_issue_23_finding_9_the_populate_namespace_is_the_jobs_own() -> None:
    found = problems(_destination("bootstrap-populate", "bootstrap-populate-env"))
    assert "cat.yaml:3: services[0] (app) field namespace" in found
    assert "populate Job's own (setting populate_namespace)" in found
    assert "populate Job's environment Secret" in found
    assert problems(_destination("bootstrap-populate", "x"), populate_namespace="jobs") == ""


# -- finding 11: rendering and durations -------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "y",
        "n",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "true",
        "1e3",
        "1e-3",
        "0o17",
        "0x1f",
        "123",
        "1_000",
        "0b101",
        "12:30",
        "2001-12-14",
        "~",
        "=",
        "<<",
        "nan",
        ".inf",
    ],
)
def test_issue_23_finding_11_yaml_1_1_lookalikes_are_quoted(value: str) -> None:
    text = dump_yaml_docs([{"metadata": {"name": value, "namespace": value}}])
    assert f"name: '{value}'" in text or f'name: "{value}"' in text
    assert yaml.safe_load(text) == {"metadata": {"name": value, "namespace": value}}


def test_issue_23_finding_11_names_y_and_n_render_quoted() -> None:
    cat = parse_catalog(_destination("n", "y").replace("name: app", "name: y"), "cat.yaml")
    tree = render_tree(cat)
    manifest = tree["manifests/n/vaultstaticsecret-y.yaml"]
    assert "name: 'y'" in manifest and "namespace: 'n'" in manifest
    assert "vaultAuthRef: 'y'" in manifest


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("1h1h1h", "3h"), ("00000000000030s", "30s"), ("30m1h", "1h30m"), ("1h0m", "1h")],
)
def test_issue_23_finding_11_durations_are_canonical(value: str, canonical: str) -> None:
    text = f"defaults:\n  tokenTTL: {value}\n" + _destination("apps", "config")
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "cat.yaml")
    assert "cat.yaml:2: defaults field tokenTTL" in str(info.value)
    assert f"write {canonical!r}" in str(info.value)
    refresh = f"defaults:\n  refreshAfter: {value}\n" + _destination("apps", "config")
    with pytest.raises(CatalogError, match=r"cat\.yaml:2: defaults field refreshAfter"):
        parse_catalog(refresh, "cat.yaml")


# -- finding 12: a role of thousands of exact paths --------------------------------------


def test_issue_23_finding_12_indexed_rules_evaluate_as_the_plain_list() -> None:
    rules = [
        Rule("secret/data/app/*", frozenset({"read"})),
        Rule("secret/data/shared/a", frozenset({"read"})),
        Rule("secret/data/shared/a", frozenset({"list"})),
        Rule("secret/data/shared/+", frozenset({"deny"})),
        Rule("secret/data/shared/b", frozenset({"deny"})),
        Rule("secret/+/shared/c*", frozenset({"update"})),
    ]
    for request in (
        "secret/data/app/x",
        "secret/data/shared/a",
        "secret/data/shared/b",
        "secret/data/shared/c",
        "secret/metadata/shared/cc",
        "secret/data/other",
    ):
        assert evaluate(Rules(rules), request) == evaluate(rules, request), request


def test_issue_23_finding_1_check_and_plan_print_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``invoke check`` (and ``plan``, through the same printer) lists each command with the
    path and key it feeds, never a value."""
    import io

    out = io.StringIO()
    from bootstrap.cli import common

    monkeypatch.setattr(common.console, "file", out)
    path = tmp_path / "catalog.yaml"
    path.write_text(commands_catalog("./fetch", "--key", "a b"), encoding="utf-8")
    overrides = {**tasks.DEFAULTS["bootstrap"], "catalog_commands": "allow"}
    tasks.check(Context(Config(overrides={"bootstrap": overrides})), catalog=str(path))
    printed = out.getvalue()
    assert "commands the catalog runs (setting catalog_commands: allow" in printed
    assert "secret app/config key level: ./fetch --key 'a b'" in printed


def test_issue_23_finding_1_the_populate_plan_names_each_command() -> None:
    from bootstrap.phases.populate import KvState, plan_kv

    cat = parse_catalog(commands_catalog("./fetch", "--key", "level"), "cat.yaml")
    keys = cat.services[0].secrets["config"].keys
    (action,) = plan_kv(KvState("app/config", dict(keys), frozenset(), 0), rotate=False)
    assert action.reason == "written (keys level (command ./fetch --key level))"


PLAIN_VARIANTS = [
    'path "a/+/b" {\n  capabilities = ["read"]\n}\n',
    'path "/x" {\n  capabilities = ["deny", "read"]\n}',
    '# c\npath "x" {\n  capabilities = []\n}\n\npath "x" {\n  capabilities = ["list"]\n}\n',
]
NOT_PLAIN = [
    'path "a+*" {\n  capabilities = ["read"]\n}',
    'path "{{identity.entity.id}}" {\n  capabilities = ["read"]\n}',
    'path "x" {\n  capabilities = ["bogus"]\n}',
    'path "x\\u002a" {\n  capabilities = ["read"]\n}',
    'path "x" {\n  capabilities = ["read"]\n  required_parameters = ["a"]\n}',
    'path "x" { capabilities = ["read"] }',
]


def _general(text: str) -> list[Rule]:
    from bootstrap.model import policy

    items = policy._Parser(policy._tokens(text)).object_list(None)
    return [policy._rule(it.keys[1], it.value, it.line, "p") for it in items]


def test_issue_23_finding_12_rendered_policies_read_alike_by_both_readers() -> None:
    from bootstrap.model import policy
    from bootstrap.model.catalog import load_catalog
    from bootstrap.model.render import render_populate_policy, vault_acl
    from tests.conftest import EXAMPLE

    cat = load_catalog(EXAMPLE)
    texts = [*vault_acl(cat).policies.values(), render_populate_policy(cat), *PLAIN_VARIANTS]
    for text in texts:
        fast = policy._plain_rules(text, "p")
        assert fast is not None, text
        assert fast == _general(text)
        assert [r.policy for r in fast] == ["p"] * len(fast)
    for text in NOT_PLAIN:
        assert policy._plain_rules(text, "p") is None, text
