"""The populate step as a Kubernetes Job (the seed's post-deployment jobs), for GitOps tools
that run post-deploy hooks. Pure; no IO: catalog and inputs in, policy, role and manifests out.

- The Job's Vault access: one policy, ``bootstrap-populate``, granting create, update and
  read on exactly the catalog's KV paths (``secret/data/<path>`` for each declared secret,
  shared and infrastructure ones included) and nothing else: no listing, no metadata, no
  other path. Read is needed on those same paths: populate reads each path's version for
  check-and-set and merges the keys it holds (a real value is kept), and ``copy:`` sources
  read other paths of the catalog. One kubernetes auth role of that name bound to the Job's
  own ServiceAccount in its own namespace, with the catalog's audience.
- The manifests: a Namespace, the ServiceAccount (no API token mounted, no RBAC: the Job
  never calls the Kubernetes API), a ConfigMap with the catalog and the files its ``file:``
  sources read (mounted as the catalog's folder), and the Job: the product's image, non-root,
  read-only root, a projected ServiceAccount token with the catalog's audience for Vault's
  kubernetes login, ``env:`` sources from a Secret the user makes (``envFrom``, never
  inlined here), restartPolicy Never.
"""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bootstrap.model.catalog import Catalog
from bootstrap.model.domain import kv_secrets
from bootstrap.model.render import (
    POPULATE_ROLE,
    PopulateAccess,
    dump_yaml_docs,
    labels,
    render_populate_policy,
    render_populate_role,
)

__all__ = ["POPULATE_ROLE", "PopulateAccess", "render_populate_policy", "render_populate_role"]
#: Where the Job mounts the catalog's folder and its Vault token.
CATALOG_DIR = "/etc/cluster-secrets-bootstrap/catalog"
CATALOG_FILE = "catalog.yaml"
TOKEN_DIR = "/var/run/secrets/cluster-secrets-bootstrap"  # noqa: S105 - a folder
TOKEN_FILE = "vault-token"  # noqa: S105 - a file name
#: The product's image runs as this user (see bootstrap.tooling.images.NONROOT).
IMAGE_USER = 65532
#: The Job's entrypoint module inside the product's image.
ENTRYPOINT = ("/usr/bin/python3.11", "-s", "-m", "bootstrap.populate_job")
#: Kubernetes' limit on one ConfigMap (its data and binaryData together).
CONFIGMAP_MAX_BYTES = 1024 * 1024
#: What the rendered Job may cost at most.
BACKOFF_LIMIT = 2
ACTIVE_DEADLINE_SECONDS = 600
TTL_SECONDS_AFTER_FINISHED = 86400


@dataclass(frozen=True)
class JobOptions:
    access: PopulateAccess
    image: str
    vault_addr: str
    #: The Secret (in the Job's namespace) whose keys become the Job's environment: the
    #: values of the catalog's ``env:`` sources. Made by the user; optional for the pod.
    env_secret: str
    name: str = "bootstrap-populate"
    pull_policy: str = "IfNotPresent"
    #: Extra paths (below the KV mount) whose read the Job must see refused after writing.
    expect_denied: tuple[str, ...] = ()


# -- the catalog's folder in a ConfigMap --------------------------------------------------


def catalog_files(catalog: Catalog) -> tuple[list[str], list[str]]:
    """The files the catalog's ``file:`` sources read, relative to the catalog's folder
    (posix, normalised, sorted), and what the Job cannot mount (a file outside the folder),
    each naming the path and key."""
    found: set[str] = set()
    problems: list[str] = []
    for path, keys in kv_secrets(catalog):
        for key, src in sorted(keys.items()):
            if src is None or src.file is None:
                continue
            rel = posixpath.normpath(src.file.replace("\\", "/"))
            if posixpath.isabs(rel) or rel == ".." or rel.startswith("../"):
                problems.append(
                    f"{path} key {key}: file {src.file} is outside the catalog's folder; the "
                    "populate Job mounts only that folder (move the file into it)"
                )
                continue
            found.add(rel)
    return sorted(found), problems


def job_notes(catalog: Catalog) -> list[str]:
    """Sources the Job may not be able to use, each naming the path and key: a command runs
    inside the product's image (which holds python3.11 and the product, no shell), a prompt
    needs a terminal. The Job fails on them, naming them, only when such a key needs a
    value (one holding a real value is kept without running its source)."""
    notes = []
    for path, keys in sorted(kv_secrets(catalog)):
        for key, src in sorted(keys.items()):
            if src is not None and src.command:
                notes.append(
                    f"{path} key {key}: command {src.command[0]!r} runs inside the Job's "
                    "image (python3.11 and the product only, no shell)"
                )
            elif src is not None and src.prompt is not None:
                notes.append(f"{path} key {key}: a prompt needs a terminal; the Job has none")
    return notes


def configmap_data(catalog_text: str, files: Mapping[str, bytes]) -> dict[str, Any]:
    """The ConfigMap's ``data``/``binaryData`` and the volume's ``items`` (key -> path):
    the catalog as ``catalog.yaml``, each file at its relative path. Raises ValueError when
    it would not fit in one ConfigMap."""
    data: dict[str, str] = {"catalog.yaml": catalog_text}
    binary: dict[str, str] = {}
    items = [{"key": "catalog.yaml", "path": CATALOG_FILE}]
    for i, rel in enumerate(sorted(files), start=1):
        key = f"file-{i:03d}"
        raw = files[rel]
        try:
            data[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = base64.b64encode(raw).decode("ascii")
        items.append({"key": key, "path": rel})
    size = sum(len(v.encode()) for v in data.values()) + sum(len(v) for v in binary.values())
    if size > CONFIGMAP_MAX_BYTES:
        raise ValueError(
            f"the catalog and its files total {size} bytes, over a ConfigMap's limit of "
            f"{CONFIGMAP_MAX_BYTES} bytes (1 MiB)"
        )
    return {"data": data, "binaryData": binary, "items": items}


# -- the manifests ------------------------------------------------------------------------


def _meta(catalog: Catalog, name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**labels(catalog), "app.kubernetes.io/component": "populate"}
    return meta


def job_args(options: JobOptions) -> list[str]:
    args = [
        "--catalog",
        f"{CATALOG_DIR}/{CATALOG_FILE}",
        "--vault-addr",
        options.vault_addr,
        "--role",
        POPULATE_ROLE,
        "--token-file",
        f"{TOKEN_DIR}/{TOKEN_FILE}",
    ]
    for path in options.expect_denied:
        args += ["--expect-denied", path]
    return args


def render_manifests(
    catalog: Catalog, options: JobOptions, catalog_text: str, files: Mapping[str, bytes]
) -> list[dict[str, Any]]:
    """Namespace, ServiceAccount, ConfigMap and Job, in apply order. Deterministic."""
    ns = options.access.namespace
    cm = configmap_data(catalog_text, files)
    configmap: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(catalog, f"{options.name}-catalog", ns),
        "data": cm["data"],
    }
    if cm["binaryData"]:
        configmap["binaryData"] = cm["binaryData"]
    container = {
        "name": "populate",
        "image": options.image,
        "imagePullPolicy": options.pull_policy,
        "command": list(ENTRYPOINT),
        "args": job_args(options),
        # the catalog's env: sources, from a Secret the user makes; never inlined here
        "envFrom": [{"secretRef": {"name": options.env_secret, "optional": True}}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "catalog", "mountPath": CATALOG_DIR, "readOnly": True},
            {"name": "vault-token", "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the container's own
        ],
    }
    pod_spec = {
        "serviceAccountName": options.access.service_account,
        "automountServiceAccountToken": False,  # no Kubernetes API token: it needs none
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": IMAGE_USER,
            "runAsGroup": IMAGE_USER,
        },
        "containers": [container],
        "volumes": [
            {
                "name": "catalog",
                "configMap": {"name": configmap["metadata"]["name"], "items": cm["items"]},
            },
            {
                "name": "vault-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": catalog.defaults.audience,
                                "expirationSeconds": 600,
                                "path": TOKEN_FILE,
                            }
                        }
                    ]
                },
            },
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ],
    }
    job_meta = _meta(catalog, options.name, ns)
    # a post-deploy hook for Argo CD; a Job's pod template cannot change, so a new one
    # replaces the last one
    job_meta["annotations"] = {
        "argocd.argoproj.io/hook": "PostSync",
        "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": job_meta,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": _meta(catalog, options.name, None)["labels"]},
                "spec": pod_spec,
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(catalog, ns, None)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(catalog, options.access.service_account, ns),
            "automountServiceAccountToken": False,
        },
        configmap,
        job,
    ]


def render_files(
    catalog: Catalog, options: JobOptions, catalog_text: str, files: Mapping[str, bytes]
) -> dict[str, str]:
    """The files ``invoke render --populate-job`` adds, below ``populate-job/``: the Job's
    policy and role (what vault-config writes with the setting populate_job) and its
    manifests, one file in apply order. Deterministic."""
    role = render_populate_role(catalog, options.access)
    return {
        f"populate-job/vault/policies/{POPULATE_ROLE}.hcl": render_populate_policy(catalog),
        f"populate-job/vault/roles/{POPULATE_ROLE}.json": json.dumps(role, indent=2, sort_keys=True)
        + "\n",
        "populate-job/manifests.yaml": dump_yaml_docs(
            render_manifests(catalog, options, catalog_text, files)
        ),
    }
