"""The townships' verdicts on links, as the linker reads them (issue 18, part 3).

The ledger keeps each decision (`bidui.clues.link_decisions`): a record↔person pair that must never
be linked (a clue refuted as 不是本人) or must be (an identity confirmed on a link marked 待确认).
Before linking, the batch copies the active ones into the warehouse (`link_decisions`, replaced
whole: a revoked decision is gone the next night). Staging a night finds the records they name —
by dataset, role, ID number and name, not by file and row, which change nightly — as the temp table
`link_decided` (rec, kind, person_key, explanation) that `bidui.matching.link` obeys."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from bidui.connectors import warehouse as wh
from bidui.datasets import DATASETS, PersonRef
from bidui.home import Home

DECISIONS_DDL = """
CREATE TABLE IF NOT EXISTS link_decisions (kind VARCHAR NOT NULL, dataset VARCHAR NOT NULL, role VARCHAR NOT NULL,
    id_number VARCHAR NOT NULL, name VARCHAR NOT NULL, person_key VARCHAR NOT NULL, clue_id BIGINT,
    verifier_name VARCHAR, decided_on DATE)"""
DECIDED_DDL = ("CREATE OR REPLACE TEMP TABLE link_decided (rec BIGINT, kind VARCHAR, person_key VARCHAR, "
               "explanation VARCHAR)")
COLUMNS = ["kind", "dataset", "role", "id_number", "name", "person_key", "clue_id", "verifier_name", "decided_on"]


def store(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> int:
    """Replace the warehouse's copy of the decisions with `rows` (`link_decisions.for_linking`)."""
    con.execute(DECISIONS_DDL)
    frame = pl.DataFrame(rows, schema={"kind": pl.String, "dataset": pl.String, "role": pl.String,
                                       "id_number": pl.String, "name": pl.String, "person_key": pl.String,
                                       "clue_id": pl.Int64, "verifier_name": pl.String, "decided_on": pl.Date})
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM link_decisions")
        if frame.height:
            con.register("_decisions", frame)
            con.execute(f"INSERT INTO link_decisions SELECT {', '.join(COLUMNS)} FROM _decisions")
            con.unregister("_decisions")
        con.execute("COMMIT")
    except Exception:
        wh.rollback(con)
        raise
    return frame.height


def copy_from_ledger(con: duckdb.DuckDBPyConnection, ledger_url: str) -> int:
    """Copy the ledger's active decisions into the warehouse; how many."""
    from bidui.clues.db import open_ledger
    from bidui.clues.link_decisions import for_linking

    ledger = open_ledger(ledger_url)
    try:
        with ledger.read() as session:
            rows = for_linking(session)
    finally:
        ledger.engine.dispose()
    return store(con, rows)


def refresh(con: duckdb.DuckDBPyConnection, home: Home) -> int:
    """Before a night is linked: the warehouse's copy of the decisions made equal to the ledger's
    active ones (none while there is no ledger yet); how many."""
    from bidui.clues.db import ledger_url

    url = ledger_url(home.ledger)
    if url.startswith("sqlite") and not home.ledger.exists():
        return store(con, [])
    return copy_from_ledger(con, url)


def named_by_decision(ref: PersonRef, row: str, numbers: str) -> str:
    """SQL: the row `row` of a dataset is named, by the number, by a decision whose number is in
    `numbers` (a parenthesised list or subquery): its ID as cleaned on ingest or as typed. The one
    test linking (`stage_decided`) and the carry plan (`bidui.matching.carry`) use: a record a
    verdict names is never carried past it."""
    return f"({row}.{ref.id_column} IN {numbers} OR trim({row}.{ref.id_column}_raw) IN {numbers})"


def stage_decided(con: duckdb.DuckDBPyConnection, in_force: dict[str, date]) -> None:
    """`link_decided`: the staged records (`link_recs`) a decision names, with its kind, person
    and explanation. A record is named by what it says: its ID as cleaned on ingest (or as typed,
    for one that could not be cleaned) and its cleaned name."""
    con.execute(DECIDED_DDL)
    con.execute(DECISIONS_DDL)
    named = con.execute("SELECT DISTINCT dataset, role FROM link_decisions").fetchall()
    by_code = {ds.code: ds for ds in DATASETS}
    for code, role in named:
        ds = by_code.get(code)
        ref = next((p for p in ds.persons if p.role == role), None) if ds is not None else None
        snap = in_force.get(code)
        if ref is None or snap is None:
            continue
        con.execute(f"""
            INSERT INTO link_decided
            SELECT l.rec, d.kind, d.person_key,
                   json_object('rule', CASE d.kind WHEN 'must' THEN 'confirmed' ELSE 'barred' END,
                               'verifier', d.verifier_name, 'decided_on', strftime(d.decided_on, '%Y-%m-%d'),
                               'clue', d.clue_id)
            FROM ds_{code}_at(?) m
            JOIN link_decisions d ON d.dataset = ? AND d.role = ? AND d.name = m.{ref.name_column}
                 AND {named_by_decision(ref, "m", "(d.id_number)")}
            JOIN link_recs l ON l.dataset = ? AND l.role = ? AND l.source_file = m.source_file
                 AND l.source_row = m.source_row""", [snap, code, role, code, role])

