"""matching (see README)."""
