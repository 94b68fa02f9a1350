# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/webapp-search.hcl: read-only access for service webapp-search (namespace webapp)

path "secret/data/webapp-search/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/infrastructure/database" {
  capabilities = ["read"]
}
