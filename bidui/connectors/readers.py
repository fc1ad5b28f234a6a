"""Read a delivered file into text columns, whatever its form: CSV (comma or tab; UTF-8 with or
without BOM, or GB18030/GBK — detected, never guessed; Big5, UTF-16 and UTF-32 are named and
refused), XLSX (the first sheet whose header maps), Parquet. Every value stays text: IDs must not
become numbers.

The header is the file's first row, unless the rows above it are a title (each at most one filled
cell, as in an export's "XX县2026年11月机动车登记信息" row): then the header is taken where it is and
`RawTable.first_data_row` says which row of the file data row 1 is. A header over two rows
(merged cells) is refused. Trailing blank rows are dropped; blank rows between data rows are kept
so that every data row keeps its number.

Messages name the file, the cause and what to do, and never quote a value from the body of the
file (IDs and names): header texts only.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain, islice
from pathlib import Path

import numpy as np
import polars as pl

from bidui import collector
from bidui.connectors import xlsx_errors
from bidui.connectors.mapping import known_header_keys, missing_required
from bidui.datasets import Dataset, header_key
from bidui.uploads import ZipLimits, ZipRefused, check_zip

# The structure checks read this much of each end of a file and never walk the whole of it in
# Python: files reach 500 MB.
HEAD_BYTES = 65_536
# A header below a title is looked for on rows 1–10.
HEADER_SEARCH_ROWS = 10


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
    # XLSX cells holding an Excel error value (#N/A, #DIV/0!…): (row, column) → the value. They are
    # empty in `data`; ingest rejects them by row and column (bidui.connectors.normalise).
    error_cells: dict[tuple[int, int], str] = field(default_factory=dict)
    column_types: tuple[str, ...] = ()  # each column's type as delivered, for typed formats (Parquet)
    # The file's row (1-based, as a spreadsheet shows it: a CSV record with line breaks inside
    # quotes is one row) that holds data row 1: 2, unless title rows sit above the header. Data
    # row n is the file's row first_data_row + n - 1.
    first_data_row: int = 2
    # Why a CSV looks cut off (its last record has no line break, or it ends inside a quoted
    # field), as a short sentence; None when whole. The reader does not refuse for it: ingest holds.
    cut: str | None = None


# --- encodings ---------------------------------------------------------------------------------

def _wide_encoding(head: bytes) -> str | None:
    """Name the UTF-16 / UTF-32 form of the bytes, with or without a byte-order mark, or None."""
    if head.startswith(b"\xff\xfe\x00\x00"):
        return "UTF-32 (little-endian, with byte-order mark)"
    if head.startswith(b"\x00\x00\xfe\xff"):
        return "UTF-32 (big-endian, with byte-order mark)"
    if head.startswith(b"\xff\xfe"):
        return "UTF-16 (little-endian, with byte-order mark)"
    if head.startswith(b"\xfe\xff"):
        return "UTF-16 (big-endian, with byte-order mark)"
    n = min(len(head), 4096) // 4 * 4
    if n < 8 or b"\x00" not in head[:n]:
        return None
    # Share of NUL bytes at each position modulo 4. Without a mark the width still shows: every
    # character below U+10000 has two NULs in UTF-32, and every ASCII one (the separators, line
    # breaks and digits of any table) has one in UTF-16, always on the same side.
    nul = (np.frombuffer(head, dtype=np.uint8, count=n).reshape(-1, 4) == 0).mean(axis=0)
    if nul[2] > 0.9 and nul[3] > 0.9:
        return "UTF-32 (little-endian, no byte-order mark)"
    if nul[0] > 0.9 and nul[1] > 0.9:
        return "UTF-32 (big-endian, no byte-order mark)"
    even, odd = (nul[0] + nul[2]) / 2, (nul[1] + nul[3]) / 2
    if odd > 0.1 and even < 0.02:
        return "UTF-16 (little-endian, no byte-order mark)"
    if even > 0.1 and odd < 0.02:
        return "UTF-16 (big-endian, no byte-order mark)"
    return None


def _known_cells(text: str) -> int:
    """How many cells of the first rows of `text` are headers of some dataset."""
    keys = known_header_keys()
    lines = text.splitlines()[:HEADER_SEARCH_ROWS]
    return sum(header_key(c.strip().strip('"')) in keys for line in lines for c in re.split(r"[,\t]", line))


def _big5_headers(raw: bytes) -> bool:
    """Whether the first rows hold known headers when read as Big5 (Traditional Chinese)."""
    from bidui.names import simplified

    head = raw[:HEAD_BYTES]
    return _known_cells(simplified(head.decode("cp950", errors="replace"))) > 0


BIG5_MESSAGE = "Big5 (Traditional Chinese) text, which is not accepted; save it as UTF-8 (in Excel: CSV UTF-8)"


def utf8_valid(data: bytes) -> bool:
    """Whether the bytes are UTF-8, checked by Arrow without building Python text of them (the
    large medical-claims CSV, 153 MB: 0.10 s against 0.33 s to decode it)."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    try:
        pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _utf8_head(data: bytes, start: int = 0) -> str:
    """The text of the first HEAD_BYTES + 1 characters (or fewer, all there are) of valid UTF-8
    from byte `start`: as many bytes as that many characters can take, cut back to the start of a
    character (only those bytes are copied)."""
    end = min(len(data), start + 4 * (HEAD_BYTES + 1))
    while end < len(data) and data[end] & 0xC0 == 0x80:  # a continuation byte: inside a character
        end -= 1
    return data[start:end].decode("utf-8")


def detect_encoding(raw: bytes, name: str, head: bool = False) -> tuple[str, str]:
    """Return (encoding, text). UTF-8 with BOM, UTF-8, then GB18030 (a superset of GBK). `head`:
    of a UTF-8 file only the text of its head (`_utf8_head`; the rest is checked, not decoded)."""
    bom = raw.startswith(b"\xef\xbb\xbf")
    if utf8_valid(raw):
        return ("utf-8-sig" if bom else "utf-8"), (_utf8_head(raw, 3 if bom else 0) if head
                                                   else raw[3 if bom else 0:].decode("utf-8"))
    if bom:
        try:
            raw[3:].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReadError(f"{name}: has a UTF-8 byte-order mark but byte {e.start + 3} is not UTF-8") from e
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as e:
        if _big5_headers(raw):
            raise ReadError(f"{name}: {BIG5_MESSAGE}") from e
        raise ReadError(f"{name}: neither UTF-8 nor GB18030/GBK (undecodable byte at offset {e.start})") from e
    # Almost every Big5 byte pair is also a valid GB18030 one, so Big5 decodes "successfully" into
    # nonsense and would fail later as a missing column; only the meaning of the header tells.
    if _known_cells(text[:HEAD_BYTES]) == 0 and _big5_headers(raw):
        raise ReadError(f"{name}: {BIG5_MESSAGE}")
    return "gb18030", text


def detect_delimiter(first_line: str) -> str:
    return "\t" if first_line.count("\t") > first_line.count(",") else ","


# --- CSV -----------------------------------------------------------------------------------------

def _lf_line_breaks(raw: bytes) -> bytes:
    """CR-only line breaks (old Mac) as LF: polars knows LF and CRLF only. The copy is made only
    for such a file; 0x0D is never part of a multibyte UTF-8 or GB18030 character."""
    head = raw[:HEAD_BYTES]
    if b"\r" in head and b"\n" not in head:
        return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return raw


def _cut(body: bytes) -> tuple[str | None, int | None]:
    """(why the file looks cut off, or None; the length of its whole records when the last one must
    go), from its last HEAD_BYTES only."""
    if not body:
        return None, None
    start = max(0, len(body) - HEAD_BYTES)
    tail = np.frombuffer(body, dtype=np.uint8, offset=start)  # a view: no copy of the file
    quotes = np.cumsum(tail == 0x22, dtype=np.int64)
    breaks = np.flatnonzero((tail == 0x0A) | (tail == 0x0D))
    ends_with_break = int(tail[-1]) in (0x0A, 0x0D)
    if start == 0:
        outside: int | None = 0  # counted from the file's start: exact
    elif len(breaks):
        # From the middle of a file the quote state is unknown, but most line breaks end records:
        # the quote-count parity most of them share is the one outside a quoted field.
        parity = quotes[breaks] & 1
        outside = int(parity.sum() * 2 > len(parity))
    else:
        outside = None
    if outside is not None and int(quotes[-1] & 1) != outside:
        bounds = breaks[(quotes[breaks] & 1) == outside]
        record = int(bounds[-1]) + 1 if len(bounds) else None
        if record is not None and not ends_with_break:
            inside = tail[record:]
            lines = max(int((inside == 0x0A).sum()), int((inside == 0x0D).sum()))
            # A copy cut short stops at any byte, mid-field; a quote opened further back than a few
            # lines, or one followed by a final line break, is a stray quote: parsing names its row.
            if lines <= 3:
                return "the file ends inside a quoted field, mid-record", start + record
        return None, None
    if not ends_with_break:
        return NO_FINAL_BREAK, None
    return None, None


def _head_records(text: str, sep: str) -> list[list[str]]:
    """The first rows (records) of the text, cells stripped, for finding the header."""
    head = text[:HEAD_BYTES]
    if len(text) > HEAD_BYTES and "\n" in head:
        head = head[: head.rfind("\n") + 1]  # whole lines only
    rows: list[list[str]] = []
    try:
        for rec in islice(csv.reader(io.StringIO(head), delimiter=sep), HEADER_SEARCH_ROWS + 1):
            rows.append([c.strip() for c in rec])
    except csv.Error:
        pass  # a broken quote near the top: the parse below names it
    return rows


def _first_delimiter(text: str) -> str:
    # The first line with a separator decides: a one-cell title above the header has none.
    for line in text[:HEAD_BYTES].splitlines()[:HEADER_SEARCH_ROWS]:
        if "," in line or "\t" in line:
            return detect_delimiter(line)
    return ","


_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c\x1a\x1b")


NO_FINAL_BREAK = "no line break ends the last record"  # whole if a matching checksum file says so
CUT_CHARACTER = "the file ends inside a character, mid-record"


def _before_cut_character(raw: bytes) -> int | None:
    """How many bytes of `raw` come before a character its end cuts (the first bytes of a UTF-8 or
    GB18030 character and nothing after them), when those bytes are text in that encoding; None
    otherwise (an undecodable byte elsewhere: another encoding, or damage)."""
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    for codec, start in (("utf-8", bom), ("gb18030", 0)):
        try:
            raw[start:].decode(codec)
        except UnicodeDecodeError as e:
            # (the first error: every byte before it decodes)
            if e.end == len(raw) - start and e.reason in ("unexpected end of data", "incomplete multibyte sequence"):
                return start + e.start
            continue
        return None  # it decodes: not cut inside a character
    return None


def _binary(head: bytes) -> bool:
    """Binary content, not text with a stray control character: a NUL inside one name is a value
    to reject (normalise does), not a reason to refuse a whole department's file."""
    return bool(head) and sum(head.count(b) for b in _CONTROL_BYTES) > max(2, len(head) // 100)


def read_csv(path: Path, dataset: Dataset | None = None) -> RawTable:
    return read_csv_bytes(path.read_bytes(), path.name, dataset)


def _decode_as(raw: bytes, encoding: str, name: str) -> tuple[str, str]:
    """(encoding, text) of bytes in an encoding already known (`csv_lines`: the lines that changed
    in a file whose other lines were read before in that encoding)."""
    try:
        return encoding, (raw[3:] if encoding == "utf-8-sig" else raw).decode(
            "utf-8" if encoding == "utf-8-sig" else encoding)
    except UnicodeDecodeError as e:
        raise ReadError(f"{name}: not {encoding} at byte {e.start}") from e


def read_csv_bytes(raw: bytes, name: str, dataset: Dataset | None = None, encoding: str | None = None) -> RawTable:
    """A CSV file's bytes as a table; `encoding`, when given, is not detected but required."""
    wide = _wide_encoding(raw[:4096])
    if wide:
        raise ReadError(f"{name}: {wide} text; save it as UTF-8 (in Excel: CSV UTF-8)")
    if _binary(raw[:4096]):
        raise ReadError(f"{name}: binary data, not a text table")
    raw = _lf_line_breaks(raw)
    head_only = encoding is None
    cut_character = False
    if encoding is None:
        # UTF-8 is checked whole but only its head is decoded: the rest goes to the parser as it is.
        try:
            encoding, text = detect_encoding(raw, name, head=True)
        except ReadError:
            # A copy that stopped inside a character is a cut file, not one in another encoding:
            # read without the character's first bytes, it is held as cut (never vouched for).
            whole = _before_cut_character(raw)
            if whole is None:
                raise
            raw, cut_character = raw[:whole], True
            encoding, text = detect_encoding(raw, name, head=True)
    else:
        encoding, text = _decode_as(raw, encoding, name)
        if encoding == "gb18030" and _known_cells(text[:HEAD_BYTES]) == 0 and _big5_headers(raw):
            raise ReadError(f"{name}: {BIG5_MESSAGE}")  # as `detect_encoding` would have said
    utf8 = raw[3:] if encoding == "utf-8-sig" else raw

    def full_text() -> str:  # the whole file's text, for what its head cannot tell
        return utf8.decode("utf-8") if head_only and encoding in ("utf-8", "utf-8-sig") else text

    # (no stripped or split copies of a file of hundreds of MB)
    if not text or (text.isspace() and full_text().isspace()):
        raise ReadError(f"{name}: empty file")
    sep = _first_delimiter(text)
    skip = _locate_header(_head_records(text, sep), dataset, f"{name}: ")
    # UTF-8 as delivered goes to the parser as it is (decoding above only checked it).
    body = utf8 if encoding in ("utf-8", "utf-8-sig") else text.encode("utf-8")
    cut, whole = _cut(body)
    if cut_character:  # the record it cuts goes: applied with --force, no value is kept cut short
        cut, whole = CUT_CHARACTER, max(body.rfind(b"\n"), body.rfind(b"\r")) + 1 or None
    if whole is not None:
        body = body[:whole]
    try:
        df = pl.read_csv(io.BytesIO(body), separator=sep, infer_schema=False, has_header=False,
                         quote_char='"', truncate_ragged_lines=False, skip_rows=skip)
    except pl.exceptions.PolarsError as e:
        raise ReadError(f"{name}: {_diagnose(full_text(), sep, skip)}") from e
    if df.height == 0:
        raise ReadError(f"{name}: empty file")
    header = [str(v or "").strip() for v in df.row(0)]
    data = df.slice(1)
    data.columns = [f"c{i}" for i in range(len(header))]
    return RawTable(header, _drop_trailing_blank(data), "csv", encoding, sep, first_data_row=skip + 2, cut=cut)


def _row_label(record: int, skip: int) -> tuple[str, str]:
    """A record (0-based, title rows included) as people find it: its data row and spreadsheet row."""
    d = record - skip
    where = f"spreadsheet row {record + 1}"
    if d >= 1:
        return f"data row {d}", where
    return ("the header" if d == 0 else "a row above the header"), where


def _diagnose(text: str, sep: str, skip: int = 0) -> str:
    """Find the first record that breaks the table (polars' own error names no row). Records, not
    physical lines, are counted: a quoted field may hold line breaks."""
    kind = "tab" if sep == "\t" else "comma"
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    def loc(record: int, start: int) -> str:
        where = _row_label(record, skip)[1]
        return where if start == record + 1 else f"{where}, starting on line {start} of the file"

    reader = csv.reader(lines(), delimiter=sep, strict=True)
    record, width, start = -1, 0, 1
    suspects: list[tuple[int, int, str]] = []  # records with a quote inside a value
    try:
        while True:
            start = reader.line_num + 1
            consumed.clear()
            try:
                row = next(reader)
            except StopIteration:
                break
            record += 1
            if record < skip:
                continue
            if record == skip:
                width = len(row)
                continue
            if len(row) > width:  # (a shorter row parses, its missing fields empty: not the failure)
                label = _row_label(record, skip)[0]
                return (f"{label} has {len(row)} fields, the header has {width} "
                        f"({kind}-separated; {loc(record, start)})")
            if len(suspects) < 100 and any('"' in f for f in row):
                suspects.append((record, start, "".join(consumed)))
    except csv.Error as e:
        record += 1  # the record being read when the reader stopped
        label, msg = _row_label(record, skip)[0], str(e)
        if "expected after" in msg:
            cause = "a quote closes a quoted field but the field goes on (a stray quote, or one not doubled)"
        elif "unexpected end of data" in msg:
            cause = "a quote opened in this row is never closed"
        elif "field larger than field limit" in msg:
            cause = "a quoted field runs on for more than 131,072 characters: a quote opened in this row is never closed"
        else:
            cause = msg
        return f"{label}: {cause}; quotes inside a field must be doubled (\"\") ({kind}-separated; {loc(record, start)})"
    # Python's reader takes a quote inside an unquoted field as text; polars does not.
    for rec, st, raw in suspects:
        try:
            pl.read_csv(io.StringIO(raw), separator=sep, infer_schema=False, has_header=False, quote_char='"')
        except pl.exceptions.PolarsError:
            return (f"{_row_label(rec, skip)[0]}: a quote inside a field that is not itself quoted; quote the "
                    f"field and double the quote (\"\") ({kind}-separated; {loc(rec, st)})")
    return f"not a well-formed {kind}-separated table"


def _drop_trailing_blank(data: pl.DataFrame, min_rows: int = 0) -> pl.DataFrame:
    """Without the trailing rows whose every cell is empty or spaces (an export's padding), keeping at
    least `min_rows`. Only the end is looked at, growing from the last rows, so a big table is not
    scanned whole."""
    if min_rows:
        return pl.concat([data.head(min_rows), _drop_trailing_blank(data.slice(min_rows))]) if data.height > min_rows \
            else data
    if data.width == 0 or data.height == 0:
        return data
    blank = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in data.columns])
    end, step = data.height, 1024
    while end > 0:
        begin = max(0, end - step)
        filled = data.slice(begin, end - begin).select(blank.not_()).to_series().arg_true()
        if filled.len():
            last = begin + int(filled[-1]) + 1
            return data if last == data.height else data.slice(0, last)
        end, step = begin, step * 4
    return data.clear()


# --- where the header is -------------------------------------------------------------------------

def _filled(row: Sequence[str]) -> int:
    return sum(1 for c in row if c)


def _known(row: Sequence[str], keys: frozenset[str]) -> int:
    return sum(1 for c in row if c and header_key(c) in keys)


def _two_rows(upper: Sequence[str], lower: Sequence[str], keys: frozenset[str]) -> bool:
    """Whether `lower` finishes the header `upper` began (merged cells), or repeats it."""
    filled = [c for c in lower if c]
    known = [c for c in filled if header_key(c) in keys]
    if not known or len(known) * 2 < len(filled):
        return False  # mostly values: a data row

    def at(row: Sequence[str], j: int) -> str:
        return row[j] if j < len(row) else ""

    width = max(len(upper), len(lower))
    # A group caption over several columns leaves blanks the row below fills with names ...
    fills_blank = any(not at(upper, j) and header_key(at(lower, j)) in keys for j in range(width) if at(lower, j))
    # ... while a cell merged down over both rows leaves a blank below it.
    merged_down = any(at(upper, j) and not at(lower, j) for j in range(width)) or _known(upper, keys) > 0
    return (fills_blank and merged_down) or (_known(upper, keys) >= 2 and len(known) >= 2)


def _locate_header(rows: list[list[str]], ds: Dataset | None, where: str) -> int:
    """Index of the header among the first rows: 0, or below rows that are a title. Refuses a header
    over two rows, and a header below rows that are not clearly a title. `rows` are the first
    HEADER_SEARCH_ROWS + 1 rows of the table as stripped text; `where` starts every message."""
    keys = known_header_keys(ds)
    search = rows[:HEADER_SEARCH_ROWS]
    k = None
    if ds is not None:
        k = next((i for i, r in enumerate(search) if _filled(r) and not missing_required(ds, r)), None)
    if k is None:
        k = next((i for i, r in enumerate(search) if _known(r, keys) >= 2), 0)
    if k:
        above = rows[:k]
        if any(_filled(r) > 1 for r in above):
            if _filled(rows[k - 1]) > 1 and _two_rows(rows[k - 1], rows[k], keys):
                raise ReadError(f"{where}a header over two rows (merged cells), rows {k} and {k + 1}; "
                                "put one header row, one name per column")
            busiest = max(range(k), key=lambda i: _filled(rows[i]))
            raise ReadError(f"{where}the header is on row {k + 1}; row(s) above it look like a title or notes "
                            f"(row {busiest + 1} has {_filled(rows[busiest])} filled cells, a title has one); "
                            "delete them so that the header is on row 1")
        # Only a title (one filled cell a row, or a merged title) above: the header is taken where it is.
    if k + 1 < len(rows) and _two_rows(rows[k], rows[k + 1], keys):
        raise ReadError(f"{where}a header over two rows (merged cells), rows {k + 1} and {k + 2}; "
                        "put one header row, one name per column")
    return k


# --- XLSX ----------------------------------------------------------------------------------------

def _cell_text(v: object) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        # As Excel shows a number: 15 significant digits, integers without ".0".
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        # Excel's 15 significant digits, all of them: a number cell of an ID truncated to 15 digits
        # must not lose its trailing zeros (`.15g` dropped them and left too few to be recognised).
        return f"{v:.14E}" if abs(v) >= 1e15 else format(v, ".15g").upper()
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _column_text(values: tuple, column: int, numeric: set[tuple[int, int]], first_row: int = 0) -> pl.Series:
    """Cells as text (empty ones null). A column of strings, the usual case, is built by polars in
    one call, which refuses any other type; a column that holds numbers, dates or booleans formats
    those cells alone (`_cell_text`) and notes the number cells in `numeric` as (row, column)."""
    try:
        series = pl.Series(values, dtype=pl.String, strict=True)
    except TypeError:
        numeric.update((first_row + r, column) for r, v in enumerate(values) if type(v) in (float, int))
        series = pl.Series([v if type(v) is str else _cell_text(v) for v in values], dtype=pl.String)
    return series


XLSX_CHUNK_ROWS = 50_000  # rows held as Python objects at once; each chunk becomes text columns


def _sheet_rows(sheet) -> Iterator[list]:
    """A sheet's rows from A1 (so row numbers stay Excel's), streamed where the sheet starts at A1."""
    if tuple(sheet.start or (0, 0)) == (0, 0):
        return iter(sheet.iter_rows())
    return iter(sheet.to_python(skip_empty_area=False))


def _chunk_frame(chunk: list[list], width: int, numeric: set[tuple[int, int]], first_row: int,
                 blanks: list[bool] | None = None) -> pl.DataFrame:
    """A chunk of rows as text columns; `blanks` gets True when a cell came as "" (how calamine
    gives an empty text cell, and an Excel error value)."""
    body = [row if len(row) == width else (list(row) + [None] * width)[:width] for row in chunk]
    columns = list(zip(*body, strict=True)) if body else [() for _ in range(width)]
    frame = pl.DataFrame({f"c{i}": _column_text(col, i, numeric, first_row) for i, col in enumerate(columns)})
    if blanks is not None and width and frame.height:
        blanks.append(bool(frame.select(pl.any_horizontal(pl.all() == "").any()).item()))
    # An empty cell is no value, whichever form calamine gave it ("" or None).
    return frame.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in frame.columns)


def _texts(row: Sequence[object]) -> list[str]:
    return [(_cell_text(c) or "").strip() for c in row]


OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


MAX_XLSX_EXPANDED = 8 * 2**30  # bytes the workbook's parts may expand to (a large night's sheet: ~2 GB)
MAX_XLSX_RATIO = 200  # expanded / compressed, per part (real sheets: 5–30)
MAX_XLSX_CELLS = 400_000_000  # a sheet's declared rows × columns (calamine allocates the whole range)
# The upload guard's zip checks (bidui.uploads: one place for them), with a night's limits. A
# department's file is not expanded twice to count it: its declared sizes are checked, and ingest
# reads it in a worker process.
XLSX_LIMITS = ZipLimits(max_expanded=MAX_XLSX_EXPANDED, max_ratio=MAX_XLSX_RATIO, ratio_floor=2**24,
                        max_cells=MAX_XLSX_CELLS)


def _check_expansion(path: Path) -> None:
    """Refuse a workbook that would expand past what a night can hold, before any part of it is
    expanded: the sizes its zip directory declares, each part's ratio, and each sheet's declared
    range (one cell at XFD1048576 makes calamine allocate 17 billion cells and abort the process)."""
    name = path.name
    try:
        check_zip(path, XLSX_LIMITS)
    except ZipRefused as e:
        if e.kind == "expanded":
            raise ReadError(f"{name}: the workbook expands to {e.size / 2**30:.1f} GB, more than "
                            f"{MAX_XLSX_EXPANDED / 2**30:.0f} GB; split it or send CSV") from e
        if e.kind == "ratio":
            raise ReadError(f"{name}: part {e.member} expands {e.ratio:.0f}-fold (a zip bomb?); not read") from e
        if e.kind == "cells":
            raise ReadError(f"{name}: a sheet declares {e.rows:,} rows × {e.cols:,} columns "
                            f"(more than {MAX_XLSX_CELLS:,} cells); delete what lies outside the "
                            "table and save again") from e
        if e.kind == "method":
            raise ReadError(f"{name}: part {e.member} is encrypted or compressed in a way Excel does not write; "
                            "open it in Excel and save it again as .xlsx (Excel Workbook)") from e
        raise ReadError(f"{name}: not a readable XLSX workbook (a damaged zip archive)") from e


def _check_zip(path: Path) -> None:
    """Every .xlsx is a zip archive; name what the file is instead when it is not (calamine's own
    error says only that the zip is invalid)."""
    with path.open("rb") as f:
        head = f.read(HEAD_BYTES)
        if head.startswith(b"PK\x03\x04"):
            # A zip ends with its directory: without the end record it was cut short.
            size = f.seek(0, 2)
            f.seek(max(0, size - HEAD_BYTES - 22))
            if b"PK\x05\x06" not in f.read():
                raise ReadError(f"{path.name}: not a readable XLSX workbook: the zip archive has no end "
                                "(the file is cut off: an incomplete copy?); send it again")
            _check_expansion(path)
            return
    name = path.name
    if head.startswith(OLE2_MAGIC):
        # An OLE2 file is an old .xls — or an encrypted .xlsx, which Excel wraps the same way.
        if "EncryptionInfo".encode("utf-16-le") in head:
            raise ReadError(f"{name}: a password-protected workbook; remove the password "
                            "(File › Info › Protect Workbook) and save it again as .xlsx")
        raise ReadError(f"{name}: an Excel 97–2003 .xls workbook named .xlsx; save it as .xlsx (Excel Workbook)")
    if not head:
        raise ReadError(f"{name}: not a readable XLSX workbook: the file is empty")
    low = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if low.startswith((b"<html", b"<!doctype html", b"<table", b"<meta")):
        what = "an HTML page (a web export) named .xlsx; open it in Excel and save it as .xlsx (Excel Workbook)"
    elif low.startswith(b"<?xml"):
        what = "an XML file (an Excel 2003 XML spreadsheet?) named .xlsx; save it as .xlsx (Excel Workbook)"
    elif b"\x00" not in head and _decodes(head):
        what = "text (a CSV file?) named .xlsx; send it as .csv, or save it as .xlsx (Excel Workbook)"
    else:
        what = "not a zip archive, as every .xlsx is; save it as .xlsx (Excel Workbook)"
    raise ReadError(f"{name}: not a readable XLSX workbook: {what}")


def _decodes(head: bytes) -> bool:
    for enc in ("utf-8", "gb18030"):
        try:
            head.decode(enc)
            return True
        except UnicodeDecodeError as e:
            if e.start >= len(head) - 4:  # a character cut by the end of the sample
                return True
    return False


def _sheet_summary(sheet: str, rows: list[list[str]], ds: Dataset) -> str:
    """What a sheet's first rows hold — header texts only, never a value: a cell that is not a known
    header is counted, not quoted (it may be a name or an ID)."""
    keys = known_header_keys(ds)
    if not any(_filled(r) for r in rows):
        return f"sheet {sheet!r} is empty"
    best = max(range(min(len(rows), HEADER_SEARCH_ROWS)), key=lambda i: (_known(rows[i], keys), -i))
    row = rows[best]
    known = [c for c in row if c and header_key(c) in keys]
    if not known:
        first = next(i for i, r in enumerate(rows) if _filled(r))
        return (f"sheet {sheet!r}: row {first + 1} has {_filled(rows[first])} filled cell(s), "
                f"none a {ds.code} header")
    others = _filled(row) - len(known)
    lacks = ", ".join(f"{c.name} ({c.header})" for c in missing_required(ds, row))
    return (f"sheet {sheet!r}: row {best + 1} holds {', '.join(known)}"
            + (f" and {others} other cell(s)" if others else "") + f"; lacks {lacks}")


def _choose_sheet(wb, name: str, ds: Dataset | None) -> tuple[str, Iterator[list], list[list], int]:
    """(sheet, its remaining rows, its first rows, the header's index among them). With a dataset,
    the first sheet whose header holds every required column (a notes sheet often comes first);
    without, the first sheet with a row of known headers, else the first whose row 1 has text."""
    keys = known_header_keys(ds)
    seen: list[tuple[str, list[list[str]]]] = []
    # The first sheet with text stays open: it is the likeliest fallback, and opening a sheet
    # parses all of it.
    kept: tuple[str, Iterator[list], list[list]] | None = None
    for sheet in wb.sheet_names:
        rows = _sheet_rows(wb.get_sheet_by_name(sheet))
        head = list(islice(rows, HEADER_SEARCH_ROWS + 1))
        texts = [_texts(r) for r in head]
        search = texts[:HEADER_SEARCH_ROWS]
        if (any(_filled(r) and not missing_required(ds, r) for r in search) if ds is not None
                else any(_known(r, keys) >= 2 for r in search)):
            return sheet, rows, head, _locate_header(texts, ds, f"{name}: sheet {sheet!r}: ")
        seen.append((sheet, texts))
        if kept is None and any(_filled(r) for r in texts):
            kept = (sheet, rows, head)
    filled = [s for s, t in seen if any(_filled(r) for r in t)]
    if not filled:
        raise ReadError(f"{name}: no sheet has a header row (every sheet is empty)")
    if ds is None:
        pick = next((s for s, t in seen if t and _filled(t[0])), None)
        if pick is None:
            raise ReadError(f"{name}: no sheet has a header row")
    elif len(filled) == 1:
        pick = filled[0]  # the one sheet there is: the header mapping names what it lacks
    else:
        raise ReadError(f"{name}: no sheet has a header with the required columns of {ds.code}: "
                        + "; ".join(_sheet_summary(s, t, ds) for s, t in seen)
                        + "; put the data on a sheet whose row 1 is the header")
    if kept is not None and kept[0] == pick:
        _, rows, head = kept
    else:
        rows = _sheet_rows(wb.get_sheet_by_name(pick))
        head = list(islice(rows, HEADER_SEARCH_ROWS + 1))
    return pick, rows, head, _locate_header([_texts(r) for r in head], ds, f"{name}: sheet {pick!r}: ")


def read_xlsx(path: Path, dataset: Dataset | None = None) -> RawTable:
    from python_calamine import CalamineWorkbook

    _check_zip(path)
    try:
        with collector.paused():
            wb = CalamineWorkbook.from_path(str(path))
            sheet, rows, head, k = _choose_sheet(wb, path.name, dataset)
            first = head[k]
            width = len(first)
            header = [str(c).strip() if c is not None else "" for c in first]
            numeric: set[tuple[int, int]] = set()
            blanks: list[bool] = []
            frames, done, body = [], 0, chain(head[k + 1:], rows)
            while chunk := list(islice(body, XLSX_CHUNK_ROWS)):
                frames.append(_chunk_frame(chunk, width, numeric, done, blanks))
                done += len(chunk)
            if not frames:  # a header without rows: its columns, empty
                frames.append(_chunk_frame([], width, numeric, 0))
            errors = _error_cells(path, sheet, k + 2, width) if any(blanks) else {}
    except ReadError:
        raise
    except Exception as e:  # calamine raises several types for broken zips and XML
        raise _unreadable(path, e) from e
    data = pl.concat(frames).rechunk()
    # Trailing rows Excel keeps formatted but empty are not data; blank rows between data rows stay
    # (as rows without values) so that every later row keeps its number.
    # A row whose only value is an error cell is not padding.
    kept = _drop_trailing_blank(data, min_rows=max((r + 1 for r, _ in errors), default=0))
    return RawTable(header, kept, "xlsx", numeric_cells=frozenset(numeric), first_data_row=k + 2, error_cells=errors)


def _error_cells(path: Path, sheet: str, first_data_row: int, width: int) -> dict[tuple[int, int], str]:
    """The data cells holding an Excel error value, as (data row from 0, column) → the value: calamine
    read them as empty, which they are not (a formula failed: #N/A of a lookup, #DIV/0!…). Looked for
    only when some cell came empty, as every error cell does."""
    return {(row - first_data_row, column): value for (row, column), value in xlsx_errors.cells(path, sheet).items()
            if row >= first_data_row and column < width}


# calamine refuses a workbook whose cells hold an error value it does not know (Excel 365's #SPILL!…).
_UNKNOWN_ERROR_VALUE = re.compile(r"Unsupported cell error value '([^']{1,40})'")


def _unreadable(path: Path, e: Exception) -> ReadError:
    """Why calamine could not read the workbook, naming the sheet and cell where it can."""
    m = _UNKNOWN_ERROR_VALUE.search(str(e))
    where = xlsx_errors.locate(path, m.group(1)) if m else None
    if m and where:
        sheet, cell = where
        return ReadError(f"{path.name}: sheet {sheet!r} cell {cell or '(no reference)'} holds the Excel error value "
                         f"{m.group(1)}, which cannot be read (a formula's result); ask the department to send "
                         "the sheet with values instead of formulas")
    return ReadError(f"{path.name}: not a readable XLSX workbook ({type(e).__name__}: {e})")


def _check_parquet_expansion(path: Path) -> None:
    """The sizes a Parquet file declares, checked before it is decoded (a few hundred KB can
    decode to gigabytes)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as e:
        raise ReadError(f"{path.name}: not a readable Parquet file ({type(e).__name__})") from e
    expanded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    size = path.stat().st_size
    if expanded > MAX_XLSX_EXPANDED or (expanded > 2**27 and expanded / max(size, 1) > MAX_XLSX_RATIO):
        raise ReadError(f"{path.name}: the Parquet file expands to {expanded / 2**20:,.0f} MB from "
                        f"{size / 2**20:,.1f} MB (a decompression bomb?); not read")
    # Dictionary and run-length encoding hide repeated values from those sizes; rows are not hidden.
    # An extract of people takes bytes per row (distinct IDs); under one byte a row is repetition.
    if meta.num_rows > 1_000_000 and size / meta.num_rows < 1:
        raise ReadError(f"{path.name}: declares {meta.num_rows:,} rows in {size / 1024:,.0f} KB (repeated values: "
                        "a decompression bomb?); not read")


def read_parquet(path: Path) -> RawTable:
    _check_parquet_expansion(path)
    try:
        df = pl.read_parquet(path)
    except Exception as e:
        raise ReadError(f"{path.name}: not a readable Parquet file ({e})") from e
    header = list(df.columns)
    nested = [c for c, t in df.schema.items() if t.is_nested() or t == pl.Binary or t == pl.Object]
    if nested:
        raise ReadError(f"{path.name}: column(s) {', '.join(map(repr, nested[:5]))} hold lists, structs or binary "
                        "data, not values; deliver plain columns")
    try:
        out = df.select([pl.col(c).cast(pl.String).alias(f"c{i}") for i, c in enumerate(header)])
    except Exception as e:
        raise ReadError(f"{path.name}: a column cannot be read as text ({type(e).__name__})") from e
    return RawTable(header, out, "parquet", column_types=tuple(str(t).lower() for t in df.dtypes))


def read_table(path: Path, dataset: Dataset | None = None, data: bytes | None = None) -> RawTable:
    """Read a file as text columns. With the file's dataset, a workbook's sheet and a header below a
    title are chosen by whether the header holds the dataset's required columns; without, by
    whether it holds headers known to any dataset. `data`: a CSV file's bytes, already read."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return read_csv(path, dataset) if data is None else read_csv_bytes(data, path.name, dataset)
    if suffix == ".xlsx":
        return read_xlsx(path, dataset)
    if suffix == ".parquet":
        return read_parquet(path)
    raise ReadError(f"{path.name}: unsupported file type {suffix or '(none)'}; send CSV, XLSX or Parquet")
