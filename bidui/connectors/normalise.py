"""Delivered text → canonical typed columns, with a reason for every value that cannot be read.

All of it is polars expressions over whole columns (a large night is ten million rows). A row
with any unreadable value is rejected (kept in the rejects table with file, row, column, value
and reason); invalid ID numbers are not a reason: they are kept with their status, for matching.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from bidui.connectors.mapping import Mapping
from bidui.connectors.readers import RawTable
from bidui.datasets import VEHICLE_TYPE_NAMES, Column, Dataset
from bidui.ids import normalise_id_series
from bidui.names import clean_name_expr
from bidui.text import nfkc_series

DATE_FORMS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y年%m月%d日", "%Y.%m.%d")
_DATE_SHAPE = r"^\d{4}([-/.年])\d{1,2}([-/.月])\d{1,2}日?$|^\d{8}$"
EXCEL_EPOCH_OFFSET = (date(1970, 1, 1) - date(1899, 12, 30)).days  # Excel day 25569 is 1970-01-01
SQL_TYPES = {"date": "DATE", "year": "INTEGER", "money": "DOUBLE", "number": "DOUBLE"}


@dataclass
class Normalised:
    rows: pl.DataFrame  # accepted rows: source_row, canonical columns, *_raw, *_status, extra_json
    rejects: pl.DataFrame  # source_row, column_name, value, reason
    rows_read: int


def _clean(s: pl.Series) -> pl.Series:
    """NFKC, trimmed, empty → null."""
    t = nfkc_series(s).str.strip_chars()
    return t.set((t == "").fill_null(False), None)


def _nulls(n: int) -> pl.Series:
    return pl.repeat(None, n, dtype=pl.String, eager=True)


def _reason(mask: pl.Series, text: str | pl.Series) -> pl.Series:
    """`text` where mask is true, else null."""
    mask = mask.fill_null(False)
    if isinstance(text, str):
        return _nulls(len(mask)).set(mask, text)
    return text.set(~mask, None)


def _reason_with_value(mask: pl.Series, t: pl.Series, text: str) -> pl.Series:
    """`text` followed by the value where mask is true, else null (built only for those rows)."""
    idx = mask.fill_null(False).arg_true()
    return _nulls(len(t)).scatter(idx, text + t.gather(idx)) if len(idx) else _nulls(len(t))


def parse_dates(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Every spec date form and Excel serials; the file's most common form is tried first and
    the others only on what it could not read."""
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
        serial = serial.set((~serial.is_between(1, 2958465) | part.str.contains(r"^\d{8}$")).fill_null(True), None)
        as_date = (serial - EXCEL_EPOCH_OFFSET).cast(pl.Int32).cast(pl.Date)
        value = value.scatter(todo, as_date)
    failed = value.is_null() & t.is_not_null()
    reason = _nulls(len(t))
    idx = failed.arg_true()
    if len(idx):
        shaped = t.gather(idx).str.contains(_DATE_SHAPE)
        why = pl.Series(["not a date in an accepted form"] * len(idx), dtype=pl.String).set(shaped, "impossible date")
        reason = reason.scatter(idx, why)
    out_of_range = (value < date(1880, 1, 1)) | (value > date(2100, 12, 31))
    reason = reason.set(out_of_range.fill_null(False), "date out of range")
    return value, reason


def parse_number(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    t = t.str.replace_all(r"[,，\s]|元$|万元$", "")
    value = t.cast(pl.Float64, strict=False)
    return value, _reason(t.is_not_null() & value.is_null(), "not a number")


def parse_year(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    t = t.str.replace(r"年$", "").str.replace(r"\.0+$", "")
    value = t.cast(pl.Int32, strict=False)
    return value, _reason(t.is_not_null() & (value.is_null() | ~value.is_between(1900, 2100)), "not a year")


def parse_code(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    t = t.str.replace(r"\.0+$", "")
    return t, _reason(t.is_not_null() & ~t.str.contains(r"^\d{12}$"), "not a 12-digit division code")


def parse_enum(t: pl.Series, c: Column) -> tuple[pl.Series, pl.Series]:
    mapping = {v: v for v in c.values} | c.aliases
    mapping |= {k.upper(): v for k, v in mapping.items()} | {k.lower(): v for k, v in mapping.items()}
    value = t.replace_strict(mapping, default=None, return_dtype=pl.String)
    bad = t.is_not_null() & value.is_null()
    return value, _reason_with_value(bad, t, f"unknown value (expected {' / '.join(c.values)}): ")


def parse_vehicle_type(t: pl.Series) -> tuple[pl.Series, pl.Series]:
    upper = t.str.to_uppercase()
    code = t.replace_strict(VEHICLE_TYPE_NAMES, default=None, return_dtype=pl.String)
    code = code.zip_with(~upper.str.contains(r"^[A-Z]\d{2}$").fill_null(False), upper)
    return code, _reason_with_value(t.is_not_null() & code.is_null(), t, "unknown vehicle type (GA 802 code or name): ")


def normalise(ds: Dataset, mapping: Mapping, raw: RawTable) -> Normalised:
    """Typed canonical rows and the rejects of one delivered table."""
    raw.data = raw.data.rechunk()  # many small chunks make every string kernel slow
    n = raw.data.height
    cols: dict[str, pl.Series] = {"source_row": pl.int_range(1, n + 1, dtype=pl.Int64, eager=True)}
    reasons: list[tuple[str, pl.Series, pl.Series]] = []  # (column, reason, value as delivered)
    nothing = _nulls(n)
    for c in ds.columns:
        pos = mapping.positions.get(c.name)
        src = raw.data[f"c{pos}"] if pos is not None else nothing
        if c.kind == "id":
            norm, status = normalise_id_series(src)
            cols[f"{c.name}_raw"] = src.str.strip_chars()
            cols[c.name] = norm.set(norm == "", None)
            cols[f"{c.name}_status"] = status
            continue
        t = _clean(src)
        reason = None
        if c.kind == "name":
            value = pl.select(clean_name_expr(pl.lit(t))).to_series()
            cols[f"{c.name}_raw"] = t
            value = value.set(value == "", None)
        elif c.kind == "date":
            value, reason = parse_dates(t)
        elif c.kind in ("money", "number"):
            value, reason = parse_number(t)
        elif c.kind == "year":
            value, reason = parse_year(t)
        elif c.kind == "code":
            value, reason = parse_code(t)
        elif c.kind == "enum":
            value, reason = parse_enum(t, c)
        elif ds.code == "vehicles" and c.name == "vehicle_type":
            cols["vehicle_type_code"], reason = parse_vehicle_type(t)
            value = t
        else:
            value = t
        cols[c.name] = value
        if c.required:
            missing = _reason(t.is_null(), "required value missing")
            reason = missing if reason is None else missing.fill_null(reason)
        if reason is not None:
            reasons.append((c.name, reason, t))
    cols["extra_json"] = _extra_json(raw, mapping.extra)
    out = pl.DataFrame(cols)
    parts = [pl.DataFrame({"source_row": cols["source_row"], "value": value, "reason": reason})
             .filter(pl.col("reason").is_not_null()).select("source_row", pl.lit(name).alias("column_name"), "value", "reason")
             for name, reason, value in reasons]
    rejects = (pl.concat(parts) if parts else pl.DataFrame(schema={"source_row": pl.Int64, "column_name": pl.String,
                                                                   "value": pl.String, "reason": pl.String}))
    if rejects.height:
        out = out.filter(~pl.col("source_row").is_in(rejects["source_row"].unique().implode()))
    return Normalised(out, rejects.sort("source_row", maintain_order=True), n)


def _extra_json(raw: RawTable, extra: tuple[int, ...]) -> pl.Series:
    """The delivered columns that map to no canonical column, as JSON under their own headers, so
    nothing a department sends is dropped. Mapped columns are stored typed (IDs and names also as
    delivered); copying them again as text doubled the cost of storing a snapshot."""
    n = raw.data.height
    if not extra:
        return _nulls(n)
    headers = {i: raw.header[i] or f"column{i + 1}" for i in extra}
    return raw.data.select(pl.struct([pl.col(f"c{i}").alias(h) for i, h in headers.items()])
                           .struct.json_encode()).to_series()


def table_columns(ds: Dataset) -> list[tuple[str, str]]:
    """The warehouse columns of a dataset table after the common ones, with SQL types."""
    cols: list[tuple[str, str]] = [("source_row", "BIGINT")]
    for c in ds.columns:
        if c.kind == "id":
            cols += [(f"{c.name}_raw", "VARCHAR"), (c.name, "VARCHAR"), (f"{c.name}_status", "VARCHAR")]
        elif c.kind == "name":
            cols += [(f"{c.name}_raw", "VARCHAR"), (c.name, "VARCHAR")]
        else:
            if ds.code == "vehicles" and c.name == "vehicle_type":
                cols.append(("vehicle_type_code", "VARCHAR"))
            cols.append((c.name, SQL_TYPES.get(c.kind, "VARCHAR")))
    cols.append(("extra_json", "VARCHAR"))
    return cols
