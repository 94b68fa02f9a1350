# Placeholder Secrets so workloads can start before Vault holds real values.
# Inputs come from the rendered placeholders.auto.tfvars.json (never the command line).
# See placeholders/README.md for the marker every value carries.
#
# The data is write-only (data_wo): Terraform sends it once, at creation, and never reads it
# back, so the real values the operator writes later never enter Terraform's plan or state,
# and a re-apply never puts placeholders back (data_wo_revision stays 1).

terraform {
  # write-only attributes: OpenTofu 1.11+, Terraform 1.11+
  required_version = ">= 1.11"
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.38"
    }
  }
}

variable "kubeconfig_path" {
  description = "Kubeconfig of the target cluster."
  type        = string
}

variable "kube_context" {
  description = "Kubeconfig context (empty: the current one)."
  type        = string
  default     = ""
}

provider "kubernetes" {
  config_path    = var.kubeconfig_path
  config_context = var.kube_context == "" ? null : var.kube_context
  # The External Secrets Operator (sync_engine eso) labels each Secret it merges into and
  # annotates it with its data's hash, and the product marks a placeholder for Stakater
  # Reloader to ignore until ESO has filled it; Terraform leaves those alone (else each run
  # would take them off, and ESO or the product put them back).
  ignore_labels      = ["^reconcile\\.external-secrets\\.io/", "^reloader\\.stakater\\.com/ignore$"]
  ignore_annotations = ["^reconcile\\.external-secrets\\.io/", "^reloader\\.stakater\\.com/ignore$"]
}

variable "namespaces" {
  description = "Namespaces Terraform creates (catalog namespaces not already there)."
  type        = list(string)
}

variable "secrets" {
  description = "One placeholder Secret per destination Secret, keyed by <namespace>/<name>."
  type = map(object({
    namespace = string
    name      = string
    service   = string
    data      = map(string)
  }))
}

variable "labels" {
  description = "Labels put on the namespaces this module creates."
  type        = map(string)
}

variable "secret_labels" {
  description = "Labels put on every placeholder Secret (the product's mark and the two the Vault Secrets Operator selects its Secret cache on); the module adds the service's."
  type        = map(string)
}

resource "kubernetes_namespace_v1" "this" {
  for_each = toset(var.namespaces)
  metadata {
    name   = each.value
    labels = var.labels
  }
}

# One module instance per namespace, each with that namespace's Secrets. OpenTofu's cost per
# resource instance grows with the size of the for_each map it belongs to: 2500 Secrets in one
# for_each took 49 s to plan without any refresh; in 20 modules of about 125 each, 8 s.
locals {
  secrets_by_namespace = {
    for ns in distinct([for s in values(var.secrets) : s.namespace]) :
    ns => { for key, s in var.secrets : key => s if s.namespace == ns }
  }
}

module "namespace" {
  source   = "./namespace"
  for_each = local.secrets_by_namespace
  secrets  = each.value
  labels   = var.secret_labels

  depends_on = [kubernetes_namespace_v1.this]
}
