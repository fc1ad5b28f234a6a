"""Excel error values in a workbook's cells (`t="e"`: #N/A, #DIV/0!, #SPILL!…, the cached results
of formulas), found in the sheet's own XML.

calamine gives a cell holding an error it knows as an empty string, and refuses the whole workbook
for one it does not know (the newer ones of Excel 365 and WPS: #SPILL!, #CALC!, #GETTING_DATA…),
saying only the value. Neither tells where the cell is. One scan of a sheet's part finds its error
cells: `locate` takes the first holding a value (for the refusal's message); `cells` lists them
all, so that ingest rejects those values by row and column instead of reading them as empty. The parts were already
checked against the zip limits (`readers._check_expansion`) and are read in blocks.

A sheet may leave out cell references (`<c t="e">` without `r`; some writers leave out the rows'
numbers too): each such cell is the one after the cell before it, as calamine places it. When an
error cell has no reference, the sheet is read once more in order, counting, to place it.
"""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

_UNREADABLE = (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError, ElementTree.ParseError)
_BLOCK = 8 * 2**20
# Longer than any cell (Excel's longest formula is 8,192 characters, up to six bytes each escaped):
# a cell cut by a block's end is found whole in the next block.
_OVERLAP = 64 * 1024
_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)/?>")
_RELATION = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)/?>")
_CELL_CLOSE = re.compile(rb"</(?:\w+:)?c>")


def _attribute(attributes: bytes, name: bytes) -> str | None:
    m = re.search(rb"(?:^|\s)(?:\w+:)?" + name + rb"""\s*=\s*(["'])(.*?)\1""", attributes, re.DOTALL)
    return html.unescape(m.group(2).decode("utf-8", "replace")) if m else None


def _sheets(z: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, part) in the workbook's order; [] when its parts do not say."""
    targets: dict[str, str] = {}
    for m in _RELATION.finditer(z.read("xl/_rels/workbook.xml.rels")):
        rid, target = _attribute(m.group(1), b"Id"), _attribute(m.group(1), b"Target")
        if rid and target:
            targets[rid] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    out = []
    for m in _SHEET.finditer(z.read("xl/workbook.xml")):
        name, rid = _attribute(m.group(1), b"name"), _attribute(m.group(1), b"id")
        if name is not None and rid in targets:
            out.append((name, targets[rid]))
    return out


_ERROR_TYPE = re.compile(rb"""\bt\s*=\s*["']e["']""")
_CELL_TAG = re.compile(rb"<(?:\w+:)?c\b")
_VALUE = re.compile(rb"<(?:\w+:)?v>([^<]{0,64})</(?:\w+:)?v>")
_REF = re.compile(r"^([A-Z]{1,3})([0-9]{1,7})$")


def _position(ref: str) -> tuple[int, int] | None:
    """A1-style reference as (row, column), row from 1 and column from 0 (A)."""
    m = _REF.match(ref.upper())
    if not m:
        return None
    column = 0
    for ch in m.group(1):
        column = column * 26 + ord(ch) - 64
    return int(m.group(2)), column - 1


def _error_cells(z: zipfile.ZipFile, part: str) -> Iterator[tuple[str | None, str]]:
    """The part's error cells in order, as (reference or None, value); a cell cut by a block's end
    is read whole with the next block (the overlap), so one may come twice."""
    tail = b""
    with z.open(part) as f:
        while block := f.read(_BLOCK):
            text = tail + block
            tail = text[-_OVERLAP:]
            if b'"e"' not in text and b"'e'" not in text:  # the usual block: no error cell (a fast scan)
                continue
            for m in _ERROR_TYPE.finditer(text):
                opened = text.rfind(b"<", 0, m.start())
                end = text.find(b">", m.end())
                if opened < 0 or end < 0 or not _CELL_TAG.match(text, opened):
                    continue
                ref = _attribute(text[opened:end], b"r")
                if text[end - 1:end] == b"/":  # <c r="F3" t="e"/>: an error without its value
                    yield ref, ""
                    continue
                close = _CELL_CLOSE.search(text, end)
                if close is None:
                    continue  # cut by the block's end: read with the next block
                value = _VALUE.search(text, end, close.start())
                yield ref, html.unescape(value.group(1).decode("utf-8", "replace")).strip() if value else ""


def _in_order(z: zipfile.ZipFile, part: str) -> dict[tuple[int, int], str]:
    """Every error cell of the part, placed as calamine places cells: by its reference, else the
    cell after the one before it in its row (a row without a number is the row after the one
    before). Only for sheets that leave references out: it parses every cell (expat, which expands
    no external entity and caps internal ones)."""
    found: dict[tuple[int, int], str] = {}
    row, column = 0, -1
    root = None
    with z.open(part) as f:
        for event, el in ElementTree.iterparse(f, events=("start", "end")):
            if root is None:
                root = el
            tag = el.tag.rsplit("}", 1)[-1]
            if event == "start":
                if tag == "row":
                    number = el.get("r") or ""
                    row, column = (int(number) if number.isdigit() else row + 1), -1
                elif tag == "c":
                    place = _position(el.get("r") or "")
                    row, column = place if place is not None else (row, column + 1)
            elif tag == "c" and el.get("t") == "e":
                value = next((v.text or "" for v in el if v.tag.rsplit("}", 1)[-1] == "v"), "")
                found[(row, column)] = value.strip()  # (expat has unescaped it)
            elif tag == "row":
                root.clear()  # the rows read so far: a large sheet is not held whole
    return found


def column_letters(column: int) -> str:
    """A column's letters in an A1 reference, from 0 (A); the synthetic workbooks write by it too."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _reference(row: int, column: int) -> str:
    return f"{column_letters(column)}{row}"


def cells(path: Path, sheet: str) -> dict[tuple[int, int], str]:
    """Every error cell of the sheet: (row from 1, column from 0) → its value as Excel shows it;
    {} when the parts do not say."""
    found: dict[tuple[int, int], str] = {}
    try:
        with zipfile.ZipFile(path) as z:
            part = dict(_sheets(z)).get(sheet)
            if part is not None and part in z.namelist():
                for ref, value in _error_cells(z, part):
                    place = _position(ref) if ref else None
                    if place is None:
                        return _in_order(z, part)
                    found[place] = value
    except _UNREADABLE:
        return {}  # parts calamine read but this scan cannot: the cells read as empty, as calamine gives them
    return found


def locate(path: Path, value: str) -> tuple[str, str] | None:
    """(sheet name, cell reference, "" when it cannot be placed) of the first cell holding the error
    `value`; None when it cannot be found (the message then names the value alone)."""
    try:
        with zipfile.ZipFile(path) as z:
            for sheet, part in _sheets(z):
                if part in z.namelist():
                    for ref, held in _error_cells(z, part):
                        if held == value and ref:
                            return sheet, ref
                        if held == value:
                            place = next((p for p, v in _in_order(z, part).items() if v == value), None)
                            return sheet, _reference(*place) if place else ""
    except _UNREADABLE:
        return None
    return None
