"""A health helper for workloads whose secrets are mounted from bootstrap-managed Secrets.
Standard library only: copy this one file into an image, or import it.

    python health_probe.py liveness  [--missing-ok] /etc/secrets [/more/mounts ...]
    python health_probe.py readiness [--missing-ok] /etc/secrets

liveness  exits 0 while every mount is well formed, placeholders included (so pods are not
          killed while the bootstrap is still filling values); 1 on a malformed mount
          (missing directory, no keys, unreadable or empty key file).
readiness exits 0 only when no mounted value is a placeholder.

--missing-ok: a mount with no keys at all is a Secret that does not exist yet (a volume with
          ``optional: true`` is mounted empty until its Secret appears): waiting, so live but
          not ready, like a placeholder. An empty or unreadable key stays malformed.

Placeholders are recognised by their value (prefix ``bootstrap-placeholder:``), never by
labels. The output names keys, never values.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

PLACEHOLDER_PREFIX = b"bootstrap-placeholder:"  # the same marker as placeholders/marker.json


@dataclass
class MountReport:
    malformed: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    real: list[str] = field(default_factory=list)
    #: Mounts with no keys, with ``missing_ok``: Secrets that do not exist yet.
    missing: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return not self.malformed

    @property
    def ready(self) -> bool:
        return self.live and not self.placeholders and not self.missing


def inspect(mounts: list[Path], missing_ok: bool = False) -> MountReport:
    report = MountReport()
    for mount in mounts:
        if not mount.is_dir():
            report.malformed.append(f"{mount}: not a directory")
            continue
        # Kubernetes projects keys as symlinks into a ..data directory; skip its internals.
        keys = sorted(p for p in mount.iterdir() if not p.name.startswith(".."))
        if not keys:
            if missing_ok:
                report.missing.append(str(mount))
            else:
                report.malformed.append(f"{mount}: no keys")
        for key in keys:
            name = f"{mount}/{key.name}"
            try:
                value = key.read_bytes()
            except OSError as exc:
                report.malformed.append(f"{name}: unreadable ({type(exc).__name__})")
                continue
            if not value:
                report.malformed.append(f"{name}: empty")
            elif value.startswith(PLACEHOLDER_PREFIX):
                report.placeholders.append(name)
            else:
                report.real.append(name)
    return report


def main(argv: list[str]) -> int:
    missing_ok = "--missing-ok" in argv[1:2]
    mounts = argv[2:] if missing_ok else argv[1:]
    if not mounts or argv[0] not in ("liveness", "readiness"):
        print(
            "usage: health_probe.py liveness|readiness [--missing-ok] MOUNT [MOUNT ...]",
            file=sys.stderr,
        )
        return 2
    report = inspect([Path(a) for a in mounts], missing_ok)
    for problem in report.malformed:
        print(f"malformed: {problem}", file=sys.stderr)
    if argv[0] == "liveness":
        if report.placeholders:
            print(f"waiting for {len(report.placeholders)} placeholder value(s)", file=sys.stderr)
        if report.missing:
            print(f"waiting for {len(report.missing)} Secret(s) to appear", file=sys.stderr)
        return 0 if report.live else 1
    for name in report.placeholders:
        print(f"placeholder: {name}", file=sys.stderr)
    for name in report.missing:
        print(f"missing: {name} (no Secret yet)", file=sys.stderr)
    return 0 if report.ready else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
