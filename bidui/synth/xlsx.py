"""A streaming XLSX writer for large synthetic extracts.

xlsxwriter writes about 10 k rows/s here, too slow for a 600 k-row vehicles file; this writes
the sheet XML directly (inline strings, numbers, date cells), building the cells of a whole
column at once with polars string expressions. It is for
the synthetic prefecture's department files only; workbooks with validation and protection
(township workbooks) use xlsxwriter.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

import polars as pl

from bidui.connectors.xlsx_errors import column_letters

_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
_WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>"""
_WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
</Relationships>"""
# Style 1 is a date (built-in format 14), as Excel stores a typed date.
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<fonts count="1"><font><sz val="11"/><name val="宋体"/></font></fonts>
<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
</styleSheet>"""
_EXCEL_EPOCH = date(1899, 12, 30).toordinal()


def _cell(ref: str, value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="inlineStr"><is><t>{"是" if value else "否"}</t></is></c>'
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    if isinstance(value, date):
        return f'<c r="{ref}" s="1"><v>{value.toordinal() - _EXCEL_EPOCH}</v></c>'
    text = escape(str(value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}" t="inlineStr"><is><t{space}>{text}</t></is></c>'


def _entry(name: str) -> zipfile.ZipInfo:
    # A fixed timestamp: the same rows give the same bytes (determinism by seed).
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _xml_text(col: pl.Expr) -> pl.Expr:
    return col.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True).str.replace_all(
        ">", "&gt;", literal=True)


def write_frame(path: Path, header: Sequence[str], df: pl.DataFrame, numeric: dict[str, pl.Series] | None = None,
                serial_dates: Sequence[str] = (), sheet: str = "Sheet1", chunk: int = 200_000) -> int:
    """Write a table of text columns; `numeric[col]` marks cells stored as numbers (their text
    is the number), `serial_dates` columns hold Excel day serials written as typed date cells."""
    numeric = numeric or {}
    letters = [column_letters(i) for i in range(len(header))]
    frame = df.select([pl.col(c).cast(pl.String) for c in df.columns]).with_columns(
        [s.alias(f"__num_{c}") for c, s in numeric.items()]
    ).with_columns(pl.int_range(2, pl.len() + 2).cast(pl.String).alias("__r"))
    cells = []
    for letter, name in zip(letters, df.columns, strict=True):
        ref = pl.lit(f'<c r="{letter}') + pl.col("__r")
        v = pl.col(name)
        text = ref + pl.lit('" t="inlineStr"><is><t xml:space="preserve">') + _xml_text(v) + pl.lit("</t></is></c>")
        if name in serial_dates:
            cell = ref + pl.lit('" s="1"><v>') + v + pl.lit("</v></c>")
        elif name in numeric:
            cell = pl.when(pl.col(f"__num_{name}")).then(ref + pl.lit('"><v>') + v + pl.lit("</v></c>")).otherwise(text)
        else:
            cell = text
        cells.append(pl.when(v.is_null() | (v == "")).then(pl.lit("")).otherwise(cell))
    row_xml = pl.concat_str([pl.lit('<row r="'), pl.col("__r"), pl.lit('">'), *cells, pl.lit("</row>")])
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr(_entry("[Content_Types].xml"), _CONTENT_TYPES)
        z.writestr(_entry("_rels/.rels"), _RELS)
        z.writestr(_entry("xl/workbook.xml"), _WORKBOOK.format(name=escape(sheet)))
        z.writestr(_entry("xl/_rels/workbook.xml.rels"), _WORKBOOK_RELS)
        z.writestr(_entry("xl/styles.xml"), _STYLES)
        with z.open(_entry("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            f.write(('<row r="1">' + "".join(_cell(f"{c}1", h) for c, h in zip(letters, header, strict=True))
                     + "</row>").encode("utf-8"))
            for start in range(0, frame.height, chunk):
                body = frame.slice(start, chunk).select(row_xml.str.join("")).item()
                f.write(body.encode("utf-8"))
            f.write(b"</sheetData></worksheet>")
    return frame.height
