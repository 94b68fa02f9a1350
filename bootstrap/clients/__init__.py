"""Thin clients for what the product talks to: Vault/OpenBao, Kubernetes, Terraform/OpenTofu,
processes, KV v2 reads."""
