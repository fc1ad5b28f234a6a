"""The README's promises that a new user acts on at once."""

from __future__ import annotations

import re
from pathlib import Path

from bidui.clues.demo_users import PASSWORD_WORDS

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_demo_users_sign_in_with_the_passwords_the_readme_gives() -> None:
    given = dict(re.findall(r"`(township|county|prefecture|admin)` / `([^`]+)`", README))
    assert given == {role: f"demo-2026-{word}" for role, word in PASSWORD_WORDS.items()}


def test_every_screenshot_the_readme_shows_exists() -> None:
    shown = re.findall(r"\((docs/screenshots/[^)]+\.png)\)", README)
    assert shown and all((Path(__file__).parent.parent / p).is_file() for p in shown), shown
