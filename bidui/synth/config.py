"""Sizes, corruption rates and planting rates of the synthetic prefecture.

Every rate is documented in synth/README.md; change them here or pass overrides to
`generate()` (tests do, to force a corruption or a plant).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Size:
    residents: int
    counties: int
    townships_per_county: int
    villages_per_township: int
    min_plants: int  # every plant kind occurs at least this often, whatever the rate


SIZES: dict[str, Size] = {
    "tiny": Size(2_000, 1, 2, 4, 2),
    "small": Size(50_000, 2, 5, 8, 3),
    "medium": Size(1_000_000, 6, 12, 14, 5),
    "large": Size(4_000_000, 12, 16, 18, 5),
}


@dataclass(frozen=True)
class CorruptionRates:
    """Per department record (the register has its own, lower, rates); at most one name and one
    ID corruption per record."""

    name_typo: float = 0.003  # one character replaced by a look-alike
    name_homophone: float = 0.008  # one character replaced by a homophone (同音字)
    name_traditional: float = 0.005  # written in traditional characters
    name_space: float = 0.005  # a stray space (inner, leading, trailing, full-width)
    dot_variant: float = 0.6  # share of minority names written with another middle dot
    id_digit: float = 0.003  # one digit mistyped
    id_transposition: float = 0.002  # two adjacent digits swapped
    id_15: float = 0.004  # the old 15-digit form (people born 19xx)
    id_lower_x: float = 0.5  # share of X-ending IDs written with lower-case x
    id_fullwidth: float = 0.002  # full-width digits
    id_space: float = 0.003  # spaces inside or around
    id_missing: float = 0.01  # ID left empty, only where another field can identify (see README)
    register_name: float = 0.01  # register member names: homophone / look-alike / `*`
    register_form: float = 0.01  # register member names: traditional / space / dot variant
    register_id: float = 0.004  # register member IDs: digit or transposition (invalid)
    register_id_form: float = 0.01  # register member IDs: 15-digit, lower x, full width
    outsiders: float = 0.02  # department records of people outside the prefecture
    # Names as other systems write them (issue 15): part of the one name corruption per record.
    name_placeholder: float = 0.002  # one character written as □ ? * or 〓 (outside the character set)
    name_pinyin: float = 0.001  # one given-name character written as lower-case toneless pinyin (王yan)
    name_annotation: float = 0.002  # an annotation appended: 张三(户主), 李四（已故）
    name_invisible: float = 0.003  # zero-width space, BOM, full-width space, leading or trailing space
    # Record-level phenomena (issue 15), applied after the ordinary corruptions.
    household_students: float = 0.01  # a pupil's record (under 18) under a parent's ID
    household_infant_insurance: float = 0.03  # an infant's (under 7) insurance record under a parent's ID
    household_infant_claims: float = 0.03  # an infant's medical bill under a parent's ID
    id_valid_unheld: float = 0.001  # two digits of the sequence code changed, check character still valid
    id_digit_excel: float = 0.01  # of number cells: one digit mistyped, then truncated by Excel
    id_and_name: float = 0.001  # an ID typo and a damaged name on one record
    two_ids_records: float = 0.3  # share of a two-ID person's records that carry the old (注销) ID


@dataclass(frozen=True)
class DefectRates:
    """Defects of the true world (issue 15): per hukou person; every kind occurs at least
    `min_plants` times (name corrections: at least two a night)."""

    shared_id: float = 0.0002  # pairs: B's ID becomes A's (一号多人)
    two_ids: float = 0.0002  # a second, cancelled hukou record under another ID (一人多号)
    name_corrected: float = 0.0001  # each night from the second: hukou corrects a name
    namesake_village: float = 0.003  # renamed to a same-sex villager's exact name
    namesake_household: float = 0.0001  # renamed to a same-sex household member of another generation


@dataclass(frozen=True)
class PlantRates:
    """Per register household (mis_inclusion, exit_risk, natural_change, data_quality) or per
    rural non-register household (missed_inclusion). Positives and near misses alike."""

    positive: float = 0.008
    near_miss: float = 0.004
    missed: float = 0.004


@dataclass(frozen=True)
class SynthConfig:
    size: str = "tiny"
    seed: int = 1
    nights: int = 1
    start: str = "2026-11-20"
    corruption: CorruptionRates = field(default_factory=CorruptionRates)
    plants: PlantRates = field(default_factory=PlantRates)
    defects: DefectRates = field(default_factory=DefectRates)
    register_share: float = 0.10  # of rural hukou households
    skip_dataset: str = "students"  # education skips the second night
    truncate_dataset: str = "property"  # housing sends a truncated file on one night
