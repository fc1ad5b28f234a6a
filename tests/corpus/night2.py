"""Bad deliveries of night 2 (2026-11-21) of the tiny synthetic prefecture (seed 11): the recipes.

A recipe turns one delivered file of the night into a bad delivery (rewrites, replaces, adds or
removes files), deterministically: every choice is by position, never random. It is applied to a
copy of the night folder, `<inbox>/2026-11-21`, whose sibling `<inbox>/2026-11-20` (night 1) is
there too (a symlink to another night's file, the students file education skips on night 2).
Files are written with the helpers the synth uses (polars `write_csv` in the department's
encoding and delimiter, xlsxwriter for workbooks, polars / pyarrow for Parquet).

Each recipe says what ingest must make of the file — its status (refused | held | accepted) and a
fragment of its load-log message — and why. The fragments are the contract with the ingest code:
    cut CSV "the last record is cut"; checksum mismatch "checksum"; still being written "still
    being written"; row count low "fewer than"; high "more than"; valid-ID share drop "valid ID";
    distinct IDs collapse "distinct ID"; required person column empty "is empty"; duplicate rows
    past the limit "duplicate rows"; Parquet integer IDs "stored as numbers"; symlink "symbolic
    link"; FIFO, device or folder "not a regular file"; rejected share too high "rows rejected".
For an accepted file the fragment is looked for in its whole load-log row (message and the other
columns: the evidence that the file was whole, say). `cause=True` marks the cases where the
message must name the true cause (encoding, line endings, header row, sheet, format): refused
naming it, or — should the reader learn to read such a file — accepted with exactly the clean
file's rows and nothing rejected.

The synth ends every night folder with an empty `_SUCCESS` marker (a complete drop-off), so files
are taken on it; `night_without_marker` removes it, and the growing-file recipe removes it until its
writer has finished. `ISSUE_CASES` maps each numbered finding of issue 14 to what covers it.

`tests/test_bad_nights.py` runs every recipe into night 2 after night 1; `CORPUS_RECIPES` replays
the bad files of tests/corpus/files (expected.json) there too, each in place of its dataset's file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from bidui.datasets import BY_CODE, DatasetNameError, dataset_for_filename, header_key
from bidui.ids import check_char
from bidui.synth.writers import DELIVERIES, file_name

NIGHT = date(2026, 11, 21)
NIGHT1 = date(2026, 11, 20)
HERE = Path(__file__).parent


@dataclass(frozen=True)
class Recipe:
    id: str
    dataset: str | None  # the dataset of the file it damages
    apply: Callable[[Path], None]  # (night_folder) -> None
    status: str  # refused | held | accepted
    fragment: str
    note: str
    file: str | None  # the bad file's name in the folder; None: not valid UTF-8 (found by elimination)
    cause: bool = False  # refused naming the cause, or accepted with exactly the clean rows
    alt: tuple[str, str] | None = None  # another acceptable (status, fragment)
    clean_rows: bool = False  # when accepted: exactly the clean file's rows, none rejected
    keeps_rows: int | None = None  # when accepted: the clean file's rows plus this many (no row dropped)
    not_stored: str | None = None  # SQL condition no row of ds_<dataset> for the night may meet
    writer: Callable[[Path, Path], subprocess.Popen] | None = None  # (night_folder, stop_file): a live writer

    def outcomes(self) -> list[tuple[str, str]]:
        """Acceptable (status, fragment) pairs, the expected one first."""
        out = [(self.status, self.fragment)]
        if self.alt:
            out.append(self.alt)
        elif self.cause:
            out.append(("accepted", ""))
        return out


# ---------------------------------------------------------------- reading and writing as delivered


def name(dataset: str, night: date = NIGHT) -> str:
    return file_name(dataset, night)


def path(folder: Path, dataset: str) -> Path:
    return folder / name(dataset)


def _encoding(dataset: str) -> str:
    return DELIVERIES[dataset].encoding


def read_text(p: Path, dataset: str) -> str:
    return p.read_bytes().decode("utf-8-sig" if _encoding(dataset) != "gb18030" else "gb18030")


def encode(text: str, dataset: str) -> bytes:
    enc = _encoding(dataset)
    data = text.encode("gb18030" if enc == "gb18030" else "utf-8")
    return b"\xef\xbb\xbf" + data if enc == "utf-8-sig" else data


def write_text(p: Path, text: str, dataset: str) -> None:
    p.write_bytes(encode(text, dataset))


def read_csv(p: Path, dataset: str) -> pl.DataFrame:
    """The delivered table, every value text, under the delivered headers."""
    text = read_text(p, dataset)
    return pl.read_csv(io.BytesIO(text.encode("utf-8")), separator=DELIVERIES[dataset].sep, infer_schema=False)


def csv_text(df: pl.DataFrame, dataset: str) -> str:
    buf = io.BytesIO()
    df.write_csv(buf, separator=DELIVERIES[dataset].sep, null_value="")
    return buf.getvalue().decode("utf-8")


def write_csv(p: Path, df: pl.DataFrame, dataset: str) -> None:
    """As the synth writes a department's CSV (polars write_csv, then its encoding and BOM)."""
    write_text(p, csv_text(df, dataset), dataset)


def column(df_or_header: pl.DataFrame | list[str], dataset: str, canonical: str) -> str:
    """The delivered header of a canonical column."""
    header = df_or_header.columns if isinstance(df_or_header, pl.DataFrame) else df_or_header
    keys = {header_key(h) for h in BY_CODE[dataset].column(canonical).headers}
    return next(h for h in header if header_key(h) in keys)


def read_xlsx(p: Path) -> list[list[object]]:
    """The first sheet's rows as Python values (text, float, date), the header first."""
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(p))
    return [list(r) for r in wb.get_sheet_by_name(wb.sheet_names[0]).to_python()]


def write_xlsx(p: Path, sheets: list[tuple[str, list[list[object]]]],
               merges: dict[str, list[tuple[int, int, int, int, str]]] | None = None) -> None:
    """A workbook with xlsxwriter: numbers stay number cells, dates date cells, text text."""
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(p))
    wb.set_properties({"created": datetime(2026, 11, 21, 1, 0, 0)})  # the same bytes every time
    dates = wb.add_format({"num_format": "yyyy-mm-dd"})
    for sheet_name, rows in sheets:
        ws = wb.add_worksheet(sheet_name)
        for first_row, first_col, last_row, last_col, text in (merges or {}).get(sheet_name, []):
            ws.merge_range(first_row, first_col, last_row, last_col, text)
        merged = {(r, c) for r0, c0, r1, c1, _ in (merges or {}).get(sheet_name, [])
                  for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)}
        for r, row in enumerate(rows):
            for c, v in enumerate(row):
                if v is None or v == "" or (r, c) in merged:
                    continue
                if isinstance(v, bool):
                    ws.write_boolean(r, c, v)
                elif isinstance(v, int | float):
                    ws.write_number(r, c, v)
                elif isinstance(v, datetime | date):
                    ws.write_datetime(r, c, v if isinstance(v, datetime) else datetime(v.year, v.month, v.day), dates)
                else:
                    ws.write_string(r, c, str(v))
    wb.close()


def cell_text(v: object) -> str:
    """A cell as Excel shows it (15 significant digits for numbers)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".15g").upper()
    if isinstance(v, datetime | date):
        return v.isoformat()[:10]
    return str(v)


def norm_id(raw: object) -> str:
    return unicodedata.normalize("NFKC", str(raw or "")).strip().upper()


def hukou_people(folder: Path) -> tuple[set[str], set[str]]:
    """IDs and names in the night's hukou file (to find records of outsiders, who link to nobody)."""
    df = read_csv(path(folder, "hukou"), "hukou")
    ids = {norm_id(v) for v in df[column(df, "hukou", "id_number")].to_list()}
    names = {str(v).strip() for v in df[column(df, "hukou", "name")].to_list() if v}
    return ids, names


def outsider_row(folder: Path, dataset: str, df: pl.DataFrame, id_col: str, name_col: str, start: int = 100) -> int:
    """The first row at or after `start` whose person is in no hukou record (an outsider): a value
    damaged there can change no clue, whatever ingest makes of it."""
    ids, names = hukou_people(folder)
    for i in range(start, df.height):
        raw_id, raw_name = norm_id(df[id_col][i]), str(df[name_col][i] or "").strip()
        if len(raw_id) == 18 and raw_id not in ids and raw_id[:15] not in {x[:15] for x in ids} and raw_name not in names:
            return i
    raise AssertionError(f"no outsider row in {dataset}")


def set_cell(df: pl.DataFrame, col: str, row: int, value: str | None) -> pl.DataFrame:
    return df.with_columns(df[col].scatter(row, value))


# ---------------------------------------------------------------- cut, growing


def cut_mid_row(dataset: str, share: float) -> Callable[[Path], None]:
    """Keep `share` of the text, ending inside a record (never on a line end)."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        text = read_text(p, dataset)
        cut = int(len(text) * share)
        while text[cut - 1] == "\n" or text[cut] in "\r\n" or text[cut - 1] in DELIVERIES[dataset].sep:
            cut -= 1
        write_text(p, text[:cut], dataset)
    return apply


def cut_inside_character(dataset: str) -> Callable[[Path], None]:
    """End the file after the first byte of its last Chinese character (a copy stopped inside it)."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        text = read_text(p, dataset)
        last = max(i for i, ch in enumerate(text) if ord(ch) > 0x7F)
        data = encode(text[:last + 1], dataset)
        p.write_bytes(data[:len(data) - len(text[last].encode("gb18030" if _encoding(dataset) == "gb18030" else "utf-8")) + 1])
    return apply


def keep_rows(dataset: str, share: float, rounding: Callable[[float], int] = round) -> Callable[[Path], None]:
    """Keep the first `share` of the data rows: a whole file, just shorter."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        lines = read_text(p, dataset).splitlines(keepends=True)
        write_text(p, "".join(lines[: 1 + rounding((len(lines) - 1) * share)]), dataset)
    return apply


GROWING_REST = ".growing-rest"  # beside the night folder, in the inbox: what the writer still has to write

WRITER = r"""
import os, sys, time
target, rest, stop, interval, marker = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
lines = open(rest, "rb").read().splitlines(keepends=True)
with open(target, "ab", buffering=0) as f:
    i = 0
    while i < len(lines) and not os.path.exists(stop):
        f.write(lines[i])
        i += 1
        time.sleep(interval)
    f.write(b"".join(lines[i:]))
    os.fsync(f.fileno())
if marker:
    open(marker, "wb").close()
"""
NIGHT_MARKER = "_SUCCESS"  # the synth writes it last into every night folder, as a department's drop-off does


def growing_start(folder: Path) -> None:
    """hukou delivered up to 90% of its rows so far, and the night's _SUCCESS marker not yet
    there (the drop-off writes it last); the writer appends the rest, then writes the marker."""
    p = path(folder, "hukou")
    lines = read_text(p, "hukou").splitlines(keepends=True)
    keep = 1 + round((len(lines) - 1) * 0.9)
    write_text(p, "".join(lines[:keep]), "hukou")
    (folder.parent / GROWING_REST).write_bytes(encode("".join(lines[keep:]), "hukou"))
    marker = folder / NIGHT_MARKER
    (folder.parent / (GROWING_REST + ".marker")).write_text("1" if marker.exists() else "", encoding="utf-8")
    marker.unlink(missing_ok=True)


def start_writer(folder: Path, stop: Path, interval: float = 0.2) -> subprocess.Popen:
    """A real writer process: one hukou row every `interval` seconds until `stop` exists (or the
    rows run out: 200 rows, 40 s), then the rest at once, then the night's marker if the night
    had one. Whole lines only: the file is always structurally whole, only still growing."""
    had_marker = (folder.parent / (GROWING_REST + ".marker")).read_text(encoding="utf-8") == "1"
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path(folder, "hukou")), str(folder.parent / GROWING_REST),
                             str(stop), str(interval), str(folder / NIGHT_MARKER) if had_marker else ""])


# ---------------------------------------------------------------- identity columns


def blank_csv_column(dataset: str, canonical: str, source_night: date = NIGHT) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        src = folder.parent / source_night.isoformat() / name(dataset, source_night)
        df = read_csv(src, dataset)
        col = column(df, dataset, canonical)
        write_csv(path(folder, dataset), df.with_columns(pl.lit(None, pl.String).alias(col)), dataset)
    return apply


def medical_insurance_ids_blank(folder: Path) -> None:
    p = path(folder, "medical_insurance")
    df = pl.read_parquet(p)
    df.with_columns(pl.lit(None, pl.String).alias(column(df, "medical_insurance", "id_number"))).write_parquet(p)


def vehicles_ids_blank(folder: Path) -> None:
    p = path(folder, "vehicles")
    rows = read_xlsx(p)
    col = rows[0].index(column([str(h) for h in rows[0]], "vehicles", "owner_id_number"))
    write_xlsx(p, [("Sheet1", [rows[0]] + [[None if c == col else v for c, v in enumerate(r)] for r in rows[1:]])])


def swap_headers(dataset: str, a: str, b: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        df = read_csv(p, dataset)
        ha, hb = column(df, dataset, a), column(df, dataset, b)
        write_csv(p, df.rename({ha: "__a"}).rename({hb: ha}).rename({"__a": hb}), dataset)
    return apply


def medical_insurance_ids_int64(folder: Path) -> None:
    """A department that let its tool store the ID column as int64: IDs ending in X are null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = path(folder, "medical_insurance")
    table = pq.read_table(p)
    col = column(list(table.column_names), "medical_insurance", "id_number")
    ids = [norm_id(v) for v in table.column(col).to_pylist()]
    as_int = pa.array([int(v) if v.isdigit() else None for v in ids], type=pa.int64())
    pq.write_table(table.set_column(table.column_names.index(col), col, as_int), p)


def ids_scientific_6_digits(dataset: str, canonical: str) -> Callable[[Path], None]:
    """Every ID as a spreadsheet shows a number in a narrow column: 5.29001E+17."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        df = read_csv(p, dataset)
        col = column(df, dataset, canonical)
        sci = [format(float(norm_id(v)[:17] + "0"), ".5E") for v in df[col].to_list()]
        write_csv(p, df.with_columns(pl.Series(col, sci)), dataset)
    return apply


def hukou_check_chars_broken(folder: Path) -> None:
    """Every ID's check character wrong (an export that recomputed it badly)."""
    p = path(folder, "hukou")
    df = read_csv(p, "hukou")
    col = column(df, "hukou", "id_number")

    def broken(v: str) -> str:
        v = norm_id(v)
        wrong = "0" if v[-1] == "X" else ("X" if v[-1] == "9" else str(int(v[-1]) + 1))
        return v[:-1] + wrong

    write_csv(p, df.with_columns(pl.Series(col, [broken(v) for v in df[col].to_list()])), "hukou")


def hukou_ids_one_person(folder: Path) -> None:
    """Every row carries the first row's (valid) ID: a join gone wrong upstream."""
    p = path(folder, "hukou")
    df = read_csv(p, "hukou")
    col = column(df, "hukou", "id_number")
    write_csv(p, df.with_columns(pl.lit(df[col][0]).alias(col)), "hukou")


# ---------------------------------------------------------------- rows: duplicates, counts


def every_row_times(dataset: str, times: int) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        df = read_csv(p, dataset)
        write_csv(p, pl.concat([df] * times), dataset)
    return apply


def duplicates_appended(dataset: str, extra: int) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        df = read_csv(p, dataset)
        copies = pl.concat([df] * math.ceil(extra / df.height)).head(extra)
        write_csv(p, pl.concat([df, copies]), dataset)
    return apply


def medical_insurance_share(share: float) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, "medical_insurance")
        df = pl.read_parquet(p)
        df.head(math.ceil(df.height * share)).write_parquet(p)
    return apply


SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张"
GIVEN = ["子墨", "一诺", "思远", "若溪", "景行", "明轩", "雨桐", "梓涵", "沐宸", "语汐"]


def payroll_twenty_times(folder: Path) -> None:
    """1,000 more staff, all distinct, from outside the prefecture (Guiyang IDs): 20× the rows."""
    p = path(folder, "payroll")
    df = read_csv(p, "payroll")
    id_col, name_col = column(df, "payroll", "id_number"), column(df, "payroll", "name")
    extra = []
    for i in range(1000):
        first17 = f"520102{1970 + i % 30}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        row = dict(df.row(i % df.height, named=True))
        row[id_col] = first17 + check_char(first17)
        row[name_col] = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)]
        extra.append(row)
    write_csv(p, pl.concat([df, pl.DataFrame(extra, schema=df.schema)]), "payroll")


# ---------------------------------------------------------------- values


def register_ids(folder: Path) -> set[str]:
    df = read_csv(path(folder, "register_members"), "register_members")
    return {norm_id(v) for v in df[column(df, "register_members", "id_number")].to_list()}


def property_usage_bad(folder: Path) -> None:
    """3% of rows (13 of 421) with a use that is no enumeration value (商住): first the counted
    urban commercial housing of register members (URBAN_PROPERTY clues, which must not go), then
    other counted housing, then the rest."""
    p = path(folder, "property")
    df = read_csv(p, "property")
    usage, region, kind, owner = (column(df, "property", c) for c in ("usage", "region_type", "house_type",
                                                                      "owner_id_number"))
    members = register_ids(folder)

    def rank(i: int) -> int:
        counted = df[region][i] == "城镇" and df[kind][i] == "商品房"
        return 0 if counted and norm_id(df[owner][i]) in members else 1 if counted else 2

    rows = sorted(range(df.height), key=lambda i: (rank(i), i))[: round(df.height * 0.03)]
    write_csv(p, df.with_columns(df[usage].scatter(rows, "商住")), "property")


def hukou_changes_type_bad(folder: Path) -> None:
    """10% of change records with a type that is no enumeration value."""
    p = path(folder, "hukou_changes")
    df = read_csv(p, "hukou_changes")
    col = column(df, "hukou_changes", "change_type")
    write_csv(p, df.with_columns(df[col].scatter(list(range(0, df.height, 10)), "其他变动")), "hukou_changes")


def hukou_changes_nonagri_type_bad(folder: Path) -> None:
    """农转非 records (the evidence of NONAGRI_HUKOU), register members' first, with a type that is no
    enumeration value: 4% of the rows, under the 5% limit. Seen: the real clue marked gone, a false one dispatched, when
    the rule's reads left out hukou_changes."""
    p = path(folder, "hukou_changes")
    df = read_csv(p, "hukou_changes")
    col = column(df, "hukou_changes", "change_type")
    members = register_ids(folder)
    ids = [norm_id(v) for v in df[column(df, "hukou_changes", "id_number")].to_list()]
    rows = [i for i, v in enumerate(df[col].to_list()) if v == "农转非"]
    rows = sorted(rows, key=lambda i: (ids[i] not in members, i))[: int(df.height * 0.04)]
    assert rows and ids[rows[0]] in members
    write_csv(p, df.with_columns(df[col].scatter(rows, "农转居")), "hukou_changes")


def claims_extra_bill(cost: str) -> Callable[[Path], None]:
    """One more bill, for an outsider, with this total cost."""
    def apply(folder: Path) -> None:
        p = path(folder, "medical_claims")
        df = read_csv(p, "medical_claims")
        i = outsider_row(folder, "medical_claims", df, column(df, "medical_claims", "id_number"),
                         column(df, "medical_claims", "name"))
        bill = df.slice(i, 1).with_columns(pl.lit(cost).alias(column(df, "medical_claims", "total_cost")))
        write_csv(p, pl.concat([df, bill]), "medical_claims")
    return apply


def claims_outsider_name(make: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, "medical_claims")
        df = read_csv(p, "medical_claims")
        name_col = column(df, "medical_claims", "name")
        i = outsider_row(folder, "medical_claims", df, column(df, "medical_claims", "id_number"), name_col)
        write_csv(p, set_cell(df, name_col, i, make(df[name_col][i])), "medical_claims")
    return apply


def deaths_first_date(value: Callable[[dict, str], str]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, "deaths")
        df = read_csv(p, "deaths")
        col = column(df, "deaths", "death_date")
        write_csv(p, set_cell(df, col, 0, value(df.row(0, named=True), column(df, "deaths", "id_number"))), "deaths")
    return apply


def vehicles_id_in_date(folder: Path) -> None:
    """An outsider's car whose first-registration date holds the owner's ID number."""
    p = path(folder, "vehicles")
    rows = read_xlsx(p)
    header = [str(h) for h in rows[0]]
    id_col = header.index(column(header, "vehicles", "owner_id_number"))
    name_col = header.index(column(header, "vehicles", "owner_name"))
    date_col = header.index(column(header, "vehicles", "register_date"))
    text = pl.DataFrame({"id": [cell_text(r[id_col]) for r in rows[1:]], "name": [cell_text(r[name_col]) for r in rows[1:]]})
    i = outsider_row(folder, "vehicles", text, "id", "name")
    rows[1 + i][date_col] = norm_id(rows[1 + i][id_col])
    write_xlsx(p, [("Sheet1", rows)])


# ---------------------------------------------------------------- the inbox itself


def symlink_to(target: Callable[[Path], Path], dataset: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        p.unlink()
        p.symlink_to(target(folder))
    return apply


def fifo(dataset: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        p.unlink()
        os.mkfifo(p)
    return apply


def students_folder(folder: Path) -> None:
    """A folder named like night 2's students file (an unzip that made a folder), the file inside."""
    d = path(folder, "students")
    d.mkdir()
    src = folder.parent / NIGHT1.isoformat() / name("students", NIGHT1)
    (d / name("students")).write_bytes(src.read_bytes())


GBK_NAME = "机动车".encode("gbk") + b"_20261121.csv"


def vehicles_gbk_name(folder: Path) -> None:
    """The vehicles extract as CSV under a GBK-encoded name (as a zip made on Windows leaves it)."""
    p = path(folder, "vehicles")
    rows = read_xlsx(p)
    df = pl.DataFrame([[cell_text(v) or None for v in r] for r in rows[1:]], schema=[str(h) for h in rows[0]],
                      orient="row")
    buf = io.BytesIO()
    df.write_csv(buf, null_value="")
    fd = os.open(os.fsencode(folder) + b"/" + GBK_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, buf.getvalue())
    finally:
        os.close(fd)
    p.unlink()


# ---------------------------------------------------------------- encodings and layouts


def hukou_big5(folder: Path) -> None:
    """hukou from a system that writes traditional characters in Big5."""
    import opencc

    p = path(folder, "hukou")
    p.write_bytes(opencc.OpenCC("s2t").convert(read_text(p, "hukou")).encode("big5", errors="replace"))


def hukou_utf16le(folder: Path) -> None:
    p = path(folder, "hukou")
    p.write_bytes(read_text(p, "hukou").encode("utf-16-le"))


def line_endings(dataset: str, ending: str) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        write_text(p, read_text(p, dataset).replace("\n", ending), dataset)
    return apply


STRAY_ROW = 300


def property_stray_quote(folder: Path) -> None:
    """Ten quoted addresses spanning two lines (rows 10, 20, … 100: valid CSV), then at data row
    300 a stray quote. The true row is 300; counting physical lines gives 310."""
    p = path(folder, "property")
    df = read_csv(p, "property")
    loc = column(df, "property", "location")
    values = df[loc].to_list()
    for r in range(10, 101, 10):
        v = values[r - 1] or "福江区某某路"
        values[r - 1] = v[:4] + "\n" + v[4:]
    marker = "@@STRAY@@"
    original = values[STRAY_ROW - 1] or "福江区某某路"
    values[STRAY_ROW - 1] = marker
    text = csv_text(df.with_columns(pl.Series(loc, values)), "property")
    write_text(p, text.replace(marker, f'"{original[:3]}"{original[3:]}'), "property")


def vehicles_title_row(folder: Path) -> None:
    p = path(folder, "vehicles")
    rows = read_xlsx(p)
    width = len(rows[0])
    write_xlsx(p, [("Sheet1", [[None] * width, *rows])],
               merges={"Sheet1": [(0, 0, 0, width - 1, "机动车登记信息（2026年11月，福江区交警大队导出）")]})


def payroll_title_row(folder: Path) -> None:
    """A title line above the header, padded with commas as Excel saves it."""
    p = path(folder, "payroll")
    text = read_text(p, "payroll")
    width = text.split("\n", 1)[0].count(",")
    write_text(p, "财政供养人员名单（2026年11月）" + "," * width + "\n" + text, "payroll")


def businesses_notes_first(folder: Path) -> None:
    p = path(folder, "businesses")
    rows = read_xlsx(p)
    notes = [["数据说明"], ["本表由福江区市场监督管理局导出，统计截至2026年11月20日。"], ["字段含义见第二个工作表表头。"]]
    write_xlsx(p, [("说明", notes), ("市场主体", rows)])


def dangerous_housing_merged_header(folder: Path) -> None:
    """A two-row header: groups merged across the first row (户主信息 over ID and name, 鉴定信息
    over grade, date and renovation), the village code merged down both rows."""
    p = path(folder, "dangerous_housing")
    rows = read_xlsx(p)
    header = [str(h) for h in rows[0]]
    village = header.index(column(header, "dangerous_housing", "village_code"))
    second = [None if i == village else h for i, h in enumerate(header)]
    assert village == 2, header  # the layout below is for 户主证件号码, 姓名, 村代码, 鉴定等级, 鉴定日期, 改造状态
    write_xlsx(p, [("Sheet1", [[None] * len(header), second, *rows[1:]])],
               merges={"Sheet1": [(0, 0, 0, 1, "户主信息"), (0, 2, 1, 2, header[village]), (0, 3, 0, 5, "鉴定信息")]})


def vehicles_xls(folder: Path) -> None:
    """An Excel 97–2003 workbook (OLE2 compound file) saved under the .xlsx name."""
    header = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(16) + bytes.fromhex("3e000300feff0900060000000000000000000000")
    path(folder, "vehicles").write_bytes(header + bytes(512 - len(header)) + bytes(4096))


def trailing_empty_rows(dataset: str, rows: int = 10) -> Callable[[Path], None]:
    """Rows of separators only at the end, as Excel leaves formatted but empty rows."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        text = read_text(p, dataset)
        sep = DELIVERIES[dataset].sep
        width = text.split("\n", 1)[0].count(sep)
        write_text(p, text + (sep * width + "\n") * rows, dataset)
    return apply


# ---------------------------------------------------------------- completion evidence


def checksum_file(dataset: str, algo: str, drop_rows: int = 0) -> Callable[[Path], None]:
    """`<file>.<algo>` as sha256sum / md5sum write it, for the complete file; with `drop_rows`
    the file then loses its last rows (cut on a line end: only the checksum tells)."""
    def apply(folder: Path) -> None:
        p = path(folder, dataset)
        digest = hashlib.new(algo, p.read_bytes()).hexdigest()
        (folder / f"{p.name}.{algo}").write_text(f"{digest}  {p.name}\n", encoding="utf-8")
        if drop_rows:
            lines = read_text(p, dataset).splitlines(keepends=True)
            write_text(p, "".join(lines[:-drop_rows]), dataset)
    return apply


def success_marker(folder: Path) -> None:
    """The night's marker (the synth writes it too; here it is written again, empty)."""
    (folder / NIGHT_MARKER).write_bytes(b"")


# ---------------------------------------------------------------- the recipes


def _r(id: str, dataset: str | None, apply: Callable[[Path], None], status: str, fragment: str, note: str,
       file: str | bool | None = True, **kw: object) -> Recipe:
    return Recipe(id, dataset, apply, status, fragment, note, name(dataset) if file is True and dataset else file or None,
                  **kw)  # type: ignore[arg-type]


CUT = "the last record is cut"
MONEY_BAD = "total_cost < 0 OR total_cost > 1e10 OR isnan(total_cost) OR isinf(total_cost)"

RECIPES: list[Recipe] = [
    # 1. cut and growing files
    _r("hukou_cut_mid_row_90", "hukou", cut_mid_row("hukou", 0.90), "held", CUT,
       "hukou cut mid-row at 90% of its text (a transfer that stopped); the cut row is no rejected row"),
    _r("hukou_cut_mid_row_50", "hukou", cut_mid_row("hukou", 0.50), "held", CUT, "hukou cut mid-row at 50%"),
    _r("hukou_cut_mid_row_99", "hukou", cut_mid_row("hukou", 0.99), "held", CUT,
       "hukou cut mid-row at 99%: the row count alone would pass"),
    _r("hukou_cut_at_row_end_90", "hukou", keep_rows("hukou", 0.90), "held", "fewer than",
       "hukou cut exactly on a line end at 90% of its rows: structurally whole, held by hukou's row-count limit"),
    _r("deaths_cut_inside_character", "deaths", cut_inside_character("deaths"), "held", CUT,
       "a UTF-8 death-certificate file that stops after the first byte of its last Chinese character: cut, not "
       "another encoding"),
    _r("hukou_cut_inside_character", "hukou", cut_inside_character("hukou"), "held", CUT,
       "the GB18030 hukou file stopping after the first byte of its last Chinese character"),
    _r("hukou_cut_at_row_end_98", "hukou", keep_rows("hukou", 0.98), "held", "are all missing tonight",
       "hukou cut exactly on a line end at 98% of its rows: inside hukou's row-count limit (97%), held because "
       "night 1's last rows are all missing while those before them came again"),
    _r("medical_claims_cut_at_row_end_96", "medical_claims", keep_rows("medical_claims", 0.96), "held",
       "are all missing tonight", "medical bills cut on a line end at 96% of their rows (limit 95%): missing "
       "bills would undo medical clues; held by the missing tail"),
    _r("hukou_still_being_written", "hukou", growing_start, "held", "still being written",
       "hukou at 90% of its rows, the night's _SUCCESS not yet written, while a writer process appends the rest, "
       "a row every 0.2 s, during the run (then writes the marker)",
       writer=start_writer),
    _r("medical_claims_cut_mid_row_90", "medical_claims", cut_mid_row("medical_claims", 0.90), "held", CUT,
       "medical bills (UTF-8, no BOM) cut mid-row at 90%"),
    _r("hukou_changes_cut_mid_row_90", "hukou_changes", cut_mid_row("hukou_changes", 0.90), "held", CUT,
       "hukou changes (GB18030, tab) cut mid-row at 90%"),
    # 2. hollow identity columns
    _r("medical_insurance_ids_blank", "medical_insurance", medical_insurance_ids_blank, "held", "is empty",
       "medical insurance (Parquet) with the ID column entirely null: UNINSURED for everyone if taken"),
    _r("students_ids_blank", "students", blank_csv_column("students", "id_number", NIGHT1), "held", "is empty",
       "a students file (night 1's, education skips night 2) with the ID column entirely blank"),
    _r("vehicles_ids_blank", "vehicles", vehicles_ids_blank, "held", "is empty",
       "vehicles (XLSX) with the owner ID column entirely blank"),
    _r("register_members_ids_blank", "register_members", blank_csv_column("register_members", "id_number"), "held",
       "is empty", "the register's members with the ID column entirely blank"),
    _r("hukou_changes_names_blank", "hukou_changes", blank_csv_column("hukou_changes", "name"), "held", "is empty",
       "hukou changes with the name column entirely blank (a required person column)"),
    _r("payroll_name_id_headers_swapped", "payroll", swap_headers("payroll", "id_number", "name"), "held", "valid ID",
       "payroll with the name and ID headers swapped: the ID column holds names"),
    _r("medical_insurance_ids_int64", "medical_insurance", medical_insurance_ids_int64, "refused",
       "stored as numbers", "medical insurance (Parquet) with the ID column as int64: IDs ending in X are null"),
    _r("business_investors_ids_6_digits", "business_investors",
       ids_scientific_6_digits("business_investors", "investor_id_number"), "held", "valid ID",
       "every investor ID written 5.29001E+17 (6 significant digits): unusable, not Excel-mangled"),
    _r("hukou_check_chars_broken", "hukou", hukou_check_chars_broken, "held", "valid ID",
       "every hukou ID with a wrong check character: the valid-ID share falls from ~100% to 0"),
    _r("hukou_ids_one_person", "hukou", hukou_ids_one_person, "held", "distinct ID",
       "every hukou row carries the first row's valid ID: distinct IDs collapse to one"),
    # 3. duplicates and row counts
    _r("medical_claims_every_row_x10", "medical_claims", every_row_times("medical_claims", 10), "held",
       "duplicate rows", "every medical bill delivered ten times: sums inflate ten-fold if taken"),
    _r("business_investors_200k_duplicates", "business_investors", duplicates_appended("business_investors", 200_000),
       "held", "duplicate rows", "200,000 duplicate rows appended to the 79-row investors file"),
    _r("medical_insurance_70_07_percent", "medical_insurance", medical_insurance_share(0.7007), "held", "fewer than",
       "medical insurance with the first 70.07% of its rows (1,394 of 1,989): just above the old 70% floor"),
    _r("payroll_twenty_times_the_rows", "payroll", payroll_twenty_times, "held", "more than",
       "payroll with 1,000 more distinct staff (from outside the prefecture): 20× the last snapshot"),
    _r("hukou_changes_type_bad_10_percent", "hukou_changes", hukou_changes_type_bad, "held", "rows rejected",
       "every tenth change record with a change type that is no enumeration value (10% > 5%)"),
    # 5. a rejected value never removes a person
    _r("hukou_changes_nonagri_type_bad", "hukou_changes", hukou_changes_nonagri_type_bad, "accepted", "change_type",
       "4% of the rows, 农转非 records of register members first, with the type 农转居 (no enumeration value): accepted, the rows kept without it; their "
       "NONAGRI_HUKOU clues neither gone nor new"),
    _r("property_usage_bad_3_percent", "property", property_usage_bad, "accepted", "usage",
       "3% of property rows (counted urban housing first) with use 商住: accepted; rows kept with usage empty, "
       "their URBAN_PROPERTY clues not gone", not_stored="usage = '商住'", keeps_rows=0),
    # 6. the inbox
    _r("hukou_symlink_to_night_1", "hukou", symlink_to(lambda f: f.parent / NIGHT1.isoformat() / name("hukou", NIGHT1),
                                                       "hukou"), "refused", "symbolic link",
       "hukou_20261121.csv is a symlink to night 1's hukou file"),
    _r("deaths_symlink_to_etc_passwd", "deaths", symlink_to(lambda f: Path("/etc/passwd"), "deaths"), "refused",
       "symbolic link", "the deaths file is a symlink to /etc/passwd"),
    _r("hukou_changes_fifo", "hukou_changes", fifo("hukou_changes"), "refused", "not a regular file",
       "a FIFO named like the hukou changes file (reading it would block forever)"),
    _r("students_folder", "students", students_folder, "refused", "not a regular file",
       "a sub-folder named 学籍信息_20261121.csv, the file inside it"),
    # 7. values out of range (a bill added for an outsider, a name of an outsider changed)
    _r("medical_claims_cost_negative", "medical_claims", claims_extra_bill("-5000"), "accepted", "total_cost",
       "one bill more with total cost -5000", not_stored=MONEY_BAD, keeps_rows=1),
    _r("medical_claims_cost_1e12", "medical_claims", claims_extra_bill("1e12"), "accepted", "total_cost",
       "one bill more with total cost 1e12 (above any ceiling)", not_stored=MONEY_BAD, keeps_rows=1),
    _r("medical_claims_cost_nan", "medical_claims", claims_extra_bill("NaN"), "accepted", "total_cost",
       "one bill more with total cost NaN", not_stored=MONEY_BAD, keeps_rows=1),
    _r("medical_claims_cost_inf", "medical_claims", claims_extra_bill("inf"), "accepted", "total_cost",
       "one bill more with total cost inf", not_stored=MONEY_BAD, keeps_rows=1),
    _r("deaths_date_2099", "deaths", deaths_first_date(lambda row, id_col: "2099年5月1日"), "held", "rows rejected",
       "a death certificate dated 2099 (1 of 7 rows: over the 5% limit)", not_stored="death_date > DATE '2027-01-01'"),
    _r("medical_claims_name_nul", "medical_claims", claims_outsider_name(lambda n: n[0] + "\x00" + n[1:]), "accepted",
       "name", "a NUL inside an outsider's name (past the first 4 KB)", not_stored="contains(name, chr(0))"),
    _r("medical_claims_name_3_5m_chars", "medical_claims", claims_outsider_name(lambda n: n + "某" * (3_500_000 - len(n))),
       "accepted", "name", "an outsider's name 3.5 M characters long (the national limit is 50)",
       not_stored="length(name) > 50"),
    # 8. file names
    _r("vehicles_file_name_gbk_bytes", "vehicles", vehicles_gbk_name, "accepted", "",
       "vehicles as CSV under a GBK-encoded name 机动车_20261121.csv (not valid UTF-8); the .xlsx removed: "
       "decoded (accepted, the clean rows) or shown escaped (refused: names no dataset), never a crash",
       file=None, alt=("refused", "names no dataset"), clean_rows=True),
    # 9. personal data in messages
    _r("deaths_id_in_date_column", "deaths", deaths_first_date(lambda row, id_col: norm_id(row[id_col])), "held",
       "rows rejected", "a death certificate whose death date holds the deceased's ID number: the message must "
       "not show it (1 of 7 rows)"),
    _r("vehicles_id_in_date_column", "vehicles", vehicles_id_in_date, "accepted", "register_date",
       "an outsider's car whose registration date holds the owner's ID number: accepted, the message masks it",
       keeps_rows=0),
    # 13. messages that name the true cause
    _r("hukou_big5", "hukou", hukou_big5, "refused", "Big5", "hukou in Big5 (traditional characters)", cause=True),
    _r("hukou_utf16le_no_bom", "hukou", hukou_utf16le, "refused", "UTF-16", "hukou in UTF-16 LE without a BOM",
       cause=True),
    _r("hukou_changes_cr_only", "hukou_changes", line_endings("hukou_changes", "\r"), "refused", "CR",
       "hukou changes with CR-only line endings (classic Mac)", cause=True),
    _r("property_stray_quote_after_multiline", "property", property_stray_quote, "refused", f"row {STRAY_ROW}",
       "ten two-line quoted addresses, then a stray quote in data row 300 (line 311 of the file)"),
    _r("vehicles_title_row", "vehicles", vehicles_title_row, "refused", "header",
       "a merged title row above the header (XLSX)", cause=True),
    _r("payroll_title_row", "payroll", payroll_title_row, "refused", "header",
       "a title line above the header, padded with commas (CSV)", cause=True),
    _r("businesses_notes_sheet_first", "businesses", businesses_notes_first, "refused", "sheet",
       "a notes sheet (说明) before the data sheet", cause=True),
    _r("dangerous_housing_merged_header", "dangerous_housing", dangerous_housing_merged_header, "refused", "header",
       "a two-row header with merged group cells", cause=True),
    _r("vehicles_xls_named_xlsx", "vehicles", vehicles_xls, "refused", ".xls",
       "an Excel 97–2003 (.xls, OLE2) workbook saved under the .xlsx name", cause=True),
    _r("business_investors_trailing_empty_rows", "business_investors", trailing_empty_rows("business_investors"),
       "accepted", "", "ten trailing rows of separators only (,,,): ignored, not rejected", clean_rows=True),
    _r("hukou_crlf", "hukou", line_endings("hukou", "\r\n"), "accepted", "", "hukou with CRLF line endings: the clean "
       "rows", clean_rows=True),
    # completion evidence
    _r("hukou_sha256_mismatch", "hukou", checksum_file("hukou", "sha256", drop_rows=5), "held", "checksum",
       "hukou.sha256 of the complete file, the file then losing its last 5 rows on a line end (only the checksum "
       "tells)"),
    _r("hukou_sha256_match", "hukou", checksum_file("hukou", "sha256"), "accepted", "checksum",
       "a matching hukou_20261121.csv.sha256: accepted, the load log names the checksum as the evidence"),
    _r("hukou_changes_md5_match", "hukou_changes", checksum_file("hukou_changes", "md5"), "accepted", "checksum",
       "a matching .md5 beside the hukou changes: accepted on the checksum"),
    _r("night_without_marker", "hukou", lambda f: (f / NIGHT_MARKER).unlink(missing_ok=True), "accepted", "",
       "the night's _SUCCESS marker missing: files taken once settled (settle_seconds), not held"),
    _r("success_marker", "hukou", success_marker, "accepted", "_SUCCESS",
       "the night's _SUCCESS marker: files taken on it (hukou's load-log row names it); the marker is no dataset file"),
]

BY_ID = {r.id: r for r in RECIPES}
assert len(BY_ID) == len(RECIPES)

# The numbered findings of issue 14 and what covers each (recipe ids; tests for what is no file).
ISSUE_CASES: dict[int, list[str]] = {
    1: ["hukou_cut_mid_row_90", "hukou_cut_mid_row_50", "hukou_cut_mid_row_99", "hukou_cut_at_row_end_90",
        "hukou_cut_at_row_end_98", "medical_claims_cut_at_row_end_96", "deaths_cut_inside_character",
        "hukou_cut_inside_character",
        "hukou_still_being_written", "medical_claims_cut_mid_row_90", "hukou_changes_cut_mid_row_90",
        "hukou_sha256_mismatch"],
    2: ["medical_insurance_ids_blank", "students_ids_blank", "vehicles_ids_blank", "register_members_ids_blank",
        "hukou_changes_names_blank", "payroll_name_id_headers_swapped", "medical_insurance_ids_int64",
        "hukou_check_chars_broken", "hukou_ids_one_person"],
    3: ["medical_claims_every_row_x10", "business_investors_200k_duplicates"],
    4: ["business_investors_ids_6_digits"],
    5: ["medical_insurance_70_07_percent", "payroll_twenty_times_the_rows", "property_usage_bad_3_percent",
        "hukou_changes_type_bad_10_percent", "hukou_changes_nonagri_type_bad"],
    6: ["hukou_symlink_to_night_1", "deaths_symlink_to_etc_passwd", "hukou_changes_fifo", "students_folder"],
    7: ["medical_claims_cost_negative", "medical_claims_cost_1e12", "medical_claims_cost_nan", "medical_claims_cost_inf",
        "deaths_date_2099", "medical_claims_name_nul", "medical_claims_name_3_5m_chars"],
    8: ["vehicles_file_name_gbk_bytes"],
    9: ["deaths_id_in_date_column", "vehicles_id_in_date_column"],
    10: [r.id for r in RECIPES],  # every case checks the exit code of `bidui run`
    11: ["tests/test_bad_nights.py::test_publishing_night_one_after_night_two_changes_nothing"],
    12: ["tests/test_operations.py"],  # lock, read-only home, disk full, concurrent runs, workers, resumed nights
    13: ["property_stray_quote_after_multiline", "hukou_big5", "hukou_utf16le_no_bom", "hukou_changes_cr_only",
         "vehicles_title_row", "payroll_title_row", "businesses_notes_sheet_first", "dangerous_housing_merged_header",
         "vehicles_xls_named_xlsx", "business_investors_trailing_empty_rows"],
}


# ---------------------------------------------------------------- the existing corpus, replayed into night 2


def _replace_with(file: str, dataset: str | None) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        if dataset:
            for p in folder.iterdir():
                try:
                    if dataset_for_filename(p.name).code == dataset:
                        p.unlink()
                except DatasetNameError:
                    pass
        (folder / file).write_bytes((HERE / "files" / file).read_bytes())
    return apply


def corpus_recipes() -> list[Recipe]:
    """Every bad file of tests/corpus/files in place of its dataset's file on night 2 (or beside
    them, when its name names no dataset). Refusals keep their message; holds that depend on the
    corpus's own 40-row baseline keep only their status."""
    out = []
    for case in json.loads((HERE / "expected.json").read_text(encoding="utf-8")):
        if case["status"] == "accepted":
            continue
        try:
            dataset: str | None = dataset_for_filename(case["file"]).code
        except DatasetNameError:
            dataset = None
        fragment = case["message"] if case["status"] == "refused" or not case["baseline"] else ""
        out.append(Recipe(f"corpus:{case['file']}", dataset, _replace_with(case["file"], dataset), case["status"],
                          fragment, case["note"], case["file"]))
    return out


CORPUS_RECIPES = corpus_recipes()
