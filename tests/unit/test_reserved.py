"""Issue 10, item 1 (settings-dependent half): a catalog may not claim the product's own
objects (custody Secret, Terraform state Secret, token reviewer, operator namespace) nor
point a file source outside its folder; every task that loads a catalog refuses it, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

import tasks
from bootstrap.core.errors import CatalogError
from bootstrap.model.catalog import parse_catalog
from bootstrap.model.reserved import check_reserved, reserved_problems
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext
from bootstrap.phases.preflight import Preflight, PreflightFacts


def catalog(namespace: str = "apps", secret: str = "config", name: str = "app") -> str:  # noqa: S107
    return (
        f"services:\n  - name: {name}\n    namespace: {namespace}\n    secrets:\n"
        f"      {secret}:\n        keys:\n          a: null\n"
    )


def found(text: str, settings: Settings | None = None) -> str:
    cat = parse_catalog(text, "cat.yaml")
    return "\n".join(reserved_problems(cat, settings or Settings()))


def test_a_plain_catalog_claims_nothing() -> None:
    assert found(catalog()) == ""


def test_the_custody_secret_is_refused_as_a_destination() -> None:
    problems = found(catalog(namespace="vault-bootstrap", secret="vault-init"))
    assert "cat.yaml:5: services[0] (app) field secrets.vault-init" in problems
    assert "is the custody Secret" in problems
    # It follows the settings.
    s = Settings(custody_namespace="vault", custody_secret="keys")
    assert found(catalog(namespace="vault-bootstrap", secret="vault-init"), s) == ""
    assert "custody Secret" in found(catalog(namespace="vault", secret="keys"), s)


def test_a_read_destination_is_checked_too() -> None:
    text = (
        "shared:\n  x:\n    keys: {a: null}\nservices:\n  - name: app\n"
        "    namespace: vault-bootstrap\n    reads:\n"
        "      - {path: shared/x, destination: vault-init}\n"
    )
    assert "cat.yaml:8: services[0] (app) field reads.0" in found(text)


def test_the_terraform_state_secret_is_refused() -> None:
    text = catalog(namespace="locks", secret="tfstate-default-placeholders")
    assert "Terraform state Secret" in found(text, Settings(lock_namespace="locks"))
    assert found(text) == ""


def test_the_operator_namespace_is_refused() -> None:
    problems = found(catalog(namespace="vault-secrets-operator-system"))
    assert "cat.yaml:3: services[0] (app) field namespace" in problems
    assert "Vault Secrets Operator's own (setting operator_namespace)" in problems
    assert found(catalog(namespace="vso"), Settings(operator_namespace="vso"))


def test_the_reviewer_service_account_is_refused() -> None:
    text = catalog(namespace="vault-bootstrap", name="vault-token-reviewer")
    problems = found(text)
    assert "cat.yaml:2: services[0] (vault-token-reviewer) field name" in problems
    assert "token reviewer's ServiceAccount" in problems
    assert found(catalog(namespace="elsewhere", name="vault-token-reviewer")) == ""


def file_catalog(path: str) -> str:
    return catalog().replace("a: null", f"a: {{file: '{path}'}}")


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "values/../../x", ".."])
def test_file_sources_stay_inside_the_catalog_folder(tmp_path: Path, path: str) -> None:
    s = Settings(catalog=tmp_path / "catalog.yaml")
    problems = found(file_catalog(path), s)
    assert "cat.yaml:7: services[0] (app) field secrets.config.keys.a.file" in problems
    assert f"outside the catalog's folder {tmp_path}" in problems
    assert "source_file_roots" in problems


def test_file_sources_inside_the_folder_or_an_allowed_root_pass(tmp_path: Path) -> None:
    s = Settings(catalog=tmp_path / "cat" / "catalog.yaml")
    assert found(file_catalog("values/flags.json"), s) == ""
    assert found(file_catalog(str(tmp_path / "cat" / "x")), s) == ""
    allowed = Settings(catalog=s.catalog, source_file_roots=(str(tmp_path / "shared"),))
    assert found(file_catalog("../shared/token"), allowed) == ""
    assert found(file_catalog(str(tmp_path / "shared" / "a" / "b")), allowed) == ""
    assert "outside" in found(file_catalog("../sharedx/token"), allowed)


def test_check_reserved_raises_a_catalog_error(tmp_path: Path) -> None:
    cat = parse_catalog(catalog(namespace="vault-secrets-operator-system"), "cat.yaml")
    with pytest.raises(CatalogError) as info:
        check_reserved(cat, Settings(catalog=tmp_path / "cat.yaml"))
    assert info.value.exit_code == 2 and len(info.value.problems) == 1


def test_preflight_lists_reserved_problems() -> None:
    cat = parse_catalog(catalog(namespace="vault-secrets-operator-system"), "cat.yaml")
    ctx = RunContext(Settings(), cat)
    facts = PreflightFacts({}, [], reserved_problems(cat, ctx.settings))
    problems = [a for a in Preflight().plan(ctx, facts) if a.verb == "problem"]
    assert [a.target for a in problems] == ["catalog"]
    assert "operator_namespace" in problems[0].reason


def _context() -> Context:
    return Context(Config(overrides={"bootstrap": dict(tasks.DEFAULTS["bootstrap"])}))


@pytest.mark.parametrize(
    "task", ["validate", "check", "render", "plan", "bootstrap", "status_", "rotation"]
)
def test_tasks_refuse_a_reserved_catalog_with_exit_2(tmp_path: Path, task: str) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(catalog(namespace="vault-bootstrap", secret="vault-init"), encoding="utf-8")
    out = tmp_path / "out"
    kwargs = {"catalog": str(path)}
    if task == "render":
        kwargs["out"] = str(out)
    if task == "rotation":
        kwargs["secret"] = "app/vault-init"
    with pytest.raises(Exit) as info:
        getattr(tasks, task)(_context(), **kwargs)
    assert info.value.code == 2
    assert f"{path}:5: services[0] (app) field secrets.vault-init" in str(info.value.message)
    assert "custody Secret" in str(info.value.message)
    assert not out.exists()
