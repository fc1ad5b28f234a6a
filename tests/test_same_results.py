"""The checksums the large bench compares incremental and from-scratch homes by
(bidui.flows.same_results): the same rows in another order agree; one value changed, one row
more or one row twice do not; and what is left out (load ids, clock times) does not count."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import polars as pl

from bidui.clues.db import ledger_url, open_ledger
from bidui.connectors import warehouse as wh
from bidui.flows import same_results
from bidui.matching.dedupe import store_duplicates
from bidui.matching.link import LINKS_SCHEMA
from bidui.matching.link_nights import LINK_COLUMNS
from bidui.rules.engine import HITS_SCHEMA

NIGHT = date(2026, 11, 21)
LINKS = [("students", r, "student", f"P{r}", "exact", 1.0, False, "身份证号与姓名一致")
         for r in range(1, 6)]


def warehouse(path: Path, links: list[tuple], load_id: int = 1, evidence: str = '{"load_id":1,"plate":"贵J75153"}'
              ) -> dict[str, tuple[int, int]]:
    con = wh.connect(path)
    try:
        con.execute(LINKS_SCHEMA)  # (and the tables the rules step makes, empty)
        con.execute(HITS_SCHEMA)
        store_duplicates(con, NIGHT, pl.DataFrame())
        con.execute("ALTER TABLE links ADD COLUMN IF NOT EXISTS carried BOOLEAN")
        # Each link's record at its row; its identity differs with the load (it is not compared).
        con.execute("INSERT INTO snapshots VALUES ('students', ?, ?, 's.csv', 'x', 9)", [NIGHT, load_id])
        for row in range(1, 10):
            con.execute("INSERT INTO ds_students (snapshot_date, load_id, source_file, source_row, row_id) "
                        "VALUES (?, ?, 's.csv', ?, ?)", [NIGHT, load_id, row, load_id * 100 + row])
        for code, row, *rest in links:
            con.execute(f"INSERT INTO links (night, {LINK_COLUMNS}, carried) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, FALSE)", [NIGHT, code, load_id * 100 + row, *rest])
        con.execute("INSERT INTO ds_deaths (snapshot_date, load_id, source_file, source_row) VALUES (?, ?, 'd.csv', 1)",
                    [NIGHT, load_id])
        con.execute("INSERT INTO rule_hits (night, rule_code, category, subject_key, evidence_record) "
                    "VALUES (?, 'VEHICLE', 'mis_inclusion', 'P1', ?)", [NIGHT, evidence])
        assert same_results.warehouse_rows(con, NIGHT)["links"] == sorted(links)
        return same_results.warehouse_checksums(con, NIGHT)
    finally:
        con.close()


def test_warehouse_checksums_see_rows_not_their_order(tmp_path: Path) -> None:
    base = warehouse(tmp_path / "a.duckdb", LINKS)
    assert base["links"][0] == 5 and base["ds_deaths"][0] == 1
    # the same rows written in another order, with another load id: the same
    assert warehouse(tmp_path / "b.duckdb", LINKS[::-1], load_id=7) == base
    # one link to another person, one more link, one link twice: each differs in the links only
    other = [(*LINKS[0][:3], "P99", *LINKS[0][4:]), *LINKS[1:]]
    for i, links in enumerate([other, [*LINKS, (*LINKS[0][:1], 9, *LINKS[0][2:])], [*LINKS, LINKS[0]]]):
        sums = warehouse(tmp_path / f"c{i}.duckdb", links)
        assert sums["links"] != base["links"], i
        assert {k: v for k, v in sums.items() if k != "links"} == {k: v for k, v in base.items() if k != "links"}


def ledger(path: Path, hits: int, published: datetime) -> dict[str, tuple[int, int]]:
    open_ledger(ledger_url(path)).close()  # the ledger's tables
    con = sqlite3.connect(path)
    con.execute("INSERT INTO publish_runs (night, published_at, hits, new, seen, gone, reraised, suppressed) "
                "VALUES (?, ?, ?, 0, 0, 0, 0, 0)", [NIGHT.isoformat(), published.isoformat(), hits])
    con.commit()
    con.close()
    return same_results.ledger_checksums(path)


def test_ledger_checksums_see_what_was_published_not_when(tmp_path: Path) -> None:
    base = ledger(tmp_path / "a.sqlite", 3, datetime(2026, 11, 21, 2, 0))
    assert base["publish_runs"][0] == 1 and base["clues"][0] == 0
    assert ledger(tmp_path / "b.sqlite", 3, datetime(2026, 11, 21, 3, 30)) == base
    assert ledger(tmp_path / "c.sqlite", 4, datetime(2026, 11, 21, 2, 0))["publish_runs"] != base["publish_runs"]


def test_a_rule_hits_evidence_is_compared_but_for_the_load_that_stored_it(tmp_path: Path) -> None:
    """Two runs of one night number its loads in the order their files were read: a rule hit's
    evidence record, which quotes the stored row, differs in that number only."""
    base = warehouse(tmp_path / "a.duckdb", LINKS)
    assert warehouse(tmp_path / "b.duckdb", LINKS, load_id=8, evidence='{"load_id":8,"plate":"贵J75153"}') == base
    other = warehouse(tmp_path / "c.duckdb", LINKS, evidence='{"load_id":1,"plate":"贵J75154"}')
    assert [p for p in base if base[p] != other[p]] == ["rule_hits"]


def test_links_no_reader_pairs_are_not_compared(tmp_path: Path, monkeypatch) -> None:
    """The links of a dataset whose snapshot was stored again after the night was linked
    (`carry.unpaired`) are left out of the comparison, as every reader leaves them unpaired — one
    dataset, or all of them (then the part is empty, still a query of the night)."""
    from bidui.datasets import DATASETS

    warehouse(tmp_path / "a.duckdb", LINKS)
    con = wh.connect(tmp_path / "a.duckdb")
    try:
        for apart in ({"students"}, {d.code for d in DATASETS if d.persons and d.code != "hukou"}):
            monkeypatch.setattr(same_results, "unpaired", lambda _con, _night, apart=apart: apart)
            assert same_results.warehouse_rows(con, NIGHT)["links"] == []
            assert same_results.warehouse_checksums(con, NIGHT)["links"] == (0, 0)
        monkeypatch.setattr(same_results, "unpaired", lambda _con, _night: {"vehicles"})
        assert same_results.warehouse_rows(con, NIGHT)["links"] == sorted(LINKS)
    finally:
        con.close()
