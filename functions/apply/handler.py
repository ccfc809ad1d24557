"""Apply Lambda (placeholder while the applier is being built)."""
