"""web (see README)."""
