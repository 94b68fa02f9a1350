"""The catalog loader reads libyaml's events when it can: same data, same line numbers, same
errors as the pure-Python loader, and hooks on the loader's composer still apply."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bootstrap import catalog as cat_mod
from bootstrap.catalog import parse_catalog
from bootstrap.errors import CatalogError
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

BROKEN = [
    "services:\n  - name: a\n   namespace: b\n",
    "services: [\n",
    "a: b: c\n",
    "services:\n  - name: 'x\n",
    "\tservices: []\n",
    "services: *nothing\n",
    "--- a\n--- b\n",
    "x: \x00\n",
]


def _read(loader: type[Any], text: str) -> tuple[dict[tuple[Any, ...], int], Any]:
    ld = loader(text)
    try:
        node = ld.get_single_node()
        lines: dict[tuple[Any, ...], int] = {}
        cat_mod._line_index(node, (), lines, [])
        return lines, ld.construct_document(node)
    finally:
        ld.dispose()


def test_same_lines_and_data_as_the_python_loader() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert cat_mod._Loader is not cat_mod._UniqueKeyLoader
    assert _read(cat_mod._Loader, text) == _read(cat_mod._UniqueKeyLoader, text)


@pytest.mark.parametrize("text", BROKEN)
def test_same_errors_as_the_python_loader(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CatalogError) as fast:
        parse_catalog(text, "c.yaml")
    monkeypatch.setattr(cat_mod, "_Loader", cat_mod._UniqueKeyLoader)
    with pytest.raises(CatalogError) as slow:
        parse_catalog(text, "c.yaml")
    # the same place (file and line); libyaml words some problems its own way
    assert [p.split(": ")[0] for p in fast.value.problems] == [
        p.split(": ")[0] for p in slow.value.problems
    ]


def test_hooks_on_the_composer_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_aliases(self: Any, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are refused")
        return yaml.composer.Composer.compose_node(self, parent, index)

    monkeypatch.setattr(cat_mod._UniqueKeyLoader, "compose_node", refuse_aliases)
    with pytest.raises(CatalogError, match="aliases are refused"):
        parse_catalog("a: &x 1\nb: *x\n", "c.yaml")
