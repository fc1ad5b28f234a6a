"""Issue 18, part 5: what changed in each dataset since its previous snapshot, row by row — new,
changed, removed, unchanged — whatever form the delivery took; and carried whole when no new file
came."""

from __future__ import annotations

import csv
import hashlib
import random
from datetime import date
from pathlib import Path

import xlsxwriter

from bidui.clues.present import changes_text
from bidui.connectors import warehouse as wh
from bidui.connectors.changes import night_changes, snapshot_changes
from bidui.connectors.ingest import ingest_file
from bidui.datasets import BY_CODE
from bidui.ids import check_char

HEADER = ["号牌号码", "使用性质", "车辆类型", "机动车所有人", "所有人证件号码", "初次登记日期", "机动车状态"]
N1, N2, N3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def vehicle(i: int, status: str = "正常") -> list[str]:
    body = f"52270119800101{i:04d}"[:17]
    return [f"贵J{10000 + i}", "非营运", "K33", "张伟", body + check_char(body), "2020-01-05", status]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    """Another form of the same extract: a workbook, its columns in another order, two headers in
    other words (车牌号 for 号牌号码, 车主姓名 for 机动车所有人)."""
    order = [6, 4, 3, 0, 2, 5, 1]
    header = [{"号牌号码": "车牌号", "机动车所有人": "车主姓名"}.get(HEADER[j], HEADER[j]) for j in order]
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("车辆")
    ws.write_row(0, 0, header)
    for r, row in enumerate(rows, start=1):
        for c, j in enumerate(order):
            ws.write_string(r, c, row[j])
    wb.close()
    return path


def test_rows_new_changed_removed_and_unchanged_whatever_the_form(tmp_path: Path) -> None:
    con = wh.connect(tmp_path / "w.duckdb")
    first = [vehicle(i) for i in range(40)]
    assert ingest_file(con, write_csv(tmp_path / "vehicles_1.csv", first), N1).status == "accepted"
    # Night 2, as a workbook in another order: 35 rows as they were (shuffled), 3 of another
    # status (changed), 2 gone, 5 new plates.
    second = first[:35] + [vehicle(i, "注销") for i in range(35, 38)] + [vehicle(i) for i in range(100, 105)]
    random.Random(18).shuffle(second)
    assert ingest_file(con, write_xlsx(tmp_path / "vehicles_2.xlsx", second), N2).status == "accepted"

    found = night_changes(con, N2)["vehicles"]
    assert found == {"since": N1.isoformat(), "rows": 43, "new": 5, "changed": 3, "removed": 2, "unchanged": 35,
                     "carried": False}
    # Rows stored before hashes were kept are hashed as they are read: the same counts.
    con.execute("UPDATE ds_vehicles SET row_hash = NULL")
    con.execute("DELETE FROM quality_counts")
    assert snapshot_changes(con, BY_CODE["vehicles"], N2) == found
    # Night 3: no vehicles file, so the snapshot of night 2 is carried whole.
    assert night_changes(con, N3)["vehicles"] == {"since": N2.isoformat(), "rows": 43, "carried": True}
    # The first snapshot of a dataset: all of it new.
    assert night_changes(con, N1)["vehicles"] == {"since": None, "rows": 40, "new": 40, "changed": 0, "removed": 0,
                                                  "unchanged": 0, "carried": False}


def test_an_empty_cell_is_the_same_quoted_or_not_and_in_a_workbook(tmp_path: Path) -> None:
    """A CSV writer that quotes empty cells ("") and one that writes nothing, or a workbook's empty
    cell, deliver the same rows: unchanged, with the same values stored (a data engineer's walk,
    2026-12-06: the rows read as 新增 and 删除)."""
    con = wh.connect(tmp_path / "w.duckdb")
    rows = [vehicle(i) for i in range(30)]
    for row in rows[::3]:
        row[1] = row[4] = ""  # 使用性质 and the owner's ID number left empty in every third row
    quoted = tmp_path / "vehicles_1.csv"
    with quoted.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows([HEADER, *rows])
    assert '""' in quoted.read_text(encoding="utf-8")
    assert ingest_file(con, quoted, N1).status == "accepted"
    assert ingest_file(con, write_csv(tmp_path / "vehicles_2.csv", rows), N2).status == "accepted"
    assert '""' not in (tmp_path / "vehicles_2.csv").read_text(encoding="utf-8")
    assert ingest_file(con, write_xlsx(tmp_path / "vehicles_3.xlsx", rows), N3).status == "accepted"
    for night in (N2, N3):
        assert night_changes(con, night)["vehicles"] == {"since": (N1 if night == N2 else N2).isoformat(), "rows": 30,
                                                         "new": 0, "changed": 0, "removed": 0, "unchanged": 30,
                                                         "carried": False}
    stored = con.execute("SELECT DISTINCT use_nature, owner_id_number_raw FROM ds_vehicles WHERE source_row = 1").fetchall()
    assert stored == [(None, None)]


def test_the_same_bytes_again_are_carried_and_a_comparison_is_made_once(tmp_path: Path) -> None:
    con = wh.connect(tmp_path / "w.duckdb")
    rows = [vehicle(i) for i in range(30)]
    ingest_file(con, write_csv(tmp_path / "vehicles_1.csv", rows), N1)
    later = [*rows[:29], vehicle(29, "注销")]
    ingest_file(con, write_csv(tmp_path / "vehicles_2.csv", later), N2)
    assert ingest_file(con, write_csv(tmp_path / "vehicles_3.csv", later), N3).status == "duplicate"
    assert night_changes(con, N3)["vehicles"] == {"since": N2.isoformat(), "rows": 30, "carried": True}
    assert night_changes(con, N2)["vehicles"]["changed"] == 1
    # A second run of the night reads what the first counted (a mark put on it shows through).
    con.execute("UPDATE quality_counts SET counts = replace(counts, '\"changed\": 1', '\"changed\": 7')")
    assert night_changes(con, N2)["vehicles"]["changed"] == 7


def test_changed_rows_are_compared_once_per_pair_of_loads_and_again_for_a_new_delivery(tmp_path: Path) -> None:
    """The carry plan and the links-changed report share one comparison of two snapshots on a
    connection; a night delivered again (a new load) is compared again, not read from the first."""
    from bidui.connectors.changes import changed_rows

    con = wh.connect(tmp_path / "w.duckdb")
    rows = [vehicle(i) for i in range(10)]
    ingest_file(con, write_csv(tmp_path / "vehicles_1.csv", rows), N1)
    ingest_file(con, write_csv(tmp_path / "vehicles_2.csv", rows[:9]), N2)  # the last plate gone
    cols = ["plate", "owner_id_number"]

    def plates(table: str) -> set[str]:
        return {p for p, in con.execute(f"SELECT plate FROM {table}").fetchall()}

    first = changed_rows(con, BY_CODE["vehicles"], N1, N2, cols)
    assert plates(first) == {rows[9][0]}
    # Asked again: the same table, not compared again (a mark put in it shows through).
    con.execute(f"INSERT INTO {first} VALUES ('mark', NULL, TRUE)")
    assert changed_rows(con, BY_CODE["vehicles"], N1, N2, cols) == first and "mark" in plates(first)
    # Night 2 delivered again with another plate gone: compared anew.
    assert ingest_file(con, write_csv(tmp_path / "vehicles_2b.csv", rows[1:]), N2).status == "accepted"
    again = changed_rows(con, BY_CODE["vehicles"], N1, N2, cols)
    assert again != first and plates(again) == {rows[0][0]}


def test_the_report_counts_from_the_comparison_the_linking_steps_made(tmp_path: Path) -> None:
    """The run report's new / changed / removed rows are counted from the same comparison of two
    snapshots as the carry plan reads (hukou's, 2.5 s at the large size, is made once): a row put
    in that comparison shows in the counts."""
    from bidui.connectors.changes import COMPARED_COLUMNS, changed_rows, snapshot_changes

    con = wh.connect(tmp_path / "w.duckdb")
    rows = [vehicle(i) for i in range(10)]
    ingest_file(con, write_csv(tmp_path / "vehicles_1.csv", rows), N1)
    ingest_file(con, write_csv(tmp_path / "vehicles_2.csv", rows[:9]), N2)  # the last plate gone
    table = changed_rows(con, BY_CODE["vehicles"], N1, N2, COMPARED_COLUMNS.get("vehicles", []))
    con.execute(f"INSERT INTO {table} (plate, came) VALUES ('mark', TRUE)")
    counts = snapshot_changes(con, BY_CODE["vehicles"], N2)
    assert (counts["new"], counts["changed"], counts["removed"], counts["unchanged"]) == (1, 0, 1, 8)


def test_a_row_hash_is_the_md5_of_its_text_not_a_library_hash(tmp_path: Path) -> None:
    """The stored hash must survive upgrades of DuckDB and polars (their own hashes change between
    versions): it is the MD5 of the row's values as text, in the dataset's column order, which this
    test rebuilds without DuckDB."""
    con = wh.connect(tmp_path / "w.duckdb")
    ingest_file(con, write_csv(tmp_path / "vehicles.csv", [vehicle(7)]), N1)
    cols = [n for n, _ in wh.table_columns(BY_CODE["vehicles"]) if n not in wh.HASH_EXCLUDED]
    row = con.execute(f"SELECT row_hash, {', '.join(cols)} FROM ds_vehicles").fetchone()
    text = "\x1f".join("\x00" if v is None else v.isoformat() if isinstance(v, date) else str(v) for v in row[1:])
    digest = hashlib.md5(text.encode()).digest()
    assert row[0] in (int.from_bytes(digest, "big"), int.from_bytes(digest, "little"))
    assert row[0] == int.from_bytes(digest, "little")


def test_the_report_says_it_in_chinese_without_codes() -> None:
    lines = changes_text({
        "vehicles": {"since": "2026-11-18", "rows": 43, "new": 5, "changed": 3, "removed": 2, "unchanged": 35,
                     "carried": False},
        "deaths": {"since": None, "rows": 12, "new": 12, "changed": 0, "removed": 0, "unchanged": 0, "carried": False},
        "hukou": {"since": "2026-11-18", "rows": 9, "carried": True},
        "payroll": {"since": "2026-11-17", "rows": 4, "carried": True}})
    assert "机动车登记：新增 5，变更 3，删除 2，未变 35（与 2026-11-18 的版本相比）" in lines
    assert "死亡医学证明：首次入库 12 行" in lines
    assert lines[-1] == "本夜无新版本、沿用上一版：户籍人口、财政供养人员"
    assert not any(code in " ".join(lines) for code in ("vehicles", "deaths", "hukou", "payroll", "carried"))
    # With the night's files: one sent again unchanged and one held are not said alike (one line
    # lumped them, and read as if the held file had come unchanged: a browser walk, 2026-12-06).
    told = changes_text({"hukou": {"since": "2026-11-18", "rows": 9, "carried": True},
                         "payroll": {"since": "2026-11-17", "rows": 4, "carried": True},
                         "property": {"since": "2026-11-17", "rows": 7, "carried": True}},
                        [{"dataset": "hukou", "status": "duplicate"}, {"dataset": "payroll", "status": "held"},
                         {"dataset": "property", "status": "missing"}])
    assert told == ["今晚报送的文件与上一版相同：户籍人口", "今晚未入库（原因见“数据集”表的“说明”一栏），沿用上一版：不动产登记、财政供养人员"]
