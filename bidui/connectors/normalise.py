"""Delivered text → canonical typed columns, with a reason for every value that cannot be read.

All of it is polars expressions over whole columns (a large night is ten million rows). Every
unreadable or implausible value gets a reject record (file, row, column, value, reason). A rejected
value never removes a person: the row keeps its identity (ID number and name) with that value
null and the column named in `rejected_columns`, so the evidence it carried does not vanish (the
rules treat such a person's clues as undecided tonight); only a row with no usable identity is
dropped. Invalid ID numbers are not a reason: they are kept with their status, for matching.
Exact duplicate rows are counted and collapsed to their first occurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import date, timedelta
from functools import cache

import polars as pl

from bidui.connectors.mapping import Mapping
from bidui.connectors.readers import RawTable
from bidui.connectors.stored import Known, raw_halves_sql
from bidui.datasets import VEHICLE_TYPE_NAMES, Column, Dataset
from bidui.ids import normalise_id_series
from bidui.names import clean_name_expr
from bidui.scratch import scratch
from bidui.text import nfkc_series

DATE_FORMS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d")
_DATE_SHAPE = r"^\d{4}([-/.年])\d{1,2}([-/.月])\d{1,2}日?$|^\d{8}$"
EXCEL_EPOCH_OFFSET = (date(1970, 1, 1) - date(1899, 12, 30)).days  # Excel day 25569 is 1970-01-01


@dataclass(frozen=True)
class ValueLimits:
    """What a value may be (`[ingest]` in bidui.toml)."""

    money_ceiling: float = 1e10  # as delivered (yuan or 万元): more is a unit or typing error
    date_margin_days: int = 7  # event dates may lie this far past the night (a clock set ahead)
    max_name_chars: int = 50  # the national limit for name fields
    max_text_chars: int = 2000

    @classmethod
    def from_config(cls, cfg: dict) -> ValueLimits:
        ing, default = cfg.get("ingest", {}), cls()
        return cls(**{f.name: type(getattr(default, f.name))(ing[f.name]) for f in fields(cls) if f.name in ing})


EARLIEST_EVENT = date(1900, 1, 1)
MAX_ID_CHARS = 40
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # tab, LF and CR are whitespace, trimmed elsewhere


@dataclass
class Normalised:
    rows: pl.DataFrame  # kept rows: source_row, canonical columns, *_raw, *_status, extra_json, rejected_columns,
    # and raw_hi, raw_lo (the delivered row's fingerprint, `raw_row_hashes`; null for a row with a rejected value)
    rejects: pl.DataFrame  # source_row, column_name, value, reason (reasons never quote the value)
    rows_read: int
    duplicates: int = 0  # exact duplicate rows collapsed
    dropped: int = 0  # rows without usable identity, not kept
    # Rows delivered exactly as in the snapshot in force, not normalised again (`Known`): their
    # source_row tonight and fingerprint; ingest takes their values from that snapshot.
    carried: pl.DataFrame | None = None
    carried_from: date | None = None
    # Of the rows carried, those at the same row as in that snapshot, read from the same line (most
    # of a file sent again; bidui.connectors.csv_lines): not listed in `carried` but as runs of
    # source rows (`first_row`, `last_row`), and the load that stored the snapshot. Four million
    # hukou rows listed one by one cost a second to hand from a worker to the writer and another
    # for the writer to find where they are.
    in_place: pl.DataFrame | None = None
    carried_load: int | None = None
    # The file's form when its rows carry the fingerprints of their lines (`line_hi`, `line_lo`;
    # bidui.connectors.csv_lines), else None.
    line_form: str | None = None


# What the normaliser's outcome for a row depends on besides the row: this code (and the ID and
# name cleaning it calls), the dataset's columns and the value limits. Part of every fingerprint,
# so that a changed normaliser or limit never reuses a row normalised by the one before.
_NORMALISER_SOURCES = ("bidui.connectors.normalise", "bidui.ids", "bidui.names", "bidui.text", "bidui.datasets")


@cache
def _sources_digest() -> bytes:
    import hashlib
    import importlib
    import inspect

    h = hashlib.sha256()
    for name in _NORMALISER_SOURCES:
        h.update(inspect.getsource(importlib.import_module(name)).encode())
    return h.digest()


def _normaliser_digest(ds: Dataset, limits: ValueLimits) -> str:
    import hashlib

    h = hashlib.sha256(_sources_digest())
    h.update(repr((ds.code, [(c.name, c.kind, c.required) for c in ds.columns], limits)).encode())
    return h.hexdigest()[:32]


def raw_row_hashes(ds: Dataset, mapping: Mapping, raw: RawTable, data: pl.DataFrame, limits: ValueLimits) -> pl.DataFrame:
    """Each delivered row's fingerprint (`raw_hi`, `raw_lo`: the MD5 of its text as the normaliser
    reads it, in the dataset's column order, unmapped columns under their headers, and the
    normaliser's digest). The same row in another form (CSV or XLSX, another encoding, columns
    reordered, a header synonym) has the same fingerprint; MD5, not a library's own row hash, so
    that it is the same in every version."""
    # As a JSON list (control characters escaped, null apart from ""): no cell can pass for the
    # boundary between two, as it could with separators. Mapped columns in the dataset's order;
    # unmapped ones each after the key `extra_json` stores it by (a blank header's names its place).
    # (The keys and the normaliser's digest travel as columns: no header text is written into SQL.)
    keys = _extra_keys(raw, mapping.extra)
    parts = [f'"c{p}"' if (p := mapping.positions.get(c.name)) is not None else "NULL::VARCHAR" for c in ds.columns]
    for i in keys:
        parts += [f'"k{i}"', f'"c{i}"']
    frame = data.with_columns(pl.lit(_normaliser_digest(ds, limits)).alias("digest"),
                              *(pl.lit(key).alias(f"k{i}") for i, key in keys.items()))
    with scratch() as con:
        con.register("d", frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        fingerprint = "md5_number(digest || to_json(list_value(" + ", ".join(parts) + ")))"
        return con.sql(f"SELECT {raw_halves_sql(fingerprint)} FROM d").pl()


def _clean(s: pl.Series) -> pl.Series:
    """NFKC, trimmed, empty → null."""
    t = nfkc_series(s).str.strip_chars()
    return _blank(t, t == "")


def _nulls(n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True)


# `Series.set(mask, value)` builds its result element by element: on a hukou file's four million
# rows it took 0.04–0.56 s a call, 2.6 s of the file's 15 s in all; `when` takes a few milliseconds.
def _put(s: pl.Series, mask: pl.Series, value: str | None) -> pl.Series:
    """`s` with `value` where `mask` is true (a null in `mask` keeps what `s` holds)."""
    return pl.select(pl.when(pl.lit(mask)).then(pl.lit(value, s.dtype)).otherwise(pl.lit(s))).to_series().alias(s.name)


def _blank(s: pl.Series, mask: pl.Series) -> pl.Series:
    """`s` with null where `mask` is true."""
    return _put(s, mask, None)


def _reason(mask: pl.Series, text: str | pl.Series) -> pl.Series:
    """`text` where mask is true, else null."""
    then = pl.lit(text, pl.String) if isinstance(text, str) else pl.lit(text)
    return pl.select(pl.when(pl.lit(mask)).then(then)).to_series().alias("literal")


def parse_dates(t: pl.Series, latest: date = date(2100, 12, 31)) -> tuple[pl.Series, pl.Series]:
    """Every spec date form and Excel serials; the file's most common form is tried first and
    the others only on what it could not read. Every date here is of an event that happened (a
    birth, a death, a registration): from 1900 to `latest` (the night plus a margin)."""
    sample = t.drop_nulls().head(200)
    forms = sorted(DATE_FORMS, key=lambda f: -sample.str.to_date(f, strict=False).is_not_null().sum())
    value = t.str.to_date(forms[0], strict=False)
    for form in forms[1:]:
        todo = (value.is_null() & t.is_not_null()).arg_true()
        if len(todo) == 0:
            break
        value = value.scatter(todo, t.gather(todo).str.to_date(form, strict=False))
    todo = (value.is_null() & t.is_not_null()).arg_true()
    if len(todo):
        # An Excel serial (a date cell read as its number): 1 … 2958465, with or without ".0".
        part = t.gather(todo)
        serial = part.str.extract(r"^(\d{1,7})(?:\.0+)?$", 1).cast(pl.Int64, strict=False)
        serial = _blank(serial, (~serial.is_between(1, 2958465) | part.str.contains(r"^\d{8}$")).fill_null(True))
        as_date = (serial - EXCEL_EPOCH_OFFSET).cast(pl.Int32).cast(pl.Date)
        value = value.scatter(todo, as_date)
    failed = value.is_null() & t.is_not_null()
    reason = _nulls(len(t))
    idx = failed.arg_true()
    if len(idx):
        shaped = t.gather(idx).str.contains(_DATE_SHAPE)
        why = _put(pl.Series(["not a date in an accepted form"] * len(idx), dtype=pl.String), shaped, "impossible date")
        reason = reason.scatter(idx, why)
    reason = _put(reason, value < EARLIEST_EVENT, f"date before {EARLIEST_EVENT.year}")
    reason = _put(reason, value > latest, f"date after {latest.isoformat()} (in the future)")
    return value, reason


def parse_number(t: pl.Series, ceiling: float = math.inf) -> tuple[pl.Series, pl.Series]:
    """Amounts and areas: finite, not negative, at most `ceiling`."""
    t = t.str.replace_all(r"[,，\s]|元$|万元$", "")
    value = t.cast(pl.Float64, strict=False)
    reason = _reason(t.is_not_null() & value.is_null(), "not a number")
    reason = reason.fill_null(_reason(value.is_nan() | value.is_infinite(), "not a finite number"))
    reason = reason.fill_null(_reason(value < 0, "negative"))
    reason = reason.fill_null(_reason(value > ceiling, f"over the ceiling of {ceiling:,.0f}"))
    return _blank(value, reason.is_not_null()), reason


def parse_year(t: pl.Series, latest: int = 2100) -> tuple[pl.Series, pl.Series]:
    t = t.str.replace(r"年$", "").str.replace(r"\.0+$", "")
    value = t.cast(pl.Int32, strict=False)
    return value, _reason(t.is_not_null() & (value.is_null() | ~value.is_between(1900, latest)), "not a year")


def parse_code(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    t = t.str.replace(r"\.0+$", "")
    return t, _reason(t.is_not_null() & ~t.str.contains(r"^\d{12}$"), "not a 12-digit division code")


def parse_enum(t: pl.Series, c: Column) -> tuple[pl.Series, pl.Series]:
    mapping = {v: v for v in c.values} | c.aliases
    mapping |= {k.upper(): v for k, v in mapping.items()} | {k.lower(): v for k, v in mapping.items()}
    value = t.replace_strict(mapping, default=None, return_dtype=pl.String)
    bad = t.is_not_null() & value.is_null()
    return value, _reason(bad, f"unknown value (expected {' / '.join(c.values)})")


def parse_vehicle_type(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    upper = t.str.to_uppercase()
    code = t.replace_strict(VEHICLE_TYPE_NAMES, default=None, return_dtype=pl.String)
    code = code.zip_with(~upper.str.contains(r"^[A-Z]\d{2}$").fill_null(False), upper)
    return code, _reason(t.is_not_null() & code.is_null(), "unknown vehicle type (GA 802 code or name)")


def known_mask(hashes: pl.DataFrame, known: pl.DataFrame) -> pl.Series:
    """True for each row of `hashes` whose fingerprint (`raw_hi`, `raw_lo`) `known` holds (its
    repeats allowed). DuckDB's semi join, by row number: a polars left join on the two halves
    took three times the CPU for the four million rows of a hukou file delivered again."""
    with scratch() as con:
        con.register("h", hashes.select("raw_hi", "raw_lo").with_row_index("i").to_arrow())
        con.register("k", known.select("raw_hi", "raw_lo").to_arrow())
        found = con.sql("SELECT i FROM h SEMI JOIN k USING (raw_hi, raw_lo)").pl()["i"]
    return pl.repeat(False, hashes.height, dtype=pl.Boolean, eager=True).scatter(found, True)


def _empty_as_null(data: pl.DataFrame) -> pl.DataFrame:
    """An empty cell as one value whatever the form: a CSV's quoted "" reads as an empty text, an
    empty field or a workbook's empty cell as nothing, and the same row sent in the other form read
    as changed (a data engineer's walk, 2026-12-06: 新增 5，删除 3 for 2 new rows). Only the columns
    holding an empty text are rewritten."""
    empty = [c for c, t in data.schema.items() if t == pl.String and (data[c] == "").any()]
    return data.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in empty) if empty else data


def normalise(ds: Dataset, mapping: Mapping, raw: RawTable, night: date | None = None,
              limits: ValueLimits = ValueLimits(), known: Known | None = None,
              rows_of: tuple[pl.Series, int] | None = None) -> Normalised:
    """Typed canonical rows and the rejects of one delivered table (`night`: the run date, the
    latest an event date may be, plus the margin). Rows whose fingerprint `known` holds are not
    normalised: they are listed in `carried` (see `Known`). `rows_of`: the table holds some rows
    of a file (`csv_lines`): their data row numbers in it, and how many rows it has."""
    latest = (night or date.today()) + timedelta(days=limits.date_margin_days)
    data = _empty_as_null(raw.data).rechunk()  # many small chunks make every string kernel slow
    if rows_of is None:
        read = data.height
        source_row = pl.int_range(1, read + 1, dtype=pl.Int64, eager=True)
    else:
        source_row, read = rows_of[0].cast(pl.Int64), rows_of[1]
    errors = _error_cells(raw)
    hashes = raw_row_hashes(ds, mapping, raw, data, limits)
    # Rows are the same when their cells are, error values included (an error reads as empty).
    first = _first_of_each_row(data if errors is None else data.with_columns(_row_errors(errors, source_row)),
                               hashes["raw_hi"])
    duplicates = 0 if first is None else data.height - int(first.sum())
    if duplicates:
        data, source_row, hashes = data.filter(first), source_row.filter(first), hashes.filter(first)
    carried = None
    # A row normalised on an earlier night gives the same values tonight: its outcome depends only
    # on its text, the normaliser and the limits (in the fingerprint) and on the latest date an
    # event may have, which only grows night after night (so `Known` is never of a later night),
    # and a row with a rejected value (the one thing a later date could change) has no fingerprint.
    if known is not None and known.hashes.height and (night is None or known.snapshot <= night):
        is_known = known_mask(hashes, known.hashes)
        if errors is not None:  # an error cell reads as empty: the row is not the one stored with it empty
            is_known = is_known & ~source_row.is_in(errors["source_row"].implode())
        if is_known.any():
            carried = pl.DataFrame({"source_row": source_row.filter(is_known)}).hstack(hashes.filter(is_known))
            data, source_row, hashes = data.filter(~is_known), source_row.filter(~is_known), hashes.filter(~is_known)
    n = data.height
    cols: dict[str, pl.Series] = {"source_row": source_row, "raw_hi": hashes["raw_hi"], "raw_lo": hashes["raw_lo"]}
    reasons: list[tuple[str, pl.Series, pl.Series]] = []  # (column, reason, value as delivered)
    nothing = _nulls(n)
    for c in ds.columns:
        pos = mapping.positions.get(c.name)
        src = data[f"c{pos}"] if pos is not None else nothing
        # The Excel error value (#N/A…) a cell held, where it held one: rejected, not read as empty.
        error = _column_errors(errors, pos, source_row)
        if c.kind == "id":
            # No ID number is longer than 18 characters with its spaces; control characters are
            # not typing. Such a value is rejected, not kept as an "invalid ID" to match on.
            bad = _reason(src.str.contains(_CONTROL), "control character in an ID number").fill_null(
                _reason(src.str.len_chars() > MAX_ID_CHARS, f"longer than {MAX_ID_CHARS} characters"))
            if bad.null_count() < n:
                src = _blank(src, bad.is_not_null())
                reasons.append((c.name, bad, nothing))  # the value is not worth keeping
            if error is not None:
                reasons.append((c.name, _reason(error.is_not_null(), EXCEL_ERROR), error))
            norm, status = normalise_id_series(src)
            cols[f"{c.name}_raw"] = src.str.strip_chars()
            cols[c.name] = _blank(norm, norm == "")
            cols[f"{c.name}_status"] = status
            continue
        t = _clean(src)
        reason = None
        if c.kind == "name":
            value = pl.select(clean_name_expr(pl.lit(t))).to_series()
            cols[f"{c.name}_raw"] = t
            value = _blank(value, value == "")
            reason = _reason(t.str.contains(_CONTROL), "control character in a name")
            reason = reason.fill_null(_reason(value.str.len_chars() > limits.max_name_chars,
                                              f"longer than {limits.max_name_chars} characters"))
        elif c.kind == "date":
            value, reason = parse_dates(t, latest)
        elif c.kind == "money":
            value, reason = parse_number(t, limits.money_ceiling)
        elif c.kind == "number":
            value, reason = parse_number(t)
        elif c.kind == "year":
            value, reason = parse_year(t, latest.year + 1)
        elif c.kind == "code":
            value, reason = parse_code(t)
        elif c.kind == "enum":
            value, reason = parse_enum(t, c)
        elif ds.code == "vehicles" and c.name == "vehicle_type":
            cols["vehicle_type_code"], reason = parse_vehicle_type(t)
            value = t
        else:
            value = t
            reason = _reason(t.str.len_chars() > limits.max_text_chars, f"longer than {limits.max_text_chars:,} characters")
        if c.required:
            missing = _reason(t.is_null(), "required value missing")
            reason = missing if reason is None else missing.fill_null(reason)
        if error is not None:
            shown = _reason(error.is_not_null(), EXCEL_ERROR)
            reason = shown if reason is None else shown.fill_null(reason)
            t = error.fill_null(t)  # the value as delivered, in the rejects
        if reason is not None and reason.null_count() < n:
            bad = reason.is_not_null()
            cols[c.name] = _blank(value, bad)
            if c.name == "vehicle_type":
                cols["vehicle_type_code"] = _blank(cols["vehicle_type_code"], bad)
            if c.kind == "name":
                cols[f"{c.name}_raw"] = _blank(cols[f"{c.name}_raw"], bad)  # a NUL or 3 M characters kept nowhere
            reasons.append((c.name, reason, t))
        else:
            cols[c.name] = value
    cols["extra_json"] = _extra_json(raw, data, mapping.extra)
    if not reasons:
        cols["rejected_columns"] = nothing
    out = pl.DataFrame(cols)
    parts = [pl.DataFrame({"source_row": cols["source_row"], "value": value, "reason": reason})
             .filter(pl.col("reason").is_not_null()).select("source_row", pl.lit(name).alias("column_name"), "value", "reason")
             for name, reason, value in reasons]
    rejects = (pl.concat(parts) if parts else pl.DataFrame(schema={"source_row": pl.Int64, "column_name": pl.String,
                                                                   "value": pl.String, "reason": pl.String}))
    # Values past any sane length are not kept in the rejects either (the file still holds them).
    rejects = rejects.with_columns(pl.col("value").str.slice(0, 200))
    if reasons:
        bad_columns = rejects.group_by("source_row").agg(
            pl.col("column_name").unique().sort().str.join(",").alias("rejected_columns"))
        out = out.join(bad_columns, on="source_row", how="left", maintain_order="left")
    keep = _identity_usable(ds, out)
    dropped = out.height - int(keep.sum())
    if dropped:
        out = out.filter(keep)
    rejected = pl.col("rejected_columns").is_not_null()
    out = out.with_columns(pl.when(~rejected).then(pl.col(c)).alias(c) for c in ("raw_hi", "raw_lo"))
    return Normalised(out, rejects.sort("source_row", maintain_order=True), read, duplicates, dropped, carried,
                      known.snapshot if carried is not None and known is not None else None)


EXCEL_ERROR = "Excel error value (a formula's result)"


def _error_cells(raw: RawTable) -> pl.DataFrame | None:
    """The delivery's error cells (`RawTable.error_cells`) as (source_row, column, value); None when none."""
    if not raw.error_cells:
        return None
    (rows, columns), values = zip(*raw.error_cells, strict=True), list(raw.error_cells.values())
    return pl.DataFrame({"source_row": [r + 1 for r in rows], "column": list(columns), "value": values},
                        schema={"source_row": pl.Int64, "column": pl.Int64, "value": pl.String})


def _row_errors(errors: pl.DataFrame, source_row: pl.Series) -> pl.Series:
    """Each row's error cells as one text (null for a row without any), to compare rows by."""
    by_row = errors.group_by("source_row").agg(
        pl.format("{}:{}", "column", "value").sort_by("column").str.join("\x1f").alias("_errors"))
    return pl.DataFrame({"source_row": source_row}).join(by_row, on="source_row", how="left",
                                                         maintain_order="left")["_errors"]


def _column_errors(errors: pl.DataFrame | None, pos: int | None, source_row: pl.Series) -> pl.Series | None:
    """The error values of one delivered column at these rows (null elsewhere); None when it has none."""
    if errors is None or pos is None:
        return None
    mine = errors.filter(pl.col("column") == pos).select("source_row", "value")
    if mine.is_empty():
        return None
    at = pl.DataFrame({"source_row": source_row}).join(mine, on="source_row", how="left", maintain_order="left")["value"]
    return at if at.null_count() < len(at) else None


def _first_of_each_row(data: pl.DataFrame, fingerprints: pl.Series) -> pl.Series | None:
    """True for the first occurrence of each distinct row, or None when no row repeats. The rows'
    fingerprints (half of each, `raw_row_hashes`: rows that differ have different ones unless
    they collide) only say quickly that none does (the usual night: on the large hukou file
    0.15 s, where hashing every cell again took 1.2 s); repeats are then found exactly, so a
    collision can never drop a row."""
    if data.height < 2 or data.width == 0:
        return None
    if fingerprints.n_unique() == data.height:
        return None
    return data.select(pl.struct(pl.all()).is_first_distinct()).to_series()


def _identity_usable(ds: Dataset, rows: pl.DataFrame) -> pl.Series:
    """Rows that still say who or what they are about: for a dataset naming a person, an ID number
    (valid or not: matching uses what survives) or a name, and its key columns (a register
    household's code); for the others, every required value."""
    keys = [pl.col(k).is_not_null() for k in ds.keys]
    if ds.persons:
        ok = pl.lit(False)
        for ref in ds.persons:
            ok = ok | (pl.col(f"{ref.id_column}_status") != "missing") | pl.col(ref.name_column).is_not_null()
        return rows.select(pl.all_horizontal([ok, *keys]).alias("ok"))["ok"]
    required = [pl.col(c.name).is_not_null() for c in ds.columns if c.required]
    return rows.select(pl.all_horizontal(required or [pl.lit(True)]).alias("ok"))["ok"]


def _extra_json(raw: RawTable, data: pl.DataFrame, extra: tuple[int, ...]) -> pl.Series:
    """The delivered columns that map to no canonical column, as JSON under their own headers, so
    nothing a department sends is dropped. Mapped columns are stored typed (IDs and names also as
    delivered); copying them again as text doubled the cost of storing a snapshot."""
    n = data.height
    if not extra:
        return _nulls(n)
    return data.select(pl.struct([pl.col(f"c{i}").alias(h) for i, h in _extra_keys(raw, extra).items()])
                           .struct.json_encode()).to_series()


def _extra_keys(raw: RawTable, extra: tuple[int, ...]) -> dict[int, str]:
    """Each unmapped column's key in `extra_json`: its header, or its place when it has none; two
    columns may carry one header text (two bare "（万元）"): each its own key."""
    keys: dict[int, str] = {}
    for i in extra:
        h = raw.header[i] or f"column{i + 1}"
        keys[i] = h if h not in keys.values() else f"{h} (column {i + 1})"
    return keys
