"""What two homes that ran the same nights must hold alike, whichever way they ran them: one
incrementally (rows delivered as before not normalised again, sure links carried from the night
before), one from scratch (`bidui run --from-scratch`). The six-night test
(tests/test_incremental.py) compares the rows themselves and shows those that differ; the large
bench (bench/endtoend.py), where a night holds fourteen million rows, compares a count and an
order-free checksum of each part.

A part is what a night left in the warehouse (its links, rule hits, what ingest stored and
rejected…) or what the ledger holds (its clues, their events and evidence…), without what only
says when or in which order something was written (surrogate ids, load ids, clock times)."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Collection
from datetime import date
from pathlib import Path

import duckdb

from bidui.datasets import DATASETS
from bidui.matching.carry import unpaired
from bidui.matching.link_nights import PLACED_COLUMNS, placed_sql
from bidui.rules.engine import LOAD_ID_IN_RECORD

# A load's id (see LOAD_ID_IN_RECORD) is left out of the stored rows, and in the evidence records (a
# rule hit's, a clue's evidence snapshot) which quote a stored row whole, its value.


def warehouse_parts(apart: Collection[str] = ()) -> dict[str, str]:
    """Each part of a night in the warehouse as a query with one parameter, the night (no order);
    `apart`: the night's `carry.unpaired`, whose links no reader pairs with a row."""
    return {
        # (at their records' rows: a record's identity is not compared, as below)
        "links": f"SELECT {PLACED_COLUMNS} FROM ({placed_sql('$night::DATE', apart)})",
        # (the evidence digest is the record's, and absent from nights ruled by an earlier version)
        "rule_hits": "SELECT COLUMNS(lambda c: c NOT IN ('night', 'evidence_record', 'evidence_digest')), "
                     f"regexp_replace(evidence_record, '{LOAD_ID_IN_RECORD}', "
                     "'\"load_id\":_', 'g') AS evidence_record FROM rule_hits WHERE night = $night",
        "rule_runs": "SELECT rule_code, status, hits, message FROM rule_runs WHERE night = $night",
        "doubtful": "SELECT dataset, subject_key FROM doubtful_persons WHERE night = $night",
        "duplicates": "SELECT * EXCLUDE (night) FROM register_duplicates WHERE night = $night",
        # What ingest stored tonight (rows delivered as before were not normalised again in an
        # incremental home) and the values it rejected.
        # (as every reader sees it, whether a row was stored again or kept: bidui.connectors.snapshot_rows)
        # (a record's identity is not compared: from scratch every row is a new record each night)
        **{f"ds_{ds.code}": f"SELECT * EXCLUDE (load_id, row_id) FROM ds_{ds.code}_at($night)"
           for ds in DATASETS},
        "rejects": "SELECT s.dataset, r.* EXCLUDE (load_id) FROM rejects r JOIN snapshots s "
                   "ON s.load_id = r.load_id WHERE s.snapshot_date = $night",
    }


def warehouse_rows(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, list[tuple]]:
    """Every part's rows, sorted."""
    return {part: con.execute(f"{sql} ORDER BY ALL", {"night": night}).fetchall()
            for part, sql in warehouse_parts(unpaired(con, night)).items()}


def warehouse_checksums(con: duckdb.DuckDBPyConnection, night: date) -> dict[str, tuple[int, int]]:
    """Every part's rows counted and checksummed inside DuckDB (the sum of each row's hash: the
    same rows in any order give the same sum)."""
    return {part: tuple(con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM ({sql}) t",
                                    {"night": night}).fetchone())  # type: ignore[misc]
            for part, sql in warehouse_parts(unpaired(con, night)).items()}


def _ledger_parts(con: sqlite3.Connection) -> dict[str, str]:
    """The ledger's parts as queries, each clue named by (rule, subject, evidence)."""
    clue = "c.rule_code, c.subject_key, c.evidence_key"
    cols = [d[1] for d in con.execute("PRAGMA table_info(clues)") if d[1] not in ("id", "updated_at")]
    decided = [d[1] for d in con.execute("PRAGMA table_info(link_decisions)")
               if d[1] not in ("id", "clue_id", "decided_at", "revoked_at")]

    def every(n: int) -> str:
        return ", ".join(str(k) for k in range(1, n + 1))

    return {
        "clues": f"SELECT {', '.join(cols)} FROM clues ORDER BY {every(len(cols))}",
        "events": f"""SELECT {clue}, e.kind, e.from_status, e.to_status, e.actor, e.payload
                      FROM clue_events e JOIN clues c ON c.id = e.clue_id ORDER BY {every(8)}""",
        "evidence": f"""SELECT {clue}, s.night, s.evidence_hash, s.record FROM evidence_snapshots s
                        JOIN clues c ON c.id = s.clue_id ORDER BY {every(6)}""",
        "publish_runs": "SELECT night, hits, new, seen, gone, reraised, suppressed, skipped_rules "
                        "FROM publish_runs ORDER BY night",
        "link_decisions": f"SELECT {', '.join(decided)} FROM link_decisions ORDER BY {every(len(decided))}",
    }


def ledger_rows(ledger: Path) -> dict[str, list[tuple]]:
    """Every part of a SQLite ledger, sorted (opened read-only)."""
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        parts = {part: con.execute(sql).fetchall() for part, sql in _ledger_parts(con).items()}
    finally:
        con.close()
    # (the record is the evidence row's last column; sorted again, as the load id may have ordered it)
    parts["evidence"] = sorted(((*r[:-1], r[-1] and re.sub(LOAD_ID_IN_RECORD, '"load_id":_', r[-1])) for r in parts["evidence"]),
                               key=repr)
    return parts


def ledger_checksums(ledger: Path) -> dict[str, tuple[int, int]]:
    """Every part of a SQLite ledger counted and checksummed (SHA-256 of its sorted rows)."""
    out = {}
    for part, rows in ledger_rows(ledger).items():
        digest = hashlib.sha256()
        for row in rows:
            digest.update(repr(row).encode())
        out[part] = (len(rows), int.from_bytes(digest.digest()[:8], "big"))
    return out
