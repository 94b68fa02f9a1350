"""What ``cluster.create --kind`` adds to the manifests of :mod:`bootstrap.model.cluster` on a
kind cluster, and the commands it runs. Pure: names, ports and paths in; kind's cluster
configuration, Kubernetes objects, argument lists and settings out.

The manifests are the node sandbox's, with the options a kind cluster allows (a storage
provisioner: PVCs; DNS: raft peers by their headless-Service names). Only the way in
differs: the product, on the laptop, reaches each OpenBao pod through a NodePort Service of
its own (``openbao-N-local``, selecting the pod by its StatefulSet name label) that kind maps
to a loopback port of the laptop (``extraPortMappings``, fixed when the cluster is made).
That mapping outlives pods: a pod deleted and made again is reached at the same port.
"""

from __future__ import annotations

import re
from pathlib import Path

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import cluster as model

KIND_API = "kind.x-k8s.io/v1alpha4"
#: The node ports of pods openbao-0, -1, -2 (inside the default NodePort range).
NODE_PORT_BASE = 30820
#: Always mapped for three pods: the mapping is fixed with the cluster, the replicas are not.
MAPPED_PODS = 3
#: Pods reach the API server at this address (kind runs CoreDNS).
KUBERNETES_HOST = "https://kubernetes.default.svc:443"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a kind cluster here (its node container and kubeconfig
    context are derived from it), or None."""
    if not _NAME.match(name):
        return (
            f"kind cluster name {name!r}: lowercase letters, digits and '-', at most 32, "
            "starting and ending with a letter or digit"
        )
    return None


def ownership_problem(
    name: str, clusters: list[str], recorded: object, record: Path, deleting: bool
) -> str | None:
    """Why ``create`` may not use, or ``delete`` may not delete, the kind cluster ``name``
    (``clusters``: what ``kind get clusters`` lists; ``recorded``: the name the record at
    ``record`` holds), or None: only a cluster this command made is either."""
    if recorded == name:
        return None
    if deleting:
        return (
            f"{record} does not say cluster.create --kind made a cluster named {name!r}; "
            "nothing deleted"
        )
    if name in clusters:
        return (
            f"a kind cluster named {name!r} exists, and {record} does not say "
            "cluster.create --kind made it: its node maps no port to OpenBao, and this "
            "command takes over nothing it did not make; choose another name (setting "
            "kind_cluster) or delete that cluster yourself"
        )
    return None


def local_service(i: int) -> str:
    return f"{model.OPENBAO}-{i}-local"


def kind_config(host_ports: list[int]) -> JsonObject:
    """One control-plane node whose pods' node ports of OpenBao are the laptop's loopback
    ``host_ports`` (pod i at ``host_ports[i]``), never another address."""
    if len(host_ports) != MAPPED_PODS:
        raise ValueError(f"{MAPPED_PODS} host ports expected, got {len(host_ports)}")
    return {
        "kind": "Cluster",
        "apiVersion": KIND_API,
        "nodes": [
            {
                "role": "control-plane",
                "extraPortMappings": [
                    {
                        "containerPort": NODE_PORT_BASE + i,
                        "hostPort": port,
                        "listenAddress": "127.0.0.1",
                        "protocol": "TCP",
                    }
                    for i, port in enumerate(host_ports)
                ],
            }
        ],
    }


def options(replicas: int) -> model.ClusterOptions:
    """The manifests' options on kind: PVCs from its default provisioner, DNS names."""
    return model.ClusterOptions(openbao_replicas=replicas, openbao_storage="pvc", cluster_dns=True)


def local_services(opts: model.ClusterOptions) -> list[JsonObject]:
    """A NodePort Service per OpenBao pod, selecting that pod only, publishing it while
    sealed (the bootstrap must reach a sealed pod to unseal it)."""
    out = []
    for i in range(opts.openbao_replicas):
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": local_service(i),
                    "namespace": opts.openbao_namespace,
                    "labels": {
                        "app.kubernetes.io/name": model.OPENBAO,
                        "app.kubernetes.io/component": "local-access",
                        "app.kubernetes.io/part-of": model.PART_OF,
                    },
                },
                "spec": {
                    "type": "NodePort",
                    "publishNotReadyAddresses": True,
                    "selector": {
                        "app.kubernetes.io/name": model.OPENBAO,
                        "statefulset.kubernetes.io/pod-name": f"{model.OPENBAO}-{i}",
                    },
                    "ports": [
                        {
                            "name": "http",
                            "port": opts.openbao_port,
                            "targetPort": opts.openbao_port,
                            "nodePort": NODE_PORT_BASE + i,
                        }
                    ],
                },
            }
        )
    return out


def settings_env(
    opts: model.ClusterOptions, host_ports: list[int], kubeconfig: Path
) -> dict[str, str]:
    """What ``bootstrap`` needs on that cluster: its kubeconfig, each pod at its forwarded
    port (pod 0 first, initialized), the followers joining pod 0 by its in-cluster name,
    kubernetes auth and the operator's VaultConnection at in-cluster addresses."""
    addrs = [f"http://127.0.0.1:{p}" for p in host_ports[: opts.openbao_replicas]]
    env = {
        "INVOKE_BOOTSTRAP_KUBECONFIG": str(kubeconfig),
        "INVOKE_BOOTSTRAP_VAULT_ADDRS": ",".join(addrs),
        "INVOKE_BOOTSTRAP_VAULT_KUBERNETES_HOST": KUBERNETES_HOST,
        "INVOKE_BOOTSTRAP_VAULT_CONNECTION_ADDRESS": model.openbao_address(opts),
        "INVOKE_BOOTSTRAP_AUDIT_FILE": model.AUDIT_LOG,
    }
    if opts.openbao_replicas > 1:
        env["INVOKE_BOOTSTRAP_VAULT_RAFT_LEADER_ADDR"] = model.openbao_node_addresses(opts)[0]
    return env


def create_commands(
    kind: str, name: str, config: Path, kubeconfig: Path, archives: list[Path], exists: bool
) -> list[list[str]]:
    """kind's commands, in order: make the cluster unless it exists, write its kubeconfig
    (kept beside the record, not merged into the user's), load each image archive."""
    out = []
    if not exists:
        made = [kind, "create", "cluster", "--name", name, "--config", str(config)]
        out.append([*made, "--wait", "120s", "--kubeconfig", str(kubeconfig)])
    out.append([kind, "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)])
    out += [[kind, "load", "image-archive", str(a), "--name", name] for a in archives]
    return out
