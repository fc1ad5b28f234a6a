"""A CSV file delivered again, read by its lines (issue 18): most of a department's nightly
extract is the night before's, line for line. When every line of a file is one of its rows, each
row keeps the MD5 of its line's bytes (`line_hash`) and the snapshot keeps the file's form (its
encoding, separator, header, how the header maps, the reader and normaliser versions). The next
file in the same form is then split into lines and only the lines not seen in the snapshot in force
are decoded and parsed; a line seen there is that row, whose row fingerprint (`raw_hash`) says the
rest (`normalise.Known`). The hukou file of the large prefecture: 12.5 s to read whole, about 2 s
this way.

The outcome is the one reading the whole file gives — the same rows, rejects, duplicates, source
rows and fingerprints — or the file is read whole: whenever a line may not be a row (a quote
anywhere: a quoted field may hold a line break; a CR not before an LF; an empty line; no final
line break), the form differs, most lines are new, or anything about the lines read is unusual
(a trailing blank row, a duplicate across read and unread lines, an error)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from functools import cache

import numpy as np
import polars as pl

from bidui.connectors.mapping import Mapping, map_headers
from bidui.connectors.normalise import Normalised, ValueLimits, _normaliser_digest, _sources_digest, normalise
from bidui.connectors.readers import (
    HEADER_SEARCH_ROWS,
    RawTable,
    ReadError,
    _binary,
    _wide_encoding,
    read_csv_bytes,
    utf8_valid,
)
from bidui.connectors.stored import Known, raw_halves_sql, runs
from bidui.datasets import Dataset
from bidui.scratch import scratch

# Read whole past this share of new lines: one parse of everything is then as quick.
MOST_NEW = 0.5
# The lines where the header is looked for (and the one after it): always parsed, so that the
# header is found as reading the whole file finds it.
HEAD_LINES = HEADER_SEARCH_ROWS + 2
SPLIT_PIECE = 1 << 24  # bytes searched for line breaks at a time


@dataclass
class Lines:
    """Where each line of a file starts; line i is bytes starts[i]:starts[i + 1] (its LF included)."""

    starts: np.ndarray  # int64, one more than there are lines (the last is the file's length)

    def __len__(self) -> int:
        return len(self.starts) - 1


def split(raw: bytes) -> Lines | None:
    """The file's lines, when every line is one row: no quote anywhere, a CR only before an LF, an
    LF at the end and no empty line; else None."""
    if not raw.endswith(b"\n") or b'"' in raw:
        return None
    crs = raw.count(b"\r")
    if crs and crs != raw.count(b"\r\n"):
        return None
    arr = np.frombuffer(raw, np.uint8)
    # By pieces: `arr == 0x0A` at once is a Boolean array the file's size, fresh memory the kernel
    # must hand over page by page (the hukou file: 0.3–2.0 s against 0.1–0.2 s).
    # (never empty: the file ends with an LF)
    lf = np.concatenate([np.flatnonzero(arr[a:a + SPLIT_PIECE] == 0x0A) + a for a in range(0, len(arr), SPLIT_PIECE)])
    starts = np.concatenate(([0], lf + 1)).astype(np.int64)
    length = np.diff(starts) - 1  # without the LF
    if crs:
        length -= arr[np.maximum(lf - 1, 0)] == 0x0D  # (every CR is followed by its LF here)
    if (length <= 0).any():
        return None
    return Lines(starts)


def fingerprints(raw: bytes, lines: Lines) -> pl.DataFrame:
    """`line_hi`, `line_lo`: the MD5 of each line's bytes (line break included), in order. DuckDB
    hashes the file's own buffer, viewed as one binary value per line: nothing is copied."""
    import pyarrow as pa

    values = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(lines),
                                             [None, pa.py_buffer(lines.starts), pa.py_buffer(raw)])
    with scratch() as con:
        con.register("lines", pa.table({"b": values}))
        return con.sql(f"SELECT {raw_halves_sql('md5_number(b)', 'line')} FROM lines").pl()


def form(ds: Dataset, table: RawTable, mapping: Mapping, limits: ValueLimits) -> str:
    """What a line's bytes mean in this file, as one digest: the same line in two files of the same
    form is the same row. The reader's and polars' versions are in it: they turn lines into cells."""
    h = hashlib.sha256(_sources_digest())
    h.update(_reader_digest())
    h.update(repr(("lines-1", pl.__version__, _normaliser_digest(ds, limits), table.encoding, table.delimiter,
                   table.first_data_row, table.header, sorted(mapping.positions.items()), mapping.extra)).encode())
    return h.hexdigest()[:32]


@cache
def _reader_digest() -> bytes:
    """The sources that turn a file's lines into cells: the reader and this module."""
    import inspect
    import sys

    from bidui.connectors import readers

    return hashlib.sha256(inspect.getsource(readers).encode() + inspect.getsource(sys.modules[__name__]).encode()).digest()


def line_frame(raw: bytes, table: RawTable) -> pl.DataFrame | None:
    """The line fingerprints of a file read whole, one row per data row (in order), when each of its
    lines is one row; else None."""
    lines = split(raw)
    if lines is None or table.fmt != "csv" or table.cut is not None:
        return None
    header_line = table.first_data_row - 2
    if len(lines) - header_line - 1 != table.data.height:
        return None  # a blank row at the end (dropped), or lines that are not rows
    return fingerprints(raw, lines).slice(header_line + 1)


def attach(result: Normalised, lines: pl.DataFrame, shape: str) -> Normalised:
    """The rows (and the rows carried) with their lines' fingerprints, and the file's form."""
    def add(frame: pl.DataFrame) -> pl.DataFrame:
        at = frame["source_row"] - 1
        return frame.with_columns(lines["line_hi"].gather(at), lines["line_lo"].gather(at))

    result.rows = add(result.rows)
    if result.carried is not None:
        result.carried = add(result.carried)
    result.line_form = shape
    return result


def _seen(body: pl.DataFrame, known: pl.DataFrame) -> pl.DataFrame | None:
    """The lines of `body` (i, line_hi, line_lo) that the snapshot's lines hold, in order, with
    their rows' fingerprints and rows there (`known_row`); None if the snapshot holds a line twice (a snapshot holds each row
    once, and two rows from one line would be one row: not a snapshot this module stored). The
    lines standing where the snapshot has them (most of a file on most nights) are told by their
    place (`_in_place`); the others, or all of them when the snapshot's lines cannot be told apart
    by their first halves, joined with every line of the snapshot."""
    where = _in_place(body, known)
    placed = None if where is None else pl.Series(where >= 0)
    rest = body if placed is None else body.filter(~placed)
    with scratch() as con:
        con.register("b", rest.to_arrow())
        con.register("k", known.to_arrow())
        # DuckDB joins: polars took twice as long on the four million lines of a hukou file.
        joined = con.sql("SELECT b.i, k.raw_hi, k.raw_lo, b.line_hi, b.line_lo, k.source_row AS known_row "
                         "FROM b JOIN k USING (line_hi, line_lo)").pl()
    schema = {"i": body["i"].dtype, "raw_hi": known["raw_hi"].dtype, "raw_lo": known["raw_lo"].dtype,
              "line_hi": body["line_hi"].dtype, "line_lo": body["line_lo"].dtype, "known_row": known["source_row"].dtype}
    matched = joined.cast(schema)  # type: ignore[arg-type]
    if where is not None and placed is not None:
        at = pl.Series(where[where >= 0])
        here = body.filter(placed).select("i", known["raw_hi"].gather(at), known["raw_lo"].gather(at), "line_hi",
                                          "line_lo", known["source_row"].gather(at).alias("known_row"))
        # (in order already, as the body: the few joined merged in, not the four million sorted)
        matched = here.cast(schema).merge_sorted(matched.sort("i"), key="i")  # type: ignore[arg-type]
    matched = matched.sort("i")
    i = matched["i"]
    return matched if i.len() < 2 or bool((i.diff().drop_nulls() > 0).all()) else None


# A snapshot this small is joined whole: telling its lines by their place saves nothing.
IN_PLACE_FROM = 50_000
OFFSET_SAMPLE = 1_000  # the first lines of the body, to find where the snapshot's rows stand in the file


def _row_index(known: pl.DataFrame) -> np.ndarray | None:
    """Each of the snapshot's rows' index in `known`, by row number (-1: none); None when its rows
    are too sparse for such a table, or one is listed twice."""
    rows = known["source_row"].to_numpy()
    if not len(rows) or rows.min() < 0 or rows.max() > 2 * len(rows) + OFFSET_SAMPLE:
        return None
    at = np.full(int(rows.max()) + 1, -1, dtype=np.int64)
    at[rows] = np.arange(len(rows))
    return at if int((at >= 0).sum()) == len(rows) else None


def _offset(body: pl.DataFrame, known: pl.DataFrame) -> int | None:
    """How far a row of the snapshot stands from its line in the file (the header's place): the
    most frequent among the first lines of the body that the snapshot holds; None when none does."""
    sample = body.head(OFFSET_SAMPLE)
    found = sample.join(known.filter(pl.col("line_hi").is_in(sample["line_hi"].implode())),
                        on=["line_hi", "line_lo"], how="inner")
    if not found.height:
        return None
    return int((found["i"].cast(pl.Int64) - found["source_row"]).mode().min())  # type: ignore[arg-type]


def _in_place(body: pl.DataFrame, known: pl.DataFrame) -> np.ndarray | None:
    """For each line of `body`, the index in `known` of the snapshot's row holding it at the same
    place (its row, at `_offset` from the line), -1 for none; None when places tell nothing sure (a
    small snapshot, rows too sparse, no line of the first ones held, or two of the snapshot's lines
    with the same first half: a line held twice must be found twice, by the join). Joining the four
    million lines of a hukou file with the snapshot's took its worker 0.65 s, comparing them by
    place 0.05 s. A line held at its place is held nowhere else (the halves are unique), so that row
    is the join's one match for it."""
    if known.height < IN_PLACE_FROM:
        return None
    halves = np.sort(known["line_hi"].to_numpy())
    if bool((halves[1:] == halves[:-1]).any()):
        return None
    at, offset = _row_index(known), _offset(body, known)
    if at is None or offset is None:
        return None
    rows = body["i"].cast(pl.Int64).to_numpy() - offset
    inside = (rows >= 0) & (rows < len(at))
    where = np.where(inside, at[np.where(inside, rows, 0)], -1)
    j = np.maximum(where, 0)
    same = (where >= 0) & (known["line_hi"].to_numpy()[j] == body["line_hi"].to_numpy()) & (
        known["line_lo"].to_numpy()[j] == body["line_lo"].to_numpy())
    return np.where(same, where, -1)


def _encoding(raw: bytes) -> str:
    """The encoding `readers.detect_encoding` would find for the whole file, given that every line
    not read tonight was read before in the file's form (so decodes in it)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    return "utf-8" if utf8_valid(raw) else "gb18030"  # a GB18030 file fails at its first Chinese character


def read_changed(raw: bytes, name: str, ds: Dataset, known: Known, limits: ValueLimits,
                 night: date) -> tuple[RawTable, Normalised] | None:
    """The file read by its lines against the snapshot in force (`known`, with its lines): the new
    lines parsed and normalised, the others carried. None when it must be read whole."""
    if known.lines is None or known.line_form is None or known.snapshot > night:
        return None
    if _wide_encoding(raw[:4096]) or _binary(raw[:4096]):
        return None  # refused when read whole, which says why
    lines = split(raw)
    if lines is None or len(lines) <= HEAD_LINES + 1:
        return None
    prints = fingerprints(raw, lines).with_row_index("i")
    body = prints.slice(HEAD_LINES, len(lines) - HEAD_LINES - 1)  # not the head, nor the last line
    matched = _seen(body, known.lines)
    if matched is None or body.height - matched.height > MOST_NEW * len(lines):
        return None
    seen = np.zeros(len(lines), dtype=bool)  # (a mask: setdiff1d sorted the four million lines, 0.17 s)
    seen[matched["i"].to_numpy()] = True
    read = np.flatnonzero(~seen)
    starts = lines.starts
    subset = b"".join(raw[starts[i]:starts[i + 1]] for i in read.tolist())
    try:
        table = read_csv_bytes(subset, name, ds, encoding=_encoding(raw))
        mapping = map_headers(ds, table.header, name, table.first_data_row - 1)
    except (ReadError, ValueError):
        return None  # (RefusedError is a ValueError) read whole, which says why
    header_line = table.first_data_row - 2
    data_lines = read[read > header_line]
    shape = form(ds, table, mapping, limits)
    if table.cut is not None or shape != known.line_form or table.data.height != len(data_lines):
        return None
    rows_read = len(lines) - header_line - 1
    try:
        result = normalise(ds, mapping, table, night, limits, Known(known.snapshot, known.hashes),
                           rows_of=(pl.Series(data_lines - header_line), rows_read))
    except Exception:
        return None
    # The lines carried unread, each row once (the first of two lines saying the same).
    carried = matched.select((pl.col("i") - header_line).alias("source_row"), "raw_hi", "raw_lo", "line_hi", "line_lo",
                             "known_row")
    # (Lines that differ have different halves, mostly: the full comparison only when some repeat.)
    repeats = carried["line_hi"].n_unique() < carried.height
    once = carried.unique(["raw_hi", "raw_lo"], keep="first", maintain_order=True) if repeats else carried
    if result.carried is not None and once.join(result.carried, on=["raw_hi", "raw_lo"], how="semi").height:
        return None  # a line read tonight says what an unread one says: which comes first decides
    result.duplicates += carried.height - once.height
    per_row = prints.slice(header_line + 1).drop("i")
    attach(result, per_row, shape)
    # A line at the row it was in the snapshot is that row in place (its text, hence its values and
    # fingerprints, are the same): handed over as runs of rows, not one by one.
    # (Only against a night before: a night run again carries its own snapshot's rows, which the
    # next file stored for it replaces.)
    read = result.carried
    if known.load is not None and known.snapshot < night:
        here = once["source_row"] == once["known_row"]
        in_place = once["source_row"].filter(here)
        once = once.filter(~here)
        if read is not None:
            # Rows read tonight and carried (the head's lines are always read): in place when the
            # snapshot has their line at their row.
            at = known.lines.filter(pl.col("source_row").is_in(read["source_row"].implode()))
            same = ["source_row", "line_hi", "line_lo", "raw_hi", "raw_lo"]
            placed = read.join(at.select(same), on=same, how="semi")
            read = read.join(placed.select("source_row"), on="source_row", how="anti")
            in_place = pl.concat([in_place.cast(pl.Int64), placed["source_row"].cast(pl.Int64)]).sort()
        result.in_place, result.carried_load = runs(in_place), known.load
    result.carried = pl.concat([once.drop("known_row"), *([read] if read is not None else [])],
                               how="diagonal_relaxed").sort("source_row")
    result.carried_from = known.snapshot
    return table, result
