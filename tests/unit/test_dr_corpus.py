"""Issue 23, findings 7 and 8: the corpus of hostile snapshots and key records
(tests/corpus/snapshots, tests/corpus/keyrecords; see tests/drcorpus.py), each refused by the
product's own checks and by ``dr.restore`` run in-process (the task's own code, ``friendly``
included) as a user reaches it: the expected message, naming the file (and member), a
non-zero exit, no traceback, nothing written (no custody, no state folder), and fast (the
slowest checks are printed at the end; times are not asserted)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke.config import Config
from invoke.context import Context
from invoke.exceptions import Exit

import tasks
from bootstrap.core.errors import BootstrapError, SnapshotError
from bootstrap.model.snapshot import RestoreRequest
from bootstrap.phases.dr_restore import check_snapshot, load_original, read_keys
from bootstrap.runtime.custody import FileCustody, KubernetesSecretCustody, read_unseal_keys
from tests.drcorpus import (
    KEYRECORDS,
    SNAPSHOTS,
    build,
    header,
    snapshot_case,
    write_record,
    write_snapshot,
)

#: (seconds, case) of every check, printed slowest first at the end of the module
TIMES: list[tuple[float, str]] = []
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture(scope="module", autouse=True)
def slowest(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TIMES:
        top = sorted(TIMES, reverse=True)[:5]
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                "\ndr corpus, slowest checks: "
                + ", ".join(f"{name} {s * 1000:.1f} ms" for s, name in top)
            )


def timed(name: str, fn: Any, *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        TIMES.append((time.perf_counter() - started, name))


def context(tmp: Path) -> Context:
    """A task context whose state folder and custody file are under ``tmp`` (to prove that
    nothing is written there)."""
    config = dict(tasks.DEFAULTS["bootstrap"])
    config.update(state_dir=str(tmp / "state"), custody_file=str(tmp / "custody" / "v.json"))
    return Context(Config(overrides={"bootstrap": config}))


def restore_task(tmp: Path, **kwargs: Any) -> Exit:
    with pytest.raises(Exit) as info:
        tasks.dr_restore(context(tmp), **kwargs)
    return info.value


def assert_clean(message: str, expect: str, names: str) -> None:
    assert expect in message, f"{expect!r} not in {message!r}"
    assert names in message, f"{names!r} not in {message!r}"
    assert "Traceback" not in message and "unexpected" not in message, message
    assert not CONTROL.search(message), f"a control character reaches the terminal: {message!r}"


def assert_nothing_written(tmp: Path) -> None:
    assert not (tmp / "state").exists(), "the state folder was written"
    assert not (tmp / "custody").exists(), "custody was written"


def test_the_corpus_is_large_enough() -> None:
    assert len(SNAPSHOTS) >= 15 and len(KEYRECORDS) >= 15
    assert len({p.name.split("-", 1)[0] for p in SNAPSHOTS}) == len(SNAPSHOTS)
    assert len({p.name.split("-", 1)[0] for p in KEYRECORDS}) == len(KEYRECORDS)


# -- snapshots (finding 7) -------------------------------------------------------------------


@pytest.mark.parametrize("path", SNAPSHOTS, ids=[p.stem for p in SNAPSHOTS])
def test_issue_23_finding_7_a_hostile_snapshot_is_refused_before_anything_changes(
    path: Path, tmp_path: Path
) -> None:
    expect = header(path)
    case = snapshot_case(path)
    snap = write_snapshot(tmp_path / "offsite", build(case), **(case.get("manifest") or {}))
    keys = write_record(tmp_path / "offsite" / "vault-init.json")
    with pytest.raises(SnapshotError) as err:
        timed(path.stem, check_snapshot, RestoreRequest(snap, keys))
    assert_clean(str(err.value), expect, snap.name)
    exit_ = restore_task(tmp_path, snapshot=str(snap), keys=str(keys))
    assert exit_.code == 1, exit_.message
    assert_clean(str(exit_.message), expect, snap.name)
    assert_nothing_written(tmp_path)


def test_the_corpus_builder_makes_a_sound_snapshot(tmp_path: Path) -> None:
    """The builder's default (no member changed) passes every check: each case's refusal is
    its own change's."""
    snap = write_snapshot(tmp_path, build({}))
    checked = check_snapshot(RestoreRequest(snap))
    assert checked.contents.index == 42
    assert set(checked.contents.members) == {
        "meta.json",
        "state.bin",
        "SHA256SUMS",
        "SHA256SUMS.sealed",
    }
    assert checked.payload == snap.read_bytes()


# -- key records and identities (finding 8) ----------------------------------------------------


class FakeKube:
    """A Secret store holding one Secret (unit tests only)."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data
        self.writes = 0

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.data if name == "vault-init" else None

    def create_secret(self, *args: Any, **kwargs: Any) -> bool:  # pragma: no cover
        self.writes += 1
        return True

    def write_secret(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
        self.writes += 1


def _given(case: dict[str, Any], path: Path, tmp: Path) -> Path:
    if "file" in case:
        return path.parent / str(case["file"])
    given = str(case["given"])
    if given == "{folder}":
        folder = tmp / "a-folder"
        folder.mkdir()
        return folder
    return Path(given)


def _encrypted_snapshot(tmp: Path) -> Path:
    import pyrage

    me = pyrage.x25519.Identity.generate()
    sealed = pyrage.encrypt(build({}), [me.to_public()])
    return write_snapshot(tmp / "offsite", sealed, "vault.snap.age", encryption="age", recipients=1)


@pytest.mark.parametrize("path", KEYRECORDS, ids=[p.name.split(".")[0] for p in KEYRECORDS])
def test_issue_23_finding_8_a_bad_key_record_or_identity_is_refused_before_custody(
    path: Path, tmp_path: Path
) -> None:
    expect = header(path)
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    given = _given(case, path, tmp_path)
    how = case["as"]
    name = path.name.split(".")[0]
    names = str(path.parent / case["names"]) if "names" in case else str(given)
    if how == "keys":
        snap = write_snapshot(tmp_path / "offsite", build({}))
        with pytest.raises(BootstrapError) as err:
            timed(name, read_keys, given)
        assert_clean(str(err.value), expect, names)
        exit_ = restore_task(tmp_path, snapshot=str(snap), keys=str(given))
    elif how == "age-identity":
        snap = _encrypted_snapshot(tmp_path)
        with pytest.raises(SnapshotError) as err:
            timed(name, check_snapshot, RestoreRequest(snap, age_identities=(given,)))
        assert_clean(str(err.value), expect, str(given))
        exit_ = restore_task(tmp_path, snapshot=str(snap), age_identity=[str(given)])
    elif how == "custody":
        before = given.read_bytes() if given.is_file() else None
        snap = write_snapshot(tmp_path / "offsite", build({}))
        with pytest.raises(BootstrapError) as err:
            timed(name, load_original, RestoreRequest(snap), FileCustody(given))
        assert_clean(str(err.value), expect, str(given))
        assert (given.read_bytes() if given.is_file() else None) == before  # untouched
        return
    elif how == "secret":
        kube = FakeKube({KubernetesSecretCustody.KEY: given.read_bytes()})
        custody = KubernetesSecretCustody(kube, "vault-bootstrap", "vault-init")
        with pytest.raises(BootstrapError) as err:
            timed(name, custody.load)
        assert_clean(str(err.value), expect, "Secret vault-bootstrap/vault-init")
        assert kube.writes == 0
        return
    else:
        assert how == "unseal-keys-file", how
        with pytest.raises(BootstrapError) as err:
            timed(name, read_unseal_keys, given)
        assert_clean(str(err.value), expect, str(given))
        return
    assert exit_.code in (1, 2), exit_.message
    assert_clean(str(exit_.message), expect, names)
    assert_nothing_written(tmp_path)
