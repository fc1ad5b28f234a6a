"""Read a delivered file into text columns, whatever its form: CSV (comma or tab; UTF-8 with or
without BOM, or GB18030/GBK — detected, never guessed), XLSX (first sheet whose first row is a
header), Parquet. Every value stays text: IDs must not become numbers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl


class ReadError(ValueError):
    """The file cannot be read as a table; the message names the file and what is wrong."""


@dataclass
class RawTable:
    header: list[str]
    data: pl.DataFrame  # one String column per header position (named c0, c1, …)
    fmt: str  # csv | xlsx | parquet
    encoding: str | None = None
    delimiter: str | None = None
    numeric_cells: frozenset[tuple[int, int]] = frozenset()  # (row, column) stored as numbers in XLSX


def detect_encoding(raw: bytes, name: str) -> tuple[str, str]:
    """Return (encoding, text). UTF-8 with BOM, UTF-8, then GB18030 (a superset of GBK)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        try:
            return "utf-8-sig", raw[3:].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReadError(f"{name}: has a UTF-8 byte-order mark but byte {e.start + 3} is not UTF-8") from e
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReadError(f"{name}: UTF-16 text; save it as UTF-8 or GB18030")
    try:
        return "utf-8", raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return "gb18030", raw.decode("gb18030")
    except UnicodeDecodeError as e:
        raise ReadError(f"{name}: neither UTF-8 nor GB18030/GBK (undecodable byte at offset {e.start})") from e


def detect_delimiter(first_line: str) -> str:
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


def read_csv(path: Path) -> RawTable:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ReadError(f"{path.name}: UTF-16 text; save it as UTF-8 or GB18030")
    if b"\x00" in raw[:4096]:
        raise ReadError(f"{path.name}: binary data, not a text table")
    encoding, text = detect_encoding(raw, path.name)
    if not text or text.isspace():  # (no stripped or split copies of a file of hundreds of MB)
        raise ReadError(f"{path.name}: empty file")
    end = text.find("\n")
    first = (text if end < 0 else text[:end]).rstrip("\r")
    sep = detect_delimiter(first)
    # UTF-8 as delivered goes to the parser as it is (decoding above only checked it).
    body = raw[3:] if encoding == "utf-8-sig" else raw if encoding == "utf-8" else text.encode("utf-8")
    try:
        df = pl.read_csv(io.BytesIO(body), separator=sep, infer_schema=False, has_header=False,
                         quote_char='"', truncate_ragged_lines=False)
    except pl.exceptions.ComputeError as e:
        raise ReadError(f"{path.name}: {_diagnose(text, sep)}") from e
    header = [str(v or "").strip() for v in df.row(0)]
    data = df.slice(1)
    data.columns = [f"c{i}" for i in range(len(header))]
    return RawTable(header, data, "csv", encoding, sep)


def _diagnose(text: str, sep: str) -> str:
    """Find the first row that breaks the table (polars' own error names no row)."""
    import csv

    kind = "tab" if sep == "\t" else "comma"
    reader = csv.reader(io.StringIO(text), delimiter=sep, strict=True)
    try:
        width = None
        for row in reader:
            if width is None:
                width = len(row)
            elif row and len(row) != width:
                # line_num counts physical lines; the header is line 1, data row N is line N + 1
                return (f"data row {reader.line_num - 1} has {len(row)} fields, the header has {width} "
                        f"({kind}-separated)")
    except csv.Error as e:
        return f"data row {max(reader.line_num - 1, 1)}: {e} ({kind}-separated)"
    return f"not a well-formed {kind}-separated table"


def _cell_text(v: object) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        # As Excel shows a number: 15 significant digits, integers without ".0".
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".15g").upper()
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _column_text(values: tuple, column: int, numeric: set[tuple[int, int]], first_row: int = 0) -> list[str | None]:
    """Cells as text; a column of strings (the usual case) skips the per-cell formatting.
    Cells stored as numbers are noted in `numeric` as (row, column)."""
    if all(type(v) is str for v in values):
        return [v or None for v in values]
    numeric.update((first_row + r, column) for r, v in enumerate(values) if type(v) in (float, int))
    return [_cell_text(v) for v in values]


XLSX_CHUNK_ROWS = 50_000  # rows held as Python objects at once; each chunk becomes text columns


def _sheet_rows(sheet) -> Iterator[list]:
    """A sheet's rows from A1 (so row numbers stay Excel's), streamed where the sheet starts at A1."""
    if tuple(sheet.start or (0, 0)) == (0, 0):
        return iter(sheet.iter_rows())
    return iter(sheet.to_python(skip_empty_area=False))


def _chunk_frame(chunk: list[list], width: int, numeric: set[tuple[int, int]], first_row: int) -> pl.DataFrame:
    body = [row if len(row) == width else (list(row) + [None] * width)[:width] for row in chunk]
    columns = list(zip(*body, strict=True)) if body else [() for _ in range(width)]
    return pl.DataFrame({f"c{i}": pl.Series(_column_text(col, i, numeric, first_row), dtype=pl.String)
                         for i, col in enumerate(columns)})


def read_xlsx(path: Path) -> RawTable:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
        for sheet_name in wb.sheet_names:
            rows = _sheet_rows(wb.get_sheet_by_name(sheet_name))
            first = next(rows, None)
            if first and any(isinstance(c, str) and c.strip() for c in first):
                break
        else:
            raise ReadError(f"{path.name}: no sheet has a header row")
        width = len(first)
        header = [str(c).strip() if c is not None else "" for c in first]
        numeric: set[tuple[int, int]] = set()
        frames, chunk, done = [], [], 0
        for row in rows:
            chunk.append(row)
            if len(chunk) == XLSX_CHUNK_ROWS:
                frames.append(_chunk_frame(chunk, width, numeric, done))
                done += len(chunk)
                chunk = []
        frames.append(_chunk_frame(chunk, width, numeric, done))
    except ReadError:
        raise
    except Exception as e:  # calamine raises several types for broken zips and XML
        raise ReadError(f"{path.name}: not a readable XLSX workbook ({type(e).__name__}: {e})") from e
    data = pl.concat(frames).rechunk()
    # Trailing rows Excel keeps formatted but empty are not data.
    data = data.filter(~pl.all_horizontal(pl.all().is_null()))
    return RawTable(header, data, "xlsx", numeric_cells=frozenset(numeric))


def read_parquet(path: Path) -> RawTable:
    try:
        df = pl.read_parquet(path)
    except Exception as e:
        raise ReadError(f"{path.name}: not a readable Parquet file ({e})") from e
    header = list(df.columns)
    out = df.select([pl.col(c).cast(pl.String).alias(f"c{i}") for i, c in enumerate(header)])
    return RawTable(header, out, "parquet")


def read_table(path: Path) -> RawTable:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path)
    if suffix == ".xlsx":
        return read_xlsx(path)
    if suffix == ".parquet":
        return read_parquet(path)
    raise ReadError(f"{path.name}: unsupported file type {suffix or '(none)'}; send CSV, XLSX or Parquet")
