"""Scope checks, in one place: a user sees what lies under their division code.

Division codes are 12-digit statistical codes: province 2 digits + zeros, prefecture 4, county
6 + 000000, township 9 + 000, village 12. A scope is the significant prefix of the user's code,
and a check is a prefix check (so a scope is also usable as a SQL `LIKE 'prefix%'` filter)."""

from __future__ import annotations

import re

_CODE = re.compile(r"^\d{12}$")
LEVEL_DIGITS = (2, 4, 6, 9, 12)
LEVEL_OF_DIGITS = {2: "province", 4: "prefecture", 6: "county", 9: "township", 12: "village"}


def is_code(code: str | None) -> bool:
    return bool(code) and bool(_CODE.match(code or ""))


def prefix(code: str) -> str:
    """The significant digits of a division code: '330102001000' → '330102001'."""
    if not is_code(code):
        raise ValueError(f"not a 12-digit division code: {code!r}")
    for n in LEVEL_DIGITS:
        if set(code[n:]) <= {"0"}:
            return code[:n]
    return code


def code_range(code: str) -> tuple[str, str]:
    """The codes under a division as a half-open range [low, high): a prefix check an index can
    serve (a LIKE with an escape clause cannot, in SQLite)."""
    p = prefix(code)
    return p, p[:-1] + chr(ord(p[-1]) + 1)


def under(column, code: str):  # column: a SQLAlchemy column; returns a SQL condition
    """A SQL condition: `column` holds a code under the division `code` (index-friendly)."""
    low, high = code_range(code)
    return (column >= low) & (column < high)


def level(code: str) -> str:
    return LEVEL_OF_DIGITS[len(prefix(code))]


def covers(scope: str, code: str | None) -> bool:
    """Does a user scoped to `scope` see something located at `code`?"""
    return bool(code) and is_code(code) and code.startswith(prefix(scope))  # type: ignore[union-attr]


def county_of(code: str) -> str:
    return code[:6] + "000000"

