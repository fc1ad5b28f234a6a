"""The linking cascade of a night: exact ID with a name check, then Fellegi–Sunter on the residue,
then one-to-one resolution; every fuzzy link keeps its explanation."""

from __future__ import annotations

import inspect
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.matching import carry as carry_mod
from bidui.matching import compare as cmp
from bidui.matching import fs, link_nights, spine_store
from bidui.matching.decisions import DECIDED_DDL, stage_decided
from bidui.matching.fs import Model, fit_with_labels, score
from bidui.matching.records import names_epoch, prepare_spine, records_sql, spine_snapshot

if TYPE_CHECKING:
    import pyarrow as pa

COMPARED = ["id", "name", "birth", "sex", "village", "head"]
LINKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS links (
    night DATE NOT NULL, dataset VARCHAR NOT NULL, row_id BIGINT,  -- the record's identity (warehouse.ROW_ID)
    role VARCHAR, person_key VARCHAR, method VARCHAR NOT NULL, score DOUBLE, id_name_conflict BOOLEAN, explanation VARCHAR,
    carried BOOLEAN, last_night DATE  -- bidui.matching.link_nights: the nights it holds for
);
CREATE TABLE IF NOT EXISTS link_runs (night DATE PRIMARY KEY, records BIGINT, exact BIGINT, fuzzy BIGINT, review BIGINT,
    none BIGINT, pairs BIGINT, seconds DOUBLE, model VARCHAR, skipped VARCHAR);
"""


# How a record was linked: those that need no score (exact, through a corrected name, through the
# hukou household, through the 15 digits Excel kept of a number, confirmed by a township's
# verification), then the scored ones, then none.
SURE_METHODS = ("exact", "former_name", "household", "excel_cut", "confirmed")
METHODS = (*SURE_METHODS, "fuzzy", "review", "none")


@dataclass(frozen=True)
class Thresholds:
    link: float = 0.99  # probability at or above: linked
    review: float = 0.80  # at or above (below link): linked, marked "identity to confirm"
    margin: float = 0.50  # a runner-up this probable …
    margin_bits: float = 5.0  # … and within this many bits (32×) of the best: a tie, not a link

    @classmethod
    def from_config(cls, cfg: dict) -> Thresholds:
        m = cfg.get("matching", {})
        return cls(float(m.get("link_probability", 0.99)), float(m.get("review_probability", 0.80)),
                   float(m.get("ambiguity_probability", 0.50)), float(m.get("ambiguity_bits", 5.0)))


@dataclass
class LinkResult:
    links: pl.DataFrame
    model: Model | None
    counts: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    records: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # The Fellegi–Sunter model: trained tonight (`trained`: why — first, asked, drift:<comparison>)
    # or kept from an earlier night (`trained` None); its version and when it was trained.
    trained: str | None = None
    shares: dict[str, list[float]] = field(default_factory=dict)
    model_version: int | None = None
    model_trained_at: datetime | None = None
    model_night: date | None = None  # the night the model was trained on
    carried: int = 0  # links carried from the night before (bidui.matching.carry)
    held: int = 0  # of them, scored (or unlinked) records no change could reach (`hold_scored`)
    persons: int | None = None  # the hukou persons a model trained tonight counts names among (`model_names`)
    tallies: list[tuple[str, str, int, int]] = field(default_factory=list)  # the links stored (link_nights.tallies)


@dataclass
class StoredModel:
    """A model kept between nights (`link_models`)."""

    version: int
    trained_at: datetime
    night: date
    reason: str
    model: Model
    shares: dict[str, list[float]]


MODELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_models (version INTEGER PRIMARY KEY, trained_at TIMESTAMP, night DATE, reason VARCHAR,
    model VARCHAR);
ALTER TABLE link_models ADD COLUMN IF NOT EXISTS persons BIGINT;
CREATE TABLE IF NOT EXISTS link_model_names (version INTEGER NOT NULL, form_h UBIGINT NOT NULL, k BIGINT NOT NULL)"""
# A model is fixed between nights (issue 18, part 2): its share of matches and the name frequencies
# it scores with (how many hukou persons bear each name, `link_model_names`, of the spine's
# `persons`) are those of the night it was trained. Learnt again each night, they moved every
# record's score a little with any birth or death anywhere, and no scored link could be carried.
# Tonight's candidates this far (total variation distance of one comparison's level shares) from
# those the kept model was trained on: the data changed under it, and it is trained again.
DRIFT = 0.10
# Drift is watched on the candidates of every DRIFT_SAMPLE-th record of the residue (by a hash of
# its number, so the same records however the night is linked) once the residue has
# DRIFT_SAMPLE_FROM records; of all of them below that. Those records are scored every night; the
# others may keep last night's outcome (`hold_scored`). At the large size an eighth of 170,000
# records is about 200,000 candidate pairs: shares to a few thousandths, against a drift of 0.10.
DRIFT_SAMPLE, DRIFT_SAMPLE_FROM = 8, 40_000


def stored_model(con: duckdb.DuckDBPyConnection) -> StoredModel | None:
    """The latest model kept between nights, if any."""
    con.execute(MODELS_SCHEMA)
    rows = con.execute("SELECT version, trained_at, night, reason, model FROM link_models ORDER BY version DESC LIMIT 1"
                       ).fetchall()
    if not rows:
        return None
    version, trained_at, night, reason, text = rows[0]
    model, shares = fs.from_json(text)
    return StoredModel(version, trained_at, night, reason, model, shares)


def model_names(con: duckdb.DuckDBPyConnection, version: int | None) -> int:
    """`link_names` (form_h, k): how many hukou persons bear each name, as the model of `version`
    scores with, or (None) as tonight's spine has them (`link_spine_keys`: a model trained tonight
    keeps them with its version when it is stored); the persons counted. A model stored before it
    kept them takes tonight's, once."""
    if version is not None:
        (persons,), = con.execute("SELECT persons FROM link_models WHERE version = ?", [version]).fetchall()
        if persons is not None:
            con.execute("CREATE OR REPLACE TEMP TABLE link_names AS SELECT form_h, k FROM link_model_names "
                        "WHERE version = ?", [version])
            return int(persons)
    con.execute("CREATE OR REPLACE TEMP TABLE link_names AS SELECT form_h, count(*) AS k FROM link_spine_keys "
                "WHERE form_h IS NOT NULL GROUP BY form_h")
    (persons,), = con.execute("SELECT count(*) FROM link_spine").fetchall()
    if version is not None:
        keep_names(con, version, int(persons))
    return int(persons)


def keep_names(con: duckdb.DuckDBPyConnection, version: int, persons: int) -> None:
    """The name frequencies of `link_names` kept with the model of `version`."""
    con.execute("DELETE FROM link_model_names WHERE version = ?", [version])
    con.execute("INSERT INTO link_model_names SELECT ?, form_h, k FROM link_names", [version])
    con.execute("UPDATE link_models SET persons = ? WHERE version = ?", [persons, version])


PAIR_RECORD = ["rec", "id", "id_status", "id_held", "form", "pinyin", "birth", "sex", "village", "is_head"]  # what _levels reads


def _keys(p: pl.DataFrame) -> pl.DataFrame:
    """A person's side of a comparison (one row per person and ID number the person carries)."""
    return p.select(pl.col("person_key"), pl.col("id_number").alias("k_id"), pl.col("form").alias("k_form"),
                    pl.col("pinyin").alias("k_pinyin"), pl.col("sex").alias("k_sex"), pl.col("birth_date").alias("k_birth"),
                    pl.col("village").alias("k_village"), pl.col("relation").alias("k_relation"),
                    pl.col("former_form").alias("k_former_form"), pl.col("former_pinyin").alias("k_former_pinyin"))


def _first15(ids: pl.Expr) -> pl.Expr:
    """The ID's first 15 characters as an integer (null unless they are digits)."""
    return ids.str.slice(0, 15).cast(pl.Int64, strict=False)


def _held_in(held: str) -> str:
    """A record's valid ID is some hukou person's: its `rec` is among `held` (records the exact step
    joined with a holder)."""
    return f"(r.id_status = 'valid' AND r.rec IN (SELECT rec FROM {held}))"
# The blocking keys of the residue (`link_residue`: `link_recs r` minus the sure links) and of the
# spine (`link_spine_keys`), computed once each. Most are parts of the number's first 15 digits
# taken as an integer, `n15` (null unless they are digits): integer keys join faster than strings.
# `held`: a valid number some hukou person carries (the exact step found it).
def _id_keys(col: str, whole: str) -> str:
    n15 = f"TRY_CAST(substr({col}, 1, 15) AS BIGINT)"
    return (f"{n15} AS n15, CASE WHEN {whole} THEN {n15} // 1000000000 END AS region, "
            f"CASE WHEN {whole} THEN {n15} // 10 % 100000000 END AS birth8, "
            f"CASE WHEN {whole} THEN {n15} // 100000 % 10000 END AS year4, "
            f"CASE WHEN {whole} THEN {n15} // 10 % 10000 END AS mmdd, "
            f"CASE WHEN {whole} THEN substr({col}, 15, 4) END AS tail")


def _text_keys(table: str, columns: tuple[str, ...] = ("form", "pinyin", "village")) -> str:
    """The name's writing and sound and the village as 64-bit hashes (`form_h`, `pinyin_h`,
    `village_h`; null for null: DuckDB hashes null to a number). The million-row key table copies
    no string, and the blocks join integers (0.06 s less at the medium size). Two names that
    shared a hash would only make a candidate pair more, which its score (on the names
    themselves) refuses, and count together in the name frequency: among four million distinct
    names, a chance of about one in two million a night."""
    return ", ".join(f"CASE WHEN {table}.{c} IS NOT NULL THEN hash({table}.{c}) END AS {c}_h" for c in columns)


# What is read of a residue record: the blocks' columns and the comparisons' (`PAIR_RECORD`), not
# where it came from (in `link_frame` its file is a long string converted from Arrow for every
# record, whether in the residue or not: the statement 0.11 → 0.085 s at the medium size).
RESIDUE_COLUMNS = [*(c for c in PAIR_RECORD if c != "id_held"), "event"]  # `id_held` is computed below
# (The exact step's rows are narrowed to the residue before `held` looks in them: looked up whole,
# DuckDB hashed all of them, ten million at the large size, for a residue of 170,000; 1.25 → 0.91 s.)
RESIDUE_KEYS_SQL = f"""
    CREATE OR REPLACE TEMP TABLE link_residue AS
    WITH res AS (SELECT {", ".join(f"r.{c}" for c in RESIDUE_COLUMNS)} FROM link_recs r ANTI JOIN link_sure s ON s.rec = r.rec),
         held AS (SELECT e.rec FROM link_exact e SEMI JOIN res r ON r.rec = e.rec)
    SELECT r.*, {_held_in("held")} AS id_held,
           {_id_keys("r.id", "length(r.id) = 18")}, {_text_keys("r")},
           r.id_status <> 'valid' AS damaged, r.id_status = 'excel_mangled' AS cut
    FROM res r"""
# The spine's keys, of the spine relation `{spine}`: kept with the stored spine across nights
# (bidui.matching.spine_store), made here for a spine staged otherwise (`link_frame`).
SPINE_KEYS_SELECT = f"""
    SELECT pi, {_text_keys("s")}, birth_date AS birth, status_date AS event,
           {_id_keys("id_number", "length(id_number) = 18")}
    FROM {{spine}} s"""
SPINE_KEYS_SQL = "CREATE OR REPLACE TEMP TABLE link_spine_keys AS" + SPINE_KEYS_SELECT.replace("{spine}", "link_spine")


def _near(a: str, b: str, width: int, digits: bool = False) -> str:
    """At most two of the first `width` characters (or of the `width` digits of two integers)
    differ: what a typo or a swap leaves."""
    if digits:
        return " + ".join(f"({a} // {10 ** i} % 10 <> {b} // {10 ** i} % 10)::INT" for i in range(width)) + " <= 2"
    return " + ".join(f"(substr({a}, {i}, 1) <> substr({b}, {i}, 1))::INT" for i in range(1, width + 1)) + " <= 2"


def _variants(residue: str = "link_residue") -> str:
    """Each residue record's 15 digits as the numbers a blocking compares with the spine's (one join
    for all): themselves (Excel kept 15 digits), and for the numbers with a typo (`typed`) every
    number one of positions 7–15 could have been before the typo, and the number with the birth
    date's last digit and the sequence's first swapped back (no other block survives that swap)."""
    n = "t.n15"
    tens, ones = f"({n} // 10 % 10)", f"({n} % 10)"
    return f"""
        SELECT rec, n15 AS v FROM {residue} WHERE n15 IS NOT NULL
        UNION ALL
        SELECT t.rec, {n} - ({n} // p.scale % 10) * p.scale + d.digit * p.scale
        FROM typed t, (SELECT unnest({[10 ** e for e in range(9)]}::BIGINT[]) AS scale) p,
             (SELECT unnest(range(10)) AS digit) d
        UNION ALL
        SELECT t.rec, {n} - {tens} * 10 - {ones} + {ones} * 10 + {tens} FROM typed t"""


def _blocks(keys: str = "link_spine_keys", residue: str = "link_residue") -> list[str]:
    """Blocking that survives the real corruptions: each rule catches what another loses. Each is
    a join of the residue `r` (or its numbers with a typo, `t`) with the spine's keys `k`."""
    def on(*cols: str) -> str:
        return " AND ".join(f"r.{c} = k.{c}" for c in cols)

    def block(cond: str, rows: str = f"{residue} r") -> str:
        return f"SELECT r.rec, k.pi FROM {rows} JOIN {keys} k ON {cond}"

    return [
        # typo after the birth date (in the last four characters; a number another person holds,
        # whose name the exact step refused, pairs with everyone born that day in the county: the
        # rest of them are as unlike as any two numbers, and never a link)
        block(f"{on('region', 'birth8')} AND {_near('r.tail', 'k.tail', 4)}"),
        # the 15 digits Excel kept, and what a typo in positions 7–15 or a swap across the birth
        # date's end changed (for a typo together with a damaged name: no name key survives it)
        f"SELECT v.rec, k.pi FROM variants v JOIN {keys} k ON k.n15 = v.v",
        # A typo or swap inside the birth date: one or two of year, month-day and the last four
        # characters survive it, and with pinyin and county they are narrow (pinyin and county
        # alone pair a common name with hundreds of people at 4 M residents).
        *[block(on("pinyin_h", "region", g)) for g in ("year4", "mmdd", "tail")],
        block(on("form_h", "village_h")),
        block(on("form_h", "event")),
        block(on("pinyin_h", "birth")),
        # …or a typo or swap anywhere in the birth date: county and the last four characters
        # (not of a number Excel cut: its last three are zeros).
        block(f"{on('region', 'tail')} AND {_near('r.birth8', 'k.birth8', 8, digits=True)}", "typed r"),
    ]


def block_residue(con: duckdb.DuckDBPyConnection, residue: str = "link_residue", keys: str = "link_spine_keys",
                  into: str = "link_pairs") -> None:
    """The residue of the sure links (`link_residue`) paired with the persons its blocks find:
    `link_pairs` (rec, pi), one row per record and person's number. (Other residue rows, other
    persons' keys: `hold_scored`.)"""
    # Numbers with a typo: every invalid 18-character one, and those Excel cut whose 15 digits are
    # nobody's in the whole spine (almost every cut number is right on the 15 it kept, and there are many).
    # (An anti join, not NOT IN: that would hash the spine's million numbers for a few hundred.)
    typed = (f"SELECT * FROM {residue} WHERE damaged AND n15 IS NOT NULL AND NOT cut UNION ALL "
             f"SELECT r.* FROM {residue} r ANTI JOIN link_spine_keys k ON k.n15 = r.n15 "
             "WHERE r.damaged AND r.cut AND r.n15 IS NOT NULL")
    union = "\n        UNION\n        ".join(_blocks(keys, residue))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {into} AS WITH typed AS ({typed}), variants AS ({_variants(residue)}) {union}")


def hold_scored(con: duckdb.DuckDBPyConnection, watched: str) -> int:
    """Of the residue, the records that keep the outcome the model gave them the night before
    (`link_may_hold`: rec, person_key, method, score, explanation — the records whose row says
    what it said then and which no verdict or change of hukou under their number reached,
    `bidui.matching.link._link_and_store`), into `link_kept_scored` and out of `link_residue`;
    how many. A scored outcome depends on the record, its candidates and the model, which is
    fixed between nights (`model_names`): so a record keeps it unless a hukou person changed since
    (`spine_store.CHANGED`: as the person was, `WAS`, or is) pairs with it in a block — a new
    candidate, one gone, or one that says something else — or it is `watched` (drift is measured
    on those: scored every night)."""
    changed = (f"SELECT * FROM {spine_store.WAS} UNION ALL BY NAME SELECT * FROM link_spine "
               f"WHERE id_number IN (SELECT id_number FROM {spine_store.CHANGED})")
    con.execute("CREATE OR REPLACE TEMP TABLE link_changed_keys AS" + SPINE_KEYS_SELECT.replace("{spine}", f"({changed})"))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE link_hold_residue AS
                    SELECT * FROM link_residue WHERE rec IN (SELECT rec FROM link_may_hold) AND NOT ({watched})""")
    block_residue(con, "link_hold_residue", "link_changed_keys", "link_hold_pairs")
    con.execute("""CREATE OR REPLACE TEMP TABLE link_kept_scored AS
                   SELECT h.* FROM link_may_hold h SEMI JOIN link_hold_residue r ON r.rec = h.rec
                   ANTI JOIN link_hold_pairs p ON p.rec = h.rec""")
    con.execute("DELETE FROM link_residue WHERE rec IN (SELECT rec FROM link_kept_scored)")
    _drop(con, "link_changed_keys", "link_hold_residue", "link_hold_pairs")
    (n,), = con.execute("SELECT count(*) FROM link_kept_scored").fetchall()
    return int(n)


CANDIDATE, POSITIVE, RANDOM = 0, 1, 2  # what a compared pair is (`kind`)


def compared_pairs(con: duckdb.DuckDBPyConnection, seed: int | None, candidates: bool = True) -> pl.DataFrame:
    """The pairs whose levels are computed, each with its `kind`, the record's side (`PAIR_RECORD`)
    and the person's (`KEY_COLUMNS`, and `form_h`: the name as the keys hash it, what
    name frequencies are counted by, `model_names`): the residue's candidates (`link_pairs`, when
    `candidates`) and, when `seed` is given, the training's labelled pairs (`training_sql`).
    They are read in one pass over the records and one over the spine: each pass reads every row
    of its table's wide columns (the spine's names and numbers), so reading them once per kind of
    pair cost three spine scans and two of the records (at the medium size 0.3 s of CPU more).
    One frame, not one per kind: at the large size the candidates alone are 1.8 M rows, and
    splitting would copy them."""
    parts, ctes = [], []
    if candidates:
        parts.append(f"SELECT p.rec, p.pi, {CANDIDATE} AS kind, r.id_held FROM link_pairs p JOIN link_residue r ON r.rec = p.rec")
    training = training_sql(con, seed) if seed is not None else None
    if training is not None:
        ctes.append(training)
        parts += [f"SELECT rec, pi, {POSITIVE} AS kind, TRUE AS id_held FROM positives",
                  f"SELECT rec, pi, {RANDOM} AS kind, id_held FROM randoms"]
    if not parts:
        parts.append(f"SELECT NULL::BIGINT AS rec, NULL::BIGINT AS pi, {CANDIDATE} AS kind, NULL::BOOLEAN AS id_held LIMIT 0")
    wanted = "\n        UNION ALL ".join(parts)
    # Training reads every record's side (the random pairs are any records); candidates alone only
    # the residue's, a few per cent of the records.
    records = "link_recs" if training is not None else "link_residue"
    # In no order: everything after is row by row or sorts what it needs (`resolve`); sorting the
    # pairs here took 0.7–1.0 s of the 1.7 s this query cost at the large size (1.8 M pairs), and
    # sorting them in polars gathered every column again (0.9 GB more at the peak).
    # The pairs are a table first: as a subquery, DuckDB guessed them many and built its hash table
    # on every record's columns instead (0.16 s more at the medium size).
    con.execute(f"CREATE OR REPLACE TEMP TABLE link_wanted AS WITH {''.join(c + ', ' for c in ctes)}wanted AS ({wanted}) "
                "SELECT * FROM wanted")
    rows = wh.query(con, f"""
        SELECT w.kind, {PAIR_RECORD_SQL}, w.id_held, {KEY_SQL}, {_text_keys("s", ("form",))}
        FROM link_wanted w JOIN {records} r ON r.rec = w.rec JOIN link_spine s ON s.pi = w.pi
        ANTI JOIN link_cannot b ON b.rec = w.rec AND b.person_key = s.person_key AND w.kind = {CANDIDATE}""")
    _drop(con, "link_wanted")
    return rows


# A person's side of a pair, as `_keys` names it, read in SQL from `link_spine s`.
KEY_SQL = ("s.person_key, s.id_number AS k_id, s.form AS k_form, s.pinyin AS k_pinyin, s.sex AS k_sex, "
           "s.birth_date AS k_birth, s.village AS k_village, s.relation AS k_relation, s.former_form AS k_former_form, "
           "s.former_pinyin AS k_former_pinyin")
PAIR_RECORD_SQL = ", ".join(f"r.{c}" for c in PAIR_RECORD if c != "id_held")


def training_sql(con: duckdb.DuckDBPyConnection, seed: int) -> str | None:
    """CTEs `positives` and `randoms` (rec, pi; `randoms` with `id_held`): the labelled pairs the
    model is trained on (None when there are no records or no persons).

    Positives: the exact links as labelled matches, about POSITIVES_PER_DATASET of each dataset's
    (numbers only one person carries: a pair per link). Randoms: record × spine row pairs drawn at
    random (almost all non-matches, for u-probabilities), about RANDOM_PAIRS in all, each dataset
    its share. Every choice and order comes from a hash of the record's
    stable identity: the same pairs every run, whatever order the tables are in, with no window
    or sort over millions of rows."""
    counts = con.execute("SELECT dataset, count(*) FROM link_recs GROUP BY ALL").fetchall()
    (rows,), = con.execute("SELECT max(pi) + 1 FROM link_spine").fetchall()
    if not counts or not rows:
        return None
    drawn = f"(hash(source_file, source_row, role, {int(seed)}) % 1000000)::INTEGER"

    def share(per_dataset: float) -> str:
        return "CASE dataset " + " ".join(f"WHEN '{d}' THEN {round(min(1.0, per_dataset / n) * 1e6)}" for d, n in counts) + " END"

    # Most records are exact links: drawing the positives from all records, at a share raised by
    # a tenth, leaves about the number asked for once the others are dropped. Each large table
    # (the sure links, the exact step's rows) is semi-joined with the few drawn records first, so
    # that the hash tables are built on those: joined directly, DuckDB built them on the large side
    # (positives 1.4 -> 0.8 s, randoms 1.1 -> 0.8 s at the large size; the same pairs). Only the
    # keys are read here (`compared_pairs` reads the rest once for all pairs).
    # Each drawn record is set beside the spine row its hash names (`pi`, a hukou row's number:
    # where the row is in the delivered file, whatever order the tables are in), so no string of
    # the million spine rows is hashed to draw (0.115 of the statement's 0.24 CPU seconds at the
    # medium size); a number that names no spine row (a hukou row that is no person's) draws
    # nobody: `compared_pairs` joins the spine by `pi` and drops it. `held`: the exact step's rows
    # narrowed to the drawn records.
    # (Both kinds from one draw: each record's hash is computed once, in one pass over the records.)
    return f"""
        draws AS MATERIALIZED (
            SELECT rec, id, id_status, source_file, source_row, role, {drawn} AS d,
                   {share(POSITIVES_PER_DATASET * 1.1)} AS positive, {share(RANDOM_PAIRS / len(counts))} AS random
            FROM link_recs WHERE d < greatest(positive, random)),
        drawn AS (SELECT rec, id FROM draws WHERE d < positive),
        exact AS (SELECT l.rec FROM link_sure l SEMI JOIN drawn r ON r.rec = l.rec WHERE l.method = 'exact'),
        positives AS (SELECT r.rec, s.pi FROM (SELECT * FROM drawn r SEMI JOIN exact l ON l.rec = r.rec) r
                      JOIN link_spine s ON s.id_number = r.id AND s.person_key = r.id),
        drawn_u AS (SELECT rec, id_status, (hash(source_file, source_row, role, {int(seed) + 2}) % {rows})::BIGINT AS pi
                    FROM draws WHERE d < random),
        held AS (SELECT e.rec FROM link_held e SEMI JOIN drawn_u r ON r.rec = e.rec),
        randoms AS (SELECT r.rec, r.pi, {_held_in("held")} AS id_held FROM drawn_u r)"""


def training_pairs(con: duckdb.DuckDBPyConnection, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The labelled pairs the model is trained on (`training_sql`): (positives, randoms)."""
    pairs = compared_pairs(con, seed, candidates=False)
    return pairs.filter(pl.col("kind") == POSITIVE), pairs.filter(pl.col("kind") == RANDOM)


def _levels(pairs: pl.DataFrame) -> pl.DataFrame:
    # Birth date and sex are compared only where the record has them in their own columns: read
    # from its ID, they would count the ID's agreement or damage a second time (a transposed
    # birth date would lose twice what the ID comparison already weighed).
    apart, swapped, apart15 = cmp.id_edits(pairs["id"], pairs["k_id"])
    one_apart, but_unknown = cmp.name_edits(pairs["form"], pairs["k_form"])
    was_one_apart, was_but_unknown = cmp.name_edits(pairs["form"], pairs["k_former_form"])
    edits = pl.DataFrame({"_apart": apart, "_swapped": swapped, "_apart15": apart15, "_one_apart": one_apart,
                          "_but_unknown": but_unknown, "_was_one_apart": was_one_apart, "_was_but_unknown": was_but_unknown})
    # Lazy, for its common subexpressions: eager, each comparison recomputed its inputs wherever
    # they recur (the birth dates' digits twenty times; 225 → 118 ms per 100,000 pairs).
    return pl.concat([pairs, edits], how="horizontal").lazy().select(
        "rec", "person_key",
        cmp.id_level(pl.col("id"), pl.col("id_status"), pl.col("k_id"), pl.col("_apart"), pl.col("_swapped"),
                     pl.col("_apart15"), pl.col("id_held")).alias("id"),
        # The name compared with the person's, or with the name hukou gave the number before a correction.
        pl.max_horizontal(
            cmp.name_level(pl.col("form"), pl.col("pinyin"), pl.col("k_form"), pl.col("k_pinyin"), pl.col("_one_apart"),
                           pl.col("_but_unknown")),
            cmp.name_level(pl.col("form"), pl.col("pinyin"), pl.col("k_former_form"), pl.col("k_former_pinyin"),
                           pl.col("_was_one_apart"), pl.col("_was_but_unknown")).fill_null(-1)).alias("name"),
        cmp.birth_level(cmp.date_digits(pl.col("birth")), cmp.date_digits(pl.col("k_birth"))).alias("birth"),
        cmp.sex_level(pl.col("sex"), pl.col("k_sex")).alias("sex"),
        cmp.village_level(pl.col("village"), pl.col("k_village")).alias("village"),
        cmp.head_level(pl.col("is_head"), pl.col("k_relation")).alias("head"),
        pl.col("k_form"), pl.col("k_id"),
    ).collect()


def explanation() -> pl.Expr:
    """Each comparison's level and weight, the name-frequency adjustment and the total, as JSON
    (a waterfall to show on a clue); built column-wise, not row by row."""
    def quoted(text: pl.Expr | str) -> pl.Expr:
        return pl.concat_str([pl.lit('"'), pl.lit(text) if isinstance(text, str) else text, pl.lit('"')])

    def number(col: str, digits: int) -> pl.Expr:
        return pl.col(col).round(digits).cast(pl.String)

    def part(comparison: str, level: pl.Expr, weight: pl.Expr) -> pl.Expr:
        return pl.concat_str([pl.lit('{"comparison": '), quoted(comparison), pl.lit(', "level": '), level,
                              pl.lit(', "weight": '), weight, pl.lit("}")])

    parts = [part(c, quoted(pl.col(c).replace_strict({-1: "not observed"} | dict(enumerate(cmp.COMPARISONS[c])),
                                                       return_dtype=pl.String)), number(f"w_{c}", 2)) for c in COMPARED]
    tf = pl.when(pl.col("w_tf") != 0).then(
        pl.concat_str([pl.lit(", "), part("name frequency", quoted("adjustment"), number("w_tf", 2))])).otherwise(pl.lit(""))
    return pl.concat_str([pl.lit('{"parts": ['), pl.concat_str(parts, separator=", "), tf, pl.lit('], "total": '),
                          number("weight", 2), pl.lit(', "probability": '), number("probability", 4), pl.lit("}")])


DIFFERENT_ID_BITS = 3.0  # a number three or more digits from the candidate's weighs at least this much against
# Training: about this many exact links per dataset (m), and random pairs in all (u). Tens of
# thousands of each pin every level's share down far below the floors fs puts on them. Twice as
# many moved no link of the issue-15 task and no weight by more than another seed's draw does
# (at 100,000 random pairs two seeds differ by 1.6 bits on a name's sound, 9 on an equal birth
# date: whether a random pair happened to share one), and cost a fifth of the levels' time.
POSITIVES_PER_DATASET = 3_000
RANDOM_PAIRS = 50_000
KEY_COLUMNS = ["person_key", "k_id", "k_form", "k_pinyin", "k_sex", "k_birth", "k_village", "k_relation", "k_former_form",
               "k_former_pinyin"]
SPINE_COLUMNS = ["person_key", "id_number", "is_primary", "form", "pinyin", "sex", "birth_date", "village", "status_date",
                 "relation", "hukou_number", "former_form", "former_pinyin"]
# What linking reads of a record (the raw ID and name stay in the snapshots, for the export).
RECORD_COLUMNS = ["rec", "dataset", "source_file", "source_row", "role", "id", "id_status", "form", "pinyin", "birth",
                  "sex", "village", "event", "is_head"]
RECORD_DDL = ("rec BIGINT, dataset VARCHAR, source_file VARCHAR, source_row BIGINT, role VARCHAR, id VARCHAR, "
              "id_status VARCHAR, form VARCHAR, pinyin VARCHAR, birth DATE, sex VARCHAR, village VARCHAR, event DATE, "
              "is_head BOOLEAN, row_id BIGINT")
EXPORT_COLUMNS = ["dataset", "source_file", "source_row", "id_number_raw", "name_raw", "person_key", "hukou_id_number",
                  "method", "score"]


def stage_night(con: duckdb.DuckDBPyConnection, night: date, restage: list[str] | None = None,
                whole_spine: bool = False) -> list[str]:
    """The night's records as the temp table `link_recs`, and the spine as `link_spine` (a view of
    the spine kept across nights, `bidui.matching.spine_store`; built whole when `whole_spine`);
    the datasets skipped. They stay in DuckDB: only the residue of the exact step reaches Python.
    Of the datasets in `restage`, only the records `link_restage` lists (`bidui.matching.carry`)."""
    snap = spine_snapshot(con, night)
    prepare_spine(con, snap)
    # `pi`: a spine row's number, what the blocking keys (`link_spine_keys`) point back with: its
    # hukou row's (numbering the rows with row_number() cost 0.5 s of 1 at the medium size).
    spine_store.stage(con, snap, SPINE_COLUMNS, SPINE_KEYS_SELECT, whole=whole_spine)
    sql, args, skipped = records_sql(con, night, restage=restage or ())
    if sql is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE link_recs ({RECORD_DDL})")
    else:
        # (and the record's identity, which its link is stored by)
        con.execute(f"CREATE OR REPLACE TEMP TABLE link_recs AS SELECT {', '.join(RECORD_COLUMNS)}, row_id FROM ({sql})",
                    args)
    stage_decided(con, wh.in_force(con, night))
    return skipped


# The same writing, or the same sound when neither name has an unknown character (`*`: a pinyin
# key skips it, so `杨皓*` would sound like 杨皓).
LINK_NAME = ("(r.form = {s}.form OR (r.pinyin = {s}.pinyin AND r.pinyin <> '' AND NOT contains(r.form, '*') "
             "AND NOT contains({s}.form, '*')))")
# `holders`: how many persons carry the record's number (一号多人 when more than one). Counted on
# the side with fewer rows: the join's, by record, when there are fewer records than hukou persons
# (grouping the medium spine's million numbers cost more than the half million records); the
# spine's, by number, when there are more (ten million records and 4 M persons at the large size:
# 3.3 → 2.5 s). The same rows either way.
_EXACT_PAIRS = f"""
        SELECT r.rec, s.person_key, {LINK_NAME.format(s='s')} AND b.rec IS NULL AS agrees,
               (r.form = s.former_form OR (r.pinyin = s.former_pinyin AND r.pinyin <> '' AND NOT contains(r.form, '*')))
               AND b.rec IS NULL AS agrees_former{{holders}}
        FROM link_recs r JOIN link_spine s ON s.id_number = r.id
        LEFT JOIN link_cannot b ON b.rec = r.rec AND b.person_key = s.person_key{{shared}}
        WHERE r.id_status = 'valid'"""
EXACT_BY_RECORD_SQL = f"""
    CREATE OR REPLACE TEMP TABLE link_exact AS
    WITH e AS ({_EXACT_PAIRS.format(holders="", shared="")}),
    shared AS (SELECT rec, count(*) AS holders FROM e GROUP BY rec HAVING count(*) > 1)
    SELECT e.rec, e.person_key, coalesce(shared.holders, 1) AS holders, e.agrees, e.agrees_former
    FROM e LEFT JOIN shared ON shared.rec = e.rec"""
EXACT_BY_NUMBER_SQL = f"""
    CREATE OR REPLACE TEMP TABLE link_exact AS
    WITH shared AS (SELECT id_number, count(*) AS holders FROM link_spine GROUP BY id_number HAVING count(*) > 1),
    e AS ({_EXACT_PAIRS.format(holders=", coalesce(h.holders, 1) AS holders",
                               shared=" LEFT JOIN shared h ON h.id_number = r.id")})
    SELECT rec, person_key, holders, agrees, agrees_former FROM e"""


def exact_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The exact step's statement for the staged records and spine (`EXACT_BY_RECORD_SQL` or
    `EXACT_BY_NUMBER_SQL`: whichever groups fewer rows)."""
    (records,), = con.execute("SELECT count(*) FROM link_recs").fetchall()
    (persons,), = con.execute("SELECT count(*) FROM link_spine").fetchall()
    return EXACT_BY_RECORD_SQL if records <= persons else EXACT_BY_NUMBER_SQL


# The links no score is needed for, each with its reason: `exact` (explained only when the number
# is shared), `former_name`, and `household`: the number is a member's of one hukou household and
# the name another member's (a child's school or insurance record under a parent's ID). Almost
# every number has one holder whose name agrees: only the rest is aggregated.
SURE_SQL = [f"""
    -- A number Excel cut to 15 significant digits (the last three turned to zeros) whose 15 digits
    -- are those of exactly one person whose name agrees: region, birth date and the sequence's first
    -- digit, and the name, as sure as a whole number and its name (appraisals are typed in Excel;
    -- tens of thousands of such records a night need no score). Two agreeing persons, or none, go
    -- on to be scored.
    CREATE OR REPLACE TEMP TABLE link_cut AS
    SELECT r.rec, any_value(s.person_key) FILTER (WHERE {LINK_NAME.format(s='s')}) AS person_key
    FROM link_recs r JOIN link_spine_keys k ON k.n15 = TRY_CAST(substr(r.id, 1, 15) AS BIGINT)
    JOIN link_spine s ON s.pi = k.pi
    ANTI JOIN link_cannot b ON b.rec = r.rec AND b.person_key = s.person_key
    WHERE r.id_status = 'excel_mangled' AND length(r.id) = 18
    GROUP BY r.rec HAVING count(DISTINCT s.person_key) FILTER (WHERE {LINK_NAME.format(s='s')}) = 1""", """
    CREATE OR REPLACE TEMP TABLE link_shared AS
    SELECT rec, count(*) FILTER (WHERE agrees) AS now, any_value(person_key) FILTER (WHERE agrees) AS person_key,
           count(*) AS holders, bool_or(agrees IS NULL) AS unnamed
    FROM link_exact WHERE holders > 1 GROUP BY rec""", """
    CREATE OR REPLACE TEMP TABLE link_conflict AS
    SELECT rec FROM link_exact WHERE holders = 1 AND agrees = FALSE
    UNION ALL SELECT rec FROM link_shared WHERE now = 0 AND NOT unnamed""", f"""
    CREATE OR REPLACE TEMP TABLE link_sure AS
    WITH former AS (
        SELECT e.rec, any_value(e.person_key) AS person_key
        FROM link_exact e SEMI JOIN link_conflict c ON c.rec = e.rec WHERE e.agrees_former
        GROUP BY e.rec HAVING count(*) = 1),
    -- the same writing first, then the same sound (siblings may be 梓萱 and 紫萱)
    -- (only the same sound when the holder's own name is not one character from the record's: a
    -- typo of the holder's name may sound like a sibling's, 王思西 for 王思琪 beside 王思曦)
    members AS (
        SELECT DISTINCT r.rec, m.person_key, (r.form = m.form OR r.form = m.former_form) AS written
        FROM link_conflict c ANTI JOIN former f ON f.rec = c.rec
        JOIN link_recs r ON r.rec = c.rec
        JOIN link_spine s ON s.id_number = r.id
        JOIN link_spine m ON m.hukou_number = s.hukou_number AND m.person_key <> s.person_key AND m.is_primary
             AND ({LINK_NAME.format(s='m')} OR r.form = m.former_form
                  OR (r.pinyin = m.former_pinyin AND r.pinyin <> '' AND NOT contains(r.form, '*')))
        ANTI JOIN link_cannot b ON b.rec = r.rec AND b.person_key = m.person_key
        WHERE r.form = m.form OR r.form = m.former_form OR NOT (length(r.form) = length(s.form)
              AND len(list_filter(range(1, length(r.form) + 1), lambda i: substr(r.form, i, 1) <> substr(s.form, i, 1))) = 1)),
    household AS (
        SELECT rec, CASE WHEN count(*) FILTER (WHERE written) = 1 THEN any_value(person_key) FILTER (WHERE written)
                         ELSE any_value(person_key) END AS person_key
        FROM members GROUP BY rec
        HAVING count(*) FILTER (WHERE written) = 1 OR (count(*) FILTER (WHERE written) = 0 AND count(*) = 1))
    SELECT rec, person_key, 'exact' AS method, NULL::VARCHAR AS explanation FROM link_exact WHERE holders = 1 AND agrees
    UNION ALL
    SELECT rec, person_key, 'exact', '{{"rule": "shared_id", "holders": ' || holders || '}}' FROM link_shared WHERE now = 1
    UNION ALL
    SELECT rec, person_key, 'former_name', '{{"rule": "former_name"}}' FROM former
    UNION ALL
    SELECT rec, person_key, 'household', '{{"rule": "household"}}' FROM household
    UNION ALL
    SELECT rec, person_key, 'excel_cut', '{{"rule": "excel_cut"}}' FROM link_cut""", """
    -- A township confirmed the identity (a must-link): it overrides whatever else was found, while
    -- the person is in hukou tonight and no other confirmation names the record.
    CREATE OR REPLACE TEMP TABLE link_must AS
    -- (min: several clues may each hold a confirmation of the pair; which one the explanation names
    -- must not be DuckDB's choice)
    SELECT rec, any_value(person_key) AS person_key, min(explanation) AS explanation
    FROM link_decided d SEMI JOIN link_spine s ON s.person_key = d.person_key
    WHERE d.kind = 'must' GROUP BY rec HAVING count(DISTINCT d.person_key) = 1""",
    "DELETE FROM link_sure WHERE rec IN (SELECT rec FROM link_must)",
    "INSERT INTO link_sure SELECT rec, person_key, 'confirmed', explanation FROM link_must"]


def _train(positive_levels: pl.DataFrame, randoms: pl.DataFrame, levels: pl.DataFrame) -> Model:
    """m from a sample of the exact links (`positive_levels`), u from random pairs (`randoms`),
    the ID's m from anchor pairs among the candidates (`levels`), EM for the share of matches."""
    model = fit_with_labels(positive_levels, randoms, levels, COMPARED, {"id": cmp.ID_M_PRIOR})
    # The anchors the ID's m comes from include namesakes of one village (same name, same
    # village, another person's number), which make a wholly different number look common
    # among true matches; it never counts for a candidate.
    model.m["id"][1] = min(model.m["id"][1], model.u["id"][1] * 2.0 ** -DIFFERENT_ID_BITS)
    # An equal number is no weaker evidence than 15 equal digits. Its pairs in the residue have
    # a name the exact step refused, so few reach the anchors' bar (the cut numbers of the
    # appraisals make most anchors), and m alone would say a valid, equal number is rare
    # among true matches: a name typo under the right number would go to review.
    model.m["id"][5] = max(model.m["id"][5], model.u["id"][5] * 2.0 ** model.weight("id", 4))
    return model


def _drop(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    wh.drop_temp(con, *tables)


def link_staged(con: duckdb.DuckDBPyConnection, thresholds: Thresholds = Thresholds(), seed: int = 0,
                kept: StoredModel | None = None, retrain: bool = False, hold: bool = False) -> LinkResult:
    """The cascade on `link_recs` against `link_spine`; the outcome is left in temp tables
    `link_sure` (rec, person_key, method, explanation), `link_fuzzy` (rec, person_key, method,
    score, explanation; every other record, method `none` where no block found a candidate) and
    `link_conflict` (rec: a number found in hukou, no holder's name). `hold`: the records of
    `link_may_hold` no change reached keep last night's outcome (`hold_scored`: `link_kept_scored`,
    not in `link_fuzzy`)."""
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        timings[step] = time.perf_counter() - start - sum(timings.values())

    # 0. the townships' verdicts (bidui.matching.decisions): pairs never to link, records to link.
    con.execute(DECIDED_DDL.replace("CREATE OR REPLACE TEMP TABLE", "CREATE TEMP TABLE IF NOT EXISTS"))
    con.execute("CREATE OR REPLACE TEMP TABLE link_cannot AS SELECT DISTINCT rec, person_key FROM link_decided "
                "WHERE kind = 'cannot'")
    # 1. exact: a valid ID found in hukou, and a name that differs at most in form or sound from
    # the name of exactly one of the persons carrying that number (one number, two persons:
    # 一号多人), or from the name hukou gave that number before a correction.
    con.execute(exact_sql(con))
    if not spine_store.keys_staged(con):
        con.execute(SPINE_KEYS_SQL)
    for statement in SURE_SQL:
        con.execute(statement)
    con.execute(RESIDUE_KEYS_SQL)
    # What made the sure links is not read again: at the large size the exact step's rows alone
    # are ten million, which the scoring and the storing below would hold at their peak. Training
    # (now, or after the candidates are scored when a kept model drifted) needs only which records
    # the exact step joined (`link_held`: a column of integers).
    con.execute("CREATE OR REPLACE TEMP TABLE link_held AS SELECT rec FROM link_exact")
    _drop(con, "link_exact", "link_cut", "link_shared")
    lap("exact")
    result = LinkResult(pl.DataFrame(), None)
    # 2. probabilistic on the residue: the candidates and (when the model is trained tonight) the
    # training pairs are read together, and their levels computed by polars and numpy in two
    # halves, one a thread (numpy holds one core per call), while DuckDB counts the candidates'
    # namesakes; row by row, so the same levels as whole.
    fuzzy = pl.DataFrame(schema={"rec": pl.Int64, "person_key": pl.String, "method": pl.String, "score": pl.Float64,
                                 "explanation": pl.String})
    # Drift is watched on a share of the residue (DRIFT_SAMPLE): those records are always scored.
    (size,), = con.execute("SELECT count(*) FROM link_residue").fetchall()
    watched = f"hash(rec) % {DRIFT_SAMPLE if size >= DRIFT_SAMPLE_FROM else 1} = 0"
    if hold:
        result.held = hold_scored(con, watched)
    block_residue(con)
    # Every record of the residue has a row in `link_fuzzy`: those no block found, linked to nobody.
    residue = con.sql("SELECT rec FROM link_residue").pl()
    probe = con.sql(f"SELECT rec FROM link_residue WHERE {watched}").pl()["rec"]
    train_now = kept is None or retrain
    compared = compared_pairs(con, seed if train_now else None)
    kind = compared["kind"]
    result.pairs = int((kind == CANDIDATE).sum())
    if result.pairs:
        with ThreadPoolExecutor(max_workers=2) as pool:
            half = (compared.height + 1) // 2
            comparing = [pool.submit(_levels, compared.slice(0, half)), pool.submit(_levels, compared.slice(half))]
            _drop(con, "link_pairs", "link_residue")  # blocking is done
            compared_levels = pl.concat([c.result() for c in comparing]).with_columns(kind)
        names = compared.filter(kind == CANDIDATE).select("form_h")
        del compared  # the pairs' columns, before their levels are split by kind (copied)
        levels, *training = (compared_levels.filter(pl.col("kind") == k).drop("kind") for k in (CANDIDATE, POSITIVE, RANDOM))
        del compared_levels
        seen = levels.filter(pl.col("rec").is_in(probe.implode()))
        shares = {c: fs.level_shares(seen, c, floor=0.0).tolist() for c in COMPARED}
        # A kept model is used as it is unless asked otherwise or the candidates drifted from
        # those it was trained on.
        distance, where = fs.drift(seen, kept.shares) if kept is not None else (0.0, "")
        if kept is not None and not retrain and distance <= DRIFT:
            model = kept.model
            persons = model_names(con, kept.version)
        else:
            result.trained = "asked" if retrain else "first" if kept is None else f"drift:{where}"
            result.shares = shares
            if not train_now:  # drifted: tonight's training pairs are read now
                training = [_levels(t) for t in training_pairs(con, seed)]
            model = _train(*training, levels)
            persons = result.persons = model_names(con, None)
        namesakes = names.join(con.sql("SELECT form_h, k FROM link_names").pl(), on="form_h", how="left",
                               maintain_order="left")["k"]
        levels = levels.with_columns((namesakes.fill_null(1) / persons).alias("tf"))
        scored = score(levels, model, COMPARED, name_freq=pl.col("tf"))
        lap("fuzzy")
        fuzzy = resolve(scored, thresholds)
        result.model = model
        lap("one-to-one")
    unmatched = residue.join(fuzzy, on="rec", how="anti").with_columns(method=pl.lit("none"))
    fuzzy = pl.concat([fuzzy, unmatched], how="diagonal_relaxed")  # the rest of their columns null
    con.register("_fuzzy", fuzzy)
    con.execute("CREATE OR REPLACE TEMP TABLE link_fuzzy AS SELECT * FROM _fuzzy")
    con.unregister("_fuzzy")
    result.timings = timings
    result.seconds = time.perf_counter() - start
    return result


def resolve(scored: pl.DataFrame, thresholds: Thresholds) -> pl.DataFrame:
    """One-to-one: each record's best candidate, unless a second one is also probable; with its
    explanation. Probabilities saturate (two candidates can both be ≈ 1): compare weights."""
    # Some candidates are impossible, however alike the rest: one whose number is valid and another
    # person's (a typo almost always breaks the check character, so a valid number names its
    # holder), and one whose name shares nothing with the record's — not the writing, the sound, nor
    # all but one character (the exact step already tried the household and the names hukou gave
    # the number before: a child's record under a parent's number, or a number typed from the
    # wrong card, is not the holder's; a birth date and a village do not make a namesake).
    # A person with a second (cancelled) number is one candidate, at its best comparison.
    # (The person's number last: the pairs come in no order, and of a person's two numbers at one
    # weight the explanation is that of the first.)
    possible = (pl.col("id") != 0) & (pl.col("name") != 0)
    ranked = scored.filter(possible).sort(["rec", "weight", "person_key", "k_id"],
                                          descending=[False, True, False, False]).unique(
        ["rec", "person_key"], keep="first", maintain_order=True)
    # Ranked by record, best first: a record's runner-up is the next row when it is the same
    # record's (shifts, not windows over each record: 119 → 54 ms for 85,000 candidates).
    same_next = pl.col("rec").shift(-1) == pl.col("rec")
    best = ranked.lazy().with_columns(
        pl.when(same_next).then(pl.col("probability").shift(-1)).otherwise(0.0).alias("second"),
        pl.when(same_next).then(pl.col("weight").shift(-1)).otherwise(-1e9).alias("second_weight"),
    ).filter(pl.col("rec").shift(1).ne_missing(pl.col("rec")))
    ambiguous = (pl.col("second") >= thresholds.margin) & (pl.col("second_weight") >= pl.col("weight") - thresholds.margin_bits)
    # A tie is not a link: two people fit equally (a common name in one village, no ID).
    method = (pl.when(ambiguous).then(pl.lit("none"))
              .when(pl.col("probability") >= thresholds.link).then(pl.lit("fuzzy"))
              .when(pl.col("probability") >= thresholds.review).then(pl.lit("review"))
              .otherwise(pl.lit("none")))
    best = best.with_columns(method.alias("method"))
    best = best.with_columns(explanation().alias("explanation"))
    return best.select("rec", pl.when(pl.col("method") != "none").then(pl.col("person_key")).alias("person_key"),
                       "method", pl.col("probability").alias("score"), "explanation").collect()


# An ID–name conflict: the record's number is found in hukou but no name of its holders agrees.
LINK_OUTCOME_SQL = """
    SELECT r.rec, coalesce(e.person_key, f.person_key) AS person_key,
           coalesce(e.method, f.method, 'none') AS method,
           CASE WHEN e.rec IS NOT NULL THEN 1.0 ELSE f.score END AS score,
           r.rec IN (SELECT rec FROM link_conflict) AS id_name_conflict,
           CASE WHEN e.rec IS NULL AND coalesce(f.method, 'none') = 'none' AND b.rec IS NOT NULL THEN b.explanation
                ELSE coalesce(e.explanation, f.explanation) END AS explanation
    FROM link_recs r
    LEFT JOIN link_sure e ON e.rec = r.rec
    LEFT JOIN link_fuzzy f ON f.rec = r.rec
    -- not linked, and a township said the record is not the person it was linked to: say so
    LEFT JOIN (SELECT rec, min(explanation) AS explanation FROM link_decided WHERE kind = 'cannot' GROUP BY rec) b
         ON b.rec = r.rec"""
# …and with the record's identity across nights (warehouse.ROW_ID), as stored.
OUTCOME_SQL = LINK_OUTCOME_SQL.replace("SELECT r.rec,", "SELECT r.rec, r.dataset, r.row_id, r.role,", 1)


def link_night(con: duckdb.DuckDBPyConnection, night: date, thresholds: Thresholds = Thresholds(),
               retrain: bool = False, carry: bool = True) -> LinkResult:
    """Link every person-bearing record in force on the night and store the links (replacing the
    night's earlier ones, in one transaction). The model of an earlier night is kept unless
    `retrain` or the night's candidates drifted from those it was trained on (DRIFT); a model
    trained tonight is kept as the next version."""
    start = time.perf_counter()
    # Staging and storing copy ten million rows at the large size; order is not needed there
    # (every read of the results sorts), and without it DuckDB writes in parallel.
    con.execute("SET preserve_insertion_order = false")
    try:
        return _link_and_store(con, night, thresholds, start, retrain, carry)
    finally:
        con.execute("RESET preserve_insertion_order")


# What makes a sure link: links made by other SQL are not carried (bidui.matching.carry).
SURE_CODE = carry_mod.code_digest(EXACT_BY_RECORD_SQL, EXACT_BY_NUMBER_SQL, *SURE_SQL, SPINE_KEYS_SQL)


def scored_code(thresholds: Thresholds) -> str:
    """What makes a scored outcome besides the model: the blocking, the comparisons, the scoring
    and the one-to-one resolution with its thresholds (an outcome made by other code or thresholds
    is not kept: `hold_scored`)."""
    return carry_mod.code_digest(RESIDUE_KEYS_SQL, *_blocks(), inspect.getsource(cmp), inspect.getsource(fs),
                                 inspect.getsource(_levels), inspect.getsource(resolve), inspect.getsource(explanation),
                                 inspect.getsource(compared_pairs), repr(thresholds))


def _link_and_store(con: duckdb.DuckDBPyConnection, night: date, thresholds: Thresholds, start: float,
                    retrain: bool, carry: bool) -> LinkResult:
    kept = stored_model(con)
    con.execute(LINKS_SCHEMA)
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS model_version INTEGER")
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS code VARCHAR")
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS carried BIGINT")
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS names_epoch BIGINT")
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS scored_code VARCHAR")
    con.execute("ALTER TABLE link_runs ADD COLUMN IF NOT EXISTS held BIGINT")
    scoring = scored_code(thresholds)
    # Training draws from every record: a night that trains (asked, or the first) links them all.
    # The name history as tonight reads it, before the plan compares it (and the identities: all of
    # them computed again from scratch, as the spine).
    prepare_spine(con, spine_snapshot(con, night), whole=not carry)
    plan = carry_mod.plan(con, night, SURE_CODE) if carry and kept is not None and not retrain else carry_mod.Carry()
    skipped = stage_night(con, night, plan.datasets, whole_spine=not carry)
    hold = kept is not None and carry_mod.may_hold(con, plan, night, kept.version, scoring)
    result = link_staged(con, thresholds, seed=night.toordinal(), kept=kept, retrain=retrain, hold=hold)
    if hold and result.trained is None:
        carry_mod.release_held(con, plan)
    if plan.datasets and result.trained is not None:  # the candidates drifted: trained, so all again
        why, plan = result.trained, carry_mod.Carry()
        skipped = stage_night(con, night, whole_spine=not carry)
        result = link_staged(con, thresholds, seed=night.toordinal(), kept=kept, retrain=True)
        result.trained = why
    result.skipped = skipped
    lap = time.perf_counter()
    if kept is not None and result.trained is None:
        result.model_version, result.model_trained_at, result.model_night = kept.version, kept.trained_at, kept.night
    con.execute("BEGIN TRANSACTION")
    try:
        link_nights.forget(con, night)
        con.execute("DELETE FROM link_runs WHERE night = ?", [night])
        # The raw ID and name are not copied: the export reads them from the snapshots.
        cols = link_nights.LINK_COLUMNS
        con.execute(f"INSERT INTO links (night, {cols}, carried) SELECT ?::DATE, {cols}, FALSE FROM ({OUTCOME_SQL})", [night])
        if plan.datasets:
            # Kept where they lie (a date moved on), wherever their records stand tonight.
            result.carried = carry_mod.keep_in_place(con, plan, night)
        result.tallies = link_nights.tallies(con, night)
        for _, method, n, _ in result.tallies:
            result.counts[method] = result.counts.get(method, 0) + n
        result.records = sum(result.counts.values())
        result.timings["store"] = time.perf_counter() - lap
        result.seconds = time.perf_counter() - start
        if result.trained is not None and result.model is not None:
            (last,), = con.execute("SELECT coalesce(max(version), 0) FROM link_models").fetchall()
            result.model_version, result.model_trained_at = last + 1, datetime.now().replace(microsecond=0)
            result.model_night = night
            con.execute("INSERT INTO link_models (version, trained_at, night, reason, model) VALUES (?, ?, ?, ?, ?)",
                        [result.model_version, result.model_trained_at, night, result.trained,
                         fs.to_json(result.model, result.shares)])
            keep_names(con, result.model_version, result.persons)
        model = result.model.weights_table().write_json() if result.model else None
        con.execute("INSERT INTO link_runs (night, records, exact, fuzzy, review, none, pairs, seconds, model, skipped, "
                    "model_version, code, carried, names_epoch, scored_code, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [night, result.records, sum(result.counts.get(m, 0) for m in SURE_METHODS),
                     *(result.counts.get(m, 0) for m in ("fuzzy", "review", "none")),
                     result.pairs, result.seconds, model, ",".join(skipped), result.model_version, SURE_CODE,
                     result.carried, names_epoch(con), scoring, result.held])
        carry_mod.remember_decisions(con, night)
        carry_mod.remember_loads(con, night)
        con.execute("COMMIT")
    except Exception:
        wh.rollback(con)
        raise
    _drop(con, "link_recs", "link_spine", "link_decided", "link_cannot", "link_must", "link_exact", "link_held", "link_cut",
          "link_shared", "link_conflict", "link_sure", "link_residue", "link_spine_keys", "link_pairs", "link_fuzzy",
          "link_names")
    carry_mod.drop(con)
    return result


def link_frame(recs: pl.DataFrame | Path, people: pl.DataFrame | Path, thresholds: Thresholds = Thresholds(),
               seed: int = 0) -> LinkResult:
    """The cascade on any records (the frame `records()` gives, or a Parquet file of it) against
    any spine (`spine()`, or a Parquet file), in a private in-memory DuckDB; the result carries the
    links as a frame (rec, person_key, method, score, id_name_conflict, explanation)."""
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = false")  # as `link_night`: nothing here needs it
        # The frames are scanned where they lie (Arrow, no copy into DuckDB's storage); a file is
        # read by polars, in parallel, twice as fast as DuckDB copies it into a table.
        frames = [(source if isinstance(source, pl.DataFrame) else pl.read_parquet(source, columns=columns)).select(columns)
                  for source, columns in ((recs, RECORD_COLUMNS), (people, SPINE_COLUMNS))]
        # Arrow's string views, as polars holds them: registering copies nothing (the default,
        # large strings, would convert every string column first, about 0.2 s at the medium size).
        view = pl.CompatLevel.newest()
        con.register("link_recs", frames[0].to_arrow(compat_level=view))
        con.register("link_spine", _numbered(frames[1].to_arrow(compat_level=view)))
        result = link_staged(con, thresholds, seed)
        result.links = outcome(con, frames[0]["rec"])
        counts = result.links.group_by("method").len().to_dict(as_series=False)
        result.counts = dict(zip(counts["method"], counts["len"], strict=True))
        result.records = result.links.height
        return result
    finally:
        con.close()


def outcome(con: duckdb.DuckDBPyConnection, recs: pl.Series) -> pl.DataFrame:
    """What `LINK_OUTCOME_SQL` selects, one row per record of `recs` (in no particular order),
    put together in polars from the sure and scored links: the SQL's join of every record with
    both, turned into a polars frame, took twice as long at the medium size (0.15 s against 0.09)."""
    sure = con.sql("SELECT rec, person_key, method, 1.0::DOUBLE AS score, explanation FROM link_sure").pl()
    scored = con.sql("SELECT rec, person_key, method, score, explanation FROM link_fuzzy").pl()
    conflict = con.sql("SELECT rec FROM link_conflict").pl()["rec"]
    refused = con.sql("SELECT rec, min(explanation) AS refused FROM link_decided WHERE kind = 'cannot' GROUP BY rec").pl()
    # (`rec` as the records have it: the scored links' frame is Int64 even when nothing was scored.)
    # Every record is in one of the two (`link_staged`): the sure links and the residue.
    links = pl.concat([f.with_columns(pl.col("rec").cast(recs.dtype)) for f in (sure, scored)])
    if refused.height:
        # not linked, and a township said the record is not the person it was linked to: say so
        links = links.join(refused, on="rec", how="left").with_columns(
            explanation=pl.when(pl.col("method") == "none").then(pl.coalesce("refused", "explanation"))
            .otherwise("explanation")).drop("refused")
    return links.select("rec", "person_key", "method", "score", pl.col("rec").is_in(conflict.implode()).alias(
        "id_name_conflict"), "explanation")


def _numbered(table: pa.Table) -> pa.Table:
    """The spine with `pi`, its row number, added chunk by chunk: a polars row index is one chunk
    beside the file's row groups, and turning that into Arrow copies every string (0.06 s at the
    medium size)."""
    import pyarrow as pa  # loaded by polars' to_arrow already; not for the nightly linking

    ends = np.cumsum([0, *(len(c) for c in table.column(0).chunks)])
    # From the buffers: pa.array would load pandas (0.2 s) to look at a numpy array.
    pi = pa.chunked_array([pa.Array.from_buffers(pa.int64(), int(b - a), [None, pa.py_buffer(np.arange(a, b, dtype=np.int64))])
                           for a, b in itertools.pairwise(ends)], pa.int64())
    return table.add_column(0, "pi", pi)


def links_of(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """The stored links of a night, as a frame, each at the file and row of its record (`source_file`:
    that of the snapshot of its dataset the night was linked with; `source_row`: the record's row in
    the snapshot in force, `link_nights.placed_sql`), as the rules and the export read them."""
    con.execute(LINKS_SCHEMA)
    loads = carry_mod.linked_loads(con, night) or wh.in_force_loads(con, night)
    files = pl.DataFrame({"dataset": list(loads), "load_id": [load for _, load in loads.values()]},
                         schema={"dataset": pl.String, "load_id": pl.Int64})
    # As stored for that night: a link kept from a night before is a carried one.
    # (not the links of a dataset stored again since the night was linked: no reader pairs those)
    placed = link_nights.placed_sql("$night::DATE", carry_mod.unpaired(con, night)).replace(
        "SELECT l.dataset,", "SELECT (l.carried OR l.night < $night::DATE) AS carried, l.dataset,")
    links = wh.query(con, f"SELECT $night::DATE AS night, * EXCLUDE (carried), carried FROM ({placed})", {"night": night})
    stored = wh.query(con, "SELECT dataset, load_id, file AS source_file FROM snapshots")
    files = files.join(stored, on=["dataset", "load_id"], how="left").select("dataset", "source_file")
    return links.join(files, on="dataset", how="left").select("night", "dataset", "source_file", *links.columns[2:])


def export(con: duckdb.DuckDBPyConnection, night: date) -> pl.DataFrame:
    """One row per person-bearing record in force on the night, with its link; none for a night
    that was not linked (its records are a snapshot of an earlier night, and no link holds for it)."""
    con.execute(LINKS_SCHEMA)
    (linked,), = con.execute("SELECT count(*) FROM link_runs WHERE night = ?", [night]).fetchall()
    sql, args, _ = records_sql(con, night) if linked else (None, [], [])
    if sql is None:
        return pl.DataFrame(schema=dict.fromkeys(EXPORT_COLUMNS, pl.String))
    # (links made on another snapshot than the one in force now are not paired: carry.unpaired)
    apart = sorted(carry_mod.unpaired(con, night))
    paired = f"l.dataset NOT IN ({', '.join(repr(d) for d in apart)})" if apart else "TRUE"
    return wh.query(con, f"""
        SELECT r.dataset, r.source_file, r.source_row, r.id_raw AS id_number_raw, r.name_raw, l.person_key,
               CASE WHEN l.method = 'none' THEN NULL ELSE split_part(l.person_key, '~', 1) END AS hukou_id_number,
               coalesce(l.method, 'none') AS method, l.score
        FROM ({sql}) r LEFT JOIN links l ON {link_nights.on_night('?::DATE', 'l.')} AND l.dataset = r.dataset
             AND l.row_id = r.row_id AND l.role = r.role AND {paired}
        ORDER BY r.dataset, r.source_file, r.source_row""", [*args, night])
