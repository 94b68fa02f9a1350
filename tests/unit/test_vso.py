"""The operator's observable behaviour as pure functions: a Secret's state against Vault's
data (VSO v0.1.0 adds ``_raw``), the latest outcome among its events, CRD capabilities."""

from __future__ import annotations

import datetime as dt

from bootstrap.core.output import short
from bootstrap.model.operator_api import read_crd
from bootstrap.runtime import vso

VAULT = {"user": "app", "password": "pw"}
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def ev(reason: str, second: int, order: int = 0, message: str = "m") -> vso.OperatorEvent:
    return vso.OperatorEvent("x", reason, message, 1, T0 + dt.timedelta(seconds=second), order)


def test_classify_ignores_raw_and_extra_keys() -> None:
    raw = b'{"data":{"user":"app","password":"pw"}}'
    assert vso.classify(VAULT, None) == "missing"
    assert vso.classify(VAULT, {}) == "placeholder"
    assert vso.classify(VAULT, {"user": b"bootstrap-placeholder:app/db/user"}) == "placeholder"
    assert vso.classify(VAULT, {"user": b"app", "password": b"pw", "_raw": raw}) == "synced"
    assert vso.classify(VAULT, {"user": b"app", "password": b"pw"}) == "synced"
    assert vso.classify(VAULT, {"user": b"app", "password": b"old", "_raw": raw}) == "stale"
    assert vso.classify(VAULT, {"user": b"app", "_raw": raw}) == "stale"  # a key missing
    # a leftover placeholder key beside Vault's keys is not synced
    mixed = {"user": b"app", "password": b"pw", "old": b"bootstrap-placeholder:app/db/old"}
    assert vso.classify(VAULT, mixed) == "placeholder"
    assert vso.classify({}, {"_raw": raw}) == "placeholder"  # only _raw: nothing real


def test_state_of_reports_the_operators_last_failure() -> None:
    secret = {"user": b"bootstrap-placeholder:app/db/user"}
    failed = [ev("SecretSynced", 1), ev("VaultClientError", 2, message="Code: 403.\n\n* denied")]
    assert vso.state_of(VAULT, secret, failed) == (
        "error",
        "VaultClientError: Code: 403. * denied",
    )
    recovered = [*failed, ev("SecretSync", 3)]
    assert vso.state_of(VAULT, secret, recovered) == ("placeholder", "")
    # a rollout note after the error does not hide it
    noted = [*failed, ev("RolloutRestartTriggered", 3)]
    assert vso.state_of(VAULT, secret, noted)[0] == "error"
    synced = {"user": b"app", "password": b"pw"}
    assert vso.state_of(VAULT, synced, failed) == ("synced", "")
    assert vso.state_of({}, secret, []) == ("placeholder", "no value in Vault yet")


def test_latest_outcome_orders_within_a_second() -> None:
    evs = sorted(
        [ev("VaultClientError", 5, order=20), ev("SecretSync", 5, order=10)],
        key=lambda e: (e.last_seen, e.order),
    )
    outcome = vso.latest_outcome(evs)
    assert outcome is not None and outcome.reason == "VaultClientError"
    assert vso.latest_outcome([ev("RolloutRestartTriggered", 1)]) is None


def test_short_keeps_one_line() -> None:
    assert short("a\n\n  b\tc") == "a b c"
    long = short("x" * 500, 50)
    assert len(long) == 50 and long.endswith("...")


def _crd(dest_props: dict[str, object], version: str = "v1beta1") -> dict[str, object]:
    return {
        "spec": {
            "versions": [
                {
                    "name": version,
                    "schema": {
                        "openAPIV3Schema": {
                            "properties": {
                                "spec": {"properties": {"destination": {"properties": dest_props}}}
                            }
                        }
                    },
                }
            ]
        }
    }


def test_the_crd_says_whether_it_has_overwrite() -> None:
    v010: dict[str, object] = {"create": {}, "name": {}, "labels": {}}
    assert read_crd(_crd(v010)).overwrite is False
    assert read_crd(_crd({**v010, "overwrite": {}})).overwrite is True
    assert read_crd(_crd({**v010, "overwrite": {}}, "v1alpha1")).overwrite is False
    assert read_crd(None).overwrite is False


def test_nudge_values_stay_close_to_the_catalogs_refresh() -> None:
    from bootstrap.runtime.nudge import nudge_values

    assert nudge_values("30s") == ("31s", "32s")
    assert nudge_values("1h") == ("3601s", "3602s")
    assert nudge_values("1m30s") == ("91s", "92s")
    assert nudge_values("") == ("31s", "32s")
    assert nudge_values("500ms") == ("31s", "32s")  # not whole seconds: a fixed pair


def test_an_error_from_before_vaults_latest_write_is_not_an_error() -> None:
    secret = {"user": b"bootstrap-placeholder:app/db/user"}
    empty = [ev("VaultClientError", 2, message="Vault secret was empty")]
    # written 3.5s after T0: the attempt at second 2 (before 3s) predates it
    later = T0 + dt.timedelta(seconds=3, milliseconds=500)
    assert vso.state_of(VAULT, secret, empty, later) == (
        "placeholder",
        "the operator's last attempt may predate Vault's latest version "
        "(VaultClientError: Vault secret was empty)",
    )
    # written within the second of the attempt: it may predate it too
    same = T0 + dt.timedelta(seconds=2, milliseconds=500)
    assert vso.state_of(VAULT, secret, empty, same)[0] == "placeholder"
    # an attempt in a later second than the write is surely after it: an error
    before = T0 + dt.timedelta(seconds=1, milliseconds=900)
    assert vso.state_of(VAULT, secret, empty, before)[0] == "error"


def test_auth_ref_follows_the_operators_default() -> None:
    own = {"metadata": {"namespace": "a", "name": "x"}, "spec": {"vaultAuthRef": "svc"}}
    bare = {"metadata": {"namespace": "a", "name": "x"}, "spec": {}}
    assert vso.auth_ref(own) == ("a", "svc")
    assert vso.auth_ref(bare) == (vso.OPERATOR_NAMESPACE, "default")
    assert vso.auth_ref(bare, "ops") == ("ops", "default")
