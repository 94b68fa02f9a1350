"""Listening ports for sandboxes: distinct, free, and reserved across processes for a while
(two sandboxes starting side by side must never be handed the same port)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from bootstrap.clients import procs


@pytest.fixture
def reservations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "ports"
    monkeypatch.setattr(procs, "_reservations", lambda: folder)
    return folder


def test_ports_are_distinct_free_and_outside_the_ephemeral_range(reservations: Path) -> None:
    ports = procs.free_ports(12)
    assert len(set(ports)) == 12
    low, high = procs._ephemeral_range()
    assert not [p for p in ports if low <= p <= high]
    for p in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))  # nothing holds them


def test_a_port_handed_out_is_not_handed_out_again_while_reserved(reservations: Path) -> None:
    first = set(procs.free_ports(50))
    second = set(procs.free_ports(50))
    assert not first & second
    assert {int(p.name) for p in reservations.iterdir() if p.name.isdigit()} == first | second


def test_another_process_s_reservation_is_respected_until_it_expires(
    reservations: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    low, high = procs.LISTEN_PORTS
    eph_low, eph_high = procs._ephemeral_range()
    pool = [p for p in range(low, high) if not eph_low <= p <= eph_high]
    keep = pool[:3]
    reservations.mkdir()
    for p in pool[3:]:
        (reservations / str(p)).write_text("4242\n")  # another process's, fresh
    old = time.time() - procs.RESERVE_SECONDS - 1
    os.utime(reservations / str(pool[-1]), (old, old))  # one expired
    got = set(procs.free_ports(4))
    expected = {p for p in [*keep, pool[-1]] if _free(p)}
    assert got <= expected | {p for p in got if not low <= p < high}
    assert pool[-1] in got or not _free(pool[-1])


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
