"""Publish Lambda (placeholder while the change publisher is being built)."""
