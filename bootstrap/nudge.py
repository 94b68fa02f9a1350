"""Make the operator reconcile now, without leaving the catalog's settings changed.

VSO re-reads a secret every refreshAfter, and at once only when a VaultStaticSecret's spec
changes (v0.1.0 included). :func:`fast_refresh` applies each named VaultStaticSecret with its
own spec but ``refreshAfter: 1s`` (a spec change: it reconciles now, then every second) and
re-applies the spec it had before, whatever happens (Ctrl-C included). Used by the verify
phase and the rotation test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bootstrap.kube import Kube
from bootstrap.render import VSO_API

FAST_REFRESH = "1s"


@contextmanager
def fast_refresh(kube: Kube, targets: list[tuple[str, str]]) -> Iterator[None]:
    """``targets``: (namespace, name) of VaultStaticSecrets; missing ones are skipped."""
    saved: list[dict[str, Any]] = []
    try:
        for namespace, name in targets:
            current = kube.get(VSO_API, "VaultStaticSecret", name, namespace)
            if current is None:
                continue
            meta = {
                "name": name,
                "namespace": namespace,
                "labels": (current.get("metadata") or {}).get("labels") or {},
            }
            obj = {
                "apiVersion": VSO_API,
                "kind": "VaultStaticSecret",
                "metadata": meta,
                "spec": current["spec"],
            }
            saved.append(obj)
            kube.apply({**obj, "spec": {**obj["spec"], "refreshAfter": FAST_REFRESH}})
        yield
    finally:
        for obj in saved:
            kube.apply(obj)
