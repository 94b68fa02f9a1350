"""``invoke migrate.discover``: read the cluster's Jobs, CronJobs and Secrets, find the
secret copiers and what they left where (see :mod:`bootstrap.model.migration`), and write a
draft catalog fragment. Reads only; values never leave this module (a digest stands for them).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.model import conventions as conv
from bootstrap.model.migration import SecretSeen, WorkloadSeen

#: Namespaces never searched: Kubernetes' own.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def digest(data: dict[str, str] | None) -> str:
    """sha256 over the sorted keys and their (base64) values: equal data, equal digest."""
    h = hashlib.sha256()
    for key in sorted(data or {}):
        h.update(key.encode() + b"\0" + base64.b64decode((data or {})[key] or "") + b"\0")
    return h.hexdigest()


def _secret(obj: dict[str, Any]) -> SecretSeen:
    meta = obj.get("metadata") or {}
    data = obj.get("data") or {}
    return SecretSeen(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        keys=tuple(sorted(data)),
        digest=digest(data),
        type=str(obj.get("type") or "Opaque"),
        labels=dict(meta.get("labels") or {}),
        owned=bool(meta.get("ownerReferences")),
        created=str(meta.get("creationTimestamp") or ""),
    )


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _workload(obj: dict[str, Any]) -> WorkloadSeen:
    meta = obj.get("metadata") or {}
    pod = _pod_spec(obj)
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    # `sh -c "SCRIPT"`: the script is what runs; keep it as it is (new lines included)
    parts = []
    for c in containers:
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if len(argv) >= 3 and argv[1] == "-c":
            parts.append(str(argv[2]))
        else:
            parts.append(" ".join(str(p) for p in argv))
    script = "\n".join(parts)
    env = {
        str(e["name"]): str(e.get("value") or "")
        for c in containers
        for e in c.get("env") or []
        if "name" in e and "value" in e
    }
    owners = meta.get("ownerReferences") or []
    return WorkloadSeen(
        kind=str(obj.get("kind")),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        images=tuple(str(c.get("image", "")) for c in containers),
        script=script,
        env=env,
        suspended=bool((obj.get("spec") or {}).get("suspend")),
        owned=any(o.get("kind") == "CronJob" for o in owners),
    )


def observe(
    kube: Kube, namespaces: list[str] | None = None
) -> tuple[list[WorkloadSeen], list[SecretSeen]]:
    """Jobs, CronJobs and Secrets of the given namespaces (default: every namespace but
    Kubernetes' own and the product's)."""
    own = {conv.OPERATOR_NAMESPACE}
    chosen = sorted(set(namespaces)) if namespaces else None

    def wanted(obj: dict[str, Any]) -> bool:
        ns = (obj.get("metadata") or {}).get("namespace", "")
        if chosen is not None:
            return ns in chosen
        return ns not in SYSTEM_NAMESPACES and ns not in own

    workloads: list[WorkloadSeen] = []
    for kind in ("CronJob", "Job"):
        workloads += [_workload(o) for o in kube.list("batch/v1", kind) if wanted(o)]
    secrets = [_secret(o) for o in kube.list("v1", "Secret") if wanted(o)]
    return workloads, secrets
