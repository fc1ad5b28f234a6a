"""Clues as a table: the columns of `bidui rules export` and the clue's state."""

from __future__ import annotations

from datetime import date

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue
from bidui.rules.engine import EXPORT_COLUMNS

COLUMNS = (*EXPORT_COLUMNS, "clue_id", "status", "outcome", "first_seen", "last_seen", "due_date")


def export_frame(session: Session, night: date | None = None, under: str | None = None) -> pl.DataFrame:
    q = select(*(getattr(Clue, "id" if c == "clue_id" else c) for c in COLUMNS)).order_by(Clue.township_code, Clue.id)
    if night:
        q = q.where(Clue.first_seen <= night, Clue.last_seen >= night)
    if under:
        q = q.where(scope.under(Clue.township_code, under))
    frame = pl.DataFrame([tuple(r) for r in session.execute(q)], schema=list(COLUMNS), orient="row")
    return frame.with_columns(pl.col("household_code").replace("", None), pl.col("hukou_number").replace("", None))
