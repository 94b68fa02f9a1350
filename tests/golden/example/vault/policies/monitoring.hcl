# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/monitoring.hcl: read-only access for service monitoring (namespace monitoring)

path "secret/data/monitoring/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/shared/aws-creds" {
  capabilities = ["read"]
}
