"""The readers name the true cause of a file they cannot read, with the row a person finds when
opening it, and read what departments really send: title rows, CR-only line breaks, blank
padding, notes sheets. Files are built here, small."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from hypothesis import given
from hypothesis import strategies as st

from bidui.connectors.mapping import RefusedError, map_headers
from bidui.connectors.readers import HEAD_BYTES, ReadError, _utf8_head, read_table, utf8_valid
from bidui.datasets import DATASETS

VEHICLES = next(d for d in DATASETS if d.code == "vehicles")
HEADER = ["号牌号码", "使用性质", "车辆类型", "机动车所有人", "所有人证件号码", "初次登记日期", "机动车状态"]


def row(i: int) -> list[str]:
    return [f"贵J{i:05d}", "非营运", "K33", "张伟", f"52270119800101{i:04d}", "2020-01-05", "正常"]


def lines(n: int, sep: str = ",") -> list[str]:
    return [sep.join(HEADER)] + [sep.join(row(i)) for i in range(1, n + 1)]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def workbook(path: Path, sheets: dict[str, list[list[str]]], merges: dict[str, list[tuple]] | None = None) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        ws = wb.add_worksheet(name)
        for r, values in enumerate(rows):
            ws.write_row(r, 0, values)
        for first_row, first_col, last_row, last_col, text in (merges or {}).get(name, []):
            ws.merge_range(first_row, first_col, last_row, last_col, text)
    wb.close()
    return path


# 1. CSV completeness -----------------------------------------------------------------------------

def test_a_csv_without_its_last_line_break_or_ending_inside_a_quote_is_marked_cut(tmp_path: Path) -> None:
    whole = read_table(write(tmp_path, "vehicles_a.csv", "\n".join(lines(9)) + "\n"))
    assert whole.cut is None and whole.data.height == 9
    assert read_table(write(tmp_path, "vehicles_crlf.csv", "\r\n".join(lines(9)) + "\r\n")).cut is None

    no_break = read_table(write(tmp_path, "vehicles_b.csv", "\n".join(lines(9))))
    assert no_break.cut and "line break" in no_break.cut
    assert no_break.data.height == 9  # read, not refused: ingest holds it

    # Cut inside a quoted field of the last record: the whole records are read.
    mid_quote = read_table(write(tmp_path, "vehicles_c.csv", "\n".join(lines(9)) + '\n贵J00010,"非营'))
    assert mid_quote.cut and "quoted field" in mid_quote.cut
    assert mid_quote.data.height == 9

    # Beyond HEAD_BYTES only the tail is read: quoted line breaks in every record do not mislead it.
    body = [",".join(HEADER)] + [",".join(row(i)[:1]) + ',"非营运\n（备注）",' + ",".join(row(i)[2:])
                                 for i in range(1, 3000)]
    big = "\n".join(body) + "\n"
    assert len(big.encode()) > 2 * HEAD_BYTES
    assert read_table(write(tmp_path, "vehicles_big.csv", big)).cut is None
    cut_big = read_table(write(tmp_path, "vehicles_big_cut.csv", big + '贵J09999,"非营运\n（备'))
    assert cut_big.cut and "quoted field" in cut_big.cut and cut_big.data.height == 2999

    # A quote opened on the last row and never closed, with the line break after it, is not a
    # cut copy: it is refused naming its row.
    with pytest.raises(ReadError, match=r"vehicles_d\.csv: data row 10: a quote opened in this row is never closed"):
        read_table(write(tmp_path, "vehicles_d.csv", "\n".join(lines(9)) + '\n贵J00010,"非营运,K33\n'))


# 2. The true row of a CSV error ------------------------------------------------------------------

def _multiline(n: int, broken: int, bad: str) -> str:
    """Data rows 1..n; rows 2 and 4 hold a field with two line breaks; row `broken` is `bad`."""
    out = [",".join(HEADER)]
    for i in range(1, n + 1):
        r = row(i)
        if i in (2, 4):
            r[1] = '"非营运\n第二行\n第三行"'
        out.append(bad if i == broken else ",".join(r))
    return "\n".join(out) + "\n"


def test_a_csv_error_names_the_data_row_not_the_physical_line(tmp_path: Path) -> None:
    stray = ",".join(row(7)).replace("非营运", '"非营运"x')
    with pytest.raises(ReadError) as e:
        read_table(write(tmp_path, "vehicles_stray.csv", _multiline(9, 7, stray)))
    msg = str(e.value)
    # Physical line 12 (line_num - 1 = 11 was the old, wrong answer); the row Excel shows is 8.
    assert msg.startswith("vehicles_stray.csv: data row 7: a quote closes a quoted field")
    assert "spreadsheet row 8, starting on line 12 of the file" in msg
    assert "522701" not in msg  # no value of the body in a message

    inner = ",".join(row(7)).replace("非营运", '非"营运')
    with pytest.raises(ReadError, match=r"data row 7: a quote inside a field that is not itself quoted"):
        read_table(write(tmp_path, "vehicles_inner.csv", _multiline(9, 7, inner)))

    ragged = ",".join(row(7)) + ",多余"
    with pytest.raises(ReadError, match=r"data row 7 has 8 fields, the header has 7 \(comma-separated; "
                                        r"spreadsheet row 8, starting on line 12"):
        read_table(write(tmp_path, "vehicles_ragged.csv", _multiline(9, 7, ragged)))


# 3. Encodings named ------------------------------------------------------------------------------

TRADITIONAL = ["號牌號碼", "使用性質", "車輛類型", "機動車所有人", "所有人證件號碼", "初次登記日期", "機動車狀態"]


def test_big5_utf16_and_utf32_are_named(tmp_path: Path) -> None:
    big5 = "\n".join([",".join(TRADITIONAL)] + [f"貴J{i:05d},非營運,K33,張偉,52270119800101{i:04d},2020-01-05,正常"
                                                for i in range(1, 6)]) + "\n"
    with pytest.raises(ReadError, match=r"^vehicles_big5\.csv: Big5 \(Traditional Chinese\).*save it as UTF-8"):
        read_table(write(tmp_path, "vehicles_big5.csv", big5.encode("big5")))
    gbk = read_table(write(tmp_path, "vehicles_gbk.csv", ("\n".join(lines(5)) + "\n").encode("gbk")))
    assert gbk.encoding == "gb18030" and gbk.header == HEADER  # GBK stays accepted

    text = "\n".join(lines(5)) + "\n"
    for codec, named in (("utf-16", "UTF-16 (little-endian, with byte-order mark)"),
                         ("utf-16-le", "UTF-16 (little-endian, no byte-order mark)"),
                         ("utf-16-be", "UTF-16 (big-endian, no byte-order mark)"),
                         ("utf-32", "UTF-32 (little-endian, with byte-order mark)"),
                         ("utf-32-le", "UTF-32 (little-endian, no byte-order mark)"),
                         ("utf-32-be", "UTF-32 (big-endian, no byte-order mark)")):
        with pytest.raises(ReadError) as e:
            read_table(write(tmp_path, f"vehicles_{codec}.csv", text.encode(codec)))
        assert str(e.value) == f"vehicles_{codec}.csv: {named} text; save it as UTF-8 (in Excel: CSV UTF-8)"


# 4. Line endings ---------------------------------------------------------------------------------

def test_cr_only_line_breaks_are_read_and_mixed_crlf_too(tmp_path: Path) -> None:
    cr = read_table(write(tmp_path, "vehicles_mac.csv", "\r".join(lines(6)) + "\r"))
    assert cr.header == HEADER and cr.data.height == 6 and cr.cut is None
    assert cr.data.row(5) == tuple(row(6))
    mixed = "\r\n".join(lines(3)) + "\n" + "\n".join(lines(6)[4:]) + "\r\n"
    assert read_table(write(tmp_path, "vehicles_mixed.csv", mixed)).data.row(5) == tuple(row(6))


# 5. A title row above the header -----------------------------------------------------------------

def test_a_title_row_above_the_header_is_skipped_and_rows_keep_their_numbers(tmp_path: Path) -> None:
    title = "某县2026年11月机动车登记信息" + "," * 6
    t = read_table(write(tmp_path, "vehicles_title.csv", "\n".join([title, *lines(5)]) + "\n"), VEHICLES)
    assert t.header == HEADER and t.data.height == 5 and t.first_data_row == 3
    assert t.data.row(0) == tuple(row(1))
    # A one-cell title with no separator at all, over a tab-separated table, and a blank row.
    tsv = read_table(write(tmp_path, "vehicles_title.tsv", "\n".join(["某县机动车登记信息", "", *lines(5, "\t")]) + "\n"))
    assert tsv.delimiter == "\t" and tsv.header == HEADER and tsv.first_data_row == 4
    assert read_table(write(tmp_path, "vehicles_plain.csv", "\n".join(lines(2)) + "\n")).first_data_row == 2
    # Later errors name the file's own rows.
    broken = "\n".join([title, *lines(3), ",".join(row(4)) + ",多余"]) + "\n"
    with pytest.raises(ReadError, match=r"data row 4 has 8 fields, the header has 7 \(comma-separated; spreadsheet row 6\)"):
        read_table(write(tmp_path, "vehicles_title_bad.csv", broken))

    merged = workbook(tmp_path / "vehicles_title.xlsx", {"Sheet1": [[], HEADER, *[row(i) for i in range(1, 4)]]},
                      {"Sheet1": [(0, 0, 0, 6, "某县2026年11月机动车登记信息")]})
    x = read_table(merged, VEHICLES)
    assert x.header == HEADER and x.first_data_row == 3 and x.data.row(2) == tuple(row(3))

    notes = ["制表单位：某县公安局", "", "", "", "", "制表日期：2026-11-20", ""]
    with pytest.raises(ReadError, match=r"^vehicles_notes\.csv: the header is on row 3; row\(s\) above it look like a title"):
        read_table(write(tmp_path, "vehicles_notes.csv", "\n".join([title, ",".join(notes), *lines(3)]) + "\n"))
    workbook(tmp_path / "vehicles_notes.xlsx", {"数据": [notes, HEADER, row(1)]})
    with pytest.raises(ReadError, match=r"^vehicles_notes\.xlsx: sheet '数据': the header is on row 2; row\(s\) above"):
        read_table(tmp_path / "vehicles_notes.xlsx", VEHICLES)


# 6. A header over two rows -----------------------------------------------------------------------

def test_a_header_over_two_merged_rows_is_refused(tmp_path: Path) -> None:
    top = ["号牌号码", "车辆信息", "", "所有人信息", "", "初次登记日期", "机动车状态"]
    below = ["", "使用性质", "车辆类型", "机动车所有人", "所有人证件号码", "", ""]
    path = workbook(tmp_path / "vehicles_two.xlsx", {"Sheet1": [top, below, row(1), row(2)]},
                    {"Sheet1": [(0, 0, 1, 0, "号牌号码"), (0, 1, 0, 2, "车辆信息"), (0, 3, 0, 4, "所有人信息"),
                                (0, 5, 1, 5, "初次登记日期"), (0, 6, 1, 6, "机动车状态")]})
    for ds in (None, VEHICLES):
        with pytest.raises(ReadError, match=r"a header over two rows \(merged cells\), rows 1 and 2; put one header row"):
            read_table(path, ds)
    csv_text = "\n".join([",".join(top), ",".join(below), ",".join(row(1))]) + "\n"
    with pytest.raises(ReadError, match=r"^vehicles_two\.csv: a header over two rows"):
        read_table(write(tmp_path, "vehicles_two.csv", csv_text))
    # The case: 证件信息 over 姓名 and 证件号码, beside a cell merged down.
    deaths = "\n".join(["证件信息,,死亡日期", "姓名,证件号码,", "张伟,522701198001010003,2026-01-02"]) + "\n"
    with pytest.raises(ReadError, match=r"a header over two rows \(merged cells\), rows 1 and 2") as e:
        read_table(write(tmp_path, "deaths_two.csv", deaths))
    assert "522701" not in str(e.value)


# 7. A notes sheet first --------------------------------------------------------------------------

def test_the_sheet_whose_header_maps_is_read_and_otherwise_every_sheet_is_named(tmp_path: Path) -> None:
    notes = [["填报说明"], ["1. 本表由某县公安局导出"], ["2. 证件号码为18位"]]
    path = workbook(tmp_path / "vehicles_notes_first.xlsx", {"说明": notes, "数据": [HEADER, row(1), row(2)]})
    for ds in (VEHICLES, None):
        t = read_table(path, ds)
        assert t.header == HEADER and t.data.height == 2

    lacking = [h for h in HEADER if h != "号牌号码"]
    bad = workbook(tmp_path / "vehicles_no_plate.xlsx",
                   {"说明": notes, "Sheet2": [lacking, row(1)[1:]], "Sheet3": []})
    with pytest.raises(ReadError) as e:
        read_table(bad, VEHICLES)
    msg = str(e.value)
    assert msg.startswith("vehicles_no_plate.xlsx: no sheet has a header with the required columns of vehicles")
    assert "sheet '说明': row 1 has 1 filled cell(s), none a vehicles header" in msg
    assert "sheet 'Sheet2': row 1 holds 使用性质, 车辆类型" in msg and "lacks plate (号牌号码)" in msg
    assert "sheet 'Sheet3' is empty" in msg
    assert "522701" not in msg and "张伟" not in msg and "本表" not in msg  # no values, no free text
    # One sheet only: the header mapping names what it lacks, as for a CSV.
    one = workbook(tmp_path / "vehicles_one.xlsx", {"Sheet1": [lacking, row(1)[1:]]})
    with pytest.raises(RefusedError, match="missing required column"):
        t = read_table(one, VEHICLES)
        map_headers(VEHICLES, t.header, one.name)
    empty = workbook(tmp_path / "vehicles_empty.xlsx", {"Sheet1": [], "Sheet2": []})
    with pytest.raises(ReadError, match="no sheet has a header row"):
        read_table(empty, VEHICLES)


# 8. Not a zip named .xlsx ------------------------------------------------------------------------

def test_an_xls_or_text_named_xlsx_is_named_for_what_it_is(tmp_path: Path) -> None:
    ole = write(tmp_path, "vehicles_old.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(ReadError) as e:
        read_table(ole)
    assert str(e.value) == ("vehicles_old.xlsx: an Excel 97–2003 .xls workbook named .xlsx; "
                            "save it as .xlsx (Excel Workbook)")
    with pytest.raises(ReadError, match=r"not a readable XLSX workbook: text \(a CSV file\?\) named \.xlsx"):
        read_table(write(tmp_path, "vehicles_text.xlsx", "\n".join(lines(3)) + "\n"))
    with pytest.raises(ReadError, match=r"not a readable XLSX workbook: an HTML page"):
        read_table(write(tmp_path, "vehicles_web.xlsx", "<html><body><table><tr><td>号牌号码</td></tr></table>"))
    with pytest.raises(ReadError, match=r"not a readable XLSX workbook: not a zip archive"):
        read_table(write(tmp_path, "vehicles_noise.xlsx", bytes(range(256)) * 4))
    whole = workbook(tmp_path / "vehicles_whole.xlsx", {"Sheet1": [HEADER, row(1)]}).read_bytes()
    with pytest.raises(ReadError, match=r"not a readable XLSX workbook: the zip archive has no end \(the file is cut off"):
        read_table(write(tmp_path, "vehicles_short.xlsx", whole[: len(whole) * 2 // 3]))


# 9. Blank trailing rows --------------------------------------------------------------------------

def test_trailing_blank_rows_are_dropped_and_blank_rows_between_data_rows_kept(tmp_path: Path) -> None:
    padded = "\n".join([*lines(4), *[",,,,,,"] * 10, " , ,\t,,,,", ""]) + "\n"
    t = read_table(write(tmp_path, "vehicles_padded.csv", padded))
    assert t.data.height == 4 and t.data.row(3) == tuple(row(4))
    # A blank row inside the data stays a row, so that the rows after it keep their numbers.
    inner = "\n".join([*lines(2), ",,,,,,", *lines(4)[3:], ",,,,,,"]) + "\n"
    t = read_table(write(tmp_path, "vehicles_inner_blank.csv", inner))
    assert t.data.height == 5 and t.data.row(2) == (None,) * 7 and t.data.row(3) == tuple(row(3))
    # A row with one value is data, even at the end.
    assert read_table(write(tmp_path, "vehicles_one_value.csv", "\n".join([*lines(2), ",,,,,,正常"]) + "\n")).data.height == 3

    wb = xlsxwriter.Workbook(str(tmp_path / "vehicles_padded.xlsx"))
    ws = wb.add_worksheet()
    for r, values in enumerate([HEADER, row(1), row(2)]):
        ws.write_row(r, 0, values)
    fmt = wb.add_format({"border": 1})
    for r in range(3, 13):
        ws.write_row(r, 0, ["", " "] + [""] * 5, fmt)
    wb.close()
    assert read_table(tmp_path / "vehicles_padded.xlsx").data.height == 2


def test_a_header_row_that_names_nothing_is_said_to_be_no_header(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match=r"none of the 3 headers on row 1 is a vehicles header: is that row the header"):
        map_headers(VEHICLES, ["甲", "乙", "丙"], "vehicles_x.csv")


def test_a_workbook_whose_sheet_would_explode_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """One cell at XFD1048576 makes calamine allocate the whole range (17 billion cells) and abort
    the process; the declared range is checked first."""
    import xlsxwriter

    from bidui.connectors.readers import ReadError, read_table

    path = tmp_path / "vehicles_20261120.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet()
    ws.write_row(0, 0, ["号牌号码", "车辆类型", "机动车所有人", "所有人证件号码", "机动车状态"])
    ws.write_row(1, 0, ["贵J10000", "K33", "张伟", "522701198001010015", "正常"])
    ws.write(1048575, 16383, "x")
    wb.close()
    assert path.stat().st_size < 100_000
    with pytest.raises(ReadError, match="declares 1,048,576 rows × 16,384 columns"):
        read_table(path)


def test_a_parquet_file_that_would_decode_to_gigabytes_is_refused_first(tmp_path: Path) -> None:
    import polars as pl

    from bidui.connectors.readers import ReadError, read_table

    path = tmp_path / "medical_insurance_20261120.parquet"
    pl.DataFrame({"证件号码": ["5" * 100] * 3_000_000}).write_parquet(path, compression="zstd")
    assert path.stat().st_size < 100_000
    with pytest.raises(ReadError, match="declares 3,000,000 rows"):
        read_table(path)


def test_a_cell_holding_an_error_value_calamine_cannot_read_is_named_and_nothing_is_stored(tmp_path: Path) -> None:
    """Excel 365's newer error values (#SPILL! of a dynamic array) make calamine refuse the whole
    workbook naming the value alone: the refusal names the sheet and cell, in the run report too,
    and the file stores nothing."""
    import zipfile
    from datetime import date

    from bidui.clues.load_messages import file_message
    from bidui.connectors import warehouse as wh
    from bidui.connectors.ingest import ingest_file

    made = tmp_path / "made.xlsx"
    wb = xlsxwriter.Workbook(str(made))
    notes = wb.add_worksheet("填表说明")
    notes.write_string(0, 0, "说明")
    notes.write_formula(3, 1, "=SEQUENCE(3)", None, "PLACEHOLDER")
    data = wb.add_worksheet("车辆")
    for r, values in enumerate([HEADER, row(1), row(2)]):
        data.write_row(r, 0, values)
    wb.close()
    path = tmp_path / "vehicles_20261120.xlsx"
    with zipfile.ZipFile(made) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                # A dynamic array (cm="1"), as Excel 365 saves one that could not spill.
                cell = b'<c r="B4" cm="1" t="str"><f t="array" ref="B4">_xlfn.SEQUENCE(3)</f><v>PLACEHOLDER</v>'
                assert cell in body
                body = body.replace(cell, cell.replace(b't="str"', b't="e"').replace(b"PLACEHOLDER", b"#SPILL!"))
            dst.writestr(item, body)
    with pytest.raises(ReadError, match=r"sheet '填表说明' cell B4 holds the Excel error value #SPILL!"):
        read_table(path, VEHICLES)
    con = wh.connect(tmp_path / "w.duckdb")
    outcome = ingest_file(con, path, date(2026, 11, 20))
    assert outcome.status == "refused"
    assert con.execute("SELECT count(*) FROM ds_vehicles").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    assert con.execute("SELECT status FROM load_log").fetchall() == [("refused",)]
    said = file_message(path.name, "refused", outcome.message)
    assert "工作表“填表说明”的 B4 单元格是 Excel 错误值 #SPILL!" in said and "运行日志" not in said


def test_a_cell_holding_an_excel_error_value_is_a_rejected_value_named_by_row_and_column(tmp_path: Path) -> None:
    """#N/A of a failed lookup, #DIV/0!: calamine reads an error cell as empty, which it is not.
    Ingest rejects the value by row and column (the row kept with it empty, as any rejected value),
    so the rules take the person as doubtful instead of as having no such value; and a row stored
    on an earlier night with that cell truly empty is not taken for it."""
    from datetime import date

    from bidui.connectors import warehouse as wh
    from bidui.connectors.ingest import ingest_file
    from bidui.connectors.normalise import EXCEL_ERROR
    from bidui.ids import check_char

    def deliver(folder: str, errors: bool) -> Path:
        path = tmp_path / folder / "vehicles_20261120.xlsx"
        path.parent.mkdir()
        wb = xlsxwriter.Workbook(str(path))
        ws = wb.add_worksheet("车辆")
        ws.write_row(0, 0, HEADER)
        for i in range(1, 61):
            values = row(i)
            values[4] = values[4][:17] + check_char(values[4][:17])  # valid: the file is not held for its IDs
            ws.write_row(i, 0, values)
        for r, c in ((5, 4), (7, 5)):  # Excel rows 6 and 8: ID number, registration date
            if errors:
                ws.write_formula(r, c, "=VLOOKUP(A2,Sheet2!A:B,2,0)" if c == 4 else "=1/0", None,
                                 "#N/A" if c == 4 else "#DIV/0!")
            else:
                ws.write_blank(r, c, None)
        wb.close()
        return path

    got = read_table(deliver("errors", True), VEHICLES)
    assert got.error_cells == {(4, 4): "#N/A", (6, 5): "#DIV/0!"}
    assert got.data["c4"][4] is None  # as before: no value
    con = wh.connect(tmp_path / "w.duckdb")
    # Night 1: the same rows with those two cells truly empty (a missing ID is a rejected required value).
    assert ingest_file(con, deliver("blank", False), date(2026, 11, 19)).status == "accepted"
    outcome = ingest_file(con, tmp_path / "errors" / "vehicles_20261120.xlsx", date(2026, 11, 20))
    assert outcome.status == "accepted"
    rejects = con.execute("SELECT source_row, column_name, value, reason FROM rejects WHERE load_id = "
                          "(SELECT max(load_id) FROM load_log) ORDER BY source_row").fetchall()
    assert rejects == [(5, "owner_id_number", "#N/A", EXCEL_ERROR), (7, "register_date", "#DIV/0!", EXCEL_ERROR)]
    stored = dict(con.execute("SELECT source_row, rejected_columns FROM ds_vehicles_at('2026-11-20') WHERE "
                              "rejected_columns IS NOT NULL").fetchall())
    assert stored == {5: "owner_id_number", 7: "register_date"}
    (plates,), = con.execute("SELECT count(*) FROM ds_vehicles_at('2026-11-20')").fetchall()
    assert plates == 60


def _sheet_zip(path: Path, cells: str, sheet: str = "车辆", quote: str = '"') -> Path:
    """A workbook's parts that name its sheet, and the sheet's rows as given (for the error-cell scan)."""
    import zipfile

    q = quote
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/workbook.xml", f'<workbook xmlns:r="r"><sheets><sheet name={q}{sheet}{q} sheetId={q}1{q} '
                                      f'r:id={q}rId1{q}/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships><Relationship Id={q}rId1{q} '
                                                 f'Target={q}worksheets/sheet1.xml{q}/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml", f"<worksheet><sheetData>{cells}</sheetData></worksheet>")
    return path


def test_error_cells_are_found_in_every_form_a_sheet_may_write_them(tmp_path: Path, monkeypatch) -> None:
    """Self-closing (no value: not the next cell's), single quotes, a namespace prefix, a lower-case
    reference, and a cell with a long formula cut by the scan's block."""
    from bidui.connectors import xlsx_errors

    formula = "IF(A1=1," * 900 + "1" + ")" * 900  # 8 KB: longer than a block below
    cells = ('<row r="2"><c r="F2" t="e"/><c r="G2"><v>7</v></c></row>'
             "<row r='3'><c r='E3' t='e'><v>#N/A</v></c></row>"
             '<row r="4"><x:c r="b4" t="e"><x:v>#DIV/0!</x:v></x:c></row>'
             f'<row r="5"><c r="C5" t="str"><v>t="e"</v></c><c r="D5" t="e"><f>{formula}</f><v>#REF!</v></c></row>')
    path = _sheet_zip(tmp_path / "a.xlsx", cells)
    expected = {(2, 5): "", (3, 4): "#N/A", (4, 1): "#DIV/0!", (5, 3): "#REF!"}
    assert xlsx_errors.cells(path, "车辆") == expected
    for block in (64, 1000, 4096):
        monkeypatch.setattr(xlsx_errors, "_BLOCK", block)
        assert xlsx_errors.cells(path, "车辆") == expected, block
    assert xlsx_errors.cells(_sheet_zip(tmp_path / "b.xlsx", cells, "R&amp;D '车辆'", quote='"'), "R&D '车辆'") == expected
    assert xlsx_errors.locate(path, "#REF!") == ("车辆", "D5")


def _without_references(made: Path, path: Path, rows_too: bool) -> Path:
    """The workbook with its first sheet's cell references left out (and its rows' numbers, if
    `rows_too`), as some writers save a sheet."""
    import re
    import zipfile

    with zipfile.ZipFile(made) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = re.sub(rb'<c r="[A-Z]+[0-9]+"', b"<c", body)
                if rows_too:
                    body = re.sub(rb'<row r="[0-9]+"', b"<row", body)
                # xlsxwriter writes a value it does not know as an error as text
                body = body.replace(b't="str"><f>NA()</f><v>#SPILL!', b't="e"><f>NA()</f><v>#SPILL!')
            dst.writestr(item, body)
    return path


@pytest.mark.parametrize("rows_too", [False, True])
def test_error_cells_of_a_sheet_without_references_are_placed_as_calamine_places_them(tmp_path: Path,
                                                                                       rows_too: bool) -> None:
    """A sheet whose cells carry no reference: each cell is the one after the cell before it. Its
    error cells are rejected values at the place calamine reads them from, not empty values (which
    is what they were before: a #N/A where the ID number is read as a row without an ID)."""
    from bidui.connectors import xlsx_errors
    from bidui.connectors.normalise import EXCEL_ERROR, normalise

    made = tmp_path / "made.xlsx"
    wb = xlsxwriter.Workbook(str(made))
    ws = wb.add_worksheet("车辆")
    ws.write_row(0, 0, HEADER)
    for r in range(1, 6):
        ws.write_row(r, 0, row(r))
    ws.write_formula(2, 4, "=VLOOKUP(A3,Sheet2!A:B,2,0)", None, "#N/A")  # Excel row 3, the ID number
    ws.write_formula(4, 5, "=1/0", None, "#DIV/0!")  # Excel row 5, the registration date
    wb.close()
    path = _without_references(made, tmp_path / "vehicles_20261120.xlsx", rows_too)
    assert xlsx_errors.cells(path, "车辆") == {(3, 4): "#N/A", (5, 5): "#DIV/0!"}
    raw = read_table(path, VEHICLES)
    assert raw.error_cells == {(1, 4): "#N/A", (3, 5): "#DIV/0!"}
    assert raw.data["c4"][1] is None and raw.data["c4"][0] == row(1)[4]  # calamine's own places
    out = normalise(VEHICLES, map_headers(VEHICLES, raw.header, path.name), raw)
    assert [(r["source_row"], r["column_name"], r["value"]) for r in
            out.rejects.filter(pl.col("reason") == EXCEL_ERROR).to_dicts()] == [
        (2, "owner_id_number", "#N/A"), (4, "register_date", "#DIV/0!")]  # data rows (Excel 3 and 5)


def test_counting_cells_without_references_expands_no_entity_bomb(tmp_path: Path) -> None:
    """The second, ordered read parses XML: a sheet declaring nested entities (a billion laughs) with
    an error cell without reference is refused by the parser at once, and the scan says nothing."""
    import time
    import zipfile

    from bidui.connectors import xlsx_errors

    path = _sheet_zip(tmp_path / "a.xlsx", '<row><c t="e"><v>&i;</v></c></row>')
    laughs = "".join(f'<!ENTITY {b} "{("&" + a + ";") * 10}">' for a, b in zip("abcdefgh", "bcdefghi", strict=True))
    with zipfile.ZipFile(path) as z:
        parts = {n: z.read(n) for n in z.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = f'<!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">{laughs}]>{sheet}'.encode()
    with zipfile.ZipFile(path, "w") as z:
        for n, body in parts.items():
            z.writestr(n, body)
    start = time.perf_counter()
    assert xlsx_errors.cells(path, "车辆") == {}
    assert time.perf_counter() - start < 5


def test_an_unreadable_error_value_in_a_sheet_without_references_is_named_by_its_cell(tmp_path: Path) -> None:
    from bidui.connectors import xlsx_errors

    made = tmp_path / "made.xlsx"
    wb = xlsxwriter.Workbook(str(made))
    ws = wb.add_worksheet("车辆")
    ws.write_row(0, 0, HEADER)
    ws.write_row(1, 0, row(1))
    ws.write_formula(2, 3, "=NA()", None, "#N/A")
    ws.write_formula(2, 6, "=NA()", None, "#SPILL!")
    wb.close()
    path = _without_references(made, tmp_path / "vehicles_20261120.xlsx", True)
    # Without references the two cells of row 3 are its first two (A3, B3), as calamine reads them.
    assert xlsx_errors.locate(path, "#SPILL!") == ("车辆", "B3")
    assert xlsx_errors.locate(path, "#N/A") == ("车辆", "A3")
    with pytest.raises(ReadError, match=r"sheet '车辆' cell B3 holds the Excel error value #SPILL!"):
        read_table(path, VEHICLES)


def test_rows_that_differ_only_by_an_error_cell_are_not_duplicates(tmp_path: Path) -> None:
    """An error reads as empty: a row with #N/A where another has nothing is not a repeat of it, and an
    error-only row after the data is not padding."""
    from bidui.connectors.mapping import map_headers
    from bidui.connectors.normalise import EXCEL_ERROR, normalise

    path = tmp_path / "v.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("车辆")
    ws.write_row(0, 0, HEADER)
    for r in (1, 2, 3):
        ws.write_row(r, 0, row(1))
    ws.write_blank(1, 5, None)
    ws.write_formula(2, 5, "=1/0", None, "#DIV/0!")
    ws.write_formula(3, 5, "=NA()", None, "#N/A")
    ws.write_formula(5, 5, "=NA()", None, "#N/A")  # Excel row 6, after a blank row
    wb.close()
    raw = read_table(path, VEHICLES)
    assert raw.data.height == 5 and raw.error_cells == {(1, 5): "#DIV/0!", (2, 5): "#N/A", (4, 5): "#N/A"}
    out = normalise(VEHICLES, map_headers(VEHICLES, raw.header, path.name), raw)
    assert out.duplicates == 0
    assert [(r["source_row"], r["value"]) for r in out.rejects.filter(pl.col("reason") == EXCEL_ERROR).to_dicts()] == [
        (2, "#DIV/0!"), (3, "#N/A"), (5, "#N/A")]


# UTF-8 is checked by Arrow and only its head decoded: both must say what Python's decoder says.
_UTF8_PIECES = st.lists(st.one_of(st.binary(max_size=6), st.text(max_size=4).map(lambda t: t.encode("utf-8", "surrogatepass")),
                                  st.sampled_from([b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xef\xbb\xbf",
                                                   "\u4e2d".encode()[:2]])), max_size=12)


@given(_UTF8_PIECES)
def test_utf8_validity_is_what_pythons_decoder_says(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    try:
        data.decode("utf-8")
        python = True
    except UnicodeDecodeError:
        python = False
    assert utf8_valid(data) is python


@given(st.text(alphabet=st.sampled_from("ab,\n中文𠀀é"), max_size=40), st.integers(min_value=0, max_value=3))
def test_the_head_of_utf8_text_is_its_first_characters(text: str, pad: int) -> None:
    # Long texts whose cut falls inside a character of every width.
    long = "x" * pad + text * (4 * (HEAD_BYTES + 1) // max(1, len(text.encode())) + 2)
    for data, start in ((long.encode(), 0), ("\ufeff".encode() + long.encode(), 3)):
        head = _utf8_head(data, start)
        assert long.startswith(head)
        assert len(head) > HEAD_BYTES or head == long


def test_a_large_utf8_file_read_by_its_head_reads_as_when_decoded_whole(tmp_path: Path) -> None:
    # Past the head: a header found, an empty file told, a broken row named as before.
    body = "身份证号码,姓名\n" + "".join(f"1101011990010{i % 10}0011,张{i}\n" for i in range(30_000))
    f = tmp_path / "hukou_20261120.csv"
    f.write_bytes(body.encode())
    table = read_table(f)
    assert table.data.height == 30_000 and table.encoding == "utf-8"
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b" \n" * (3 * HEAD_BYTES) + b"\t")
    with pytest.raises(ReadError, match="empty file"):
        read_table(blank)
    blank.write_bytes(b" \n" * (3 * HEAD_BYTES) + body.encode())  # blank for longer than the head, then a table
    with pytest.raises(ReadError) as e:
        read_table(blank)
    assert "empty file" not in str(e.value)
    broken = tmp_path / "broken.csv"
    broken.write_bytes((body + "1,2,3\n").encode())
    with pytest.raises(ReadError, match="data row 30001 has 3 fields"):
        read_table(broken)
