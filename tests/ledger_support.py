"""Helpers for the ledger tests: fresh ledgers on SQLite or PostgreSQL, and filling in a
township workbook the way a person would (cell values changed, everything else kept)."""

from __future__ import annotations

import os
import uuid
from datetime import date
from pathlib import Path

import polars as pl
import xlsxwriter
from python_calamine import CalamineWorkbook
from sqlalchemy import create_engine, text

from bidui.clues.db import Ledger, open_ledger
from bidui.clues.workbook import INPUT_COLUMNS, LOCKED_COLUMNS, SHEET, TOKEN_SHEET

PG_URL = os.environ.get("BIDUI_TEST_PG_URL")  # set by .ci/run, which starts a PostgreSQL on loopback
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


def fresh_ledger(backend: str, tmp: Path) -> Ledger:
    if backend == "sqlite":
        return open_ledger(f"sqlite:///{tmp / f'ledger-{uuid.uuid4().hex[:8]}.sqlite'}")
    # One database per test: tests never see each other's clues.
    name = f"bidui_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    base = PG_URL.rsplit("/", 1)[0]  # type: ignore[union-attr]
    return open_ledger(f"{base}/{name}")


def hit(rule: str = "VEHICLE", subject: str = "330102199001011234", evidence_key: str = "浙A12345",
        record: str = '{"plate": "浙A12345", "vehicle_type": "K33"}', township: str = "330102001000",
        category: str = "mis_inclusion") -> dict:
    return {"rule_code": rule, "category": category, "subject_key": subject, "subject_person_key": subject,
            "subject_id_number": subject, "subject_name": "王伟", "household_code": "H0001", "hukou_number": "HK0001",
            "township_code": township, "village_code": township[:9] + "201", "household_status": "未脱贫",
            "registered_year": 2016, "evidence_dataset": "vehicles", "evidence_key": evidence_key,
            "evidence_date": date(2020, 5, 1), "link_method": "exact", "link_score": 1.0, "link_explanation": None,
            "before_registration": False, "evidence_record": record}


def hits_frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={k: (pl.Date if k == "evidence_date" else pl.Boolean if k == "before_registration"
                                          else pl.Int32 if k == "registered_year" else pl.Float64 if k == "link_score"
                                          else pl.String) for k in hit()})


def fill_workbook(src: Path, dst: Path, fills: dict[int, dict[str, object]], token: str | None = None,
                  edit: dict[tuple[int, str], object] | None = None) -> None:
    """Copy the workbook with input cells filled for some clue ids ({clue_id: {column: value}});
    `token` replaces the hidden token, `edit` changes other cells ({(clue_id, column): value})."""
    wb = CalamineWorkbook.from_path(str(src))
    rows = wb.get_sheet_by_name(SHEET).to_python()
    original_token = wb.get_sheet_by_name(TOKEN_SHEET).to_python()[0][0]
    header = list(LOCKED_COLUMNS + INPUT_COLUMNS)
    out = xlsxwriter.Workbook(str(dst))
    ws = out.add_worksheet(SHEET)
    ws.write_row(0, 0, header)
    for r, row in enumerate(rows[1:], start=1):
        clue_id = int(row[0])
        values = dict(zip(header, row, strict=False)) | fills.get(clue_id, {})
        for (cid, col), v in (edit or {}).items():
            if cid == clue_id:
                values[col] = v
        for c, name in enumerate(header):
            v = values.get(name)
            if isinstance(v, date):
                ws.write_datetime(r, c, v, out.add_format({"num_format": "yyyy-mm-dd"}))
            elif isinstance(v, int | float) and not isinstance(v, bool):
                ws.write_number(r, c, v)
            elif v not in (None, ""):
                ws.write_string(r, c, str(v))
    hidden = out.add_worksheet(TOKEN_SHEET)
    hidden.write_string(0, 0, token if token is not None else str(original_token))
    hidden.very_hidden()
    out.close()
