"""Typed settings for the library. Tasks build these from the invoke configuration
(``invoke.yaml``, ``INVOKE_*`` environment variables, flags); the library never sees the
invoke Context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.model import conventions as conv


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
    #: Source archive of the Vault Secrets Operator v0.1.0 to build (sha256 checked); unset:
    #: ``../shared/vendor/vault-secrets-operator-0.1.0.tar.gz`` beside the repository when it
    #: exists, else ``go install`` through the Go module proxy.
    vso_source: Path | None = None
    #: Source archive of the hashicorp/kubernetes Terraform provider 3.2.1 (sha256 checked);
    #: unset: ``../shared/vendor/terraform-provider-kubernetes-3.2.1.tar.gz``.
    kubernetes_provider_source: Path | None = None
    terraform_binary: str = "tofu"
    #: Terraform state: "local" (under state_dir, git-ignored) or "kubernetes" (a Secret in
    #: lock_namespace of the target cluster, for teams).
    terraform_backend: str = "local"
    wait_timeout: float = 120.0
    #: Target cluster: a kubeconfig (default: $KUBECONFIG or ~/.kube/config; none -> sandbox).
    kubeconfig: Path | None = None
    kube_context: str | None = None
    #: Vault/OpenBao node addresses; the first is the leader to initialize. Empty: the
    #: sandbox's nodes, or $VAULT_ADDR / $BAO_ADDR.
    vault_addrs: tuple[str, ...] = ()
    vault_shares: int = 5
    vault_threshold: int = 3
    #: Armored or base64 PGP public keys, one per share (OpenBao's pgp_keys), optional.
    vault_pgp_keys: tuple[str, ...] = ()
    #: "file" (default) or "kubernetes" (weaker: a Secret in the cluster).
    custody: str = "file"
    #: Custody file; default <sandbox_dir>/custody/vault-init.json on the sandbox,
    #: <state_dir>/custody/vault-init.json elsewhere.
    custody_file: Path | None = None
    custody_namespace: str = "vault-bootstrap"
    custody_secret: str = "vault-init"  # noqa: S105 - a Secret name, not a secret
    #: A file with unseal keys, one per line, for a Vault initialized elsewhere.
    unseal_keys_file: Path | None = None
    #: Remove managed objects that left the catalog.
    prune: bool = False
    #: populate: replace real values from their sources (generated ones are regenerated).
    rotate: bool = False
    #: Kubernetes auth: the reviewer ServiceAccount (bound to system:auth-delegator).
    reviewer_namespace: str = "vault-bootstrap"
    reviewer_service_account: str = "vault-token-reviewer"
    #: Namespace of the cluster-wide bootstrap lock (a Lease).
    lock_namespace: str = "vault-bootstrap"
    #: Hand-over from placeholder Secrets: "inplace" (destination.create false; every VSO
    #: version) or "owner" (create true with overwrite true; current VSO releases only).
    handover: str = "inplace"
    #: Vault's address as the operator sees it; when set, the operator's default
    #: VaultConnection is applied in operator_namespace.
    vault_connection_address: str | None = None
    operator_namespace: str = conv.OPERATOR_NAMESPACE
    #: verify: nudge pending VaultStaticSecrets (refreshAfter 1s, restored afterwards) so the
    #: operator syncs within seconds rather than a refresh period.
    verify_nudge: bool = True
    #: Audit device (file) path on the Vault server's host.
    audit_file: str | None = None
    #: Folders, besides the catalog's own, that a catalog's ``file:`` sources may read
    #: (symlinks and ``..`` resolved first; relative entries from the current directory).
    #: Empty: only files inside the catalog's folder. /proc, /sys and /dev never.
    source_file_roots: tuple[str, ...] = ()
