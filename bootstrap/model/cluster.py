"""The in-cluster manifests of ``cluster.create`` (node sandbox and kind): OpenBao as a raft
StatefulSet, the Vault Secrets Operator (the version whose image and declarations the caller
gives: 1.4.1 or v0.1.0) as a Deployment, and one demo workload per restart target of the
catalog. Pure: catalog, image references and the operator's own declarations
(:class:`OperatorSource`, read from that version's source by the caller) in, Kubernetes
objects out; deterministic.

- OpenBao starts as a Helm install leaves it: uninitialized and sealed (no dev mode, no
  auto-unseal); the bootstrap initializes and unseals it. Pods start in parallel (a sealed
  pod is never Ready, so ordered start would stall the second pod), both Services publish
  not-ready addresses (raft peers and the bootstrap reach sealed pods by them; the operator
  keeps reaching OpenBao when a loaded node fails a readiness probe), liveness accepts a
  sealed or uninitialized server and readiness does not.
- The operator runs in-cluster with its own ServiceAccount, the ClusterRole and
  leader-election Role its source tree declares (names as its Helm chart gives them), and
  leader election on; its pod's name and UID in its environment and in ``/var/run/podinfo``
  (both versions' charts give them: the UID marks the status it writes), its probes on
  :8081, metrics on the pod's loopback; extra flags (``ClusterOptions.operator_args``: the
  client rate and concurrency of 1.4.1) after the fixed ones.
- With the sync engine ``eso`` (:class:`EngineSource` given): the External Secrets
  Operator's controller instead of VSO, as its Helm chart installs it (its CRDs, its
  ServiceAccount ``external-secrets`` bound to the controller ClusterRole the chart renders;
  no webhook or certificate controller: the chart's optional parts), and Stakater Reloader
  beside it (its ServiceAccount bound to its own ClusterRole, ``--reload-strategy=
  annotations``), each a Deployment in a namespace of its own, probes on their health ports.
- Each demo workload has the kind its restart target names (the operator restarts that
  kind), mounts every Secret its service syncs (``optional: true``: it starts before the
  Secret exists) and gets each key as an optional environment variable too; liveness runs
  ``health_probe.py liveness --missing-ok`` (a missing Secret or a placeholder keeps it
  alive, an emptied key does not), readiness ``health_probe.py readiness --missing-ok``
  (ready only once every value is real).
- Images by ``localhost/cluster-secrets-bootstrap/NAME:TAG`` with ``imagePullPolicy:
  Never``: they are imported, never pulled. No container is privileged or may escalate;
  every one runs as a non-root user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model.catalog import Catalog, RestartTarget
from bootstrap.model.domain import WORKLOAD_API, Sync, syncs

#: Where locally built images are named (never a registry anyone pulls from).
IMAGE_REPOSITORY = "localhost/cluster-secrets-bootstrap"
PART_OF = "cluster-secrets-bootstrap"
_RBAC = "rbac.authorization.k8s.io/v1"

OPENBAO = "openbao"
OPENBAO_INTERNAL = "openbao-internal"
OPENBAO_CONFIG = "openbao-config"
OPENBAO_UID, OPENBAO_GID = 100, 1000
NONROOT = 65532
OPERATOR = "vault-secrets-operator"
OPERATOR_SERVICE_ACCOUNT = "vault-secrets-operator-controller-manager"
OPERATOR_DEPLOYMENT = "vault-secrets-operator-controller-manager"
OPERATOR_PROBE_PORT = 8081
#: Where the operator's pod finds its own name and UID (a downward-API volume, as its charts).
PODINFO = "/var/run/podinfo"
#: Where the demo mounts Secret ``NAME``: ``/etc/secrets/NAME``; its probe and program.
SECRETS_ROOT = "/etc/secrets"
DEMO_PYTHON = ("/usr/bin/python3.11", "-I")
HEALTH_PROBE = "/app/health_probe.py"
#: /v1/sys/health as probes ask it: live while sealed or uninitialized (204), ready only
#: when unsealed (active, or a standby).
LIVENESS_HEALTH = "/v1/sys/health?standbyok=true&perfstandbyok=true&sealedcode=204&uninitcode=204"
READINESS_HEALTH = "/v1/sys/health?standbyok=true&perfstandbyok=true"
#: The audit log, relative to the server's working folder (its data volume): the text the
#: sandbox's nodes declare, so a snapshot of one restores into the other (see
#: bootstrap.sandbox.openbao.AUDIT_LOG).
AUDIT_LOG = "audit.log"


def image_ref(name: str, tag: str) -> str:
    return f"{IMAGE_REPOSITORY}/{name}:{tag}"


@dataclass(frozen=True)
class ClusterImages:
    openbao: str
    operator: str
    demo: str
    #: the product itself (the populate Job's image)
    bootstrap: str = ""
    #: the sync engine eso: ESO's controller and Stakater Reloader
    eso: str = ""
    reloader: str = ""


@dataclass(frozen=True)
class OperatorSource:
    """What the operator's source tree declares: its CRDs and the rules of its ClusterRole
    (``config/rbac/role.yaml``) and leader-election Role
    (``config/rbac/leader_election_role.yaml``)."""

    crds: tuple[JsonObject, ...]
    cluster_rules: tuple[JsonObject, ...]
    leader_election_rules: tuple[JsonObject, ...]


@dataclass(frozen=True)
class EngineSource:
    """The External Secrets Operator's CRDs and its controller's ClusterRole and binding (as
    its chart renders them, subject its ServiceAccount in ``ClusterOptions.eso_namespace``),
    and Stakater Reloader's ClusterRole and binding (its ServiceAccount in
    ``reloader_namespace``)."""

    crds: tuple[JsonObject, ...]
    eso_rbac: tuple[JsonObject, ...]
    reloader_rbac: tuple[JsonObject, ...]


@dataclass(frozen=True)
class ClusterOptions:
    openbao_replicas: int = 1
    openbao_namespace: str = OPENBAO
    operator_namespace: str = conv.OPERATOR_NAMESPACE
    #: "pvc" (volumeClaimTemplates, as Helm does; kind's default provisioner serves them) or
    #: "hostPath": ``openbao_host_path/<pod name>`` on the node, each folder made beforehand
    #: and owned by uid 100 (the node sandbox: no provisioner there).
    openbao_storage: str = "pvc"
    openbao_host_path: str = ""
    openbao_storage_size: str = "1Gi"
    openbao_port: int = 8200
    openbao_cluster_port: int = 8201
    #: The cluster resolves Service names (kind: yes; the node sandbox: no DNS): raft peers
    #: then advertise their headless-Service names, else their pod IPs.
    cluster_dns: bool = True
    #: More flags for the operator's manager (e.g. ``--kube-client-qps=50``; the caller
    #: gives only flags its version has).
    operator_args: tuple[str, ...] = ()
    #: The sync engine eso: where ESO's controller and Stakater Reloader run (as their
    #: charts name them), and more flags for ESO's controller (e.g. ``--concurrent=4``).
    eso_namespace: str = "external-secrets"
    reloader_namespace: str = "reloader"
    eso_args: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        out = []
        if self.openbao_replicas not in (1, 3):
            out.append(f"openbao_replicas must be 1 or 3, not {self.openbao_replicas}")
        if self.openbao_storage not in ("pvc", "hostPath"):
            out.append(f"openbao_storage must be 'pvc' or 'hostPath', not {self.openbao_storage!r}")
        if self.openbao_storage == "hostPath" and not self.openbao_host_path.startswith("/"):
            out.append("openbao_storage hostPath needs an absolute openbao_host_path")
        for ns in (
            self.openbao_namespace,
            self.operator_namespace,
            self.eso_namespace,
            self.reloader_namespace,
        ):
            if not conv.is_dns_label(ns):
                out.append(f"namespace {ns!r} is not a DNS label")
        for arg in (*self.operator_args, *self.eso_args):
            if not re.fullmatch(r"--[a-z][a-z0-9-]*=\S+", arg):
                out.append(f"operator argument {arg!r} is not --flag=value")
        return out


class ClusterConfigError(ValueError):
    pass


def _labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def _selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> JsonObject:
    meta: JsonObject = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _container_security() -> JsonObject:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _namespace(name: str, component: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _meta(name, None, _labels(name, component)),
    }


# -- OpenBao ------------------------------------------------------------------------------


def openbao_address(options: ClusterOptions) -> str:
    """OpenBao's in-cluster address (its Service), for the operator's VaultConnection."""
    return f"http://{OPENBAO}.{options.openbao_namespace}.svc:{options.openbao_port}"


def openbao_node_addresses(options: ClusterOptions) -> list[str]:
    """Each pod's own address (the headless Service's DNS names), first the one to
    initialize: what ``bootstrap.vault_addrs`` lists in the cluster."""
    ns = options.openbao_namespace
    return [
        f"http://{OPENBAO}-{i}.{OPENBAO_INTERNAL}.{ns}.svc:{options.openbao_port}"
        for i in range(options.openbao_replicas)
    ]


def openbao_config(options: ClusterOptions) -> str:
    """The server's HCL: raft on the data volume, one plain-HTTP listener on every address,
    the file audit device; api_addr, cluster_addr and the raft node id come from each pod's
    environment (``BAO_API_ADDR``, ``BAO_CLUSTER_ADDR``, ``BAO_RAFT_NODE_ID``). No
    retry_join: the bootstrap joins followers itself."""
    return (
        'storage "raft" {\n  path = "/openbao/data"\n}\n\n'
        'listener "tcp" {\n'
        f'  address = "[::]:{options.openbao_port}"\n'
        f'  cluster_address = "[::]:{options.openbao_cluster_port}"\n'
        "  tls_disable = true\n}\n\n"
        'ui = false\nlog_level = "info"\n\n'
        'audit "file" "file" {\n  description = "cluster audit log"\n'
        f'  options {{\n    file_path = "{AUDIT_LOG}"\n  }}\n}}\n'
    )


def _openbao_objects(images: ClusterImages, options: ClusterOptions) -> list[JsonObject]:
    ns = options.openbao_namespace
    labels = _labels(OPENBAO, "server")
    port, cport = options.openbao_port, options.openbao_cluster_port
    ports = [
        {"name": "http", "port": port, "targetPort": port},
        {"name": "cluster", "port": cport, "targetPort": cport},
    ]
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "BAO_API_ADDR", "value": f"http://$(POD_IP):{port}"},
        {
            "name": "BAO_CLUSTER_ADDR",
            "value": f"https://$(POD_NAME).{OPENBAO_INTERNAL}.{ns}.svc:{cport}"
            if options.cluster_dns
            else f"https://$(POD_IP):{cport}",
        },
        {"name": "BAO_RAFT_NODE_ID", "value": "$(POD_NAME)"},
        {"name": "BAO_ADDR", "value": f"http://127.0.0.1:{port}"},
    ]
    data_mount: JsonObject = {"name": "data", "mountPath": "/openbao/data"}
    volumes: list[JsonObject] = [
        {"name": "config", "configMap": {"name": OPENBAO_CONFIG}},
    ]
    claims: list[JsonObject] = []
    if options.openbao_storage == "hostPath":
        data_mount["subPathExpr"] = "$(POD_NAME)"
        volumes.append(
            {
                "name": "data",
                "hostPath": {"path": options.openbao_host_path, "type": "Directory"},
            }
        )
    else:
        claims.append(
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": options.openbao_storage_size}},
                },
            }
        )
    container = {
        "name": OPENBAO,
        "image": images.openbao,
        "imagePullPolicy": "Never",
        "args": ["-config=/openbao/config"],
        "workingDir": "/openbao/data",  # the audit log's relative path
        "env": env,
        "ports": [
            {"name": "http", "containerPort": port},
            {"name": "cluster", "containerPort": cport},
        ],
        "volumeMounts": [
            {"name": "config", "mountPath": "/openbao/config", "readOnly": True},
            data_mount,
        ],
        # a node initializing, unsealing or taking over the lead can hold its health answer
        # for seconds on a loaded node: three 3-s timeouts restarted OpenBao mid-bootstrap in
        # CI (RemoteDisconnected, then refused, right after unseal); a minute of silence does
        "livenessProbe": {
            "httpGet": {"path": LIVENESS_HEALTH, "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
            "timeoutSeconds": 10,
        },
        "readinessProbe": {
            "httpGet": {"path": READINESS_HEALTH, "port": port, "scheme": "HTTP"},
            "periodSeconds": 5,
            "failureThreshold": 2,
            "timeoutSeconds": 3,
        },
        "securityContext": _container_security(),
    }
    statefulset: JsonObject = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(OPENBAO, ns, labels),
        "spec": {
            "serviceName": OPENBAO_INTERNAL,
            "replicas": options.openbao_replicas,
            "podManagementPolicy": "Parallel",
            # as the Helm chart: a new pod spec reaches a pod when it is deleted (and then
            # unsealed again), never in a rolling update that would seal the cluster away
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": _selector(OPENBAO)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": OPENBAO,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": OPENBAO_UID,
                        "runAsGroup": OPENBAO_GID,
                        "fsGroup": OPENBAO_GID,
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    if claims:
        statefulset["spec"]["volumeClaimTemplates"] = claims
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(OPENBAO, ns, labels),
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(OPENBAO_CONFIG, ns, labels),
            "data": {"config.hcl": openbao_config(options)},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(OPENBAO_INTERNAL, ns, labels),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": _selector(OPENBAO),
                "ports": ports,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(OPENBAO, ns, labels),
            "spec": {
                "type": "ClusterIP",
                "publishNotReadyAddresses": True,
                "selector": _selector(OPENBAO),
                "ports": ports[:1],
            },
        },
        statefulset,
    ]


# -- the Vault Secrets Operator -----------------------------------------------------------


def _operator_objects(
    images: ClusterImages, source: OperatorSource, options: ClusterOptions
) -> list[JsonObject]:
    ns = options.operator_namespace
    labels = _labels(OPERATOR, "controller-manager")
    sa = OPERATOR_SERVICE_ACCOUNT
    subject = [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    cluster_role = f"{OPERATOR}-manager-role"
    leader_role = f"{OPERATOR}-leader-election-role"
    out: list[JsonObject] = [*source.crds]
    out += [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, ns, labels)},
        {
            "apiVersion": _RBAC,
            "kind": "ClusterRole",
            "metadata": _meta(cluster_role, None, labels),
            "rules": [dict(r) for r in source.cluster_rules],
        },
        {
            "apiVersion": _RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(f"{OPERATOR}-manager-rolebinding", None, labels),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": subject,
        },
        {
            "apiVersion": _RBAC,
            "kind": "Role",
            "metadata": _meta(leader_role, ns, labels),
            "rules": [dict(r) for r in source.leader_election_rules],
        },
        {
            "apiVersion": _RBAC,
            "kind": "RoleBinding",
            "metadata": _meta(f"{OPERATOR}-leader-election-rolebinding", ns, labels),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": leader_role,
            },
            "subjects": subject,
        },
    ]
    probe_port = OPERATOR_PROBE_PORT
    container = {
        "name": "manager",
        "image": images.operator,
        "imagePullPolicy": "Never",
        "args": [
            "--leader-elect",
            f"--health-probe-bind-address=:{probe_port}",
            "--metrics-bind-address=127.0.0.1:8080",
            # info, not the development default (debug): its debug lines on Secret drift
            # carry the Secret's data
            "--zap-log-level=info",
            *options.operator_args,
        ],
        "env": [
            # as the charts give them (the pod's UID marks the status it writes)
            {
                "name": "OPERATOR_POD_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {"name": "OPERATOR_POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            # its namespace when no ServiceAccount namespace file is mounted
            {
                "name": "OPERATOR_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
        ],
        "volumeMounts": [{"name": "podinfo", "mountPath": PODINFO, "readOnly": True}],
        "ports": [{"name": "probes", "containerPort": probe_port}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": probe_port},
            "initialDelaySeconds": 15,
            "periodSeconds": 20,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": probe_port},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
        },
        "securityContext": {**_container_security(), "readOnlyRootFilesystem": True},
    }
    out.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(OPERATOR_DEPLOYMENT, ns, labels),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": _selector(OPERATOR)},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": sa,
                        "terminationGracePeriodSeconds": 10,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": NONROOT,
                            "runAsGroup": NONROOT,
                        },
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "podinfo",
                                "downwardAPI": {
                                    "items": [
                                        {"path": f, "fieldRef": {"fieldPath": f"metadata.{f}"}}
                                        for f in ("name", "uid")
                                    ]
                                },
                            }
                        ],
                    },
                },
            },
        }
    )
    return out


# -- the sync engine eso: ESO's controller and Stakater Reloader ------------------------------

ESO = "external-secrets"
ESO_SERVICE_ACCOUNT = "external-secrets"
ESO_PROBE_PORT = 8082
RELOADER = "reloader"
RELOADER_SERVICE_ACCOUNT = "reloader-reloader"
#: Reloader's health and metrics port: fixed in its code.
RELOADER_PORT = 9090


def _program_deployment(
    name: str,
    namespace: str,
    labels: dict[str, str],
    service_account: str,
    container: JsonObject,
) -> JsonObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector(name)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": service_account,
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": NONROOT,
                        "runAsGroup": NONROOT,
                    },
                    "containers": [
                        {
                            **container,
                            "imagePullPolicy": "Never",
                            "securityContext": {
                                **_container_security(),
                                "readOnlyRootFilesystem": True,
                            },
                        }
                    ],
                },
            },
        },
    }


def _probe(path: str, port: int, delay: int) -> JsonObject:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
    }


def _eso_objects(
    images: ClusterImages, source: EngineSource, options: ClusterOptions
) -> list[JsonObject]:
    """ESO's CRDs, ServiceAccount, RBAC and controller; Reloader's ServiceAccount, RBAC and
    Deployment."""
    eso_ns, rel_ns = options.eso_namespace, options.reloader_namespace
    eso_labels = _labels(ESO, "controller")
    rel_labels = _labels(RELOADER, "controller")
    out: list[JsonObject] = [*source.crds]
    out += [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(ESO_SERVICE_ACCOUNT, eso_ns, eso_labels),
        },
        *source.eso_rbac,
        _program_deployment(
            ESO,
            eso_ns,
            eso_labels,
            ESO_SERVICE_ACCOUNT,
            {
                "name": ESO,
                "image": images.eso,
                "args": [
                    "--metrics-addr=127.0.0.1:8080",
                    f"--live-addr=:{ESO_PROBE_PORT}",
                    "--loglevel=info",
                    "--zap-time-encoding=rfc3339",
                    *options.eso_args,
                ],
                "ports": [{"name": "live", "containerPort": ESO_PROBE_PORT}],
                "livenessProbe": _probe("/healthz", ESO_PROBE_PORT, 15),
                "readinessProbe": _probe("/readyz", ESO_PROBE_PORT, 5),
            },
        ),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(RELOADER_SERVICE_ACCOUNT, rel_ns, rel_labels),
        },
        *source.reloader_rbac,
        _program_deployment(
            RELOADER,
            rel_ns,
            rel_labels,
            RELOADER_SERVICE_ACCOUNT,
            {
                "name": RELOADER,
                "image": images.reloader,
                # annotations: its stamp on the pod template, which status and verify read
                "args": ["--reload-strategy=annotations", "--log-level=info"],
                "ports": [{"name": "http", "containerPort": RELOADER_PORT}],
                "livenessProbe": _probe("/live", RELOADER_PORT, 10),
                "readinessProbe": _probe("/metrics", RELOADER_PORT, 5),
            },
        ),
    ]
    return out


# -- demo workloads -----------------------------------------------------------------------


def _env_name(secret: str, key: str) -> str:
    """``DEMO_SECRET_<SECRET>_<KEY>``: upper case, anything but letters and digits as ``_``
    (a C identifier, which every Kubernetes version takes)."""
    return "DEMO_SECRET_" + re.sub(r"[^A-Z0-9]", "_", f"{secret}_{key}".upper())


def _demo_workload(
    target: RestartTarget, namespace: str, service: str, secrets: list[Sync], image: str
) -> list[JsonObject]:
    labels = {**_labels(target.name, "demo"), conv.SERVICE_LABEL: service}
    destinations = sorted({s.destination for s in secrets})
    keys = {s.destination: s.keys for s in secrets}
    mounts = [f"{SECRETS_ROOT}/{d}" for d in destinations]
    probe = [*DEMO_PYTHON, HEALTH_PROBE]
    container = {
        "name": "demo",
        "image": image,
        "imagePullPolicy": "Never",
        "args": mounts,
        # values a pod gets at start: fixed until the operator restarts the workload
        "env": [
            {
                "name": _env_name(d, k),
                "valueFrom": {"secretKeyRef": {"name": d, "key": k, "optional": True}},
            }
            for d in destinations
            for k in keys[d]
        ],
        "volumeMounts": [
            {"name": f"secret-{i}", "mountPath": m, "readOnly": True} for i, m in enumerate(mounts)
        ],
        "livenessProbe": {
            "exec": {"command": [*probe, "liveness", "--missing-ok", *mounts]},
            # a probe is a Python start: on a loaded node it can take seconds, and a slow
            # probe must not restart a healthy container (3 failures of 10 s do)
            "periodSeconds": 5,
            "failureThreshold": 3,
            "timeoutSeconds": 10,
        },
        "readinessProbe": {
            "exec": {"command": [*probe, "readiness", "--missing-ok", *mounts]},
            "periodSeconds": 3,
            "failureThreshold": 1,
            "timeoutSeconds": 10,
        },
        "securityContext": {**_container_security(), "readOnlyRootFilesystem": True},
    }
    pod = {
        "metadata": {"labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"runAsNonRoot": True, "runAsUser": NONROOT, "runAsGroup": NONROOT},
            "containers": [container],
            "volumes": [
                {"name": f"secret-{i}", "secret": {"secretName": d, "optional": True}}
                for i, d in enumerate(destinations)
            ],
        },
    }
    spec: JsonObject = {"selector": {"matchLabels": _selector(target.name)}, "template": pod}
    out: list[JsonObject] = []
    if target.kind != "DaemonSet":
        spec["replicas"] = 1
    if target.kind == "StatefulSet":
        spec["serviceName"] = target.name
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(target.name, namespace, labels),
                "spec": {"clusterIP": "None", "selector": _selector(target.name)},
            }
        )
    out.append(
        {
            "apiVersion": WORKLOAD_API[target.kind],
            "kind": target.kind,
            "metadata": _meta(target.name, namespace, labels),
            "spec": spec,
        }
    )
    return out


def _demo_objects(catalog: Catalog, image: str) -> list[JsonObject]:
    by_service: dict[tuple[str, str], list[Sync]] = {}
    for sync in syncs(catalog):
        by_service.setdefault((sync.namespace, sync.service), []).append(sync)
    out: list[JsonObject] = []
    seen: set[tuple[str, str, str]] = set()
    for svc in catalog.services:
        for target in svc.restart:
            key = (svc.namespace, target.kind, target.name)
            if key in seen:  # two services restarting one workload: rendered once
                continue
            seen.add(key)
            # every service of the namespace that restarts this workload: its Secrets
            secrets = [
                s
                for other in catalog.services
                if other.namespace == svc.namespace and target in other.restart
                for s in by_service.get((other.namespace, other.name), [])
            ]
            out += _demo_workload(target, svc.namespace, svc.name, secrets, image)
    return out


# -- everything ---------------------------------------------------------------------------


def render_cluster(
    catalog: Catalog,
    images: ClusterImages,
    operator: OperatorSource | None,
    options: ClusterOptions | None = None,
    engine: EngineSource | None = None,
) -> list[JsonObject]:
    """Every object ``cluster.create`` applies, in apply order: namespaces, the operator's
    CRDs, OpenBao, the operator, the demo workloads. ``engine`` given: ESO and Reloader
    instead of VSO (``operator`` is then not used)."""
    opts = options or ClusterOptions()
    problems = opts.problems()
    if problems:
        raise ClusterConfigError("; ".join(problems))
    if engine is not None:
        own = [(opts.eso_namespace, "operator"), (opts.reloader_namespace, "reloader")]
    else:
        own = [(opts.operator_namespace, "operator")]
    namespaces = [_namespace(opts.openbao_namespace, "openbao")]
    namespaces += [_namespace(ns, component) for ns, component in own]
    taken = {opts.openbao_namespace, *(ns for ns, _ in own)}
    namespaces += [_namespace(ns, "demo") for ns in catalog.namespaces if ns not in taken]
    if engine is not None:
        operator_objects = _eso_objects(images, engine, opts)
    elif operator is not None:
        operator_objects = _operator_objects(images, operator, opts)
    else:
        raise ClusterConfigError("neither the operator's nor ESO's declarations given")
    crds = [o for o in operator_objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in operator_objects if o["kind"] != "CustomResourceDefinition"]
    return [
        *namespaces,
        *crds,
        *_openbao_objects(images, opts),
        *rest,
        *_demo_objects(catalog, images.demo),
    ]
