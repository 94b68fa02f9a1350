"""Settings from configuration: every value coerced to its field's type, whether it comes
from invoke.yaml (YAML types) or from INVOKE_BOOTSTRAP_* (always strings)."""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path

import pytest

from bootstrap.core.errors import UsageError
from bootstrap.model.settings import Settings, coerce


@pytest.fixture(autouse=True)
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("True", True),
        ("YES", True),
        (True, True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("", False),
        ("on", True),
        ("OFF", False),
        (False, False),
    ],
)
def test_booleans(raw: object, expected: bool) -> None:
    assert Settings.from_config({"prune": raw}).prune is expected
    assert Settings.from_config({"verify_nudge": raw}).verify_nudge is expected


def test_numbers_take_their_fields_type() -> None:
    s = Settings.from_config({"wait_timeout": "300", "vault_shares": "7", "vault_threshold": 4})
    assert s.wait_timeout == 300.0 and type(s.wait_timeout) is float
    assert s.vault_shares == 7 and type(s.vault_shares) is int
    assert s.vault_threshold == 4
    assert Settings.from_config({"wait_timeout": 2.5}).wait_timeout == 2.5
    with pytest.raises(UsageError, match=r"setting vault_shares in .*'five' is not an integer"):
        Settings.from_config({"vault_shares": "five"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://a:8200,http://b:8200", ("http://a:8200", "http://b:8200")),
        ("http://a:8200", ("http://a:8200",)),
        ("a,,b,", ("a", "b")),
        ("", ()),
        (["a", "b"], ("a", "b")),
        (("a",), ("a",)),
    ],
)
def test_tuples_from_comma_strings_or_lists(raw: object, expected: tuple[str, ...]) -> None:
    assert Settings.from_config({"vault_addrs": raw}).vault_addrs == expected
    assert Settings.from_config({"source_file_roots": raw}).source_file_roots == expected


def test_paths_expand_the_home_directory(home: Path) -> None:
    s = Settings.from_config(
        {
            "catalog": "~/catalogs/prod.yaml",
            "kubeconfig": "~/.kube/config",
            "tools_dir": "/opt/tools",
            "state_dir": "relative/state",
            "vso_source": Path("~/vendor/vso.tar.gz"),
        }
    )
    assert s.catalog == home / "catalogs" / "prod.yaml"
    assert s.kubeconfig == home / ".kube" / "config"
    assert s.tools_dir == Path("/opt/tools")
    assert s.state_dir == Path("relative/state")
    assert s.vso_source == home / "vendor" / "vso.tar.gz"


def test_every_path_field_is_expanded(home: Path) -> None:
    """The path fields are the ones typed Path (or Path | None): each one expands ``~``."""
    hints = typing.get_type_hints(Settings)
    paths = [
        f.name for f in fields(Settings) if Path in (hints[f.name], *typing.get_args(hints[f.name]))
    ]
    assert set(paths) == {
        "catalog",
        "state_dir",
        "tools_dir",
        "sandbox_dir",
        "kubeconfig",
        "custody_file",
        "unseal_keys_file",
        "vso_source",
        "vso_v0_source",
        "eso_source",
        "kubernetes_provider_source",
    }
    s = Settings.from_config({name: f"~/{name}" for name in paths})
    assert all(getattr(s, name) == home / name for name in paths)


def test_strings_stay_as_given() -> None:
    """A string field is not a local path: the audit file lives on the Vault server."""
    s = Settings.from_config(
        {"audit_file": "~/audit.log", "kube_context": "prod", "custody": "file"}
    )
    assert s.audit_file == "~/audit.log"
    assert s.kube_context == "prod"


def test_overrides_win_and_none_means_unset() -> None:
    config = {"prune": "true", "wait_timeout": "30", "catalog": "from-config.yaml"}
    s = Settings.from_config(config, prune=False, wait_timeout=None, catalog="flag.yaml")
    assert s.prune is False  # an explicit False flag wins over the configuration
    assert s.wait_timeout == 30.0  # None: the configuration's value
    assert s.catalog == Path("flag.yaml")
    assert Settings.from_config({"kube_context": None}).kube_context is None
    assert Settings.from_config({}, rotate=None) == Settings()


def test_keys_read_elsewhere_are_let_through() -> None:
    assert Settings.from_config({"debug": True}, known=frozenset({"debug"})) == Settings()


# Issue 26, item 5: a bad boolean, an unknown key and a bad choice are refused (exit 2), each
# naming the key and where it came from.
def test_a_bad_boolean_names_the_key_and_its_source() -> None:
    env = {"verify_nudge": "environment variable INVOKE_BOOTSTRAP_VERIFY_NUDGE"}
    with pytest.raises(UsageError) as err:
        Settings.from_config({"verify_nudge": "ture"}, sources=env)
    assert err.value.exit_code == 2
    assert str(err.value).startswith(
        "setting verify_nudge in environment variable INVOKE_BOOTSTRAP_VERIFY_NUDGE: "
        "'ture' is not a boolean"
    )


def test_an_unknown_key_names_its_file_and_the_nearest_setting() -> None:
    with pytest.raises(UsageError) as err:
        Settings.from_config(
            {"verfy_nudge": True}, sources={"verfy_nudge": "file /etc/invoke.yaml"}
        )
    assert err.value.exit_code == 2
    assert "unknown setting 'verfy_nudge' in file /etc/invoke.yaml" in str(err.value)
    assert "did you mean verify_nudge?" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("custody", "s3", "file or kubernetes"),
        ("handover", "adopt", "inplace or owner"),
        ("terraform_backend", "s3", "local or kubernetes"),
    ],
)
def test_a_choice_outside_its_values_names_the_key_source_and_values(
    key: str, value: str, expected: str
) -> None:
    with pytest.raises(UsageError) as err:
        Settings.from_config({key: value}, sources={key: "file ./invoke.yaml"})
    assert err.value.exit_code == 2
    assert f"setting {key} in file ./invoke.yaml is {value!r}; expected {expected}" == str(
        err.value
    )


def test_a_flag_is_named_as_a_flag() -> None:
    with pytest.raises(UsageError, match="setting wait_timeout in flag --wait-timeout"):
        Settings.from_config({}, wait_timeout="soon")


def test_config_defaults_read_back_as_the_defaults() -> None:
    defaults = Settings.config_defaults()
    assert set(defaults) == {f.name for f in fields(Settings)}
    assert defaults["catalog"] == "catalog.yaml"
    assert defaults["vault_addrs"] == ""
    assert Settings.from_config(defaults) == Settings()


def test_coerce_reads_optional_types_as_their_type(home: Path) -> None:
    assert coerce(Path | None, "~/x") == home / "x"
    assert coerce(tuple[str, ...], "a,b") == ("a", "b")
    assert coerce(str | None, 5) == 5  # no type to coerce to: as given


def test_issue_26_bao_unseal_keys_file_is_read_with_the_settings_and_the_setting_wins() -> None:
    env = {"BAO_UNSEAL_KEYS_FILE": "/keys/from-env"}
    assert Settings.from_config({}, environ=env).unseal_keys_file == Path("/keys/from-env")
    chosen = Settings.from_config({"unseal_keys_file": "/keys/set"}, environ=env)
    assert chosen.unseal_keys_file == Path("/keys/set")
    assert Settings.from_config({}, environ={}).unseal_keys_file is None


def test_issue_26_forgetting_the_environments_token_leaves_the_environment_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from bootstrap.runtime import credentials

    monkeypatch.setattr(credentials, "_FORGOTTEN", set())
    monkeypatch.setenv("VAULT_TOKEN", "replaced-vaults-token")
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    assert credentials.env_token() == "replaced-vaults-token"
    credentials.forget_env_token()
    assert credentials.env_token() is None
    assert os.environ["VAULT_TOKEN"] == "replaced-vaults-token"
