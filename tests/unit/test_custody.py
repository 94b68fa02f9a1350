"""Key custody on the file system: a location is proven writable before initialization, one
taken by something else is reported, and a record custody refuses is never dropped."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bootstrap.core.errors import VaultStateError
from bootstrap.runtime.custody import FileCustody, InitRecord, keep_safe, rescued

RECORD = InitRecord(["k1", "k2", "k3"], "root-token-value", 3, 2, vault_addr="http://v:8200")


def test_probe_proves_a_location_writable_and_leaves_nothing(tmp_path: Path) -> None:
    custody = FileCustody(tmp_path / "custody" / "vault-init.json")
    custody.probe()
    assert list((tmp_path / "custody").iterdir()) == []
    assert stat.S_IMODE((tmp_path / "custody").stat().st_mode) == 0o700


def test_probe_refuses_a_location_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    custody = FileCustody(tmp_path / "a-file" / "vault-init.json")
    with pytest.raises(VaultStateError, match=r"cannot be written: .*a-file is not a folder"):
        custody.probe()


def test_occupied_says_when_the_location_holds_no_record(tmp_path: Path) -> None:
    path = tmp_path / "vault-init.json"
    custody = FileCustody(path)
    assert custody.occupied() is None
    path.write_text("not json")
    assert "holds no readable init record" in (custody.occupied() or "")
    path.unlink()
    path.mkdir()
    assert "is not a file" in (custody.occupied() or "")
    path.rmdir()
    custody.store(RECORD)
    assert custody.occupied() is None and custody.load() == RECORD


def test_a_record_custody_refuses_goes_to_a_rescue_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "a-file").write_text("x")
    custody = FileCustody(tmp_path / "a-file" / "vault-init.json")
    sleeps: list[float] = []
    with pytest.raises(VaultStateError) as err:
        keep_safe(custody, RECORD, tmp_path / "state", sleep=sleeps.append)
    assert sleeps == [0.5, 1.0]  # three attempts
    (rescue,) = rescued(tmp_path / "state")
    assert str(rescue) in str(err.value) and "move it into custody" in str(err.value)
    assert stat.S_IMODE(rescue.stat().st_mode) == 0o600
    assert json.loads(rescue.read_text())["unseal_keys_b64"] == ["k1", "k2", "k3"]
    assert "root-token-value" not in str(err.value) and "k1" not in str(err.value)


def test_when_no_rescue_file_can_be_written_the_error_says_the_keys_are_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("HOME", str(tmp_path / "a-file"))
    custody = FileCustody(tmp_path / "a-file" / "vault-init.json")
    with pytest.raises(VaultStateError, match="unseal keys are lost"):
        keep_safe(custody, RECORD, tmp_path / "a-file" / "state", sleep=lambda s: None)


def test_a_stored_record_is_never_overwritten(tmp_path: Path) -> None:
    custody = FileCustody(tmp_path / "vault-init.json")
    custody.store(RECORD)
    with pytest.raises(VaultStateError, match="refusing to overwrite"):
        custody.store(InitRecord(["x"], "other", 1, 1))
    assert custody.load() == RECORD
    assert [p.name for p in tmp_path.iterdir()] == ["vault-init.json"]  # no temp files left


def test_set_aside_moves_the_record_and_its_extras_and_deletes_nothing(tmp_path: Path) -> None:
    custody = FileCustody(tmp_path / "custody" / "vault-init.json")
    custody.store(RECORD)
    custody.store_extra("admin", {"token": "admin-token"})
    where = custody.set_aside("20261129T000000", ("admin", "root-revoked"))
    assert custody.load() is None and custody.load_extra("admin") is None
    kept = FileCustody(Path(where) / "vault-init.json")
    assert kept.load() == RECORD
    assert kept.load_extra("admin") == {"token": "admin-token"}
    assert stat.S_IMODE(Path(where).stat().st_mode) == 0o700
    # a new record can go in now, and setting aside again (a re-run) moves only what is there
    custody.store(InitRecord(["n1"], "r", 1, 1))
    again = custody.set_aside("20261129T000001", ("admin",))
    assert FileCustody(Path(again) / "vault-init.json").load() is not None
    assert kept.load() == RECORD  # the first one untouched


def test_write_private_writes_bytes_atomically_and_never_replaces_without_overwrite(
    tmp_path: Path,
) -> None:
    from bootstrap.runtime.custody import write_private

    target = tmp_path / "new" / "snap.bin"
    write_private(target, b"\x00\x01binary", overwrite=False)
    assert target.read_bytes() == b"\x00\x01binary"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(VaultStateError, match="refusing to overwrite"):
        write_private(target, b"other", overwrite=False)
    write_private(target, "text", overwrite=True)
    assert target.read_text() == "text"
    assert [p.name for p in target.parent.iterdir()] == ["snap.bin"]  # no temporary left


# -- issue 23, finding 8 ------------------------------------------------------------------------


def test_issue_23_finding_8_a_bad_record_writes_nothing_and_the_right_keys_then_pass(
    tmp_path: Path,
) -> None:
    """The sequence of the finding: a --keys record with 10^6 shares and threshold 0 was
    written into custody before the throwaway init failed, and the right keys were then
    refused as "another Vault" until --force. Now it is refused before custody is touched
    (through the task, in-process), and the right keys then plan a plain install."""
    from invoke.config import Config
    from invoke.context import Context
    from invoke.exceptions import Exit

    import tasks
    from bootstrap.model.snapshot import RestoreRequest
    from bootstrap.phases.dr_restore import InstallCustody, load_original, plan_restore
    from tests.drcorpus import build, write_record, write_snapshot
    from tests.unit.test_snapshot import _facts

    snap = write_snapshot(tmp_path / "offsite", build({}))
    good = write_record(tmp_path / "offsite" / "vault-init.json")
    bad = tmp_path / "offsite" / "bad.json"
    record = json.loads(good.read_text())
    bad.write_text(json.dumps({**record, "shares": 1_000_000, "threshold": 0}))
    custody_file = tmp_path / "custody" / "vault-init.json"
    config = dict(tasks.DEFAULTS["bootstrap"])
    config.update(state_dir=str(tmp_path / "state"), custody_file=str(custody_file))
    context = Context(Config(overrides={"bootstrap": config}))
    with pytest.raises(Exit) as info:
        tasks.dr_restore(context, snapshot=str(snap), keys=str(bad))
    assert info.value.code == 1
    assert f"init record {bad}: shares 1000000 is outside OpenBao's limits" in str(
        info.value.message
    )
    assert not custody_file.parent.exists() and not (tmp_path / "state").exists()
    # the right keys next: custody is empty, so they are installed, not "another Vault"
    custody = FileCustody(custody_file)
    original, where = load_original(RestoreRequest(snap, good), custody)
    assert original is not None and where == str(good)
    assert custody.load() is None
    actions = plan_restore(_facts(original=original, custody_record=custody.load()))
    assert isinstance(actions[0], InstallCustody) and not actions[0].aside
    assert all(a.verb != "problem" for a in actions)


def test_issue_23_finding_8_records_are_checked_on_every_load(tmp_path: Path) -> None:
    """A record in custody is checked whenever it is read (the file, or a Secret): shares
    and threshold within OpenBao's limits, keys counted, no unknown field; plain keys are
    then checked unseal keys before use; PGP-encrypted ones are not decoded."""
    path = tmp_path / "vault-init.json"
    path.write_text(json.dumps({**json.loads(RECORD.to_json()), "threshold": 0}))
    with pytest.raises(VaultStateError, match="threshold 0 is outside 1 to its shares"):
        FileCustody(path).load()
    assert "holds no readable init record" in (FileCustody(path).occupied() or "")
    path.write_text(RECORD.to_json())
    loaded = FileCustody(path).load()
    assert loaded == RECORD
    with pytest.raises(VaultStateError, match=r"unseal key #1 is not an unseal key"):
        loaded.check_keys(str(path))  # "k1" is not base64 of an unseal key
    pgp = InitRecord(["wcBMA" + "A" * 600, "wcBMA" + "B" * 600], "enc", 2, 2, pgp=True)
    assert InitRecord.from_json(pgp.to_json(), "x") == pgp
    pgp.check_keys("x")  # encrypted: not decoded here
    from tests.drcorpus import good_keys

    plain = InitRecord(good_keys(3), "root", 3, 2)
    InitRecord.from_json(plain.to_json(), "x").check_keys("x")


def test_issue_23_finding_8_an_unseal_keys_file_is_read_bounded_and_checked(
    tmp_path: Path,
) -> None:
    from bootstrap.runtime.custody import read_unseal_keys
    from tests.drcorpus import good_keys

    keys = good_keys(3)
    path = tmp_path / "keys.txt"
    path.write_text("\n".join([keys[0], "", keys[1], keys[2]]) + "\n")
    assert read_unseal_keys(path) == keys
    hexed = tmp_path / "hex.txt"
    hexed.write_text("ab" * 33 + "\n")
    assert read_unseal_keys(hexed) == ["ab" * 33]  # OpenBao takes hex keys too
    big = tmp_path / "big.txt"
    big.write_bytes(b"A" * (1 << 20))
    with pytest.raises(VaultStateError, match="more than the 65536 expected"):
        read_unseal_keys(big)
