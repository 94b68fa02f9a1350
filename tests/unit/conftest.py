"""Unit tests are pure: no network, no processes. An autouse guard replaces every way out
(socket connects, subprocess, os.system/exec*/spawn*/fork, asyncio subprocesses) with a
refusal that raises and is recorded; a recorded refusal fails the test even when the code
under test swallowed the exception. A test that really needs a process or a socket belongs in
tests/integration."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest


class ImpureCall(BaseException):
    """A unit test reached for the network or a process. Not an ``Exception``: the code under
    test's ``except Exception`` cannot hide it."""


class Purity:
    """The guard of one unit test: what it refused, and how."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def refusal(self, what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            shown = ", ".join([*(repr(a)[:80] for a in args), *(f"{k}=..." for k in kwargs)])
            call = f"{what}({shown})"
            self.refused.append(call)
            raise ImpureCall(
                f"unit tests are pure: {call} reaches for the network or a process "
                "(move the test to tests/integration)"
            )

        return refuse

    def async_refusal(self, what: str) -> Callable[..., Any]:
        refuse = self.refusal(what)

        async def refuse_async(*args: Any, **kwargs: Any) -> Any:
            return refuse(*args, **kwargs)

        return refuse_async

    def verdict(self) -> None:
        """Fail the test if it reached out, even if what it called swallowed the refusal."""
        if self.refused:
            pytest.fail(
                "unit tests are pure, but this one called: " + "; ".join(self.refused),
                pytrace=False,
            )


#: os functions that start a program or a process.
OS_CALLS = [
    "system",
    "popen",
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    *(n for n in dir(os) if n.startswith(("exec", "spawn"))),
]


@pytest.fixture(autouse=True)
def purity(monkeypatch: pytest.MonkeyPatch) -> Iterator[Purity]:
    guard = Purity()
    monkeypatch.setattr(socket.socket, "connect", guard.refusal("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", guard.refusal("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", guard.refusal("socket.create_connection"))
    # where Popen starts the program (run, check_output, asyncio's transports all come here),
    # so that a refused Popen is never half-built
    popen = guard.refusal("subprocess.Popen")
    monkeypatch.setattr(subprocess.Popen, "_execute_child", lambda self, args, *rest: popen(args))
    for name in OS_CALLS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, guard.refusal(f"os.{name}"))
    for name in ("create_subprocess_exec", "create_subprocess_shell"):
        monkeypatch.setattr(asyncio, name, guard.async_refusal(f"asyncio.{name}"))
        monkeypatch.setattr(asyncio.subprocess, name, guard.async_refusal(f"asyncio.{name}"))
    for name in ("subprocess_exec", "subprocess_shell"):
        monkeypatch.setattr(
            asyncio.base_events.BaseEventLoop, name, guard.async_refusal(f"loop.{name}")
        )
    yield guard
    guard.verdict()
