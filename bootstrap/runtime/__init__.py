"""What a run stands on: the target (cluster or sandbox), credentials and the Vault session,
custody of init records, the cluster lock, value sources, and what the operator did."""
