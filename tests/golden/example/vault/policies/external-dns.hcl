# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/external-dns.hcl: read-only access for service external-dns (namespace external-dns)

path "secret/data/external-dns/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/shared/ovh-dns" {
  capabilities = ["read"]
}
