"""bootstrap.model.policy against the real OpenBao: for hand-written policies, the capabilities
OpenBao gives a token on probe paths are the ones the reader and evaluator compute, and
OpenBao refuses the policies the reader refuses as the servers do."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from bootstrap.clients import vault
from bootstrap.model.policy import PolicyParseError, capabilities, parse_policy
from bootstrap.runtime.target import resolve
from tests.integration.conftest import Box
from tests.integration.helpers import admin_api, login

ACCEPTED = [
    # a leading '/', escapes
    'path "/secret/data/pp/\\u002a" { capabilities = ["read"] }',
    'path "secret/data/\\x70p/a" { capabilities = ["read", "list"] }',
    # the old policy field
    'path "secret/data/pp/a" { policy = "write" }',
    'path "secret/data/pp/*" { policy = "read" }\npath "secret/data/pp/a" { policy = "deny" }',
    # several blocks for one path: merged, deny wins
    'path "secret/data/pp/*" { capabilities = ["read"] }\n'
    'path "/secret/data/pp/*" { capabilities = ["update"] }',
    'path "secret/data/pp/*" { capabilities = ["read"] }\n'
    'path "secret/data/pp/*" { capabilities = ["deny"] }',
    # priority
    'path "secret/data/pp/*" { capabilities = ["read"] }\n'
    'path "secret/data/+/a" { capabilities = ["update"] }',
    'path "secret/data/+/*" { capabilities = ["read"] }\npath "secret/data/pp/*" {}',
    'path "secret/data/b+c/*" { capabilities = ["read"] }\n'
    'path "secret/data/b+c/+" { capabilities = ["update"] }',
    'path "secret/*" { capabilities = ["read"] }\n'
    'path "secret/data/p*" { capabilities = ["list"] }',
    # comments and spacing
    '/* hand\n edited */ "path" "secret/data/pp/*"{capabilities=[/* x */ "read", "patch",]} # ok',
    # JSON
    '{"path": {"secret/data/pp/*": {"capabilities": ["read"]}, "sys/policies/acl/x": '
    '{"capabilities": ["update"]}}}',
    # outside the KV mount, and every capability OpenBao knows
    'path "auth/kubernetes/role/*" { capabilities = ["create", "update", "delete", "sudo"] }\n'
    'path "sys/policies/acl/*" { capabilities = ["read", "scan", "list"] }',
]
REFUSED = [
    'path "secret/data/x" { policy = "list" }',
    'path "secret/data/x/+*" { capabilities = ["read"] }',
    'path "secret/data/x" { capabilities = ["READ"] }',
    'path "secret/data/x" { capabilities = ["read"] }\nbogus = 1',
    'path "secret/data/x" { bogus = 1 }',
]
PATHS = [
    "secret/data/pp/a",
    "secret/data/pp/x/y",
    "secret/data/pp",
    "secret/data/b+c/d",
    "secret/data/other/a",
    "secret/metadata/pp/a",
    "auth/kubernetes/role/x",
    "sys/policies/acl/x",
]


def _capabilities_self(addr: str, token: str) -> dict[str, set[str]]:
    resp = requests.post(
        f"{addr}/v1/sys/capabilities-self",
        headers={"X-Vault-Token": token},
        json={"paths": PATHS},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    data = data.get("data", data)
    return {p: set(data[p]) - {"deny"} for p in PATHS}


def test_capabilities_are_openbaos(box: Box, first_run: dict[str, Any], unique: str) -> None:
    api = admin_api(box)
    kube = resolve(box.settings()).kube
    ns = f"pp{unique}"
    kube.ensure_namespace(ns)
    kube.ensure_service_account(ns, "probe")
    mismatches = []
    for i, text in enumerate(ACCEPTED):
        name = f"pp{unique}-{i}"
        api.put(f"sys/policies/acl/{name}", {"policy": text})
        api.write(
            f"auth/kubernetes/role/{name}",
            {
                "bound_service_account_names": ["probe"],
                "bound_service_account_namespaces": [ns],
                "token_policies": [name],
                "audience": "vault",
            },
        )
        try:
            token = login(box.state.bao_addr, kube, ns, "probe", name)
            theirs = _capabilities_self(box.state.bao_addr, token)
        finally:
            api.delete(f"auth/kubernetes/role/{name}")
            api.delete(f"sys/policies/acl/{name}")
        rules = parse_policy(text, name)
        ours = {p: set(capabilities(rules, p)) for p in PATHS}
        mismatches += [(text, p, ours[p], theirs[p]) for p in PATHS if ours[p] != theirs[p]]
    assert mismatches == []


@pytest.mark.parametrize("text", REFUSED)
def test_refused_alike(box: Box, first_run: dict[str, Any], unique: str, text: str) -> None:
    api = admin_api(box)
    with pytest.raises(PolicyParseError):
        parse_policy(text, "p")
    with pytest.raises(vault.VaultRequestError) as exc:
        api.put(f"sys/policies/acl/pp{unique}", {"policy": text})
    assert exc.value.status == 400
