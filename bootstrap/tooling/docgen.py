"""The documentation's reference pages, generated from the code so that they cannot drift:
every task and flag (from the invoke collection), every setting (from :class:`Settings` and
the ``#:`` comment above each field), every catalog field (from the catalog model's field
docstrings), the exit codes (from the error classes) and the catalog's JSON Schema.

Each generator refuses what has no description (a :class:`DocGap` naming every gap), so a
new task, flag, setting or catalog field without one fails the docs build and the unit
test that runs these generators. No process, no network; only :func:`write_pages` writes.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bootstrap.core import errors
from bootstrap.model.catalog import Catalog
from bootstrap.model.settings import Settings

#: Where the published schema lives, relative to the docs root, and its identifier.
SCHEMA_FILE = "catalog.schema.json"
SCHEMA_ID = "https://cluster-secrets-bootstrap.invalid/catalog.schema.json"

_RST_LITERAL = re.compile(r"``([^`]+)``")


class DocGap(Exception):
    """Something a user can name (a task, flag, setting, catalog field) has no description."""

    def __init__(self, what: str, gaps: list[str]) -> None:
        self.gaps = gaps
        lines = "\n".join(f"  - {g}" for g in gaps)
        super().__init__(f"{len(gaps)} {what} without a description:\n{lines}")


def markdown(text: str) -> str:
    """A docstring or comment as Markdown: RST literals (````x````) become ```x```, the
    lines of one paragraph are joined, paragraphs are kept."""
    text = _RST_LITERAL.sub(r"`\1`", inspect.cleandoc(text))
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(paragraphs)


def _cell(text: str) -> str:
    return markdown(text).replace("\n\n", "<br><br>").replace("|", "\\|")


# -- tasks -----------------------------------------------------------------------------------


def _tasks(collection: Any) -> list[tuple[str, Any]]:
    """Every task of an invoke collection as (dotted name, task), sorted by name."""
    return sorted((name, collection[name]) for name in collection.task_names)


def arguments(t: Any) -> list[Any]:
    """A task's arguments, sorted by long name. invoke's ``get_arguments`` pops each flag's
    help out of the task as it builds them, so the help is put back: the task must still
    have it when invoke parses a command line (and when this runs again)."""
    saved = dict(t.help)
    try:
        return sorted(t.get_arguments(), key=lambda a: max(a.names, key=len))
    finally:
        t.help.update(saved)


def _flag(arg: Any) -> str:
    long = max(arg.names, key=len).replace("_", "-")
    dashes = "--" if len(long) > 1 else "-"
    value = "" if arg.kind is bool else " VALUE"
    return f"`{dashes}{long}{value}`" + (" (repeatable)" if arg.kind is list else "")


def _default(arg: Any) -> str:
    if arg.kind is list or arg.default in (None, False, ""):
        return ""
    return f"`{arg.default}`"


def tasks_page(collection: Any) -> str:
    """The reference of every task: what it does, its flags with their defaults."""
    gaps: list[str] = []
    out = [
        "# Tasks",
        "",
        "Every task the product has, with every flag, generated from `tasks.py`. Run one as",
        "`uv run invoke TASK [FLAGS]`; `uv run invoke --help TASK` prints the same. Tasks",
        "that read the catalog take `--catalog PATH` (default: the setting `catalog`).",
        "",
    ]
    for name, t in _tasks(collection):
        doc = (t.__doc__ or t.body.__doc__ or "").strip()
        if not doc:
            gaps.append(f"task {name}: no docstring")
        out += [f"## `{name}`", "", markdown(doc), ""]
        args = arguments(t)
        if not args:
            out += ["No flags.", ""]
            continue
        out += ["| flag | default | meaning |", "| --- | --- | --- |"]
        for arg in args:
            if not (arg.help or "").strip():
                gaps.append(f"task {name}: flag --{max(arg.names, key=len)} has no help")
            out.append(f"| {_flag(arg)} | {_default(arg)} | {_cell(arg.help or '')} |")
        out.append("")
    if gaps:
        raise DocGap("tasks or flags", gaps)
    return "\n".join(out)


# -- settings --------------------------------------------------------------------------------


def setting_comments(cls: type = Settings) -> dict[str, str]:
    """Each settings field's ``#:`` comment (the lines right above it), by field name."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    node_cls = ast.parse(source).body[0]
    assert isinstance(node_cls, ast.ClassDef)
    out: dict[str, str] = {}
    for node in node_cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#:"):
                above.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            out[node.target.id] = "\n".join(above)
    return out


def _setting_default(cls: type, name: str) -> str:
    f = next(f for f in fields(cls) if f.name == name)
    if f.default is not MISSING:
        value: Any = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
        if isinstance(value, Path):  # this machine's home is not the reader's
            home = str(Path.home())
            value = "~" + str(value)[len(home) :] if str(value).startswith(home) else value
    else:
        return "required"
    if value is None or value == ():
        return "unset"
    if isinstance(value, tuple):
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _setting_type(kind: Any) -> str:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(kind))
    if args and typing.get_origin(kind) is not tuple:
        return _setting_type(args[0])
    if typing.get_origin(kind) is tuple:
        return "list (comma-separated)"
    return {bool: "boolean", int: "integer", float: "number"}.get(
        kind, "text" if kind is str else "path"
    )


def settings_page(cls: type = Settings) -> str:
    """The reference of every setting: key, environment variable, type, default, meaning."""
    comments = setting_comments(cls)
    hints = typing.get_type_hints(cls)
    gaps = [
        f"setting {f.name}: no '#:' comment above it"
        for f in fields(cls)
        if not comments.get(f.name)
    ]
    if gaps:
        raise DocGap("settings", gaps)
    out = [
        "# Settings",
        "",
        "Every setting, generated from `bootstrap/model/settings.py`. Set one in `invoke.yaml`",
        "(under `bootstrap:`), in `~/.invoke.yaml`, or in the environment as",
        "`INVOKE_BOOTSTRAP_<KEY>` (lists comma-separated). A key that is no setting, a",
        "boolean that is not one (`ture`), a number that is not one and a choice outside its",
        "values are refused before the task does anything (exit 2), naming the key and where",
        "it came from. Booleans read `1`/`true`/`yes`/`on` and `0`/`false`/`no`/`off`.",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for f in fields(cls):
        env = f"INVOKE_BOOTSTRAP_{f.name.upper()}"
        out.append(
            f"| `{f.name}`<br>`{env}` | {_setting_type(hints[f.name])} | "
            f"{_setting_default(cls, f.name)} | {_cell(comments[f.name])} |"
        )
    out += [
        "| `debug`<br>`INVOKE_BOOTSTRAP_DEBUG` | boolean | `false` | Show tracebacks: of a "
        "product error, and of a crash (exit 70), whose message is otherwise withheld. |",
        "",
    ]
    return "\n".join(out)


# -- the catalog -----------------------------------------------------------------------------


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """The catalog's models, the root first, each once, in the order a reader meets them."""
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for info in model.model_fields.values():
            for inner in _model_types(info.annotation):
                visit(inner)

    visit(root)
    return seen


def _model_types(kind: Any) -> list[type[BaseModel]]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return [kind]
    return [m for a in typing.get_args(kind) for m in _model_types(a)]


def _type_text(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _type_text(typing.get_args(kind)[0])
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return f"[{kind.__name__}](#{kind.__name__.lower()})"
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(kind))
    if origin in (typing.Union, types.UnionType):
        parts = [_type_text(a) for a in typing.get_args(kind) if a is not type(None)]
        return " \\| ".join(parts)
    if origin is dict:
        key, value = typing.get_args(kind)
        return f"map of {_type_text(key)} to {_type_text(value)}"
    if origin is list:
        return f"list of {_type_text(typing.get_args(kind)[0])}"
    return {str: "text", int: "integer"}.get(kind, getattr(kind, "__name__", str(kind)))


def catalog_page(root: type[BaseModel] = Catalog) -> str:
    """The reference of every catalog entry: each model's fields, types, defaults, meaning."""
    gaps: list[str] = []
    out = [
        "# The catalog format",
        "",
        "Every field of `catalog.yaml`, generated from `bootstrap/model/catalog.py`. Editors",
        f"validate and complete catalogs with the JSON Schema [`{SCHEMA_FILE}`]"
        f"(../{SCHEMA_FILE}) (the example catalog's first line points at it). The product",
        "checks more than the schema can say: reserved names, who may copy or read what, file",
        "folders, duplicate names; see [the catalog](../explanation/catalog.md).",
        "",
    ]
    for model in _models(root):
        doc = model.__doc__ or ""
        if not doc.strip():
            gaps.append(f"catalog entry {model.__name__}: no docstring")
        out += [f"## {model.__name__}", "", markdown(doc), ""]
        out += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            key = info.alias or name
            if not (info.description or "").strip():
                gaps.append(f"catalog field {model.__name__}.{key}: no docstring")
            if info.is_required():
                default = "required"
            elif info.default_factory is not None:
                default = "empty" if model is not Catalog or key != "defaults" else "see Defaults"
            elif info.default is None:
                default = "unset"
            else:
                default = f"`{info.default}`"
            out.append(
                f"| `{key}` | {_type_text(info.annotation)} | {default} | "
                f"{_cell(info.description or '')} |"
            )
        out.append("")
    if gaps:
        raise DocGap("catalog entries", gaps)
    return "\n".join(out)


def _md_literals(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _md_literals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_md_literals(v) for v in value]
    if isinstance(value, str):
        return _RST_LITERAL.sub(r"`\1`", value)
    return value


def catalog_schema() -> dict[str, Any]:
    """The catalog's JSON Schema (draft 2020-12), from the model, for editors."""
    schema = _md_literals(Catalog.model_json_schema(by_alias=True))
    for model in schema.get("$defs", {}).values():
        for prop in model.get("properties", {}).values():
            prop.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


def catalog_schema_text() -> str:
    return json.dumps(catalog_schema(), indent=2, sort_keys=False) + "\n"


# -- exit codes ------------------------------------------------------------------------------


def _error_classes() -> list[type[errors.BootstrapError]]:
    out: list[type[errors.BootstrapError]] = []
    todo: list[type[errors.BootstrapError]] = [errors.BootstrapError]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(sorted(cls.__subclasses__(), key=lambda c: c.__name__))
    return [c for c in out if c.__module__ == errors.__name__]


def exit_codes_page(crash_exit: int) -> str:
    """Exit codes: 0, each error kind's code and meaning, a crash's."""
    gaps = [f"error {c.__name__}: no docstring" for c in _error_classes() if not c.__doc__]
    if gaps:
        raise DocGap("error kinds", gaps)
    out = [
        "# Exit codes",
        "",
        "Generated from `bootstrap/core/errors.py`. A product error ends with one line",
        "`error: ...` on standard error and no traceback (`INVOKE_BOOTSTRAP_DEBUG=1` shows",
        "it); a run's JSON report records the same error.",
        "",
        "| exit | error | when |",
        "| --- | --- | --- |",
        "| 0 | | the task did what it was asked; `plan`: whatever it found to change |",
    ]
    for cls in sorted(
        _error_classes(), key=lambda c: (c.exit_code, c is not errors.BootstrapError, c.__name__)
    ):
        out.append(f"| {cls.exit_code} | `{cls.__name__}` | {_cell(cls.__doc__ or '')} |")
    out += [
        f"| {crash_exit} | a crash | an exception that is none of the above: a bug. Only its "
        "type is shown (its text may hold anything); `INVOKE_BOOTSTRAP_DEBUG=1` shows the "
        "traceback |",
        "| 1 | | interrupted (Ctrl-C): a run's report says `interrupted`, its lock is released |",
        "",
    ]
    return "\n".join(out)


def pages(collection: Any, crash_exit: int) -> dict[str, str]:
    """Every generated file, by path relative to the docs root."""
    return {
        "reference/tasks.md": tasks_page(collection),
        "reference/settings.md": settings_page(),
        "reference/catalog.md": catalog_page(),
        "reference/exit-codes.md": exit_codes_page(crash_exit),
        SCHEMA_FILE: catalog_schema_text(),
    }


def write_pages(root: Path, generated: dict[str, str], *, check: bool) -> list[str]:
    """Write each generated file under ``root`` where it differs (nothing with ``check``);
    returns the paths that differed."""
    stale = []
    for rel, text in sorted(generated.items()):
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
