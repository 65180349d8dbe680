"""idealrt."""
