"""Comparisons of a record with a candidate person, as small integer levels.

Everything on characters or pinyin, never on UTF-8 bytes: DuckDB's string distances count bytes
and are wrong on Chinese names. Levels are ordered, 0 the strongest disagreement; -1 means
"not observed" (a record without that field) and weighs nothing.
"""

from __future__ import annotations

import polars as pl

# (name, levels, description of each level from 0 up)
COMPARISONS: dict[str, tuple[str, ...]] = {
    "id": ("valid and different", "different", "two or more digits apart", "one digit or a transposition apart",
           "first 15 digits equal", "equal"),
    "name": ("different", "one character apart", "same pinyin (homophone)", "same writing"),
    "birth": ("different", "one digit or month/day apart", "equal"),
    "sex": ("different", "equal"),
    "village": ("different", "same township", "equal"),
    "head": ("not the household head", "the household head"),
}


def _digits_apart(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Hamming distance over 18 characters (positions compared one by one)."""
    return pl.sum_horizontal([(a.str.slice(i, 1) != b.str.slice(i, 1)).cast(pl.Int8) for i in range(18)])


def _transposed(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    swaps = [(a.str.slice(0, i) + a.str.slice(i + 1, 1) + a.str.slice(i, 1) + a.str.slice(i + 2)) == b for i in range(17)]
    return pl.any_horizontal(swaps)


def id_level(rec_id: pl.Expr, status: pl.Expr, key: pl.Expr) -> pl.Expr:
    apart = _digits_apart(rec_id, key)
    usable = rec_id.is_not_null() & (rec_id.str.len_chars() == 18)
    return (pl.when(~usable).then(pl.when(rec_id.str.len_chars() >= 15).then(
                pl.when(rec_id.str.slice(0, 15) == key.str.slice(0, 15)).then(4).otherwise(1)).otherwise(-1))
            .when(rec_id == key).then(5)
            .when(status == "valid").then(0)
            .when((status == "excel_mangled") & (rec_id.str.slice(0, 15) == key.str.slice(0, 15))).then(4)
            .when(status == "excel_mangled").then(1)
            .when((apart == 1) | _transposed(rec_id, key)).then(3)
            .when(apart == 2).then(2)
            .otherwise(1)).cast(pl.Int8)


def _chars_apart_one(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """Same length and exactly one character different (a typo, a look-alike, `*`)."""
    same_len = a.str.len_chars() == b.str.len_chars()
    diffs = pl.sum_horizontal([
        pl.when(a.str.len_chars() > i).then((a.str.slice(i, 1) != b.str.slice(i, 1)).cast(pl.Int8)).otherwise(0)
        for i in range(8)])
    return same_len & (diffs == 1)


def name_level(form: pl.Expr, pinyin: pl.Expr, key_form: pl.Expr, key_pinyin: pl.Expr) -> pl.Expr:
    return (pl.when(form.is_null() | key_form.is_null()).then(-1)
            .when(form == key_form).then(3)
            .when((pinyin == key_pinyin) & (pinyin != "")).then(2)
            .when(_chars_apart_one(form, key_form)).then(1)
            .otherwise(0)).cast(pl.Int8)


def birth_level(birth: pl.Expr, key_birth: pl.Expr) -> pl.Expr:
    a, b = birth.dt.strftime("%Y%m%d"), key_birth.dt.strftime("%Y%m%d")
    swapped = (birth.dt.year() == key_birth.dt.year()) & (birth.dt.month() == key_birth.dt.day()) & (
        birth.dt.day() == key_birth.dt.month())
    one = pl.sum_horizontal([(a.str.slice(i, 1) != b.str.slice(i, 1)).cast(pl.Int8) for i in range(8)]) == 1
    return (pl.when(birth.is_null() | key_birth.is_null()).then(-1).when(birth == key_birth).then(2)
            .when(one | swapped).then(1).otherwise(0)).cast(pl.Int8)


def sex_level(sex: pl.Expr, key_sex: pl.Expr) -> pl.Expr:
    return pl.when(sex.is_null() | key_sex.is_null()).then(-1).when(sex == key_sex).then(1).otherwise(0).cast(pl.Int8)


def village_level(village: pl.Expr, key_village: pl.Expr) -> pl.Expr:
    return (pl.when(village.is_null() | key_village.is_null()).then(-1).when(village == key_village).then(2)
            .when(village.str.slice(0, 9) == key_village.str.slice(0, 9)).then(1).otherwise(0)).cast(pl.Int8)


# What the ID comparison of a true match looks like in the residue, before the data speaks: IDs
# are corrupted by one mistyped digit or a swap (which always breaks the check character), by
# Excel keeping 15 digits, or not at all; a valid ID that differs is another person's. Used as
# light pseudo-counts when m is estimated from anchor pairs (bidui.matching.fs).
ID_M_PRIOR = (1e-5, 1e-4, 1e-3, 0.45, 0.45, 0.1)


def head_level(is_head: pl.Expr, key_relation: pl.Expr) -> pl.Expr:
    """For records that name a household head (户主): is the candidate one?"""
    return (pl.when(is_head.is_null() | key_relation.is_null()).then(-1).when(key_relation == "户主").then(1)
            .otherwise(0)).cast(pl.Int8)
