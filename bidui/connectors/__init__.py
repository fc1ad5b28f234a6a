"""Connectors: read what departments deliver, map headers, normalise, validate, quarantine."""
