"""What a VaultStaticSecret CRD says about the operator behind it (model.operator_api)."""

from __future__ import annotations

from typing import Any

from bootstrap.model.operator_api import CURRENT_REFRESH_PATTERN, read_crd


def _crd(spec: dict[str, Any], status: dict[str, Any], dest: dict[str, Any], name="v1beta1"):  # type: ignore[no-untyped-def]
    schema = {
        "properties": {
            "spec": {"properties": {**spec, "destination": {"properties": dest}}},
            "status": {"properties": status},
        }
    }
    return {"spec": {"versions": [{"name": name, "schema": {"openAPIV3Schema": schema}}]}}


#: The fields that tell the two operators apart, as their CRDs declare them (VSO v0.1.0's
#: config/crd/bases and 1.4.1's; the rest of each schema left out).
V010 = _crd(
    {"refreshAfter": {"type": "string"}, "hmacSecretData": {"type": "boolean"}},
    {"secretMAC": {"type": "string"}},
    {"name": {}, "create": {}},
)
V141 = _crd(
    {"refreshAfter": {"type": "string", "pattern": CURRENT_REFRESH_PATTERN}},
    {"conditions": {}, "lastGeneration": {}, "secretMAC": {}},
    {"name": {}, "create": {}, "overwrite": {}, "transformation": {}, "labels": {}},
)


def test_v010_is_read_as_the_old_kind() -> None:
    api = read_crd(V010)
    assert api.installed and not api.current
    assert not (api.overwrite or api.nudge_by_annotation or api.restarts_on_spec_change)
    assert api.refresh_pattern == ""
    assert "v0.1.0 kind" in api.describe()


def test_141_is_read_as_current() -> None:
    api = read_crd(V141)
    assert api.installed and api.current
    assert api.overwrite and api.nudge_by_annotation and api.restarts_on_spec_change
    assert api.refresh_pattern == CURRENT_REFRESH_PATTERN
    assert api.describe() == (
        "current Vault Secrets Operator (its CRD has status conditions, lastGeneration, "
        "destination.overwrite, transformation)"
    )


def test_no_crd_or_another_version_means_not_installed() -> None:
    assert not read_crd(None).installed
    assert not read_crd({}).installed
    assert not read_crd(_crd({}, {"conditions": {}}, {}, name="v1alpha1")).installed
    assert "not installed" in read_crd(None).describe()


def test_a_malformed_crd_reads_as_what_it_declares() -> None:
    odd = {"spec": {"versions": [{"name": "v1beta1", "schema": {"openAPIV3Schema": []}}]}}
    api = read_crd(odd)
    assert api.installed and not api.current and not api.overwrite
