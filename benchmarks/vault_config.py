"""Benchmark the vault-config phase beside the tools a team would pick instead, on one OpenBao.

    uv run python benchmarks/vault_config.py --sizes 50,200,500,1000

For each size N (the generated catalog of ``common.py``: N services in 20 namespaces, three
secrets and two shared reads each), one fresh sandbox (one OpenBao node, raft storage, the
sandbox's file audit device), initialized and unsealed by the product's vault-ready phase. Then,
on that OpenBao, in this order:

1. **limit**: the writes the product sends from scratch, rebuilt from the product's own plan for
   an empty Vault (same paths but for the names below, same bodies: KV v2 mount, kubernetes
   auth mount and config, one policy and one role per service, the bootstrap-admin policy, the
   bootstrap-admin token), sent by a bare loop: ``--limit-threads`` threads, one keep-alive
   ``http.client`` connection each, no reads, no planning. Mounts and the auth config first,
   then policies and roles in one pool, then the token.
2. **product**: the vault-config phase (facts, plan, apply, the convergence check; what
   ``invoke bootstrap --only vault-config`` runs) from scratch, then a no-op re-run.
3. **OpenTofu** 1.12.6 with the hashicorp/vault provider 5.11.0 from the tool cache's
   filesystem mirror: a generated ``.tf.json`` (``vault_mount``, ``vault_auth_backend``,
   ``vault_kubernetes_auth_backend_config``, one ``vault_policy`` and one
   ``vault_kubernetes_auth_backend_role`` per service), ``tofu apply`` from scratch, then a no-op
   ``tofu apply``, both with ``-parallelism`` (``--tofu-parallelism``, default 50; OpenTofu's
   own default is 10). ``tofu init`` runs before and is not timed. The provider keeps its
   defaults (it works with a child token it creates at every apply).
4. **bank-vaults** 1.33.1: ``bank-vaults configure --mode dev --once --disable-metrics
   --vault-config-file F`` (token in ``VAULT_TOKEN``) from scratch, then again.

Fairness: every one of them starts from scratch on the same OpenBao because each has mounts
and names of its own: the product writes ``secret/``, ``kubernetes/`` and policies named after
the services; the limit ``secret-limit/``, ``kubernetes-limit/`` and policies ``limit-<name>``;
OpenTofu ``-tf`` and ``tf-``; bank-vaults ``-bv`` and ``bv-``. Roles keep their names (each in
its own auth mount) and grant that tool's policy. Policy texts are the product's, byte for
byte, and role fields the same. The product makes its own token reviewer (namespace,
ServiceAccount, binding, TokenRequest) during its from-scratch run, as it does for a user; the
others are given the JWT of a reviewer the benchmark makes beforehand. All use the root token.
The limit runs first, on the emptiest OpenBao, and the product after it, so the store each
later tool writes into is larger, never smaller.

Seconds are wall time of the phase run (product), the loop (limit), the ``tofu apply`` and
``bank-vaults`` processes. CPU seconds are the tool's (this process for the product and the
limit; the child processes for OpenTofu, its provider included, and bank-vaults) plus
OpenBao's: on a machine busy with other work they change less than wall time. Writes are
counted from OpenBao's audit log: requests whose operation is create, update or delete,
between the start and the end of each step; those to ``auth/token/`` are shown apart ("+ N
token": the product creates its bootstrap-admin credential once and renews it at every run,
the vault provider creates a child token at every apply). After each tool, three of its roles
are read back and compared with the product's (fields, policy names mapped), and their
policies must exist (bank-vaults reformats the HCL it is given, so texts are not compared); a
difference is named in the table. Ratios are tool / product. Tools not built are named "not
built (invoke tools.install --peers)".

``--repeat R`` runs each size R times, a fresh sandbox each (for a busy machine): seconds are
then the median and the range, ratios the median of the R per-run ratios.

Prints one table per run; changes nothing outside a temporary directory. The token and keys are
never printed. ``--reads N`` adds one row per client: N policy reads on one thread through the
product's client, a bare ``http.client`` loop and hvac's default requests adapter.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hvac
import yaml

from benchmarks.common import TOOLS_DIR, catalog_text, process_cpu, sandbox_settings
from bootstrap import sandbox
from bootstrap.clients import vault
from bootstrap.clients.kube import Kube
from bootstrap.core.waits import WaitSettings
from bootstrap.model import conventions as conv
from bootstrap.model import vaultplan
from bootstrap.model.catalog import Catalog, parse_catalog
from bootstrap.model.settings import Settings
from bootstrap.phases.pipeline import RunContext, run
from bootstrap.phases.vault_config import ADMIN_TOKEN_BODY, VaultConfig
from bootstrap.phases.vault_ready import VaultReady
from bootstrap.runtime.credentials import resolve_token
from bootstrap.runtime.target import Target, resolve
from bootstrap.tooling import tools

VAULT_PROVIDER = tools.PEERS["terraform-provider-vault"].version
NOTHING_APPLIED = "Apply complete! Resources: 0 added, 0 changed, 0 destroyed."
NOT_BUILT = "not built (invoke tools.install --peers)"
#: The reviewer the benchmark makes for the limit and the peers (the product makes its own).
PEER_REVIEWER = ("vault-config-bench", "peer-token-reviewer", "vault-config-bench-reviewer")


def generated(n: int) -> Catalog:
    return parse_catalog(catalog_text(n), f"generated-{n}.yaml")


# -- counting writes -------------------------------------------------------------------


@dataclass(frozen=True)
class Writes:
    """Write requests: to the configuration, and to tokens (``auth/token/``: the product's
    bootstrap-admin credential, created once and renewed by every run; the vault provider's
    child token, created and revoked by every apply)."""

    config: int
    tokens: int

    def __sub__(self, other: Writes) -> Writes:
        return Writes(self.config - other.config, self.tokens - other.tokens)

    def __str__(self) -> str:
        return f"{self.config} + {self.tokens} token" if self.tokens else str(self.config)


class AuditLog:
    """Counts write requests (create, update, delete) in OpenBao's audit log, reading only
    what was appended since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.writes = 0
        self.tokens = 0

    def count(self) -> Writes:
        if self.path.exists():
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self.offset += end
            for line in data[:end].splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                req = entry.get("request") or {}
                if entry.get("type") == "request" and req.get("operation") in (
                    "create",
                    "update",
                    "delete",
                ):
                    if str(req.get("path", "")).startswith("auth/token/"):
                        self.tokens += 1
                    else:
                        self.writes += 1
        return Writes(self.writes, self.tokens)


@dataclass(frozen=True)
class Sample:
    """One timed step: wall seconds, writes, and CPU seconds (the tool's: this process for
    the product and the limit, the child processes for OpenTofu and bank-vaults; and
    OpenBao's), which a busy machine changes less than wall time."""

    seconds: float
    writes: Writes
    cpu: float


@dataclass
class Row:
    tool: str
    scratch: Sample | None = None
    again: Sample | None = None
    note: str = ""


@dataclass
class Run:
    services: int
    rows: list[Row] = field(default_factory=list)


def _own_cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass
class Meter:
    audit: AuditLog
    openbao_pid: int

    def measure(self, fn: Callable[[], None]) -> Sample:
        writes = self.audit.count()
        cpu = _own_cpu() + process_cpu(self.openbao_pid)
        started = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - started
        used = _own_cpu() + process_cpu(self.openbao_pid) - cpu
        time.sleep(0.2)  # the audit device writes the last response lines after answering
        return Sample(elapsed, self.audit.count() - writes, used)


# -- the product -----------------------------------------------------------------------


def product_run(settings: Settings, catalog: Catalog, target: Target) -> str:
    ctx = RunContext(settings, catalog)
    ctx.target_ = target
    (result,) = run([VaultConfig()], ctx, ["vault-config"])
    if result.status == "failed":
        raise SystemExit(f"vault-config failed: {result.error}")
    return result.status


# -- the same writes, renamed for another tool -----------------------------------------


@dataclass(frozen=True)
class Names:
    """Where one tool writes on the shared OpenBao."""

    tag: str

    @property
    def kv(self) -> str:
        return f"{conv.KV_MOUNT}-{self.tag}"

    @property
    def auth(self) -> str:
        return f"{conv.AUTH_MOUNT}-{self.tag}"

    def policy(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def role(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "token_policies": [self.policy(p) for p in params["token_policies"]]}


@dataclass(frozen=True)
class Setup:
    """What every tool is given: the catalog's wanted state, the cluster's host and CA, the
    reviewer JWT of the benchmark's own reviewer."""

    want: vaultplan.Desired
    jwt: str

    def auth_config(self) -> dict[str, Any]:
        return {
            "kubernetes_host": self.want.kubernetes_host,
            "kubernetes_ca_cert": self.want.kubernetes_ca_cert,
            "token_reviewer_jwt": self.jwt,
            "disable_local_ca_jwt": True,
        }


Request = tuple[str, str, dict[str, Any]]


def limit_requests(setup: Setup, names: Names) -> tuple[list[Request], list[Request], Request]:
    """The product's from-scratch writes (its plan for an empty Vault), renamed: the requests
    sent one at a time first, those sent in parallel, and the token creation last."""
    empty = vaultplan.Facts(
        kv_mount=None,
        auth_mount=None,
        auth_config=None,
        policies={},
        roles={},
        audit={"file/": "file"},  # the sandbox declares one: nothing to plan
        reviewer=frozenset(vaultplan.REVIEWER_PARTS),
        reviewer_binding="as wanted",
    )
    first: list[Request] = []
    bulk: list[Request] = []
    for action in vaultplan.plan(setup.want, empty, prune=False):
        match action:
            case vaultplan.EnableMount(path=path, body=body):
                mount = names.kv if path.startswith("sys/mounts/") else names.auth
                kind = "mounts" if path.startswith("sys/mounts/") else "auth"
                first.append(("POST", f"sys/{kind}/{mount}", body))
            case vaultplan.ConfigureKubernetesAuth():
                first.append(("POST", f"auth/{names.auth}/config", setup.auth_config()))
            case vaultplan.PutPolicy(name=name, text=text):
                bulk.append(("PUT", f"sys/policies/acl/{names.policy(name)}", {"policy": text}))
            case vaultplan.WriteRole(name=name, params=params):
                bulk.append(("POST", f"auth/{names.auth}/role/{name}", names.role(params)))
            case _:
                raise SystemExit(f"the limit does not know {action.kind}")
    token = {**ADMIN_TOKEN_BODY, "policies": [names.policy(vaultplan.ADMIN_POLICY)]}
    return first, bulk, ("POST", "auth/token/create-orphan", token)


def send_bare(addr: str, token: str, requests: list[Request], threads: int) -> None:
    """Each request once, on ``threads`` threads with a keep-alive connection each; any
    answer above 299 stops the benchmark."""
    parts = urllib.parse.urlsplit(addr)
    headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
    work: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
    for r in requests:
        work.put(r)
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
        try:
            while (item := work.get()) is not None:
                method, path, body = item
                conn.request(method, f"/v1/{path}", body=json.dumps(body), headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status > 299:
                    failures.append(f"{method} {path}: HTTP {resp.status}")
        finally:
            conn.close()

    n = max(1, min(threads, len(requests)))
    for _ in range(n):
        work.put(None)
    pool = [threading.Thread(target=worker) for _ in range(n)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failures:
        raise SystemExit(f"the limit loop was refused: {failures[:3]}")


def run_limit(setup: Setup, addr: str, token: str, threads: int) -> Callable[[], None]:
    first, bulk, admin = limit_requests(setup, Names("limit"))

    def go() -> None:
        send_bare(addr, token, first, 1)
        send_bare(addr, token, bulk, threads)
        send_bare(addr, token, [admin], 1)

    return go


# -- OpenTofu + hashicorp/vault ----------------------------------------------------------


def _tf_text(text: str) -> str:
    """A literal string in Terraform's JSON syntax (its strings are templates)."""
    return text.replace("${", "$${").replace("%{", "%%{")


def tofu_config(setup: Setup, names: Names, state: Path) -> dict[str, Any]:
    auth_path = "${vault_auth_backend.kubernetes.path}"
    policies = {
        f"p-{name}": {"name": names.policy(name), "policy": _tf_text(text)}
        for name, text in sorted(setup.want.policies.items())
    }
    roles = {}
    for name, params in sorted(setup.want.roles.items()):
        role = names.role(params)
        roles[f"r-{name}"] = {
            "backend": auth_path,
            "role_name": name,
            "bound_service_account_names": role["bound_service_account_names"],
            "bound_service_account_namespaces": role["bound_service_account_namespaces"],
            "token_policies": role["token_policies"],
            "token_ttl": role["token_ttl"],
            "audience": role["audience"],
        }
    config = setup.auth_config()
    config.pop("token_reviewer_jwt")
    return {
        "terraform": {
            "required_providers": {
                "vault": {"source": "hashicorp/vault", "version": VAULT_PROVIDER}
            },
            "backend": {"local": {"path": str(state)}},
        },
        "variable": {"reviewer_jwt": {"type": "string", "sensitive": True}},
        "provider": {"vault": {}},
        "resource": {
            "vault_mount": {
                "kv": {
                    "path": names.kv,
                    "type": "kv",
                    "options": {"version": "2"},
                    "description": f"managed-by: {conv.PRODUCT}",
                }
            },
            "vault_auth_backend": {
                "kubernetes": {
                    "type": "kubernetes",
                    "path": names.auth,
                    "description": f"managed-by: {conv.PRODUCT}",
                }
            },
            "vault_kubernetes_auth_backend_config": {
                "config": {
                    "backend": auth_path,
                    **{k: _tf_text(v) if isinstance(v, str) else v for k, v in config.items()},
                    "token_reviewer_jwt": "${var.reviewer_jwt}",
                }
            },
            "vault_policy": policies,
            "vault_kubernetes_auth_backend_role": roles,
        },
    }


@dataclass
class Tofu:
    binary: Path
    work: Path
    env: dict[str, str]
    parallelism: int

    def apply(self) -> str:
        proc = subprocess.run(
            [
                str(self.binary),
                "apply",
                "-auto-approve",
                "-input=false",
                "-no-color",
                f"-parallelism={self.parallelism}",
            ],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"tofu apply failed: {proc.stderr.strip()[-600:]}")
        if "No changes." in proc.stdout:
            return "no changes"
        summary = [line for line in proc.stdout.splitlines() if line.startswith("Apply complete")]
        return summary[-1] if summary else "?"


def prepare_tofu(setup: Setup, addr: str, token: str, work: Path, parallelism: int) -> Tofu | str:
    provider = tools.find("terraform-provider-vault", TOOLS_DIR)
    tofu = tools.find("tofu", TOOLS_DIR)
    if provider is None or tofu is None:
        return NOT_BUILT
    work.mkdir(parents=True)
    (work / "main.tf.json").write_text(
        json.dumps(tofu_config(setup, Names("tf"), work / "state" / "peer.tfstate"), indent=1)
    )
    cli = work / "tofurc"
    cli.write_text(
        "provider_installation {\n  filesystem_mirror {\n"
        f'    path = "{tools.mirror_dir(TOOLS_DIR)}"\n  }}\n}}\n'
    )
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(cli),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "VAULT_ADDR": addr,
        "VAULT_TOKEN": token,
        "TF_VAR_reviewer_jwt": setup.jwt,
    }
    proc = subprocess.run(
        [str(tofu), "init", "-input=false", "-no-color"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"tofu init failed: {proc.stderr.strip()[-600:]}")
    return Tofu(tofu, work, env, parallelism)


# -- bank-vaults ---------------------------------------------------------------------------


def bank_vaults_config(setup: Setup, names: Names) -> dict[str, Any]:
    return {
        "secrets": [
            {
                "path": names.kv,
                "type": "kv",
                "description": f"managed-by: {conv.PRODUCT}",
                "options": {"version": 2},
            }
        ],
        "policies": [
            {"name": names.policy(name), "rules": text}
            for name, text in sorted(setup.want.policies.items())
        ],
        "auth": [
            {
                "type": "kubernetes",
                "path": names.auth,
                "description": f"managed-by: {conv.PRODUCT}",
                "config": setup.auth_config(),
                "roles": [
                    {"name": name, **names.role(params)}
                    for name, params in sorted(setup.want.roles.items())
                ],
            }
        ],
    }


@dataclass
class BankVaults:
    binary: Path
    config: Path
    env: dict[str, str]

    def configure(self) -> None:
        proc = subprocess.run(
            [
                str(self.binary),
                "configure",
                "--mode",
                "dev",
                "--once",
                "--fatal",
                "--disable-metrics",
                "--vault-config-file",
                str(self.config),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"bank-vaults configure failed: {proc.stderr.strip()[-600:]}")


def prepare_bank_vaults(setup: Setup, addr: str, token: str, work: Path) -> BankVaults | str:
    binary = tools.find("bank-vaults", TOOLS_DIR)
    if binary is None:
        return NOT_BUILT
    work.mkdir(parents=True)
    config = work / "vault-config.yml"
    config.write_text(yaml.safe_dump(bank_vaults_config(setup, Names("bv")), sort_keys=False))
    config.chmod(0o600)  # it holds the reviewer JWT
    env = {**os.environ, "VAULT_ADDR": addr, "VAULT_TOKEN": token, "HOME": str(work)}
    return BankVaults(binary, config, env)


def differences(api: vault.Api, setup: Setup, names: Names) -> str:
    """What three of a tool's roles (first, middle, last) and their policies lack against the
    product's, in words; empty when they agree."""
    found = []
    for name in vaultplan.spread(sorted(setup.want.roles), 3):
        want = names.role(setup.want.roles[name])
        resp = api.read(f"auth/{names.auth}/role/{name}")
        have = (resp or {}).get("data") or {}
        for key in vaultplan.ROLE_FIELDS:
            got, wanted = have.get(key), want[key]
            if isinstance(got, list) and isinstance(wanted, list):
                got, wanted = sorted(map(str, got)), sorted(map(str, wanted))
            if got != wanted:
                found.append(f"role {name}: {key} {got!r}")
        for policy in want["token_policies"]:
            if api.read(f"sys/policies/acl/{policy}") is None:
                found.append(f"policy {policy} missing")
    return "; ".join(found)


# -- one size --------------------------------------------------------------------------


def say(step: str, what: str, row: Row) -> None:
    parts = [
        f"{label} {x.seconds:.2f}s (cpu {x.cpu:.2f}s)"
        for label, x in (("", row.scratch), ("again", row.again))
        if x is not None
    ]
    print(f"{step} {what}" + ",".join(parts), file=sys.stderr, flush=True)


def peer_reviewer_jwt(kube: Kube) -> str:
    namespace, account, binding = PEER_REVIEWER
    kube.ensure_namespace(namespace)
    kube.ensure_service_account(namespace, account)
    kube.ensure_cluster_role_binding(binding, "system:auth-delegator", namespace, account)
    return kube.token(namespace, account, [], 3600)


def one_size(n: int, args: argparse.Namespace, costs: dict[str, float]) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-vc-{n}-"))
    box = sandbox.up(tmp / "sandbox", TOOLS_DIR, timeout=90)
    out = Run(n)
    try:
        settings = sandbox_settings(tmp, box)
        catalog = generated(n)
        target = resolve(settings)
        ctx = RunContext(settings, catalog)
        ctx.target_ = target
        ctx.wait = WaitSettings(timeout=60, initial=0.1, maximum=0.5)
        (ready,) = run([VaultReady()], ctx, ["vault-ready"])
        if ready.status == "failed":
            raise SystemExit(f"vault-ready failed: {ready.error}")
        audit = AuditLog(tmp / "sandbox" / "bao-0" / "audit.log")
        bao = next(p for p in box.processes if p.name == "bao-0")
        meter = Meter(audit, bao.pid)
        token, _ = resolve_token(target.custody)
        addr = box.bao_addr
        api = vault.Api(addr, token)
        want = vaultplan.desired(
            catalog, target.kube.host, target.kube.ca_pem(), str(audit.path), None
        )
        setup = Setup(want, peer_reviewer_jwt(target.kube))
        step = f"N={n}:"

        limit = Row(f"limit: the same writes, bare loop, {args.limit_threads} threads")
        limit.scratch = meter.measure(run_limit(setup, addr, token, args.limit_threads))
        limit.note = differences(api, setup, Names("limit"))
        out.rows.append(limit)
        say(step, "limit", limit)

        product = Row("product: vault-config")
        status: list[str] = []
        product.scratch = meter.measure(
            lambda: status.append(product_run(settings, catalog, target))
        )
        product.again = meter.measure(lambda: status.append(product_run(settings, catalog, target)))
        if status != ["applied", "no-change"]:
            raise SystemExit(f"vault-config: {status}, expected applied then no-change")
        out.rows.append(product)
        say(step, "product", product)

        tofu_name = (
            f"OpenTofu {tools.TOOLS['tofu'].version} + hashicorp/vault "
            f"{VAULT_PROVIDER}, -parallelism={args.tofu_parallelism}"
        )
        tofu = prepare_tofu(setup, addr, token, tmp / "tofu", args.tofu_parallelism)
        if isinstance(tofu, str):
            out.rows.append(Row(tofu_name, note=tofu))
        else:
            row = Row(tofu_name)
            said: list[str] = []
            row.scratch = meter.measure(lambda: said.append(tofu.apply()))
            row.again = meter.measure(lambda: said.append(tofu.apply()))
            if said[-1] not in ("no changes", NOTHING_APPLIED):
                row.note = f"second apply: {said[-1]}"
            row.note = "; ".join(filter(None, [row.note, differences(api, setup, Names("tf"))]))
            out.rows.append(row)
            say(step, "OpenTofu", row)

        bv_name = f"bank-vaults {tools.PEERS['bank-vaults'].version} configure --once"
        bv = prepare_bank_vaults(setup, addr, token, tmp / "bank-vaults")
        if isinstance(bv, str):
            out.rows.append(Row(bv_name, note=bv))
        else:
            row = Row(bv_name)
            row.scratch = meter.measure(bv.configure)
            row.again = meter.measure(bv.configure)
            row.note = differences(api, setup, Names("bv"))
            out.rows.append(row)
            say(step, "bank-vaults", row)

        if args.reads > 0 and not costs:
            names = [svc.name for svc in catalog.services]
            costs.update(read_costs(addr, token, names, args.reads))
    finally:
        sandbox.down(tmp / "sandbox")
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- printing ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{_median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _ratio(values: list[float], bases: list[float]) -> str:
    """The median of the per-run ratios (runs of one size, one sandbox each)."""
    got = [v / b for v, b in zip(values, bases, strict=True) if b]
    return f"{_median(got):.2f}x" if got else "-"


def print_tables(runs: list[Run]) -> None:
    """One table: per size and tool, wall seconds (the median and range over repeats), writes
    (of the first run), CPU seconds (median) and the ratios to the product."""
    repeats = len(runs) // len({r.services for r in runs})
    print(
        f"\nvault-config beside its peers, OpenBao {tools.TOOLS['bao'].version} (one node, raft, "
        f"file audit device) on the sandbox; {os.cpu_count()} cores; ratios are tool / product"
        + (f"; median (range) of {repeats} runs, a fresh sandbox each" if repeats > 1 else "")
        + "; cpu: the tool's and OpenBao's CPU seconds"
    )
    print(
        "| services | tool | from scratch (s) | writes | cpu (s) | vs product | no-op (s) "
        "| writes | cpu (s) | vs product |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    limits = []
    for n in dict.fromkeys(r.services for r in runs):
        same = [r for r in runs if r.services == n]
        products = [next(row for row in r.rows if row.tool.startswith("product")) for r in same]
        for i, first in enumerate(same[0].rows):
            rows = [r.rows[i] for r in same]
            notes = "; ".join(dict.fromkeys(row.note for row in rows if row.note))
            cells = [f"{n}", f"{first.tool}{f' ({notes})' if notes else ''}"]
            if first.scratch is None:
                print(f"| {n} | {first.tool} | {notes} | | | | | | | |")
                continue
            for step in ("scratch", "again"):
                mine = [getattr(row, step) for row in rows]
                base = [getattr(p, step) for p in products]
                if any(x is None for x in mine) or any(x is None for x in base):
                    cells += ["-", "-", "-", "-"]
                    continue
                cells += [
                    _seconds([x.seconds for x in mine]),
                    str(mine[0].writes),
                    f"{_median([x.cpu for x in mine]):.2f}",
                    _ratio([x.seconds for x in mine], [x.seconds for x in base]),
                ]
            print("| " + " | ".join(cells) + " |")
            if first.tool.startswith("limit"):
                limits.append(
                    (
                        n,
                        [p.scratch.seconds for p in products if p.scratch],
                        [row.scratch.seconds for row in rows if row.scratch],
                    )
                )
    print("\nproduct / limit, from scratch:")
    print("| services | product (s) | limit (s) | product / limit |")
    print("|---:|---:|---:|---:|")
    for n, p_scratch, l_scratch in limits:
        print(
            f"| {n} | {_seconds(p_scratch)} | {_seconds(l_scratch)} "
            f"| {_ratio(p_scratch, l_scratch)} |"
        )


# -- per-read client costs (optional) ------------------------------------------------------

PRODUCT = "hvac + keep-alive adapter (the product)"
BARE = "bare http.client loop"
REQUESTS = "hvac's default adapter (requests)"


def read_costs(addr: str, token: str, names: list[str], reads: int) -> dict[str, float]:
    """Microseconds per policy read, the same reads on one thread, best of three rounds."""
    paths = [f"sys/policies/acl/{names[i % len(names)]}" for i in range(reads)]
    api = vault.Api(addr, token)
    default = hvac.Client(url=addr, token=token)
    parts = urllib.parse.urlsplit(addr)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80)
    headers = {"X-Vault-Token": token, "X-Vault-Request": "true"}

    def product() -> None:
        for p in paths:
            assert api.read(p) is not None

    def bare() -> None:
        for p in paths:
            conn.request("GET", f"/v1/{p}", headers=headers)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.status == 200 and body["data"]

    def hvac_default() -> None:
        for p in paths:
            assert default.read(p) is not None

    clients = {PRODUCT: product, BARE: bare, REQUESTS: hvac_default}
    best = dict.fromkeys(clients, float("inf"))
    for _ in range(3):
        for name, fn in clients.items():
            started = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - started)
    conn.close()
    default.adapter.close()
    return {name: t / reads * 1e6 for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="50,200,500,1000")
    parser.add_argument("--limit-threads", type=int, default=16)
    parser.add_argument("--tofu-parallelism", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1, help="runs per size, a sandbox each")
    parser.add_argument("--reads", type=int, default=0, help="policy reads per client (0: none)")
    args = parser.parse_args()
    costs: dict[str, float] = {}
    runs = [
        one_size(int(s), args, costs) for s in args.sizes.split(",") for _ in range(args.repeat)
    ]
    print_tables(runs)
    if costs:
        print(f"\n{args.reads} policy reads on one thread, keep-alive connections:")
        print("| client | per read (us) | vs bare |")
        print("|---|---:|---:|")
        for name in (PRODUCT, BARE, REQUESTS):
            print(f"| {name} | {costs[name]:.0f} | {costs[name] / costs[BARE]:.2f}x |")


if __name__ == "__main__":
    main()
