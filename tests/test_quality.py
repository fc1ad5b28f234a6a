"""数据质量通报 (issue 19, part 1): the counts equal the corruptions of the synthetic prefecture's
answer key; the workbook sent to a department shows no personal value unmasked and no internal code;
the page is the task force's only, in words; a night whose file was held says so."""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from python_calamine import CalamineWorkbook
from typer.testing import CliRunner

from bidui.flows import nightly
from bidui.home import Home
from bidui.quality.report import build
from bidui.web.app import create_app
from tests.conftest import PASSWORD
from tests.present_support import internal_codes

FIRST, SECOND, THIRD = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


@pytest.fixture(scope="module")
def three_nights(published_home, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """The published home (night 1 and its users), with the tiny prefecture's nights 2 (education
    sends nothing) and 3 (housing's property file cut short: held) run after it."""
    root, _, _ = published_home
    home = Home(tmp_path_factory.mktemp("quality") / "home")
    shutil.copytree(root, home.root)
    for night in (SECOND, THIRD):
        nightly.run_night(home, tiny / "inbox" / night.isoformat())
    return home


def _bulletin(home: Home, night: date) -> dict[str, dict]:
    report = nightly.stored_report(home, night)
    assert report is not None and report.bulletin, "the nightly run keeps the bulletin in its report"
    return report.bulletin


def test_counts_equal_the_answer_key(three_nights: Home, tiny: Path) -> None:
    bulletin = _bulletin(three_nights, FIRST)
    truth = pl.read_parquet(tiny / "truth" / FIRST.isoformat() / "records.parquet")
    checked = 0
    for (dataset,), rows in truth.group_by("dataset"):
        if dataset == "hukou":
            continue
        entry = bulletin[dataset]
        ids, names = entry["ids"], entry["names"]
        made = dict(rows.group_by("id_corruption").len().iter_rows())
        named = dict(rows.group_by("name_corruption").len().iter_rows())
        where = f"{dataset}: {ids} {names} vs {made} {named}"
        # A mistyped digit or two swapped: the check character or the birth date no longer holds.
        assert sum(ids.get(k, 0) for k in ("bad_check", "bad_birth_date", "bad_length", "bad_province")) == \
            made.get("id_digit", 0) + made.get("id_transposition", 0), where
        assert ids.get("old_15", 0) == made.get("id_15", 0), where
        assert ids.get("full_width", 0) == made.get("id_fullwidth", 0), where
        assert ids.get("excel_mangled", 0) + ids.get("too_few_digits", 0) == \
            made.get("id_excel_numeric", 0) + made.get("id_digit_excel", 0) + made.get("id_excel_text", 0), where
        assert names.get("placeholder", 0) == named.get("name_placeholder", 0) + named.get("name_star", 0), where
        assert names.get("annotation", 0) == named.get("name_annotation", 0), where
        assert names.get("pinyin", 0) == named.get("name_pinyin", 0), where
        # Spaces are trimmed and NFKC'd before the raw name is kept: the invisible count can only be lower.
        assert names.get("invisible", 0) <= named.get("name_invisible", 0) + named.get("name_space", 0), where
        # Every record delivered is counted, and every linked one once.
        assert entry["rows"] == entry["delivered"] == rows.height, where
        assert sum(entry["links"].values()) == rows.height, where
        checked += 1
    assert checked >= 12
    # 一号多人 in hukou: the pairs the answer key planted.
    residents = pl.read_parquet(tiny / "truth" / "residents.parquet")
    assert bulletin["hukou"]["shared_ids"] == residents.filter(pl.col("shared_id")).select(
        pl.col("id_number").n_unique()).item()
    # Plenty of problems in the tiny prefecture: a bulletin of zeros would pass nothing above.
    assert sum(sum(e["ids"].values()) for e in bulletin.values()) > 50


def test_held_file_and_changes(three_nights: Home) -> None:
    nights = {n: _bulletin(three_nights, n) for n in (FIRST, SECOND, THIRD)}
    assert nights[SECOND]["students"]["status"] == "missing"
    held = nights[THIRD]["property"]
    assert held["status"] == "held" and held["snapshot"] == FIRST.isoformat()
    b = build(nights, THIRD)
    assert (b.previous, b.first) == (SECOND, FIRST)
    housing = next(d for d in b.departments if d.title == "住建")
    assert [x["title"] for x in housing.not_taken] == ["不动产登记"]
    assert housing.not_taken[0]["outcome"] == "暂缓入库" and housing.not_taken[0]["in_force"] == f"沿用 {FIRST} 的数据"
    for d in b.departments:
        assert d.change("problem_rows", "previous") == d.now["problem_rows"] - d.previous["problem_rows"]
        assert [n for n, _ in d.trend] == [FIRST, SECOND, THIRD]
    # The first night has nothing before it to compare with.
    assert build(nights, FIRST).departments[0].change("problem_rows", "first") is None


def _cells(path: Path) -> dict[str, list[list[str]]]:
    wb = CalamineWorkbook.from_path(str(path))
    # Numbers as integers where they are (a share stays a float): no digits of a ratio read as an ID.
    return {n: [[str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in row]
                for row in wb.get_sheet_by_name(n).to_python()] for n in wb.sheet_names}


def test_department_workbook_is_masked_and_in_words(three_nights: Home, tiny: Path, tmp_path: Path) -> None:
    from bidui.cli import app

    out = tmp_path / "住建.xlsx"
    result = CliRunner().invoke(app, ["--home", str(three_nights.root), "quality", "report", "--date",
                                      THIRD.isoformat(), "--department", "乡村振兴", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not internal_codes(result.output.replace(str(out), ""))
    sheets = _cells(out)
    assert list(sheets) == ["汇总", "明细", "问题记录"]
    # The changes are numbers (Excel flagged '0' stored as text), or — with nothing to compare with.
    raw = CalamineWorkbook.from_path(str(out)).get_sheet_by_name("汇总").to_python()
    changes = [raw[1].index("问题记录较上一次"), raw[1].index("问题记录较首次")]
    assert all(isinstance(row[c], float) or row[c] == "—" for row in raw[2:] for c in changes)
    assert any(isinstance(row[c], float) for row in raw[2:] for c in changes)
    problems = sheets["问题记录"][2:]
    # Every problem record of the department is listed (a record may have two problems).
    entry = _bulletin(three_nights, THIRD)
    expected = sum(e["problem_rows"] for e in entry.values() if e["department"] == "poverty alleviation")
    assert len({(r[0], r[2]) for r in problems}) == expected > 10
    files = {p.name for p in (tiny / "inbox").glob("*/*")}
    assert {r[1] for r in problems} <= files  # the department's own file names, as delivered
    truth = pl.concat([pl.read_parquet(p) for p in (tiny / "truth").glob("*/records.parquet")])
    personal = {v.strip() for col in ("id_number_raw", "name_raw", "true_id_number", "true_name")
                for v in truth[col].drop_nulls().to_list() if len(v.strip()) >= 2}
    for name, rows in sheets.items():
        for row in rows:
            text = " ".join(c for i, c in enumerate(row) if not (name == "问题记录" and i == 1))
            assert not internal_codes(text), (name, row)
            for cell in row:
                assert cell not in personal, (name, row)
                assert re.fullmatch(r"0\.\d+", cell) or not re.search(r"\d{17}[\dXx]|\d{15}", cell), (name, row)
    assert any("证件号码：" in r[5] for r in problems) and any(r[5].startswith("姓名") for r in problems)
    assert all("*" in r[4] for r in problems if r[5].startswith("证件号码") and r[4] != "（空）")
    # Unknown departments are refused, in words.
    bad = CliRunner().invoke(app, ["--home", str(three_nights.root), "quality", "report", "--date",
                                   THIRD.isoformat(), "--department", "火星", "--out", str(tmp_path / "x.xlsx")])
    assert bad.exit_code != 0 and "公安" in bad.output


def client_as(home: Home, username: str) -> TestClient:
    client = TestClient(create_app(home), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
                       ).status_code == 303
    return client


def _visible(html: str) -> str:
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_page_for_the_task_force_only(three_nights: Home, tmp_path: Path) -> None:
    for who in ("pref", "admin"):
        client = client_as(three_nights, who)
        page = client.get("/quality")
        assert page.status_code == 200
        text = _visible(page.text)
        assert not internal_codes(text), internal_codes(text)
        assert f"比对日期 {THIRD}" in text and "住建" in text and "不动产登记（暂缓入库）" in text
        assert page.text.count("<svg") >= 10  # a trend per department
        older_page = client.get(f"/quality?night={SECOND}").text
        older = _visible(older_page)
        assert f"比对日期 {SECOND}" in older and "学籍（未报送）" in older
        # Each file not taken says once which data stay in use (the run report's words say it
        # already; before, the page added 沿用 … after 继续使用 …).
        not_taken = dict(re.findall(r"<li><strong>[^<]*· ([^<]*)</strong>：([^<]*)</li>", older_page + page.text))
        for line in (not_taken["学籍（未报送）"], not_taken["不动产登记（暂缓入库）"]):
            assert line.count(f"{FIRST} 的数据") == 1 and f"继续使用 {FIRST} 的数据" in line, line
        xlsx = client.get(f"/quality/summary.xlsx?night={THIRD}")
        assert xlsx.status_code == 200
        path = tmp_path / f"{who}.xlsx"
        path.write_bytes(xlsx.content)
        sheets = _cells(path)
        assert list(sheets) == ["汇总", "明细"]  # no problem rows (personal values) from the web
        assert not internal_codes(" ".join(" ".join(r) for rows in sheets.values() for r in rows))
    for who in ("county", "town"):
        client = client_as(three_nights, who)
        assert client.get("/quality").status_code in (403, 404)
        assert client.get("/quality/summary.xlsx").status_code in (403, 404)


def test_every_reject_reason_has_words() -> None:
    """The reasons ingest writes (in English, for the log) each fall in a kind the bulletin words:
    a reason reworded in bidui.connectors.normalise would otherwise read as “其他”."""
    import duckdb

    from bidui.clues.present import REJECT_KIND_LABELS, problem_reason
    from bidui.connectors import normalise as n
    from bidui.datasets import BY_CODE
    from bidui.quality.bulletin import reject_kind_sql

    s = lambda *v: pl.Series(list(v), dtype=pl.String)  # noqa: E731
    reasons = [*n.parse_dates(s("2099-01-01", "abc", "2026-02-30", "1800-01-01"), date(2026, 11, 20))[1],
               *n.parse_number(s("abc", "-5", "inf", "1e12"), 1e9)[1], *n.parse_year(s("12"))[1],
               *n.parse_code(s("12345"))[1], *n.parse_enum(s("火星"), BY_CODE["hukou"].column("status"))[1],
               *n.parse_vehicle_type(s("飞船"))[1], "required value missing", "control character in a name",
               f"longer than {n.MAX_ID_CHARS} characters", n.EXCEL_ERROR]
    reasons = [r for r in reasons if r]
    assert len(reasons) >= 12
    con = duckdb.connect()
    con.execute("CREATE TABLE r (reason VARCHAR)")
    con.executemany("INSERT INTO r VALUES (?)", [[r] for r in reasons])
    kinds = dict(con.execute(f"SELECT reason, {reject_kind_sql()} FROM r").fetchall())
    assert "other" not in kinds.values(), kinds
    for kind in kinds.values():
        assert kind in REJECT_KIND_LABELS and not internal_codes(problem_reason("reject_" + kind))


def test_workbook_cells_never_run_as_formulas(tmp_path: Path) -> None:
    from bidui.quality.bulletin import Problem
    from bidui.quality.report import Bulletin, write_xlsx
    from bidui.text import FORMULA_LEADS

    hostile = [Problem("vehicles", "=HYPERLINK(\"http://x\").xlsx", 3, "status", "=1+1", "reject_unknown_value"),
               Problem("vehicles", "-2.xlsx", 4, "owner_name", "@张三", "name_annotation")]
    out = tmp_path / "x.xlsx"
    assert write_xlsx(Bulletin(FIRST, None, None, []), out, hostile) == 2
    rows = _cells(out)["问题记录"][2:]
    assert [r[1] for r in rows] == ["'=HYPERLINK(\"http://x\").xlsx", "'-2.xlsx"]
    assert not any(c.startswith(FORMULA_LEADS) for r in rows for c in r)
    assert rows[1][4] == "'@**" and rows[0][5] == "值无法入库：不在规定的取值范围内"


def test_a_snapshot_carried_to_a_later_night_is_counted_once(three_nights: Home) -> None:
    """Night 3 keeps property's night-1 snapshot (its file was held): its counts (the bulletin's and
    the name defects') come from what night 1 counted, keyed by the load that made the snapshot, and
    equal a count from scratch."""
    import duckdb

    from bidui.matching.quality import night_defects
    from bidui.quality.bulletin import night_bulletin

    stored = _bulletin(three_nights, THIRD)
    con = duckdb.connect(str(three_nights.warehouse))
    try:
        (load,), = con.execute("SELECT load_id FROM snapshots WHERE dataset = 'property' AND snapshot_date = ?",
                               [FIRST]).fetchall()
        kept = [c for c, in con.execute("SELECT counts FROM quality_counts WHERE load_id = ?", [load]).fetchall()
                if '"valid_ids"' not in c]  # (the plausibility checks' profile is kept with its load too)
        shared = [c for c in kept if '"shared_ids"' in c]
        # the bulletin's counts and the name defects, each counted on night 1 only; the shared
        # numbers once for each set of links the nights gave the snapshot's records
        assert len(kept) - len(shared) == 2 and 1 <= len(shared) <= 3
        con.execute("DROP TABLE quality_counts")
        scratch = night_bulletin(con, THIRD, night_defects(con, THIRD))
        assert scratch == stored  # what night 3 found through the kept counts
        # The kept counts are what a later night reads: a mark put on them shows through…
        con.execute("UPDATE quality_counts SET counts = json_object('rows', 7, 'rejected_rows', 0, 'problem_rows', 0, "
                    "'empty', json_object(), 'ids', json_object(), 'rejects', json_object())::VARCHAR "
                    "WHERE load_id = ? AND counts LIKE '%\"rows\"%'", [load])
        assert night_bulletin(con, THIRD, night_defects(con, THIRD))["property"]["rows"] == 7
        # …and a snapshot another load made (the night's file replaced by a forced one) is counted anew.
        con.execute("UPDATE snapshots SET load_id = load_id + 100000 WHERE dataset = 'property' AND snapshot_date = ?", [FIRST])
        assert night_bulletin(con, THIRD, night_defects(con, THIRD))["property"]["rows"] == stored["property"]["rows"]
    finally:
        con.close()


def test_a_name_with_any_defect_is_a_problem_row_and_a_clean_name_is_not() -> None:
    """The bulletin reads every name defect in one pattern: each kind alone must still count, as
    each pattern alone does (`bidui.names.DEFECT_PATTERNS`), and a clean name must not."""
    import duckdb

    from bidui.names import DEFECT_PATTERNS
    from bidui.quality.bulletin import _name_defect_sql

    names = ["王*", "李？", "张三(户主)", "李四（已故）", "王yan", "yan王", "李\u200b四", "王\u3000五", "赵六", "古丽·阿布拉",
             "", None, "Wang Yan", "(户主)张"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (name_raw VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[n] for n in names])
    each = " OR ".join(f"regexp_matches(coalesce(name_raw, ''), '{p}')" for p in DEFECT_PATTERNS.values())
    got = con.execute(f"SELECT name_raw, {_name_defect_sql('name')}, {each} FROM t").fetchall()
    assert [one for _, one, _ in got] == [either for _, _, either in got]
    assert {n for n, one, _ in got if one} == {"王*", "李？", "张三(户主)", "李四（已故）", "王yan", "yan王", "李\u200b四",
                                                "王\u3000五", "(户主)张"}


def test_shared_numbers_are_counted_again_whenever_a_records_person_changes(tmp_path: Path) -> None:
    """The bulletin's shared numbers of a dataset are kept from an earlier count of the same
    snapshot only while every record links to the same person: a record linked elsewhere tonight
    (and back the night after) changes the count each time."""
    from bidui.connectors import warehouse as wh
    from bidui.datasets import BY_CODE
    from bidui.matching.link import LINKS_SCHEMA
    from bidui.quality.bulletin import dataset_quality

    con = wh.connect(tmp_path / "warehouse.duckdb")
    con.execute(LINKS_SCHEMA)
    ds = BY_CODE["vehicles"]
    c = ds.persons[0].id_column
    number = "330102199001011236"
    con.execute("INSERT INTO snapshots VALUES ('vehicles', ?, 7, 'v.csv', 'x', 3)", [FIRST])
    for row, status in ((1, "valid"), (2, "valid"), (3, "valid")):
        con.execute(f"INSERT INTO ds_vehicles (snapshot_date, load_id, source_file, source_row, row_id, {c}, {c}_status) "
                    "VALUES (?, 7, 'v.csv', ?, ?, ?, ?)",
                    [FIRST, row, 700 + row, number if row < 3 else "110101199003070018", status])

    def night(day: date, persons: list[str | None]) -> int:
        for row, person in enumerate(persons, start=1):
            con.execute("INSERT INTO links (night, dataset, row_id, role, person_key, method) "
                        "VALUES (?, 'vehicles', ?, 'owner', ?, ?)",
                        [day, 700 + row, person, "exact" if person else "none"])
        return dataset_quality(con, ds, day, FIRST, {})["shared_ids"]

    # Two persons under one number: shared. The same links the next night: the same count.
    assert night(FIRST, ["P1", "P2", "P3"]) == 1
    assert night(SECOND, ["P1", "P2", "P3"]) == 1
    # One of the two records now links to the other's person, or to nobody: not shared.
    assert night(THIRD, ["P1", "P1", "P3"]) == 0
    assert night(date(2026, 11, 23), ["P1", None, "P3"]) == 0
    # And back again.
    assert night(date(2026, 11, 24), ["P1", "P2", "P3"]) == 1
    con.close()
