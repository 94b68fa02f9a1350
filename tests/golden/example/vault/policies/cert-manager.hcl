# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/cert-manager.hcl: read-only access for service cert-manager (namespace cert-manager)

path "secret/data/cert-manager/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/shared/ovh-dns" {
  capabilities = ["read"]
}
