"""Snapshot files and the restore plan, as pure logic: what a sound raft snapshot is, what a
manifest must say, which server may take which snapshot, and what ``dr.restore`` plans for
every state a target can be in (fresh, half-restored, restored, someone else's)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.vault import Health
from bootstrap.core.errors import SnapshotError
from bootstrap.model.snapshot import (
    Manifest,
    RestoreRequest,
    check_bytes,
    compatibility,
    inspect_file,
    manifest_path,
    server_of,
    version_tuple,
)
from bootstrap.phases.dr_restore import (
    DiscardThrowaway,
    InitThrowaway,
    InstallCustody,
    RestoreFacts,
    RestoreSnapshot,
    UnsealOriginal,
    plan_restore,
)
from bootstrap.runtime.custody import InitRecord


def _tar(members: dict[str, bytes], *, sums: dict[str, str] | None = None) -> bytes:
    """A gzip'd tar shaped like a raft snapshot; SHA256SUMS from ``sums`` or the members."""
    listed = (
        sums if sums is not None else {n: hashlib.sha256(d).hexdigest() for n, d in members.items()}
    )
    text = "".join(f"{h}  {n}\n" for n, h in listed.items()).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in [*members.items(), ("SHA256SUMS", text)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


STATE = b"raft state " * 1000
META = json.dumps({"Index": 42, "Term": 3, "Size": len(STATE)}).encode()


def _write(tmp_path: Path, data: bytes, name: str = "s.snap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_sound_snapshot_is_read_with_its_index(tmp_path: Path) -> None:
    contents = inspect_file(_write(tmp_path, _tar({"meta.json": META, "state.bin": STATE})))
    assert (contents.index, contents.term, contents.state_bytes) == (42, 3, len(STATE))
    assert set(contents.members) == {"meta.json", "state.bin", "SHA256SUMS"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not gzip at all", "is not a readable raft snapshot"),
        (gzip.compress(b"gzip, but not a tar" * 100), "is not a readable raft snapshot"),
        (_tar({"meta.json": META, "state.bin": STATE})[:200], "is not a readable raft snapshot"),
        (_tar({"meta.json": META}), "it lacks state.bin"),
        (
            _tar({"meta.json": META, "state.bin": STATE}, sums={"meta.json": "0" * 64}),
            "SHA256SUMS does not list state.bin",
        ),
        (
            _tar(
                {"meta.json": META, "state.bin": STATE},
                sums={
                    "meta.json": hashlib.sha256(META).hexdigest(),
                    "state.bin": hashlib.sha256(b"other").hexdigest(),
                },
            ),
            "state.bin does not match its checksum in SHA256SUMS",
        ),
        (
            _tar(
                {"meta.json": META, "state.bin": STATE},
                sums={
                    "meta.json": hashlib.sha256(META).hexdigest(),
                    "state.bin": hashlib.sha256(STATE).hexdigest(),
                    "extra.bin": "1" * 64,
                },
            ),
            "SHA256SUMS line 3 lists 'extra.bin'; a raft snapshot's lists only",
        ),
        (
            _tar({"meta.json": json.dumps({"Index": 1}).encode(), "state.bin": STATE}),
            "meta.json is not a raft snapshot's metadata",
        ),
        (
            _tar(
                {
                    "meta.json": json.dumps({"Index": 1, "Term": 1, "Size": 5}).encode(),
                    "state.bin": STATE,
                }
            ),
            "meta.json says 5",
        ),
    ],
    ids=[
        "not-gzip",
        "not-a-tar",
        "cut-short",
        "no-state",
        "state-unlisted",
        "state-altered",
        "listed-but-absent",
        "meta-incomplete",
        "meta-size-wrong",
    ],
)
def test_an_unsound_snapshot_is_refused_with_the_reason(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(SnapshotError) as err:
        inspect_file(_write(tmp_path, data))
    assert message in str(err.value)


def test_a_link_inside_the_tar_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("state.bin")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(SnapshotError, match=r"'state\.bin' is a symbolic link, not a regular file"):
        inspect_file(_write(tmp_path, buf.getvalue()))


def _manifest(**kw: Any) -> Manifest:
    base: dict[str, Any] = {
        "file": "s.snap",
        "sha256": "a" * 64,
        "bytes": 10,
        "server": "openbao",
        "version": "2.7.2",
        "cluster_id": "c-1",
        "cluster_name": "vault-cluster-1",
        "created": "2026-11-29T00:00:00Z",
        "catalog": "homelab",
        "raft_index": 42,
        "raft_term": 3,
    }
    base.update(kw)
    return Manifest(**base)


def test_a_manifest_round_trips_and_bad_ones_are_named(tmp_path: Path) -> None:
    m = _manifest()
    assert Manifest.from_text(m.to_json(), "m") == m
    cases = {
        "[]": "is not a JSON object",
        "{": "is not JSON",
        json.dumps({**json.loads(m.to_json()), "format": 2}): "has format 2",
        json.dumps({**json.loads(m.to_json()), "key": "x"}): "unknown fields: 'key'",
        json.dumps({**json.loads(m.to_json()), "sha256": "xyz"}): "sha256 is not 64 hex digits",
        json.dumps({**json.loads(m.to_json()), "server": "etcd"}): "server 'etcd'",
        json.dumps({k: v for k, v in json.loads(m.to_json()).items() if k != "version"}): (
            "lacks a field"
        ),
    }
    for text, message in cases.items():
        with pytest.raises(SnapshotError, match=message):
            Manifest.from_text(text, "m")


def test_the_checksum_must_match_the_manifest(tmp_path: Path) -> None:
    path = _write(tmp_path, b"0123456789")
    good = _manifest(sha256=hashlib.sha256(b"0123456789").hexdigest())
    check_bytes(path.read_bytes(), good, str(path))
    with pytest.raises(SnapshotError, match="does not match its manifest"):
        check_bytes(path.read_bytes(), replace(good, sha256="b" * 64), str(path))
    with pytest.raises(SnapshotError, match="has 10 bytes, its manifest says 11"):
        check_bytes(path.read_bytes(), replace(good, bytes=11), str(path))
    assert manifest_path(path).name == "s.snap.manifest.json"


def test_versions_and_servers() -> None:
    assert version_tuple("v2.7.2+ent") == (2, 7, 2)
    assert version_tuple("1.15.0-rc1") == (1, 15, 0)
    assert server_of({"commit_date": "x"}) == "openbao"
    assert server_of({"build_date": "x"}) == "vault"
    m = _manifest(version="2.7.2")
    assert compatibility(m, "openbao", "2.7.2") is None
    assert compatibility(m, "openbao", "2.8.0") is None
    assert "newer than the target's 2.7.1" in (compatibility(m, "openbao", "2.7.1") or "")
    assert "same server kind" in (compatibility(m, "vault", "1.18.0") or "")


# -- the restore plan ----------------------------------------------------------------------


def _record(keys: list[str], *, pgp: bool = False) -> InitRecord:
    return InitRecord(keys, "t", 5, 3, pgp=pgp)


ORIGINAL = _record(["k1", "k2", "k3", "k4", "k5"])
OTHER = _record(["o1", "o2", "o3", "o4", "o5"])
LEADER = "http://127.0.0.1:8200"


def _node(state: str, cluster: str = "", addr: str = LEADER) -> Health:
    return {
        "fresh": Health(addr, 501, "not initialized", False, True, "2.7.2"),
        "sealed": Health(addr, 503, "sealed", True, True, "2.7.2"),
        "active": Health(addr, 200, "active", True, False, "2.7.2", cluster),
    }[state]


def _facts(**kw: Any) -> RestoreFacts:
    base: dict[str, Any] = {
        "request": RestoreRequest(Path("/off/s.snap"), Path("/off/vault-init.json")),
        "manifest": _manifest(cluster_id="c-snap"),
        "contents": None,
        "server": "openbao",
        "nodes": [_node("fresh")],
        "original": ORIGINAL,
        "original_from": "/off/vault-init.json",
        "custody": "file /c/vault-init.json",
        "custody_record": None,
        "throwaway": False,
    }
    base.update(kw)
    from bootstrap.model.snapshot import Contents

    base["contents"] = base["contents"] or Contents(42, 3, 100, ())
    return RestoreFacts(**base)


def _kinds(actions: list[Any]) -> list[str]:
    return [a.kind if a.verb != "problem" else f"problem: {a.reason}" for a in actions]


def test_a_fresh_target_is_restored_in_order() -> None:
    actions = plan_restore(_facts())
    assert _kinds(actions) == [
        "InstallCustody",
        "InitThrowaway",
        "RestoreSnapshot",
        "UnsealOriginal",
        "DiscardThrowaway",
        "Action",
    ]
    assert actions[-1].verb == "check" and "re-points kubernetes auth" in actions[-1].reason
    init = next(a for a in actions if isinstance(a, InitThrowaway))
    assert (init.shares, init.threshold) == (5, 3)  # the original's: see InitThrowaway
    assert isinstance(actions[0], InstallCustody) and not actions[0].aside
    assert all(a.changes for a in actions[:-1])


@pytest.mark.parametrize(
    ("facts", "kinds"),
    [
        # killed after the throwaway init or the restore: apply tells which by the keys
        (
            {"nodes": [_node("sealed")], "throwaway": True, "custody_record": ORIGINAL},
            ["RestoreSnapshot", "UnsealOriginal", "DiscardThrowaway", "Action"],
        ),
        # unsealed with the throwaway keys, restore not sent yet
        (
            {"nodes": [_node("active", "c-tmp")], "throwaway": True, "custody_record": ORIGINAL},
            ["RestoreSnapshot", "UnsealOriginal", "DiscardThrowaway", "Action"],
        ),
        # restored and open, throwaway record still there
        (
            {"nodes": [_node("active", "c-snap")], "throwaway": True, "custody_record": ORIGINAL},
            ["DiscardThrowaway"],
        ),
        # done
        ({"nodes": [_node("active", "c-snap")], "custody_record": ORIGINAL}, []),
        # restored earlier, sealed since (a restart): the original keys open it
        ({"nodes": [_node("sealed")], "custody_record": ORIGINAL}, ["UnsealOriginal"]),
    ],
)
def test_every_partial_state_plans_only_what_is_left(
    facts: dict[str, Any], kinds: list[str]
) -> None:
    assert _kinds(plan_restore(_facts(**facts))) == kinds


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"original": None}, "missing original keys"),
        ({"original": _record(["x"], pgp=True)}, "PGP-encrypted"),
        ({"custody_record": OTHER}, "holds the init record of another Vault"),
        (
            {"nodes": [_node("active", "c-other")], "custody_record": ORIGINAL, "holds": "kv/"},
            "already holds data (kv/); refusing",
        ),
        (
            {
                "nodes": [_node("active", "c-other")],
                "custody_record": ORIGINAL,
                "request": RestoreRequest(Path("/s"), force=True),
            },
            "needs its root token",
        ),
        ({"manifest": _manifest(version="2.9.0")}, "newer than the target's 2.7.2"),
        ({"server": "vault"}, "same server kind"),
        (
            {"nodes": [_node("fresh"), _node("sealed", addr="http://127.0.0.1:8202")]},
            "not initialized, but http://127.0.0.1:8202 are",
        ),
    ],
)
def test_what_must_not_be_done_is_a_problem(facts: dict[str, Any], message: str) -> None:
    actions = plan_restore(_facts(**facts))
    assert [a.verb for a in actions] == ["problem"], actions
    assert message in actions[0].reason


def test_force_sets_custody_aside_and_says_what_it_destroys() -> None:
    forced = RestoreRequest(Path("/s"), Path("/k"), force=True)
    aside = plan_restore(_facts(custody_record=OTHER, request=forced))
    assert isinstance(aside[0], InstallCustody) and aside[0].aside
    over = plan_restore(
        _facts(
            nodes=[_node("active", "c-other")],
            custody_record=ORIGINAL,
            holds="secrets engines kv/",
            env_token=True,
            request=forced,
        )
    )
    assert _kinds(over) == ["RestoreSnapshot", "UnsealOriginal"]
    restore = over[0]
    assert isinstance(restore, RestoreSnapshot) and restore.credential == "environment"
    assert restore.verb == "delete" and "DESTROYS what it holds (secrets engines kv/)" in (
        restore.reason
    )
    assert isinstance(over[1], UnsealOriginal)
    assert not any(isinstance(a, DiscardThrowaway) for a in over)


# -- checking a snapshot file before a restore ------------------------------------------------


def _with_manifest(path: Path, **kw: Any) -> Path:
    data = path.read_bytes()
    m = _manifest(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), **kw)
    manifest_path(path).write_text(m.to_json())
    return path


def test_check_snapshot_needs_the_file_and_its_manifest(tmp_path: Path) -> None:
    from bootstrap.phases.dr_restore import check_snapshot

    with pytest.raises(SnapshotError, match="does not exist or is not a file"):
        check_snapshot(RestoreRequest(tmp_path / "none.snap"))
    path = _write(tmp_path, _tar({"meta.json": META, "state.bin": STATE}))
    with pytest.raises(SnapshotError, match="has no manifest beside it"):
        check_snapshot(RestoreRequest(path))
    checked = check_snapshot(RestoreRequest(_with_manifest(path)))
    assert checked.contents.index == 42 and checked.manifest.raft_index == 42


def test_an_age_encrypted_snapshot_needs_a_matching_identity(tmp_path: Path) -> None:
    import pyrage

    from bootstrap.phases.dr_restore import check_snapshot

    me, other = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    sealed = pyrage.encrypt(_tar({"meta.json": META, "state.bin": STATE}), [me.to_public()])
    path = _with_manifest(_write(tmp_path, sealed), encryption="age", recipients=1)
    with pytest.raises(SnapshotError, match="give an identity file with --age-identity"):
        check_snapshot(RestoreRequest(path))
    (tmp_path / "other.key").write_text(f"{other}\n")
    with pytest.raises(SnapshotError, match="cannot be decrypted with the identities given"):
        check_snapshot(RestoreRequest(path, age_identities=(tmp_path / "other.key",)))
    (tmp_path / "empty.key").write_text("# no key here\n")
    with pytest.raises(SnapshotError, match="no age identity"):
        check_snapshot(RestoreRequest(path, age_identities=(tmp_path / "empty.key",)))
    (tmp_path / "me.key").write_text(f"# created: today\n{me}\n")
    checked = check_snapshot(RestoreRequest(path, age_identities=(tmp_path / "me.key",)))
    assert checked.contents.state_bytes == len(STATE)


# -- issue 23, finding 7 ------------------------------------------------------------------------


def _ctx(request: RestoreRequest) -> Any:
    from bootstrap.model.catalog import load_catalog
    from bootstrap.model.settings import Settings
    from bootstrap.phases.pipeline import RunContext
    from tests.conftest import EXAMPLE

    return RunContext(settings=Settings(), catalog=load_catalog(EXAMPLE), restore=request)


def test_issue_23_finding_7_the_bytes_checked_are_the_bytes_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hash once, restore those bytes: the snapshot (and its manifest) swapped for another
    sound one after the check, at the last moment before the send, changes nothing; the
    restore sends the bytes checked, never the file's new ones."""
    from bootstrap.clients import vault
    from bootstrap.core.waits import WaitSettings
    from bootstrap.phases import dr_restore
    from bootstrap.runtime import credentials

    path = _with_manifest(_write(tmp_path, _tar({"meta.json": META, "state.bin": STATE})))
    ctx = _ctx(RestoreRequest(path))
    checked = dr_restore.verified(ctx)
    assert checked.payload == path.read_bytes()
    other_state = b"another cluster's state " * 50
    other_meta = json.dumps({"Index": 42, "Term": 3, "Size": len(other_state)}).encode()
    other = _tar({"meta.json": other_meta, "state.bin": other_state})
    sent: list[bytes] = []

    def swap_then_wait(*args: Any, **kwargs: Any) -> None:
        path.write_bytes(other)  # swapped between the check and the send
        _with_manifest(path)

    monkeypatch.setattr(dr_restore, "wait_for", swap_then_wait)
    monkeypatch.setattr(credentials, "env_token", lambda: "env-token")
    monkeypatch.setattr(credentials, "forget_env_token", lambda: None)
    monkeypatch.setattr(
        vault, "restore_snapshot", lambda addr, token, data, force: sent.append(data)
    )
    dr_restore.DrRestore()._restore(
        ctx, dr_restore.verified(ctx), "http://127.0.0.1:1", "environment", WaitSettings()
    )
    assert path.read_bytes() == other  # the file did change
    assert sent == [checked.payload]  # what was sent is what was checked
    assert dr_restore.verified(ctx) is checked  # and the run never reads the file again


def test_issue_23_finding_7_force_never_skips_the_server_kind() -> None:
    """--force replaces a Vault holding data and sets custody aside; it does not make a
    HashiCorp Vault snapshot restorable onto OpenBao (nor an older server take a newer one)."""
    forced = RestoreRequest(Path("/s"), Path("/k"), force=True)
    for facts, message in (
        ({"server": "vault"}, "same server kind"),
        ({"manifest": _manifest(version="2.9.0")}, "newer than the target's 2.7.2"),
    ):
        actions = plan_restore(_facts(request=forced, **facts))
        assert [a.verb for a in actions] == ["problem"], actions
        assert message in actions[0].reason


def test_issue_23_finding_7_a_restore_plan_with_a_problem_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dr.restore --plan`` printing a ``problem`` line fails (exit 1), naming it."""
    from invoke.config import Config
    from invoke.context import Context
    from invoke.exceptions import Exit

    import tasks
    from bootstrap.phases.pipeline import PhaseResult
    from bootstrap.phases.registry import registered  # noqa: F401 - the task imports it too

    snap = _with_manifest(_write(tmp_path, _tar({"meta.json": META, "state.bin": STATE}), "s.snap"))
    results = [
        PhaseResult("preflight", "planned", [], 0.1, None, 0.0),
        PhaseResult(
            "dr-restore",
            "planned",
            [problem_action("unseal keys", "missing original keys: custody holds no record")],
            0.1,
            None,
            0.0,
        ),
    ]
    from bootstrap.cli import run as run_cli

    monkeypatch.setattr(run_cli, "phases", lambda *a, **k: results)
    context = Context(Config(overrides={"bootstrap": dict(tasks.DEFAULTS["bootstrap"])}))
    with pytest.raises(Exit) as info:
        tasks.dr_restore(context, snapshot=str(snap), plan=True)
    assert info.value.code == 1
    assert "the plan has 1 problem(s): unseal keys: missing original keys" in str(
        info.value.message
    )
    results[1] = PhaseResult("dr-restore", "planned", [], 0.1, None, 0.0)
    tasks.dr_restore(context, snapshot=str(snap), plan=True)  # no problem: exit 0


def problem_action(target: str, reason: str) -> Any:
    from bootstrap.model.actions import problem

    return problem(target, reason)


def test_issue_23_finding_7_a_64_gib_sparse_member_is_refused_from_its_header(
    tmp_path: Path,
) -> None:
    """A 276-byte-ish GNU sparse member claiming 64 GiB took 73 s of CPU to refuse; now its
    header refuses it (the corpus times it: tests/corpus/snapshots/007-*)."""
    from tests.drcorpus import build

    data = build(
        {
            "members": [
                "meta.json",
                {"name": "state.bin", "type": "sparse", "gnu": True, "size": 64 << 30, "data": ""},
            ]
        }
    )
    assert len(data) < 400
    with pytest.raises(SnapshotError, match=r"'state\.bin' is a GNU sparse file"):
        inspect_file(_write(tmp_path, data))
