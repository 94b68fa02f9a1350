"""Stand-in CustomResourceDefinitions for the operator's kinds (secrets.hashicorp.com
v1beta1: VaultConnection, VaultAuth, VaultStaticSecret), for the sandbox only.

The sandbox installs VSO v0.1.0's own CRDs when VSO can be had; where it cannot (the Go
module proxy reachable here refuses the module), these schema-less stand-ins let the API
server store the product's operator resources so their apply, diff and prune are tested
for real. They carry no validation and no controller acts on them; they are written here,
not taken from VSO, and are labelled as stand-ins."""

from __future__ import annotations

from typing import Any

GROUP = "secrets.hashicorp.com"
VERSION = "v1beta1"
STANDIN_LABEL = "secrets-bootstrap/crd-stand-in"
KINDS = ("VaultConnection", "VaultAuth", "VaultStaticSecret")


def standin_crds() -> list[dict[str, Any]]:
    out = []
    for kind in KINDS:
        plural = kind.lower() + "s"
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{GROUP}", "labels": {STANDIN_LABEL: "true"}},
                "spec": {
                    "group": GROUP,
                    "scope": "Namespaced",
                    "names": {
                        "kind": kind,
                        "plural": plural,
                        "singular": kind.lower(),
                        "listKind": f"{kind}List",
                    },
                    "versions": [
                        {
                            "name": VERSION,
                            "served": True,
                            "storage": True,
                            "subresources": {"status": {}},
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
    return out
