"""The ledger on PostgreSQL survives a server restart in the middle of a publish: the interrupted
publish leaves nothing half-written, and the nightly run's publish (which retries a lost
connection) completes, leaving the ledger as an uninterrupted publish would.

Needs a PostgreSQL this test may restart: BIDUI_TEST_PG_URL and BIDUI_TEST_PG_RESTART (a shell
command that restarts that server), both set by `.ci/run`.
"""

from __future__ import annotations

import os
import subprocess
from datetime import date

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError

from bidui.clues.db import Ledger
from bidui.clues.models import Clue, ClueEvent, PublishRun
from bidui.clues.publish import publish
from tests.ledger_support import PG_URL, fresh_ledger, hit, hits_frame

RESTART = os.environ.get("BIDUI_TEST_PG_RESTART")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (PG_URL and RESTART), reason="needs BIDUI_TEST_PG_URL and BIDUI_TEST_PG_RESTART")]

NIGHTS = [date(2026, 11, 20), date(2026, 11, 21)]
TITLES = {"VEHICLE": "名下有车辆"}
RUNS = {"VEHICLE": "ran"}


def night(index: int, n: int = 3000):
    """Night 1: subjects 0 … n-1; night 2: the first tenth gone, a tenth new, one changed plate."""
    ids = range(n) if index == 0 else range(n // 10, n + n // 10)
    rows = []
    for i in ids:
        plate = f"浙A{i:05d}" if not (index == 1 and i == n // 2) else "浙B99999"
        rows.append(hit(subject=f"33010219900101{i:04d}", evidence_key=plate,
                        record=f'{{"plate": "{plate}", "vehicle_type": "K33"}}',
                        township=f"3301020{i % 5:02d}000"))
    return hits_frame(rows)


def state(ledger: Ledger) -> tuple[list, list, list]:
    with ledger.read() as s:
        clues = sorted((c.rule_code, c.subject_key, c.evidence_key, c.status, c.version, c.first_seen, c.last_seen,
                        c.due_date, c.evidence_gone, c.evidence_hash, c.township_code) for c in s.scalars(select(Clue)))
        events = sorted((e.kind, e.actor, e.from_status, e.to_status, str(e.payload)) for e in s.scalars(select(ClueEvent)))
        runs = sorted((r.night, r.hits, r.new, r.seen, r.gone) for r in s.scalars(select(PublishRun)))
    return clues, events, runs


def restart_at_first_write(ledger: Ledger) -> dict[str, int]:
    """Restart the server when the publish first writes: mid-transaction, after its reads."""
    restarts = {"n": 0}

    def before(_conn, _cursor, statement: str, *_args) -> None:
        if restarts["n"] == 0 and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            restarts["n"] += 1
            subprocess.run(RESTART, shell=True, check=True, timeout=120, capture_output=True)

    event.listen(ledger.engine, "before_cursor_execute", before)
    return restarts


def test_a_restart_mid_publish_half_applies_nothing_and_the_retried_publish_completes(tmp_path) -> None:
    ledger, reference = fresh_ledger("postgresql", tmp_path), fresh_ledger("postgresql", tmp_path)
    try:
        first, second = night(0), night(1)
        for led in (ledger, reference):
            publish(led, first, RUNS, NIGHTS[0], TITLES)
        expected = publish(reference, second, RUNS, NIGHTS[1], TITLES)
        assert (expected.new, expected.gone) == (301, 301)  # the second night changes something
        after_first = state(ledger)

        restarts = restart_at_first_write(ledger)
        with pytest.raises(DBAPIError):
            publish(ledger, second, RUNS, NIGHTS[1], TITLES)
        assert restarts["n"] == 1
        assert state(ledger) == after_first  # the interrupted transaction left nothing behind

        restarts["n"] = 0  # and again, now through the retry the nightly publish uses
        result = ledger.retrying(lambda: publish(ledger, second, RUNS, NIGHTS[1], TITLES), waits=(1.0, 2.0, 4.0, 8.0))
        assert restarts["n"] == 1 and not result.already
        assert (result.new, result.seen, result.gone) == (expected.new, expected.seen, expected.gone)
        assert state(ledger) == state(reference)
    finally:
        ledger.close()
        reference.close()
