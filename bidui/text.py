"""Text helpers shared by ID and name normalisation."""

from __future__ import annotations

import polars as pl


def nfkc_series(s: pl.Series) -> pl.Series:
    """NFKC of a text column, computed only where it can change something (non-ASCII values):
    a third of the cost of ID normalisation otherwise, for IDs that are almost all ASCII."""
    s = s.cast(pl.String)
    # Judged on a sample: counting the distinct values of a whole column costs as much as NFKC.
    if len(s) > 1000 and s.head(20_000).n_unique() * 4 < min(len(s), 20_000):
        # A column that repeats (enumerations, dates, places): NFKC each distinct value once.
        distinct = s.unique().drop_nulls()
        return s.replace_strict(distinct, nfkc_series(distinct), default=None)
    non_ascii = (s.str.len_bytes() != s.str.len_chars()).fill_null(False)  # ASCII is its own NFKC
    idx = non_ascii.arg_true()
    if len(idx) == 0:
        return s
    return s.scatter(idx, s.gather(idx).str.normalize("NFKC"))


# A cell whose text begins with one of these is read as a formula by Excel, WPS or LibreOffice
# (or when the sheet is saved as CSV and opened again): "=HYPERLINK(…)" in a department's name
# field would run on the clerk's machine. The one place every spreadsheet bidui writes goes through.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\n")
# The same leads as a regular expression, for whole columns at once.
FORMULA_PATTERN = r"^[=+@\-\t\r\n]"
# What every spreadsheet bidui writes with xlsxwriter is opened with: a text that looks like a
# formula or an address stays text (xlsxwriter's `write` would otherwise make it one).
XLSX_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False}


def neutralise_formula(text: str) -> str:
    """Text as it may be written to a spreadsheet cell: a leading apostrophe before what a
    spreadsheet would take for a formula (the OWASP advice for CSV/Excel injection)."""
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """A table as it may be written to a CSV or a spreadsheet: every text cell through
    neutralise_formula. Numbers, dates and yes/no stay what they are (a negative number is a number)."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_PATTERN)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items() if dtype == pl.String)
