"""Catalog validation: every class of bad input gets a CatalogError naming file, line,
entry and field; nothing else escapes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bootstrap.core.errors import CatalogError
from bootstrap.model.catalog import load_catalog, parse_catalog
from tests.conftest import EXAMPLE

BASE = textwrap.dedent("""\
    version: 1
    shared:
      ovh-dns:
        keys:
          token: {env: OVH_TOKEN}
    infrastructure:
      database:
        keys:
          password: {generate: {length: 32}}
    services:
      - name: cert-manager
        namespace: cert-manager
        reads: [shared/ovh-dns]
        restart:
          - {kind: Deployment, name: cert-manager}
      - name: app
        namespace: apps
        secrets:
          config:
            keys:
              level: {env: LEVEL}
        reads: [infrastructure/database]
""")


def test_example_catalog_is_valid_and_models_the_document() -> None:
    cat = load_catalog(EXAMPLE)
    names = {s.name for s in cat.services}
    assert {"cert-manager", "external-dns", "backup", "webapp"} <= names
    assert len(names) >= 5
    assert [r.path for r in cat.service("cert-manager").reads] == ["shared/ovh-dns"]
    assert [r.path for r in cat.service("external-dns").reads] == ["shared/ovh-dns"]
    assert "infrastructure/backup" in [r.path for r in cat.service("backup").reads]
    webapp = cat.service("webapp")
    assert set(webapp.secrets) == {"config", "credentials", "api-keys"}
    assert "infrastructure/database" in [r.path for r in webapp.reads]
    # Two services share a namespace, each keeps its own identity.
    assert cat.service("webapp-search").namespace == webapp.namespace
    assert cat.defaults.refresh_after == "30s"


def test_base_is_valid() -> None:
    cat = parse_catalog(BASE, "base.yaml")
    assert cat.refresh_after(cat.service("app")) == "30s"


def _problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as info:
        parse_catalog(text, "cat.yaml")
    assert info.value.exit_code == 2
    return info.value.problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unknown field, with its line and entry
        (
            "    namespace: cert-manager\n",
            "    namespace: cert-manager\n    namespcae: x\n",
            ["cat.yaml:13:", "services[0] (cert-manager)", "namespcae", "unknown field"],
        ),
        # not a DNS-1123 label
        (
            "namespace: apps",
            "namespace: Apps_1",
            ["cat.yaml:17:", "services[1] (app)", "field namespace", "DNS-1123"],
        ),
        # reserved service name
        (
            "- name: app\n",
            "- name: shared\n",
            ["cat.yaml:16:", "services[1] (shared)", "field name", "reserved"],
        ),
        # reference to an undeclared shared secret
        (
            "reads: [shared/ovh-dns]",
            "reads: [shared/aws-creds]",
            [
                "cat.yaml:13:",
                "services[0] (cert-manager)",
                "reads.0",
                "'shared/aws-creds'",
                "not declared under 'shared:'",
            ],
        ),
        # a restart target of an unknown kind
        (
            "{kind: Deployment, name: cert-manager}",
            "{kind: CronJob, name: cert-manager}",
            ["cat.yaml:15:", "restart.0.kind", "unknown restart kind 'CronJob'"],
        ),
        # a read outside shared/ and infrastructure/
        (
            "reads: [infrastructure/database]",
            "reads: [app/config]",
            ["services[1] (app)", "reads.0.path", "must be 'shared/<name>'"],
        ),
        # a source with two kinds
        (
            "level: {env: LEVEL}",
            "level: {env: LEVEL, file: x}",
            ["cat.yaml:21:", "secrets.config.keys.level", "exactly one"],
        ),
        # bad duration
        (
            "    namespace: apps\n",
            "    namespace: apps\n    refreshAfter: soon\n",
            ["services[1] (app)", "refreshAfter", "not a positive duration"],
        ),
    ],
)
def test_bad_input_names_file_line_entry_and_field(old: str, new: str, expected: list[str]) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    problems = _problems(text)
    joined = "\n".join(problems)
    for part in expected:
        assert part in joined, f"{part!r} not in {joined!r}"


def test_duplicate_service() -> None:
    text = BASE + "  - name: app\n    namespace: other\n    reads: [shared/ovh-dns]\n"
    (problem,) = _problems(text)
    assert "cat.yaml:23:" in problem and "duplicate service 'app'" in problem
    assert "services[1]" in problem


def test_duplicate_yaml_key_is_refused() -> None:
    text = BASE.replace("    namespace: apps\n", "    namespace: apps\n    namespace: again\n")
    (problem,) = _problems(text)
    assert "cat.yaml:18:" in problem and "duplicate key 'namespace'" in problem


def test_malformed_yaml_has_a_line() -> None:
    (problem,) = _problems(BASE.replace("reads: [shared/ovh-dns]", "reads: [shared/ovh-dns"))
    assert problem.startswith("cat.yaml:") and "malformed YAML" in problem


def test_destination_collision_in_one_namespace() -> None:
    text = BASE + (
        "  - name: app2\n    namespace: apps\n    secrets:\n      config:\n"
        "        keys: {a: null}\n"
    )
    (problem,) = _problems(text)
    assert "Secret 'config' in namespace 'apps'" in problem and "destination" in problem


def test_several_problems_reported_together() -> None:
    text = BASE.replace("namespace: apps", "namespace: Apps").replace(
        "{kind: Deployment, name: cert-manager}", "{kind: Job, name: x}"
    )
    assert len(_problems(text)) == 2


def test_empty_and_non_mapping() -> None:
    assert "empty" in _problems("")[0]
    assert "mapping" in _problems("- a\n- b\n")[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        load_catalog(tmp_path / "nope.yaml")
