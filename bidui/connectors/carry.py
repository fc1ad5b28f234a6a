"""Rows carried from the last delivery: only new or changed rows are normalised (issue 18, item 1).

Departments send full extracts every night, and a night changes well under 1% of rows; yet
normalising (NFKC, ID checks, name cleaning, dates) is most of the cost of ingest. Each row's
canonical content — its text in the dataset's own column order, whatever the delivery's headers,
column order, encoding or row order, and its unmapped columns under their headers — is hashed
(MD5, computed by DuckDB: stable across versions, unlike polars' row hashes), and a row whose hash
the previous delivery of the dataset already normalised without a reject takes that result
(`carry/<dataset>.parquet` beside the warehouse), with its new row number. Every other row is
normalised as before. Normalising is row by row, so the outcome is exactly what normalising every
row would give (`tests/test_carry.py` checks it night by night, file forms changing):

- exact duplicate rows are found on the whole file first, as `normalise` does;
- a row rejected for any value is normalised again each night (a date past the night may become
  readable as nights pass; a row that had none cannot gain one, since the latest allowed date only
  grows);
- the memo is used only for a night on or after the one it was made for, and only while the code
  and settings that normalise (this module's `validity`) are unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from bidui.connectors.mapping import Mapping
from bidui.connectors.normalise import Normalised, ValueLimits, _first_of_each_row, normalise
from bidui.connectors.readers import RawTable
from bidui.datasets import Dataset

MEMO_FORMAT = 1
KEY = "_row_md5"


@dataclass
class Carried:
    """What the memo saved: rows taken from it, rows normalised tonight, rows of the previous
    delivery not delivered again."""

    carried: int = 0
    normalised: int = 0
    removed: int = 0
    used: bool = False  # a valid memo was there


def validity(ds: Dataset, limits: ValueLimits) -> str:
    """What the memo's results depend on: the normalising code, the dataset's definition and the
    value limits. Any change makes every memo stale."""
    from bidui import ids, names, text
    from bidui.connectors import normalise as norm

    parts = [str(MEMO_FORMAT), repr(ds), repr(limits)] + [inspect.getsource(m) for m in (norm, ids, names, text)]
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()


def row_keys(raw: RawTable, mapping: Mapping, ds: Dataset, data: pl.DataFrame) -> pl.Series:
    """The MD5 of each row's canonical content (hex)."""
    nothing = pl.lit("\x00")
    parts = [pl.col(f"c{mapping.positions[c.name]}").fill_null("\x00") if c.name in mapping.positions else nothing
             for c in ds.columns]
    # Unmapped columns go to the row's extra record under their headers, in file order.
    parts += [pl.lit(f"{raw.header[i]}\x1d") + pl.col(f"c{i}").fill_null("\x00") for i in mapping.extra]
    text = data.select(pl.concat_str(parts or [nothing], separator="\x1f").alias("t"))
    con = duckdb.connect()
    try:
        con.register("rows_text", text)
        return pl.from_arrow(con.sql("SELECT md5(t) AS k FROM rows_text").to_arrow_table())["k"]  # type: ignore[index]
    finally:
        con.close()


def _memo_paths(folder: Path, ds: Dataset) -> tuple[Path, Path]:
    return folder / f"{ds.code}.parquet", folder / f"{ds.code}.json"


def _load(folder: Path, ds: Dataset, night: date, valid: str) -> pl.DataFrame | None:
    rows_path, meta_path = _memo_paths(folder, ds)
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("validity") != valid or date.fromisoformat(meta["night"]) > night:
            return None
        return pl.read_parquet(rows_path)
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError):
        return None  # no memo, or a damaged one: everything is normalised


def _save(folder: Path, ds: Dataset, night: date, valid: str, memo: pl.DataFrame) -> None:
    """Written whole, then renamed: a run stopped midway leaves the old memo or none."""
    folder.mkdir(parents=True, exist_ok=True)
    rows_path, meta_path = _memo_paths(folder, ds)
    tmp = rows_path.with_suffix(f".{os.getpid()}.tmp")
    memo.write_parquet(tmp)
    os.replace(tmp, rows_path)
    meta_tmp = meta_path.with_suffix(f".{os.getpid()}.tmp")
    meta_tmp.write_text(json.dumps({"validity": valid, "night": night.isoformat(), "rows": memo.height}))
    os.replace(meta_tmp, meta_path)


def normalise_carrying(ds: Dataset, mapping: Mapping, raw: RawTable, night: date, limits: ValueLimits,
                       folder: Path | None) -> tuple[Normalised, Carried]:
    """`normalise`, taking unchanged rows from the memo in `folder` (None: no memo) and leaving
    the memo of this delivery for the next night."""
    if folder is None:
        return normalise(ds, mapping, raw, night, limits), Carried()
    valid = validity(ds, limits)
    data = raw.data.rechunk()
    read = data.height
    rows = pl.int_range(1, read + 1, dtype=pl.Int64, eager=True)
    first = _first_of_each_row(data)
    duplicates = 0 if first is None else read - int(first.sum())
    if duplicates:
        data, rows = data.filter(first), rows.filter(first)
    keys = row_keys(raw, mapping, ds, data)
    memo = _load(folder, ds, night, valid)
    stats = Carried(used=memo is not None)
    if memo is not None:
        known = keys.is_in(memo[KEY].implode())
    else:
        known = pl.Series([False] * data.height, dtype=pl.Boolean)
    fresh = normalise(ds, mapping, dataclasses.replace(raw, data=data.filter(~known)), night, limits,
                      source_rows=rows.filter(~known))
    parts = [fresh.rows]
    if memo is not None and known.any():
        carried = (pl.DataFrame({"source_row": rows.filter(known), KEY: keys.filter(known)})
                   .join(memo, on=KEY, how="left").select(fresh.rows.columns))
        parts.insert(0, carried.cast(dict(fresh.rows.schema)))
        stats.carried = carried.height
        stats.removed = memo.height - stats.carried
    stats.normalised = fresh.rows_read
    out = pl.concat(parts).sort("source_row") if len(parts) > 1 else fresh.rows
    # Tonight's memo: every kept row without a reject, under its key.
    by_row = pl.DataFrame({"source_row": rows, KEY: keys})
    clean = out.filter(pl.col("rejected_columns").is_null()).join(by_row, on="source_row", how="left")
    _save(folder, ds, night, valid, clean.select(KEY, *(c for c in out.columns if c != "source_row")))
    return Normalised(out, fresh.rejects, read, duplicates, fresh.dropped), stats
