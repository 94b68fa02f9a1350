"""``invoke cluster.create`` / ``cluster.delete`` on the node sandbox: OpenBao, the Vault
Secrets Operator (the setting ``sandbox_operator_version``: 1.4.1 by default, or v0.1.0, with
its ``sandbox_operator_*`` flags), or with ``sync_engine: eso`` the External Secrets Operator
and Stakater Reloader, and one demo workload per catalog restart target, as pods from the
images built here (``images.build``), from the manifests of :mod:`bootstrap.model.cluster`.

What it leaves is a cluster as a Helm install would: OpenBao sealed and uninitialized, the
operator waiting for its VaultConnection, the demo pods running but not Ready (their Secrets
do not exist yet). ``invoke bootstrap`` then does the rest, with the settings this command
writes to ``<sandbox>/cluster.env``: Vault found from its StatefulSet's pods, kubernetes auth
pointed at the ``kubernetes`` Service as pods reach it, the operator's VaultConnection (or,
with ESO, each SecretStore: ``vault_connection_address``) at OpenBao's Service by its DNS
name, as on any cluster (the node runs CoreDNS and kube-proxy).

The sandbox's own operator process (or ESO and Reloader processes) is stopped (two operators
would both sync every Secret); its own OpenBao processes keep running, unused. The operator
in the cluster must be the engine and version the sandbox installed (its CRDs; ``delete``
starts the sandbox's processes again on them): another is refused. ``cluster.delete``
removes what ``create`` made (the namespaces it made, and the operators' Deployments in
namespaces that were there; the cluster-wide RBAC and CRDs stay: a later ``create`` applies
them again), nothing else.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bootstrap.clients.kube import Kube
from bootstrap.core.errors import BootstrapError, UsageError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.waits import Pending, WaitSettings, wait_for
from bootstrap.model import cluster as model
from bootstrap.model.catalog import Catalog
from bootstrap.model.settings import Settings
from bootstrap.sandbox import external_secrets, netns, node, reloader, secrets_operator
from bootstrap.sandbox.secrets_operator import OperatorOptions
from bootstrap.sandbox.state import SandboxState
from bootstrap.tooling import images, manifests, versions

Say = Callable[[str], None]
#: OpenBao's image runs as this user (see bootstrap.tooling.images.OPENBAO_USER).
OPENBAO_UID, OPENBAO_GID = images.OPENBAO_USER
ENV_FILE = "cluster.env"
#: The namespaces ``create`` made (not there before it), which ``delete`` may remove.
RECORD_FILE = "cluster.json"


@dataclass
class Created:
    """What ``create`` did and what ``bootstrap`` needs next."""

    images: list[str] = field(default_factory=list)
    applied: int = 0
    openbao_pods: dict[str, str] = field(default_factory=dict)  # name -> IP
    #: The operator's VaultConnection address: OpenBao's Service, by its DNS name.
    vault_service: str = ""
    env: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    #: Which operator runs in the cluster, e.g. "v1.4.1 (BUSL-1.1)".
    operator: str = ""


def operator_choice(settings: Settings) -> tuple[OperatorOptions, Path | None]:
    """The operator the settings ask for (``sandbox_operator_*``, or ``sync_engine`` eso:
    ESO and Reloader) and its source archive setting (``vso_source`` for 1.4.1,
    ``vso_v0_source`` for v0.1.0; none for ESO: its build keeps what the manifests need)."""
    try:
        operator = OperatorOptions.of(settings)
    except BootstrapError as exc:
        raise UsageError(str(exc)) from None
    if operator.engine == "eso":
        return operator, None
    archive = settings.vso_source if operator.version == versions.VSO else settings.vso_v0_source
    return operator, archive


def describe(operator: OperatorOptions) -> str:
    """The operator as the summary names it: 'VSO v1.4.1 (BUSL-1.1)', or ESO's name."""
    return operator.describe() if operator.engine == "eso" else f"VSO {operator.describe()}"


def build_images(
    settings: Settings, version: str, say: Say, engine: str = "vso"
) -> list[images.ImageResult]:
    """The images a cluster with the operator ``version`` (or ESO) runs, built (cached)."""
    keys = [i.key for i in images.for_cluster(version, engine)]
    return images.build(keys, settings.tools_dir, lambda key, msg: say(f"image {key}: {msg}"))


def manifests_for(
    settings: Settings, catalog: Catalog, options: model.ClusterOptions
) -> list[JsonObject]:
    """The objects to apply, with the operator the settings ask for: its image, CRDs and
    RBAC from its source, its flags as container arguments."""
    operator, archive = operator_choice(settings)
    if operator.engine == "eso":
        options = replace(options, eso_args=tuple(operator.flags()))
    else:
        options = replace(options, operator_args=tuple(operator.flags()))
    return manifests.cluster_manifests(
        catalog, settings.tools_dir, options, archive, operator.version, operator.engine
    )


def node_sandbox(settings: Settings) -> SandboxState:
    state = SandboxState.load(settings.sandbox_dir.resolve())
    if state is None or not state.running():
        raise UsageError(
            f"no sandbox runs in {settings.sandbox_dir}; 'invoke sandbox.up --node' starts one"
        )
    if state.node is None:
        raise UsageError(
            f"the sandbox in {state.directory} has no node (started without --node); "
            "'invoke sandbox.down' then 'invoke sandbox.up --node'"
        )
    return state


def _options(state: SandboxState, replicas: int) -> model.ClusterOptions:
    return model.ClusterOptions(
        openbao_replicas=replicas,
        openbao_storage="hostPath",
        openbao_host_path=str(Path(state.directory) / "openbao-data"),
        cluster_dns=True,  # the node's CoreDNS: raft peers by their headless-Service names
    )


def _prepare_storage(options: model.ClusterOptions) -> None:
    """Each pod's data folder, owned by OpenBao's user (hostPath type Directory)."""
    root = Path(options.openbao_host_path)
    root.mkdir(mode=0o755, exist_ok=True)
    for i in range(options.openbao_replicas):
        folder = root / f"{model.OPENBAO}-{i}"
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chown(folder, OPENBAO_UID, OPENBAO_GID)


def _pods(kube: Kube, namespace: str, selector: str) -> list[JsonObject]:
    return kube.list_objects("v1", "Pod", namespace, label_selector=selector)


def _running(pod: JsonObject) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in (c.get("state") or {}) for c in statuses)


def _describe(pods: list[JsonObject]) -> str:
    out = []
    for p in pods:
        status = p.get("status") or {}
        waiting = [
            (c.get("state") or {}).get("waiting", {}).get("reason")
            for c in status.get("containerStatuses") or []
            if "waiting" in (c.get("state") or {})
        ]
        what = ", ".join(w for w in waiting if w) or status.get("phase") or "no status"
        out.append(f"{p['metadata']['name']}: {what}")
    return "; ".join(out) or "no pod yet"


def wait_running(
    kube: Kube, namespace: str, selector: str, count: int, what: str, wait: WaitSettings
) -> list[JsonObject]:
    """Until ``count`` pods of ``selector`` have every container running (Ready or not: a
    sealed OpenBao and a demo without its Secret are live and not Ready, as they should)."""

    def probe() -> list[JsonObject]:
        pods = _pods(kube, namespace, selector)
        running = [p for p in pods if _running(p)]
        if len(running) < count:
            raise Pending(f"{len(running)} of {count} running ({_describe(pods)})")
        return running

    return wait_for(probe, what, wait)


def apply_objects(kube: Kube, objects: list[JsonObject]) -> int:
    """Apply every object in order (server-side), waiting for the CRDs to be established
    before the first object after them; returns how many were applied."""
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    for obj in objects:
        kube.apply(obj)
        if crds and obj is crds[-1]:
            kube.wait_crds_established([c["metadata"]["name"] for c in crds])
    return len(objects)


def wait_pods(
    kube: Kube, objects: list[JsonObject], options: model.ClusterOptions, wait: WaitSettings
) -> list[JsonObject]:
    """Until OpenBao's pods, the operator's and every demo workload's run; returns
    OpenBao's pods."""
    bao = wait_running(
        kube,
        options.openbao_namespace,
        f"app.kubernetes.io/name={model.OPENBAO}",
        options.openbao_replicas,
        "OpenBao's pods to run (sealed: live, not Ready)",
        wait,
    )
    # the operators' pods (VSO's, or ESO's and Reloader's), then each demo workload's
    own = operator_deployments(objects)
    for d in own:
        labels = d["spec"]["selector"]["matchLabels"]
        wait_running(
            kube,
            d["metadata"]["namespace"],
            ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            1,
            f"{d['metadata']['name']}'s pod to run",
            wait,
        )
    demos = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
    for d in demos:
        if d in own or d["metadata"]["name"] == model.OPENBAO:
            continue
        labels = d["spec"]["selector"]["matchLabels"]
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        count = int(d["spec"].get("replicas", 1)) if d["kind"] != "DaemonSet" else 1
        wait_running(
            kube,
            d["metadata"]["namespace"],
            selector,
            count,
            f"{d['kind']} {d['metadata']['namespace']}/{d['metadata']['name']} to run",
            wait,
        )
    return bao


def operator_deployments(objects: list[JsonObject]) -> list[JsonObject]:
    """The Deployments of the manifests that are no demo workload: the operators'."""
    return [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"].get("app.kubernetes.io/component") != "demo"
    ]


def sandbox_processes(state: SandboxState) -> list[str]:
    """The sandbox's sync-engine processes that the cluster's pods replace: its operator, or
    ESO and (when it runs one) Reloader."""
    if state.sync_engine != "eso":
        return ["vault-secrets-operator"]
    names = {p.name for p in state.processes}
    return [n for n in (external_secrets.PROCESS, reloader.PROCESS) if n in names]


def write_env(path: Path, env: dict[str, str]) -> None:
    """The settings ``bootstrap`` needs next, as shell exports (values quoted)."""
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def create(
    settings: Settings, catalog: Catalog, replicas: int = 1, say: Say | None = None
) -> Created:
    """Build and import the images, apply the manifests, wait until every pod runs, and
    write the settings ``invoke bootstrap`` needs next."""
    tell = say or (lambda msg: None)
    state = node_sandbox(settings)
    missing = {"kube-proxy", "coredns"} - {p.name for p in state.processes}
    if missing:
        # the operator reaches OpenBao by its Service's name; raft peers call each other so
        raise UsageError(
            f"the node sandbox in {state.directory} runs no {' and no '.join(sorted(missing))} "
            "(started by an older version): 'invoke sandbox.down' then 'invoke sandbox.up --node'"
        )
    operator, _ = operator_choice(settings)
    eso = operator.engine == "eso"
    if eso != (state.sync_engine == "eso"):
        raise UsageError(
            f"the node sandbox in {state.directory} runs "
            + ("ESO" if state.sync_engine == "eso" else "VSO")
            + f" (its CRDs; cluster.delete starts it again on them), and the setting "
            f"sync_engine asks for {operator.engine}: set it to {state.sync_engine}, or "
            f"'invoke sandbox.down' then 'invoke sandbox.up --node' with sync_engine "
            f"{operator.engine}"
        )
    if not eso and operator.version != state.operator_version:
        raise UsageError(
            f"the node sandbox in {state.directory} installed VSO v{state.operator_version} "
            f"(its CRDs; cluster.delete starts its operator again on them), and the setting "
            f"sandbox_operator_version asks for {operator.version}: set it to "
            f"{state.operator_version}, or 'invoke sandbox.down' then 'invoke sandbox.up "
            f"--node' with {operator.version}"
        )
    done = Created(operator=describe(operator))
    wait = WaitSettings(timeout=settings.wait_timeout, maximum=2.0)

    started = time.monotonic()
    for image in build_images(settings, operator.version, tell, operator.engine):
        node.import_image(state, image.path)
        done.images.append(image.ref)
    done.seconds["images"] = time.monotonic() - started

    started = time.monotonic()
    options = _options(state, replicas)
    objects = manifests_for(settings, catalog, options)
    _prepare_storage(options)
    for name in sandbox_processes(state):
        if state.process(name).stop():
            tell(f"stopped the sandbox's {name} process: it now runs in the cluster")
    kube = Kube(state.kubeconfig)
    before = kube.namespaces()
    made = sorted(
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Namespace" and o["metadata"]["name"] not in before
    )
    # the operators' Deployments in namespaces the sandbox made (its operator's): delete
    # removes them, so that the sandbox's process, started again, runs alone
    deployments = sorted(
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in operator_deployments(objects)
        if o["metadata"]["namespace"] in before
    )
    record = Path(state.directory) / RECORD_FILE
    known = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    made = sorted({*made, *known.get("namespaces", [])})
    deployments = sorted({*deployments, *known.get("deployments", [])})
    record.write_text(
        json.dumps({"namespaces": made, "deployments": deployments}, indent=2) + "\n",
        encoding="utf-8",
    )
    done.applied = apply_objects(kube, objects)
    tell(f"applied {done.applied} objects")
    done.seconds["apply"] = time.monotonic() - started

    started = time.monotonic()
    bao = wait_pods(kube, objects, options, wait)
    done.openbao_pods = {
        p["metadata"]["name"]: str((p.get("status") or {}).get("podIP")) for p in bao
    }
    done.seconds["pods"] = time.monotonic() - started

    # the operator's default VaultConnection, as its Helm chart's defaultVaultConnection
    # makes it: the sandbox made one for its own OpenBao process; it now names OpenBao's
    # Service by name (CoreDNS and kube-proxy on the node), which follows the pods whatever
    # their addresses (a deleted pod comes back at another)
    done.vault_service = model.openbao_address(options)
    done.env = {
        "INVOKE_BOOTSTRAP_VAULT_STATEFULSET": f"{options.openbao_namespace}/{model.OPENBAO}",
        "INVOKE_BOOTSTRAP_VAULT_PORT": str(options.openbao_port),
        "INVOKE_BOOTSTRAP_VAULT_KUBERNETES_HOST": f"https://{netns.API_SERVICE_IP}:443",
        "INVOKE_BOOTSTRAP_AUDIT_FILE": model.AUDIT_LOG,
    }
    if eso:  # each SecretStore names Vault as ESO's pod reaches it: OpenBao's Service
        done.env["INVOKE_BOOTSTRAP_VAULT_CONNECTION_ADDRESS"] = done.vault_service
    else:
        secrets_operator.default_connection(kube, options.operator_namespace, done.vault_service)
    done.env_file = Path(state.directory) / ENV_FILE
    write_env(done.env_file, done.env)
    return done


def delete(settings: Settings, say: Say | None = None) -> list[str]:
    """Delete the namespaces ``create`` made (recorded in ``cluster.json``: not one that was
    there before it), start the sandbox's operator process again; returns the namespaces
    deleted."""
    from bootstrap import sandbox

    tell = say or (lambda msg: None)
    state = node_sandbox(settings)
    kube = Kube(state.kubeconfig)
    record = Path(state.directory) / RECORD_FILE
    made = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    gone = []
    for name in made.get("namespaces", []):
        kube.delete_namespace(name)
        gone.append(name)
        tell(f"deleting namespace {name}")
    for ref in made.get("deployments", []):
        ns, _, name = ref.partition("/")
        kube.delete("apps/v1", "Deployment", name, ns)
        tell(f"deleting Deployment {ref}")
    record.unlink(missing_ok=True)
    if state.sync_engine != "eso":
        secrets_operator.default_connection(kube, state.operator_namespace, state.bao_addr)
    for name in sandbox_processes(state):
        if not state.process(name).alive():
            sandbox.restart(Path(state.directory), name, settings.wait_timeout)
            tell(f"the sandbox's {name} process runs again")
    env_file = Path(state.directory) / ENV_FILE
    env_file.unlink(missing_ok=True)
    return gone
