"""verify.rotation on the sandbox. No operator runs here, so a stand-in thread does what VSO
does (copies Vault's latest value into the Secret and stamps the restart annotation on each
restart target). Tested: the sentinel round trip, the waits on bytes and annotations, and that
the original value and the catalog's settings come back, also when the wait fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bootstrap.catalog import Catalog, parse_catalog
from bootstrap.errors import WaitTimeout
from bootstrap.kube import Kube
from bootstrap.kv import read_kv
from bootstrap.render import VSO_API
from bootstrap.rotation import rotation_test
from bootstrap.status import RESTART_ANNOTATION
from bootstrap.waits import WaitSettings
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, run

FAST = WaitSettings(timeout=20, initial=0.1, maximum=0.3)


def catalog(p: str) -> Catalog:
    return parse_catalog(
        f"""
name: {p}
services:
  - name: {p}
    namespace: {p}
    secrets:
      config: {{keys: {{a: {{generate: {{length: 16}}}}}}}}
    restart:
      - {{kind: Deployment, name: web}}
""",
        "rotation.yaml",
    )


def deployment(kube: Kube, ns: str) -> None:
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "none"}]},
                },
            },
        },
        field_manager="test",
    )


class StandIn(threading.Thread):
    """Copies Vault's value into the Secret and stamps a restart, like the operator."""

    def __init__(self, kube: Kube, api: Any, ns: str, stamp: bool = True) -> None:
        super().__init__(daemon=True)
        self.kube, self.api, self.ns, self.stamp = kube, api, ns, stamp
        self.stop = threading.Event()

    def run(self) -> None:
        last = None
        while not self.stop.is_set():
            data, version = read_kv(self.api, f"{self.ns}/config")
            if version != last:
                self.kube.write_secret(self.ns, "config", {k: v.encode() for k, v in data.items()})
                if self.stamp:
                    self.kube.apply(
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "metadata": {"name": "web", "namespace": self.ns},
                            "spec": {
                                "template": {
                                    "metadata": {
                                        "annotations": {RESTART_ANNOTATION: f"{time.time():.6f}"}
                                    }
                                }
                            },
                        },
                        field_manager="stand-in",
                    )
                last = version
            time.sleep(0.2)


def _setup(box: Box, p: str, tmp_path: Path) -> tuple[Catalog, Kube, Any, dict[str, str]]:
    cat = catalog(p)
    run(box.settings(state_dir=tmp_path), cat, ["placeholders", "operator", "populate"])
    kube = Kube(box.state.kubeconfig)
    deployment(kube, p)
    api = admin_api(box)
    original, _ = read_kv(api, f"{p}/config")
    return cat, kube, api, original


def test_rotation_round_trip(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"ro{unique}"
    cat, kube, api, original = _setup(box, p, tmp_path)
    syncer = StandIn(kube, api, p)
    syncer.start()
    try:
        result = rotation_test(cat, f"{p}/config", kube, api, FAST, say=lambda m: None)
    finally:
        syncer.stop.set()
        syncer.join()
    assert result["secret"] == f"{p}/config"
    data, version = read_kv(api, f"{p}/config")
    assert data == original and version == 3  # sentinel, then the original again
    secret = kube.read_secret(p, "config")
    assert secret is not None and secret["a"].decode() == original["a"]
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None and vss["spec"]["refreshAfter"] == "30s"


def test_rotation_restores_the_original_when_the_wait_fails(
    box: Box, first_run: dict[str, Any], unique: str, tmp_path: Path
) -> None:
    p = f"rf{unique}"
    cat, kube, api, original = _setup(box, p, tmp_path)
    syncer = StandIn(kube, api, p, stamp=False)  # syncs, but nothing restarts
    syncer.start()
    try:
        with pytest.raises(WaitTimeout, match="restart annotation unchanged"):
            rotation_test(
                cat,
                f"{p}/config",
                kube,
                api,
                WaitSettings(timeout=2, initial=0.1, maximum=0.3),
                say=lambda m: None,
            )
    finally:
        syncer.stop.set()
        syncer.join()
    data, _ = read_kv(api, f"{p}/config")
    assert data == original
    vss = kube.get(VSO_API, "VaultStaticSecret", "config", p)
    assert vss is not None and vss["spec"]["refreshAfter"] == "30s"
