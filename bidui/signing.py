"""The installation's secret (signs township workbooks and web sessions): BIDUI_SECRET, or
`<home>/secret.key`, created on first use and readable by its owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

__all__ = ["BadSignature", "secret_key", "serializer"]


def secret_key(home_root: Path) -> str:
    if os.environ.get("BIDUI_SECRET"):
        return os.environ["BIDUI_SECRET"]
    path = home_root / "secret.key"
    if not path.exists():
        home_root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def serializer(key: str, purpose: str) -> URLSafeSerializer:
    """A signer for one purpose: a token made for one purpose never validates for another."""
    return URLSafeSerializer(key, salt=f"bidui:{purpose}")
