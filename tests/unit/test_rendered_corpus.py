"""Issue 23, finding 6: a corpus of hand-edited rendered trees (tests/corpus/rendered), each
refused by ``invoke check --rendered`` run in-process (the task's own code, ``friendly``
included): exit code 1, a finding naming the edited file and the field, no traceback, no
value shown that may be secret, nothing written.

Each case is a YAML file: ``file`` (the edited file, relative to the tree), ``edit`` (one of
``set``/``value`` a dotted path (numbers index lists) in a YAML document (``doc``, default 0)
or JSON file, ``append`` text, ``replace`` ``{old, new}`` text, ``write`` a new file),
``expect`` (part of the finding that follows the file's name), optionally ``populate_job``
(render with ``--populate-job``) and ``hidden`` (a value the message must not show). The
tree is rendered from the example catalog at test time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.exceptions import Exit

import tasks
from tests.conftest import EXAMPLE
from tests.unit.test_corpus import context

CASES = sorted((Path(__file__).resolve().parents[1] / "corpus" / "rendered").glob("*.yaml"))
JOB = {"vault_addr": "http://vault.vault.svc:8200", "image": "registry.example/bootstrap:1"}


def _set(doc: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc.setdefault(part, {})
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def apply_edit(tree: Path, rel: str, edit: dict[str, Any]) -> None:
    p = tree / rel
    if "write" in edit:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(edit["write"])
    elif "append" in edit:
        p.write_text(p.read_text() + edit["append"])
    elif "replace" in edit:
        text = p.read_text()
        assert edit["replace"]["old"] in text, (rel, edit)
        p.write_text(text.replace(edit["replace"]["old"], edit["replace"]["new"]))
    elif rel.endswith(".json"):
        data = json.loads(p.read_text())
        _set(data, edit["set"], edit["value"])
        p.write_text(json.dumps(data, indent=2))
    else:
        docs = list(yaml.safe_load_all(p.read_text()))
        _set(docs[edit.get("doc", 0)], edit["set"], edit["value"])
        p.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def _digest(tree: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(tree.rglob("*")):
        h.update(str(p.relative_to(tree)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def render(tree: Path, populate_job: bool) -> None:
    kwargs: dict[str, Any] = {"populate_job": True, **JOB} if populate_job else {}
    tasks.render(context(catalog_commands="allow"), out=str(tree), catalog=str(EXAMPLE), **kwargs)


def check(tree: Path) -> None:
    tasks.check(context(catalog_commands="allow"), catalog=str(EXAMPLE), rendered=str(tree), **JOB)


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert len({p.name.split("-", 1)[0] for p in CASES}) == len(CASES)


@pytest.mark.parametrize("populate_job", [False, True])
def test_an_unedited_tree_passes(tmp_path: Path, populate_job: bool) -> None:
    tree = tmp_path / "rendered"
    render(tree, populate_job)
    check(tree)  # no exception: no finding


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_a_hand_edited_tree_is_refused(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    tree = tmp_path / "rendered"
    render(tree, bool(case.get("populate_job")))
    apply_edit(tree, case["file"], case["edit"])
    before = _digest(tree)
    with pytest.raises(Exit) as info:
        check(tree)
    message = str(info.value.message)
    assert info.value.code == 1, message
    assert message.startswith("error: static check failed with"), message
    findings = [line.removeprefix("  - ") for line in message.splitlines()[1:]]
    named = [f for f in findings if f.startswith(f"{tree / case['file']}")]
    assert any(case["expect"] in f for f in named), f"{case['expect']!r} not in:\n{message}"
    assert "Traceback" not in message
    if case.get("hidden"):
        assert case["hidden"] not in message
    assert _digest(tree) == before  # the check writes nothing


def test_a_tree_with_the_job_needs_the_address_it_was_rendered_with(tmp_path: Path) -> None:
    """Without Vault's address the Job's manifests cannot be compared: a usage error (exit 2)
    saying what to give, not a pass."""
    tree = tmp_path / "rendered"
    render(tree, True)
    with pytest.raises(Exit) as info:
        tasks.check(context(catalog_commands="allow"), catalog=str(EXAMPLE), rendered=str(tree))
    assert info.value.code == 2
    assert "--vault-addr" in str(info.value.message)


def test_a_missing_file_source_is_named_at_render(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    folder.mkdir()
    catalog = folder / "catalog.yaml"
    catalog.write_text(
        "version: 1\nservices:\n  - name: app\n    namespace: app\n    secrets:\n"
        "      config:\n        keys:\n          flags: {file: flags.txt}\n"
    )
    out = tmp_path / "rendered"
    with pytest.raises(Exit) as info:
        tasks.render(
            context(catalog_commands="allow"),
            out=str(out),
            catalog=str(catalog),
            populate_job=True,
            **JOB,
        )
    assert info.value.code == 2
    assert "file flags.txt: cannot find it for the Job's files Secret" in str(info.value.message)
    assert not out.exists()
