"""Issue 26, item 7: no module of the product changes this process's environment (it is read
in settings and by the clients that pass it on, and a child process gets a copy)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTATORS = {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__"}


def _environ(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def changes_to_environ(source: str) -> list[int]:
    """Lines that change ``os.environ`` (or call ``os.putenv``/``os.unsetenv``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            if any(isinstance(t, ast.Subscript) and _environ(t.value) for t in targets):
                found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            if f.attr in MUTATORS and _environ(f.value):
                found.append(node.lineno)
            if f.attr in ("putenv", "unsetenv") and isinstance(f.value, ast.Name):
                found.append(node.lineno)
    return sorted(found)


def test_the_finder_sees_each_way_of_changing_the_environment() -> None:
    source = (
        "import os\n"
        "os.environ['A'] = '1'\n"
        "os.environ.update({})\n"
        "os.environ.pop('A', None)\n"
        "del os.environ['A']\n"
        "os.putenv('A', '1')\n"
        "x = os.environ.get('A')\n"
        "env = {**os.environ}\n"
    )
    assert changes_to_environ(source) == [2, 3, 4, 5, 6]


def test_no_module_of_the_product_changes_the_environment() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in sorted([*(ROOT / "bootstrap").rglob("*.py"), ROOT / "tasks.py"])
        if (lines := changes_to_environ(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}
