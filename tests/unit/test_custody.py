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
