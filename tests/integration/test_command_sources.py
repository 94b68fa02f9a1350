"""Command sources run real programs: their output (UTF-8, or base64 for bytes), exit codes,
a clean environment without tokens or the kubeconfig, the output cap and the timeout; and the
example catalog's sources with the demo values, as the README's first command resolves them.

Issue 23, finding 1: a command is a program inside the catalog's folder, run as user nobody
when the bootstrap is root (the custody file and the state folder out of its reach), and the
bootstrap makes itself non-dumpable first, so that even a command of its own user reads
nothing of the run's environment in /proc. Each program here sits in a folder every user can
reach (pytest's own temporary folders are root's, 0700)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import Source, load_catalog
from bootstrap.model.domain import kv_secrets
from bootstrap.runtime.sources import NOBODY, SourceError, resolve, run_command
from tests.conftest import EXAMPLE, ROOT
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, bootstrap_cli, demo_env, service_catalog_text

BINARY = bytes(range(256)) + b"\n"
AS_ROOT = os.geteuid() == 0


def no_vault(path: str, key: str) -> str | None:
    return None


@pytest.fixture
def folder() -> Iterator[Path]:
    """A catalog's folder that user nobody can reach and read (mode 0755, under /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="csb-commands-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def program(folder: Path, name: str, body: str) -> str:
    """A shell script ``name`` in ``folder`` (0755); returns its argv[0] ('./name')."""
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return f"./{name}"


def command(*argv: str, encoding: str | None = None) -> Source:
    return Source(command=list(argv), encoding=encoding)


def run(src: Source, folder: Path) -> str:
    return resolve(src, folder, no_vault, commands="allow")


def test_command(folder: Path) -> None:
    assert run(command(program(folder, "abc", "printf 'abc\\n'")), folder) == "abc"
    with pytest.raises(SourceError, match="exited 1"):
        run(command(program(folder, "fails", "exit 1")), folder)
    with pytest.raises(SourceError, match=r"No such file or directory in the catalog.s folder"):
        run(command("./no-such-command-here"), folder)
    with pytest.raises(SourceError, match="bare name, which would be looked up in PATH"):
        run(command("printf", "abc"), folder)


def test_binary_command_output_needs_encoding_base64(folder: Path) -> None:
    (folder / "blob").write_bytes(BINARY)
    (folder / "blob").chmod(0o644)
    cat = program(folder, "blob-out", "cat blob")
    with pytest.raises(SourceError, match=r"command \./blob-out: content is not UTF-8 text"):
        run(command(cat), folder)
    assert base64.b64decode(run(command(cat, encoding="base64"), folder)) == BINARY


def test_commands_get_a_clean_environment(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-for-commands")
    monkeypatch.setenv("BAO_TOKEN", "s.not-for-commands")
    monkeypatch.setenv("KUBECONFIG", "/tmp/kubeconfig-not-for-commands")
    monkeypatch.setenv("INVOKE_BOOTSTRAP_CUSTODY_FILE", "/tmp/custody")
    monkeypatch.setenv("PATH", "/tmp/not-for-commands:" + os.environ["PATH"])
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    printed = run(command(program(folder, "env", "exec env")), folder)
    variables = dict(line.split("=", 1) for line in printed.splitlines())
    assert "not-for-commands" not in printed
    assert set(variables) <= {"PATH", "HOME", "LANG", "PWD"} | {
        n for n in variables if n.startswith("LC_")
    }
    assert variables["PATH"] == "/usr/bin:/bin" and variables["LC_ALL"] == "C.UTF-8"
    assert variables["PWD"] == str(folder)


def test_command_output_over_the_cap_is_an_error_without_a_partial_value(folder: Path) -> None:
    # 'yes' would print forever: the cap stops it, and nothing of its output is kept.
    with pytest.raises(SourceError, match="printed more than 1048576 bytes; nothing kept"):
        run(command(program(folder, "yes", "exec yes y")), folder)
    eleven = program(folder, "eleven", "printf 0123456789a")
    with pytest.raises(SourceError, match="printed more than 10 bytes"):
        run_command([eleven], folder, limit=10)
    assert run_command([program(folder, "ten", "printf 0123456789")], folder, limit=10) == (
        "0123456789"
    )


def test_a_command_past_its_timeout_is_stopped(folder: Path) -> None:
    with pytest.raises(SourceError, match=r"TimeoutExpired after 0\.2s"):
        run_command([program(folder, "sleeps", "exec sleep 30")], folder, timeout=0.2)
    # A command that closes its output but keeps running is stopped too.
    with pytest.raises(SourceError, match="TimeoutExpired"):
        run_command([program(folder, "closes", "exec >&-; sleep 30")], folder, timeout=0.2)


def test_the_example_catalogs_sources_resolve_with_the_demo_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the README's first command does: env sources from examples/demo.env, file and
    command sources beside the catalog, commands in their clean environment (the setting
    catalog_commands: allow comes from demo.env too)."""
    for name in list(os.environ):
        if name not in ("PATH", "HOME", "LANG") and not name.startswith("LC_"):
            monkeypatch.delenv(name)
    env = demo_env()
    assert env["INVOKE_BOOTSTRAP_CATALOG_COMMANDS"] == "allow"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cat = load_catalog(EXAMPLE)
    resolved = 0
    for _, keys in kv_secrets(cat):
        for src in keys.values():
            if src is not None and src.generate is None:
                assert resolve(src, EXAMPLE.parent, no_vault, commands="allow")
                resolved += 1
    assert resolved >= 10


# -- issue 23, finding 1: what a command can reach -------------------------------------------


@pytest.mark.skipif(not AS_ROOT, reason="the bootstrap runs as root only where the tests do")
def test_issue_23_finding_1_as_root_a_command_runs_as_nobody(folder: Path, tmp_path: Path) -> None:
    """A root-owned 0600 file (as the custody file is) and the state folder are unreadable to
    the command: it runs as nobody, group nogroup, no other group."""
    secret = tmp_path / "custody.json"
    secret.write_text("not-for-commands", encoding="utf-8")
    secret.chmod(0o600)
    probe = program(
        folder,
        "probe",
        f"echo uid=$(id -u) gid=$(id -g) groups=$(id -G)\n"
        f"cat {secret} 2>/dev/null || echo custody-unreadable\n"
        f"ls {tmp_path} 2>/dev/null || echo state-unreadable",
    )
    printed = run(command(probe), folder)
    assert f"uid={NOBODY} gid={NOBODY} groups={NOBODY}" in printed
    assert "not-for-commands" not in printed
    assert "custody-unreadable" in printed and "state-unreadable" in printed


def test_issue_23_finding_1_the_bootstrap_is_sealed_from_its_own_users_commands(
    folder: Path,
) -> None:
    """A bootstrap of an ordinary user (here: nobody, the system's python3.11 with the
    product on its path) runs a command of the same user that reads /proc/$PPID/environ: it
    gets nothing, because run_command made the bootstrap non-dumpable first. The same
    program with the seal skipped prints the canary, so the probe is a real one."""
    python = shutil.which("python3.11", path="/usr/bin:/bin")
    assert python, "the system's python3.11 runs the unprivileged bootstrap"
    probe = program(
        folder,
        "probe",
        "tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null | grep CANARY || echo nothing-read",
    )
    driver = folder / "driver.py"
    driver.write_text(
        "import sys\nfrom pathlib import Path\nfrom bootstrap.runtime import sources\n"
        "if sys.argv[2] == 'unsealed':\n    sources.seal_process = lambda: None\n"
        f"print(sources.run_command([{probe!r}], Path(sys.argv[1])))\n",
        encoding="utf-8",
    )
    driver.chmod(0o644)
    env = {
        "CANARY_TOKEN": "canary-of-the-run",
        "PYTHONPATH": f"{ROOT}:{sysconfig.get_paths()['purelib']}",
        "PATH": "/usr/bin:/bin",
    }
    kwargs: dict[str, Any] = (
        {"user": NOBODY, "group": NOBODY, "extra_groups": []} if AS_ROOT else {}
    )

    def bootstrap(mode: str) -> str:
        done: subprocess.CompletedProcess[str] = subprocess.run(
            [python, str(driver), str(folder), mode],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            **kwargs,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert "CANARY_TOKEN=canary-of-the-run" in bootstrap("unsealed")
    sealed = bootstrap("sealed")
    assert "canary-of-the-run" not in sealed and "nothing-read" in sealed


def test_issue_23_finding_1_a_catalogs_command_reads_neither_custody_nor_the_runs_environment(
    box: Box, first_run: dict[str, Any], unique: str, folder: Path, tmp_path: Path
) -> None:
    """Through the CLI on the sandbox, as the finding's attacker: a program in the catalog's
    folder tries the custody file, the bootstrap's environment and the state folder; the
    value it leaves in Vault holds none of them."""
    p = f"cmd{unique}"
    custody = box.settings().custody_file
    assert custody is not None
    state = tmp_path / "state"
    canary = f"canary-{unique}-of-the-run"
    probe = program(
        folder,
        "probe",
        "echo uid=$(id -u)\n"
        f"echo custody=$(cat {custody} 2>/dev/null | head -c 300)\n"
        "echo environ=$(tr '\\0' ' ' < /proc/$PPID/environ 2>/dev/null | head -c 8000)\n"
        f"echo state=$(ls {state} {state}/custody 2>/dev/null | head -c 300)",
    )
    catalog = folder / "catalog.yaml"
    catalog.write_text(service_catalog_text(p, {"config": {"probe": f"{{command: [{probe}]}}"}}))
    catalog.chmod(0o644)
    env = {
        **first_run["env"],
        "INVOKE_BOOTSTRAP_STATE_DIR": str(state),
        "BOOTSTRAP_TEST_CANARY": canary,
    }
    done = bootstrap_cli(env, "--only", "populate", "--catalog", str(catalog), timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    value = read_kv(admin_api(box), f"{p}/config")[0]["probe"]
    lines = dict(line.split("=", 1) for line in value.splitlines())
    if AS_ROOT:
        assert lines["uid"] == str(NOBODY)
    assert lines["custody"] == "" and lines["environ"] == "" and lines["state"] == ""
    record = json.loads(custody.read_text(encoding="utf-8"))
    secrets = [record["root_token"], *record["unseal_keys_b64"], canary]
    secrets += [v for v in demo_env().values() if v.startswith("demo-")]
    for secret in secrets:
        assert secret not in value
