# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/webapp.hcl: read-only access for service webapp (namespace webapp)

path "secret/data/webapp/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/infrastructure/database" {
  capabilities = ["read"]
}
