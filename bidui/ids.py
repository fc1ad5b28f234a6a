"""Resident ID numbers (公民身份号码, GB 11643): the one place for normalisation and validity.

Every part of bidui that reads, writes or compares an ID number goes through this module, so
that "valid" means the same thing in the connectors, the rules and the synthetic answer key.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from enum import StrEnum

import polars as pl

from bidui.text import nfkc_series

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"

# First two digits of every province-level division (plus 71/81/82 Taiwan, Hong Kong, Macao
# and 83 for their residents' residence permits, which share the format).
PROVINCE_CODES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
        "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
        "63", "64", "65", "71", "81", "82", "83",
    }
)


class IdStatus(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    BAD_LENGTH = "bad_length"
    BAD_PROVINCE = "bad_province"
    BAD_BIRTH_DATE = "bad_birth_date"
    BAD_CHECK = "bad_check"
    EXCEL_MANGLED = "excel_mangled"
    # Scientific notation keeping too few digits to be Excel's 15 (`5.29001E+17`: a cell's display,
    # not its value): nothing past the region code can be trusted.
    TOO_FEW_DIGITS = "too_few_digits"


_SCIENTIFIC = re.compile(r"^([0-9])(?:\.([0-9]+))?E\+([0-9]+)$")
# Excel keeps 15 significant digits; its scientific text drops trailing zeros, so its own
# truncation shows 15, 14 or 13 digits (a 15th, or 14th and 15th, that are 0: 1 in 10, 1 in 100).
# Fewer is a cell's display rounded for a narrow column (`5.32504E+17`): its digits are not the ID's.
MIN_SCIENTIFIC_DIGITS = 13
# Removed after NFKC (which already turns U+3000, U+00A0 and the other wide spaces into " ").
_DROP_CHARS = " \t\r\n\f\v'\""
_DROP = str.maketrans("", "", _DROP_CHARS)


def check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def upgrade_15(id15: str) -> str:
    """An old 15-digit number (two-digit year, no check) as its 18-digit form."""
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + check_char(first17)


def _digits(text: str) -> bool:
    """ASCII digits only: Python's `isdigit` also takes other scripts' digits (٠١٢…), which no ID
    number has and the vectorised twin, like NFKC, does not read as digits."""
    return text.isascii() and text.isdigit()


def _birth_ok(digits8: str) -> bool:
    try:
        born = date(int(digits8[:4]), int(digits8[4:6]), int(digits8[6:8]))
    except ValueError:
        return False
    return date(1880, 1, 1) <= born <= date(2100, 1, 1)


def _from_scientific(text: str) -> str | None:
    """`5.22731199001011E+17` → the digits Excel kept, padded with zeros, or None."""
    m = _SCIENTIFIC.match(text)
    if not m:
        return None
    mantissa = m.group(1) + (m.group(2) or "")
    exponent = int(m.group(3))
    if len(mantissa) > exponent + 1:
        return None
    return mantissa + "0" * (exponent + 1 - len(mantissa))


def normalise_id(raw: object) -> tuple[str, IdStatus]:
    """Normalise an ID as delivered (text or number) and classify it.

    Returns the normalised text (18 digits upper-case X when it can be made so, else the
    cleaned text) and its status. Invalid IDs are kept, not dropped: matching uses what survives.
    """
    if raw is None:
        return "", IdStatus.MISSING
    if isinstance(raw, float):
        if raw != raw:  # NaN
            return "", IdStatus.MISSING
        # A numeric cell: Excel keeps at most 15 significant digits, so read it that way.
        text = format(raw, ".15g")
        mangled_source = True
    elif isinstance(raw, int):
        text = str(raw)
        mangled_source = len(text) == 18 and text.endswith("000")
    else:
        text = str(raw)
        mangled_source = False
    text = unicodedata.normalize("NFKC", text).translate(_DROP).upper()
    if not text:
        return "", IdStatus.MISSING
    sci = _from_scientific(text)
    if sci is not None:
        if len(text.split("E")[0].replace(".", "")) < MIN_SCIENTIFIC_DIGITS:  # the mantissa's digits
            return text, IdStatus.TOO_FEW_DIGITS
        return sci, IdStatus.EXCEL_MANGLED
    if text.endswith(".0") and _digits(text[:-2]):
        return text[:-2], IdStatus.EXCEL_MANGLED
    if len(text) == 15 and _digits(text):
        if text[:2] not in PROVINCE_CODES:
            return text, IdStatus.BAD_PROVINCE
        if not _birth_ok("19" + text[6:12]):
            return text, IdStatus.BAD_BIRTH_DATE
        return upgrade_15(text), IdStatus.VALID
    if len(text) != 18 or not _digits(text[:17]) or not (_digits(text[17]) or text[17] == "X"):
        return text, IdStatus.BAD_LENGTH
    if text[:2] not in PROVINCE_CODES:
        return text, IdStatus.BAD_PROVINCE
    if not _birth_ok(text[6:14]):
        return text, IdStatus.BAD_BIRTH_DATE
    if check_char(text[:17]) != text[17]:
        if text.endswith("000") or mangled_source:
            return text, IdStatus.EXCEL_MANGLED
        return text, IdStatus.BAD_CHECK
    return text, IdStatus.VALID


def birth_date(id18: str) -> date | None:
    """Birth date encoded in a normalised 18-digit ID, if it is a real date."""
    if len(id18) != 18 or not id18[:14].isdigit():
        return None
    try:
        return date(int(id18[6:10]), int(id18[10:12]), int(id18[12:14]))
    except ValueError:
        return None


def sex_code(id18: str) -> int | None:
    """1 male, 2 female, from the parity of the sequence number (17th digit)."""
    if len(id18) < 17 or not id18[16].isdigit():
        return None
    return 1 if int(id18[16]) % 2 else 2


def surviving_prefix(normalised: str, status: IdStatus) -> str | None:
    """The digits still to be trusted in an Excel-mangled ID (the first 15), else None."""
    if status is IdStatus.EXCEL_MANGLED and len(normalised) >= 15:
        return normalised[:15]
    return None


# ---------------------------------------------------------------- vectorised twin
# The same normalisation as `normalise_id`, as polars expressions over a text column, for ingest
# at millions of rows. tests/test_ids.py checks the two agree on arbitrary input.


def _check_of_int(first17: pl.Expr) -> pl.Expr:
    """Check character of a 17-digit number held as Int64 (integer arithmetic, no slicing)."""
    total = ((first17 // 10**16) % 10) * WEIGHTS[0]
    for i, w in enumerate(WEIGHTS[1:], start=1):
        total = total + ((first17 // 10 ** (16 - i)) % 10) * w
    return pl.lit(CHECK_CHARS).str.slice(total % 11, 1)


# A number as most departments deliver it: 17 ASCII digits and a digit or X, nothing to clean
# (NFKC, the dropped characters and upper-casing leave it as it is). `[0-9]`, not `\d`: polars'
# `\d` is Unicode's and takes full-width digits, which NFKC must turn into ASCII first.
_PLAIN_18 = r"^[0-9]{17}[0-9X]$"


def normalise_id_series(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(normalised text, status) for a column of IDs as text; see `normalise_id`.

    The numbers delivered plain (`_PLAIN_18`, 95% of a department's column) are their own
    normalised text and need only the province, birth-date and check tests (`_plain_status`);
    the rest go through every form `normalise_id` knows (`_normalise_any`). All of them through
    that took 3.0–3.4 s for the large prefecture's four million medical-insurance numbers, split
    1.35–1.5 s.
    """
    raw = raw.cast(pl.String)
    plain = raw.str.contains(_PLAIN_18).fill_null(False)
    if not plain.any():
        return _normalise_any(raw)
    status = _plain_status(raw.filter(plain))
    if plain.all():
        return raw, status
    norm_rest, status_rest = _normalise_any(raw.filter(~plain))
    at_plain, at_rest = plain.arg_true(), (~plain).arg_true()
    norm = raw.scatter(at_rest, norm_rest)
    full = pl.repeat("", len(raw), dtype=pl.String, eager=True).scatter(at_plain, status).scatter(at_rest, status_rest)
    return norm, full


def _plain_status(t: pl.Series) -> pl.Series:
    """The status of numbers all of the form `_PLAIN_18` (as `_normalise_any` gives it them)."""
    c = pl.col
    # (the 17 digits as a column first: inside the check's expression, they were parsed once per digit)
    df = pl.DataFrame({"t": t}).with_columns(c("t").str.slice(0, 17).str.to_integer().alias("n17"))
    df = df.with_columns(
        c("t").str.slice(0, 2).is_in(sorted(PROVINCE_CODES)).alias("province_ok"),
        _birth_in_range(c("t").str.slice(6, 8).str.to_date("%Y%m%d", strict=False)).alias("birth_ok"),
        (_check_of_int(c("n17")) == c("t").str.slice(17, 1)).alias("check_ok"))
    return df.select(_status_18().alias("status")).to_series()


def _status_18() -> pl.Expr:
    """The status of an 18-character number of 17 digits and a digit or X, from the columns `t`,
    `province_ok`, `birth_ok` and `check_ok` (the order of `normalise_id`'s tests): one expression
    for both paths of `normalise_id_series`."""
    c = pl.col
    return (pl.when(~c("province_ok")).then(pl.lit(IdStatus.BAD_PROVINCE.value))
            .when(~c("birth_ok")).then(pl.lit(IdStatus.BAD_BIRTH_DATE.value))
            .when(~c("check_ok") & c("t").str.ends_with("000")).then(pl.lit(IdStatus.EXCEL_MANGLED.value))
            .when(~c("check_ok")).then(pl.lit(IdStatus.BAD_CHECK.value))
            .otherwise(pl.lit(IdStatus.VALID.value)))


def _birth_in_range(born: pl.Expr) -> pl.Expr:
    return born.is_not_null() & (born >= date(1880, 1, 1)) & (born <= date(2100, 1, 1))


def _normalise_any(raw: pl.Series) -> tuple[pl.Series, pl.Series]:
    """`normalise_id_series` for IDs in any form. Staged (each intermediate materialised once):
    the cleaned text feeds a dozen tests, and recomputing it inside every branch made this 7×
    slower."""
    c = pl.col
    df = pl.DataFrame({"t": nfkc_series(raw)}).with_columns(
        c("t").str.replace_all("[" + re.escape(_DROP_CHARS) + "]", "").str.to_uppercase().fill_null(""))
    df = df.with_columns(c("t").str.len_chars().alias("len"),
                         c("t").str.extract_groups(_SCIENTIFIC.pattern).alias("sci"))
    df = df.with_columns(
        # Excel's forms: scientific notation, or a ".0" float suffix.
        (c("sci").struct.field("1") + c("sci").struct.field("2").fill_null("")).alias("mantissa"),
        c("sci").struct.field("3").cast(pl.Int64, strict=False).alias("exponent"),
        (c("t").str.ends_with(".0") & c("t").str.slice(0, c("len") - 2).str.contains(r"^[0-9]+$")).alias("dot0"),
        # 15 digits: region(6) yymmdd(6) seq(3); 18: 17 digits and a digit or X.
        pl.when(c("t").str.contains(r"^[0-9]{15}$")).then(c("t").str.to_integer(strict=False)).alias("n15"),
        pl.when((c("len") == 18) & c("t").str.contains(_PLAIN_18))
        .then(c("t").str.slice(0, 17).str.to_integer(strict=False)).alias("n17"),
        c("t").str.slice(0, 2).is_in(sorted(PROVINCE_CODES)).alias("province_ok"),
    )
    df = df.with_columns(
        (c("mantissa").is_not_null() & (c("mantissa").str.len_chars() <= c("exponent") + 1) & (c("exponent") < 40)).alias("is_sci"),
        (c("mantissa").str.len_chars() < MIN_SCIENTIFIC_DIGITS).fill_null(False).alias("sci_short"),
        ((c("n15") // 10**9) * 10**11 + 19 * 10**9 + c("n15") % 10**9).alias("up17"),
        pl.when(c("n15").is_not_null()).then(19_000_000 + (c("n15") // 1000) % 10**6)
        .otherwise((c("n17") // 1000) % 10**8).cast(pl.String).str.zfill(8)  # (a year before 1000 keeps its zeros)
        .str.to_date("%Y%m%d", strict=False).alias("born"),
        (_check_of_int(c("n17")) == c("t").str.slice(17, 1)).alias("check_ok"),
    )
    df = df.with_columns(
        _birth_in_range(c("born")).alias("birth_ok"),
        c("n15").is_not_null().alias("is15"),
    )
    out = df.select(
        pl.when(c("t") == "").then(pl.lit(""))
        .when(c("is_sci") & c("sci_short")).then(c("t"))
        .when(c("is_sci")).then(pl.concat_str([c("mantissa"), pl.lit("0" * 40)]).str.slice(0, c("exponent") + 1))
        .when(c("dot0")).then(c("t").str.slice(0, c("len") - 2))
        .when(c("is15") & c("province_ok") & c("birth_ok"))
        .then(c("up17").cast(pl.String).str.zfill(17) + _check_of_int(c("up17")))
        .otherwise(c("t")).alias("norm"),
        pl.when(c("t") == "").then(pl.lit(IdStatus.MISSING.value))
        .when(c("is_sci") & c("sci_short")).then(pl.lit(IdStatus.TOO_FEW_DIGITS.value))
        .when(c("is_sci") | c("dot0")).then(pl.lit(IdStatus.EXCEL_MANGLED.value))
        .when(c("is15") & ~c("province_ok")).then(pl.lit(IdStatus.BAD_PROVINCE.value))
        .when(c("is15") & ~c("birth_ok")).then(pl.lit(IdStatus.BAD_BIRTH_DATE.value))
        .when(c("is15")).then(pl.lit(IdStatus.VALID.value))
        .when(c("n17").is_null()).then(pl.lit(IdStatus.BAD_LENGTH.value))
        .otherwise(_status_18()).alias("status"),
    )
    return out["norm"], out["status"]
