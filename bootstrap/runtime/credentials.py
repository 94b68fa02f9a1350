"""Which Vault token a run uses, and the run's one Vault session.

The token comes from $VAULT_TOKEN/$BAO_TOKEN, else the bootstrap-admin credential in custody,
else the root token in custody while it has not been revoked. The names of those custody
entries live here, with the code that reads them: vault-config writes the admin credential,
finish records the root token's revocation, and every later reader asks this module."""

from __future__ import annotations

import logging
import os

from bootstrap.clients import vault
from bootstrap.core.errors import VaultStateError
from bootstrap.runtime.custody import Custody
from bootstrap.runtime.target import Target

log = logging.getLogger(__name__)

#: Custody entry holding the bootstrap-admin credential (token, accessor, policies).
ADMIN_EXTRA = "admin"
#: Custody entry recording that the root token was revoked (and when).
ROOT_REVOKED_EXTRA = "root-revoked"
TOKEN_VARIABLES = ("VAULT_TOKEN", "BAO_TOKEN")


#: The environment's token variables this run no longer uses (the environment itself is
#: never changed): set by :func:`forget_env_token`.
_FORGOTTEN: set[str] = set()


def _env_token() -> tuple[str, str] | None:
    for var in TOKEN_VARIABLES:
        if var not in _FORGOTTEN and os.environ.get(var):
            return os.environ[var], var
    return None


def env_token() -> str | None:
    """The token given in the environment, if any (and not forgotten)."""
    found = _env_token()
    return found[0] if found else None


def forget_env_token() -> None:
    """Stop using the environment's token in this process (after a restore replaced the
    Vault it belonged to): later phases then use the restored bootstrap-admin credential."""
    for var in TOKEN_VARIABLES:
        if os.environ.get(var) and var not in _FORGOTTEN:
            _FORGOTTEN.add(var)
            log.info("%s held a token of the replaced Vault; the run no longer uses it", var)


def admin_present(custody: Custody) -> bool:
    return custody.load_extra(ADMIN_EXTRA) is not None


def root_revoked(custody: Custody) -> bool:
    return custody.load_extra(ROOT_REVOKED_EXTRA) is not None


def root_token(custody: Custody) -> str | None:
    """The root token, when the init record holds it in plain (not PGP-encrypted) and it
    has not been revoked."""
    record = custody.load()
    if record is None or not record.root_token or record.pgp or root_revoked(custody):
        return None
    return record.root_token


def resolve_token(custody: Custody) -> tuple[str, str]:
    """(token, where from). Never logs the token."""
    found = _env_token()
    if found is not None:
        return found
    admin = custody.load_extra(ADMIN_EXTRA)
    if admin and admin.get("token"):
        return str(admin["token"]), f"bootstrap-admin credential in {custody.description}"
    root = root_token(custody)
    if root is not None:
        return root, f"root token in {custody.description}"
    raise VaultStateError(
        "no Vault token: set VAULT_TOKEN or BAO_TOKEN (the bootstrap-admin credential and the "
        f"root token are not in {custody.description})"
    )


def store_admin(custody: Custody, token: str, accessor: str, policies: list[str]) -> None:
    custody.store_extra(ADMIN_EXTRA, {"token": token, "accessor": accessor, "policies": policies})


def record_root_revoked(custody: Custody, when: float) -> None:
    custody.store_extra(ROOT_REVOKED_EXTRA, {"revoked_at": when})


def api_for_target(t: Target) -> vault.Api:
    """A client for the target's active node, with the token resolve_token finds. The
    bootstrap-admin credential is a periodic token: each use renews it (a cluster left alone
    longer than its period would otherwise lose it, and a snapshot carries it as it was)."""
    token, source = resolve_token(t.custody)
    log.info("authenticating to Vault with the %s", source)
    api = vault.Api(vault.active_addr(t.vault_addrs), token, peers=t.vault_addrs)
    if source.startswith("bootstrap-admin"):
        renew_admin(api, t.custody)
    return api


def renew_admin(api: vault.Api, custody: Custody) -> None:
    """Renew the bootstrap-admin credential (a new period starts); a refusal says it is gone."""
    try:
        api.request("PUT", "auth/token/renew-self", {})
    except vault.VaultRequestError as exc:
        if exc.status == 403:
            raise VaultStateError(
                f"the bootstrap-admin credential in {custody.description} is no longer valid "
                "(expired or revoked): set VAULT_TOKEN or BAO_TOKEN to a token with its policy"
            ) from None
        raise


class Session:
    """The run's Vault session: made on first use (after vault-ready has unsealed Vault and
    vault-config may have created the admin credential), shared by every later phase, and
    invalidated when the token it holds stops being valid (finish revokes the root token)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._api: vault.Api | None = None

    @property
    def api(self) -> vault.Api:
        if self._api is None:
            self._api = api_for_target(self.target)
        return self._api

    @property
    def opened(self) -> vault.Api | None:
        """The client if the session was opened (for counting its writes), else None."""
        return self._api

    def invalidate(self) -> None:
        self._api = None
