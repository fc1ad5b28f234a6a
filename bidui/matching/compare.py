"""Comparisons of a record with a candidate person, as small integer levels.

Everything on characters or pinyin, never on UTF-8 bytes: DuckDB's string distances count bytes
and are wrong on Chinese names. Levels are ordered, 0 the strongest disagreement; -1 means
"not observed" (a record without that field) and weighs nothing.
"""

from __future__ import annotations

import numpy as np
import polars as pl

# (name, levels, description of each level from 0 up)
COMPARISONS: dict[str, tuple[str, ...]] = {
    "id": ("valid and another person's", "different", "two digits apart", "one digit or a transposition apart",
           "first 15 digits equal", "equal", "valid, held by nobody, one or two digits apart",
           "one of the 15 digits Excel kept apart"),
    "name": ("different", "one character apart", "same pinyin (homophone) or equal but for unknown characters",
             "same writing"),
    "birth": ("different", "one digit or month/day apart", "equal"),
    "sex": ("different", "equal"),
    "village": ("different", "same township", "equal"),
    "head": ("not the household head", "the household head"),
}


def char_matrix(s: pl.Series, width: int) -> np.ndarray:
    """Strings as an n × width array of code points (shorter ones padded with 0, longer cut):
    position-wise comparisons on characters, vectorised."""
    if s.is_empty():
        return np.zeros((0, width), dtype=np.uint32)
    # One string of fixed-width cells, encoded once: no Python object per value. ID numbers are
    # ASCII: a byte per character, not four (at the large size the IDs' two matrices took 0.5 GB).
    joined = s.fill_null("").str.slice(0, width).str.pad_end(width, "\0").str.join("").item()
    if joined.isascii():
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(len(s), width)
    return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).reshape(len(s), width)


def id_edits(rec_ids: pl.Series, keys: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: how many of the 18 positions differ, whether the IDs differ by one swap of
    neighbouring characters, and how many of the first 15 differ (all Excel keeps of a number)."""
    a, b = char_matrix(rec_ids, 18), char_matrix(keys, 18)
    differs = a != b
    apart = differs.sum(axis=1)
    swap = differs[:, :-1] & differs[:, 1:] & (a[:, :-1] == b[:, 1:]) & (a[:, 1:] == b[:, :-1])
    return apart, (apart == 2) & swap.any(axis=1), differs[:, :15].sum(axis=1)


UNKNOWN = ord("*")  # bidui.names writes every placeholder (□ ? 〓 ＊ …) as `*`


def name_edits(a: pl.Series, b: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, on the first 8 characters: same length and exactly one character different (a
    typo, a look-alike); and same length and equal wherever neither has an unknown character
    (a system that could not write one character put a placeholder there). A pair with a name
    missing is neither."""
    both = a.is_not_null() & b.is_not_null()
    if not both.all():
        # Only the pairs with both names are compared: most pairs compare with a former name
        # that almost no one has (its comparison cost a fifth of the candidates' levels).
        one_apart, but_unknown = np.zeros(len(a), dtype=bool), np.zeros(len(a), dtype=bool)
        if both.any():
            rows = both.arg_true().to_numpy()
            one_apart[rows], but_unknown[rows] = name_edits(a.gather(rows), b.gather(rows))
        return one_apart, but_unknown
    same_len = (a.str.len_chars() == b.str.len_chars()).fill_null(False).to_numpy()
    x, y = char_matrix(a, 8), char_matrix(b, 8)
    differs = x != y
    unknown = (x == UNKNOWN) | (y == UNKNOWN)
    # Two known characters at least must agree: `卢*` fits every two-character name of the 卢.
    known_agree = (~differs & ~unknown & (x != 0)).sum(axis=1) >= 2
    return (same_len & (differs.sum(axis=1) == 1),
            same_len & unknown.any(axis=1) & ~(differs & ~unknown).any(axis=1) & known_agree)


def id_level(rec_id: pl.Expr, status: pl.Expr, key: pl.Expr, apart: pl.Expr, swapped: pl.Expr,
             apart15: pl.Expr | None = None, held: pl.Expr | None = None) -> pl.Expr:
    """`apart`, `swapped` and `apart15` come from `id_edits`; `held`: the record's ID, valid, is
    some hukou person's (then, unless it is the candidate's, it names someone else). A valid ID
    held by nobody one or two digits from the candidate's is a typo that kept the check character
    (one mistyped digit never does; two do once in eleven); three or more digits away it is the
    number of someone not in hukou, as good as another person's."""
    apart15 = pl.lit(None, pl.Int64) if apart15 is None else apart15
    held = pl.lit(True) if held is None else held
    length = rec_id.str.len_chars()
    truncated = rec_id.is_not_null() & ((length >= 15) & (length < 18) | (status == "excel_mangled"))
    first15 = rec_id.str.slice(0, 15) == key.str.slice(0, 15)
    return (pl.when(rec_id.is_null() | (length < 15)).then(-1)
            .when(truncated).then(pl.when(first15).then(4).when(apart15 == 1).then(7).otherwise(1))
            .when(length != 18).then(-1)
            .when(rec_id == key).then(5)
            .when((status == "valid") & held.fill_null(True)).then(0)
            .when((status == "valid") & ((apart <= 2) | swapped)).then(6)
            .when(status == "valid").then(0)
            .when((apart == 1) | swapped).then(3)
            .when(apart == 2).then(2)
            .otherwise(1)).cast(pl.Int8)


def same_sound(form: pl.Expr, pinyin: pl.Expr, key_form: pl.Expr, key_pinyin: pl.Expr) -> pl.Expr:
    """Same pinyin, neither name with an unknown character (a pinyin key skips it: `杨皓*` would
    sound like 杨皓)."""
    return ((pinyin == key_pinyin) & (pinyin != "") & ~form.str.contains("*", literal=True)
            & ~key_form.str.contains("*", literal=True))


def name_level(form: pl.Expr, pinyin: pl.Expr, key_form: pl.Expr, key_pinyin: pl.Expr, one_apart: pl.Expr,
               but_unknown: pl.Expr | None = None) -> pl.Expr:
    """`one_apart` and `but_unknown` come from `name_edits`. Pinyin written for a character
    (`王yan`) is read as that sound by bidui.names, so it agrees at the pinyin level."""
    but_unknown = pl.lit(False) if but_unknown is None else but_unknown
    return (pl.when(form.is_null() | key_form.is_null()).then(-1)
            .when(form == key_form).then(3)
            .when((same_sound(form, pinyin, key_form, key_pinyin)) | but_unknown).then(2)
            .when(one_apart).then(1)
            .otherwise(0)).cast(pl.Int8)


def date_digits(d: pl.Expr) -> pl.Expr:
    """A date as the integer YYYYMMDD (how it is written in an ID)."""
    return d.dt.year().cast(pl.Int32) * 10000 + d.dt.month().cast(pl.Int32) * 100 + d.dt.day().cast(pl.Int32)


def birth_level(birth: pl.Expr, key_birth: pl.Expr) -> pl.Expr:
    """Both as integers YYYYMMDD (`date_digits`, or the ID's digits 7–14)."""
    a, b = birth, key_birth
    one = pl.sum_horizontal([((a // 10**i) % 10 != (b // 10**i) % 10).cast(pl.Int8) for i in range(8)]) == 1
    swapped = (a // 10000 == b // 10000) & ((a // 100) % 100 == b % 100) & (a % 100 == (b // 100) % 100)
    return (pl.when(a.is_null() | b.is_null()).then(-1).when(a == b).then(2)
            .when(one | swapped).then(1).otherwise(0)).cast(pl.Int8)


def sex_level(sex: pl.Expr, key_sex: pl.Expr) -> pl.Expr:
    return pl.when(sex.is_null() | key_sex.is_null()).then(-1).when(sex == key_sex).then(1).otherwise(0).cast(pl.Int8)


def village_level(village: pl.Expr, key_village: pl.Expr) -> pl.Expr:
    return (pl.when(village.is_null() | key_village.is_null()).then(-1).when(village == key_village).then(2)
            .when(village.str.slice(0, 9) == key_village.str.slice(0, 9)).then(1).otherwise(0)).cast(pl.Int8)


# What the ID comparison of a true match looks like in the residue, before the data speaks: IDs
# are corrupted by one mistyped digit or a swap (which almost always breaks the check character),
# by Excel keeping 15 digits (rarely after a typo), or not at all; a valid ID held by someone else
# is that person's, one held by nobody a rare typo that kept the check character. Used as light pseudo-counts when m is
# estimated from anchor pairs (bidui.matching.fs).
ID_M_PRIOR = (1e-5, 1e-4, 1e-3, 0.45, 0.45, 0.1, 0.01, 0.005)


def head_level(is_head: pl.Expr, key_relation: pl.Expr) -> pl.Expr:
    """For records that name a household head (户主): is the candidate one?"""
    return (pl.when(is_head.is_null() | key_relation.is_null()).then(-1).when(key_relation == "户主").then(1)
            .otherwise(0)).cast(pl.Int8)
