"""Data files shipped with the package (the common passwords the password policy refuses)."""
