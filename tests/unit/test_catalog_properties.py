"""Property-based: mutating a valid catalog yields a valid model or a CatalogError, never
another exception."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootstrap.core.errors import CatalogError
from bootstrap.model.catalog import Catalog, parse_catalog
from tests.conftest import EXAMPLE

VALID: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "shared",
            "infrastructure",
            "Deployment",
            "CronJob",
            "30s",
            "0s",
            "shared/ovh-dns",
            "x/y/z",
            "-bad-",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = _paths(VALID)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        op = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        parent: Any = doc
        try:
            for p in path[:-1]:
                parent = parent[p]
            if not path:
                doc = draw(values)
                continue
            last = path[-1]
            if op == "replace":
                parent[last] = draw(values)
            elif op == "delete":
                del parent[last]
            elif op == "add" and isinstance(parent, dict):
                parent[draw(st.text(max_size=10))] = draw(values)
            elif op == "duplicate" and isinstance(parent, list):
                parent.append(copy.deepcopy(parent[last]))
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(doc, sort_keys=False)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", ":", "\t", "[", "{a: 1", "- "])) + text[cut:]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_give_a_model_or_a_catalog_error(text: str) -> None:
    try:
        result = parse_catalog(text, "mutated.yaml")
    except CatalogError as exc:
        assert exc.problems
        assert all(p.startswith("mutated.yaml") for p in exc.problems)
    else:
        assert isinstance(result, Catalog)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    with contextlib.suppress(CatalogError):
        parse_catalog(text, "x.yaml")
