"""The detector of internal codes in what a person reads (issue 16): a test renders a surface to
text and asserts `internal_codes(text) == []`.

Data is allowed — ID numbers, household codes, hukou numbers, plates, credit codes, dates,
amounts. Not allowed: dataset codes, column names, enumeration codes (exit_risk, dispatched,
valid, bad_birth_date), rule codes (VEHICLE, DUPLICATE_MEMBER), any other English identifier or
snake_case token, Python's None/True/False/nan, a GA 802 vehicle code (H31) instead of its name, a
bare 12-digit division code instead of the division's name."""

from __future__ import annotations

import re

# Words a Chinese government app uses as they are.
ALLOWED_WORDS = {"Excel", "PDF", "JPEG", "JPG", "PNG", "GPS", "EXIF", "CSV", "XLSX", "WPS"}
_ALLOWED_UPPER = {w.upper() for w in ALLOWED_WORDS}
SNAKE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![A-Za-z0-9])")
WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{3,}(?![A-Za-z0-9])")
VEHICLE_CODE = re.compile(r"(?<![A-Za-z0-9])[BDGHJKMNQTXZ]\d{2}(?![A-Za-z0-9])")
DIVISION_CODE = re.compile(r"(?<![\d~])\d{12}(?![\d~])")


def internal_codes(text: str) -> list[str]:
    """Every internal code in `text`, in order of appearance (empty when it reads as people write)."""
    found: list[tuple[int, str]] = []
    for pattern in (SNAKE, VEHICLE_CODE, DIVISION_CODE):
        found += [(m.start(), m.group(0)) for m in pattern.finditer(text)]
    snake_spans = [(m.start(), m.end()) for m in SNAKE.finditer(text)]
    for m in WORD.finditer(text):
        inside_snake = any(a <= m.start() < b for a, b in snake_spans)
        if not inside_snake and m.group(0).upper() not in _ALLOWED_UPPER:  # a file's .jpg too
            found.append((m.start(), m.group(0)))
    return [code for _, code in sorted(found)]
