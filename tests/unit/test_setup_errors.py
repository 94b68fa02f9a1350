"""Issue 24, item 4: every set-up mistake a newcomer can make names the thing and the fix,
never exit 70 ("unexpected ... a bug"): a missing, unparsable or context-less kubeconfig,
an API server that does not answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import urllib3

from bootstrap.clients.kube import Kube, _unreachable, translated
from bootstrap.core.errors import KubernetesError

GOOD = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_a_missing_kubeconfig_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(KubernetesError, match=r"kubeconfig .*/nope: no such file .*KUBECONFIG"):
        Kube(tmp_path / "nope")


def test_a_missing_kubeconfig_from_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(KubernetesError, match=r"kubeconfig .*/absent: no such file"):
        Kube()


@pytest.mark.parametrize(
    ("text", "context", "expect"),
    [
        ("not: [a kubeconfig", None, "cannot be used"),
        (GOOD, "elsewhere", "cannot be used: .*elsewhere"),
        (GOOD.replace("current-context: x\n", ""), None, "cannot be used"),
    ],
    ids=["not-yaml", "unknown-context", "no-current-context"],
)
def test_an_unusable_kubeconfig_is_named(
    tmp_path: Path, text: str, context: str | None, expect: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(KubernetesError, match=rf"kubeconfig {path}: {expect}"):
        Kube(path, context=context)


def test_an_api_server_that_does_not_answer_is_named_by_its_address() -> None:
    pool = urllib3.HTTPSConnectionPool("10.0.0.9", 6443)
    refused = urllib3.exceptions.NewConnectionError(
        cast(Any, None), "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    exc = urllib3.exceptions.MaxRetryError(pool, "/api/v1/namespaces", refused)
    assert _unreachable(exc) == " at https://10.0.0.9:6443: Connection refused"
    with (
        pytest.raises(
            KubernetesError,
            match=r"^listing namespaces: cannot reach the API server at https://10\.0\.0\.9:6443",
        ),
        translated("listing namespaces"),
    ):
        raise exc
