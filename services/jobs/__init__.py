"""Background jobs: the reconciler."""
