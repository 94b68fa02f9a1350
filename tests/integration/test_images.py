"""The node's images, built into the tools cache and run for real without a container runtime:
each archive's layers unpacked into a folder and its programs run there in a ``chroot`` as
the image's user. OpenBao starts from the manifests' own configuration and answers
uninitialized; each operator version's manager runs, its licence beside it; the demo's
probes judge Secret-like mounts laid out as the kubelet lays them out, and its program
reports digests, never values.
Needs root (chroot), like the node sandbox."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model.catalog import load_catalog
from bootstrap.model.cluster import ClusterOptions, openbao_config, render_cluster
from bootstrap.tooling import images, manifests, tools, versions
from tests.integration.conftest import TOOLS_DIR

EXAMPLE = Path(__file__).resolve().parents[2] / "catalog.yaml"
PLACEHOLDER = b"bootstrap-placeholder:webapp/config/log-level"
REAL = b"s3cret-real-value"


OPERATORS = [f"vault-secrets-operator:{v}" for v in versions.VSO_VERSIONS]


@pytest.fixture(scope="module")
def built() -> dict[str, images.ImageResult]:
    """Every image, by ``NAME:TAG`` and, for a name with one tag, by ``NAME`` too."""
    results = images.build(None, TOOLS_DIR)
    out = {r.key: r for r in results}
    for r in results:
        if [x.name for x in results].count(r.name) == 1:
            out[r.name] = r
    return out


@pytest.fixture(scope="module")
def rootfs(
    built: dict[str, images.ImageResult], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, dict[str, Any]]]:
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    by_key: dict[str, tuple[Path, dict[str, Any]]] = {}
    for name, result in built.items():
        if result.key not in by_key:
            root = tmp_path_factory.mktemp(f"rootfs-{result.name}-{result.tag}")
            by_key[result.key] = (root, images.unpack(result.path, root))
        out[name] = by_key[result.key]
    return out


def _as_image(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Popen arguments that run a command as the image would: root folder ``root``, the
    image's working folder, its user and group (no supplementary groups)."""
    uid, _, gid = str(config["User"]).partition(":")
    workdir = str(config.get("WorkingDir") or "/")

    def enter() -> None:
        os.chroot(root)
        os.chdir(workdir)
        os.setgroups([])
        os.setgid(int(gid))
        os.setuid(int(uid))

    env = dict(e.split("=", 1) for e in config.get("Env", []))
    return {"preexec_fn": enter, "env": env}


def _run(root: Path, config: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **_as_image(root, config),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_second_build_writes_nothing(built: dict[str, images.ImageResult]) -> None:
    again = images.build(None, TOOLS_DIR)
    assert [r.status for r in again] == ["cached"] * len(images.IMAGES)
    assert {r.key: r.image_id for r in again} == {r.key: r.image_id for r in built.values()}
    assert [r.key for r in again] == [i.key for i in images.IMAGES]
    for r in again:
        assert r.path == images.archive_path(TOOLS_DIR, r.name, r.tag)
        assert r.ref == f"localhost/cluster-secrets-bootstrap/{r.key}"
    # one image per operator version, each with its own manager
    assert len({built[k].image_id for k in OPERATORS}) == len(OPERATORS)


def test_images_are_non_root(rootfs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    for _name, (_root, config) in rootfs.items():
        uid, _, gid = str(config["User"]).partition(":")
        assert int(uid) != 0 and int(gid) != 0
    assert not (rootfs["openbao"][0] / "bin" / "sh").exists()
    assert not (rootfs["demo"][0] / "bin" / "sh").exists()


def test_openbao_version(rootfs: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    root, config = rootfs["openbao"]
    assert config["Entrypoint"] == ["/usr/local/bin/bao", "server"]
    done = _run(root, config, "/usr/local/bin/bao", "version")
    assert done.returncode == 0, done.stderr
    assert f"OpenBao v{versions.OPENBAO}" in done.stdout


@pytest.fixture
def bao_server(
    rootfs: dict[str, tuple[Path, dict[str, Any]]],
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """``bao server`` in the image, with the configuration the StatefulSet mounts (on free
    loopback ports), from the image's working folder, as its user."""
    root, config = rootfs["openbao"]
    api, cluster = _free_port(), _free_port()
    hcl = openbao_config(ClusterOptions(openbao_port=api, openbao_cluster_port=cluster))
    (root / "openbao" / "config" / "config.hcl").write_text(hcl, encoding="utf-8")
    run = _as_image(root, config)
    run["env"].update(
        {
            "BAO_API_ADDR": f"http://127.0.0.1:{api}",
            "BAO_CLUSTER_ADDR": f"https://127.0.0.1:{cluster}",
            "BAO_RAFT_NODE_ID": "openbao-0",
        }
    )
    log = root.parent / f"{root.name}-bao.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*config["Entrypoint"], *config["Cmd"]], stdout=out, stderr=subprocess.STDOUT, **run
        )
    try:
        yield f"http://127.0.0.1:{api}", log, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _health(addr: str, proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is not None:
        raise AssertionError(f"bao server exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        raise Pending(f"not answering: {exc}") from None


def test_openbao_server_starts_uninitialized_from_the_manifests_config(
    rootfs: dict[str, tuple[Path, dict[str, Any]]],
    bao_server: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    addr, log, proc = bao_server
    root, _ = rootfs["openbao"]
    code = wait_for(
        lambda: _health(addr, proc), f"bao server in the image ({log})", WaitSettings(timeout=60)
    )
    assert code == 501, log.read_text()  # uninitialized (and sealed): as a Helm install
    data = root / "openbao" / "data"
    owned = [p for p in data.rglob("*") if p.stat().st_uid == 100]
    assert owned, f"the server wrote nothing into its data folder as uid 100: {log.read_text()}"
    assert (data / "raft").is_dir() or (data / "vault.db").exists()


@pytest.mark.parametrize("version", versions.VSO_VERSIONS)
def test_operator_manager_of_each_version_runs_and_says_its_licence(
    rootfs: dict[str, tuple[Path, dict[str, Any]]], version: str
) -> None:
    root, config = rootfs[f"vault-secrets-operator:{version}"]
    assert config["Entrypoint"] == ["/vault-secrets-operator"]
    done = _run(root, config, *config["Entrypoint"], "--version", "--output", "json")
    assert done.returncode == 0, done.stderr
    assert f'"gitVersion": "v{version}"' in done.stdout
    done = _run(root, config, *config["Entrypoint"], "--help")
    assert done.returncode == 0, done.stderr
    assert "-leader-elect" in done.stdout + done.stderr
    if version == versions.VSO:  # the client flags the settings pass (1.4.1 only)
        for flag in ("-kube-client-qps", "-kube-client-burst", "-max-concurrent-reconciles"):
            assert flag in done.stdout + done.stderr
    spdx = tools.TOOLS[tools.operator_tool(version)].licence
    assert config["Labels"]["org.opencontainers.image.licenses"] == spdx
    assert ("MPL" in spdx) == (version == versions.VSO_V0)
    licence = (root / "licenses" / "copyright.txt").read_text()
    assert ("Business Source License" in licence) == (spdx == "BUSL-1.1")
    assert ("Mozilla Public License" in licence) == (spdx == "MPL-2.0")


@pytest.mark.parametrize("name", ["external-secrets", "reloader"])
def test_eso_and_reloader_programs_run_and_carry_their_licence(
    rootfs: dict[str, tuple[Path, dict[str, Any]]], name: str
) -> None:
    """The sync engine eso's two images: the program as the entrypoint runs as the image's
    user (ESO answers --help with the flags cluster.create passes; Reloader, which has no
    help, starts and stops at once for want of a cluster), Apache-2.0 in the label and the
    upstream LICENSE in the image."""
    root, config = rootfs[name]
    assert config["Entrypoint"] == [f"/{name}"]
    done = _run(root, config, *config["Entrypoint"], "--help")
    if name == "external-secrets":
        assert done.returncode == 0, done.stderr
        for flag in ("--concurrent", "--client-qps", "--live-addr", "--metrics-addr"):
            assert flag in done.stdout + done.stderr, (flag, done.stdout[-2000:])
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "unable to load in-cluster configuration" in done.stderr, done.stderr
    assert config["Labels"]["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert "Apache License" in (root / "licenses" / "LICENSE").read_text()


@pytest.mark.parametrize("version", versions.VSO_VERSIONS)
def test_operator_declarations_come_from_its_source(version: str) -> None:
    source = manifests.operator_source(TOOLS_DIR, version)
    assert len(source.crds) == versions.VSO_CRD_COUNT[version]
    assert any("secrets" in r.get("resources", []) for r in source.cluster_rules)
    assert any("leases" in r.get("resources", []) for r in source.leader_election_rules)
    archive = tools.source_archive(tools.operator_tool(version), None)
    if archive is not None:  # the archive itself, read the same way (sha256 checked)
        empty = TOOLS_DIR.parent / "no-such-tools-dir"
        assert manifests.operator_source(empty, version, archive) == source


# -- the demo -------------------------------------------------------------------------------


def _secret_volume(root: Path, mount: str, data: dict[str, bytes]) -> Path:
    """A Secret volume as the kubelet writes it: a timestamped folder, ``..data`` pointing
    at it, and each key a symlink through ``..data``."""
    target = root / mount.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    stamp = target / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir()
    for key, value in data.items():
        (stamp / key).write_bytes(value)
    (target / "..data").symlink_to(stamp.name)
    for key in data:
        (target / key).symlink_to(f"..data/{key}")
    return target


def _demo_container() -> dict[str, Any]:
    objs = render_cluster(
        load_catalog(EXAMPLE),
        images.references(),
        manifests.operator_source(TOOLS_DIR),
    )
    (webapp,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "webapp"]
    (container,) = webapp["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _probe(root: Path, config: dict[str, Any], command: list[str]) -> int:
    done = _run(root, config, *command)
    assert REAL.decode() not in done.stdout + done.stderr
    return done.returncode


def test_demo_probes_as_the_manifests_run_them(
    rootfs: dict[str, tuple[Path, dict[str, Any]]], tmp_path: Path
) -> None:
    root, config = rootfs["demo"]
    container = _demo_container()
    live = container["livenessProbe"]["exec"]["command"]
    ready = container["readinessProbe"]["exec"]["command"]
    mounts = container["args"]
    assert len(mounts) >= 2
    # no Secret yet: optional volumes are mounted empty; live, not ready
    for m in mounts:
        (root / m.lstrip("/")).mkdir(parents=True)
    assert _probe(root, config, live) == 0
    assert _probe(root, config, ready) == 1
    # without --missing-ok an empty mount (a missing key) fails both
    bare = [c for c in live if c != "--missing-ok"]
    assert _probe(root, config, bare) == 1
    # placeholders: live, not ready
    for m in mounts:
        (root / m.lstrip("/")).rmdir()
        _secret_volume(root, m, {"log-level": PLACEHOLDER, "other": b"x"})
    assert _probe(root, config, live) == 0
    assert _probe(root, config, ready) == 1
    # one Secret real, one still a placeholder: not ready yet
    first = root / mounts[0].lstrip("/")
    stamp = next(first.glob("..2026*"))
    (stamp / "log-level").write_bytes(REAL)
    assert _probe(root, config, ready) == 1
    # every value real: ready
    for m in mounts[1:]:
        (next((root / m.lstrip("/")).glob("..2026*")) / "log-level").write_bytes(REAL)
    assert _probe(root, config, live) == 0
    assert _probe(root, config, ready) == 0
    # a malformed mount (a key emptied by hand): liveness fails, so the kubelet restarts it
    (stamp / "other").write_bytes(b"")
    assert _probe(root, config, live) == 1
    assert _probe(root, config, ready) == 1
    # a mount that is not there at all: malformed too
    assert _probe(root, config, [*live, "/etc/secrets/not-mounted"]) == 1


def _lines(stream: Any) -> queue.Queue[str]:
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return q


def test_demo_program_reports_digests_of_what_it_holds(
    rootfs: dict[str, tuple[Path, dict[str, Any]]],
) -> None:
    root, config = rootfs["demo"]
    mount = "/etc/secrets/demo-run"
    folder = _secret_volume(root, mount, {"password": PLACEHOLDER})
    run = _as_image(root, config)
    run["env"].update({"DEMO_INTERVAL": "0.1", "DEMO_SECRET_DEMO_PASSWORD": REAL.decode()})
    proc = subprocess.Popen(
        [*config["Entrypoint"], mount],
        **run,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _lines(proc.stdout)
        first = lines.get(timeout=30)
        assert f"{mount}: state=placeholder keys=password sha256=" in first
        env_line = lines.get(timeout=30)
        assert "environment (as at start): state=real" in env_line
        # the operator fills the Secret: the program says so, with the new digest
        stamp = next(folder.glob("..2026*"))
        (stamp / "password").write_bytes(REAL)
        changed = lines.get(timeout=30)
        assert f"{mount}: state=real keys=password" in changed
        assert changed.split("sha256=")[1] != first.split("sha256=")[1]
        assert REAL.decode() not in first + env_line + changed
        proc.send_signal(signal.SIGTERM)  # PID 1 in its container: it must still stop
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_image_is_small_and_says_its_licences(
    built: dict[str, images.ImageResult], rootfs: dict[str, tuple[Path, dict[str, Any]]]
) -> None:
    assert built["demo"].size < 30_000_000
    root, config = rootfs["demo"]
    licences = config["Labels"]["org.opencontainers.image.licenses"]
    assert "PSF-2.0" in licences and "LGPL-2.1-or-later" in licences
    for pkg in images.DEBS:
        if pkg != "libpython3.11-stdlib":  # its copyright file is libpython3.11-minimal's
            assert (root / "usr" / "share" / "doc" / pkg / "copyright").is_file()
    assert os.access(root / "usr" / "bin" / "python3.11", os.X_OK)


def test_product_image_runs_the_populate_job_program(
    built: dict[str, images.ImageResult], rootfs: dict[str, tuple[Path, dict[str, Any]]]
) -> None:
    """The product's image: its entrypoint answers, every compiled dependency loads against
    the image's own libraries (OpenSSL, libgcc_s, libstdc++), and nothing is compiled at run
    time (the Job's root is read-only)."""
    root, config = rootfs["bootstrap"]
    print(f"\nbootstrap image: {built['bootstrap'].size / 1e6:.1f} MB")
    assert config["User"] == "65532:65532"
    assert not (root / "bin" / "sh").exists()
    before = {p for p in root.rglob("*.pyc")}
    done = _run(root, config, *config["Entrypoint"], "--help")
    assert done.returncode == 0, done.stderr
    assert "--expect-denied" in done.stdout
    modules = "ssl, hashlib, ctypes, bz2, lzma, uuid, decimal, yaml, kubernetes, hvac, pyrage"
    modules += ", pydantic, frozenlist, charset_normalizer, cryptography.hazmat.bindings._rust"
    code = f"import {modules}, bootstrap.phases.registry; print(yaml.__with_libyaml__)"
    done = _run(root, config, "/usr/bin/python3.11", "-s", "-W", "error", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert {p for p in root.rglob("*.pyc")} == before
    licences = config["Labels"]["org.opencontainers.image.licenses"]
    assert "MPL-2.0" in licences and "Apache-2.0" in licences
