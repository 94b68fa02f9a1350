"""The Kubernetes client: every call the product makes to a cluster goes through here, and
API errors become :class:`KubernetesError` (status and reason, never a request body)."""

from __future__ import annotations

import base64
import builtins
import functools
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from bootstrap.core.errors import KubernetesError
from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv

log = logging.getLogger(__name__)


@contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except (ApiException, DynamicApiError) as exc:
        status = getattr(exc, "status", None)
        reason = getattr(exc, "reason", None) or ""
        message = _message(exc)
        raise KubernetesError(f"{what}: HTTP {status} {reason}: {message}".rstrip(": ")) from None
    except ResourceNotFoundError as exc:
        raise KubernetesError(f"{what}: {exc} (is the CRD installed?)") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesError(f"{what}: cannot reach the API server{_unreachable(exc)}") from None


def _unreachable(exc: BaseException) -> str:
    """`` at <address>: <why>`` for a connection failure, from what urllib3 kept of it."""
    pool = getattr(exc, "pool", None)
    where = ""
    if pool is not None and getattr(pool, "host", None):
        where = f" at {getattr(pool, 'scheme', 'https')}://{pool.host}:{pool.port}"
    reason = getattr(exc, "reason", None) or exc
    for _ in range(3):  # MaxRetryError(reason=NewConnectionError(...)) and the like
        inner = getattr(reason, "reason", None)
        if inner is None or inner is reason:
            break
        reason = inner
    text = str(reason)
    for known in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "No route to host",
        "certificate verify failed",
        "Connection reset",
    ):
        if known.lower() in text.lower():
            return f"{where}: {known}"
    return f"{where}: {type(reason).__name__}"


def _kubeconfig_problem(path: str | None, exc: Exception) -> KubernetesError:
    import os

    shown = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    first = shown.split(os.pathsep)[0]
    if not Path(os.path.expanduser(first)).exists():
        return KubernetesError(
            f"kubeconfig {first}: no such file (point the kubeconfig setting or KUBECONFIG at "
            "the cluster's kubeconfig)"
        )
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return KubernetesError(f"kubeconfig {shown}: cannot be used: {detail}")


def _message(exc: Exception) -> str:
    import json

    body = getattr(exc, "body", None)
    if isinstance(body, bytes | str):
        try:
            return str(json.loads(body).get("message", ""))[:300]
        except (ValueError, AttributeError):
            return ""
    return ""


def _secret(
    namespace: str, name: str, data: dict[str, bytes], labels: dict[str, str] | None
) -> client.V1Secret:
    """An Opaque Secret holding ``data`` (encoded here)."""
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels or {}),
        data={k: base64.b64encode(v).decode() for k, v in data.items()},
        type="Opaque",
    )


class Kube:
    def __init__(self, kubeconfig: Path | str | None = None, context: str | None = None) -> None:
        path = str(kubeconfig) if kubeconfig else None
        try:
            self.api: client.ApiClient = config.new_client_from_config(
                config_file=path, context=context
            )
        except (config.ConfigException, OSError, ValueError, TypeError, yaml.YAMLError) as exc:
            raise _kubeconfig_problem(path, exc) from None
        self._dynamic: DynamicClient | None = None

    # The typed APIs are made when first used: importing CoreV1Api alone costs about 0.7 s
    # of CPU, and a run with nothing to change needs none of them (its reads are lists
    # through the REST layer, :meth:`_get_json`).
    @functools.cached_property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @functools.cached_property
    def auth(self) -> client.AuthenticationV1Api:
        return client.AuthenticationV1Api(self.api)

    @functools.cached_property
    def rbac(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api)

    @functools.cached_property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def ca_pem(self) -> str:
        """The CA that signs the API server's certificate, as the kubeconfig names it."""
        cfg = self.api.configuration
        if cfg.ssl_ca_cert:
            return Path(cfg.ssl_ca_cert).read_text(encoding="utf-8")
        return ""

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            with translated("discovering API resources"):
                self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def version(self) -> str:
        with translated("reading the server version"):
            return str(client.VersionApi(self.api).get_code().git_version)

    # -- namespaces and service accounts -----------------------------------------------
    def namespaces(self) -> set[str]:
        with translated("listing namespaces"):
            found = self._get_json("/api/v1/namespaces", [])
        return {str(n["metadata"]["name"]) for n in (found or {}).get("items") or []}

    def raw(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> bytes:
        """One request through the client's REST layer (its TLS and credentials), the response
        body left undecoded. A status other than 2xx raises ApiException (for translated)."""
        method, url, head, payload, post = self.api.param_serialize(
            method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        resp: Any = self.api.call_api(
            method, url, header_params=head, body=payload, post_params=post
        )
        data = bytes(resp.read() or b"")
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=data.decode())
        return data

    def list_metadata(self, path: str, what: str) -> dict[str, JsonObject]:
        """Name -> metadata (a dict in the API's own JSON field names) of every object a list
        path returns, e.g. ``/api/v1/namespaces/apps/secrets``: one request, and only the
        metadata travels (a Secret's data never leaves the server)."""
        import json

        accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        with translated(f"listing {what}"):
            body = self.raw("GET", path, {"Accept": accept})
        items = json.loads(body).get("items") or []
        return {str(i["metadata"]["name"]): dict(i["metadata"]) for i in items}

    def _create_if_missing(self, what: str, read: Any, create: Any) -> bool:
        """Call ``create`` unless ``read`` finds the object. True if it was created."""
        with translated(f"reading {what}"):
            try:
                read()
                return False
            except ApiException as exc:
                if exc.status != 404:
                    raise
        with translated(f"creating {what}"):
            create()
        return True

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> bool:
        """Create the namespace if missing. Returns True if it was created."""
        meta = client.V1ObjectMeta(name=name, labels=labels or {})
        return self._create_if_missing(
            f"namespace {name}",
            lambda: self._get_json(f"/api/v1/namespaces/{name}", []),
            lambda: self.core.create_namespace(client.V1Namespace(metadata=meta)),
        )

    def delete_namespace(self, name: str) -> None:
        with translated(f"deleting namespace {name}"):
            try:
                self.core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def ensure_service_account(
        self, namespace: str, name: str, labels: dict[str, str] | None = None
    ) -> bool:
        meta = client.V1ObjectMeta(name=name, labels=labels or {})
        return self._create_if_missing(
            f"ServiceAccount {namespace}/{name}",
            lambda: self._get_json(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", []),
            lambda: self.core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=meta)
            ),
        )

    def token(
        self, namespace: str, service_account: str, audiences: list[str], seconds: int = 600
    ) -> str:
        """A ServiceAccount token through the TokenRequest API. Never logged."""
        body = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=audiences, expiration_seconds=seconds)
        )
        with translated(f"requesting a token for {namespace}/{service_account}"):
            resp = self.core.create_namespaced_service_account_token(
                service_account, namespace, body
            )
        if resp.status is None:
            raise KubernetesError(f"TokenRequest for {namespace}/{service_account} gave no token")
        return str(resp.status.token)

    def ensure_cluster_role_binding(
        self, name: str, role: str, namespace: str, service_account: str
    ) -> bool:
        body = client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(
                name=name, labels={conv.MANAGED_BY_LABEL: conv.MANAGED_BY_VALUE}
            ),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
            ),
            subjects=[
                client.RbacV1Subject(
                    kind="ServiceAccount", name=service_account, namespace=namespace
                )
            ],
        )
        with translated(f"reading ClusterRoleBinding {name}"):
            try:
                existing = self.rbac.read_cluster_role_binding(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                existing = None
        if existing is not None:
            same = (
                existing.role_ref.name == role
                and existing.subjects
                and [(s.name, s.namespace) for s in existing.subjects]
                == [(service_account, namespace)]
            )
            if same:
                return False
            with translated(f"replacing ClusterRoleBinding {name}"):
                self.rbac.delete_cluster_role_binding(name)
        with translated(f"creating ClusterRoleBinding {name}"):
            self.rbac.create_cluster_role_binding(body)
        return True

    # -- secrets ------------------------------------------------------------------------
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        with translated(f"reading Secret {namespace}/{name}"):
            try:
                s = self.core.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def list_secrets(self, namespace: str) -> dict[str, dict[str, bytes]]:
        """Every Secret of a namespace, by name, decoded (one request)."""
        with translated(f"listing Secrets in {namespace}"):
            found = self._get_json(f"/api/v1/namespaces/{namespace}/secrets", [])
        return {
            str(s["metadata"]["name"]): {
                k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()
            }
            for s in (found or {}).get("items") or []
        }

    def list_events(self, namespace: str, kind: str) -> list[Any]:
        """Core events about objects of one kind in a namespace."""
        with translated(f"listing events in {namespace}"):
            return list(
                self.core.list_namespaced_event(
                    namespace, field_selector=f"involvedObject.kind={kind}"
                ).items
            )

    def read_secret_object(self, namespace: str, name: str) -> Any:
        """The whole Secret object (metadata included), or None."""
        with translated(f"reading Secret {namespace}/{name}"):
            try:
                return self.core.read_namespaced_secret(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def create_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        labels: dict[str, str] | None = None,
        *,
        dry_run: bool = False,
    ) -> bool:
        """Create a Secret, never replacing one: False when it exists already. ``dry_run``
        asks the API server to check everything (authorization, name, admission) and store
        nothing."""
        body = _secret(namespace, name, data, labels)
        return self._create(namespace, body, f"creating Secret {namespace}/{name}", dry_run=dry_run)

    def write_secret(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        """Create a Secret (without labels), or replace the one of that name."""
        body = _secret(namespace, name, data, None)
        what = f"writing Secret {namespace}/{name}"
        if not self._create(namespace, body, what):
            with translated(what):
                self.core.replace_namespaced_secret(name, namespace, body)

    def put_secret_record(self, namespace: str, name: str, record: JsonObject) -> None:
        """Make a Secret exactly ``record`` (type, base64 data, labels, annotations): created
        when absent, else replaced (same object, so its workloads see it in place)."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels=record.get("labels") or None,
                annotations=record.get("annotations") or None,
            ),
            type=record.get("type") or "Opaque",
            data=record.get("data") or {},
        )
        what = f"writing Secret {namespace}/{name}"
        with translated(what):
            try:
                self.core.replace_namespaced_secret(name, namespace, body)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.core.create_namespaced_secret(namespace, body)

    def patch_suspend(self, namespace: str, name: str, suspend: bool) -> None:
        """Suspend (or resume) a CronJob."""
        with translated(f"suspending CronJob {namespace}/{name}"):
            res = self.dynamic.resources.get(api_version="batch/v1", kind="CronJob")
            res.patch(
                name=name,
                namespace=namespace,
                body={"spec": {"suspend": suspend}},
                content_type="application/merge-patch+json",
            )

    def create_object(self, obj: JsonObject) -> None:
        meta = obj["metadata"]
        with translated(f"creating {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"):
            res = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            res.create(body=obj, namespace=meta.get("namespace"))

    def _create(
        self, namespace: str, body: client.V1Secret, what: str, *, dry_run: bool = False
    ) -> bool:
        """False when a Secret of that name exists already."""
        with translated(what):
            try:
                if dry_run:
                    self.core.create_namespaced_secret(namespace, body, dry_run="All")
                else:
                    self.core.create_namespaced_secret(namespace, body)
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
        return True

    # -- generic objects ----------------------------------------------------------------
    def apply(self, obj: JsonObject, field_manager: str = conv.FIELD_MANAGER) -> None:
        """Server-side apply of one object, forcing our field manager's ownership. One PATCH
        through the client's REST layer; the answer is checked, not decoded (the dynamic
        client's objects cost more CPU than the request: 3500 applies took 4x the bare loop's
        time, issue 25)."""
        meta = obj["metadata"]
        what = f"applying {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"
        res = self._resource(obj["apiVersion"], obj["kind"])
        namespace = meta.get("namespace") if res.namespaced else None
        with translated(what):
            request = self.api.param_serialize(
                "PATCH",
                res.path(name=meta["name"], namespace=namespace),
                query_params=[("fieldManager", field_manager), ("force", "true")],
                header_params={
                    "Content-Type": "application/apply-patch+yaml",
                    "Accept": "application/json",
                },
                body=obj,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*request)
            response.read()
            if not 200 <= response.status <= 299:
                text = (response.data or b"").decode("utf-8", "replace")
                raise ApiException.from_response(http_resp=response, body=text, data=None)

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: JsonObject,
        field_manager: str = conv.FIELD_MANAGER,
    ) -> None:
        """A JSON merge patch of one object (e.g. one annotation or label)."""
        with translated(f"patching {kind} {namespace or ''}/{name}"):
            res = self.dynamic.resources.get(api_version=api_version, kind=kind)
            res.patch(
                body=patch,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                field_manager=field_manager,
            )

    def wait_crds_established(self, names: list[str], timeout: float = 30.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                conds = ((crd or {}).get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    pending.remove(name)
            if pending:
                time.sleep(0.2)
        if pending:
            raise KubernetesError(f"CRDs not established after {timeout:.0f}s: {pending}")
        self._dynamic = None  # rediscover, so the new kinds are known

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> JsonObject | None:
        with translated(f"reading {kind} {namespace or ''}/{name}"):
            res = self.dynamic.resources.get(api_version=api_version, kind=kind)
            try:
                return dict(res.get(name=name, namespace=namespace).to_dict())
            except DynamicApiError as exc:
                if exc.status == 404:
                    return None
                raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[JsonObject]:
        with translated(f"listing {kind}"):
            res = self.dynamic.resources.get(api_version=api_version, kind=kind)
            items = res.get(namespace=namespace, label_selector=label_selector).to_dict()
        out = list(items.get("items", []))
        for item in out:  # list items carry no apiVersion/kind of their own
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return out

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        with translated(f"deleting {kind} {namespace or ''}/{name}"):
            res = self.dynamic.resources.get(api_version=api_version, kind=kind)
            try:
                res.delete(name=name, namespace=namespace)
            except DynamicApiError as exc:
                if exc.status != 404:
                    raise

    # -- bulk reads: plain JSON over the client's REST layer, no models -----------------
    # The operator phase reads thousands of objects per run. These reads go through the API
    # client's connection pool (its TLS and credentials), resolve each kind's path once, and
    # keep responses as JSON: no models, no DynamicClient wrappers (a list of 2500
    # VaultStaticSecrets costs 0.05 s of client CPU here, 0.55 s through :meth:`list`). Safe
    # to call from several threads at once.
    _resolve_lock = threading.Lock()

    @property
    def pool_size(self) -> int:
        """Connections the client keeps to the API server: more requests at once than this
        open a connection each, discarded after it (and urllib3 warns)."""
        return int(self.api.configuration.connection_pool_maxsize or 1)

    def _resource(self, api_version: str, kind: str) -> Any:
        """The discovered API resource of a kind, resolved once per client."""
        with Kube._resolve_lock:
            cache: dict[tuple[str, str], Any] = self.__dict__.setdefault("_resources", {})
            if (api_version, kind) not in cache:
                with translated(f"discovering {kind}"):
                    found = self.dynamic.resources.get(api_version=api_version, kind=kind)
                cache[(api_version, kind)] = found
            return cache[(api_version, kind)]

    def _get_json(self, path: str, query: builtins.list[tuple[str, str]]) -> Any:
        """GET one path; the response's JSON. Not 2xx: :class:`ApiException` (the caller
        translates it)."""
        request = self.api.param_serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        response.read()
        text = (response.data or b"").decode("utf-8", "replace")
        if not 200 <= response.status <= 299:
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return json.loads(text)

    def list_objects(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> builtins.list[JsonObject]:
        """Every object of a kind (in ``namespace``, else cluster-wide) as plain JSON, with
        its apiVersion and kind: one request, what :meth:`list` gives without its cost."""
        res = self._resource(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        where = f" in {namespace}" if namespace else ""
        with translated(f"listing {kind}{where}"):
            found = self._get_json(res.path(namespace=namespace), query)
        items: builtins.list[JsonObject] = builtins.list((found or {}).get("items") or [])
        for item in items:  # list items carry no apiVersion/kind of their own
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items
