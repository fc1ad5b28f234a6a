"""A synthetic prefecture with an answer key: see README.md in this folder."""
