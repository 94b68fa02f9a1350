"""Terraform/OpenTofu, driven through python-terraform: the product's own working directory,
state and plugin cache (never the user's), inputs from a JSON tfvars file (never on the
command line), and errors that name the failing resource and the tool's own message."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

from bootstrap.clients import procs
from bootstrap.core import failpoints, paths
from bootstrap.core.errors import TerraformError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.tooling import tools

log = logging.getLogger(__name__)
logging.getLogger("python_terraform").setLevel(logging.ERROR)

MODULE_DIR = paths.TERRAFORM_MODULE
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Resources OpenTofu creates at once (its default is 10).
APPLY_PARALLELISM = 16


@dataclass(frozen=True)
class Change:
    address: str
    actions: tuple[str, ...]  # e.g. ("create",), ("update",), ("delete", "create"), ("no-op",)
    previous: str = ""  # the address it had in the state, when a ``moved`` block renames it


def error_summary(stderr: str) -> str:
    """'<resource>: <message>' for each error block of Terraform's -no-color output."""
    text = _ANSI.sub("", stderr)
    out = []
    for block in re.split(r"\n(?=Error: )", text):
        m = re.search(r"Error: (.+?)(?:\n\n|\n│|\Z)", block, re.DOTALL)
        if not m:
            continue
        message = " ".join(m.group(1).split())
        res = re.search(r"with ([\w.\[\]\"/-]+),", block)
        out.append(f"{res.group(1)}: {message}" if res else message)
    return "; ".join(out) or " ".join(text.split())[-500:]


@dataclass
class Workspace:
    """A working copy of the placeholder module with its own data dir, state and plugins."""

    root: Path
    binary: str
    tools_dir: Path
    backend: str = "local"
    backend_namespace: str = "vault-bootstrap"
    kubeconfig: Path | None = None
    _initialised: bool = field(default=False, init=False, repr=False)
    _binary_path: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    def _bin(self) -> str:
        if self._binary_path is None:
            if self.binary == "tofu":
                self._binary_path = str(tools.require("tofu", self.tools_dir))
            else:
                found = shutil.which(self.binary)
                if not found:
                    raise TerraformError(f"{self.binary} not found on PATH")
                self._binary_path = found
        return self._binary_path

    def _env(self) -> dict[str, str]:
        env = {
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "TF_PLUGIN_CACHE_DIR": str(self.root / "plugin-cache"),
            "TF_DATA_DIR": str(self.root / ".terraform"),
        }
        if self.binary == "tofu":
            rc = self.root / "tofurc"
            env["TF_CLI_CONFIG_FILE"] = str(rc)
        return env

    def prepare(self, tfvars: JsonObject, moves: dict[str, str] | None = None) -> None:
        """Copy the module, write the inputs and the backend. Inputs never go on argv. The
        working folder (state, plans, provider cache) is private: mode 0700. ``moves`` (old
        address -> new) become ``moved`` blocks, so Terraform renames what its state holds
        instead of destroying and re-creating it."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)
        (self.root / "plugin-cache").mkdir(exist_ok=True)
        for tf in module_files():
            dest = self.root / tf.relative_to(MODULE_DIR)
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(tf, dest)
        moved = self.root / "moved.tf"
        if moves:
            moved.write_text(moved_blocks(moves), encoding="utf-8")
        else:
            moved.unlink(missing_ok=True)
        (self.root / "placeholders.auto.tfvars.json").write_text(
            json.dumps(tfvars, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        if self.backend == "kubernetes":
            backend = (
                f'terraform {{\n  backend "kubernetes" {{\n'
                f'    secret_suffix = "{conv.TERRAFORM_STATE_SUFFIX}"\n'
                f'    namespace     = "{self.backend_namespace}"\n'
                f'    config_path   = "{self.kubeconfig}"\n  }}\n}}\n'
            )
        else:
            self._move_legacy_state()
            backend = (
                f'terraform {{\n  backend "local" {{\n    path = "{self.state_file}"\n  }}\n}}\n'
            )
        (self.root / "backend.tf").write_text(backend, encoding="utf-8")
        if self.binary == "tofu":
            (self.root / "tofurc").write_text(
                "provider_installation {\n  filesystem_mirror {\n"
                f'    path = "{tools.mirror_dir(self.tools_dir)}"\n  }}\n}}\n',
                encoding="utf-8",
            )

    @property
    def state_file(self) -> Path:
        """The local backend's state. Not ``<root>/terraform.tfstate``: OpenTofu 1.12 truncates
        that file when it initializes a local backend configured with the default path."""
        return self.root / "state" / "placeholders.tfstate"

    def _move_legacy_state(self) -> None:
        self.state_file.parent.mkdir(exist_ok=True, mode=0o700)
        legacy = self.root / "terraform.tfstate"
        if legacy.is_file() and legacy.stat().st_size > 0 and not self.state_file.exists():
            os.replace(legacy, self.state_file)
            log.info("moved Terraform state %s to %s", legacy, self.state_file)

    def _cmd(self, *args: str, **flags: Any) -> tuple[int, str, str]:
        """One Terraform command: python-terraform spells its arguments, the process runs
        in the working folder with the product's TF_* variables added to this process's
        environment (which stays as it is)."""
        tf = Terraform(working_dir=str(self.root), terraform_bin_path=self._bin())
        argv: list[str] = tf.generate_cmd_string(*args, **flags)
        return procs.run_captured(argv, None, env={**os.environ, **self._env()}, cwd=self.root)

    def _run(self, what: str, *args: str, **flags: Any) -> str:
        started = time.monotonic()
        code, out, err = self._cmd(*args, no_color=IsFlagged, **flags)
        log.info("%s %s: %.1fs", self.binary, what, time.monotonic() - started)
        if code not in (0, 2) or (code == 2 and "plan" not in args[0]):
            raise TerraformError(f"{self.binary} {what} failed: {error_summary(err or out)}")
        return str(out)

    def _init_key(self) -> str:
        """What an initialized working folder depends on: the module, backend and CLI
        configuration, and the binary."""
        digest = hashlib.sha256(self._bin().encode())
        names = [str(tf.relative_to(MODULE_DIR)) for tf in module_files()]
        for name in [*names, "backend.tf", "tofurc"]:  # not moved.tf: no init needed for it
            f = self.root / name
            if f.is_file():
                digest.update(name.encode() + b"\0" + f.read_bytes())
        return digest.hexdigest()

    def init(self) -> None:
        """``init`` once per configuration (a re-run with nothing changed skips it)."""
        if self._initialised:
            return
        marker = self.root / ".terraform" / "bootstrap-init"
        key = self._init_key()
        if not (marker.is_file() and marker.read_text(encoding="utf-8") == key):
            self._run("init", "init", input=False, reconfigure=IsFlagged)
            marker.write_text(key, encoding="utf-8")
        self._initialised = True

    def plan(self) -> list[Change]:
        self.init()
        self._run(
            "plan", "plan", input=False, out="plan.bin", detailed_exitcode=IsFlagged, lock=True
        )
        shown = json.loads(self._run("show", "show", "-json", "plan.bin"))
        changes = [
            Change(rc["address"], tuple(rc["change"]["actions"]), rc.get("previous_address", ""))
            for rc in shown.get("resource_changes", [])
        ]
        if all(c.actions == ("no-op",) and not c.previous for c in changes):
            self._record_applied()  # nothing to do: as good as a fresh apply
        return changes

    def apply(self) -> None:
        self.init()
        self._applied_file.unlink(missing_ok=True)
        failpoints.kill_during("placeholders:applying", child="terraform-provider-")
        try:
            self._run("apply", "apply", "plan.bin", input=False, parallelism=APPLY_PARALLELISM)
        finally:
            (self.root / "plan.bin").unlink(missing_ok=True)
        self._record_applied()

    def forget(self, addresses: list[str]) -> None:
        """Drop resources from the state without touching the objects (``state rm``): for
        objects someone else now owns. The next plan is made afresh."""
        if not addresses:
            return
        self.init()
        self._applied_file.unlink(missing_ok=True)
        (self.root / "plan.bin").unlink(missing_ok=True)
        code, out, err = self._cmd("state rm", *addresses, lock="true")
        if code != 0:
            raise TerraformError(f"{self.binary} state rm failed: {error_summary(err or out)}")

    # -- what the last apply was made from ---------------------------------------------
    @property
    def _applied_file(self) -> Path:
        return self.root / "applied.json"

    def _fingerprint(self) -> str:
        """What a plan depends on besides the state and the cluster: the binary, the CLI
        configuration, the module, the inputs and the provider lock. (``moved.tf`` is left
        out: it only names addresses a state may still hold, and the state is compared.)"""
        digest = hashlib.sha256(self._bin().encode())
        names = [str(tf.relative_to(MODULE_DIR)) for tf in module_files()]
        for name in [
            *names,
            "backend.tf",
            "tofurc",
            ".terraform.lock.hcl",
            "placeholders.auto.tfvars.json",
        ]:
            f = self.root / name
            digest.update(name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"-"))
        return digest.hexdigest()

    def _state_identity(self) -> JsonObject | None:
        """The local state's lineage and serial (None for another backend or no state)."""
        if self.backend != "local" or not self.state_file.is_file():
            return None
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except ValueError:
            return None
        return {"lineage": state.get("lineage"), "serial": state.get("serial")}

    def _record_applied(self) -> None:
        identity = self._state_identity()
        if identity is not None:
            record = {"fingerprint": self._fingerprint(), **identity}
            self._applied_file.write_text(json.dumps(record) + "\n", encoding="utf-8")

    def unchanged_since_apply(self) -> bool:
        """True when the inputs, module, tools and state are exactly those the last
        successful apply here left (local backend only). With the cluster still holding
        every object of the state as the state has it, a plan would then be empty."""
        try:
            record = json.loads(self._applied_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        identity = self._state_identity()
        return (
            identity is not None
            and record.get("fingerprint") == self._fingerprint()
            and all(record.get(k) == v for k, v in identity.items())
        )

    def state(self) -> dict[str, JsonObject]:
        """Every resource in the state: address -> its attribute values (the local state is
        read as a file; another backend through the tool)."""
        if self.backend == "local":
            return _resources(self.state_file)
        self.init()
        shown = json.loads(self._run("show", "show", "-json"))
        out: dict[str, JsonObject] = {}
        for res in (shown.get("values") or {}).get("root_module", {}).get("resources", []):
            out[str(res["address"])] = dict(res.get("values") or {})
        return out


def _resources(state_file: Path) -> dict[str, JsonObject]:
    """Managed resources of a state file (format version 4): address -> attributes."""
    if not state_file.is_file() or state_file.stat().st_size == 0:
        return {}
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TerraformError(f"{state_file}: not a readable Terraform state ({exc})") from None
    out: dict[str, JsonObject] = {}
    for res in state.get("resources", []):
        if res.get("mode") != "managed":
            continue
        base = f"{res['type']}.{res['name']}"
        if res.get("module"):
            base = f"{res['module']}.{base}"
        for inst in res.get("instances", []):
            key = inst.get("index_key")
            address = base if key is None else f"{base}[{json.dumps(key)}]"
            out[address] = dict(inst.get("attributes") or {})
    return out


def module_files() -> list[Path]:
    """The placeholder module's files: the root module and its sub-modules."""
    return sorted(MODULE_DIR.glob("**/*.tf"))


def moved_blocks(moves: dict[str, str]) -> str:
    """``moved`` blocks (HCL) for old address -> new address."""
    out = ["# Written by the bootstrap: resources renamed in the module (see main.tf).\n"]
    for old, new in sorted(moves.items()):
        out.append(f"moved {{\n  from = {old}\n  to   = {new}\n}}\n")
    return "\n".join(out)
