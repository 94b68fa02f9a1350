# managed-by: cluster-secrets-bootstrap catalog=default
# vault/policies/backup.hcl: read-only access for service backup (namespace backup)

path "secret/data/backup/*" {
  capabilities = ["read"]
}

# Shared and infrastructure secrets this service declares
path "secret/data/infrastructure/backup" {
  capabilities = ["read"]
}

path "secret/data/shared/aws-creds" {
  capabilities = ["read"]
}
