"""The catalog loader uses libyaml when PyYAML has it: same data, same line numbers, errors at
the same places as the pure-Python loader."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bootstrap.core.errors import CatalogError
from bootstrap.model import catalog as cat_mod
from bootstrap.model.catalog import parse_catalog
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
    assert cat_mod._Loader is not yaml.SafeLoader
    assert _read(cat_mod._Loader, text) == _read(yaml.SafeLoader, text)


@pytest.mark.parametrize("text", BROKEN)
def test_same_errors_as_the_python_loader(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CatalogError) as fast:
        parse_catalog(text, "c.yaml")
    monkeypatch.setattr(cat_mod, "_Loader", yaml.SafeLoader)
    with pytest.raises(CatalogError) as slow:
        parse_catalog(text, "c.yaml")
    # the same place (file and line); libyaml words some problems its own way
    assert [p.split(": ")[0] for p in fast.value.problems] == [
        p.split(": ")[0] for p in slow.value.problems
    ]
