"""What the cluster's Vault Secrets Operator offers, read from its VaultStaticSecret CRD. Pure:
the CRD in (as JSON), facts out. The product adapts to the operator a cluster runs, not to a
version number it would have to guess: every fact here is a field the CRD's schema declares.

Two operators are proven (see docs/explanation/operators.md):

- VSO v0.1.0 (2023, MPL-2.0): a status with ``secretMAC`` only; reasons live in events; its
  controller reconciles only on a change of the spec (the generation), and a spec change
  syncs without restarting anything unless the data changed.
- VSO 1.4.1 (2026, BUSL-1.1, what a Helm install gives today): a status with ``conditions``
  and ``lastGeneration``; ``destination.overwrite`` and ``transformation``; a change of the
  object's annotations (or labels) reconciles it at once without touching the spec, and a
  change of the spec makes it sync again and restart the rollout targets once, changed data
  or not, as soon as it has synced once; ``refreshAfter`` must match
  :data:`CURRENT_REFRESH_PATTERN`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootstrap.core.jsondoc import JsonObject
from bootstrap.model import conventions as conv
from bootstrap.model.domain import VSO_API

#: The VaultStaticSecret CRD's name.
VSS_CRD = "vaultstaticsecrets.secrets.hashicorp.com"
#: What VSO 1.4.1's CRD requires of ``refreshAfter`` (one number, one unit: ``1h30m`` is
#: refused by the API server).
CURRENT_REFRESH_PATTERN = conv.VSO_REFRESH_PATTERN


@dataclass(frozen=True)
class OperatorApi:
    """The VaultStaticSecret API the cluster serves."""

    installed: bool
    #: ``spec.destination.overwrite``: the operator may take over an existing Secret.
    overwrite: bool = False
    #: ``status.conditions`` (``SecretSynced``, ``Healthy``, ``Ready``, ``RolloutRestart``).
    conditions: bool = False
    #: ``status.lastGeneration``: the operator records the spec it last reconciled, and
    #: syncs (and restarts the targets) again whenever the spec changes.
    last_generation: bool = False
    #: ``spec.destination.transformation``: templates, so a change of the object's
    #: annotations reconciles it (an annotation nudge, no spec change).
    transformation: bool = False
    #: ``refreshAfter``'s pattern in the CRD ("" when it declares none).
    refresh_pattern: str = ""
    #: The sync engine: ``vso``, or ``eso`` (the External Secrets Operator: its
    #: ExternalSecret CRD read by ``model.eso.read_crd``; the fields above stay unset).
    engine: str = "vso"

    @property
    def current(self) -> bool:
        """A current operator (status conditions): 1.4.1 and its kin, not v0.1.0."""
        return self.conditions

    @property
    def nudge_by_annotation(self) -> bool:
        """Make it reconcile now by changing an annotation (no spec change, so no sync
        and no restart unless Vault's data changed)."""
        return self.transformation

    @property
    def restarts_on_spec_change(self) -> bool:
        """Any spec change of a synced VaultStaticSecret restarts its rollout targets."""
        return self.last_generation

    def describe(self) -> str:
        """One line for plans and reports."""
        if self.engine == "eso":
            if not self.installed:
                return (
                    "no External Secrets Operator: the ExternalSecret CRD "
                    "(external-secrets.io/v1) is not installed"
                )
            return (
                "External Secrets Operator (its ExternalSecret CRD serves external-secrets.io/v1)"
            )
        if not self.installed:
            return "no Vault Secrets Operator: the VaultStaticSecret CRD is not installed"
        if not self.current:
            return "Vault Secrets Operator of the v0.1.0 kind (status holds only secretMAC)"
        have = [
            name
            for name, on in (
                ("status conditions", self.conditions),
                ("lastGeneration", self.last_generation),
                ("destination.overwrite", self.overwrite),
                ("transformation", self.transformation),
            )
            if on
        ]
        return f"current Vault Secrets Operator (its CRD has {', '.join(have)})"


NOT_INSTALLED = OperatorApi(installed=False)


def _props(schema: Any, *path: str) -> JsonObject:
    node = schema if isinstance(schema, dict) else {}
    for key in path:
        node = ((node.get("properties") or {}).get(key) or {}) if isinstance(node, dict) else {}
    props = node.get("properties") if isinstance(node, dict) else None
    return props if isinstance(props, dict) else {}


def read_crd(crd: JsonObject | None) -> OperatorApi:
    """Pure: the API a VaultStaticSecret CRD (as JSON; None when absent) declares, for the
    version the product writes (``v1beta1``)."""
    if not crd:
        return NOT_INSTALLED
    want = VSO_API.split("/")[1]
    for version in (crd.get("spec") or {}).get("versions") or []:
        if not isinstance(version, dict) or version.get("name") != want:
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
        spec = _props(schema, "spec")
        status = _props(schema, "status")
        dest = _props(schema, "spec", "destination")
        refresh = spec.get("refreshAfter") or {}
        return OperatorApi(
            installed=True,
            overwrite="overwrite" in dest,
            conditions="conditions" in status,
            last_generation="lastGeneration" in status,
            transformation="transformation" in dest,
            refresh_pattern=str(refresh.get("pattern") or "") if isinstance(refresh, dict) else "",
        )
    return NOT_INSTALLED
