"""The sandbox reads ESO's RBAC from ESO's own Helm chart (bootstrap/tooling/chart.py): the
real 2.9.0 template renders to what a Helm install grants, and anything the small reader does
not understand is refused with its line, never guessed."""

from __future__ import annotations

import re
import tarfile
from functools import cache

import pytest
import yaml

from bootstrap.core import paths
from bootstrap.core.errors import ToolError
from bootstrap.tooling import chart

ESO_ARCHIVE = paths.VENDOR / "external-secrets-2.9.0.tar.gz"
CHART = "deploy/charts/external-secrets/"


@cache
def _chart_files() -> tuple[str, str]:
    with tarfile.open(ESO_ARCHIVE, "r:gz") as tar:
        out = {}
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if inner in (CHART + "templates/rbac.yaml", CHART + "values.yaml"):
                fh = tar.extractfile(member)
                assert fh is not None
                out[inner] = fh.read().decode()
    return out[CHART + "templates/rbac.yaml"], out[CHART + "values.yaml"]


def _render(values_patch: dict[str, object] | None = None) -> list[dict[str, object]]:
    template, values = _chart_files()
    vals = yaml.safe_load(values)
    vals.update(values_patch or {})
    return chart.render(
        template, vals, chart="external-secrets", release="external-secrets", namespace="eso"
    )


def _controller_rules(objs: list[dict[str, object]]) -> list[dict[str, list[str]]]:
    (role,) = [
        o
        for o in objs
        if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "external-secrets-controller"  # type: ignore[index]
    ]
    return role["rules"]  # type: ignore[return-value]


def test_the_real_chart_grants_the_controller_what_it_writes() -> None:
    objs = _render()
    rules = _controller_rules(objs)
    secrets = [r for r in rules if r["resources"] == ["secrets"]]
    assert secrets and {"create", "update", "patch", "delete"} <= set(secrets[0]["verbs"])
    tokens = [r for r in rules if r["resources"] == ["serviceaccounts/token"]]
    assert tokens and tokens[0]["verbs"] == ["create"]  # kubernetes auth's tokens
    es = [r for r in rules if "externalsecrets/status" in r["resources"]]
    assert es and "update" in es[0]["verbs"]
    (binding,) = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert binding["subjects"] == [
        {"name": "external-secrets", "namespace": "eso", "kind": "ServiceAccount"}
    ]
    # the Helm labels line is dropped, not left empty; labels of the template's own stay
    assert "labels" not in binding["metadata"]  # type: ignore[operator]
    (view,) = [o for o in objs if o["metadata"]["name"] == "external-secrets-view"]  # type: ignore[index]
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"  # type: ignore[index]


def test_values_decide_the_rules_as_in_helm() -> None:
    default = _controller_rules(_render())
    scoped = _render({"processClusterStore": False, "processClusterExternalSecret": False})
    flat = {r for rule in default for r in rule["resources"]}
    less = {r for rule in _controller_rules(scoped) for r in rule["resources"]}
    assert "clustersecretstores" in flat and "clustersecretstores" not in less
    assert "clusterexternalsecrets" not in less
    assert _render({"rbac": {"create": False}}) == []
    # scopedRBAC: a Role in the namespace instead of a ClusterRole (the else branches)
    roles = _render({"scopedRBAC": True})
    assert {"Role", "RoleBinding"} <= {o["kind"] for o in roles}
    assert not [
        o
        for o in roles
        if o["metadata"]["name"] == "external-secrets-controller"  # type: ignore[index]
        and o["kind"] == "ClusterRole"
    ]


def test_nested_blocks_and_else() -> None:
    text = "\n".join(
        [
            "{{- if .Values.a }}",
            "a: 1",
            "{{- if .Values.b }}",
            "b: 1",
            "{{- else }}",
            "notb: 1",
            "{{- end }}",
            "{{- else }}",
            "nota: 1",
            "{{- end }}",
        ]
    )
    kw = {"chart": "c", "release": "r", "namespace": "n"}
    assert chart.render(text, {"a": True, "b": False}, **kw) == [{"a": 1, "notb": 1}]
    assert chart.render(text, {"a": False, "b": True}, **kw) == [{"nota": 1}]
    assert chart.render(text, {"a": True, "b": True}, **kw) == [{"a": 1, "b": 1}]


@pytest.mark.parametrize(
    ("text", "values", "error"),
    [
        ("name: {{ .Values.x | upper }}", {}, "rbac.yaml:1: cannot evaluate"),
        ("a: 1\n{{- if .Values.x }}\nb: 2", {"x": True}, "1 block(s) not closed"),
        ("{{- end }}", {}, "rbac.yaml:1: end without an if"),
        (
            "{{- range .Values.items }}\n- x\n{{- end }}",
            {"items": [1]},
            "rbac.yaml:1: a range over a non-empty list",
        ),
        ("{{- if .Release.Name }}\n{{- end }}", {}, "only .Values paths"),
    ],
)
def test_what_it_does_not_understand_is_refused_with_its_line(
    text: str, values: dict[str, object], error: str
) -> None:
    with pytest.raises(ToolError, match=re.escape(error)):
        chart.render(text, values, chart="c", release="r", namespace="n", where="rbac.yaml")
