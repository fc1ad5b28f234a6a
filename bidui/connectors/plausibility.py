"""Is a readable file plausible as tonight's extract? Checked against the last accepted snapshot of
its dataset, with every limit in `[ingest]` of bidui.toml (and `[ingest.datasets.<code>]` for one
dataset). A file that fails any check is held: the last snapshot stays in force and the dataset
loses a day's freshness, which is cheap; a hollow or truncated file becoming clues is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from functools import lru_cache

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.connectors.normalise import Normalised, ValueLimits
from bidui.datasets import Dataset
from bidui.matching.link_nights import literal
from bidui.privacy import quote

MIN_SHORTFALL = 20  # rows
USABLE_ID = ("valid", "excel_mangled")  # an Excel-mangled ID still links on its first 15 digits


@lru_cache(maxsize=1)
def _packaged_overrides() -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """The per-dataset limits of the packaged defaults.toml (what a dataset is like, e.g. that
    appraisals carry few ID numbers), so that `Limits()` knows them too."""
    from bidui import config

    return Limits.from_config(config.load(None)).datasets


@dataclass(frozen=True)
class Limits:
    max_reject_share: float = 0.05  # rows with an unreadable value
    min_row_ratio: float = 0.90  # rows against the last snapshot's
    max_row_ratio: float = 1.50
    min_valid_id_share: float = 0.50  # rows whose ID number is valid, on any night
    max_valid_id_drop: float = 0.05  # points the valid-ID share may fall since the last snapshot
    max_distinct_id_drop: float = 0.10  # points distinct valid IDs per row may fall
    max_duplicate_share: float = 0.01  # exact duplicate rows (collapsed either way)
    max_value_shift: float = 0.20  # points an enumeration value's share of rows may move since the last snapshot
    tail_cut_rows: float = 20  # the last snapshot's last rows all missing, those before them delivered again (0: off)
    settle_seconds: float = 0.0  # unchanged this long before a file is read (defaults.toml: 30)
    max_wait_seconds: float = 0.0  # how long a run waits for a file still being written
    values: ValueLimits = field(default_factory=ValueLimits)
    # per-dataset overrides: ((code, ((setting, value), …)), …)
    datasets: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = field(default_factory=lambda: _packaged_overrides())

    @classmethod
    def from_config(cls, cfg: dict) -> Limits:
        """From `[ingest]`; a misspelt or misplaced setting is an error, never silently ignored."""
        ing = cfg.get("ingest", {})
        names = {f.name for f in fields(cls)} - {"values", "datasets"}
        value_names = {f.name for f in fields(ValueLimits)}
        unknown = sorted(set(ing) - names - value_names - {"datasets"})
        if unknown:
            raise ValueError(f"bidui.toml [ingest]: unknown setting(s) {', '.join(unknown)}")
        from bidui.datasets import BY_CODE

        for code, over in ing.get("datasets", {}).items():
            if code not in BY_CODE:
                raise ValueError(f"bidui.toml [ingest.datasets.{code}]: no dataset {code}")
            wrong = sorted(set(over) - names)
            if wrong:
                raise ValueError(f"bidui.toml [ingest.datasets.{code}]: {', '.join(wrong)} cannot be set per dataset "
                                 f"(these can: {', '.join(sorted(names))})")
        plain = {k: float(v) for k, v in ing.items() if k in names}
        per = tuple(sorted((code, tuple(sorted((k, float(v)) for k, v in over.items() if k in names)))
                           for code, over in ing.get("datasets", {}).items()))
        return cls(**plain, values=ValueLimits.from_config(cfg), datasets=per)

    def for_dataset(self, code: str) -> Limits:
        over = dict(dict(self.datasets).get(code, ()))
        return replace(self, **over) if over else self


@dataclass(frozen=True)
class Profile:
    """What a snapshot looks like, for comparing tonight's with the last one."""

    rows: int
    valid_ids: int  # rows whose (first) person ID is usable: valid, or Excel-mangled
    distinct_ids: int  # distinct usable IDs
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # enumeration column → value → rows
    filled: dict[str, int] = field(default_factory=dict)  # each person's ID and name column → rows with a value

    @property
    def valid_share(self) -> float:
        return self.valid_ids / self.rows if self.rows else 0.0

    @property
    def distinct_share(self) -> float:
        return self.distinct_ids / self.rows if self.rows else 0.0


def _enums(ds: Dataset) -> list[str]:
    return [c.name for c in ds.columns if c.kind == "enum"]


def _person_columns(ds: Dataset) -> list[str]:
    return [col for ref in ds.persons for col in (ref.id_column, ref.name_column)]


def profile_rows(ds: Dataset, rows: pl.DataFrame) -> Profile:
    values = {c: {str(v): int(n) for v, n in rows[c].value_counts().iter_rows() if v is not None}
              for c in _enums(ds)} if rows.height else {}
    if not ds.persons or rows.height == 0:
        return Profile(rows.height, 0, 0, values)
    ref = ds.persons[0]
    valid = rows.filter(pl.col(f"{ref.id_column}_status").is_in(USABLE_ID))[ref.id_column]
    filled = {c: int(rows[c].is_not_null().sum()) for c in _person_columns(ds)}
    return Profile(rows.height, valid.len(), valid.n_unique(), values, filled)


def _profile_sql(ds: Dataset, rows_sql: str) -> str:
    """The one statement `profile_query` runs: the counts, then each enumeration column's values
    (a histogram: one scan of the rows for all, where a query per column read tonight's rows,
    joined to the snapshot they are kept from, four times for hukou)."""
    values = [f'histogram("{c}") FILTER (WHERE "{c}" IS NOT NULL)' for c in _enums(ds)]
    counts = ["count(*)"]
    if ds.persons:
        c, cols = ds.persons[0].id_column, _person_columns(ds)
        counts += [f"count(*) FILTER (WHERE {c}_status IN {USABLE_ID})",
                   f"count(DISTINCT {c}) FILTER (WHERE {c}_status IN {USABLE_ID})", *(f'count("{col}")' for col in cols)]
    return f"SELECT {', '.join(counts + values)} FROM ({rows_sql})"


def profile_query(con: duckdb.DuckDBPyConnection, ds: Dataset, rows_sql: str, args: list | None = None) -> Profile:
    """`profile_rows` of the rows a query gives (the dataset table's columns), counted in DuckDB:
    a stored snapshot, or tonight's rows when most of them were carried without leaving it."""
    found = con.execute(_profile_sql(ds, rows_sql), args or []).fetchone()
    enums = _enums(ds)
    counts, hists = found[:len(found) - len(enums)], found[len(found) - len(enums):]
    values = {c: {str(v): int(n) for v, n in (h or {}).items()} for c, h in zip(enums, hists, strict=True)}
    if not ds.persons:
        return Profile(int(counts[0]), 0, 0, values)
    n, valid, distinct, *filled = counts
    if not n:
        return Profile(0, 0, 0, {})
    return Profile(int(n), int(valid), int(distinct), values,
                   dict(zip(_person_columns(ds), map(int, filled), strict=True)))


SNAPSHOT_ROWS = "SELECT * FROM ds_{code}_at(?)"


def _profile_how(ds: Dataset) -> str:
    """What a stored profile was counted by (another version of the counting counts again)."""
    return "\n".join(["profile " + ",".join(f.name for f in fields(Profile)),
                      _profile_sql(ds, SNAPSHOT_ROWS.format(code=ds.code))])


def profile_snapshot(con: duckdb.DuckDBPyConnection, ds: Dataset, snapshot: date) -> Profile:
    """The profile of a stored snapshot: kept with its load when it was stored (`remember_profile`),
    so the next night's checks do not scan it again (4 million rows of hukou: 1.7 s), or counted."""
    def count(_load: int | None) -> dict:
        return asdict(profile_query(con, ds, SNAPSHOT_ROWS.format(code=ds.code), [snapshot]))

    return Profile(**wh.counted_once(con, ds.code, snapshot, _profile_how(ds), count))


def profile_tonight(con: duckdb.DuckDBPyConnection, ds: Dataset, snap: date | None) -> Profile:
    """The profile of the rows being stored tonight (`wh.tonight_rows_sql`). When most of them are
    rows of the snapshot of `snap` delivered again in place (`wh.IN_PLACE`), it is that snapshot's
    profile (kept with its load) less its rows not in place plus tonight's others: only those are
    read, not the four million hukou rows again through their join to the list of rows in place
    (1.5 s of a night's writer). Distinct IDs do not add up: an ID of the rows left or added counts
    as it would whole by whether a row in place bears it."""
    in_place = wh.in_place_count(con)
    if snap is None or not in_place:
        return profile_query(con, ds, wh.tonight_rows_sql(con, ds))
    before = profile_snapshot(con, ds, snap)
    if in_place * 2 < before.rows:
        return profile_query(con, ds, wh.tonight_rows_sql(con, ds))
    at = wh.snapshot_rows.at(ds.code, literal(snap))
    left = f"SELECT * FROM {at} d SEMI JOIN {wh.NOT_IN_PLACE} USING (source_row)"
    added = wh.tonight_rows_sql(con, ds, in_place=False)
    gone, came = (profile_query(con, ds, rows) for rows in (left, added))
    distinct = before.distinct_ids
    if ds.persons:
        c = ds.persons[0].id_column
        usable = f"{c}_status IN {USABLE_ID}"
        (g, n), = con.execute(f"""
            WITH g AS (SELECT DISTINCT {c} AS id FROM ({left}) WHERE {usable}),
                 n AS (SELECT DISTINCT {c} AS id FROM ({added}) WHERE {usable}),
                 kept AS (SELECT DISTINCT d.{c} AS id FROM {at} d ANTI JOIN {wh.NOT_IN_PLACE} USING (source_row)
                          WHERE d.{usable} AND d.{c} IN (SELECT id FROM g UNION SELECT id FROM n))
            SELECT (SELECT count(*) FROM g ANTI JOIN kept USING (id)), (SELECT count(*) FROM n ANTI JOIN kept USING (id))
            """).fetchall()
        distinct += n - g
    rows = before.rows - gone.rows + came.rows
    if not rows:
        return Profile(0, 0, 0, {})
    values = {}
    for col in _enums(ds):
        counts = dict(before.values.get(col, {}))
        for v, k in gone.values.get(col, {}).items():
            counts[v] = counts.get(v, 0) - k
        for v, k in came.values.get(col, {}).items():
            counts[v] = counts.get(v, 0) + k
        values[col] = {v: k for v, k in counts.items() if k}
    if not ds.persons:
        return Profile(rows, 0, 0, values)
    filled = {col: before.filled.get(col, 0) - gone.filled.get(col, 0) + came.filled.get(col, 0)
              for col in _person_columns(ds)}
    return Profile(rows, before.valid_ids - gone.valid_ids + came.valid_ids, distinct, values, filled)


def remember_profile(con: duckdb.DuckDBPyConnection, ds: Dataset, load_id: int, profile: Profile) -> None:
    """Keep the profile of the snapshot a load stores (the rows profiled before storing are the
    rows stored: the same counts)."""
    wh.remember_counts(con, load_id, _profile_how(ds), asdict(profile))


def first_reject(ds: Dataset, rejects: pl.DataFrame) -> tuple[str, str]:
    """Where the first rejected value is (`row N, column C ('v…')`, the value masked) and why."""
    first = rejects.row(0, named=True)
    kind = ds.column(first["column_name"]).kind if first["column_name"] in {c.name for c in ds.columns} else "text"
    return (f"row {first['source_row']}, column {first['column_name']} ({quote(first['value'], kind)})",
            first["reason"])


def _pct(x: float) -> str:
    return f"{x:.1%}"


def tail_cut(name: str, gone: int, when: date, limits: Limits) -> str:
    """Why a file whose last rows are gone is held (`warehouse.tail_gone`)."""
    return (f"{name}: the last {gone:,} rows of the snapshot of {when} are all missing tonight, while rows before "
            f"them came again (cut at a line?; limit tail_cut_rows {int(limits.tail_cut_rows)})")


def checks(ds: Dataset, result: Normalised, limits: Limits, last: tuple[date, Profile] | None,
           name: str, now: Profile | None = None) -> list[str]:
    """Why the file should be held (empty: plausible). Each reason says what was measured, against
    what and which setting. `now`: tonight's rows profiled already (else `result.rows` are)."""
    held: list[str] = []
    read = result.rows_read
    now = now if now is not None else profile_rows(ds, result.rows)
    rejected = result.rejects["source_row"].n_unique() if result.rejects.height else 0
    if read == 0:
        return [f"{name}: a header but no data rows"]
    if result.duplicates and result.duplicates / read > limits.max_duplicate_share:
        held.append(f"{name}: {result.duplicates:,} of {read:,} rows are exact duplicate rows "
                    f"({_pct(result.duplicates / read)}, limit max_duplicate_share {_pct(limits.max_duplicate_share)})")
    if rejected / read > limits.max_reject_share:
        where, reason = first_reject(ds, result.rejects)
        held.append(f"{name}: {rejected:,} of {read:,} rows rejected ({_pct(rejected / read)}, limit max_reject_share "
                    f"{_pct(limits.max_reject_share)}); first: {where}, {reason}")
    for col in _person_columns(ds):
        if ds.column(col).required and now.rows and now.filled.get(col, 0) == 0:
            held.append(f"{name}: the required column {col} ({ds.column(col).header}) is empty in every row")
    if ds.persons and now.rows and now.valid_share < limits.min_valid_id_share:
        held.append(f"{name}: only {_pct(now.valid_share)} of rows have a valid ID number, or one Excel cut to 15 digits (limit min_valid_id_share "
                    f"{_pct(limits.min_valid_id_share)}); are the ID and name columns swapped, or IDs stored as numbers?")
    if last is None:
        return held
    when, before = last
    if before.rows:
        ratio = now.rows / before.rows
        if ratio < limits.min_row_ratio:
            held.append(f"{name}: {now.rows:,} rows, fewer than {_pct(limits.min_row_ratio)} (min_row_ratio) of the "
                        f"{before.rows:,} rows of the snapshot of {when} ({_pct(ratio)}; truncated?)")
        elif ratio > limits.max_row_ratio:
            held.append(f"{name}: {now.rows:,} rows, more than {_pct(limits.max_row_ratio)} (max_row_ratio) of the "
                        f"{before.rows:,} rows of the snapshot of {when} ({_pct(ratio)}; delivered twice?)")
    if ds.persons and before.rows and now.rows:
        # Shares of a small file move by whole rows: a drop must also be MIN_SHORTFALL rows.
        drop = before.valid_share - now.valid_share
        if drop > limits.max_valid_id_drop and drop * now.rows >= MIN_SHORTFALL:
            held.append(f"{name}: rows with a valid ID number (or one Excel cut to 15 digits) fell from {_pct(before.valid_share)} to "
                        f"{_pct(now.valid_share)} since {when} (limit max_valid_id_drop {limits.max_valid_id_drop:.0%} "
                        "points)")
        drop = before.distinct_share - now.distinct_share
        if drop > limits.max_distinct_id_drop and drop * now.rows >= MIN_SHORTFALL:
            held.append(f"{name}: distinct ID numbers per row fell from {_pct(before.distinct_share)} to "
                        f"{_pct(now.distinct_share)} since {when} ({now.distinct_ids:,} against {before.distinct_ids:,}; "
                        f"limit max_distinct_id_drop {limits.max_distinct_id_drop:.0%} points)")
    if before.rows and now.rows:
        for col, counts in before.values.items():
            tonight = now.values.get(col, {})
            for value in sorted(set(counts) | set(tonight)):
                was, now_share = counts.get(value, 0) / before.rows, tonight.get(value, 0) / now.rows
                if abs(now_share - was) > limits.max_value_shift and abs(now_share - was) * now.rows >= MIN_SHORTFALL:
                    header = ds.column(col).header
                    held.append(f"{name}: {col} ({header}) = {value} in {_pct(now_share)} of rows, {_pct(was)} in the "
                                f"snapshot of {when} (limit max_value_shift {limits.max_value_shift:.0%} points)")
                    break
    return held
