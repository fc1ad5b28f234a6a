"""Text helpers shared by ID and name normalisation."""

from __future__ import annotations

import re

import polars as pl

# Text NFKC leaves as it is: ASCII and the CJK Unified Ideographs (U+4E00–U+9FFF) have no
# decomposition, and no two of them compose (the compatibility ideographs, U+F900–U+FAFF, and the
# radicals, U+2E80–U+2FDF, which NFKC does change, lie outside). Almost every name and address.
NFKC_STABLE = r"^[\x00-\x7F\u4E00-\u9FFF]*$"


def nfkc_series(s: pl.Series) -> pl.Series:
    """NFKC of a text column, computed only where it can change something (values not all
    `NFKC_STABLE`): a third of the cost of ID normalisation otherwise, for IDs that are almost all
    ASCII; the large hukou file's names 0.53–0.59 → 0.24–0.28 s, where testing for ASCII alone
    sent every name to NFKC."""
    s = s.cast(pl.String)
    # Judged on a sample: counting the distinct values of a whole column costs as much as NFKC.
    if len(s) > 1000 and s.head(20_000).n_unique() * 4 < min(len(s), 20_000):
        # A column that repeats (enumerations, dates, places): NFKC each distinct value once.
        distinct = s.unique().drop_nulls()
        return s.replace_strict(distinct, nfkc_series(distinct), default=None)
    # ASCII first (the cheaper test: most ID numbers and codes), then the rest by `NFKC_STABLE`
    idx = (s.str.len_bytes() != s.str.len_chars()).fill_null(False).arg_true()
    if len(idx) == 0:
        return s
    rest = s.gather(idx)
    changes = ~rest.str.contains(NFKC_STABLE)
    if not changes.any():
        return s
    return s.scatter(idx.filter(changes), rest.filter(changes).str.normalize("NFKC"))


def typed(text: str | None) -> str:
    """What a person typed into a form or a workbook cell, as bidui measures and keeps it: line
    breaks as one character (a textarea sends CRLF: 1,999 characters the browser's maxlength let
    through counted 2,018 and were refused), characters nobody sees removed (a finding of only a
    zero-width space was signed as one), the ends trimmed."""
    from bidui.names import _INVISIBLE

    return _INVISIBLE.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n")).strip()


# A cell whose text begins with one of these is read as a formula by Excel, WPS or LibreOffice
# (or when the sheet is saved as CSV and opened again): "=HYPERLINK(…)" in a department's name
# field would run on the clerk's machine. The one place every spreadsheet bidui writes goes through.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\n")
# The same leads as a regular expression, for whole columns at once.
FORMULA_PATTERN = r"^[=+@\-\t\r\n]"
# A signed number as text (a change "+6,133", "-2.5%"): no spreadsheet runs it, and an apostrophe
# before it would show (a data-quality workbook's own changes read '+6,133).
SIGNED_NUMBER = r"^[+-][0-9][0-9,]*(\.[0-9]+)?%?$"
# What every spreadsheet bidui writes with xlsxwriter is opened with: a text that looks like a
# formula or an address stays text (xlsxwriter's `write` would otherwise make it one).
XLSX_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False}


def neutralise_formula(text: str) -> str:
    """Text as it may be written to a spreadsheet cell: a leading apostrophe before what a
    spreadsheet would take for a formula (the OWASP advice for CSV/Excel injection)."""
    return "'" + text if text.startswith(FORMULA_LEADS) and not re.match(SIGNED_NUMBER, text) else text


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """A table as it may be written to a CSV or a spreadsheet: every text cell through
    neutralise_formula. Numbers, dates and yes/no stay what they are (a negative number is a number)."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_PATTERN) & ~pl.col(name).str.contains(SIGNED_NUMBER))
        .then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String)
