"""clues (see README)."""
