"""The pure domain: the catalog, its conventions and derived objects, renderers, the policy
evaluator, the static check and the Vault-config planner. No IO."""
