"""Disaster recovery: the phase ``invoke dr.restore`` runs before the bootstrap's own. It puts
a raft snapshot of the original cluster's Vault into the target's Vault and opens it with the
original cluster's unseal keys; the phases after it join and unseal the other nodes (vault-ready),
re-point kubernetes auth at the new cluster (vault-config), re-create the operator's resources,
find every value already in Vault (populate writes nothing), wait for every Secret (verify)
and revoke what must go (finish).

The steps, each idempotent (a run killed anywhere and run again converges):

1. the snapshot is checked, by ``dr.restore`` before it takes the cluster lock: its manifest,
   the file read once (its size and sha256 as the manifest says), exactly a raft snapshot's
   members (see :mod:`bootstrap.model.snapshot`), every member's checksum, the manifest's
   file name, raft index and term; the --keys record too (shares and threshold within
   OpenBao's limits, as many unseal keys as shares, each one an unseal key). Then (facts)
   the target's server kind and version (``--force`` skips none of these). A file that fails
   is refused before anything changes, and the bytes checked are the bytes restored (the
   file is never read again: replacing it meanwhile changes nothing);
2. custody: the original init record (unseal keys; the bootstrap-admin credential beside it)
   goes into the target's custody first, so the keys that open the restored Vault are where
   every later run looks for them; another record there is set aside (kept) only with --force;
3. an uninitialized target is initialized once, as a throwaway (with the original's shares
   and threshold, see :class:`InitThrowaway`): restoring needs an
   unsealed node and a token. Its record stays in ``<state_dir>/dr/`` (mode 0600) until the
   restore is confirmed;
4. the snapshot is restored (``snapshot-force``: it is sealed with the original keys), alone on
   the leader (followers join afterwards, never during: openbao/openbao#2455); the node then
   seals itself, its in-memory keys no longer matching its data;
5. the leader is unsealed with the original keys and must answer with the snapshot's cluster id;
6. the throwaway record is discarded, and the run says so.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import SnapshotError, UsageError, VaultStateError, WaitTimeout
from bootstrap.core.files import read_regular, read_regular_text
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model.actions import Action, problem
from bootstrap.model.snapshot import (
    FILE_LIMIT,
    MANIFEST_LIMIT,
    Contents,
    Manifest,
    RestoreRequest,
    Verified,
    check_bytes,
    check_contents,
    compatibility,
    inspect,
    manifest_path,
    server_of,
)
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime import credentials
from bootstrap.runtime.custody import Custody, FileCustody, InitRecord, write_private

log = logging.getLogger(__name__)
SUMMARY = "restore a raft snapshot into the target's Vault and open it with the original keys"
#: Custody entries copied with the original init record.
EXTRAS = (credentials.ADMIN_EXTRA, credentials.ROOT_REVOKED_EXTRA)


# -- facts -------------------------------------------------------------------------------


@dataclass
class RestoreFacts:
    request: RestoreRequest
    manifest: Manifest
    contents: Contents
    #: the target's server kind and version, read from its leader
    server: str
    nodes: list[vault.Health]
    #: the original cluster's init record, and where it was read
    original: InitRecord | None
    original_from: str
    #: the target's custody: its record, and whether it is the original one
    custody: str
    custody_record: InitRecord | None
    #: a throwaway initialization of this target is recorded in the state folder
    throwaway: bool
    #: what the target's Vault holds when it is neither fresh, ours nor the snapshot's
    holds: str | None = None
    #: a token in $VAULT_TOKEN / $BAO_TOKEN (needed to replace a Vault holding other data)
    env_token: bool = False
    #: the new cluster's API server, where vault-config re-points kubernetes auth
    cluster_host: str = ""

    @property
    def leader(self) -> vault.Health:
        return self.nodes[0]

    @property
    def restored(self) -> bool:
        """The leader is unsealed and answers with the snapshot's cluster id."""
        lead = self.leader
        return lead.initialized and not lead.sealed and lead.cluster_id == self.manifest.cluster_id

    @property
    def custody_is_original(self) -> bool:
        return (
            self.custody_record is not None
            and self.original is not None
            and sorted(self.custody_record.unseal_keys_b64) == sorted(self.original.unseal_keys_b64)
        )


def throwaway_path(state_dir: Path, leader: str) -> Path:
    """Where the throwaway init record of a target's leader is kept until discarded."""
    tag = hashlib.sha256(leader.encode()).hexdigest()[:16]
    return state_dir / "dr" / f"throwaway-{tag}.json"


def read_manifest(request: RestoreRequest) -> Manifest:
    path = manifest_path(request.snapshot)
    if not request.snapshot.is_file():
        raise SnapshotError(f"snapshot {request.snapshot} does not exist or is not a file")
    if not path.exists():
        raise SnapshotError(
            f"snapshot {request.snapshot} has no manifest beside it ({path.name}): without its "
            "checksum and source the snapshot cannot be trusted; use the manifest dr.snapshot "
            "wrote with it"
        )
    text = read_regular_text(path, MANIFEST_LIMIT, what="manifest", error=SnapshotError)
    return Manifest.from_text(text, str(path))


#: The largest age identity file read (one holds a few lines).
IDENTITY_LIMIT = 64 << 10


def _identities(paths: tuple[Path, ...]) -> list[Any]:
    """The age identities of the files given (each a small regular file of UTF-8 text)."""
    import pyrage

    identities = []
    for path in paths:
        text = read_regular_text(
            path, IDENTITY_LIMIT, what="age identity file", error=SnapshotError
        )
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip().startswith("AGE-SECRET-KEY-"):
                try:
                    identities.append(pyrage.x25519.Identity.from_str(line.strip()))
                except pyrage.IdentityError:
                    raise SnapshotError(f"{path}:{n} holds a malformed age identity") from None
    if not identities:
        raise SnapshotError(f"no age identity (AGE-SECRET-KEY-...) in {', '.join(map(str, paths))}")
    return identities


def read_snapshot(request: RestoreRequest, manifest: Manifest) -> bytes:
    """The snapshot file's bytes, read once (a regular file, no larger than the manifest
    says) and checked against the manifest's size and sha256; decrypted when it was
    encrypted (in memory: never written to disk decrypted). Everything later uses these
    bytes, never the file again."""
    where = str(request.snapshot)
    if manifest.bytes > FILE_LIMIT:
        raise SnapshotError(
            f"the manifest of {where} says {manifest.bytes} bytes, more than a snapshot this "
            f"restores ({FILE_LIMIT}); refusing it"
        )
    data = read_regular(request.snapshot, manifest.bytes, what="snapshot", error=SnapshotError)
    check_bytes(data, manifest, where)
    if manifest.encryption is None:
        return data
    import pyrage

    if not request.age_identities:
        raise SnapshotError(
            f"snapshot {request.snapshot} is encrypted to {manifest.recipients} age "
            "recipient(s): give an identity file with --age-identity"
        )
    identities = _identities(request.age_identities)
    try:
        return bytes(pyrage.decrypt(data, identities))
    except pyrage.DecryptError:
        raise SnapshotError(
            f"snapshot {request.snapshot} cannot be decrypted with the identities given"
        ) from None


def check_snapshot(request: RestoreRequest) -> Verified:
    """The snapshot's manifest, its sha256, every member (decrypted first when encrypted),
    and the manifest's file name, raft index and term against the snapshot's: SnapshotError
    before anything is read from or changed in the target. ``dr.restore`` calls it before
    taking the cluster lock and keeps the result in the request (``verified``): the bytes
    checked are the bytes restored."""
    manifest = read_manifest(request)
    payload = read_snapshot(request, manifest)
    where = str(request.snapshot)
    contents = inspect(payload, where)
    check_contents(manifest, contents, request.snapshot.name, where)
    return Verified(manifest, contents, payload)


def verified(ctx: RunContext) -> Verified:
    """The run's checked snapshot: the one ``dr.restore`` checked before the run, else
    checked now and kept for the rest of the run (the file is never read again)."""
    request = ctx.restore
    if request is None:
        raise UsageError("the dr-restore phase runs only from 'invoke dr.restore'")
    if request.verified is None:
        ctx.restore = request = replace(request, verified=check_snapshot(request))
    assert request.verified is not None
    return request.verified


def read_keys(path: Path) -> InitRecord:
    """The original cluster's init record given with --keys, checked whole (see
    :meth:`InitRecord.from_json` and :meth:`InitRecord.check_keys`), with the custody entries
    beside it (the bootstrap-admin credential, the root token's revocation): refused before
    anything is written to custody or the target initialized."""
    if not path.exists() or path.is_dir():
        raise UsageError(f"--keys {path} does not exist or is not a file")
    source = FileCustody(path)
    record = source.load()
    if record is None:  # pragma: no cover - it existed a moment ago
        raise UsageError(f"--keys {path} does not exist or is not a file")
    record.check_keys(str(path))
    for name in EXTRAS:
        source.load_extra(name)
    return record


def check_keys(request: RestoreRequest) -> None:
    """``dr.restore``'s check of a --keys record before the run touches anything."""
    if request.keys_from is not None:
        read_keys(request.keys_from)


def load_original(request: RestoreRequest, custody: Custody) -> tuple[InitRecord | None, str]:
    if request.keys_from is not None:
        return read_keys(request.keys_from), str(request.keys_from)
    record = custody.load()
    if record is not None:
        record.check_keys(custody.description)
    return record, custody.description


def _holds(addr: str) -> str:
    """What a Vault that is not ours holds, as far as a token in the environment may list."""
    token = credentials.env_token()
    if token is None:
        return "data this run cannot list (no token in VAULT_TOKEN/BAO_TOKEN)"
    api = vault.Api(addr, token)
    try:
        mounts = api.read("sys/mounts") or {}
        auths = api.read("sys/auth") or {}
        policies = api.list_keys("sys/policies/acl")
    except vault.VaultRequestError as exc:
        return f"data the token in the environment cannot list ({exc.status or 'no answer'})"
    finally:
        api.client.adapter.close()
    engines = sorted(k for k in (mounts.get("data") or mounts) if k.endswith("/"))
    methods = sorted(k for k in (auths.get("data") or auths) if k.endswith("/"))
    own = [p for p in policies if p not in ("default", "root")]
    return (
        f"secrets engines {', '.join(engines) or '(none)'}; auth methods "
        f"{', '.join(methods) or '(none)'}; {len(own)} policies"
    )


# -- actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallCustody(Action):
    """Copy the original init record (and its extras) into the target's custody; with
    ``aside``, first set aside (never delete) the record that is there."""

    aside: bool


@dataclass(frozen=True)
class InitThrowaway(Action):
    """Initialize with the original's shares and threshold: after the restore, a sealed node
    still combines shares by the seal configuration it started with (until it restarts), so
    the original keys open it only if the two agree (openbao/openbao#1154's "invalid key
    size 33" is a mismatch of these)."""

    addr: str
    shares: int
    threshold: int


@dataclass(frozen=True)
class RestoreSnapshot(Action):
    """Install the snapshot on the leader. ``credential``: the throwaway root token, or the
    token in the environment (a Vault holding other data, with --force)."""

    addr: str
    credential: str


@dataclass(frozen=True)
class UnsealOriginal(Action):
    """Unseal the leader with the original keys; it must then answer with the snapshot's
    cluster id, and take the run's credential."""

    addr: str


@dataclass(frozen=True)
class DiscardThrowaway(Action):
    """Delete the throwaway initialization's record: its keys open nothing any more."""

    addr: str


def plan_restore(f: RestoreFacts) -> list[Action]:
    """Pure: what the restore still has to do, or why it must not."""
    m, lead = f.manifest, f.leader
    name = f"{f.request.snapshot.name} (raft index {f.contents.index}, {m.server} {m.version}, "
    name += f"cluster {m.cluster_name or m.cluster_id}, taken {m.created})"
    why_not = compatibility(m, f.server, lead.version)
    if why_not:  # --force never skips it: OpenBao cannot take another kind's snapshot
        return [problem(lead.addr, why_not)]
    if f.original is None:
        return [
            problem(
                "unseal keys",
                f"missing original keys: {f.original_from} holds no init record. The restored "
                "Vault opens only with the keys of the cluster the snapshot came from: give a "
                "copy of that cluster's custody record with --keys FILE (its vault-init.json, "
                "with vault-init.admin.json beside it)",
            )
        ]
    if not f.original.unseal_keys_b64:  # pragma: no cover - a record with none is refused
        return [
            problem(
                "unseal keys",
                f"the record in {f.original_from} holds no unseal keys (unseal_keys_b64 is "
                "empty): give a copy of the original cluster's custody record with --keys",
            )
        ]
    if f.original.pgp:
        return [
            problem(
                "unseal keys",
                f"the original keys in {f.original_from} are PGP-encrypted: decrypt them into "
                "a record with plain keys (unseal_keys_b64) and give it with --keys",
            )
        ]
    actions: list[Action] = []
    if f.custody_record is None:
        actions.append(
            InstallCustody(
                "create",
                f.custody,
                f"the original cluster's init record from {f.original_from} (unseal keys, "
                "bootstrap-admin credential): the keys that open the restored Vault",
                aside=False,
            )
        )
    elif not f.custody_is_original:
        if not f.request.force:
            return [
                problem(
                    f.custody,
                    "holds the init record of another Vault (not the snapshot's cluster); "
                    "refusing to replace it: --force sets it aside (kept, never deleted)",
                )
            ]
        actions.append(
            InstallCustody(
                "update",
                f.custody,
                f"set aside the record there (kept), then the original record from "
                f"{f.original_from}",
                aside=True,
            )
        )
    if f.restored:
        if f.throwaway:
            actions.append(
                DiscardThrowaway(
                    "delete", "throwaway keys", "restore confirmed: they open nothing", lead.addr
                )
            )
        return actions
    unseal = UnsealOriginal(
        "update",
        lead.addr,
        f"unseal with the original keys; it must then be cluster {m.cluster_id}",
        lead.addr,
    )
    discard = DiscardThrowaway(
        "delete",
        "throwaway keys",
        "discard the temporary initialization's keys once the restore is confirmed",
        lead.addr,
    )
    restore = RestoreSnapshot(
        "update",
        lead.addr,
        f"restore {name}, forced (it is sealed with the original cluster's keys); the node "
        "then seals itself",
        lead.addr,
        "throwaway",
    )
    if not lead.initialized:
        joined = [n.addr for n in f.nodes[1:] if n.initialized]
        if joined:
            return [
                problem(
                    lead.addr,
                    f"not initialized, but {', '.join(joined)} are: the target's nodes are not "
                    "one fresh cluster",
                )
            ]
        o = f.original
        init = InitThrowaway(
            "create",
            lead.addr,
            f"initialize once as a throwaway ({o.shares} shares, threshold {o.threshold}, as "
            "the original; record in the state folder) so the snapshot can be restored; its "
            "keys are discarded afterwards",
            lead.addr,
            o.shares,
            o.threshold,
        )
        return [*actions, init, restore, unseal, discard, _then(f)]
    if f.throwaway:
        # ours: restored (sealed, or about to be) or not yet: apply tells them apart
        return [*actions, restore, unseal, discard, _then(f)]
    if lead.sealed:
        # not ours and sealed: the original keys open it only if it holds the snapshot
        return [
            *actions,
            UnsealOriginal(
                "update",
                lead.addr,
                "initialized and sealed: unseal with the original keys; refused if they do not "
                f"open it or it is not cluster {m.cluster_id}",
                lead.addr,
            ),
        ]
    # unsealed, another cluster's data
    what = f.holds or "data"
    if not f.request.force:
        return [
            problem(
                lead.addr,
                f"the target Vault already holds data ({what}); refusing to restore over it. "
                "--force replaces ALL of it with the snapshot (with a root token of that Vault "
                "in VAULT_TOKEN)",
            )
        ]
    if not f.env_token:
        return [
            problem(
                lead.addr,
                "--force over a Vault holding data needs its root token in VAULT_TOKEN or "
                "BAO_TOKEN",
            )
        ]
    return [
        *actions,
        RestoreSnapshot(
            "delete",
            lead.addr,
            f"DESTROYS what it holds ({what}) and restores {name}, forced",
            lead.addr,
            "environment",
        ),
        unseal,
    ]


def _then(f: RestoreFacts) -> Action:
    """What the phases after the restore do with it, for the plan's reader."""
    return Action(
        "check",
        "then",
        f"vault-ready joins and unseals the other nodes; vault-config re-points kubernetes "
        f"auth at {f.cluster_host or 'the new cluster'} (host, CA, a new reviewer token); "
        "operator re-creates the operator's resources; populate finds every value there; "
        "verify waits until every Secret holds it",
    )


# -- the phase ---------------------------------------------------------------------------


class DrRestore(PhaseBase[RestoreFacts], name="dr-restore", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> RestoreFacts:
        snap = verified(ctx)
        request, manifest, contents = ctx.restore, snap.manifest, snap.contents
        assert request is not None
        t = ctx.target
        ws = ctx.waits()
        nodes = [_wait_answering(a, ws) for a in t.vault_addrs]
        server = server_of(vault.seal_status(t.leader))
        original, original_from = load_original(request, t.custody)
        throwaway = throwaway_path(ctx.settings.state_dir, t.leader).exists()
        facts = RestoreFacts(
            request,
            manifest,
            contents,
            server,
            nodes,
            original,
            original_from,
            t.custody.description,
            t.custody.load(),
            throwaway,
            env_token=credentials.env_token() is not None,
            cluster_host=t.kube.host,
        )
        lead = facts.leader
        if lead.initialized and not lead.sealed and not facts.restored and not throwaway:
            facts.holds = _holds(vault.active_addr(t.vault_addrs))
        return facts

    def plan(self, ctx: RunContext, facts: RestoreFacts) -> list[Action]:
        return plan_restore(facts)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        snap = verified(ctx)  # the bytes checked before the run: the file is not read again
        request, manifest = ctx.restore, snap.manifest
        assert request is not None
        ws = ctx.waits()
        for action in actions:
            match action:
                case InstallCustody(aside=aside):
                    self._install(ctx, request, aside)
                case InitThrowaway(addr=addr, shares=shares, threshold=threshold):
                    self._init(ctx, addr, shares, threshold)
                case RestoreSnapshot(addr=addr, credential=credential):
                    self._restore(ctx, snap, addr, credential, ws)
                case UnsealOriginal(addr=addr):
                    self._unseal_original(ctx, manifest, addr, ws)
                case DiscardThrowaway(addr=addr):
                    path = throwaway_path(ctx.settings.state_dir, addr)
                    path.unlink(missing_ok=True)
                    log.info(
                        "discarded the throwaway keys of %s's temporary initialization "
                        "(they open nothing now: the restored Vault has the original keys)",
                        addr,
                    )
                    failpoints.point("dr-restore:discarded")
                case Action(verb="check"):
                    pass
                case _:
                    raise TypeError(f"dr-restore cannot apply {action.kind}")

    # -- steps ---------------------------------------------------------------------------

    def _install(self, ctx: RunContext, request: RestoreRequest, aside: bool) -> None:
        custody = ctx.target.custody
        original, source = load_original(request, custody)
        if original is None:
            raise VaultStateError(f"{source} holds no init record any more")
        if aside:
            where = custody.set_aside(time.strftime("%Y%m%d-%H%M%S"), EXTRAS)
            log.info("set the init record in %s aside: %s", custody.description, where)
        if request.keys_from is not None:
            src = FileCustody(request.keys_from)
            for name in EXTRAS:  # the extras first: the record's presence means all is there
                extra = src.load_extra(name)
                if extra is not None:
                    custody.store_extra(name, extra)
            custody.store(original)
        log.info("the original init record is in %s", custody.description)
        failpoints.point("dr-restore:custody")

    def _init(self, ctx: RunContext, addr: str, shares: int, threshold: int) -> None:
        path = throwaway_path(ctx.settings.state_dir, addr)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        resp = vault.initialize(addr, shares, threshold)
        record = InitRecord.from_init_response(resp, shares, threshold, False, addr)
        del resp
        write_private(path, record.to_json(), overwrite=False)
        log.info("initialized %s as a throwaway (its record in %s)", addr, path)
        failpoints.point("dr-restore:throwaway-init")

    def _restore(
        self, ctx: RunContext, snap: Verified, addr: str, credential: str, ws: WaitSettings
    ) -> None:
        manifest = snap.manifest
        if credential == "environment":
            token = credentials.env_token()
            if token is None:
                raise VaultStateError("no token in VAULT_TOKEN or BAO_TOKEN")
        else:
            throwaway = _throwaway(ctx, addr)
            if vault.health(addr).sealed:
                # restored by a run that was killed after sending it? The original keys say.
                if _try_keys(addr, _original_keys(ctx)):
                    log.info("%s opens with the original keys: the snapshot is in already", addr)
                    return
                _unseal(addr, throwaway.unseal_keys_b64, ws)
            token = throwaway.root_token
        wait_for(partial(_active, addr), f"{addr} to become active", ws)
        failpoints.point("dr-restore:sending")
        log.info(
            "restoring %s (%d bytes, as checked: sha256 %s) on %s",
            manifest.file,
            len(snap.payload),
            snap.sha256,
            addr,
        )
        vault.restore_snapshot(addr, token, snap.payload, force=True)
        if credential == "environment":
            credentials.forget_env_token()  # the replaced Vault's: nothing takes it now
        failpoints.point("dr-restore:restored")
        wait_for(partial(_sealed_or_restored, addr, manifest), f"{addr} to apply the snapshot", ws)

    def _unseal_original(
        self, ctx: RunContext, manifest: Manifest, addr: str, ws: WaitSettings
    ) -> None:
        keys = _original_keys(ctx)
        h = vault.health(addr)
        record = ctx.target.custody.load()
        seal = vault.seal_status(addr) if h.sealed else {}
        former = (seal.get("t"), seal.get("n"))
        if record is not None and seal and former != (record.threshold, record.shares):
            raise VaultStateError(
                f"{addr} still combines key shares by its former seal configuration "
                f"(threshold {seal.get('t')} of {seal.get('n')}; the original keys are "
                f"{record.threshold} of {record.shares}): a node reads the restored one when it "
                "starts. Restart its Vault process, then run again"
            )
        if h.sealed and not _try_keys(addr, keys):
            raise VaultStateError(
                f"{addr}: the original keys do not open it; it holds another Vault's data. "
                "To replace it with the snapshot, unseal it with its own keys and run again "
                "with --force and its root token in VAULT_TOKEN"
            )
        try:
            h = wait_for(partial(_active, addr), f"{addr} to become active", ws)
        except WaitTimeout as exc:
            raise VaultStateError(
                f"{exc}. It opened with the original keys but does not lead: OpenBao refuses "
                "to become active when the audit devices of its server configuration differ "
                "from those in the restored data (its log says 'modifications to audit devices "
                "are not allowed'); give the new nodes the original's audit stanzas, restart "
                "them and run again"
            ) from None
        if h.cluster_id != manifest.cluster_id:
            raise VaultStateError(
                f"{addr} opened with the original keys but is cluster {h.cluster_id}, not the "
                f"snapshot's {manifest.cluster_id}: the restore did not take on this node "
                "(openbao/openbao#2455: restore onto a single node, then join the others)"
            )
        log.info("%s is unsealed with the original keys and holds the snapshot", addr)
        _check_credential(ctx, addr)
        failpoints.point("dr-restore:unsealed")


def _check_credential(ctx: RunContext, addr: str) -> None:
    """The restored Vault must take the run's token: the bootstrap-admin credential of the
    original record (renewed now) or one in the environment."""
    custody = ctx.target.custody
    token, source = credentials.resolve_token(custody)
    api = vault.Api(addr, token)
    try:
        if source.startswith("bootstrap-admin"):
            credentials.renew_admin(api, custody)
        else:
            api.request("GET", "auth/token/lookup-self")
    except VaultStateError as exc:
        if not source.startswith("bootstrap-admin"):
            raise VaultStateError(
                f"the token in {source} is not valid in the restored Vault (a token of the "
                "Vault it replaced is not): unset it and run again, and the restored "
                "bootstrap-admin credential is used"
            ) from None
        raise VaultStateError(
            f"{exc}. In a restored Vault the credential is as the snapshot holds it: one "
            "taken more than 768 h after the credential's last use holds it expired. Make a "
            "root token with the original unseal keys (bao operator generate-root; OpenBao "
            "2.5.3 and later answer it only on a listener with "
            "disable_unauthed_generate_root_endpoints = false), run again with it in "
            "VAULT_TOKEN, then revoke it"
        ) from None
    finally:
        api.client.adapter.close()


def _wait_answering(addr: str, ws: WaitSettings) -> vault.Health:
    def probe() -> vault.Health:
        h = vault.health(addr)
        if not h.answering:
            raise Pending(h.state)
        return h

    return wait_for(probe, f"Vault {addr} to answer", ws)


def _throwaway(ctx: RunContext, addr: str) -> InitRecord:
    path = throwaway_path(ctx.settings.state_dir, addr)
    if not path.exists():
        raise VaultStateError(
            f"{addr} is initialized, but the throwaway record of its temporary "
            f"initialization ({path}) is gone; if it holds nothing, wipe its storage and run "
            "again"
        )
    return InitRecord.from_json(path.read_text(encoding="utf-8"), str(path))


def _original_keys(ctx: RunContext) -> list[str]:
    record = ctx.target.custody.load()
    if record is None or record.pgp:
        raise VaultStateError(f"{ctx.target.custody.description} holds no plain original keys")
    return list(record.unseal_keys_b64)


def _try_keys(addr: str, keys: list[str]) -> bool:
    """Submit ``keys`` to a sealed node (after dropping any shares it holds): True if they
    unsealed it, False if they are not its keys. Shares of two key sets never mix."""
    vault.reset_unseal(addr)
    try:
        h = vault.submit_unseal_keys(addr, keys)
    except vault.VaultRequestError as exc:
        if exc.status == 400:
            log.info("%s refused those keys: %s", addr, exc)
            vault.reset_unseal(addr)
            return False
        raise
    if h.sealed:  # too few shares: not its key set (threshold higher than ours)
        vault.reset_unseal(addr)
        return False
    return True


def _unseal(addr: str, keys: list[str], ws: WaitSettings) -> None:
    def probe() -> None:
        if not _try_keys(addr, keys):
            raise VaultStateError(f"{addr}: the throwaway keys do not open it")

    wait_for(probe, f"{addr} to unseal", ws)


def _active(addr: str) -> vault.Health:
    h = vault.health(addr)
    if h.code != 200:
        raise Pending(h.state)
    return h


def _sealed_or_restored(addr: str, manifest: Manifest) -> str:
    h = vault.health(addr)
    if h.sealed and h.initialized:
        return "sealed"
    if not h.sealed and h.cluster_id == manifest.cluster_id:
        return "restored"  # the snapshot had this node's own keys
    raise Pending(h.state)
