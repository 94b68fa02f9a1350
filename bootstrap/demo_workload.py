"""The demo workload of the node sandbox and ``cluster.create``: a process that shows which
secret values it holds, never the values. Standard library only (it runs in the ``demo``
image, on Debian's python3.11-minimal), like the health probe beside it.

    python demo_workload.py run    MOUNT [MOUNT ...]   # the main process: a line per change
    python demo_workload.py digest MOUNT [MOUNT ...]   # one line per mount, then exit

For each mounted Secret it prints its state (``real``, ``placeholder``, ``missing``: no keys
yet, ``malformed``: an empty or unreadable key), its key names and a digest of its data
(sha256 over the sorted keys and values, 16 hex digits); for the environment variables named
``DEMO_SECRET_*`` (values a pod got at its start) the same. ``run`` prints every mount once,
then again each time one changes (a Secret filled, rotated or emptied), checking every
``DEMO_INTERVAL`` seconds (default 2); SIGTERM ends it at once with status 0.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from pathlib import Path

PLACEHOLDER_PREFIX = b"bootstrap-placeholder:"  # the health probe's marker
ENV_PREFIX = "DEMO_SECRET_"


def _state(values: dict[str, bytes | None]) -> str:
    if not values:
        return "missing"
    if any(not v for v in values.values()):
        return "malformed"
    if any(v is not None and v.startswith(PLACEHOLDER_PREFIX) for v in values.values()):
        return "placeholder"
    return "real"


def _digest(values: dict[str, bytes | None]) -> str:
    h = hashlib.sha256()
    for key in sorted(values):
        h.update(key.encode() + b"\0" + (values[key] or b"") + b"\0")
    return h.hexdigest()[:16]


def _line(name: str, values: dict[str, bytes | None]) -> str:
    return (
        f"{name}: state={_state(values)} keys={','.join(sorted(values)) or '-'} "
        f"sha256={_digest(values)}"
    )


def read_mount(mount: Path) -> dict[str, bytes | None]:
    """A mounted Secret's keys and values (None: unreadable); Kubernetes' ``..`` entries
    skipped."""
    out: dict[str, bytes | None] = {}
    try:
        keys = sorted(p for p in mount.iterdir() if not p.name.startswith(".."))
    except OSError:
        return out
    for key in keys:
        try:
            out[key.name] = key.read_bytes()
        except OSError:
            out[key.name] = None
    return out


def snapshot(mounts: list[Path]) -> list[str]:
    lines = [_line(str(m), read_mount(m)) for m in mounts]
    env = {k: v.encode() for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    if env:
        lines.append(_line("environment (as at start)", dict(env)))
    return lines


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("run", "digest"):
        print("usage: demo_workload.py run|digest MOUNT [MOUNT ...]", file=sys.stderr)
        return 2
    mounts = [Path(a) for a in argv[1:]]
    if argv[0] == "digest":
        print("\n".join(snapshot(mounts)), flush=True)
        return 0
    signal.signal(signal.SIGTERM, _stop)  # PID 1 in a container: no default action
    interval = float(os.environ.get("DEMO_INTERVAL", "2"))
    seen: list[str] = []
    while True:
        lines = snapshot(mounts)
        if lines != seen:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for line in lines:
                print(f"{stamp} {line}", flush=True)
            seen = lines
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
