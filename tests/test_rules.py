"""Rules: the SQL files on linked snapshots give exactly the answer key's clues.

The answer key (synth/truth.py) is itself tested against every planted positive and near miss
(tests/test_synth.py): thresholds at and just under (20,000 / 19,999 fees, 10 / 9.99 万元,
10,000 / 9,999.99 yuan, a bill exactly 365 days old), ages 6/7/15/16, statuses (报废, 注销, 吊销,
毕业, 休学, 转出), types (motorcycles, three-wheelers, trucks by class, disability vehicles,
cooperatives, relocation housing), splits exactly five years ago, businesses before and after
registration. Equality with it here therefore covers each rule's edges on real-looking data."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from bidui import config
from bidui.cli import app
from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.matching.link import link_night
from bidui.rules.accuracy import evaluate
from bidui.rules.engine import EXPORT_COLUMNS, load_rules, run_rules

NIGHTS = ("2026-11-20", "2026-11-21", "2026-11-22")


@pytest.fixture(scope="module")
def ruled(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("rulehome")
    con = wh.connect(home / "warehouse.duckdb")
    results = {}
    for night in NIGHTS:
        day = date.fromisoformat(night)
        ingest_night(con, tiny / "inbox" / night, day)
        link_night(con, day)
        results[night] = run_rules(con, day, config.load(None))
    yield con, results, home
    con.close()


def test_every_rule_file_is_well_formed() -> None:
    rules, shared = load_rules()
    codes = {r.code for r in rules}
    assert len(rules) == 19 and codes == set(__import__("json").loads(Path("tests/rule_codes.json").read_text()))
    assert {Path(p).name for _, p, _ in shared} == {"_appraisals.sql", "_disqualifiers.sql", "_missed_households.sql"}
    params = config.load(None)["rules"]["parameters"]
    for r in rules:
        assert all(p in params for p in r.parameters), r.code


@pytest.mark.parametrize("night", NIGHTS)
def test_hits_equal_the_answer_key(tiny: Path, ruled, night: str) -> None:
    _, results, _ = ruled
    result = results[night]
    assert {o.status for o in result.outcomes} == {"ran"}, [o for o in result.outcomes if o.status != "ran"]
    table, fp, fn = evaluate(result.hits, tiny / "truth" / night)
    assert (table["precision"] >= 0.98).all() and (table["recall"] >= 0.98).all(), (table, fp, fn)
    assert fp.is_empty() and fn.is_empty(), (fp, fn)


def test_no_planted_near_miss_is_raised(tiny: Path, ruled) -> None:
    _, results, _ = ruled
    plants = pl.read_csv(tiny / "truth" / "plants.csv", infer_schema=False).filter(pl.col("night") == "0")
    people = pl.read_parquet(tiny / "truth" / "residents.parquet").select(pl.col("pid").cast(pl.String), "id_number")
    near = plants.filter(pl.col("kind") == "near_miss").join(people, on="pid")
    hits = results[NIGHTS[0]].hits.select("rule_code", pl.col("subject_person_key").alias("id_number"))
    raised = near.join(hits, on=["rule_code", "id_number"], how="inner")
    assert raised.is_empty(), raised.select("rule_code", "description").rows()


def test_before_registration_agrees_with_the_answer_key(tiny: Path, ruled) -> None:
    _, results, _ = ruled
    truth = pl.read_csv(tiny / "truth" / NIGHTS[0] / "clues.csv", infer_schema=False).filter(
        pl.col("category") == "mis_inclusion").select("rule_code", "subject_id_number", "evidence_key",
                                                      pl.col("before_registration").alias("expected"))
    got = results[NIGHTS[0]].hits.filter(pl.col("category") == "mis_inclusion").select(
        "rule_code", "subject_id_number", "evidence_key", pl.col("before_registration").cast(pl.String).str.to_lowercase())
    j = got.join(truth, on=["rule_code", "subject_id_number", "evidence_key"])
    assert j.height == got.height > 0
    assert (j["before_registration"].fill_null("") == j["expected"].fill_null("").str.to_lowercase()).all()
    assert {"true", "false"} <= set(j["before_registration"].drop_nulls().to_list())


def test_a_rule_without_its_dataset_is_skipped_and_says_so(tiny: Path, tmp_path: Path) -> None:
    night = tmp_path / "inbox" / NIGHTS[0]
    shutil.copytree(tiny / "inbox" / NIGHTS[0], night)
    for f in night.glob("财政供养*"):
        f.unlink()
    con = wh.connect(tmp_path / "w.duckdb")
    day = date.fromisoformat(NIGHTS[0])
    ingest_night(con, night, day)
    link_night(con, day)
    result = run_rules(con, day, config.load(None))
    payroll = next(o for o in result.outcomes if o.code == "PUBLIC_PAYROLL")
    assert payroll.status == "skipped" and "没有已入库的财政供养人员数据" in payroll.message
    assert "PUBLIC_PAYROLL" not in set(result.hits["rule_code"].to_list())


def test_uninsured_waits_for_this_years_insurance_extract(ruled) -> None:
    """Run in a year the insurance extract has no rows for, UNINSURED does not run (everyone would
    look uninsured) and says so; the nights above, with this year's rows, ran it."""
    con, results, _ = ruled
    assert next(o for o in results[NIGHTS[0]].outcomes if o.code == "UNINSURED").status == "ran"
    result = run_rules(con, date(2027, 12, 1), config.load(None))
    uninsured = next(o for o in result.outcomes if o.code == "UNINSURED")
    assert uninsured.status == "skipped" and "运行条件未满足" in uninsured.message
    assert "UNINSURED" not in set(result.hits["rule_code"].to_list())


def test_thresholds_and_switches_come_from_config(ruled, tmp_path: Path) -> None:
    con, results, _ = ruled
    day = date.fromisoformat(NIGHTS[2])
    base = results[NIGHTS[2]].hits
    (tmp_path / "bidui.toml").write_text(
        '[rules]\ndisabled = ["UNINSURED"]\n[rules.parameters]\nschool_fee_threshold = 19999.0\n', encoding="utf-8")
    result = run_rules(con, day, config.load(tmp_path / "bidui.toml"))
    assert next(o for o in result.outcomes if o.code == "UNINSURED").status == "disabled"
    fee = result.hits.filter(pl.col("rule_code") == "HIGH_FEE_SCHOOL").height
    assert fee > base.filter(pl.col("rule_code") == "HIGH_FEE_SCHOOL").height  # the 19,999 near miss now counts


def test_adding_a_rule_is_adding_a_file(ruled, tmp_path: Path) -> None:
    con, _, _ = ruled
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "LARGE_HOUSE.sql").write_text(
        "-- code: LARGE_HOUSE\n-- title: 家庭成员拥有大面积房产\n-- category: mis_inclusion\n"
        "-- inputs: register_members, property\n-- parameters:\n"
        "SELECT s.*, 'property' AS evidence_dataset, p.cert_number AS evidence_key, p.register_date AS evidence_date,\n"
        "       to_json(p) AS evidence_record, p.link_method, p.link_score, p.link_explanation\n"
        "FROM property_linked p JOIN subjects s ON s.ident = p.ident WHERE p.area >= 150\n", encoding="utf-8")
    result = run_rules(con, date.fromisoformat(NIGHTS[0]), config.load(None), rules_dir, only=["LARGE_HOUSE"])
    assert [o.status for o in result.outcomes] == ["ran"] and result.outcomes[0].hits >= 0


def test_which_evidence_row_a_hit_keeps_does_not_depend_on_load_ids(ruled, tmp_path: Path) -> None:
    """Two evidence rows of one hit (a hukou death and a death certificate of the same date): the one
    kept was the one whose record sorted first, and a record quoting its row whole begins with the
    load id, which numbers the night's files in the order their workers finished. Two runs of one
    night kept different rows (the large bench's from-scratch run differed in 1,016 DECEASED hits)."""
    con, _, _ = ruled
    kept = []
    for hukou_load, deaths_load in ((5, 7), (7, 5)):
        rules_dir = tmp_path / f"rules{hukou_load}"
        rules_dir.mkdir()
        (rules_dir / "TWO_ROWS.sql").write_text(
            "-- code: TWO_ROWS\n-- title: 两条佐证\n-- category: natural_change\n-- inputs: register_members\n"
            "-- parameters:\n"
            "SELECT s.*, x.ds AS evidence_dataset, '2025-01-01' AS evidence_key, DATE '2025-01-01' AS evidence_date,\n"
            "       x.rec AS evidence_record, NULL AS link_method, NULL AS link_score, NULL AS link_explanation\n"
            "FROM (SELECT * FROM subjects ORDER BY subject_key LIMIT 3) s,\n"
            f"     (VALUES ('hukou', '{{\"snapshot_date\":\"2026-11-20\",\"load_id\":{hukou_load},\"status\":\"死亡\"}}'),\n"
            f"             ('deaths', '{{\"snapshot_date\":\"2026-11-20\",\"load_id\":{deaths_load},\"death\":1}}')) x(ds, rec)\n",
            encoding="utf-8")
        result = run_rules(con, date.fromisoformat(NIGHTS[0]), config.load(None), rules_dir, only=["TWO_ROWS"])
        assert result.hits.height == 3
        kept.append(result.hits.select("subject_key", "evidence_dataset").sort("subject_key").rows())
    assert kept[0] == kept[1]
    assert {dataset for _, dataset in kept[0]} == {"hukou"}  # the person's own record before a linked one


def test_a_member_hukou_lists_twice_under_one_number_is_one_member(published_home, tmp_path: Path) -> None:
    """Hukou lists a registered member a second time under the same number, in another household (a
    public-security defect): the member is still one member row. Joined to both hukou rows, the member
    came out twice, DUPLICATE_MEMBER said the register listed them twice in their household, and
    which hukou household the clues named followed the rows' order in the file."""
    from bidui.datasets import BY_CODE
    from bidui.home import Home

    night1, night2 = date(2026, 11, 20), date(2026, 11, 21)
    root, _, _ = published_home
    hits = []
    for twin_first in (False, True):
        path = tmp_path / f"w{int(twin_first)}.duckdb"
        shutil.copy(Home(root).warehouse, path)
        con = wh.connect(path)
        try:
            person, = con.execute("""
                SELECT min(l.person_key) FROM links l WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'register_members'
                AND l.method = 'exact' AND l.person_key IN (SELECT id_number FROM ds_hukou_at(?) WHERE TRUE
                    AND status = '正常' AND relation <> '户主' GROUP BY id_number HAVING count(*) = 1)""",
                                  [night1, night1]).fetchone()
            (top,), = con.execute("SELECT max(source_row) FROM ds_hukou_at(?)", [night1]).fetchall()
            shift, place = (1, 1) if twin_first else (0, top + 1)
            con.execute(f"""
                CREATE TEMP TABLE _h AS
                SELECT * REPLACE (source_row + {shift} AS source_row) FROM ds_hukou_at(?)
                UNION ALL
                SELECT * REPLACE ({place} AS source_row, '其他' AS relation, (SELECT min(hukou_number) FROM ds_hukou
                    WHERE snapshot_date = ? AND hukou_number <> h.hukou_number) AS hukou_number)
                FROM ds_hukou_at(?) h WHERE id_number = ?""", [night1, night1, night1, person])
            con.execute(f"UPDATE _h SET snapshot_date = ?, load_id = 999, row_hash = {wh.row_hash_sql(BY_CODE['hukou'])}, "
                        "raw_hash = NULL", [night2])
            snapshot_rows.close(con, "hukou", night2)  # stored whole: the rows open before end
            con.execute("INSERT INTO ds_hukou BY NAME SELECT * FROM _h")
            con.execute("INSERT INTO snapshots VALUES ('hukou', ?, 999, 'hukou_edit.csv', 'edit', "
                        "(SELECT count(*) FROM _h))", [night2])
            link_night(con, night2)
            result = run_rules(con, night2, config.load(None))
        finally:
            con.close()
        mine = result.hits.filter(pl.col("subject_key") == person)
        assert "DUPLICATE_MEMBER" not in mine["rule_code"].to_list()
        hits.append(result.hits.select("rule_code", "subject_key", "household_code", "hukou_number", "evidence_key")
                    .sort(pl.all()).rows())
    assert hits[0] == hits[1]


def test_cli_rules(tiny: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    runner.invoke(app, ["--home", home, "ingest", str(tiny / "inbox" / NIGHTS[0])])
    assert runner.invoke(app, ["--home", home, "link", "--date", NIGHTS[0]]).exit_code == 0
    listed = runner.invoke(app, ["--home", home, "rules", "list"])
    assert listed.exit_code == 0 and "VEHICLE" in listed.output and "家庭成员拥有机动车" in listed.output
    ran = runner.invoke(app, ["--home", home, "rules", "run", "--date", NIGHTS[0]])
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "hits.csv"
    assert runner.invoke(app, ["--home", home, "rules", "export", "--date", NIGHTS[0], "--out", str(out)]).exit_code == 0
    frame = pl.read_csv(out, infer_schema=False)
    assert tuple(frame.columns) == EXPORT_COLUMNS and frame.height > 50
    missed = frame.filter(pl.col("category") == "missed_inclusion")
    assert missed.height and missed["household_code"].is_null().all() and missed["hukou_number"].is_not_null().all()


@pytest.mark.parametrize("written", ["{}\u200b", "\u3000{} ", "{}(户主)", "{}（已故）", "\ufeff{}"])
def test_a_difference_of_form_in_a_register_name_never_raises_name_mismatch(tiny: Path, tmp_path: Path,
                                                                           written: str) -> None:
    """Zero-width and full-width spaces, a BOM, an annotation in brackets: the same name
    (issue 15, item 5). Every member's name is rewritten so; NAME_MISMATCH finds what it found."""
    night = tmp_path / "inbox" / NIGHTS[0]
    shutil.copytree(tiny / "inbox" / NIGHTS[0], night)
    (members,) = night.glob("贫困人口明细_*")
    lines = members.read_text(encoding="utf-8-sig").splitlines()
    out = [lines[0]] + [",".join([f[0], written.format(f[1]), *f[2:]]) for f in (line.split(",") for line in lines[1:])]
    members.write_text("\n".join(out) + "\n", encoding="utf-8-sig")
    day = date.fromisoformat(NIGHTS[0])

    def mismatches(folder: Path, db: Path) -> set[str]:
        con = wh.connect(db)
        ingest_night(con, folder, day)
        link_night(con, day)
        hits = run_rules(con, day, config.load(None), only=["NAME_MISMATCH"]).hits
        con.close()
        return set(hits["subject_key"].to_list())

    clean = mismatches(tiny / "inbox" / NIGHTS[0], tmp_path / "clean.duckdb")
    assert clean and mismatches(night, tmp_path / "written.duckdb") == clean


# ---------------------------------------------------------------- what real department data does (issue 15)

def _pid(region: str, born: str, seq: int) -> str:
    from bidui.ids import check_char

    first17 = f"{region}{born}{seq:03d}"
    return first17 + check_char(first17)


@pytest.fixture(scope="module")
def defects(tmp_path_factory: pytest.TempPathFactory):
    """A village over two nights: a shared ID (一号多人), a second cancelled number (一人多号), a
    child's school and insurance records under the father's ID, a hukou name correction."""
    root = tmp_path_factory.mktemp("defects")
    county, town, village = "522701000000", "522701101000", "522701101201"
    p = {  # key: (id, name, sex, hukou number, relation, status, status date)
        "a": (_pid("522701", "19900909", 371), "刘洋", "男", "H01", "户主", "正常", ""),
        "b": (_pid("522701", "19900909", 371), "黄丽", "女", "H02", "户主", "正常", ""),
        "c": (_pid("522701", "19880101", 375), "孙强", "男", "H03", "户主", "正常", ""),
        "d": (_pid("522701", "19880101", 375), "周敏", "女", "H04", "户主", "正常", ""),
        "father": (_pid("522701", "19800312", 311), "张建国", "男", "H05", "户主", "正常", ""),
        "child": (_pid("522701", "20150601", 313), "张小明", "男", "H05", "子", "正常", ""),
        "renamed": (_pid("522701", "19880808", 391), "马晓东", "男", "H06", "户主", "正常", ""),
        "primary": (_pid("522701", "19750303", 381), "何平", "男", "H07", "户主", "正常", ""),
        "second": (_pid("522701", "19750303", 383), "何平", "男", "H99", "户主", "注销", "2012-05-01"),
    }
    # A member nobody can find, registered under the father's number (a typo that made another
    # person's valid number): not in hukou, not insured, and not the father.
    ghost = (p["father"][0], "郑永福", "男", "", "户主", "正常", "")
    filler = [(_pid("522701", f"19{60 + i % 30}0{1 + i % 9}1{i % 9}", 11 + 2 * i), f"赵{'明华强勇军'[i % 5]}{i}", "男",
               f"F{i:03d}", "户主", "正常", "") for i in range(60)]
    # register households: (code, head key, members)
    households = [("5227011012010001", "a", ["a"]), ("5227011012010002", "c", ["c"]),
                  ("5227011012010003", "d", ["d"]), ("5227011012010004", "father", ["father", "child"]),
                  ("5227011012010005", "renamed", ["renamed"]), ("5227011012010006", "primary", ["second"]),
                  ("5227011012010007", "ghost", ["ghost"])]
    results = {}
    for night, new_name in ((date(2026, 11, 20), "马晓东"), (date(2026, 11, 21), "马东升")):
        folder = root / "inbox" / night.isoformat()
        folder.mkdir(parents=True)
        (folder / "行政区划代码.csv").write_text(
            "区划代码,名称,级别,上级区划代码,城乡分类\n"
            f"{county},青山县,县,522700000000,\n{town},青石镇,镇,{county},\n{village},龙湾村,村,{town},乡村\n",
            encoding="utf-8")
        rows = [v if k != "renamed" else (v[0], new_name, *v[2:]) for k, v in p.items()] + filler
        people = p | {"ghost": ghost}
        (folder / f"hukou_{night:%Y%m%d}.csv").write_text(
            "公民身份号码,姓名,性别,出生日期,户号,与户主关系,户籍地址代码,户口性质,人员状态,状态日期\n" + "".join(
                f"{i},{n},{s},{i[6:14]},{h},{r},{village},农业,{st},{sd}\n" for i, n, s, h, r, st, sd in rows),
            encoding="utf-8")
        (folder / "建档立卡贫困户.csv").write_text(
            "户编号,村代码,户主姓名,户主证件号码,脱贫状态,识别年度\n" + "".join(
                f"{code},{village},{people[head][1] if head != 'renamed' else '马晓东'},{people[head][0]},已脱贫,2016\n"
                for code, head, _ in households), encoding="utf-8")
        (folder / "贫困人口明细.csv").write_text(
            "户编号,姓名,证件号码,与户主关系\n" + "".join(
                f"{code},{people[m][1]},{people[m][0]},{people[m][4]}\n" for code, _, members in households for m in members),
            encoding="utf-8")
        (folder / f"vehicles_{night:%Y%m%d}.csv").write_text(
            "号牌号码,车辆类型,机动车所有人,所有人证件号码,机动车状态,初次登记日期\n"
            f"贵J00001,K33,黄丽,{p['b'][0]},正常,2020-01-01\n贵J00002,K33,何平,{p['primary'][0]},正常,2020-01-01\n"
            + "".join(f"贵J1{k:04d},K33,{n},{i},正常,2019-01-01\n" for k, (i, n, *_) in enumerate(filler[:20])),
            encoding="utf-8")
        (folder / f"students_{night:%Y%m%d}.csv").write_text(
            "身份证号,姓名,学校名称,学段,学籍状态\n" f"{p['father'][0]},张小明,青石小学,小学,在读\n"
            + "".join(f"{i},{n},青石中学,高中,毕业\n" for i, n, *_ in filler[:20]), encoding="utf-8")
        insured = [(p[k][0], p[k][1]) for k in ("a", "b", "c", "d", "father", "renamed", "primary")]
        insured += [(p["father"][0], "张小明")] + [(i, n) for i, n, *_ in filler]
        (folder / f"medical_insurance_{night:%Y%m%d}.csv").write_text(
            "证件号码,姓名,参保年度,参保状态\n" + "".join(f"{i},{n},2026,参保\n" for i, n in insured), encoding="utf-8")
        con = wh.connect(root / "w.duckdb")
        outcomes = ingest_night(con, folder, night)
        assert all(o.status in ("accepted", "duplicate") for o in outcomes if o.file), [
            (o.file, o.status, o.message) for o in outcomes]
        link_night(con, night)
        results[night] = run_rules(con, night, config.load(None)).hits
        con.close()
    yield p | {"ghost": ghost}, results


def _hits(hits: pl.DataFrame, rule: str, person: tuple) -> pl.DataFrame:
    return hits.filter((pl.col("rule_code") == rule) & (pl.col("subject_name") == person[1]))


def test_a_shared_id_raises_no_clue_of_the_other_person(defects) -> None:
    p, results = defects
    hits = results[date(2026, 11, 20)]
    assert _hits(hits, "VEHICLE", p["a"]).is_empty(), "黄丽's car is not 刘洋's, though they share a number"
    for key in ("a", "c", "d"):
        for rule in ("NAME_MISMATCH", "DUPLICATE_MEMBER", "NOT_IN_HUKOU", "ID_INVALID"):
            assert _hits(hits, rule, p[key]).is_empty(), (rule, key)


def test_a_childs_school_and_insurance_under_the_fathers_id_count_for_the_child(defects) -> None:
    p, results = defects
    hits = results[date(2026, 11, 20)]
    assert _hits(hits, "DROPOUT", p["child"]).is_empty()
    assert _hits(hits, "UNINSURED", p["child"]).is_empty()


def test_a_second_cancelled_number_is_the_same_person(defects) -> None:
    p, results = defects
    hits = results[date(2026, 11, 20)]
    member = _hits(hits, "VEHICLE", p["second"])
    assert member.height == 1 and member["evidence_key"][0] == "贵J00002", "the car under his current number is his"
    for rule in ("NOT_IN_HUKOU", "ID_INVALID", "NAME_MISMATCH", "DUPLICATE_MEMBER"):
        assert _hits(hits, rule, p["second"]).is_empty(), rule


def test_a_hukou_name_correction_is_a_mismatch_not_a_missing_person(defects) -> None:
    p, results = defects
    first, second = results[date(2026, 11, 20)], results[date(2026, 11, 21)]
    assert _hits(first, "NAME_MISMATCH", p["renamed"]).is_empty()
    assert _hits(second, "NOT_IN_HUKOU", p["renamed"]).is_empty()
    mismatch = _hits(second, "NAME_MISMATCH", p["renamed"])
    assert mismatch.height == 1 and mismatch["evidence_key"][0] == "马东升"


def test_a_member_under_another_persons_number_is_not_that_person(defects) -> None:
    p, results = defects
    hits = results[date(2026, 11, 20)]
    assert _hits(hits, "NOT_IN_HUKOU", p["ghost"]).height == 1
    assert _hits(hits, "UNINSURED", p["ghost"]).height == 1, "the father's insurance is not his"
    for rule in ("NAME_MISMATCH", "DUPLICATE_MEMBER"):
        assert _hits(hits, rule, p["ghost"]).is_empty() and _hits(hits, rule, p["father"]).is_empty(), rule


def test_a_missed_household_is_named_by_its_head_else_its_eldest_member() -> None:
    """`missed_subjects`: the one head of a household; of two heads, the elder; with no head, the
    eldest member (ties by number, then name)."""
    import duckdb

    text = (Path(__file__).parents[1] / "bidui/sql/rules/_missed_households.sql").read_text()
    statement = next(s for s in text.split(";") if "TEMP TABLE missed_subjects" in s)
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE missed_candidates (ident VARCHAR, hukou_number VARCHAR, address_code VARCHAR, "
                "id_number VARCHAR, id_number_raw VARCHAR, name VARCHAR, relation VARCHAR, birth_date DATE)")
    rows = [("one-head", "H1", "户主", "1980-01-01"), ("h1-child", "H1", "子", "1950-01-01"),
            ("two-heads-young", "H2", "户主", "1990-01-01"), ("two-heads-old", "H2", "户主", "1960-01-01"),
            ("h2-elder", "H2", "父亲", "1930-01-01"),
            ("no-head-young", "H3", "子", "2001-01-01"), ("no-head-old", "H3", "妻", "1970-01-01"),
            ("no-head-undated", "H3", None, None), ("tie-b", "H4", "子", "2000-01-01"), ("tie-a", "H4", "女", "2000-01-01")]
    for ident, household, relation, born in rows:
        con.execute("INSERT INTO missed_candidates VALUES (?, ?, '522701001001', ?, ?, '某', ?, ?)",
                    [ident, household, ident, ident, relation, born])
    con.execute(statement)
    chosen = con.execute("SELECT hukou_number, subject_key FROM missed_subjects ORDER BY ALL").fetchall()
    assert chosen == [("H1", "one-head"), ("H2", "two-heads-old"), ("H3", "no-head-old"), ("H4", "tie-a")]
