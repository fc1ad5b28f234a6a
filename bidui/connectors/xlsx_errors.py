"""Where in a workbook the Excel error value that calamine cannot read is.

calamine refuses a whole workbook when one cell holds an error value it does not know (the newer
ones of Excel 365 and WPS: #SPILL!, #CALC!, #GETTING_DATA…, cached results of formulas), saying
only the value. The department needs the sheet and the cell to fix it, so the sheet parts are
scanned for the first cell of type error (`t="e"`) holding that value. The parts were already
checked against the zip limits (`readers._check_expansion`) and are read in blocks.
"""

from __future__ import annotations

import html
import re
import zipfile
from pathlib import Path

_BLOCK = 8 * 2**20
_OVERLAP = 4096  # longer than any cell's opening tag and value: a match across two blocks is found
_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)/?>")
_RELATION = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)/?>")
_CELL_OPEN = re.compile(rb"<(?:\w+:)?c\b([^>]*)>")
_CELL_CLOSE = re.compile(rb"</(?:\w+:)?c>")


def _attribute(attributes: bytes, name: bytes) -> str | None:
    m = re.search(rb"(?:^|\s)(?:\w+:)?" + name + rb'\s*=\s*"([^"]*)"', attributes)
    return html.unescape(m.group(1).decode("utf-8", "replace")) if m else None


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


def _first_cell(z: zipfile.ZipFile, part: str, value: bytes) -> str | None:
    """The reference (e.g. D17) of the first error cell in the part holding `value`; "" when the
    cell has none (a reference is optional); None when no cell holds it."""
    found = re.compile(rb"<(?:\w+:)?v>\s*" + re.escape(value) + rb"\s*</(?:\w+:)?v>")
    tail = b""
    with z.open(part) as f:
        while block := f.read(_BLOCK):
            text = tail + block
            for m in found.finditer(text):
                # The value's own cell: the last cell opened before it and not closed since (a
                # formula's <f> may sit between the two).
                before = text[max(0, m.start() - _OVERLAP):m.start()]
                opened = next(reversed(list(_CELL_OPEN.finditer(before))), None)
                if (opened is not None and not _CELL_CLOSE.search(before, opened.end())
                        and _attribute(opened.group(1), b"t") == "e"):
                    return _attribute(opened.group(1), b"r") or ""
            tail = text[-_OVERLAP:]
    return None


def locate(path: Path, value: str) -> tuple[str, str] | None:
    """(sheet name, cell reference) of the first cell holding the error `value`; None when it cannot
    be found (the message then names the value alone)."""
    try:
        with zipfile.ZipFile(path) as z:
            for sheet, part in _sheets(z):
                if part in z.namelist():
                    cell = _first_cell(z, part, html.escape(value, quote=False).encode())
                    if cell is not None:
                        return sheet, cell
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError):
        return None
    return None
