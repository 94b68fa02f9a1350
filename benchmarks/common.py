"""What the benchmark scripts share: the generated catalog of the vault-config and check
benchmarks, and settings that point the product at a benchmark's own sandbox."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from bootstrap.model.settings import Settings
from bootstrap.sandbox import OperatorOptions, SandboxState
from bootstrap.tooling import versions

TOOLS_DIR = Path.home() / ".cache" / "cluster-secrets-bootstrap" / "tools"


def catalog_text(n: int) -> str:
    """n services in 20 namespaces, each with three secrets and two of ten shared reads."""
    shared = "\n".join(f"  s{i}:\n    keys: {{k: null}}" for i in range(10))
    services = "\n".join(
        f"  - name: svc{i}\n    namespace: ns{i % 20}\n    secrets:\n"
        f"      config: {{destination: svc{i}-config, keys: {{a: null}}}}\n"
        f"      credentials: {{destination: svc{i}-credentials, keys: {{b: null}}}}\n"
        f"      api-keys: {{destination: svc{i}-api-keys, keys: {{c: null}}}}\n"
        f"    reads:\n"
        f"      - {{path: shared/s{i % 10}, destination: svc{i}-s{i % 10}}}\n"
        f"      - {{path: shared/s{(i + 1) % 10}, destination: svc{i}-s{(i + 1) % 10}}}\n"
        for i in range(n)
    )
    return f"shared:\n{shared}\nservices:\n{services}"


def sandbox_settings(tmp: Path, box: SandboxState, **overrides: object) -> Settings:
    """Settings for a sandbox started in ``tmp / "sandbox"``, state in ``tmp / "state"``."""
    values: dict[str, object] = {
        "sandbox_dir": tmp / "sandbox",
        "tools_dir": TOOLS_DIR,
        "kubeconfig": Path(box.kubeconfig),
        "vault_addrs": tuple(box.bao_addrs),
        "custody_file": tmp / "sandbox" / "custody" / "vault-init.json",
        "audit_file": str(tmp / "sandbox" / "bao-0" / "audit.log"),
        "state_dir": tmp / "state",
        "sync_engine": box.sync_engine,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


#: What ``--operators`` takes: a VSO version, or ``eso`` (the External Secrets Operator).
ENGINES = (*versions.VSO_VERSIONS, "eso")


def operator_options(
    name: str, qps: float = 0.0, burst: int = 0, max_reconciles: int = 0
) -> OperatorOptions:
    """The sandbox's sync engine for an ``--operators`` entry: a VSO version, or ``eso``
    (its client rate and ``--concurrent`` from the same flags)."""
    name = name.strip()
    if name == "eso":
        return OperatorOptions(qps=qps, burst=burst, max_reconciles=max_reconciles, engine="eso")
    return OperatorOptions(name, qps, burst, max_reconciles)


def engine_label(op: OperatorOptions) -> str:
    """A table's operator cell: 'VSO 1.4.1' or 'ESO 2.9.0'."""
    return f"ESO {versions.ESO}" if op.engine == "eso" else f"VSO {op.version}"


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, all its threads (fails once it is
    gone: a figure from a process that died midway would be wrong)."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # the fields after the command (which may hold spaces) start after its last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()
    ticks = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICKS, sum(ticks) / _TICKS


class CpuMeter:
    """CPU seconds spent between :meth:`start` and :meth:`stop`: by each named process (pids
    this benchmark started), by this process's finished children (the product's CLI runs),
    and by the whole machine (busy share of all cores)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self._machine = (0.0, 0.0)
        self._children = 0.0

    @staticmethod
    def _children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        self._start = {name: process_cpu(pid) for name, pid in self.pids.items()}
        self._machine = machine_cpu()
        self._children = self._children_cpu()

    def stop(self) -> dict[str, float]:
        """Seconds by name, plus 'product' (the CLI runs), 'machine busy' and 'machine'."""
        out = {name: process_cpu(pid) - self._start[name] for name, pid in self.pids.items()}
        out["product"] = self._children_cpu() - self._children
        busy, total = machine_cpu()
        out["machine busy"] = busy - self._machine[0]
        out["machine"] = total - self._machine[1]
        return out
