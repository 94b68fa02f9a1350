"""The unit tests' guard (tests/unit/conftest.py) trips on every way out: a socket connect to
anything, an HTTP client, subprocess, os.system/exec*/spawn*/fork, asyncio subprocesses; and a
call the code under test swallowed still fails the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.unit.conftest import ImpureCall, Purity

WAYS_OUT: list[tuple[str, Callable[[], Any]]] = [
    ("socket.connect", lambda: socket.socket().connect(("127.0.0.1", 9))),
    ("socket.connect", lambda: socket.socket(socket.AF_UNIX).connect("/nowhere")),
    ("socket.connect_ex", lambda: socket.socket().connect_ex(("127.0.0.1", 9))),
    ("socket.create_connection", lambda: socket.create_connection(("localhost", 9))),
    ("socket.connect", lambda: requests.get("http://127.0.0.1:9/", timeout=1)),
    ("subprocess.Popen", lambda: subprocess.run(["true"], check=False)),
    ("subprocess.Popen", lambda: subprocess.check_output([sys.executable, "-V"])),
    ("os.system", lambda: os.system("true")),  # noqa: S605
    ("os.popen", lambda: os.popen("true")),  # noqa: S605
    ("os.execv", lambda: os.execv("/bin/true", ["true"])),  # noqa: S606
    ("os.execvpe", lambda: os.execvpe("true", ["true"], {})),  # noqa: S606
    ("os.spawnlp", lambda: os.spawnlp(os.P_WAIT, "true", "true")),  # noqa: S606
    ("os.fork", lambda: os.fork()),  # looked up at call time, as code under test does
    ("os.posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], {})),
    ("asyncio.create_subprocess_exec", lambda: asyncio.run(_exec())),
    ("asyncio.create_subprocess_shell", lambda: asyncio.run(_shell())),
    ("loop.subprocess_exec", lambda: asyncio.run(_loop_exec())),
]


async def _exec() -> None:
    await asyncio.create_subprocess_exec("true")


async def _shell() -> None:
    await asyncio.create_subprocess_shell("true")


async def _loop_exec() -> None:
    await asyncio.get_running_loop().subprocess_exec(asyncio.SubprocessProtocol, "true")


@pytest.mark.parametrize(
    ("what", "call"), WAYS_OUT, ids=[f"{w}-{i}" for i, (w, _) in enumerate(WAYS_OUT)]
)
def test_every_way_out_is_refused(purity: Purity, what: str, call: Callable[[], Any]) -> None:
    with pytest.raises(ImpureCall, match="unit tests are pure"):
        call()
    assert len(purity.refused) == 1 and purity.refused[0].startswith(what + "("), purity.refused
    purity.refused.clear()  # seen: this test wanted it


def test_a_swallowed_refusal_still_fails_the_test(purity: Purity) -> None:
    with contextlib.suppress(BaseException):  # what careless code under test might do
        subprocess.run(["true"], check=False)
    with pytest.raises(
        pytest.fail.Exception, match=r"this one called: subprocess\.Popen\(\['true'\]\)"
    ):
        purity.verdict()
    purity.refused.clear()


def test_a_pure_test_passes_the_guard(purity: Purity) -> None:
    socket.socket().close()  # making a socket is not reaching out
    purity.verdict()
    assert purity.refused == []
