"""Typed settings for the library. Tasks build these from the invoke configuration
(``invoke.yaml``, ``INVOKE_*`` environment variables, flags) with :meth:`Settings.from_config`;
the library never sees the invoke Context."""

from __future__ import annotations

import difflib
import functools
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from bootstrap.core.errors import UsageError
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import show
from bootstrap.model.render import PopulateAccess

#: Settings that, when unset, come from an environment variable the OpenBao tooling already
#: uses (read here, where every setting is read, and nowhere else).
ENV_FALLBACKS: dict[str, str] = {"unseal_keys_file": "BAO_UNSEAL_KEYS_FILE"}


@dataclass(frozen=True)
class Settings:
    #: The service catalog.
    catalog: Path = Path("catalog.yaml")
    #: Project-local state: reports, Terraform working copy, local custody (git-ignored).
    state_dir: Path = Path(".bootstrap")
    #: Cache for built tools, outside the repository, keyed by tool and version.
    tools_dir: Path = field(
        default_factory=lambda: Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"
    )
    #: The local sandbox's state: data, logs, kubeconfig, custody (git-ignored).
    sandbox_dir: Path = Path(".sandbox")
    #: ``sandbox.up`` starts the node sandbox (containerd, kubelet, kube-scheduler) as with
    #: ``--node``; so does a sandbox ``bootstrap`` starts on its own.
    sandbox_node: bool = False
    #: Source archive of the Vault Secrets Operator 1.4.1 to build (sha256 checked); unset:
    #: ``../shared/vendor/vault-secrets-operator-1.4.1.tar.gz`` beside the repository when it
    #: exists, else ``go install`` through the Go module proxy.
    vso_source: Path | None = None
    #: The same for VSO v0.1.0 (``../shared/vendor/vault-secrets-operator-0.1.0.tar.gz``).
    vso_v0_source: Path | None = None
    #: The operator version the sandbox and ``cluster.create`` run: "1.4.1" (what users run
    #: today; BUSL-1.1, built and run here for the sandbox and tests only) or "0.1.0" (the last
    #: MPL-2.0 release).
    sandbox_operator_version: str = "1.4.1"
    #: The sandbox operator's Kubernetes client rate (``--kube-client-qps``/``-burst``) and
    #: ``--max-concurrent-reconciles``; 0: the operator's own defaults (as its Helm chart
    #: leaves them). VSO v0.1.0 has none of these flags: it ignores them.
    sandbox_operator_qps: float = 0.0
    #: The sandbox operator's ``--kube-client-burst``; 0: the operator's default.
    sandbox_operator_burst: int = 0
    #: The sandbox operator's ``--max-concurrent-reconciles``; 0: the operator's default.
    sandbox_operator_max_reconciles: int = 0
    #: The sync engine that fills the destination Secrets from Vault: ``vso`` (the Vault
    #: Secrets Operator: VaultAuths and VaultStaticSecrets) or ``eso`` (the External Secrets
    #: Operator, Apache-2.0: a SecretStore per service, an ExternalSecret per Secret). The
    #: sandbox runs the one named here.
    sync_engine: Literal["vso", "eso"] = "vso"
    #: Source archive of the External Secrets Operator 2.9.0 (sha256 checked); unset:
    #: ``../shared/vendor/external-secrets-2.9.0.tar.gz`` beside the repository.
    eso_source: Path | None = None
    #: Source archive of the hashicorp/kubernetes Terraform provider 3.2.1 (sha256 checked);
    #: unset: ``../shared/vendor/terraform-provider-kubernetes-3.2.1.tar.gz``.
    kubernetes_provider_source: Path | None = None
    #: The Terraform engine: ``tofu`` (built by ``tools.install``) or ``terraform`` if you
    #: bring your own (and its providers).
    terraform_binary: str = "tofu"
    #: Terraform state: "local" (under state_dir, git-ignored) or "kubernetes" (a Secret in
    #: lock_namespace of the target cluster, for teams).
    terraform_backend: Literal["local", "kubernetes"] = "local"
    #: Seconds each wait may take (Vault answering, the operator syncing, a rollout).
    wait_timeout: float = 120.0
    #: Target cluster: a kubeconfig (default: $KUBECONFIG or ~/.kube/config; none -> sandbox).
    kubeconfig: Path | None = None
    #: The kubeconfig's context to use; unset: its current context.
    kube_context: str | None = None
    #: Vault/OpenBao node addresses; the first is the leader to initialize. Empty: the
    #: sandbox's nodes, or $VAULT_ADDR / $BAO_ADDR.
    vault_addrs: tuple[str, ...] = ()
    #: Vault in the cluster: ``NAMESPACE/NAME`` of its StatefulSet. With no vault_addrs,
    #: the nodes' addresses are its pods' IPs (ordinal order: pod 0 is initialized), reached
    #: at vault_scheme://IP:vault_port.
    vault_statefulset: str | None = None
    #: The scheme of the StatefulSet pods' addresses: ``http`` or ``https``.
    vault_scheme: str = "http"
    #: The port of the StatefulSet pods' addresses.
    vault_port: int = 8200
    #: The API server's address as Vault reaches it (kubernetes auth's kubernetes_host);
    #: unset: the kubeconfig's. Set it when Vault runs in the cluster and the kubeconfig's
    #: address means nothing there (e.g. https://kubernetes.default.svc).
    vault_kubernetes_host: str | None = None
    #: The first node's address as the other nodes reach it, for their raft join; unset:
    #: its address in vault_addrs. Set it when those are forwarded ports (e.g. kind:
    #: http://openbao-0.openbao-internal.openbao.svc:8200).
    vault_raft_leader_addr: str | None = None
    #: The kind cluster ``cluster.create --kind`` makes and ``cluster.delete --kind`` deletes.
    kind_cluster: str = "csb-local"
    #: Key shares made when Vault is initialized.
    vault_shares: int = 5
    #: Shares needed to unseal (at most vault_shares).
    vault_threshold: int = 3
    #: Armored or base64 PGP public keys, one per share (OpenBao's pgp_keys), optional.
    vault_pgp_keys: tuple[str, ...] = ()
    #: "file" (default) or "kubernetes" (weaker: a Secret in the cluster).
    custody: Literal["file", "kubernetes"] = "file"
    #: Custody file; default <sandbox_dir>/custody/vault-init.json on the sandbox,
    #: <state_dir>/custody/vault-init.json elsewhere.
    custody_file: Path | None = None
    #: custody "kubernetes": the namespace of the custody Secret.
    custody_namespace: str = "vault-bootstrap"
    #: custody "kubernetes": the custody Secret's name (created, never replaced).
    custody_secret: str = "vault-init"  # noqa: S105 - a Secret name, not a secret
    #: A file with unseal keys, one per line, for a Vault initialized elsewhere; unset: the
    #: file the environment variable BAO_UNSEAL_KEYS_FILE names, if any.
    unseal_keys_file: Path | None = None
    #: Remove managed objects that left the catalog.
    prune: bool = False
    #: populate: replace real values from their sources (generated ones are regenerated).
    rotate: bool = False
    #: Kubernetes auth: the reviewer ServiceAccount (bound to system:auth-delegator).
    reviewer_namespace: str = "vault-bootstrap"
    #: Kubernetes auth: the reviewer ServiceAccount's name (in reviewer_namespace).
    reviewer_service_account: str = "vault-token-reviewer"
    #: Namespace of the cluster-wide bootstrap lock (a Lease).
    lock_namespace: str = "vault-bootstrap"
    #: Hand-over from placeholder Secrets: "inplace" (destination.create false; every VSO
    #: version) or "owner" (create true with overwrite true; current VSO releases only).
    handover: Literal["inplace", "owner"] = "inplace"
    #: Vault's address as the operator sees it; when set, the operator's default
    #: VaultConnection is applied in operator_namespace.
    vault_connection_address: str | None = None
    #: The operator's namespace, where its default VaultConnection goes.
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
    #: The catalog's ``command:`` sources: ``off`` (default) refuses a catalog that has one,
    #: before anything runs; ``allow`` runs them, each a program inside the catalog's folder
    #: (see the catalog's explanation page).
    catalog_commands: Literal["off", "allow"] = "off"
    #: vault-config also writes the populate Job's policy and role (``bootstrap-populate``:
    #: create, update and read on exactly the catalog's KV paths), bound to
    #: populate_service_account in populate_namespace; ``invoke render --populate-job``
    #: writes the Job (see the populate Job how-to).
    populate_job: bool = False
    #: The populate Job's namespace (its role binds exactly this namespace).
    populate_namespace: str = "bootstrap-populate"
    #: The populate Job's ServiceAccount (its role binds exactly this one).
    populate_service_account: str = "bootstrap-populate"
    #: The Secret, in populate_namespace, the Job takes its environment from (the catalog's
    #: ``env:`` sources); made by the user, never by the product.
    populate_env_secret: str = "bootstrap-populate-env"  # noqa: S105 - a Secret's name
    #: migrate.discover: label selectors (``key=value``, or a bare key) marking a Job or
    #: CronJob as a secret copier; a script that reads a Secret with kubectl and writes it
    #: into a namespace is one too.
    migrate_copier_selectors: tuple[str, ...] = (
        "app.kubernetes.io/component=secret-copier",
        "app.kubernetes.io/name=secret-copier",
    )

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        sources: Mapping[str, str] | None = None,
        known: frozenset[str] = frozenset(),
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Settings from configuration values (invoke's ``bootstrap`` section: YAML values or
        strings from ``INVOKE_BOOTSTRAP_*``), each coerced to its field's type; ``overrides``
        (task flags) win. None, in either, means unset: the field keeps its default.

        A key that names no setting (nor one of ``known``, read elsewhere), a boolean that
        is not one, a number that is not one and a choice outside its values are each a
        UsageError (exit 2) naming the key and where it came from: ``sources`` maps a key to
        that (a file, an environment variable), flags are named as flags."""
        where = dict(sources or {})
        names = {f.name for f in fields(cls)}
        for key in config:
            if key not in names and key not in known:
                near = difflib.get_close_matches(str(key), sorted(names), n=1)
                raise UsageError(
                    f"unknown setting {show(key)} in {where.get(key, 'the configuration')}"
                    + (f"; did you mean {near[0]}?" if near else "")
                    + " (the settings are listed in docs/reference/settings.md)"
                )
        values: dict[str, Any] = {}
        env = environ or {}
        for f in fields(cls):
            raw, source = overrides.get(f.name), f"flag --{f.name.replace('_', '-')}"
            if raw is None:
                raw, source = config.get(f.name), where.get(f.name, _default_source(f.name))
            if raw is None and f.name in ENV_FALLBACKS and env.get(ENV_FALLBACKS[f.name]):
                raw = env[ENV_FALLBACKS[f.name]]
                source = f"environment variable {ENV_FALLBACKS[f.name]}"
            if raw is not None:
                try:
                    values[f.name] = coerce(_field_types()[f.name], raw)
                    kind = _optional_of(_field_types()[f.name])
                    if typing.get_origin(kind) is Literal:
                        _choice(f.name, kind, values[f.name], source)
                except (ValueError, TypeError) as exc:
                    raise UsageError(f"setting {f.name} in {source}: {exc}") from None
        return cls(**values)

    @classmethod
    def config_defaults(cls) -> dict[str, Any]:
        """Every field's default as configuration writes it (so that ``INVOKE_BOOTSTRAP_*``
        can override it): paths, booleans and numbers as strings, tuples comma-separated.
        Strings, because invoke casts an environment variable to its default's type on its
        own terms (``ture`` would be true for a boolean default): as strings, every value
        reaches :meth:`from_config`, which refuses what is not one."""
        defaults = cls()
        return {f.name: _config_value(getattr(defaults, f.name)) for f in fields(cls)}

    def __post_init__(self) -> None:
        for f in fields(self):
            kind = _field_types()[f.name]
            if typing.get_origin(kind) is Literal:
                _choice(f.name, kind, getattr(self, f.name))


def populate_access(settings: Settings) -> PopulateAccess | None:
    """The populate Job's identity when the setting populate_job asks for it."""
    if not settings.populate_job:
        return None
    return PopulateAccess(settings.populate_namespace, settings.populate_service_account)


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each field's type, from the annotations (``Path | None`` and the like resolved)."""
    return typing.get_type_hints(Settings)


def _optional_of(kind: Any) -> Any:
    """``X`` for ``X | None``; any other type as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


#: The words a boolean setting takes (any case); an empty value is false.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def _default_source(name: str) -> str:
    return f"the configuration (INVOKE_BOOTSTRAP_{name.upper()} or invoke.yaml)"


def coerce(kind: Any, raw: Any) -> Any:
    """A configuration value as a field of type ``kind`` holds it: paths with ``~``
    expanded; booleans from ``1``/``true``/``yes``/``on`` and ``0``/``false``/``no``/``off``
    (any case; anything else is a ValueError); numbers; tuples from comma-separated strings
    (empty items dropped) or lists; anything else as given."""
    kind = _optional_of(kind)
    if typing.get_origin(kind) is Literal:
        if raw is False and "off" in typing.get_args(kind):
            return "off"  # YAML 1.1 reads a bare 'off' in invoke.yaml as false
        return raw.strip().lower() if isinstance(raw, str) else raw  # checked by the Settings
    if kind is Path:
        return Path(os.path.expanduser(str(raw)))
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(
                f"{show(raw)} is not a boolean; one of {', '.join(TRUE_WORDS[:-1])}, "
                f"{TRUE_WORDS[-1]} or {', '.join(w for w in FALSE_WORDS if w)}"
            )
        return word in TRUE_WORDS
    if kind in (int, float):
        if isinstance(raw, bool):
            raise ValueError(f"{show(raw)} is not a number")
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise ValueError(
                f"{show(raw)} is not a{'n integer' if kind is int else ' number'}"
            ) from None
    if typing.get_origin(kind) is tuple:
        return tuple(x for x in (raw.split(",") if isinstance(raw, str) else raw) if x)
    return raw


def _choice(name: str, kind: Any, value: Any, source: str | None = None) -> None:
    """A UsageError naming the setting, where it came from (default: its INVOKE_BOOTSTRAP_
    variable) and the values it takes, unless ``value`` is one of the Literal ``kind``'s."""
    choices = typing.get_args(kind)
    if value not in choices:
        raise UsageError(
            f"setting {name} in {source or f'INVOKE_BOOTSTRAP_{name.upper()}'} is "
            f"{show(value)}; expected " + " or ".join(map(str, choices))
        )


def _config_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path | int | float):
        return str(value)
    if isinstance(value, tuple):
        return ",".join(value)
    return value
