"""Just enough of Helm's templating to read the External Secrets Operator's RBAC from its own
chart (``deploy/charts/external-secrets/templates/rbac.yaml`` with its ``values.yaml``), so the
sandbox grants exactly what a Helm install of the built version grants. Pure: text in,
objects out.

What it understands is what that template uses: block lines ``{{- if .Values.a.b }}``,
``{{- else }}``, ``{{- end }}`` and ``{{- range ... }}`` (a range over an empty list, or inside
a false block; anything else is refused), and the value lines ``include "<chart>.fullname"``,
``include "<chart>.serviceAccountName"``, ``template "<chart>.namespace"``, the namespace's
``.Values.scopedNamespace | default .Release.Namespace | quote`` and ``default "x"
.Values.y | quote``. A labels ``include ... | nindent`` line is dropped (the labels are
Helm's bookkeeping). Any other expression is a ToolError naming its line: the chart changed,
and this reader with it must."""

from __future__ import annotations

import re
from typing import Any

import yaml

from bootstrap.core.errors import ToolError
from bootstrap.core.jsondoc import JsonObject

_BLOCK = re.compile(r"^\s*\{\{-?\s*(if|else|end|range)\b\s*([^}]*?)\s*-?\}\}\s*$")
_EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")


def _value(values: JsonObject, path: str, where: str) -> Any:
    if not path.startswith(".Values."):
        raise ToolError(f"{where}: cannot evaluate {path!r} (only .Values paths)")
    node: Any = values
    for part in path.removeprefix(".Values.").split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _expr(expr: str, values: JsonObject, chart: str, release: str, namespace: str) -> str | None:
    """The text an expression renders to; None: the line is dropped; unknown: KeyError."""
    fullname = release if chart in release else f"{release}-{chart}"
    known = {
        f'include "{chart}.fullname" .': fullname,
        f'include "{chart}.serviceAccountName" .': fullname,
        f'template "{chart}.namespace" .': namespace,
        ".Values.scopedNamespace | default .Release.Namespace | quote": f'"{namespace}"',
    }
    if expr in known:
        return known[expr]
    if expr.startswith(f'include "{chart}.labels" .'):
        return None
    m = re.fullmatch(r'default "([^"]*)" (\.Values\.[\w.]+) \| quote', expr)
    if m:
        return '"' + str(_value(values, m.group(2), "") or m.group(1)) + '"'
    raise KeyError(expr)


def render(
    template: str,
    values: JsonObject,
    *,
    chart: str,
    release: str,
    namespace: str,
    where: str = "template",
) -> list[JsonObject]:
    """The objects ``template`` renders to with ``values`` (as Helm would with
    ``--namespace namespace`` and release name ``release``)."""
    out: list[str] = []
    stack: list[bool] = []  # is each enclosing block's current branch taken
    for number, line in enumerate(template.splitlines(), 1):
        here = f"{where}:{number}"
        block = _BLOCK.match(line)
        if block:
            word, arg = block.groups()
            live = all(stack)
            if word == "if":
                stack.append(bool(_value(values, arg.rstrip("-").strip(), here)) if live else False)
            elif word == "range":
                seq = _value(values, arg, here) if arg.startswith(".Values.") else None
                if live and seq:
                    raise ToolError(f"{here}: a range over a non-empty list is not supported")
                stack.append(False)
            elif not stack:
                raise ToolError(f"{here}: {word} without an if")
            elif word == "else":
                stack[-1] = all(stack[:-1]) and not stack[-1]
            else:
                stack.pop()
            continue
        if not all(stack):
            continue
        try:
            parts = [
                _expr(m.group(1), values, chart, release, namespace) for m in _EXPR.finditer(line)
            ]
        except KeyError as exc:
            raise ToolError(f"{here}: cannot evaluate {{{{ {exc.args[0]} }}}}") from None
        if None in parts:
            continue
        pieces = _EXPR.split(line)  # text, expression, text, ...
        pieces[1::2] = [str(p) for p in parts]
        out.append("".join(pieces))
    if stack:
        raise ToolError(f"{where}: {len(stack)} block(s) not closed")
    try:
        docs = [d for d in yaml.safe_load_all("\n".join(out)) if d]
    except yaml.YAMLError as exc:
        raise ToolError(f"{where}: does not render to YAML ({exc})") from None
    for doc in docs:  # a dropped labels line leaves 'labels:' empty
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if isinstance(meta, dict):
            doc["metadata"] = {k: v for k, v in meta.items() if v is not None}
    return docs
