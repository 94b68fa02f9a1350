# Placeholder Secrets so workloads can start before Vault holds real values.
# Inputs come from the rendered placeholders.auto.tfvars.json (never the command line).
# See placeholders/README.md for the marker every value carries.

terraform {
  required_providers {
    kubernetes = {
      source = "hashicorp/kubernetes"
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
  description = "Labels put on everything this module creates."
  type        = map(string)
}

resource "kubernetes_namespace" "this" {
  for_each = toset(var.namespaces)
  metadata {
    name   = each.value
    labels = var.labels
  }
}

resource "kubernetes_secret" "placeholder" {
  for_each = var.secrets
  metadata {
    namespace = each.value.namespace
    name      = each.value.name
    labels    = merge(var.labels, { "secrets-bootstrap/service" = each.value.service })
  }
  data = each.value.data

  lifecycle {
    # Once the operator (or a person) has written real values, applying again must never
    # put placeholders back.
    ignore_changes = [data]
  }

  depends_on = [kubernetes_namespace.this]
}
