"""cluster-secrets-bootstrap: bootstrap a cluster's secrets from one service catalog."""

__version__ = "0.1.0"
