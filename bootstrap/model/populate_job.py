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
  never calls the Kubernetes API), a ConfigMap with the catalog alone (non-secret wiring),
  and the Job: the product's image, non-root, read-only root, a projected ServiceAccount
  token with the catalog's audience for Vault's kubernetes login, restartPolicy Never. No
  value is ever in them (issue 23, finding 3): ``env:`` sources come from a Secret the user
  makes (``envFrom``), and the files ``file:`` sources read from a second Secret the user
  makes (``kubectl create secret generic ... --from-file=KEY=PATH``, printed by
  :func:`files_secret_command`), projected with the ConfigMap into the catalog's folder at
  their paths relative to the catalog, bytes as they are (a binary file's source says
  ``encoding: base64``).
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from bootstrap.core.jsondoc import JsonObject
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
#: Kubernetes' limit on one ConfigMap or Secret (its data together).
CONFIGMAP_MAX_BYTES = 1024 * 1024
#: The Secret (in the Job's namespace) holding the files the catalog's ``file:`` sources
#: read, one key per file (:func:`file_keys`). Made by the user, never by the product.
FILES_SECRET = "bootstrap-populate-files"  # noqa: S105 - a Secret's name
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
    #: The Secret (in the Job's namespace) with the files of the ``file:`` sources.
    files_secret: str = FILES_SECRET
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
    """Sources the Job cannot use, each naming the path and key: a command never runs in the
    Job (its settings leave catalog_commands off), a prompt needs a terminal. The Job fails on
    them, naming them, only when such a key needs a value (one holding a real value is kept
    without running its source)."""
    notes = []
    for path, keys in sorted(kv_secrets(catalog)):
        for key, src in sorted(keys.items()):
            if src is not None and src.command:
                notes.append(
                    f"{path} key {key}: command {src.command[0]!r} never runs in the Job "
                    "(commands are off there); run populate locally for it"
                )
            elif src is not None and src.prompt is not None:
                notes.append(f"{path} key {key}: a prompt needs a terminal; the Job has none")
    return notes


_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]")


def file_keys(names: list[str]) -> dict[str, str]:
    """The key of each file (a path relative to the catalog's folder) in the files Secret: the
    path with ``/`` as ``.`` and any character a Secret's key cannot hold as ``_``; a key
    taken already gets ``-2``, ``-3``, ... Deterministic (sorted paths)."""
    keys: dict[str, str] = {}
    taken: set[str] = set()
    for rel in sorted(names):
        base = _KEY_CHARS.sub("_", rel.replace("/", "."))[:240].strip(".") or "file"
        key, n = base, 1
        while key in taken:
            n += 1
            key = f"{base}-{n}"
        taken.add(key)
        keys[rel] = key
    return keys


def files_secret_command(options: JobOptions, paths: Mapping[str, str]) -> list[str] | None:
    """The command the user runs to make the files Secret: ``kubectl -n NS create secret
    generic NAME --from-file=KEY=PATH ...`` (``paths``: each file's relative path -> the path
    to give kubectl). None when the catalog reads no file. It names files, never a value."""
    if not paths:
        return None
    keys = file_keys(list(paths))
    return [
        "kubectl",
        "-n",
        options.access.namespace,
        "create",
        "secret",
        "generic",
        options.files_secret,
        *(f"--from-file={keys[rel]}={paths[rel]}" for rel in sorted(paths)),
    ]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def configmap_data(catalog_text: str) -> dict[str, str]:
    """The ConfigMap's ``data``: the catalog as ``catalog.yaml``, nothing else (the files of
    ``file:`` sources are in the user's Secret). Raises ValueError when it would not fit."""
    size = len(catalog_text.encode())
    if size > CONFIGMAP_MAX_BYTES:
        raise ValueError(
            f"the catalog is {size} bytes, over a ConfigMap's limit of "
            f"{CONFIGMAP_MAX_BYTES} bytes (1 MiB)"
        )
    return {CATALOG_FILE: catalog_text}


def catalog_volume(configmap: str, options: JobOptions, files: list[str]) -> JsonObject:
    """The catalog's folder as the Job sees it: the ConfigMap's catalog.yaml and, at their
    paths relative to the catalog, the files Secret's keys (optional: a missing file fails
    the Job naming the key that needs it, as a missing env value does)."""
    sources: list[JsonObject] = [
        {"configMap": {"name": configmap, "items": [{"key": CATALOG_FILE, "path": CATALOG_FILE}]}}
    ]
    if files:
        keys = file_keys(files)
        sources.append(
            {
                "secret": {
                    "name": options.files_secret,
                    "items": [{"key": keys[rel], "path": rel} for rel in sorted(files)],
                    "optional": True,
                }
            }
        )
    return {"name": "catalog", "projected": {"sources": sources}}


# -- the manifests ------------------------------------------------------------------------


def _meta(catalog: Catalog, name: str, namespace: str | None) -> JsonObject:
    meta: JsonObject = {"name": name}
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
    catalog: Catalog, options: JobOptions, catalog_text: str, files: list[str]
) -> list[JsonObject]:
    """Namespace, ServiceAccount, ConfigMap and Job, in apply order; ``files``: the paths
    (relative to the catalog's folder) the ``file:`` sources read, never their contents.
    Deterministic."""
    ns = options.access.namespace
    configmap: JsonObject = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(catalog, f"{options.name}-catalog", ns),
        "data": configmap_data(catalog_text),
    }
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
            catalog_volume(configmap["metadata"]["name"], options, files),
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
    catalog: Catalog, options: JobOptions, catalog_text: str, files: list[str]
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
