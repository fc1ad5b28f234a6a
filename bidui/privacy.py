"""Personal data in what bidui prints, logs and reports: the one place that masks it.

Messages (reject reasons, the load log, run reports, Prefect artifacts, CLI output) may quote a
delivered value so that a data engineer can find it, but never an ID number or a name: a value that
sat in the wrong column (an ID in a date column, a name in a status column) is still personal.
"""

from __future__ import annotations

import re

# A run of digits long enough to be an ID number, a phone number or a bank account, with an
# optional check character: every such run is masked wherever it appears.
_DIGIT_RUN = re.compile(r"\d{6,}[\dXx]?")
MAX_QUOTED = 24  # characters of a value shown at most


def mask_id(text: str) -> str:
    """`529001195503046854` → `5290**********6854`: enough to find the row, not to know the person."""
    if len(text) <= 8:
        return text[:1] + "*" * (len(text) - 1)
    return text[:4] + "*" * (len(text) - 8) + text[-4:]


def mask_name(text: str) -> str:
    """`张三丰` → `张**`."""
    return text[:1] + "*" * (len(text) - 1) if text else text


def mask_text(text: str) -> str:
    """Digit runs masked as IDs; the rest as it is."""
    return _DIGIT_RUN.sub(lambda m: mask_id(m.group(0)), text)


def quote(value: object, kind: str = "text") -> str:
    """A delivered value as a message may show it: masked by what the column holds (`id`, `name`)
    and by its shape (digit runs, a name-shaped string), cut to MAX_QUOTED characters, repr-quoted
    so that blanks and control characters are visible."""
    if value is None:
        return "(empty)"
    text = str(value)
    if kind == "id":
        shown = mask_id(text)
    elif kind == "name" or any(c.isalpha() for c in text):
        # Any word may be a name in the wrong column (古丽·阿布拉 in a status column, pinyin, a
        # name of five characters): only its first character and its length are shown.
        shown = mask_text(text[:1]) + "*" * (len(text) - 1)
    else:
        shown = mask_text(text)
    if len(shown) > MAX_QUOTED:
        shown = shown[:MAX_QUOTED] + f"… ({len(text):,} characters)"
    return repr(shown)
