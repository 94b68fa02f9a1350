"""Make the operator reconcile now, without leaving the catalog's settings changed.

VSO re-reads a secret every refreshAfter, and at once only when a VaultStaticSecret's spec
changes (v0.1.0 included; its controller filters on the generation). A failed read is not
requeued at all: the resource stalls until the spec changes again. A nudge applies a
VaultStaticSecret with its own spec but ``refreshAfter`` one second longer (then two, then one
again: each nudge is a change): the operator reconciles it once, now, and its refresh period
stays what it was, so a nudge of hundreds costs the operator one read and one sync each -- not
a reconcile every second that would eat its API budget (VSO v0.1.0 writes each kind at 20
requests a second at most). On the way out the spec each had before is re-applied, whatever happens
(Ctrl-C included). Used by the verify phase and the rotation test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bootstrap.clients.kube import Kube
from bootstrap.model.catalog import DURATION, duration_seconds
from bootstrap.model.domain import VSO_API

Ref = tuple[str, str]  # (namespace, name) of a VaultStaticSecret
#: Parallel applies (the API server takes them; the operator's own limits are the bottleneck).
WORKERS = 8


def nudge_values(refresh: str) -> tuple[str, str]:
    """Pure: two refreshAfter values for nudges, both different from ``refresh`` and close to
    it (30s -> 31s, 32s); 31s and 32s when it is unset or not whole seconds."""
    seconds = duration_seconds(refresh) if DURATION.match(refresh or "") else 0
    base = seconds or 30
    return (f"{base + 1}s", f"{base + 2}s")


class Nudger:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.saved: dict[Ref, dict[str, Any]] = {}
        self.current: dict[Ref, str] = {}
        self.times: dict[Ref, int] = {}
        self.last: dict[Ref, float] = {}
        self._lock = threading.Lock()

    def nudge(self, targets: list[Ref]) -> None:
        """Apply a refreshAfter that differs from the one there now (in parallel: hundreds
        of applies one after another would delay the operator's first reads by seconds);
        missing VaultStaticSecrets are skipped."""
        self._remember(targets)
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(self._nudge_one, [r for r in targets if r in self.saved]))

    def _remember(self, targets: list[Ref]) -> None:
        """Keep the spec each target has before its first nudge (one list per namespace)."""
        wanted = {r for r in targets if r not in self.saved}
        namespaces = sorted({ns for ns, _ in wanted})
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            listed = pool.map(
                lambda ns: self.kube.list(VSO_API, "VaultStaticSecret", ns), namespaces
            )
            for ns, items in zip(namespaces, listed, strict=True):
                for have in items:
                    ref = (ns, have["metadata"]["name"])
                    if ref not in wanted:
                        continue
                    self.saved[ref] = {
                        "apiVersion": VSO_API,
                        "kind": "VaultStaticSecret",
                        "metadata": {
                            "name": ref[1],
                            "namespace": ns,
                            "labels": (have.get("metadata") or {}).get("labels") or {},
                        },
                        "spec": have["spec"],
                    }
                    self.current[ref] = str(have["spec"].get("refreshAfter", ""))

    def _nudge_one(self, ref: Ref) -> None:
        obj = self.saved[ref]
        value = next(v for v in nudge_values(self.saved_refresh(ref)) if v != self.current[ref])
        self.kube.apply({**obj, "spec": {**obj["spec"], "refreshAfter": value}})
        with self._lock:
            self.current[ref] = value
            self.times[ref] = self.times.get(ref, 0) + 1
            self.last[ref] = time.monotonic()

    def saved_refresh(self, ref: Ref) -> str:
        return str(self.saved[ref]["spec"].get("refreshAfter", ""))

    def restore(self) -> None:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            list(pool.map(self.kube.apply, list(self.saved.values())))


@contextmanager
def nudged(kube: Kube, targets: list[Ref]) -> Iterator[Nudger]:
    """Nudge ``targets`` now; restore every nudged spec on the way out."""
    nudger = Nudger(kube)
    try:
        nudger.nudge(targets)
        yield nudger
    finally:
        nudger.restore()
