from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bidui.ids import (
    IdStatus,
    birth_date,
    check_char,
    normalise_id,
    normalise_id_series,
    sex_code,
    surviving_prefix,
    upgrade_15,
)

VALID = "11010519491231002X"  # the GB 11643 example


def test_check_char_of_the_standard_example() -> None:
    assert check_char(VALID[:17]) == "X"


@pytest.mark.parametrize(
    ("raw", "expected", "status"),
    [
        (VALID, VALID, IdStatus.VALID),
        (VALID.lower(), VALID, IdStatus.VALID),
        (" 110105 19491231 002x ", VALID, IdStatus.VALID),
        ("'" + VALID, VALID, IdStatus.VALID),
        ("１１０１０５１９４９１２３１００２Ｘ", VALID, IdStatus.VALID),
        ("110105491231002", upgrade_15("110105491231002"), IdStatus.VALID),
        ("", "", IdStatus.MISSING),
        (None, "", IdStatus.MISSING),
        ("11010519491231002", "11010519491231002", IdStatus.BAD_LENGTH),
        ("99010519491231002X", "99010519491231002X", IdStatus.BAD_PROVINCE),
        ("110105194913310020", "110105194913310020", IdStatus.BAD_BIRTH_DATE),
        ("110105194912310021", "110105194912310021", IdStatus.BAD_CHECK),
        ("5.22701199001011E+17", "522701199001011000", IdStatus.EXCEL_MANGLED),
        ("522701199001011234.0", "522701199001011234", IdStatus.EXCEL_MANGLED),
        (5.22701199001011e17, "522701199001011000", IdStatus.EXCEL_MANGLED),
        ("522701199001021000", "522701199001021000", IdStatus.EXCEL_MANGLED),
        # ending 000 but with a correct check character: indistinguishable from a real ID
        ("522701199001011000", "522701199001011000", IdStatus.VALID),
    ],
)
def test_normalise_id(raw: object, expected: str, status: IdStatus) -> None:
    assert normalise_id(raw) == (expected, status)


def test_fifteen_digits_upgrade_to_a_valid_eighteen() -> None:
    up = upgrade_15("522701900101123")
    assert up.startswith("52270119900101123") and normalise_id(up)[1] is IdStatus.VALID


def test_birth_date_sex_and_surviving_digits() -> None:
    assert birth_date(VALID).isoformat() == "1949-12-31"
    assert sex_code(VALID) == 2
    norm, status = normalise_id("5.22701199001011E+17")
    assert surviving_prefix(norm, status) == "522701199001011"
    assert surviving_prefix(VALID, IdStatus.VALID) is None


@given(st.text(max_size=30))
def test_normalise_never_raises(text: str) -> None:
    norm, status = normalise_id(text)
    assert isinstance(norm, str) and isinstance(status, IdStatus)


ID_ALPHABET = "0123456789Xx ０１２３４５６７８９Ｘ.E+'\t-٠١٧"  # (٠١٧: digits of another script)


def _vectorised(values: list[str]) -> list[tuple[str, str]]:
    import polars as pl

    from bidui.ids import normalise_id_series

    norm, status = normalise_id_series(pl.Series(values, dtype=pl.String))
    return list(zip(norm.to_list(), status.to_list(), strict=True))


@given(st.lists(st.one_of(
    st.text(alphabet=ID_ALPHABET, max_size=22),
    st.builds(lambda d, k: d[:k] + "000", st.text(alphabet="0123456789", min_size=18, max_size=18), st.integers(15, 15)),
    st.sampled_from([VALID, VALID.lower(), "110105491231002", "5.22701199001011E+17", "522701199001011234.0",
                     "522701199001021000", "99010519491231002X", "110105194913310020"]),
), min_size=1, max_size=40))
def test_vectorised_normalisation_agrees_with_the_scalar_one(values: list[str]) -> None:
    scalar = [(n, str(s)) for n, s in map(normalise_id, values)]
    assert _vectorised(values) == scalar


@pytest.mark.parametrize(("raw", "status"), [("5.29001E+17", IdStatus.TOO_FEW_DIGITS), ("5.3E+17", IdStatus.TOO_FEW_DIGITS),
                                             ("5.22731199001011E+17", IdStatus.EXCEL_MANGLED),
                                             ("5.2273119900101E+17", IdStatus.EXCEL_MANGLED),
                                             ("5.22731199001E+17", IdStatus.TOO_FEW_DIGITS), ("5.227311990012E+17", IdStatus.EXCEL_MANGLED), ("5.227311990E+17", IdStatus.TOO_FEW_DIGITS)])
def test_scientific_notation_is_excel_mangled_only_with_excels_digits(raw: str, status: IdStatus) -> None:
    """Excel keeps 15 significant digits (fewer shown when the last are 0); a 6-digit display such as
    `5.29001E+17` is no ID at all, not a truncated one to match on its first 15 digits."""
    norm, got = normalise_id(raw)
    assert got is status
    series_norm, series_status = normalise_id_series(pl.Series([raw]))
    assert (series_norm[0], series_status[0]) == (norm, got.value)
    if status is IdStatus.TOO_FEW_DIGITS:
        assert norm == raw  # kept as delivered: nothing padded with invented zeros


@pytest.mark.parametrize("raw", ["529002020311170787", " 529002020311170787", "52900202031117078x", "529002020311170000"])
def test_a_birth_year_before_1000_is_a_bad_birth_date_in_both_normalisations(raw: str) -> None:
    """Read as an integer, the birth digits 02031117 lost their leading zero and the vectorised
    normaliser took them for 2031-11-17 (a valid date): a bad check where the scalar one says a
    bad birth date. A number delivered plain and one that needs cleaning take different paths."""
    assert normalise_id(raw)[1] is IdStatus.BAD_BIRTH_DATE
    assert _vectorised([raw, VALID]) == [(normalise_id(raw)[0], "bad_birth_date"), (VALID, "valid")]


@pytest.mark.parametrize(("raw", "status"), [("11٠١٠٥١٩٤٩١٢٣١٠٠٢X", IdStatus.BAD_LENGTH), ("+11010549123100", IdStatus.BAD_LENGTH),
                                             ("-11010549123100", IdStatus.BAD_LENGTH),
                                             ("1.10105194912310E+١٧", IdStatus.BAD_LENGTH)])
def test_digits_are_ascii_digits_in_both_normalisations(raw: str, status: IdStatus) -> None:
    """Python's `isdigit` takes Arabic-Indic digits and the scalar normaliser called such a number
    valid where ingest's vectorised one said bad_length; a signed 15-character value was a number
    with a bad province to one and text of a bad length to the other."""
    assert normalise_id(raw)[1] is status
    assert _vectorised([raw]) == [(normalise_id(raw)[0], status.value)]
