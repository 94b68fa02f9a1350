"""Phase 3, vault ready: wait until every node answers; initialize the leader if needed
(the init response goes to custody before anything else); join raft followers, then unseal
every node; wait until one node is active and every expected peer is a voter."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bootstrap.clients import vault
from bootstrap.core import failpoints
from bootstrap.core.errors import VaultStateError, WaitTimeout
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model.actions import Action
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import PhaseBase, RunContext
from bootstrap.runtime.credentials import resolve_token
from bootstrap.runtime.custody import InitRecord, keep_safe, read_unseal_keys, rescued

log = logging.getLogger(__name__)
#: One line on what the phase does.
SUMMARY = "wait for Vault, initialize (keys into custody first), unseal, join raft"


@dataclass
class ReadyFacts:
    nodes: list[vault.Health]
    record: InitRecord | None
    keys: list[str]  # usable unseal keys (custody or a keys file); never printed
    #: why the custody location is taken by something that is not an init record
    occupied: str | None = None
    #: rescue files left by a run whose custody refused the init record
    rescued: list[Path] = field(default_factory=list)
    #: where the init record is kept, as messages name it
    custody: str = "custody"
    #: raft peers the leader cannot reach, as ``out_of_contact`` says ("" when all can be)
    out_of_contact: str = ""


def wait_answering(addr: str, settings: WaitSettings) -> vault.Health:
    """Poll /v1/sys/health until the node gives one of the documented answers."""

    def probe() -> vault.Health:
        h = vault.health(addr)
        if h.code is None or (h.code >= 500 and h.code not in (501, 503)):
            raise Pending(h.state)
        if 400 <= h.code < 500 and h.code not in vault.HEALTH_STATES:
            raise VaultStateError(f"{addr}/v1/sys/health answered HTTP {h.code}")
        return h

    return wait_for(probe, f"Vault {addr} to answer", settings)


def unseal_keys(ctx: RunContext, record: InitRecord | None) -> list[str]:
    """The unseal keys to use, each checked an unseal key before it is sent: custody's plain
    keys, else those of ``bootstrap.unseal_keys_file`` or the file BAO_UNSEAL_KEYS_FILE names
    (a small regular file, one key per line; see :func:`read_unseal_keys`)."""
    if record is not None and not record.pgp:
        record.check_keys(ctx.target.custody.description)
        return list(record.unseal_keys_b64)
    path = ctx.settings.unseal_keys_file  # or BAO_UNSEAL_KEYS_FILE's (see Settings)
    if path is not None:
        return read_unseal_keys(path)
    return []


@dataclass(frozen=True)
class Initialize(Action):
    """Initialize the leader; the init record goes to custody before anything else."""

    addr: str
    shares: int
    threshold: int
    pgp_keys: tuple[str, ...]


@dataclass(frozen=True)
class JoinRaft(Action):
    addr: str
    leader: str


@dataclass(frozen=True)
class Unseal(Action):
    addr: str


@dataclass(frozen=True)
class AwaitRaft(Action):
    """Wait until the leader is in contact with every raft peer again."""


def _unseal_reason(node: vault.Health, facts: ReadyFacts, *, joins: bool = False) -> str:
    """What an Unseal says: why the node is sealed and whose keys unseal it (never a key)."""
    if joins:
        return "unseal once joined, with the leader's keys"
    if not node.initialized:
        return "unseal with the keys just initialized"
    if facts.record is not None and not facts.record.pgp:
        where = f"the keys in {facts.custody}"
    else:
        where = "the keys of bootstrap.unseal_keys_file"
    return f"sealed, as every restart leaves it: unseal with {where}"


def plan_ready(facts: ReadyFacts, s: Settings) -> list[Action]:
    """Pure: initialize, join and unseal what needs it; refuse what would lose keys."""
    leader, followers = facts.nodes[0], facts.nodes[1:]
    actions: list[Action] = []
    if not leader.initialized:
        if facts.occupied:
            return [
                Action(
                    "problem",
                    leader.addr,
                    f"not initialized, and the custody location is taken: {facts.occupied}; "
                    "the init record could not be stored there, so it will not initialize "
                    "(choose another custody location, or move that away)",
                )
            ]
        if facts.record is not None:
            return [
                Action(
                    "problem",
                    leader.addr,
                    f"not initialized, but {facts.custody} holds an init "
                    "record (of an earlier Vault?); move it away to initialize anew",
                )
            ]
        pgp = " encrypted to PGP keys" if s.vault_pgp_keys else ""
        actions.append(
            Initialize(
                "create",
                leader.addr,
                f"initialize with {s.vault_shares} shares, threshold "
                f"{s.vault_threshold}; keys{pgp} to {facts.custody}",
                addr=leader.addr,
                shares=s.vault_shares,
                threshold=s.vault_threshold,
                pgp_keys=tuple(s.vault_pgp_keys),
            )
        )
    elif not facts.keys and any(n.sealed for n in facts.nodes):
        why = (
            "the shares in custody are PGP-encrypted: decrypt them"
            if facts.record is not None
            else f"there is no init record in {facts.custody}: provide them"
        )
        if facts.rescued:
            why += (
                " (an earlier run left its init record in "
                + ", ".join(str(p) for p in facts.rescued)
                + ": move it into custody)"
            )
        return [
            Action(
                "problem",
                leader.addr,
                f"initialized and sealed, and {why} in bootstrap.unseal_keys_file "
                "(one per line) or a file named by BAO_UNSEAL_KEYS_FILE",
            )
        ]
    if leader.sealed:  # an uninitialized node reports sealed too
        actions.append(
            Unseal("update", leader.addr, _unseal_reason(leader, facts), addr=leader.addr)
        )
    # the followers reach the leader at its own address unless told another (a port
    # forward on this machine means nothing inside the followers' pods)
    join_at = s.vault_raft_leader_addr or leader.addr
    for node in followers:
        if not node.initialized:
            actions.append(
                JoinRaft(
                    "update",
                    node.addr,
                    f"join raft cluster of {join_at}",
                    addr=node.addr,
                    leader=join_at,
                )
            )
        # a node that joins is unsealed after joining, with the leader's keys
        if node.sealed or not node.initialized:
            reason = _unseal_reason(node, facts, joins=not node.initialized)
            actions.append(Unseal("update", node.addr, reason, addr=node.addr))
    if facts.out_of_contact and not actions:
        # every node answers unsealed, yet raft has lost one: wait for it to come back
        actions.append(AwaitRaft("update", leader.addr, facts.out_of_contact))
    return actions


class VaultReady(PhaseBase[ReadyFacts], name="vault-ready", summary=SUMMARY):
    def facts(self, ctx: RunContext) -> ReadyFacts:
        t = ctx.target
        nodes = [wait_answering(addr, ctx.waits()) for addr in t.vault_addrs]
        occupied = t.custody.occupied()
        record = None if occupied else t.custody.load()
        return ReadyFacts(
            nodes,
            record,
            unseal_keys(ctx, record),
            occupied,
            rescued(ctx.settings.state_dir),
            t.custody.description,
            self._raft_contact(ctx, nodes),
        )

    def _raft_contact(self, ctx: RunContext, nodes: list[vault.Health]) -> str:
        """``out_of_contact`` of a cluster whose every node is up and unsealed ("" for one
        node, a cluster still forming, or no token to ask with)."""
        active = [n for n in nodes if n.code == 200]
        if len(nodes) < 2 or len(active) != 1 or any(n.sealed for n in nodes):
            return ""
        try:
            token = resolve_token(ctx.target.custody)[0]
            peers = vault.raft_peers(active[0].addr, token)
        except (VaultStateError, vault.VaultRequestError, OSError):
            return ""
        stale = stale_peers(peers, [n.addr for n in nodes])
        return stale or _out_of_contact(active[0].addr, token, peers)

    def plan(self, ctx: RunContext, facts: ReadyFacts) -> list[Action]:
        return plan_ready(facts, ctx.settings)

    def apply(self, ctx: RunContext, actions: list[Action]) -> None:
        t = ctx.target
        ws = ctx.waits()
        changes = [a for a in actions if a.changes]
        if not changes:
            return
        keys: list[str] = []
        on_their_own: set[str] | None = None
        for action in changes:
            match action:
                case Initialize():
                    self._initialize(ctx, action)
                case JoinRaft(addr=addr, leader=leader):
                    if on_their_own is None:  # first join: the leader is active by now
                        joining = [a.addr for a in changes if isinstance(a, JoinRaft)]
                        on_their_own = self._joins_started(joining)
                    if addr not in on_their_own:
                        self._join(addr, leader)
                case AwaitRaft():
                    pass  # the wait below, for the whole cluster
                case Unseal(addr=addr):
                    keys = keys or self._keys(ctx)
                    self._unseal(addr, keys, ws)
                    if addr == t.leader:
                        # the cluster's active node: this one after its first init, another
                        # one when it comes back from a restart after the leader moved
                        wait_for(
                            partial(self._any_active, t.vault_addrs),
                            "an active node"
                            if len(t.vault_addrs) > 1
                            else f"{addr} to become active",
                            ws,
                        )
                case _:
                    raise TypeError(f"vault-ready cannot apply {action.kind}")
        self._wait_cluster(ctx, ws)

    def _joins_started(self, addrs: list[str]) -> set[str]:
        """The followers of ``addrs`` that start their raft join by themselves within
        :data:`JOIN_GRACE` seconds (all of them are waited for together).

        A node with ``retry_join`` in its configuration (the Helm charts' usual set-up) asks
        the leader for a join challenge every 2 s until it holds one; from then on it reports
        itself initialized. An explicit join on top of that makes a second challenge: the
        leader keeps only the newest per node, so the unseal may answer the older one and
        fail, or wait for the node's own loop to answer (seen as a follower's last unseal
        share with no answer on a busy machine). Such a node is never asked to join."""
        started: set[str] = set()

        def probe() -> None:
            for addr in addrs:
                if addr not in started and vault.health(addr).initialized:
                    started.add(addr)
            if len(started) < len(addrs):
                raise Pending(f"{len(started)} of {len(addrs)} started a join")

        with contextlib.suppress(WaitTimeout):
            wait_for(
                probe,
                "followers to start their raft join by themselves (retry_join)",
                WaitSettings(timeout=JOIN_GRACE, initial=0.25, maximum=1.0),
            )
        for addr in sorted(started):
            log.info("%s started its raft join by itself (retry_join): no join request", addr)
        return started

    def _join(self, addr: str, leader: str) -> None:
        try:
            vault.join_raft(addr, leader)
            log.info("asked %s to join the raft cluster of %s", addr, leader)
        except vault.VaultRequestError as exc:
            # its own retry_join may have begun in the meantime: the unseal tells
            log.info("join request for %s: %s; continuing", addr, exc)

    def _initialize(self, ctx: RunContext, action: Initialize) -> None:
        t = ctx.target
        pgp = list(action.pgp_keys) or None
        t.custody.probe()  # the record must have somewhere to go before it exists
        resp = vault.initialize(action.addr, action.shares, action.threshold, pgp)
        record = InitRecord.from_init_response(
            resp, action.shares, action.threshold, bool(pgp), action.addr
        )
        del resp
        keep_safe(t.custody, record, ctx.settings.state_dir)  # before any other call
        log.info("initialized %s; init record stored in %s", action.addr, t.custody.description)
        failpoints.point("vault-ready:init")

    def _keys(self, ctx: RunContext) -> list[str]:
        t = ctx.target
        keys = unseal_keys(ctx, t.custody.load())
        if not keys:
            raise VaultStateError(
                f"{t.leader} is initialized and its shares, PGP-encrypted, are in "
                f"{t.custody.description}; decrypt them into bootstrap.unseal_keys_file "
                "(one per line) and run again"
            )
        return keys

    def _any_active(self, addrs: list[str]) -> vault.Health:
        nodes = [vault.health(a) for a in addrs]
        for h in nodes:
            if h.code == 200:
                return h
        raise Pending(", ".join(str(h) for h in nodes))

    def _unseal(self, addr: str, keys: list[str], ws: WaitSettings) -> None:
        if not keys:
            raise VaultStateError(f"{addr} is sealed and no unseal keys are available")

        def probe() -> vault.Health:
            try:
                h = vault.submit_unseal_keys(addr, keys)
            except vault.VaultRequestError as exc:
                if exc.transient:
                    raise Pending(str(exc)) from None
                raise
            if h.sealed:
                raise Pending(h.state)
            return h

        wait_for(probe, f"{addr} to unseal", ws)
        log.info("unsealed %s", addr)
        failpoints.point("vault-ready:unsealed")

    def _wait_cluster(self, ctx: RunContext, ws: WaitSettings) -> None:
        t = ctx.target
        if len(t.vault_addrs) < 2:
            return
        try:
            token: str | None = resolve_token(t.custody)[0]
        except VaultStateError:
            token = None  # PGP shares and no token: check membership by health alone
        expected = len(t.vault_addrs)

        def probe() -> str:
            nodes = [vault.health(a) for a in t.vault_addrs]
            active = [n for n in nodes if n.code == 200]
            if len(active) != 1 or any(n.sealed for n in nodes):
                raise Pending(", ".join(str(n) for n in nodes))
            if token is None:
                return "one active node, all unsealed"
            try:
                peers = vault.raft_peers(active[0].addr, token)
            except vault.VaultRequestError as exc:
                raise Pending(str(exc)) from None
            voters = [p for p in peers if p.get("voter")]
            if len(voters) != expected:
                raise Pending(
                    f"{len(voters)} of {expected} raft peers are voters"
                    + _autopilot_view(active[0].addr, token)
                )
            if lost := stale_peers(peers, t.vault_addrs) or _out_of_contact(
                active[0].addr, token, peers
            ):
                raise Pending(lost)
            return f"{len(voters)} voters"

        wait_for(probe, "one active node and every raft peer a voter, in contact", ws)


#: Seconds a follower gets to start its raft join by itself (``retry_join`` tries every
#: 2 s) before the bootstrap asks it to join; see :meth:`VaultReady._joins_started`.
JOIN_GRACE = 8.0


def _host(address: str) -> str:
    """The host of ``scheme://host:port`` or ``host:port`` (brackets of IPv6 removed)."""
    netloc = address.split("://", 1)[-1].split("/", 1)[0]
    return netloc.rsplit(":", 1)[0].strip("[]") if ":" in netloc else netloc


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def stale_peers(peers: list[JsonObject], addrs: list[str]) -> str:
    """Pure: the raft peers recorded at an IP no node has now, when nodes and peers are both
    addressed by IP and at least one peer's IP is a node's (the same addressing; port
    forwards and names are left alone). A pod that came back at a new IP stays out of raft:
    the leader keeps calling its old address."""
    hosts = {_host(a) for a in addrs}
    if not hosts or not all(_is_ip(h) for h in hosts):
        return ""
    recorded = {str(p.get("node_id")): str(p.get("address") or "") for p in peers}
    ips = {nid: _host(a) for nid, a in recorded.items() if _is_ip(_host(a))}
    if not set(ips.values()) & hosts:
        return ""
    lost = [f"{nid} at {recorded[nid]}" for nid, ip in sorted(ips.items()) if ip not in hosts]
    if not lost:
        return ""
    return (
        "raft peers recorded at an address no node has now: "
        + "; ".join(lost)
        + f" (the nodes are at {', '.join(sorted(hosts))}; a pod that came back at a new IP "
        "cannot rejoin: name raft peers by DNS, e.g. a headless Service)"
    )


def _out_of_contact(addr: str, token: str, peers: list[JsonObject]) -> str:
    """``out_of_contact`` of autopilot's view ("" if it cannot be read: an admin policy
    written before it could)."""
    try:
        servers = vault.autopilot_state(addr, token)
    except (vault.VaultRequestError, OSError, ValueError):
        return ""
    return out_of_contact(servers, peers)


def out_of_contact(servers: JsonObject, peers: list[JsonObject]) -> str:
    """Pure: the raft peers autopilot finds unhealthy, with the address the leader calls
    each at ("" when all are healthy). A follower whose pod came back at a new IP is
    unsealed but stays unhealthy, the leader calling its old address, unless raft peers are
    named by DNS."""
    where = {p.get("node_id"): p.get("address") for p in peers}
    sick = [
        f"{sid} at {where.get(sid) or srv.get('address')} (last contact {srv.get('last_contact')})"
        for sid, srv in sorted(servers.items())
        if isinstance(srv, dict) and srv.get("healthy") is False
    ]
    return ("raft peers out of contact with the leader: " + "; ".join(sick)) if sick else ""


def _autopilot_view(addr: str, token: str) -> str:
    """What raft autopilot says of the servers that are not voters yet ("" if it cannot be
    read): a follower is promoted only once healthy for its stabilization time."""
    try:
        servers = vault.autopilot_state(addr, token)
    except (vault.VaultRequestError, OSError, ValueError):
        return ""
    waiting = [
        f"{sid}: {srv.get('status')}, healthy {srv.get('healthy')}, "
        f"last contact {srv.get('last_contact')}, stable since {srv.get('stable_since')}"
        for sid, srv in sorted(servers.items())
        if isinstance(srv, dict) and srv.get("status") not in ("voter", "leader")
    ]
    return f" (autopilot: {'; '.join(waiting)})" if waiting else ""
