# The placeholder Secrets of one namespace (see ../main.tf). The data is write-only: sent once,
# at creation, never read back or rewritten.

terraform {
  required_providers {
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.38"
    }
  }
}

variable "secrets" {
  description = "This namespace's placeholder Secrets, keyed by <namespace>/<name>."
  type = map(object({
    namespace = string
    name      = string
    service   = string
    data      = map(string)
  }))
}

variable "labels" {
  description = "Labels put on every placeholder Secret (the service's is added)."
  type        = map(string)
}

resource "kubernetes_secret_v1" "placeholder" {
  for_each = var.secrets
  metadata {
    namespace = each.value.namespace
    name      = each.value.name
    labels    = merge(var.labels, { "secrets-bootstrap/service" = each.value.service })
  }
  # Written once, never read back or rewritten.
  data_wo          = each.value.data
  data_wo_revision = 1
}
