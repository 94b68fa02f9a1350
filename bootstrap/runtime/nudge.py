"""Make the operator reconcile now, without leaving the catalog's settings changed, and
without restarting anything that Vault gives no reason to restart.

VSO re-reads a secret every refreshAfter, and at once only when a VaultStaticSecret changes
in a way its controller watches for. Two ways, chosen from the cluster's CRD
(``model.operator_api``):

- a current operator (1.4.1) reconciles on a change of the object's annotations: the nudge
  sets the annotation :data:`NUDGE_ANNOTATION` to a new value. The spec stays as it is, so
  the operator syncs only when Vault's data differs from the Secret's, and restarts the
  targets only then. A spec change would not do: 1.4.1 syncs again and restarts every
  rollout target on any spec change of a VaultStaticSecret that has synced once. The
  annotation stays (it says when the last nudge was); nothing needs restoring.
- VSO v0.1.0 reconciles only on a spec change (its controller filters on the generation), and
  a failed read is not requeued at all: the resource stalls until the spec changes again. The
  nudge applies the object's own spec with ``refreshAfter`` one second longer (then two, then
  one again: each nudge is a change): it reconciles once, now, syncs only changed data, and
  restarts only on changed data. On the way out the spec each had before is re-applied,
  whatever happens (Ctrl-C included).

ESO's ExternalSecrets take an annotation nudge too (:data:`eso.FORCE_SYNC`, as its documentation
says): it refreshes one whenever its annotations differ from those it last synced.

Either way a nudge of hundreds costs the operator one read and one sync each -- not a
reconcile every second that would eat its API budget (VSO v0.1.0 writes each kind at 20
requests a second at most). Used by the verify phase and the rotation test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bootstrap.clients.kube import Kube
from bootstrap.core.jsondoc import JsonObject
from bootstrap.core.parallel import in_parallel
from bootstrap.model import eso
from bootstrap.model.catalog import DURATION, duration_seconds
from bootstrap.model.operator_api import OperatorApi

Ref = tuple[str, str]  # (namespace, name) of a VaultStaticSecret
#: Parallel applies (the API server takes them; the operator's own limits are the bottleneck).
WORKERS = 8
#: The annotation an annotation nudge changes (its value: the nudge's time, nanoseconds).
NUDGE_ANNOTATION = "secrets-bootstrap/nudged-at"
NUDGE_FIELD_MANAGER = "cluster-secrets-bootstrap-nudge"


def nudge_values(refresh: str) -> tuple[str, str]:
    """Pure: two refreshAfter values for nudges, both different from ``refresh`` and close to
    it (30s -> 31s, 32s); 31s and 32s when it is unset or not whole seconds."""
    seconds = duration_seconds(refresh) if DURATION.match(refresh or "") else 0
    base = seconds or 30
    return (f"{base + 1}s", f"{base + 2}s")


class Nudger:
    """Nudges VaultStaticSecrets; ``by_annotation`` (a current operator) changes an
    annotation, else (VSO v0.1.0) the spec's refreshAfter."""

    def __init__(self, kube: Kube, by_annotation: bool = True, engine: str = "vso") -> None:
        self.kube = kube
        self.by_annotation = by_annotation or engine == "eso"
        #: (apiVersion, kind) nudged, and the annotation changed
        self.api, self.kind = eso.sync_object(engine)
        self.annotation = eso.FORCE_SYNC if engine == "eso" else NUDGE_ANNOTATION
        self.saved: dict[Ref, JsonObject] = {}
        self.current: dict[Ref, str] = {}
        self.times: dict[Ref, int] = {}
        self.last: dict[Ref, float] = {}
        self._lock = threading.Lock()

    def nudge(self, targets: list[Ref]) -> None:
        """Apply a refreshAfter that differs from the one there now (in parallel: hundreds
        of applies one after another would delay the operator's first reads by seconds);
        missing VaultStaticSecrets are skipped."""
        self._remember(targets)
        in_parallel(self._nudge_one, [r for r in targets if r in self.saved], WORKERS)

    def _remember(self, targets: list[Ref]) -> None:
        """Keep the spec each target has before its first nudge (one list per namespace)."""
        wanted = {r for r in targets if r not in self.saved}
        namespaces = sorted({ns for ns, _ in wanted})
        listed = in_parallel(
            lambda ns: self.kube.list(self.api, self.kind, ns), namespaces, WORKERS
        )
        for ns, items in zip(namespaces, listed, strict=True):
            for have in items:
                ref = (ns, have["metadata"]["name"])
                if ref not in wanted:
                    continue
                self.saved[ref] = {
                    "apiVersion": self.api,
                    "kind": self.kind,
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
        if self.by_annotation:
            self.kube.merge_patch(
                self.api,
                self.kind,
                ref[1],
                ref[0],
                {"metadata": {"annotations": {self.annotation: str(time.time_ns())}}},
                # its own field manager: the operator phase's server-side applies leave it be
                field_manager=NUDGE_FIELD_MANAGER,
            )
            value = self.current[ref]
        else:
            value = next(v for v in nudge_values(self.saved_refresh(ref)) if v != self.current[ref])
            self.kube.apply({**obj, "spec": {**obj["spec"], "refreshAfter": value}})
        with self._lock:
            self.current[ref] = value
            self.times[ref] = self.times.get(ref, 0) + 1
            self.last[ref] = time.monotonic()

    def saved_refresh(self, ref: Ref) -> str:
        return str(self.saved[ref]["spec"].get("refreshAfter", ""))

    def restore(self) -> None:
        """Re-apply each nudged spec as it was (a spec nudge only: an annotation nudge
        changed no spec)."""
        if self.by_annotation:
            return
        in_parallel(self.kube.apply, list(self.saved.values()), WORKERS)


@contextmanager
def nudged(kube: Kube, targets: list[Ref], api: OperatorApi | None = None) -> Iterator[Nudger]:
    """Nudge ``targets`` now (as the cluster's operator ``api`` takes a nudge; unknown: an
    annotation); restore every nudged spec on the way out."""
    nudger = Nudger(
        kube,
        by_annotation=api is None or api.nudge_by_annotation,
        engine=api.engine if api is not None else "vso",
    )
    try:
        nudger.nudge(targets)
        yield nudger
    finally:
        nudger.restore()
