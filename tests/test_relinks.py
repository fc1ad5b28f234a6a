"""Issue 18, part 5: the run report says which records' links changed since the night linked
before, and why; and the hukou identities that split or merged."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from bidui.clues.present import relinks_text
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.home import Home
from bidui.matching.link import link_night
from bidui.matching.relinks import identity_events, night_relinks
from tests.present_support import internal_codes
from tests.test_carry import edit_hukou, late_folder_inbox

NIGHT1, NIGHT2 = date(2026, 11, 20), date(2026, 11, 21)


def test_records_whose_person_left_hukou_and_a_number_two_persons_now_share(published_home, tmp_path: Path) -> None:
    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        # A person with two exact-linked vehicles… and a number one person holds alone.
        gone, = con.execute("""
            SELECT l.person_key FROM links l WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'vehicles' AND l.method = 'exact'
            AND NOT contains(l.person_key, '~') GROUP BY ALL HAVING count(*) = 1 ORDER BY 1 LIMIT 1""", [NIGHT1]).fetchone()
        shared, = con.execute("""
            SELECT id_number FROM ds_hukou_at(?) WHERE id_number_status = 'valid' AND id_number <> ?
            GROUP BY ALL HAVING count(*) = 1 ORDER BY 1 LIMIT 1""", [NIGHT1, gone]).fetchone()
        # Night 2: the first person's hukou row is gone (moved out); a second person, another name and
        # birth date, is registered under the other's number (一号多人).
        edit_hukou(con, NIGHT2, NIGHT1, f"DELETE FROM _h WHERE id_number = {wh.sql_text(gone)}", f"""
            INSERT INTO _h SELECT * REPLACE (name || '甲' AS name, name_raw || '甲' AS name_raw,
                                             birth_date - 400 AS birth_date, source_row + 100000 AS source_row)
            FROM _h WHERE id_number = {wh.sql_text(shared)}""")
        link_night(con, NIGHT1)
        link_night(con, NIGHT2)
        found = night_relinks(con, NIGHT2)
        # Read the other way, the number two persons share is two persons becoming one.
        backwards = identity_events(con, NIGHT2, NIGHT1)
    finally:
        con.close()
    assert backwards == {"split": 0, "merged": 1, "second_found": 0, "second_gone": 0}
    assert found["since"] == NIGHT1.isoformat()
    vehicles = found["datasets"]["vehicles"]
    # The vehicle of the person who left is no longer linked to them, because hukou changed.
    assert vehicles["unlinked"] + vehicles["other_person"] >= 1
    assert vehicles["why"]["hukou"] == vehicles["unlinked"] + vehicles["other_person"] + vehicles["linked"]
    assert found["identities"] == {"split": 1, "merged": 0, "second_found": 0, "second_gone": 0}
    lines = relinks_text(found)
    assert any(line.startswith("机动车登记：") and "户籍变化" in line for line in lines)
    assert "户籍身份：一号多人新出现（一个号码分为两人） 1" in lines
    assert internal_codes(" ".join(lines)) == []


def test_nothing_moved_is_said_so(published_home, tmp_path: Path) -> None:
    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        assert night_relinks(con, NIGHT1) == {}  # the first night linked: nothing to compare with
        link_night(con, NIGHT2)  # the same snapshots in force: every link stays
        found = night_relinks(con, NIGHT2)
    finally:
        con.close()
    assert found == {"since": NIGHT1.isoformat(), "datasets": {}}
    assert relinks_text(found) == [f"与 {NIGHT1.isoformat()} 相比，没有记录改变关联"]
    # The night's step adds how many sure links it carried (bidui.matching.carry).
    assert relinks_text(found | {"carried": 1234})[0] == "沿用上一夜的关联 1,234 条：记录及其户籍都没有变化，不再重新关联"
    assert relinks_text(found | {"carried": 1234, "held": 56})[0] == \
        "沿用上一夜的关联 1,234 条（其中模型评分 56 条）：记录及其户籍、候选人都没有变化，不再重新关联"


def test_a_night_folder_that_comes_late_is_compared_with_the_rows_each_night_was_linked_with(
        published_home, tiny: Path, tmp_path: Path) -> None:
    """Night 3 has no vehicles file and is linked before night 2's folder arrives: with night 1's
    vehicles. Night 2's vehicles, stored late, are in force on night 4. Night 3's links were made on
    night 1's rows: the links that moved from night 3 to night 4 are found by what each record
    says, not by setting night 3's links beside night 2's rows by row number."""
    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    n1, n2, n3, n4 = (date(2026, 11, d) for d in (20, 21, 22, 23))
    inbox = late_folder_inbox(tiny, tmp_path)
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        for night in (n3, n2, n4):  # night 2's folder late
            ingest_night(con, inbox / night.isoformat(), night, workers=1)
            if night == n4:
                # On night 4 the owner of a car both vehicle files list leaves hukou: that car moves.
                owner, = con.execute("""
                    SELECT l.person_key FROM links l JOIN ds_vehicles_at(?) d
                        ON d.row_id = l.row_id
                    WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'vehicles' AND l.method = 'exact' AND NOT contains(l.person_key, '~')
                          AND d.row_hash IN (SELECT row_hash FROM ds_vehicles_at(?))
                    ORDER BY 1 LIMIT 1""", [n1, n3, n2]).fetchone()
                edit_hukou(con, n4, wh.in_force(con, n4)["hukou"], f"DELETE FROM _h WHERE id_number = {wh.sql_text(owner)}")
            link_night(con, night)
        assert wh.in_force(con, n3)["vehicles"] == n2  # as the snapshots stand now; night 3 was linked with n1's
        # What moved, by each record's fingerprint: night 3's links on night 1's rows, night 4's on night 2's.
        (expected,), = con.execute("""
            WITH a AS (SELECT d.row_hash AS h, l.person_key FROM links l JOIN ds_vehicles_at(?) d
                           ON d.row_id = l.row_id
                       WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'vehicles'),
                 b AS (SELECT d.row_hash AS h, l.person_key FROM links l JOIN ds_vehicles_at(?) d
                           ON d.row_id = l.row_id
                       WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'vehicles')
            SELECT count(DISTINCT a.h) FROM a JOIN b USING (h) WHERE a.person_key IS DISTINCT FROM b.person_key""",
                                   [n2, n4, n1, n3]).fetchall()
        found = night_relinks(con, n4)
        vehicles = found["datasets"].get("vehicles", dict.fromkeys(("other_person", "linked", "unlinked"), 0))
        assert found["since"] == n3.isoformat() and "not_compared" not in found
        assert expected >= 1 and vehicles["other_person"] + vehicles["linked"] + vehicles["unlinked"] == expected
        assert vehicles["why"]["hukou"] >= 1
        # Night 1's vehicles stored again since night 3 was linked (another load of that date): night
        # 3's links name rows that are gone, and the report says the dataset was not compared.
        con.execute("UPDATE snapshots SET load_id = load_id + 1000 WHERE dataset = 'vehicles' AND snapshot_date = ?", [n1])
        again = night_relinks(con, n4)
        # Hukou's snapshot stored again: why anything moved cannot be told; nothing is compared, and
        # the report says hukou was stored again (not every dataset).
        con.execute("UPDATE snapshots SET load_id = load_id + 1000 WHERE dataset = 'hukou' AND snapshot_date = ?",
                    [wh.in_force(con, n4)["hukou"]])
        restored = night_relinks(con, n4)
    finally:
        con.close()
    assert again["not_compared"] == ["vehicles"] and "vehicles" not in again["datasets"]
    lines = relinks_text(again)
    assert "未比较：机动车登记（两夜所用的版本之一后来被重新入库）" in lines
    assert internal_codes(" ".join(lines)) == []
    assert restored == {"since": n3.isoformat(), "datasets": {}, "not_compared": ["hukou"]}
    assert relinks_text(restored) == [f"户籍人口在 {n3.isoformat()} 或本夜所用的版本后来被重新入库，本夜不比较关联变化"]


def test_a_row_sent_twice_is_one_record_when_the_file_is_the_same_both_nights(published_home, tmp_path: Path) -> None:
    """A vehicle row a department sent twice (the same row twice in the file) whose owner leaves
    hukou: one record moved, whether the file came again or not (rows that say the same are one)."""
    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        owner, row = con.execute("""
            SELECT l.person_key, l.row_id FROM links l WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'vehicles'
            AND l.method = 'exact' AND NOT contains(l.person_key, '~')
            AND l.person_key IN (SELECT person_key FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'vehicles'
                                 GROUP BY ALL HAVING count(*) = 1) ORDER BY 1 LIMIT 1""", [NIGHT1, NIGHT1]).fetchone()
        (top,), = con.execute("SELECT max(source_row) FROM ds_vehicles_at(?)", [NIGHT1]).fetchall()
        twin = -row  # (a record of its own: its identity is another)
        con.execute("INSERT INTO ds_vehicles SELECT * REPLACE (? AS source_row, ? AS row_id) FROM ds_vehicles "
                    "WHERE snapshot_date = ? AND row_id = ?", [top + 1, twin, NIGHT1, row])
        con.execute("INSERT INTO links SELECT * REPLACE (? AS row_id) FROM links "
                    "WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'vehicles' AND row_id = ?", [twin, NIGHT1, row])
        edit_hukou(con, NIGHT2, NIGHT1, f"DELETE FROM _h WHERE id_number = {wh.sql_text(owner)}")
        link_night(con, NIGHT1)
        link_night(con, NIGHT2)
        assert wh.in_force(con, NIGHT2)["vehicles"] == NIGHT1  # one vehicles snapshot for both nights
        (moved_rows,), = con.execute("""
            SELECT count(*) FROM links a JOIN links b USING (dataset, row_id, role)
            WHERE ? BETWEEN a.night AND coalesce(a.last_night, a.night) AND ? BETWEEN b.night AND coalesce(b.last_night, b.night) AND a.dataset = 'vehicles'
                  AND a.person_key IS DISTINCT FROM b.person_key""", [NIGHT2, NIGHT1]).fetchall()
        found = night_relinks(con, NIGHT2)
    finally:
        con.close()
    vehicles = found["datasets"]["vehicles"]
    assert moved_rows == 2  # the two rows of the one record
    assert vehicles["unlinked"] + vehicles["other_person"] + vehicles["linked"] == 1
