"""The catalog loader reads libyaml's events (when PyYAML has it) in one pass: the same data and
line numbers as PyYAML's SafeLoader with the line index the loader had before (issue 23,
finding 12), errors at the same places as the pure-Python parser."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bootstrap.core.errors import CatalogError
from bootstrap.model import catalog as cat_mod
from bootstrap.model.catalog import parse_catalog
from tests.badcatalogs import GOOD
from tests.conftest import EXAMPLE

GOOD_TEXTS = [p.read_text(encoding="utf-8") for p in GOOD]

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


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """The line index as the loader built it from PyYAML's nodes before it read events."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _reference(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    ld = yaml.SafeLoader(text)
    try:
        node = ld.get_single_node()
        assert node is not None
        lines: dict[tuple[Any, ...], int] = {}
        _line_index(node, (), lines)
        return ld.construct_document(node), lines
    finally:
        ld.dispose()


TYPED = (
    "a: null\nb: ~\nc:\nd: 12\ne: 0x1f\nf: 1.5\ng: yes\nh: Off\ni: 2001-12-14\n"
    "j: '12'\nk: |\n  text\nl: [1, two, {m: n}]\n? o\n: p\n"
)


@pytest.mark.parametrize("text", [EXAMPLE.read_text(encoding="utf-8"), TYPED, *GOOD_TEXTS])
def test_same_lines_and_data_as_the_safe_loader(text: str) -> None:
    data, lines, dupes = cat_mod._read_events(text, "c.yaml")
    assert (data, lines) == _reference(text)
    assert dupes == []


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
