"""Reconcile Lambda (placeholder while the reconciler is being built)."""
