"""Rules evaluated only where something changed (bidui.rules.changed) give the hits evaluating them
whole gives, in what the six nights of tests/test_incremental.py do not bring: register rows that
only moved in their file, a record chosen among two (a company's legal representative and
investor) when only one file came, bills of one day listed the other way round, a number two
persons share (一号多人), and the reasons to evaluate whole. (The last three found by a review; each
failed before its fix.)"""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from bidui import config
from bidui.connectors import warehouse as wh
from bidui.flows import nightly
from bidui.home import Home
from bidui.rules import changed, engine
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
from bidui.synth.writers import file_name
from tests.test_incremental import read, run, write_csv, write_xlsx

NIGHTS = [date(2026, 11, 20), date(2026, 11, 21)]
RECORD = r'"load_id":\s*-?\d+'  # (load ids number a night's files as they finished reading)


@pytest.fixture(scope="module")
def prefecture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("changed") / "prefecture"
    generate(root, SynthConfig(size="tiny", seed=11, nights=len(NIGHTS)))
    return root


def stored_and_whole(home: Path, night: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The night's stored hits, and the hits of the rules evaluated whole on the same warehouse."""
    con = wh.connect(Home(home).warehouse)
    try:
        columns = ["rule_code", "category", *engine.CLUE_COLUMNS, "before_registration"]
        stored = wh.query(con, f"SELECT {', '.join(columns)} FROM rule_hits WHERE night = ?", [night])
        whole = engine.run_rules(con, night, config.load(Home(home).config), Home(home).root / "rules").hits
    finally:
        con.close()
    frames = [f.select(columns).with_columns(pl.col("evidence_record").str.replace_all(RECORD, "_")) for f in (stored, whole)]
    return tuple(f.sort(columns, nulls_last=True) for f in frames)  # type: ignore[return-value]


def run_night(home: Path, folder: Path) -> None:
    """The night run; synth cuts night 2's property file (held: exit 2), every other file is taken."""
    assert run(home, folder) in (0, 2)
    report = nightly.stored_report(Home(home), date.fromisoformat(folder.name))
    assert {f["dataset"] for f in report.files if f["status"] in ("held", "refused")} <= {"property"}, report.files


def scope(home: Path, night: date) -> tuple:
    con = wh.connect(Home(home).warehouse)
    try:
        return con.execute("SELECT before, households, reason FROM rule_states WHERE night = ?", [night]).fetchone()
    finally:
        con.close()


def test_a_member_row_that_only_moved_is_looked_at_again(prefecture: Path, tmp_path: Path, monkeypatch) -> None:
    """A member without an ID is a clue subject named by the row (R:<household>:<row>): night 2's
    register lists the same members in reverse order, so every member row moved and said nothing
    new. The households are looked at again (the register's rows are read by their place) and the
    subject is named by its new row, as evaluating whole names it."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    for i, night in enumerate(NIGHTS):
        path = next((root / "inbox" / night.isoformat()).glob("贫困人口明细_*.csv"))
        t = read(path, "register_members")
        t.put(t.rows[3], "id_number", None)  # the fourth member's ID left out, both nights, and a name
        t.put(t.rows[3], "name", "查无此人")  # hukou does not know: the member links to no one
        if i:
            t.rows.reverse()
        write_csv(path, t, "utf-8", ",")
    home = tmp_path / "home"
    for night in NIGHTS:
        run_night(home, root / "inbox" / night.isoformat())
    before, households, reason = scope(home, NIGHTS[1])
    assert before == NIGHTS[0] and reason == "", (before, households, reason)
    stored, whole = stored_and_whole(home, NIGHTS[1])
    assert stored.equals(whole), (stored.join(whole, on=stored.columns, how="anti", nulls_equal=True),
                                  whole.join(stored, on=stored.columns, how="anti", nulls_equal=True))
    con = wh.connect(Home(home).warehouse)
    try:
        named = [con.execute("SELECT DISTINCT subject_key FROM rule_hits WHERE night = ? AND subject_key LIKE 'R:%'",
                             [n]).fetchall() for n in NIGHTS]
    finally:
        con.close()
    assert len(named[0]) == len(named[1]) == 1 and named[0] != named[1], named  # the row moved


def test_the_rules_are_evaluated_whole_after_a_parameter_changed(prefecture: Path, tmp_path: Path) -> None:
    """The night before's hits were computed with another threshold: none of them is carried."""
    home = tmp_path / "home"
    run_night(home, prefecture / "inbox" / NIGHTS[0].isoformat())
    Home(home).config.write_text("[rules.parameters]\nschool_fee_threshold = 1.0\n", encoding="utf-8")
    run_night(home, prefecture / "inbox" / NIGHTS[1].isoformat())
    assert scope(home, NIGHTS[1]) == (None, None, "the rules, their parameters or bidui changed")
    stored, whole = stored_and_whole(home, NIGHTS[1])
    assert stored.equals(whole)
    # the run report says so, in Chinese
    said = [nightly.stored_report(Home(home), n).markdown() for n in NIGHTS]
    assert "规则全部重新计算：此前没有运行过规则" in said[0]
    assert "规则全部重新计算：规则、参数或比对程序有变化" in said[1]


def folder(root: Path, i: int) -> Path:
    return root / "inbox" / NIGHTS[i].isoformat()


def members_path(root: Path, i: int) -> Path:
    return next(folder(root, i).glob("贫困人口明细_*"))


def steady_members(root: Path) -> list[tuple[str, str, str, str]]:
    """(id, name, household_code, hukou_number) of register members whose every household member row and
    hukou row is the same on both nights, with a number no other hukou row carries."""
    hk = [read(folder(root, i) / file_name("hukou", n), "hukou") for i, n in enumerate(NIGHTS)]
    h0 = hk[0]
    rows = [{h.get(r, "id_number"): tuple(r) for r in h.rows} for h in hk]
    counts = Counter(h0.get(r, "id_number") for r in h0.rows)
    mem = [read(members_path(root, i), "register_members") for i in range(2)]
    m0 = mem[0]
    by_household: dict[str, list[list]] = {}
    for m in (0, 1):
        for r in mem[m].rows:
            by_household.setdefault(f"{m}:{mem[m].get(r, 'household_code')}", []).append(tuple(r))

    def steady_person(i: str | None) -> bool:
        return bool(i) and counts[i] == 1 and i in rows[0] and rows[0][i] == rows[1].get(i)

    out = []
    for r in m0.rows:
        i, hh = m0.get(r, "id_number"), m0.get(r, "household_code")
        if not steady_person(i) or h0.get(rows[0][i], "status") != "正常" or m0.get(r, "name") != h0.get(rows[0][i], "name"):
            continue
        if sorted(by_household[f"0:{hh}"]) != sorted(by_household.get(f"1:{hh}", [])):
            continue
        if not all(steady_person(m0.get(list(x), "id_number")) for x in by_household[f"0:{hh}"]):
            continue
        out.append((i, m0.get(r, "name"), hh, h0.get(rows[0][i], "hukou_number")))
    return out


def both_ways_alike(root: Path, home: Path) -> None:
    """Both nights run; night 2's rules were looked at again where something changed, and its
    stored hits are those of a whole evaluation."""
    for n in NIGHTS:
        run_night(home, root / "inbox" / n.isoformat())
    only_stored, only_whole = compare(home, NIGHTS[1])
    assert scope(home, NIGHTS[1])[2] == ""
    assert only_stored.height == 0 and only_whole.height == 0, (only_stored, only_whole)


def compare(home: Path, night: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(hits stored only, hits of the whole evaluation only)."""
    stored, whole = stored_and_whole(home, night)
    return (stored.join(whole, on=stored.columns, how="anti", nulls_equal=True),
            whole.join(stored, on=stored.columns, how="anti", nulls_equal=True))


def test_business_rep_and_investor_flip_when_one_commerce_file_is_not_delivered(prefecture, tmp_path, monkeypatch):
    """A register member is legal representative and investor of one active company (both rows, same
    credit code). Night 1: both commerce files dated 11-20: the investor's record sorts first (file name
    'business_investors_…' < '市场主体…'). Night 2: the investors file comes again unchanged, the
    businesses file does not (its 11-20 snapshot stays): whole evaluation now quotes the businesses
    record by its date, and a carried hit kept the investor's. Records are chosen by what they say,
    not where they stand (engine.PLACE_IN_RECORD): the same record both ways."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    person, name, _, _ = steady_members(root)[0]
    bpath = folder(root, 0) / file_name("businesses", NIGHTS[0])
    b = read(bpath, "businesses")
    row = next(r for r in b.rows if b.get(r, "status") in ("存续", "在业")
               and b.get(r, "entity_type") in ("有限责任公司", "股份有限公司"))
    credit = b.get(row, "credit_code")
    b.put(row, "legal_rep_name", name)
    b.put(row, "legal_rep_id_number", person)
    write_xlsx(bpath, b)
    (folder(root, 1) / file_name("businesses", NIGHTS[1])).unlink()  # not delivered on night 2
    for i, n in enumerate(NIGHTS):
        ipath = folder(root, i) / file_name("business_investors", n)
        t = read(ipath, "business_investors")
        t.rows.insert(0, [None] * len(t.header))  # at the top: the same place both nights
        t.put(t.rows[0], "credit_code", credit)
        t.put(t.rows[0], "investor_name", name)
        t.put(t.rows[0], "investor_id_number", person)
        t.put(t.rows[0], "subscribed_capital", "50")
        if i:  # something else in the file changed (an unchanged file is not stored as a new snapshot)
            t.put(t.rows[-1], "subscribed_capital", "123")
        write_csv(ipath, t, "utf-8", ",")
    both_ways_alike(root, tmp_path / "home")


def test_medical_bills_of_one_day_listed_in_file_order(prefecture, tmp_path, monkeypatch):
    """Two bills of one member on one day at two hospitals (together over the threshold). Night 2's
    claims file lists the two the other way round (nothing else about them changed): the evidence's
    bill list ordered by place listed them the other way when evaluated whole, and the household (its
    bills only moved) was not looked at again. Bills are listed by what they say: the same list both ways."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    person, name, _, _ = steady_members(root)[1]
    bills = [("县人民医院", "8000.00", "6000.00"), ("州第一人民医院", "9000.00", "7000.00")]
    for i, n in enumerate(NIGHTS):
        path = folder(root, i) / file_name("medical_claims", n)
        t = read(path, "medical_claims")
        for k, (hospital, total, own) in enumerate(bills if i == 0 else list(reversed(bills))):
            t.rows.insert(k, [None] * len(t.header))
            for col, v in (("id_number", person), ("name", name), ("settle_date", "2026/10/5"), ("total_cost", total),
                           ("out_of_pocket", own), ("hospital", hospital)):
                t.put(t.rows[k], col, v)
        write_csv(path, t, "utf-8", ",")
    both_ways_alike(root, tmp_path / "home")


def test_a_shared_number_members_hukou_row_moves_out(prefecture, tmp_path, monkeypatch):
    """一号多人: a register member's number is carried by a second person in another hukou household,
    so the member's person key is '<id>~<hukou number>'. Night 2: the member's hukou row says 迁出
    (dated a month before). The changed row's person is its identity on that night's snapshot (its ID
    number alone missed the household, and MOVED_OUT with it)."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    person, _, _, number = steady_members(root)[2]
    for i, n in enumerate(NIGHTS):
        path = folder(root, i) / file_name("hukou", n)
        h = read(path, "hukou")
        mine = h.where("id_number", person)[0]
        other = [None] * len(h.header)
        h.rows.insert(0, other)  # the other holder of the number, at the top both nights
        for col, v in (("id_number", person), ("name", "欧阳明远"), ("sex", h.get(mine, "sex")),
                       ("birth_date", "19500101"), ("hukou_number", number + "99"),
                       ("relation", "户主"), ("address_code", h.get(mine, "address_code")),
                       ("hukou_type", "农业"), ("status", "正常")):
            h.put(other, col, v)
        if i == 1:
            h.put(mine, "status", "迁出")
            h.put(mine, "status_date", "20261015")
        write_csv(path, h, "gb18030", ",")
    both_ways_alike(root, tmp_path / "home")



def test_records_that_only_moved_are_quoted_from_their_new_rows(prefecture: Path, tmp_path: Path,
                                                                monkeypatch) -> None:
    """Night 2's vehicles workbook lists night 1's rows in reverse order: every record moved and
    none changed. The households of the car clues are not looked at again — as many households are
    in scope as when the rows stay in place — and each carried clue quotes its car from its new
    row, as evaluating whole quotes it."""
    monkeypatch.setattr(changed, "MOST", 1.0)
    root = tmp_path / "prefecture"
    shutil.copytree(prefecture, root)
    first = next(folder(root, 0).glob("机动车登记信息*"))
    second = next(folder(root, 1).glob("机动车登记信息*"))
    t = read(first, "vehicles")
    write_xlsx(first, t)
    night_1 = tmp_path / "night-1"
    run_night(night_1, folder(root, 0))
    in_scope, quoted = {}, {}
    for order in ("in place", "reversed"):
        if order == "reversed":
            t.rows.reverse()
        write_xlsx(second, t)
        home = tmp_path / order
        shutil.copytree(night_1, home)
        run_night(home, folder(root, 1))
        before, in_scope[order], reason = scope(home, NIGHTS[1])
        assert before == NIGHTS[0] and reason == "", (order, before, reason)
        report = nightly.stored_report(Home(home), NIGHTS[1])
        assert report.rules_scope["households"] == in_scope[order], report.rules_scope
        assert (f"规则只重新核查了 {NIGHTS[0]} 以来有变化的 {in_scope[order]:,} 户（共 {report.rules_scope['of']:,} 户）"
                in report.markdown()), report.markdown()
        stored, whole = stored_and_whole(home, NIGHTS[1])
        assert stored.equals(whole), (order, stored.join(whole, on=stored.columns, how="anti", nulls_equal=True),
                                      whole.join(stored, on=stored.columns, how="anti", nulls_equal=True))
        con = wh.connect(Home(home).warehouse)
        try:
            quoted[order] = con.execute(
                "SELECT night, subject_key, regexp_extract(evidence_record, '\"source_row\":([0-9]+)', 1) FROM rule_hits "
                "WHERE rule_code = 'VEHICLE' ORDER BY ALL").fetchall()
        finally:
            con.close()
    moved = {(s, r) for n, s, r in quoted["reversed"] if n == NIGHTS[1]} - {(s, r) for n, s, r in quoted["reversed"]
                                                                            if n == NIGHTS[0]}
    assert moved and len(moved) == sum(n == NIGHTS[1] for n, _, _ in quoted["reversed"]), quoted["reversed"]
    assert in_scope["reversed"] == in_scope["in place"], in_scope


def test_every_reason_to_evaluate_whole_reads_in_chinese() -> None:
    """Each reason the plan or the engine can give (read from their source) is worded in Chinese
    in the run report: a reason added without its words would reach the task force in English."""
    import inspect
    import re

    from bidui.clues.present import rules_scope_text

    reasons = re.findall(r'return None, f?"([^"]+)"', inspect.getsource(changed.plan))
    reasons += re.findall(r'return f?"([^"]+)"', inspect.getsource(engine._whole_because))
    reasons += re.findall(r'if incremental else "([^"]+)"', inspect.getsource(engine.run_rules))
    assert len(reasons) >= 14, reasons
    examples = {"{households} of {total} households in scope": "60 of 100 households in scope",
                "{rule.code} compares the run date and does not declare how (-- dated:)":
                    "UNINSURED compares the run date and does not declare how (-- dated:)"}
    for reason in reasons:
        text = rules_scope_text({"whole": examples.get(reason, reason)})
        assert text.startswith("规则全部重新计算：") and not re.search(r"[A-Za-z]", text), (reason, text)


@pytest.mark.parametrize("link", ["the same", "to another person", "unlinked"])
def test_a_row_that_only_moved_is_set_aside_unless_its_link_changed(tmp_path: Path, link: str) -> None:
    """A vehicles row stored again on night 2 only because it moved (the same identity saying the
    same) is no change and is set aside before the rows are grouped, unless its link changed that
    night (a township's verdict, a must-link): then both persons are in scope. A row that came is
    always in scope."""
    from bidui.matching.link import LINKS_SCHEMA
    from bidui.matching.link_nights import LINK_COLUMNS

    n1, n2 = NIGHTS
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        con.execute(LINKS_SCHEMA)
        con.execute("ALTER TABLE links ADD COLUMN IF NOT EXISTS carried BOOLEAN")
        rows = [  # (stored for, last night in force, row, row id, owner's number, what it says)
            (n1, n1, 1, 11, "P1", 101),   # went (moved: stored again below at row 3)
            (n2, None, 3, 11, "P1", 101),
            (n1, n2, 2, 12, "P2", 102),   # kept in place
            (n2, None, 1, 13, "P3", 103),  # came
        ]
        for stored, last, row, ident, owner, h in rows:
            con.execute("INSERT INTO ds_vehicles (snapshot_date, load_id, source_file, source_row, owner_id_number, "
                        "row_hash, row_id, last_date) VALUES (?, 1, 'v.csv', ?, ?, ?, ?, ?)",
                        [stored, row, owner, h, ident, last])
        then = {"the same": "P1", "to another person": "P1", "unlinked": "P1"}[link]
        now = {"the same": "P1", "to another person": "Q1", "unlinked": None}[link]
        links = [(n1, n1 if then != now else n2, 11, then, "exact"), (n1, n2, 12, "P2", "exact"),
                 (n2, n2, 13, "P3", "exact")]
        if then != now:
            links.append((n2, n2, 11, now, "exact" if now else "none"))
        for night, last, ident, person, method in links:
            con.execute(f"INSERT INTO links (night, {LINK_COLUMNS}, carried, last_night) "
                        "VALUES (?, 'vehicles', ?, 'owner', ?, ?, 1.0, FALSE, '', FALSE, ?)",
                        [night, ident, person, method, last])
        con.execute("CREATE TEMP TABLE rules_persons (ident VARCHAR)")
        con.execute("CREATE TEMP TABLE rules_hukou (hukou_number VARCHAR)")
        con.execute("CREATE TEMP TABLE rules_households (household_code VARCHAR)")
        con.execute("CREATE TEMP TABLE rules_credit_changed (credit_code VARCHAR)")
        changed._links_changed(con, n1, n2)
        changed._seed_changed_rows(con, changed.BY_CODE["vehicles"], n1, n2)
        persons = {p for (p,) in con.execute("SELECT ident FROM rules_persons").fetchall()}
    finally:
        con.close()
    assert persons == {"the same": {"P3"}, "to another person": {"P1", "Q1", "P3"}, "unlinked": {"P1", "P3"}}[link]
