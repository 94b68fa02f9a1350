"""``invoke cluster.create --kind`` / ``cluster.delete --kind``: the node sandbox's manifests
on a kind cluster, on a machine with kind and Docker (or Podman). A thin layer: kind makes the
cluster (with OpenBao's pods mapped to loopback ports, see :mod:`bootstrap.model.kind`) and
loads the same image archives (the operator's of the setting ``sandbox_operator_version``);
applying the objects and waiting for the pods is the node sandbox's own code
(:mod:`bootstrap.commands.cluster`), which the tests exercise there.

Its state is ``<state_dir>/kind/<name>/``: the record of what it made (``kind.json``: the
cluster's name and its loopback ports), kind's configuration, the cluster's kubeconfig (the
user's own is left alone) and ``cluster.env``. A kind cluster of that name that ``create``
did not make is refused, never reused (it maps no port to OpenBao) nor deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import yaml

from bootstrap.clients import procs
from bootstrap.clients.kube import Kube
from bootstrap.clients.procs import free_ports
from bootstrap.commands import cluster
from bootstrap.core.errors import BootstrapError, UsageError
from bootstrap.core.waits import WaitSettings
from bootstrap.model import cluster as model
from bootstrap.model import kind as kmodel
from bootstrap.model.catalog import Catalog
from bootstrap.model.settings import Settings
from bootstrap.sandbox import secrets_operator

RECORD = "kind.json"


def folder(settings: Settings, name: str) -> Path:
    return settings.state_dir / "kind" / name


def _kind() -> str:
    found = shutil.which("kind")
    if found is None:
        raise UsageError(
            "cluster.create --kind needs kind on PATH (and Docker or Podman for its node): "
            "'go install sigs.k8s.io/kind@latest' installs it; none was found"
        )
    return found


def _run(argv: list[str], timeout: float) -> str:
    """One kind command; its output on failure (kind prints no secrets: names and paths)."""
    try:
        code, out, errors = procs.run_captured(argv, timeout)
    except procs.RunTimeout:
        raise BootstrapError(f"'{' '.join(argv[1:4])}' did not finish in {timeout:.0f}s") from None
    if code != 0:
        tail = (errors or out).strip().splitlines()[-5:]
        raise BootstrapError(
            f"'{' '.join(argv[1:4])}' failed (exit {code}):\n  " + "\n  ".join(tail)
        )
    return out


def _load_record(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BootstrapError(
            f"{path}: not the record cluster.create --kind writes ({exc})"
        ) from exc
    if not isinstance(record, dict):
        raise BootstrapError(f"{path}: not the record cluster.create --kind writes")
    return record


def _save_record(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def create(
    settings: Settings,
    catalog: Catalog,
    name: str,
    replicas: int = 1,
    say: cluster.Say | None = None,
) -> cluster.Created:
    """Make (or reuse) the kind cluster ``name``, load the images, apply the manifests plus
    OpenBao's NodePort Services, wait until every pod runs, write ``cluster.env``."""
    tell = say or (lambda msg: None)
    if problem := kmodel.name_problem(name):
        raise UsageError(problem)
    opts = kmodel.options(replicas)
    if bad := opts.problems():
        raise UsageError("; ".join(bad))
    kind = _kind()
    here = folder(settings, name)
    here.mkdir(parents=True, exist_ok=True, mode=0o700)
    record_path = here / RECORD
    record = _load_record(record_path)
    done = cluster.Created()

    started = time.monotonic()
    clusters = _run([kind, "get", "clusters"], 60).split()
    if problem := kmodel.ownership_problem(
        name, clusters, record.get("cluster"), record_path, False
    ):
        raise UsageError(problem)
    exists = name in clusters
    ports = record.get("host_ports")
    if not (isinstance(ports, list) and len(ports) == kmodel.MAPPED_PODS):
        ports = free_ports(kmodel.MAPPED_PODS)
    host_ports = [int(p) for p in ports]
    config = here / "kind-config.yaml"
    config.write_text(yaml.safe_dump(kmodel.kind_config(host_ports), sort_keys=False))
    kubeconfig = here / "kubeconfig"
    operator, _ = cluster.operator_choice(settings)
    done.operator = cluster.describe(operator)
    tell(f"building the images (cached), the operator {done.operator}")
    built = cluster.build_images(settings, operator.version, tell, operator.engine)
    commands = kmodel.create_commands(
        kind, name, config, kubeconfig, [b.path for b in built], exists
    )
    if not exists:
        # recorded before kind runs: a half-made cluster is still ours to delete
        record = {"cluster": name, "host_ports": host_ports}
        _save_record(record_path, record)
    for argv in commands:
        tell(" ".join(argv[1:4]) + (f" {Path(argv[4]).name}" if argv[2] == "image-archive" else ""))
        _run(argv, 600)
    kubeconfig.chmod(0o600)
    done.images = [b.ref for b in built]
    done.seconds["kind"] = time.monotonic() - started

    started = time.monotonic()
    objects = cluster.manifests_for(settings, catalog, opts)
    objects += kmodel.local_services(opts)
    kube = Kube(kubeconfig)
    done.applied = cluster.apply_objects(kube, objects)
    tell(f"applied {done.applied} objects")
    done.seconds["apply"] = time.monotonic() - started

    started = time.monotonic()
    wait = WaitSettings(timeout=settings.wait_timeout, maximum=2.0)
    bao = cluster.wait_pods(kube, objects, opts, wait)
    done.openbao_pods = {
        p["metadata"]["name"]: str((p.get("status") or {}).get("podIP")) for p in bao
    }
    done.seconds["pods"] = time.monotonic() - started
    done.vault_service = model.openbao_address(opts)
    done.env = kmodel.settings_env(opts, host_ports, kubeconfig)
    if operator.engine == "eso":  # each SecretStore names OpenBao's Service
        done.env["INVOKE_BOOTSTRAP_VAULT_CONNECTION_ADDRESS"] = done.vault_service
    else:
        secrets_operator.default_connection(kube, opts.operator_namespace, done.vault_service)
    done.env_file = here / cluster.ENV_FILE
    cluster.write_env(done.env_file, done.env)
    return done


def delete(settings: Settings, name: str, say: cluster.Say | None = None) -> str:
    """Delete the kind cluster ``create`` made (its record says so), and the record."""
    tell = say or (lambda msg: None)
    here = folder(settings, name)
    kind = _kind()
    clusters = _run([kind, "get", "clusters"], 60).split()
    recorded = _load_record(here / RECORD).get("cluster")
    if problem := kmodel.ownership_problem(name, clusters, recorded, here / RECORD, True):
        raise UsageError(problem)
    if name in clusters:
        _run([kind, "delete", "cluster", "--name", name], 300)
        tell(f"deleted kind cluster {name}")
    shutil.rmtree(here)
    return name
