"""Issue 26: the documentation's reference pages are generated from the code and kept equal
to it; whatever a user can name without a description fails; the catalog's JSON Schema
accepts the example catalog and refuses bad ones; the README stays a short user's page."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml
from invoke.collection import Collection
from invoke.tasks import task
from pydantic import BaseModel, ConfigDict

import tasks
from bootstrap.model.catalog import Catalog
from bootstrap.tooling import docgen

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


@pytest.mark.parametrize("rel", sorted(docgen.pages(tasks.ns, tasks.CRASH_EXIT)))
def test_each_generated_page_in_the_repository_equals_the_code(rel: str) -> None:
    want = docgen.pages(tasks.ns, tasks.CRASH_EXIT)[rel]
    path = DOCS / rel
    assert path.exists(), f"docs/{rel} is missing; run 'invoke docs'"
    assert path.read_text(encoding="utf-8") == want, f"docs/{rel} is stale; run 'invoke docs'"


def test_every_task_and_flag_of_the_cli_has_a_reference_entry() -> None:
    page = docgen.tasks_page(tasks.ns)
    for name in tasks.ns.task_names:
        assert f"## `{name}`" in page
        for arg in docgen.arguments(tasks.ns[name]):
            assert f"`--{max(arg.names, key=len).replace('_', '-')}" in page, (name, arg.names)


def test_a_task_or_flag_without_a_description_fails_the_reference() -> None:
    @task(help={"documented": "has help"})
    def described(c, documented=False, bare=None):  # type: ignore[no-untyped-def]
        """Has a docstring."""

    @task
    def silent(c):  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(docgen.DocGap) as caught:
        docgen.tasks_page(Collection(described, silent))
    assert caught.value.gaps == [
        "task described: flag --bare has no help",
        "task silent: no docstring",
    ]


def test_every_setting_has_a_reference_entry_and_one_without_a_comment_fails() -> None:
    page = docgen.settings_page()
    from bootstrap.model.settings import Settings

    for name in Settings.__dataclass_fields__:
        assert f"| `{name}`<br>`INVOKE_BOOTSTRAP_{name.upper()}` |" in page

    @dataclass(frozen=True)
    class Sample:
        #: Documented.
        documented: int = 1
        undocumented: bool = False

    with pytest.raises(docgen.DocGap) as caught:
        docgen.settings_page(Sample)
    assert caught.value.gaps == ["setting undocumented: no '#:' comment above it"]


def test_every_catalog_field_has_a_reference_entry_and_one_without_a_docstring_fails() -> None:
    page = docgen.catalog_page()
    for model in docgen._models(Catalog):
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in page

    class Inner(BaseModel):
        """Described."""

        model_config = ConfigDict(use_attribute_docstrings=True)
        quiet: int = 0

    class Outer(BaseModel):
        """Described too."""

        model_config = ConfigDict(use_attribute_docstrings=True)

        inner: Inner
        """The inner one."""

    with pytest.raises(docgen.DocGap) as caught:
        docgen.catalog_page(Outer)
    assert caught.value.gaps == ["catalog field Inner.quiet: no docstring"]


def _schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((DOCS / docgen.SCHEMA_FILE).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_catalog_schema_accepts_the_example_catalog() -> None:
    catalog = yaml.safe_load((ROOT / "catalog.yaml").read_text(encoding="utf-8"))
    errors = [e.message for e in _schema_validator().iter_errors(catalog)]
    assert errors == []
    first = (ROOT / "catalog.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=docs/{docgen.SCHEMA_FILE}"


@pytest.mark.parametrize(
    ("corpus_file", "complaint"),
    [
        ("007-unknown-top-field.yaml", "Additional properties are not allowed"),
        ("014-name-uppercase.yaml", "does not match"),
        ("009-version-2.yaml", "1 was expected"),
        ("036-key-254-chars.yaml", "is too long"),
    ],
)
def test_the_catalog_schema_refuses_bad_catalogs_of_the_corpus(
    corpus_file: str, complaint: str
) -> None:
    catalog = yaml.safe_load((ROOT / "tests" / "corpus" / "bad" / corpus_file).read_text())
    messages = [e.message for e in _schema_validator().iter_errors(catalog)]
    assert messages, f"the schema accepts {corpus_file}"
    assert any(complaint in m for m in messages), messages


def test_the_readme_is_a_short_users_page_whose_links_exist() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250

    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
