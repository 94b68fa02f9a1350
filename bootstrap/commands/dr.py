"""``invoke dr.snapshot``: a raft snapshot of the running Vault, taken through the API with the
bootstrap-admin credential (its policy allows ``sys/storage/raft/snapshot``), checked, written
atomically with mode 0600, optionally encrypted to age recipients, and described by a sidecar
manifest (``<file>.manifest.json``: server, version, cluster id, time, catalog, sha256).

The snapshot holds Vault's data, encrypted by its barrier; the unseal keys that open it stay in
custody and are never written here. Keep both off-site, apart: ``dr.restore`` needs the
snapshot, its manifest, and a copy of the custody record.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.clients import vault
from bootstrap.core.errors import SnapshotError, UsageError
from bootstrap.model.snapshot import Manifest, inspect, manifest_path, server_of
from bootstrap.runtime import credentials
from bootstrap.runtime.custody import write_private
from bootstrap.runtime.target import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotPlan:
    """What ``dr.snapshot`` would do: which node, what it runs, where the files go."""

    addr: str
    server: str
    version: str
    cluster_id: str
    cluster_name: str
    out: Path
    manifest: Path
    recipients: int

    def lines(self) -> list[str]:
        enc = f", encrypted to {self.recipients} age recipient(s)" if self.recipients else ""
        return [
            f"snapshot {self.addr} ({self.server} {self.version}, cluster {self.cluster_name} "
            f"{self.cluster_id})",
            f"write {self.out} (mode 0600, atomically{enc})",
            f"write {self.manifest} (server, version, cluster, time, catalog, sha256)",
        ]


def parse_recipients(recipients: list[str]) -> list[Any]:
    """age recipients (``age1...``, or an SSH public key), each checked; UsageError names a
    bad one."""
    import pyrage

    out: list[Any] = []
    for n, text in enumerate(recipients, 1):
        text = text.strip()
        try:
            if text.startswith("age1"):
                out.append(pyrage.x25519.Recipient.from_str(text))
            elif text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
                out.append(pyrage.ssh.Recipient.from_str(text))
            else:
                raise pyrage.RecipientError("not an age or SSH public key")
        except pyrage.RecipientError:
            raise UsageError(
                f"--age-recipient #{n} ({text[:16]}...) is not an age public key (age1...) nor "
                "an SSH public key"
            ) from None
    return out


def plan(t: Target, out: Path, recipients: list[str], force: bool) -> SnapshotPlan:
    """Check the request and read the node it would snapshot; changes nothing."""
    if out.exists() and not force:
        raise UsageError(f"{out} exists; refusing to overwrite it (--force replaces it)")
    if out.exists() and not out.is_file():
        raise UsageError(f"{out} exists and is not a file")
    if not out.parent.is_dir():
        raise UsageError(f"the folder of {out} does not exist")
    parse_recipients(recipients)
    addr = vault.active_addr(t.vault_addrs)
    status = vault.seal_status(addr)
    if status.get("sealed", True):
        raise SnapshotError(f"{addr} is sealed: a snapshot needs an unsealed, active node")
    return SnapshotPlan(
        addr,
        server_of(status),
        str(status.get("version", "")),
        str(status.get("cluster_id", "")),
        str(status.get("cluster_name", "")),
        out,
        manifest_path(out),
        len(recipients),
    )


def take(p: SnapshotPlan, t: Target, catalog: str, recipients: list[str]) -> Manifest:
    """Take the snapshot ``p`` planned, check it, write it and its manifest."""
    token, source = credentials.resolve_token(t.custody)
    log.info("taking a raft snapshot of %s with the %s", p.addr, source)
    if source.startswith("bootstrap-admin"):
        # the snapshot carries the credential as it is: renewed now, it stays valid for a
        # whole period after the snapshot
        credentials.renew_admin(vault.Api(p.addr, token), t.custody)
    started = time.monotonic()
    data = vault.download_snapshot(p.addr, token)
    contents = inspect(data, f"the snapshot {p.addr} sent")
    encryption = None
    if recipients:
        import pyrage

        data = pyrage.encrypt(data, parse_recipients(recipients))
        encryption = "age"
    manifest = Manifest(
        file=p.out.name,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        server=p.server,
        version=p.version,
        cluster_id=p.cluster_id,
        cluster_name=p.cluster_name,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        catalog=catalog,
        raft_index=contents.index,
        raft_term=contents.term,
        encryption=encryption,
        recipients=len(recipients),
    )
    # the snapshot first: a manifest never describes a file that is not there
    write_private(p.out, data, overwrite=True)
    write_private(p.manifest, manifest.to_json(), overwrite=True)
    log.info("snapshot written in %.1f s", time.monotonic() - started)
    return manifest
