"""Disaster recovery rehearsed end to end on real sandboxes, through the CLI as a user runs it:

- sandbox A (one OpenBao node) is bootstrapped with the example catalog; ``dr.snapshot``
  writes a snapshot (and an age-encrypted one), the custody record is copied off-site, and A
  is destroyed entirely (its processes stopped, its folder removed);
- sandbox B (new PKI, new ServiceAccount issuer, new ports, one node): a corrupt snapshot, a
  truncated one, a wrong checksum, a snapshot of a newer server and missing keys are refused
  with nothing changed; then ``dr.restore``, without the demo values (nothing is typed again),
  brings every Secret back synced with A's values and the isolation proof passes; a workload
  deployed before the restore (a restart target) is not restarted by it: the operator (VSO
  1.4.1 by default) fills its Secrets once, from values Vault holds before the operator's
  objects exist, and restarts nothing then or over the refresh period verify watches;
- sandbox C (three OpenBao nodes) restores the encrypted snapshot, ``dr.restore`` SIGKILLed at
  every step boundary and run again after each: it converges to the same end;
- a Vault that already holds data is refused, and ``--force`` says what it would destroy.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import signal
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.clients.kv import read_kv
from bootstrap.model.catalog import load_catalog
from bootstrap.model.domain import kv_secrets, syncs
from bootstrap.model.snapshot import Manifest, manifest_path
from bootstrap.runtime.custody import FileCustody
from tests.conftest import EXAMPLE
from tests.integration.conftest import TOOLS_DIR, Box
from tests.integration.helpers import (
    admin_api,
    demo_env,
    generated_catalog_text,
    held_at,
    prove_isolation,
    revision,
    task_cli,
    wait_until,
    workload,
)

CATALOG = load_catalog(EXAMPLE)
SYNCS = syncs(CATALOG)
NAMESPACES = {s.namespace for s in SYNCS}


@dataclass
class Original:
    directory: Path
    snapshot: Path
    encrypted: Path
    identity: Path
    keys: Path  # the off-site copy of the custody record
    secrets: dict[tuple[str, str], dict[str, bytes]]
    kv: dict[str, dict[str, Any]]
    issuer: str
    apiserver: str
    ca: str
    version: str
    output: str
    runs: dict[str, Any]


def _secret_data(kube: Kube, namespace: str, name: str) -> dict[str, bytes]:
    data = kube.read_secret(namespace, name) or {}
    return {k: v for k, v in data.items() if k != "_raw"}


def _kv(box: Box) -> dict[str, dict[str, Any]]:
    """Every KV path's keys and version."""
    api = admin_api(box)
    out = {}
    for path, _ in kv_secrets(CATALOG):
        data, version = read_kv(api, path)
        out[path] = {"data": data, "version": version}
    return out


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Original:
    """Sandbox A: bootstrapped, snapshotted, its custody copied off-site, then destroyed."""
    import pyrage

    tmp = tmp_path_factory.mktemp("dr-a")
    directory = tmp / "a"
    state = sandbox.up(directory, TOOLS_DIR, ha=False, timeout=90)
    try:
        box = Box(state, directory, [])
        env = {**demo_env(), **box.cli_env(tmp / "a-state")}
        run = task_cli("bootstrap", env, "--catalog", str(EXAMPLE))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        kube = Kube(state.kubeconfig)
        secrets = {
            (s.namespace, s.destination): _secret_data(kube, s.namespace, s.destination)
            for s in SYNCS
        }
        kv = _kv(box)
        snap = tmp / "offsite" / "vault.snap"
        snap.parent.mkdir()
        taken = task_cli("dr.snapshot", env, "--catalog", str(EXAMPLE), "--out", str(snap))
        assert taken.returncode == 0, taken.stdout + taken.stderr
        identity = pyrage.x25519.Identity.generate()
        (tmp / "age.key").write_text(f"# test identity\n{identity}\n")
        encrypted = tmp / "offsite" / "vault.snap.age"
        sealed = task_cli(
            "dr.snapshot",
            env,
            "--catalog",
            str(EXAMPLE),
            "--out",
            str(encrypted),
            "--age-recipient",
            str(identity.to_public()),
        )
        assert sealed.returncode == 0, sealed.stdout + sealed.stderr
        planned = task_cli("dr.snapshot", env, "--out", str(tmp / "planned.snap"), "--plan")
        again = task_cli("dr.snapshot", env, "--out", str(snap))
        shutil.copytree(directory / "custody", tmp / "offsite" / "custody")
        version = vault.health(state.bao_addr).version
        issuer, apiserver = state.sa_issuer, state.apiserver_url
        ca = Path(state.ca_cert).read_text()
    finally:
        sandbox.down(directory)
    assert not directory.exists()
    return Original(
        directory,
        snap,
        encrypted,
        tmp / "age.key",
        tmp / "offsite" / "custody" / "vault-init.json",
        secrets,
        kv,
        issuer,
        apiserver,
        ca,
        version,
        taken.stdout + taken.stderr,
        {"planned": planned, "again": again, "planned-file": (tmp / "planned.snap").exists()},
    )


def _variant(original: Original, folder: Path, name: str, data: bytes, **manifest: Any) -> Path:
    """A copy of the snapshot with other bytes and a manifest that describes them (so only the
    snapshot's own checksums can tell), or with manifest fields overridden."""
    import hashlib

    path = folder / name
    path.write_bytes(data)
    m = json.loads(manifest_path(original.snapshot).read_text())
    m.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data), file=name)
    m.update(manifest)
    manifest_path(path).write_text(json.dumps(m))
    return path


def _corrupt(snapshot: bytes) -> bytes:
    """The snapshot with one byte of state.bin flipped, gzip'd again: a sound gzip and tar."""
    raw = bytearray(gzip.decompress(snapshot))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = tar.getmember("state.bin")
        at = member.offset_data + member.size // 2
    raw[at] ^= 0xFF
    return gzip.compress(bytes(raw))


def _with_member(snapshot: bytes, name: str, data: bytes) -> bytes:
    """The snapshot's own members (as they are) and one more, ``name``, gzip'd again."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(snapshot))) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as dst,
    ):
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member))
        extra = tarfile.TarInfo(name)
        extra.size = len(data)
        dst.addfile(extra, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def _bad_keys(original: Original, folder: Path) -> Path:
    """The original record with 10^6 shares and threshold 0 (issue 23, finding 8)."""
    record = json.loads(original.keys.read_text())
    path = folder / "vault-init.json"
    path.write_text(json.dumps({**record, "shares": 1_000_000, "threshold": 0}))
    return path


@dataclass
class Restored:
    box: Box
    env: dict[str, str]
    state_dir: Path
    report: dict[str, Any]
    output: str
    refusals: dict[str, Any] = field(default_factory=dict)
    untouched: dict[str, Any] = field(default_factory=dict)
    #: a restart target deployed before the restore, as it was before and after
    rollouts: dict[str, Any] = field(default_factory=dict)


def _restore(
    env: dict[str, str], snapshot: Path, *args: str, failpoints: str = "", report: Path
) -> Any:
    return task_cli(
        "dr.restore",
        env,
        "--catalog",
        str(EXAMPLE),
        "--snapshot",
        str(snapshot),
        "--report",
        str(report),
        *args,
        failpoints=failpoints,
    )


def _rollout(kube: Kube) -> tuple[Any, ...]:
    """Deployment webapp/webapp as a restart shows it: generation (the operator's stamp on
    the pod template bumps it at once), the stamp, the revision ("" until the first)."""
    obj = kube.get("apps/v1", "Deployment", "webapp", "webapp") or {}
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    rev = revision(kube, "webapp", "Deployment", "webapp")
    stamp = (template.get("annotations") or {}).get("vso.secrets.hashicorp.com/restartedAt")
    return ((obj.get("metadata") or {}).get("generation"), stamp, rev) if rev else ()


def _untouched(box: Box, state_dir: Path, namespaces_before: set[str]) -> dict[str, Any]:
    kube = Kube(box.state.kubeconfig)
    return {
        "initialized": [vault.health(a).initialized for a in box.state.bao_addrs],
        "custody": box.settings().custody_file.exists(),  # type: ignore[union-attr]
        "namespaces": kube.namespaces() - namespaces_before,
        "dr-state": sorted(p.name for p in (state_dir / "dr").glob("*"))
        if (state_dir / "dr").exists()
        else [],
    }


@pytest.fixture(scope="module")
def single(original: Original, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    """Sandbox B, one node: every refusal first (each must change nothing), then the restore."""
    tmp = tmp_path_factory.mktemp("dr-b")
    directory = tmp / "b"
    state = sandbox.up(directory, TOOLS_DIR, ha=False, timeout=90)
    try:
        box = Box(state, directory, [vault.health(a) for a in state.bao_addrs])
        state_dir = tmp / "b-state"
        env = box.cli_env(state_dir)  # no demo values: nothing is typed again
        kube = Kube(state.kubeconfig)
        # a workload the rebuild's GitOps deployed already: the restart target of every
        # webapp Secret (its namespace is used as it is by the placeholders phase)
        kube.ensure_namespace("webapp")
        workload(kube, "webapp", "Deployment", "webapp")
        deployed = wait_until(lambda: _rollout(kube), "webapp's first revision")
        before = kube.namespaces()
        keys = ("--keys", str(original.keys))
        data = original.snapshot.read_bytes()
        bad = tmp / "bad"
        bad.mkdir()
        (bad / "keys").mkdir()
        traversal = _with_member(data, "../../x", b"written outside\n")
        cases = {
            "corrupt": (_variant(original, bad, "corrupt.snap", _corrupt(data)), keys),
            "truncated": (_variant(original, bad, "truncated.snap", data[: len(data) // 2]), keys),
            "checksum": (_variant(original, bad, "checksum.snap", data, sha256="0" * 64), keys),
            "traversal": (_variant(original, bad, "traversal.snap", traversal), keys),
            "bad-keys": (original.snapshot, ("--keys", str(_bad_keys(original, bad / "keys")))),
            # the cases above are refused before the cluster lock, those below after it
            "newer": (_variant(original, bad, "newer.snap", data, version="99.1.0"), keys),
            "no-keys": (original.snapshot, ()),
            "no-keys-plan": (original.snapshot, ("--plan",)),
            "plan": (original.snapshot, (*keys, "--plan")),
        }
        refusals, untouched = {}, {}
        for name, (path, extra) in cases.items():
            refusals[name] = _restore(env, path, *extra, report=tmp / f"{name}.json")
            untouched[name] = _untouched(box, state_dir, before)
        report = tmp / "restore.json"
        # the restore reads a copy of the snapshot, swapped for a corrupt one (its manifest
        # too) once checked, just before the send: what is sent is what was checked
        (tmp / "swap").mkdir()
        copy = tmp / "swap" / original.snapshot.name
        shutil.copy2(original.snapshot, copy)
        shutil.copy2(manifest_path(original.snapshot), manifest_path(copy))
        # no --skip-quiet-check (dr.restore has none): its verify watches the deployed
        # restart target for one refresh period once the Secrets are filled
        args = ("--catalog", str(EXAMPLE), "--snapshot", str(copy), "--report", str(report))
        with held_at(
            "dr-restore:sending", tmp / "swap", env, *args, *keys, task="dr.restore"
        ) as held:
            swapped = _variant(original, tmp / "swap", copy.name, _corrupt(data))
        proc = held.done
        assert proc is not None and proc.returncode == 0, proc and (
            proc.stdout[-4000:] + proc.stderr[-4000:]
        )
        refusals["swapped"] = swapped.read_bytes() != data
        yield Restored(
            box,
            env,
            state_dir,
            json.loads(report.read_text()),
            proc.stdout + proc.stderr,
            refusals,
            untouched,
            {"before": deployed, "after": _rollout(kube)},
        )
    finally:
        sandbox.down(directory)


# The points where a restore is killed, in the order a run reaches them: inside the restore
# phase (custody written, throwaway initialized, snapshot sent, unsealed with the original
# keys, throwaway discarded), then at the end of each later phase.
KILLS = [
    "dr-restore:custody",
    "dr-restore:throwaway-init",
    "dr-restore:restored",
    "dr-restore:unsealed",
    "dr-restore:discarded",
    "phase:dr-restore:done",
    "phase:placeholders:done",
    "phase:vault-ready:done",
    "phase:vault-config:done",
    "phase:operator:done",
    "phase:populate:done",
    "phase:verify:done",
]


@pytest.fixture(scope="module")
def ha_killed(original: Original, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    """Sandbox C, three nodes: the encrypted snapshot restored by runs killed at every
    boundary in turn, then one run to the end."""
    tmp = tmp_path_factory.mktemp("dr-c")
    directory = tmp / "c"
    state = sandbox.up(directory, TOOLS_DIR, ha=True, timeout=90)
    try:
        box = Box(state, directory, [vault.health(a) for a in state.bao_addrs])
        state_dir = tmp / "c-state"
        env = box.cli_env(state_dir)
        args = ("--keys", str(original.keys), "--age-identity", str(original.identity))
        kills = {}
        for point in KILLS:
            started = time.monotonic()
            killed = _restore(
                env, original.encrypted, *args, failpoints=f"{point}=kill", report=tmp / "k.json"
            )
            assert killed.returncode == -signal.SIGKILL, (
                f"{point}: not killed (exit {killed.returncode})\n"
                f"{killed.stdout[-3000:]}{killed.stderr[-3000:]}"
            )
            kills[point] = round(time.monotonic() - started, 1)
        report = tmp / "restore.json"
        proc = _restore(env, original.encrypted, *args, report=report)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        print(f"kill chain (seconds per killed run): {kills}")
        yield Restored(
            box, env, state_dir, json.loads(report.read_text()), proc.stdout + proc.stderr
        )
    finally:
        sandbox.down(directory)


@pytest.fixture(scope="module")
def forced(original: Original, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restored]:
    """Sandbox D, one node, bootstrapped with a catalog of its own (its root token kept), then
    a restore refused (custody holds D's record), then forced with D's root token."""
    tmp = tmp_path_factory.mktemp("dr-d")
    directory = tmp / "d"
    state = sandbox.up(directory, TOOLS_DIR, ha=False, timeout=90)
    try:
        box = Box(state, directory, [])
        env = box.cli_env(tmp / "d-state")
        catalog = tmp / "other.yaml"
        catalog.write_text(generated_catalog_text("dother", {"config": ["a"]}))
        first = task_cli("bootstrap", env, "--catalog", str(catalog), "--skip", "finish")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        own = FileCustody(box.settings().custody_file).load()  # type: ignore[arg-type]
        assert own is not None
        cluster = vault.health(state.bao_addr).cluster_id
        keys = ("--keys", str(original.keys))
        refused = _restore(env, original.snapshot, *keys, report=tmp / "refused.json")
        after_refusal = vault.health(state.bao_addr).cluster_id
        report = tmp / "forced.json"
        proc = _restore(
            {**env, "VAULT_TOKEN": own.root_token},
            original.snapshot,
            *keys,
            "--force",
            report=report,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
        yield Restored(
            box,
            env,
            tmp / "d-state",
            json.loads(report.read_text()),
            proc.stdout + proc.stderr,
            {"refused": refused, "own": own},
            {"before": cluster, "after-refusal": after_refusal},
        )
    finally:
        sandbox.down(directory)


# -- the snapshot --------------------------------------------------------------------------


def test_the_snapshot_is_private_described_and_holds_no_key(original: Original) -> None:
    for path in (original.snapshot, original.encrypted):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        m = Manifest.from_text(manifest_path(path).read_text(), str(path))
        assert m.server == "openbao" and m.version == original.version
        assert m.catalog == CATALOG.name and m.bytes == path.stat().st_size
        assert m.cluster_id and m.raft_index > 0
    assert (
        Manifest.from_text(manifest_path(original.encrypted).read_text(), "x").encryption == "age"
    )
    assert gzip.decompress(original.snapshot.read_bytes())  # a raft snapshot, readable
    # issue 23, finding 7: a real snapshot holds exactly the members the check accepts,
    # regular files, and its data barely compresses (the bound on declared sizes)
    raw_tar = gzip.decompress(original.snapshot.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw_tar)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "meta.json",
        "state.bin",
        "SHA256SUMS",
        "SHA256SUMS.sealed",
    ]
    assert all(m.isfile() for m in members)
    ratio = sum(m.size for m in members) / original.snapshot.stat().st_size
    print(f"real snapshot: {original.snapshot.stat().st_size} bytes, members {ratio:.1f}x that")
    assert ratio < 100
    # the unseal keys and tokens stay in custody: not in the snapshot, raw or unpacked
    record = FileCustody(original.keys).load()
    admin = FileCustody(original.keys).load_extra("admin")
    assert record is not None and admin is not None
    raw = original.snapshot.read_bytes()
    haystacks = [
        raw,
        gzip.decompress(raw),
        original.encrypted.read_bytes(),
        original.output.encode(),
    ]
    for needle in [*record.unseal_keys_b64, record.root_token, admin["token"]]:
        for hay in haystacks:
            assert needle.encode() not in hay


def test_a_snapshot_plan_writes_nothing_and_a_snapshot_is_never_overwritten(
    original: Original,
) -> None:
    planned = original.runs["planned"]
    assert planned.returncode == 0, planned.stderr
    assert "would snapshot http://127.0.0.1:" in planned.stdout
    assert "(openbao " in planned.stdout and not original.runs["planned-file"]
    again = original.runs["again"]
    assert again.returncode == 2
    assert "exists; refusing to overwrite it (--force replaces it)" in again.stderr


# -- refusals: nothing changes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("corrupt", "does not match its checksum in SHA256SUMS (the snapshot is corrupt)"),
        ("truncated", "is not a readable raft snapshot"),
        ("checksum", "does not match its manifest"),
        ("newer", "newer than the target's"),
        # issue 23, finding 7: only a raft snapshot's own members, refused before custody
        # and the throwaway init (OpenBao refused it only after both, before)
        ("traversal", "member '../../x' is not one of a raft snapshot's members"),
        # issue 23, finding 8: refused before custody is written (the restore after these
        # refusals, with the right keys, is not refused as "another Vault")
        ("bad-keys", "shares 1000000 is outside OpenBao's limits (1 to 255)"),
        ("no-keys", "missing original keys"),
        # issue 23, finding 7: a plan with a problem exits non-zero
        ("no-keys-plan", "missing original keys"),
    ],
)
def test_a_bad_snapshot_or_missing_keys_is_refused_and_nothing_changes(
    single: Restored, case: str, message: str
) -> None:
    proc = single.refusals[case]
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    left = single.untouched[case]
    assert left["initialized"] == [False], left  # Vault never initialized
    assert left["custody"] is False and left["dr-state"] == [], left
    assert not (left["namespaces"] & NAMESPACES), left  # no placeholder, no operator object
    if case in ("corrupt", "truncated", "checksum", "traversal", "bad-keys"):
        assert left["namespaces"] == set(), left  # refused before the lock, even
    if case == "no-keys-plan":
        assert proc.returncode == 1 and "problem" in proc.stdout, proc.stdout[-2000:]


def test_issue_23_finding_7_the_bytes_restored_are_the_bytes_checked(single: Restored) -> None:
    """The snapshot file (and its manifest) swapped for a corrupt one after the check, as the
    restore was about to send it: the restore sent the bytes it had checked and succeeded."""
    assert single.refusals["swapped"] is True
    assert "as checked: sha256" in single.output


def test_a_restore_plan_says_what_it_would_do_and_does_nothing(
    single: Restored, original: Original
) -> None:
    proc = single.refusals["plan"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for said in (
        "initialize once as a throwaway (5 shares, threshold 3, as the original",
        f"restore {original.snapshot.name} (raft index",
        "unseal with the original keys",
        f"re-points kubernetes auth at {single.box.state.apiserver_url}",
        "planned once dr-restore has applied",
    ):
        assert said in out, out[-3000:]
    left = single.untouched["plan"]
    assert left["initialized"] == [False] and left["custody"] is False, left
    assert left["dr-state"] == [] and not (left["namespaces"] & NAMESPACES), left


# -- the rehearsal: one node -----------------------------------------------------------------


def _assert_back(restored: Restored, original: Original) -> None:
    kube = Kube(restored.box.state.kubeconfig)
    for s in SYNCS:
        got = _secret_data(kube, s.namespace, s.destination)
        assert got == original.secrets[(s.namespace, s.destination)], (s.namespace, s.destination)
    assert _kv(restored.box) == original.kv  # generated values too: never regenerated
    status = task_cli("status", restored.env, "--catalog", str(EXAMPLE), "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)
    assert len(rows) == len(SYNCS)
    assert {r["state"] for r in rows} == {"synced"}, rows


def test_every_secret_comes_back_synced_with_the_original_values(
    single: Restored, original: Original
) -> None:
    _assert_back(single, original)
    assert prove_isolation(single.box, CATALOG) > 0


def test_the_new_cluster_is_new_and_kubernetes_auth_points_at_it(
    single: Restored, original: Original
) -> None:
    state = single.box.state
    assert state.sa_issuer != original.issuer
    assert state.apiserver_url != original.apiserver
    assert Path(state.ca_cert).read_text() != original.ca
    config = admin_api(single.box).read("auth/kubernetes/config")
    assert config is not None
    assert config["data"]["kubernetes_host"] == state.apiserver_url
    assert config["data"]["kubernetes_ca_cert"].strip() == Path(state.ca_cert).read_text().strip()


def test_nothing_is_written_again_and_the_throwaway_keys_are_gone(
    single: Restored, original: Original
) -> None:
    phases = {p["name"]: p for p in single.report["phases"]}
    assert single.report["ok"] is True
    assert phases["populate"]["status"] == "no-change"
    assert [a for a in phases["populate"]["actions"] if a["verb"] != "check"] == []
    restore = [a["reason"] for a in phases["dr-restore"]["actions"]]
    assert any("throwaway" in r for r in restore) and any("discard" in r for r in restore)
    assert "discarded the throwaway keys" in single.output
    assert list((single.state_dir / "dr").iterdir()) == []
    # the target's custody now holds the original cluster's record, privately
    custody = FileCustody(single.box.settings().custody_file)  # type: ignore[arg-type]
    record, first = custody.load(), FileCustody(original.keys).load()
    assert record is not None and first is not None
    assert record.unseal_keys_b64 == first.unseal_keys_b64
    assert stat.S_IMODE(custody.path.stat().st_mode) == 0o600


def test_the_restore_restarts_no_workload(single: Restored) -> None:
    """The rebuild fills the Secrets from values Vault held before the VaultStaticSecrets
    existed (each one's first sync) and restarts nothing; verify watched for it."""
    assert single.rollouts["before"] == (1, None, "1"), single.rollouts
    assert single.rollouts["after"] == single.rollouts["before"], single.rollouts
    assert "watching 1 restart target(s) for 33 s" in single.output, single.output[-3000:]
    assert "no restart target restarted in 33s" in single.output, single.output[-3000:]


def test_a_second_restore_changes_nothing(single: Restored, original: Original) -> None:
    report = single.state_dir / "again.json"
    again = _restore(single.env, original.snapshot, "--keys", str(original.keys), report=report)
    assert again.returncode == 0, again.stderr[-3000:]
    phases = json.loads(report.read_text())["phases"]
    changed = {p["name"] for p in phases if p["status"] == "applied"}
    assert changed == set(), phases


# -- the rehearsal: three nodes, killed at every boundary ----------------------------------


def test_killed_at_every_boundary_an_ha_restore_converges(
    ha_killed: Restored, original: Original
) -> None:
    _assert_back(ha_killed, original)
    assert prove_isolation(ha_killed.box, CATALOG) > 0
    addrs = ha_killed.box.state.bao_addrs
    nodes = [vault.health(a) for a in addrs]
    assert sorted(cast(int, n.code) for n in nodes) == [200, 429, 429], nodes
    assert len({n.cluster_id for n in nodes}) == 1
    peers = vault.raft_peers(addrs[0], admin_api(ha_killed.box).client.token)
    assert sum(1 for p in peers if p.get("voter")) == 3
    assert list((ha_killed.state_dir / "dr").iterdir()) == []
    phases = {p["name"]: p for p in ha_killed.report["phases"]}
    assert phases["populate"]["status"] == "no-change"


# -- a Vault that holds data ---------------------------------------------------------------


def test_a_vault_holding_data_is_refused_and_force_says_what_it_destroys(
    box: Box, first_run: dict[str, Any], original: Original, tmp_path: Path
) -> None:
    token = admin_api(box).client.token
    cluster = vault.health(vault.active_addr(box.state.bao_addrs)).cluster_id
    env = box.cli_env(
        tmp_path / "state",
        INVOKE_BOOTSTRAP_CUSTODY_FILE=str(tmp_path / "custody" / "vault-init.json"),
        VAULT_TOKEN=token,
    )
    keys = ("--keys", str(original.keys))
    refused = _restore(env, original.snapshot, *keys, report=tmp_path / "r.json")
    assert refused.returncode == 1
    assert "already holds data (secrets engines" in refused.stderr, refused.stderr[-2000:]
    assert "--force replaces ALL of it" in refused.stderr
    assert not (tmp_path / "custody").exists()  # nothing installed
    planned = _restore(
        env, original.snapshot, *keys, "--force", "--plan", report=tmp_path / "p.json"
    )
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert "DESTROYS what it holds (secrets engines" in planned.stdout, planned.stdout[-3000:]
    assert not (tmp_path / "custody").exists()
    assert vault.health(vault.active_addr(box.state.bao_addrs)).cluster_id == cluster


def test_force_replaces_a_vault_holding_data_and_keeps_its_keys(
    forced: Restored, original: Original
) -> None:
    refused = forced.refusals["refused"]
    assert refused.returncode == 1
    assert "holds the init record of another Vault" in refused.stderr, refused.stderr[-2000:]
    assert forced.untouched["after-refusal"] == forced.untouched["before"]
    restore = [
        a["reason"]
        for a in {p["name"]: p for p in forced.report["phases"]}["dr-restore"]["actions"]
    ]
    assert any(r.startswith("set aside the record there (kept)") for r in restore), restore
    assert any("DESTROYS what it holds (secrets engines" in r for r in restore), restore
    assert "held a token of the replaced Vault; the run no longer uses it" in forced.output
    # the replaced Vault's record is kept, aside; custody holds the original's now
    custody = forced.box.settings().custody_file
    assert custody is not None
    (aside,) = custody.parent.glob("replaced-*/vault-init.json")
    kept = FileCustody(aside).load()
    assert kept is not None
    assert kept.unseal_keys_b64 == forced.refusals["own"].unseal_keys_b64
    record = FileCustody(custody).load()
    assert record is not None
    assert record.unseal_keys_b64 == FileCustody(original.keys).load().unseal_keys_b64  # type: ignore[union-attr]
    _assert_back(forced, original)
    assert vault.health(forced.box.state.bao_addr).cluster_id != forced.untouched["before"]


def test_kubernetes_custody_is_set_aside_as_copies_before_any_original_goes(
    box: Box, unique: str
) -> None:
    from bootstrap.runtime.custody import InitRecord, KubernetesSecretCustody

    kube = Kube(box.state.kubeconfig)
    custody = KubernetesSecretCustody(kube, f"cu{unique}", "vault-init")
    record = InitRecord(["k1", "k2", "k3"], "root", 3, 2)
    custody.store(record)
    custody.store_extra("admin", {"token": "admin-token"})
    where = custody.set_aside("20261129-000000", ("admin", "root-revoked"))
    assert where == f"Secret cu{unique}/vault-init-replaced-20261129-000000"
    assert custody.load() is None and custody.load_extra("admin") is None
    kept = KubernetesSecretCustody(kube, f"cu{unique}", "vault-init-replaced-20261129-000000")
    assert kept.load() == record
    assert kept.load_extra("admin") == {"token": "admin-token"}
    # a second setting aside (a re-run) finds nothing to move and keeps the copies
    custody.set_aside("20261129-000000", ("admin",))
    assert kept.load() == record
