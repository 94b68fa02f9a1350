"""Typed settings for the library. Tasks build these from the invoke configuration
(``invoke.yaml``, ``INVOKE_*`` environment variables, flags); the library never sees the
invoke Context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    catalog: Path = Path("catalog.yaml")
    #: Project-local state: reports, Terraform working copy, local custody (git-ignored).
    state_dir: Path = Path(".bootstrap")
    #: Cache for built tools, outside the repository, keyed by tool and version.
    tools_dir: Path = field(
        default_factory=lambda: Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"
    )
    sandbox_dir: Path = Path(".sandbox")
    terraform_binary: str = "tofu"
    #: Phases that exist are selected with only/start/skip; see bootstrap.pipeline.
    wait_timeout: float = 120.0
