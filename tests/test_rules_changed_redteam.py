"""Red team of the rules evaluated only where something changed (issue 18, bidui.rules.changed), and
of its newest part, records quoted in carried hits that only moved in their file (`_moved_records`).

The invariant, checked after every night of every sequence below: the hits stored for the night
equal those of evaluating every rule whole on the same warehouse (load ids apart), and where cheap
the ledger equals that of a home that ran every night from scratch (`--from-scratch`).

Found, and fixed since: two records of one person that say the same in every stored value but
were delivered in two forms (a date written 2020-01-05 and 2020/1/5: the same row hash, two
fingerprints) are told apart by their place alone when a rule picks the one to quote
(engine.PLACE_IN_RECORD); `_moved_records` matched each moved record to itself by (row_hash,
raw_hash) and requoted it, while a whole evaluation quotes whichever of the two now stands first.
A record is now requoted only when no other row in force on either night has its row hash.

Each case was also run against mutations of bidui.rules.changed made in memory (matching moved
records by row hash alone, no `_seed_ages`, no `_seed_dated`, dangerous-house appraisals not
read by their place, carried records not requoted from their new rows, rule texts left out of the
fingerprint): each mutation fails at least one case.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from bidui.connectors import warehouse as wh
from bidui.home import Home
from bidui.rules import changed
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
from bidui.synth.writers import file_name
from tests.test_incremental import ledger_state, read, run, write_csv, write_xlsx
from tests.test_rules_changed import compare, steady_members

NIGHTS = [date(2026, 11, 20) + timedelta(days=i) for i in range(4)]
VEHICLES = "机动车登记信息（11月）.xlsx"  # (one name all month)


@pytest.fixture(scope="module")
def prefecture(tmp_path_factory) -> Path:
    """Four tiny nights (synth: no students file on night 2, the property file cut on night 3)."""
    root = tmp_path_factory.mktemp("changed-redteam") / "prefecture"
    generate(root, SynthConfig(size="tiny", seed=11, nights=len(NIGHTS)))
    return root


@pytest.fixture(autouse=True)
def scope_however_wide(monkeypatch) -> None:
    # A tiny register: a few changes reach half of it, where the rules would be evaluated whole.
    monkeypatch.setattr(changed, "MOST", 1.0)


def folder(root: Path, i: int) -> Path:
    return root / "inbox" / NIGHTS[i].isoformat()


def copy(prefecture: Path, tmp_path: Path, nights: int = 2) -> Path:
    """The first `nights` night folders, to edit."""
    root = tmp_path / "prefecture"
    for i in range(nights):
        shutil.copytree(folder(prefecture, i), folder(root, i))
    return root


def night(home: Path, root: Path, i: int, *flags: str) -> None:
    """Run night `i`; every file is taken but synth's cut property file on night 3 (held, unless forced)."""
    from bidui.flows import nightly

    code = run(home, folder(root, i), *flags)
    report = nightly.stored_report(Home(home), NIGHTS[i])
    stopped = {f["dataset"] for f in report.files if f["status"] in ("held", "refused")}
    assert stopped <= ({"property"} if i == 2 else set()), report.files
    assert code in (0, 2), code


def rule_state(home: Path, i: int) -> tuple:
    con = wh.connect(Home(home).warehouse)
    try:
        return con.execute("SELECT before, households, reason FROM rule_states WHERE night = ?", [NIGHTS[i]]).fetchone()
    finally:
        con.close()


def alike(home: Path, i: int, incremental: bool | None = True) -> None:
    """Night `i`'s stored hits are those of evaluating every rule whole; `incremental`: the rules
    were evaluated only where something changed (False: whole; None: either)."""
    only_stored, only_whole = compare(home, NIGHTS[i])
    differ = only_stored.height + only_whole.height
    assert differ == 0, (NIGHTS[i], shown(only_stored), shown(only_whole))
    if incremental is not None:
        before, _, reason = rule_state(home, i)
        assert (reason == "" and before is not None) == incremental, (NIGHTS[i], before, reason)


def shown(frame) -> list[tuple]:
    """The hits that differ as (rule, evidence dataset, row quoted), no one named."""
    return sorted(zip(frame["rule_code"], frame["evidence_dataset"],
                      frame["evidence_record"].str.extract(r'"source_row":([0-9]+)', 1), strict=True), key=str)


def hits(home: Path, i: int, rule: str, subject: str | None = None) -> list[tuple]:
    """(subject, source_row quoted) of a rule's hits on night `i`."""
    con = wh.connect(Home(home).warehouse)
    try:
        return con.execute(
            "SELECT subject_key, TRY_CAST(regexp_extract(evidence_record, '\"source_row\":([0-9]+)', 1) AS BIGINT) "
            "FROM rule_hits WHERE night = ? AND rule_code = ? AND (? IS NULL OR subject_key = ?) ORDER BY ALL",
            [NIGHTS[i], rule, subject, subject]).fetchall()
    finally:
        con.close()


def apart(root: Path, n: int) -> list[tuple[str, str, str, str]]:
    """`n` steady register members (tests/test_rules_changed.steady_members), each of another
    household, in the register file's order: what is planted for one is no change of another's."""
    out: list[tuple[str, str, str, str]] = []
    for m in steady_members(root):
        if all(m[2] != o[2] and m[3] != o[3] for o in out):
            out.append(m)
    assert len(out) >= n, len(out)
    return out[:n]


def blank_row(t) -> list:
    return [None] * len(t.header)


def put_vehicle(t, row: list, plate: str, person: str, name: str, registered: str, kind: str = "K33") -> list:
    for col, v in (("plate", plate), ("use_nature", "非营运"), ("vehicle_type", kind), ("owner_name", name),
                   ("owner_id_number", person), ("register_date", registered), ("status", "正常")):
        t.put(row, col, v)
    return row


# ---------------------------------------------------------------- records that only moved


@pytest.fixture
def requoted(monkeypatch) -> list[dict[str, int]]:
    """Of the records quoted in carried hits, how many each night found only moved in their file
    (`_moved_records`), by dataset: that a case did reach the code it is about."""
    found: list[dict[str, int]] = []
    real = changed._moved_records

    def spy(con, *args, **kwargs):
        real(con, *args, **kwargs)
        found.append(dict(con.execute(f"SELECT s.dataset, count(*) FROM {changed.REQUOTED_ROWS} m "
                                      "JOIN snapshots s ON s.load_id = m.old_load GROUP BY ALL").fetchall()))

    monkeypatch.setattr(changed, "_moved_records", spy)
    return found


@pytest.fixture(scope="module")
def first_night(prefecture, tmp_path_factory) -> Path:
    """A home that ran synth's night 1 as delivered (copied by the cases that leave night 1 alone)."""
    home = tmp_path_factory.mktemp("changed-redteam-night-1") / "home"
    night(home, prefecture, 0)
    return home


def homes_after_night_1(first_night: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(incremental home, scratch home), both after night 1 (a first night carries nothing either way)."""
    pair = tmp_path / "incremental", tmp_path / "scratch"
    for home in pair:
        shutil.copytree(first_night, home)
    return pair


def same_ledger(incremental: Path, scratch: Path, i: int) -> None:
    ours, theirs = ledger_state(incremental), ledger_state(scratch)
    for what in ours:
        assert ours[what] == theirs[what], (NIGHTS[i], what, len(ours[what]), len(theirs[what]))


def quoted_rows(home: Path, i: int, rule: str) -> list[int]:
    """The rows the hits of `rule` quote on night `i`."""
    return sorted(r for _, r in hits(home, i, rule) if r is not None)


TWIN_ORDERS = {
    # night 1: [A, B, …]; night 2: [B, A, …]
    "swapped": (lambda rows, twins: [*twins, *rows], lambda rows, twins: [twins[1], twins[0], *rows]),
    # night 2: [r1, B, A, …]: B stays at its row, A moves past it (no twin but A came or went)
    "one moves past the other": (lambda rows, twins: [*twins, *rows],
                                 lambda rows, twins: [rows[0], twins[1], twins[0], *rows[1:]]),
    # night 1: [r1, A, B, …]; night 2: [B, A, r1, …]: A, quoted, stays at its row and B moves ahead
    # of it (found by a review: A was taken as kept in place)
    "the other moves ahead of the quoted one": (lambda rows, twins: [rows[0], *twins, *rows[1:]],
                                                lambda rows, twins: [twins[1], twins[0], *rows]),
}


@pytest.mark.parametrize("order", list(TWIN_ORDERS))
def test_two_records_saying_the_same_in_two_forms_change_places(prefecture, tmp_path, requoted, order) -> None:
    """A member's car is listed twice in the vehicles workbook, the same in every stored value: the
    first registration date once written 2020-01-05, once 2020/1/5 (both kept: not the same cells;
    the same row hash, not the same fingerprint). Every rule quotes one of them, the one at the
    lower row (engine.PLACE_IN_RECORD: records that say the same are told apart by their place).
    Night 2 puts the other one first: evaluated whole, the clue quotes it; the carried clue must too."""
    root = copy(prefecture, tmp_path)
    person, name, _, _ = steady_members(root)[0]
    for i in range(2):
        t = read(folder(root, i) / VEHICLES, "vehicles")
        twins = [put_vehicle(t, blank_row(t), "贵A9T001", person, name, day) for day in ("2020-01-05", "2020/1/5")]
        t.rows = TWIN_ORDERS[order][i](t.rows, twins)
        write_xlsx(folder(root, i) / VEHICLES, t)
    home = tmp_path / "home"
    for i in range(2):
        night(home, root, i)
    first = 2 if order == "the other moves ahead of the quoted one" else 1
    quoted = [r for _, r in hits(home, 0, "VEHICLE", person)]  # (no one named in a failure)
    assert quoted == [first], quoted  # the first twin, 2020-01-05
    assert requoted[-1].get("vehicles"), requoted
    alike(home, 1)


def test_moved_records_that_changed_an_unmapped_cell_a_value_or_their_link(prefecture, tmp_path, requoted) -> None:
    """The vehicles come with a column the mapping does not know (备注), 无 in every row. Night 2's
    come as CSV instead of a workbook, the rows in reverse order. Of the records the car clues
    quote, some's 备注 says something else (the same row hash, not the same fingerprint: the quoted
    record shows its unmapped cells), one's registration date is impossible (rejected: no
    fingerprint), one is listed twice (the copy first: kept once, at the copy's row), and one's
    owner had the name in hukou corrected (the record's link changed). The others only moved, and
    are quoted from their new rows. Stored = whole, and the ledger is that of a home run from scratch."""
    root = copy(prefecture, tmp_path)
    t = read(folder(root, 0) / VEHICLES, "vehicles")
    t.header.append("备注")
    for row in t.rows:
        row.append("无")
    write_xlsx(folder(root, 0) / VEHICLES, t)
    incremental, scratch = tmp_path / "incremental", tmp_path / "scratch"
    night(incremental, root, 0)
    shutil.copytree(incremental, scratch)
    quoted = quoted_rows(incremental, 0, "VEHICLE")
    assert len(quoted) >= 8, quoted
    rejected, copied, renamed = (t.rows[r - 1] for r in quoted[:3])
    for r in quoted[3::2]:  # (several: one of them may be in a household in scope for another reason)
        t.rows[r - 1][-1] = "已过户"
    t.put(rejected, "register_date", "2019-02-30")
    owner = t.get(renamed, "owner_id_number")
    t.rows.reverse()
    t.rows.insert(0, list(copied))
    (folder(root, 1) / VEHICLES).unlink()
    write_csv(folder(root, 1) / VEHICLES.replace(".xlsx", ".csv"), t, "utf-8", ",")
    hukou = folder(root, 1) / file_name("hukou", NIGHTS[1])
    h = read(hukou, "hukou")
    row = h.where("id_number", owner)[0]
    h.put(row, "name", h.get(row, "name")[0] + "梓萱")
    write_csv(hukou, h, "gb18030", ",")
    night(incremental, root, 1)
    night(scratch, root, 1, "--from-scratch")
    assert requoted[-1].get("vehicles"), requoted  # the others only moved
    alike(incremental, 1)
    same_ledger(incremental, scratch, 1)


# The form each dataset's file is written back in (as synth delivers it).
FORMS = {"property": ("utf-8-sig", ","), "payroll": ("gb18030", ","), "business_investors": ("utf-8", ","),
         "students": ("utf-8", "\t"), "medical_claims": ("utf-8", ","), "register_members": ("utf-8-sig", ","),
         "hukou": ("gb18030", ",")}


def rewrite(path: Path, code: str, t) -> None:
    if path.suffix == ".xlsx":
        write_xlsx(path, t)
    else:
        write_csv(path, t, *FORMS[code])


def reverse(path: Path, code: str) -> None:
    """The file delivered again with its rows in reverse order, nothing else changed."""
    t = read(path, code)
    t.rows.reverse()
    rewrite(path, code, t)


def test_a_record_refuted_as_not_self_then_moved(first_night, prefecture, tmp_path) -> None:
    """A township finds a clue 不属实 (不是本人) the day before night 2; night 2's file of its record
    lists every row in reverse order. The record says what it said, but is no longer linked to that
    person: it did not only move, and the household is looked at again (the clue is not carried,
    nor raised again). Stored = whole, and the ledger is that of a home run from scratch."""
    from tests.test_incremental import clue_to_refute, refute

    incremental, scratch = homes_after_night_1(first_night, tmp_path)
    root = copy(prefecture, tmp_path)
    clue, (dataset, _, _, _) = clue_to_refute(incremental)
    for home in (incremental, scratch):
        refute(home, clue, NIGHTS[1] - timedelta(days=1))
    reverse(folder(root, 1) / file_name(dataset, NIGHTS[1]), dataset)
    night(incremental, root, 1)
    night(scratch, root, 1, "--from-scratch")
    raised = clue[2] in _evidence_keys(incremental, 1, clue[0], clue[1])
    assert not raised, clue[0]  # not raised again
    alike(incremental, 1)
    same_ledger(incremental, scratch, 1)


def _evidence_keys(home: Path, i: int, rule: str, subject: str) -> set[str]:
    con = wh.connect(Home(home).warehouse)
    try:
        return {k for (k,) in con.execute("SELECT evidence_key FROM rule_hits WHERE night = ? AND rule_code = ? "
                                          "AND subject_key = ?", [NIGHTS[i], rule, subject]).fetchall()}
    finally:
        con.close()


def test_held_missing_and_rerun_nights_then_files_back_in_another_order(first_night, prefecture, tmp_path,
                                                                        requoted) -> None:
    """Night 2: the vehicles workbook in reverse order, no students file (synth: its snapshot of
    night 1 stays). Night 3: the property file cut (held: night 2's stays), the students file back
    in reverse order. Night 4: the property file back in reverse order. Then night 4's payroll
    file comes again in reverse order and night 4 is run again (carried from night 3 again); then
    night 3 is run again with its cut file forced (a later night's rules ran: evaluated whole),
    and night 4 once more, carried from night 3 as it now is (its quoted property rows those of
    the cut file). Stored = whole after every run."""
    home = tmp_path / "home"
    shutil.copytree(first_night, home)
    root = copy(prefecture, tmp_path, nights=4)
    reverse(folder(root, 1) / VEHICLES, "vehicles")
    reverse(folder(root, 2) / file_name("students", NIGHTS[2]), "students")
    reverse(folder(root, 3) / file_name("property", NIGHTS[3]), "property")
    for i in (1, 2, 3):
        night(home, root, i)
        alike(home, i)
    assert rule_state(home, 3)[0] == NIGHTS[2]
    moved = [set(r) for r in requoted]
    assert "vehicles" in moved[0] and "students" in moved[1] and "property" in moved[2], requoted
    reverse(folder(root, 3) / file_name("payroll", NIGHTS[3]), "payroll")
    night(home, root, 3, "--force")
    alike(home, 3)
    night(home, root, 2, "--force")
    alike(home, 2, incremental=False)
    assert rule_state(home, 2)[2] == "a later night's rules have run"
    night(home, root, 3, "--force")
    alike(home, 3)
    assert rule_state(home, 3)[0] == NIGHTS[2]


def test_a_birthday_and_the_edges_of_the_medical_window_between_two_nights(prefecture, tmp_path) -> None:
    """Nothing a rule reads changes between the two nights but the date: a registered boy turns
    16 on night 2 (DROPOUT is for ages 7–15: no student record, a clue on night 1 only); a bill
    settled 365 days before night 2 leaves the medical window (in it on night 1); a bill settled on
    night 2's date enters it (delivered on night 1, dated the next day). Each household is looked
    at again; none is carried."""
    from bidui.ids import check_char

    root = copy(prefecture, tmp_path)
    steady = apart(root, 3)
    person, _, household, number = steady[0]
    hukou0 = read(folder(root, 0) / file_name("hukou", NIGHTS[0]), "hukou")
    mine = hukou0.where("id_number", person)[0]
    body = hukou0.get(mine, "address_code")[:6] + "20101121" + "071"
    boy = body + check_char(body)
    surname = (hukou0.get(mine, "name") or "王")[0]
    bills = {steady[1][0]: [("2025/11/21", "6000.00"), ("2026/10/5", "5000.00")],
             steady[2][0]: [("2026/11/21", "12000.00")]}
    names = {i: n for i, n, _, _ in steady[:3]}
    for i, n in enumerate(NIGHTS[:2]):
        path = folder(root, i) / file_name("hukou", n)
        h = read(path, "hukou")
        h.rows.insert(0, blank_row(h))  # at the top: the same place both nights
        for col, v in (("id_number", boy), ("name", surname + "小满"), ("sex", "男"), ("birth_date", "20101121"),
                       ("hukou_number", number), ("relation", "子"), ("address_code", hukou0.get(mine, "address_code")),
                       ("hukou_type", hukou0.get(mine, "hukou_type")), ("status", "正常")):
            h.put(h.rows[0], col, v)
        rewrite(path, "hukou", h)
        path = folder(root, i) / file_name("register_members", n)
        m = read(path, "register_members")
        m.rows.insert(0, blank_row(m))
        for col, v in (("household_code", household), ("name", surname + "小满"), ("id_number", boy), ("relation", "子"),
                       ("sex", "男"), ("birth_date", "2010-11-21"), ("health_status", "健康")):
            m.put(m.rows[0], col, v)
        rewrite(path, "register_members", m)
        path = folder(root, i) / file_name("medical_claims", n)
        c = read(path, "medical_claims")
        for who, theirs in bills.items():
            for settled, own in theirs:
                c.rows.insert(0, blank_row(c))
                for col, v in (("id_number", who), ("name", names[who]), ("settle_date", settled),
                               ("total_cost", own), ("out_of_pocket", own), ("hospital", "州第一人民医院")):
                    c.put(c.rows[0], col, v)
        rewrite(path, "medical_claims", c)
    home = tmp_path / "home"
    for i in range(2):
        night(home, root, i)
    alike(home, 1)
    dropout = [bool(hits(home, i, "DROPOUT", boy)) for i in range(2)]
    assert dropout == [True, False], dropout
    medical = [{s for s, _ in hits(home, i, "HIGH_MEDICAL_COST")} for i in range(2)]
    assert medical[0] != medical[1], medical


def test_a_rule_disabled_then_a_rule_file_edited_then_restored(first_night, prefecture, tmp_path, monkeypatch) -> None:
    """Night 2: VEHICLE disabled in the config; night 3: enabled again, and VEHICLE.sql edited (cars
    of one class no longer counted); night 4: the file as packaged. Each night's hits were made by
    other rules than the night before's: evaluated whole, nothing carried."""
    from bidui.rules import engine

    home = tmp_path / "home"
    shutil.copytree(first_night, home)
    root = copy(prefecture, tmp_path, nights=4)
    config = Home(home).config
    kept = config.read_text(encoding="utf-8") if config.exists() else ""
    config.write_text(kept + '\n[rules]\ndisabled = ["VEHICLE"]\n', encoding="utf-8")
    night(home, root, 1)
    alike(home, 1, incremental=False)
    config.write_text(kept, encoding="utf-8")
    real = engine._files

    def edited(home_rules):
        files = real(home_rules)
        text, path = files["VEHICLE.sql"]
        files["VEHICLE.sql"] = (text.replace("JOIN subjects s ON s.ident = v.ident",
                                             "JOIN subjects s ON s.ident = v.ident WHERE v.vehicle_type_code NOT LIKE 'K3%'"),
                                path)
        return files

    with monkeypatch.context() as m:
        m.setattr(engine, "_files", edited)
        night(home, root, 2)
        alike(home, 2, incremental=False)
    night(home, root, 3)
    alike(home, 3, incremental=False)
    counts = [len(hits(home, i, "VEHICLE")) for i in range(4)]
    assert counts[1] == 0 and 0 < counts[2] < counts[3], counts
    assert [rule_state(home, i)[2] for i in (1, 2, 3)] == ["the rules, their parameters or bidui changed"] * 3


def test_register_members_come_and_go_and_two_appraisals_of_one_day_swap(prefecture, tmp_path, requoted) -> None:
    """Two appraisals of one member's house on one day, grade D then grade A: the latest of one
    day is the one at the later row (_appraisals.sql), so on night 1 the house is safe. Night 2
    lists them the other way round: grade D is the latest, a DANGEROUS_HOUSE clue (the appraisals'
    places are read: BY_PLACE). The same night the vehicles workbook comes in reverse order, one
    car owner leaves the register (their clue goes) and a baby joins another car owner's household."""
    from bidui.ids import check_char

    root = copy(prefecture, tmp_path)
    # the first steady household in the register's order: the register rows that go or come
    # below (after it) do not move its rows
    person, name, household, _ = apart(root, 1)[0]
    path = next(folder(root, 0).glob("农村危房鉴定结果*"))
    for i in range(2):
        path = folder(root, i) / path.name
        t = read(path, "dangerous_housing")
        pair = [blank_row(t), blank_row(t)]
        for row, grade in zip(pair, "DA", strict=True):
            for col, v in (("owner_id_number", person), ("owner_name", name), ("grade", grade),
                           ("appraisal_date", "2026-06-01"), ("renovated", "未改造")):
                t.put(row, col, v)
        t.rows[:0] = pair if i == 0 else pair[::-1]
        write_xlsx(path, t)
    home = tmp_path / "home"
    night(home, root, 0)
    path = folder(root, 1) / file_name("register_members", NIGHTS[1])
    m = read(path, "register_members")
    first = min(k for k, r in enumerate(m.rows) if m.get(r, "household_code") == household)
    below = {m.get(r, "id_number"): m.get(r, "household_code") for r in m.rows[first + 1:]}
    owners = [s for s, _ in hits(home, 0, "VEHICLE") if len(m.where("id_number", s)) == 1
              and below.get(s, household) != household]
    assert len(owners) >= 2, len(owners)
    gone = m.where("id_number", owners[0])[0]
    joined = m.where("id_number", owners[1])[0]
    m.rows.remove(gone)
    body = "52900120261001" + "123"
    m.add(household_code=m.get(joined, "household_code"), name=(m.get(joined, "name") or "王")[0] + "安安",
          id_number=body + check_char(body), relation="孙子", sex="男", birth_date="2026-10-01", health_status="健康")
    rewrite(path, "register_members", m)
    reverse(folder(root, 1) / VEHICLES, "vehicles")
    night(home, root, 1)
    alike(home, 1)
    house = [bool(hits(home, i, "DANGEROUS_HOUSE", person)) for i in range(2)]
    assert house == [False, True], house
    car = bool(hits(home, 1, "VEHICLE", owners[0]))
    assert not car
    assert requoted[-1].get("vehicles"), requoted
