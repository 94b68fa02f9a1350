"""One error root for the whole product, and the few meaningful kinds below it.

Tasks translate a :class:`BootstrapError` into a clean exit (``exit_code``) without a
traceback. Messages never carry secret values, unseal keys or tokens.
"""

from __future__ import annotations


class BootstrapError(Exception):
    """Root of every error the product raises on purpose."""

    exit_code = 1


class CatalogError(BootstrapError):
    """The service catalog is malformed or inconsistent. Nothing has been changed."""

    exit_code = 2

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid catalog {path}: {len(problems)} {noun}\n{lines}")


class UsageError(BootstrapError):
    """A flag or setting given to a task does not make sense."""

    exit_code = 2


class CheckFailed(BootstrapError):
    """The static check found problems in the rendered policies, roles or manifests."""

    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        body = "\n".join(f"  - {f}" for f in findings)
        super().__init__(f"static check failed with {len(findings)} finding(s):\n{body}")


class ToolError(BootstrapError):
    """A required external tool is missing, has the wrong version, or failed to build."""


class WaitTimeout(BootstrapError):
    """A wait ran past its deadline. Says what was awaited and the last state seen."""

    def __init__(self, awaited: str, last_seen: str, elapsed: float) -> None:
        self.awaited = awaited
        self.last_seen = last_seen
        self.elapsed = elapsed
        super().__init__(
            f"timed out after {elapsed:.1f}s waiting for {awaited}; last seen: {last_seen}"
        )


class VaultStateError(BootstrapError):
    """Vault/OpenBao is in a state the bootstrap cannot safely act on."""


class KubernetesError(BootstrapError):
    """The Kubernetes API refused or failed a request."""


class TerraformError(BootstrapError):
    """Terraform/OpenTofu failed; names the failing resource and the tool's own message."""


class SandboxError(BootstrapError):
    """The local sandbox control plane could not be started, inspected or stopped."""


class ConvergenceError(BootstrapError):
    """A phase applied its plan but planning again still finds work to do."""


class SnapshotError(BootstrapError):
    """A raft snapshot file, or its manifest, cannot be trusted or restored here. Raised
    before anything is changed."""
