from __future__ import annotations

from bootstrap.status import classify


def test_classify() -> None:
    vault = {"user": "app", "password": "pw"}
    assert classify(vault, None) == "missing"
    assert classify(vault, {"user": b"bootstrap-placeholder:app/db/user", "password": b"pw"}) == (
        "placeholder"
    )
    assert classify(vault, {}) == "placeholder"
    assert classify(vault, {"user": b"app", "password": b"pw"}) == "synced"
    assert classify(vault, {"user": b"app", "password": b"old"}) == "stale"
