"""Output: rendered trees written to disk (all or nothing, deterministic bytes), and other
systems' messages cut to one line."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bootstrap.core.errors import BootstrapError

MARKER = ".rendered-by-cluster-secrets-bootstrap"


def write_tree(out: Path, files: dict[str, str]) -> None:
    """Replace ``out`` with exactly ``files``. Refuses a non-empty directory that an earlier
    render did not write; on any error the previous contents stay as they were."""
    out = out.resolve()
    if out.exists():
        if not out.is_dir():
            raise BootstrapError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise BootstrapError(
                f"{out}: not empty and not written by 'invoke render'; refusing to replace it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, text in files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        (tmp / MARKER).write_text("", encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def short(message: object, limit: int = 240) -> str:
    """One line of at most ``limit`` characters (operators' messages quote Vault's
    multi-line errors)."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
