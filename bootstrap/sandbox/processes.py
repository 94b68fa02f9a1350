"""The sandbox's processes: what is recorded of each (to stop or restart it, and to say it
is still ours), the environment they start with, and the probes that say they serve."""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.clients import procs
from bootstrap.core.errors import SandboxError
from bootstrap.core.waits import Pending, WaitSettings, wait_for


@dataclass
class Proc:
    name: str
    binary: str
    pid: int
    log: str
    #: How to start it again (``restart``); never holds a secret (tokens live in files).
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    #: An HTTP(S) endpoint that answers 200 once it serves ("" for none).
    health: str = ""
    #: Its start time (procs.start_time): pid and start time say it is still ours.
    started: str = ""
    #: Its working folder ("" for the caller's).
    cwd: str = ""

    def alive(self) -> bool:
        return procs.alive(self.pid, self.binary, self.started)

    def stop(self) -> bool:
        """Stop it (SIGTERM, then SIGKILL) if it is still the process we started."""
        return procs.stop(self.pid, self.binary, started=self.started)

    def tail(self, lines: int = 12) -> str:
        """The last lines of its log."""
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a component: ours without Vault/OpenBao settings or tokens (the
    operator's Vault client would read VAULT_ADDR and VAULT_TOKEN), the operator's own
    ``VSO_*`` options (VSO 1.4.1 reads them; the sandbox sets its flags itself) or a foreign
    KUBECONFIG."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "VSO_")) and k != "KUBECONFIG"
    }
    env.update(extra or {})
    return env


def _get_ok(url: str, ctx: ssl.SSLContext) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:  # noqa: S310
            return resp.status == 200, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except OSError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def https_ok(url: str, state_ca: Path, cert: Path, key: Path) -> tuple[bool, str]:
    ctx = ssl.create_default_context(cafile=str(state_ca))
    ctx.load_cert_chain(str(cert), str(key))
    return _get_ok(url, ctx)


def http_ok(url: str) -> tuple[bool, str]:
    """GET a loopback health endpoint (self-signed TLS is not verified: it only says up)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _get_ok(url, ctx)


def healthy(proc: Proc, wait: WaitSettings) -> None:
    """Wait until the process answers its health endpoint; fail at once if it exits."""

    def probe() -> None:
        if not proc.alive():
            raise SandboxError(f"{proc.name} exited (log {proc.log}):\n{proc.tail()}")
        ok, seen = http_ok(proc.health)
        if not ok:
            raise Pending(f"{proc.health}: {seen}")

    wait_for(probe, f"{proc.name} to answer {proc.health}", wait)
