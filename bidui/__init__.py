"""bidui (比对): nightly cross-department comparison against the poverty register."""

__version__ = "0.1.0"
