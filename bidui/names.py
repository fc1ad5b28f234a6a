"""Person names: trimming, form normalisation and derived keys — the one place for name keys.

Identity is never decided on a key alone: OpenCC maps distinct names together (於→于, 乾→干) and
pypinyin misreads some surnames, so keys are for blocking and comparison, not for equality of
people.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import polars as pl

MIDDLE_DOT = "\u00b7"
# NFKC leaves these apart; all are typed for the dot in minority names.
_DOT_VARIANTS = "\u00b7\u2022\u30fb\u2027\uff0e\u2219\u22c5\uff65\u0387\u16eb\u2e31."
_DOTS_CLASS = "[" + re.escape(_DOT_VARIANTS) + "]+"
_DOTS = re.compile(_DOTS_CLASS)
# After NFKC every wide space (U+3000, U+00A0, U+2000…) is " ".
_SPACE_CLASS = "[ \t\r\n\f\v]+"
_SPACE = re.compile(_SPACE_CLASS)
# Invisible characters that survive NFKC (zero-width spaces and joiners, BOM, soft hyphen, direction
# marks): a difference of form that systems copy into names, never part of one.
_INVISIBLE_CLASS = "[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]+"
_INVISIBLE = re.compile(_INVISIBLE_CLASS)
# Annotations other systems put in the name field: 张三(户主), 李四（已故）, 王五[迁出] (after NFKC the
# full-width brackets are ASCII; 【】 stay). Not part of the name.
_ANNOTATION_CLASS = r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】"
_ANNOTATION = re.compile(_ANNOTATION_CLASS)
# What a system writes for a character outside its character set. All become `*`, one placeholder:
# the same unknown character whichever system wrote it (〇, a real character, is not one).
PLACEHOLDER = "*"
_PLACEHOLDER_CLASS = "[?*□■〓○◯\ufffd]"
_PLACEHOLDERS = re.compile(_PLACEHOLDER_CLASS)

# Surnames pypinyin reads with their common-word reading; the surname reading wins when the
# character opens a name.
SURNAME_READINGS: dict[str, str] = {
    "单": "shan", "曾": "zeng", "仇": "qiu", "解": "xie", "区": "ou", "查": "zha",
    "朴": "piao", "盖": "ge", "缪": "miao", "翟": "zhai", "尉": "yu", "覃": "qin",
    "长孙": "zhangsun", "尉迟": "yuchi", "万俟": "moqi", "乐": "yue", "华": "hua",
    "任": "ren", "种": "chong", "员": "yun", "繁": "po", "过": "guo", "召": "shao",
}


# The same defects as `clean_name` removes or reads, as RE2 patterns over names as delivered
# (before NFKC, so full-width brackets and marks too): what the nightly report counts per dataset.
DEFECT_PATTERNS: dict[str, str] = {
    "placeholder": "[?？*＊□■〓○◯\ufffd]",
    "annotation": "[(（\\[【][^()（）\\[\\]【】]*[)）\\]】]",
    "pinyin": "\\p{Han}[a-zA-Z]+|[a-zA-Z]+\\p{Han}",
    "invisible": _INVISIBLE_CLASS[:-2] + "\u3000]",
}


def any_defect_pattern() -> str:
    """One pattern for a name with any of the defects (one pass of RE2 instead of one per defect)."""
    return "|".join(f"(?:{p})" for p in DEFECT_PATTERNS.values())


def clean_name(raw: object) -> str:
    """Trimmed, NFKC, no inner whitespace or invisible characters, no bracketed annotation, one
    middle dot for all its variants, one placeholder (`*`) for every character a system could not
    write. Lower-case pinyin standing for a character (`王yan`) is kept: the pinyin key reads it."""
    if raw is None:
        return ""
    text = unicodedata.normalize("NFKC", str(raw))
    text = _ANNOTATION.sub("", _INVISIBLE.sub("", _SPACE.sub("", text)))
    text = _PLACEHOLDERS.sub(PLACEHOLDER, text)
    return _DOTS.sub(MIDDLE_DOT, text).strip(MIDDLE_DOT)


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def simplified(name: str) -> str:
    return _t2s().convert(name)


def name_keys(names: list[str]) -> tuple[list[str], list[str]]:
    """(form keys, pinyin keys) for many cleaned names: one OpenCC call for all of them."""
    forms = _t2s().convert("\n".join(names)).split("\n") if names else []
    if len(forms) != len(names):  # a name with a newline in it: fall back to one by one
        forms = [simplified(n) for n in names]
    return forms, [_pinyin_of_form(f) for f in forms]


def form_key(raw: object) -> str:
    """The name with only its form normalised (spaces, width, traditional, middle dots).

    Two names with the same form key are the same writing; a homophone, a look-alike or `*`
    standing in for a character still differ (that is NAME_MISMATCH).
    """
    return simplified(clean_name(raw))


@lru_cache(maxsize=65536)
def _char_pinyin(char: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(char, style=Style.NORMAL, errors="ignore"))


def pinyin_key(raw: object) -> str:
    """Toneless pinyin of the simplified name, syllables joined, surname read as a surname.

    Read character by character (cached): names are not dictionary phrases, and this is ~50×
    faster than phrase segmentation over a million names.
    """
    return _pinyin_of_form(form_key(raw))


def _pinyin_of_form(name: str) -> str:
    if not name:
        return ""
    head = ""
    for surname in (name[:2], name[:1]):
        if surname in SURNAME_READINGS:
            head, name = SURNAME_READINGS[surname], name[len(surname) :]
            break
    # Latin letters are pinyin written for a character the system lacked (王yan reads wangyan);
    # a placeholder has no sound and is left out.
    return head + "".join(c.lower() if c.isascii() and c.isalpha() else _char_pinyin(c)
                          for c in name if c not in (MIDDLE_DOT, PLACEHOLDER))


def clean_name_expr(col: pl.Expr) -> pl.Expr:
    """`clean_name` as a polars expression over NFKC text (the vectorised twin, tested equal)."""
    text = col.cast(pl.String).str.replace_all(_SPACE_CLASS, "").str.replace_all(_INVISIBLE_CLASS, "")
    text = text.str.replace_all(_ANNOTATION_CLASS, "").str.replace_all(_PLACEHOLDER_CLASS, PLACEHOLDER)
    return text.str.replace_all(_DOTS_CLASS, MIDDLE_DOT).str.strip_chars(MIDDLE_DOT).fill_null("")
