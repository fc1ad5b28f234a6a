"""Issue 18, "done when" 1: six synthetic nights of what a prefecture's data really does — births,
deaths, name and ID corrections, moves, a household split, new register members, a township's
verdict and files re-delivered in another form — run through `bidui run --plain` twice, in two
homes: incrementally (rows delivered as before not normalised again, sure links carried from the
night before) and from scratch (`--from-scratch`). After every night both homes hold the same links, the same rule hits and the
same ledger; the incremental home did carry links and rule hits, and every planted event did happen.

What the tiny prefecture brings by itself (bidui/synth/README.md): deaths with certificates and
死亡注销 (at least one register member a night), hukou name corrections from night 2, cars
bought and scrapped, a company, a renovation; no students file on night 2 (its snapshot stays),
the property file cut on night 3 (held). What synth does not make is planted here, in the night
folders' files, as the departments would deliver it (each planted change stays in every later
night's file; the choice of persons is made from the files and the answer key):

night 2  hukou corrects a register member's ID number (the sequence code: 重号更正), the
         departments still write the old one; a baby's medical insurance comes under the mother's
         ID before the birth is registered in hukou
night 3  hukou registers the birth (a row in the mother's household, 出生登记); the register's
         members file comes again as XLSX, content unchanged
night 4  medical insurance, medical bills and the register follow the ID correction; the baby
         enters the register (a new member); a pupil whose school record is under a parent's ID
         moves to the grandparents' household in another village (迁出 / 迁入); a register member
         leaves the prefecture (迁出); a township refuted a clue as 不是本人 the day before
night 5  an old couple splits off from their son's household (分户); the students file comes again
         in GB18030 with its columns reordered, content unchanged
night 6  the couple who split off enter the register as a new household (HOUSEHOLD_SPLIT)
"""

from __future__ import annotations

import csv
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import xlsxwriter
from typer.testing import CliRunner

from bidui.cli import app
from bidui.connectors import warehouse as wh
from bidui.connectors.mapping import map_headers
from bidui.connectors.readers import read_table
from bidui.datasets import BY_CODE
from bidui.flows import nightly, same_results
from bidui.home import Home
from bidui.ids import check_char, normalise_id
from bidui.matching.link_nights import PLACED_COLUMNS
from bidui.matching.relinks import night_relinks
from bidui.rules import changed
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
from bidui.synth.writers import file_name
from bidui.text import XLSX_OPTIONS

NIGHTS = [date(2026, 11, 20) + timedelta(days=i) for i in range(6)]
SURE = ("exact", "former_name", "household", "excel_cut", "confirmed")


# ---------------------------------------------------------------- a delivered file, edited


@dataclass
class Delivered:
    """A delivered table as text: its header, its rows, where each canonical column is."""

    header: list[str]
    rows: list[list[str | None]]
    pos: dict[str, int]

    def get(self, row: list, col: str) -> str | None:
        return row[self.pos[col]]

    def put(self, row: list, col: str, value: str | None) -> None:
        row[self.pos[col]] = value

    def where(self, col: str, value: str) -> list[list]:
        return [r for r in self.rows if r[self.pos[col]] == value]

    def add(self, **values: str | None) -> None:
        row: list[str | None] = [None] * len(self.header)
        for col, value in values.items():
            row[self.pos[col]] = value
        self.rows.append(row)


def read(path: Path, code: str) -> Delivered:
    raw = read_table(path, BY_CODE[code])
    return Delivered(raw.header, [list(r) for r in raw.data.rows()],
                     map_headers(BY_CODE[code], raw.header, path.name).positions)


def write_csv(path: Path, t: Delivered, encoding: str, sep: str, order: list[int] | None = None) -> None:
    order = order or list(range(len(t.header)))
    with path.open("w", encoding=encoding, newline="") as f:
        out = csv.writer(f, delimiter=sep, lineterminator="\n")
        out.writerow([t.header[j] for j in order])
        out.writerows([["" if r[j] is None else r[j] for j in order] for r in t.rows])


def write_xlsx(path: Path, t: Delivered) -> None:
    """As a department's export writes it: every cell text (ID numbers keep their 18 digits)."""
    wb = xlsxwriter.Workbook(str(path), XLSX_OPTIONS)
    wb.set_properties({"created": datetime(2026, 11, 1)})
    ws = wb.add_worksheet("Sheet1")
    for j, h in enumerate(t.header):
        ws.write_string(0, j, h)
    for i, row in enumerate(t.rows, start=1):
        for j, v in enumerate(row):
            if v is not None:
                ws.write_string(i, j, v)
    wb.close()


def compact(d: date) -> str:  # hukou's dates
    return d.strftime("%Y%m%d")


def cn(d: date) -> str:  # hukou changes' dates
    return d.strftime("%Y年%m月%d日")


def age(birth: str, on: date) -> float:
    return (on - date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))).days / 365.2425


# ---------------------------------------------------------------- the planted events


@dataclass
class Planted:
    old_id: str  # the register member whose ID hukou corrected (night 2)…
    new_id: str  # …to this one; the departments follow on night 4
    mother: str
    baby: str  # born into the mother's household: insurance night 2, hukou night 3, register night 4
    baby_name: str
    pupil: str  # a pupil whose school record is under a parent's ID, moved on night 4
    pupil_parent: str
    moved_out: str  # a register member who left the prefecture on night 4
    couple: list[str] = field(default_factory=list)  # split off on night 5, registered on night 6
    new_household: str = ""  # their register household code
    refuted: tuple[str, str, str] = ("", "", "")  # the clue (rule, subject, evidence key) refuted before night 4
    refuted_record: tuple[str, str, str, str] = ("", "", "", "")  # its record: dataset, number, name, person


def plant(root: Path) -> Planted:
    inbox = root / "inbox"
    folder = [inbox / n.isoformat() for n in NIGHTS]
    hukou = [read(folder[i] / file_name("hukou", n), "hukou") for i, n in enumerate(NIGHTS)]
    residents = pl.read_parquet(root / "truth" / "residents.parquet")
    taken = set(residents["id_number"].to_list()) | set(residents["alias_id_number"].drop_nulls().to_list())
    taken |= {hukou[0].get(r, "id_number") for h in hukou for r in h.rows}
    odd = set(residents.filter(pl.col("shared_id") | pl.col("alias_id_number").is_not_null())["id_number"].to_list())

    # Persons whose hukou row is the same every night (no death, no correction by synth), living,
    # with a clean number and a plain name, of households whose every row is as steady.
    rows = [{hukou[0].get(r, "id_number"): tuple(r) for r in h.rows} for h in hukou]
    steady = {i: r for i, r in rows[0].items() if all(n.get(i) == r for n in rows[1:]) and i not in odd
              and normalise_id(i)[0] == i and r[hukou[0].pos["status"]] == "正常"
              and 2 <= len(r[hukou[0].pos["name"]] or "") <= 3}
    h0 = hukou[0]
    households: dict[str, list[tuple]] = {}
    for r in h0.rows:
        households.setdefault(h0.get(r, "hukou_number"), []).append(tuple(r))
    steady_households = {k for k, v in households.items() if all(steady.get(r[h0.pos["id_number"]]) == r for r in v)}

    def hh(i: str) -> str:
        return steady[i][h0.pos["hukou_number"]]

    def col(i: str, c: str) -> str:
        return steady[i][h0.pos[c]]

    members = read(folder[0] / file_name("register_members", NIGHTS[0]), "register_members")
    registered = {members.get(r, "id_number"): r for r in members.rows
                  if members.get(r, "id_number") in steady and members.get(r, "name") == col(members.get(r, "id_number"), "name")}
    registered_hukou = {hh(i) for i in registered}
    insurance = pl.read_parquet(folder[0] / file_name("medical_insurance", NIGHTS[0]))
    ins_id, ins_name = insurance.columns[0], insurance.columns[1]
    insured = set(insurance.select(pl.concat_str(ins_id, ins_name, separator="|"))[ins_id].to_list())
    claims = read(folder[0] / file_name("medical_claims", NIGHTS[0]), "medical_claims")
    billed = {f"{claims.get(r, 'id_number')}|{claims.get(r, 'name')}" for r in claims.rows}
    used: set[str] = set()

    def pick(candidates: list[str]) -> str:
        i = next(i for i in sorted(candidates) if hh(i) not in used and hh(i) in steady_households)
        used.add(hh(i))
        return i

    on = NIGHTS[0]
    # The ID correction: a register member, not the head, insured and with medical bills under the number.
    old = pick([i for i, r in registered.items() if 20 <= age(i[6:14], on) <= 70 and members.get(r, "relation") != "户主"
                and f"{i}|{col(i, 'name')}" in insured and f"{i}|{col(i, 'name')}" in billed])
    new = next(body + check_char(body) for k in range(2, 999, 2)
               if (body := old[:14] + f"{(int(old[14:17]) + k) % 1000:03d}") and body + check_char(body) not in taken)
    # The mother of a baby: a registered wife (or daughter-in-law) of a plain-named household.
    mother = pick([i for i, r in registered.items() if col(i, "sex") == "女" and 20 <= age(i[6:14], on) <= 40
                   and col(i, "relation") in ("户主", "配偶", "儿媳") and members.get(r, "relation") == col(i, "relation")])
    head = next(r for r in households[hh(mother)] if r[h0.pos["relation"]] == "户主")
    grandchild = col(mother, "relation") == "儿媳"
    baby_name = (head[h0.pos["name"]] or "")[0] + "沐辰"
    born = NIGHTS[1] - timedelta(days=11)
    baby = next(body + check_char(body) for k in range(11, 999, 2)
                if (body := col(mother, "address_code")[:6] + compact(born) + f"{k:03d}") and body + check_char(body) not in taken)
    # A pupil whose school record carries a parent's number (a household link), and the
    # grandparents' household in another village of the county they move to.
    truth = pl.read_parquet(root / "truth" / NIGHTS[0].isoformat() / "records.parquet")
    school = truth.filter((pl.col("dataset") == "students") & (pl.col("phenomenon") == "household_id"))
    pupils = {t: r for t, r in zip(school["true_id_number"], school["id_number_raw"], strict=True)
              if t in steady and r in steady and hh(t) == hh(r)}
    pupil = pick(list(pupils))
    grandparents = next(k for k in sorted(steady_households - used - registered_hukou)
                        if (hd := next((r for r in households[k] if r[h0.pos["relation"]] == "户主"), None))
                        and age(hd[h0.pos["birth_date"]], on) >= 60
                        and hd[h0.pos["address_code"]] != col(pupil, "address_code")
                        and hd[h0.pos["address_code"]][:6] == col(pupil, "address_code")[:6])
    used.add(grandparents)
    gp_address = households[grandparents][0][h0.pos["address_code"]]
    # A register member who leaves the prefecture.
    moved_out = pick([i for i in registered if 20 <= age(i[6:14], on) <= 60])
    # An old couple living with their son (not registered), who split off.
    son = next(k for k in sorted(steady_households - used - registered_hukou)
               if len([r for r in households[k] if r[h0.pos["relation"]] in ("父亲", "母亲")
                                   and age(r[h0.pos["birth_date"]], on) >= 60]) == 2 and len(households[k]) > 2)
    used.add(son)
    couple = sorted((r[h0.pos["id_number"]] for r in households[son] if r[h0.pos["relation"]] in ("父亲", "母亲")),
                    key=lambda i: col(i, "relation") != "父亲")
    village = col(couple[0], "address_code")
    split_to = next(n for k in range(9000101, 9999999) if (n := f"{village}{k}") not in households)
    new_household = next(c for k in range(7001, 9999) if not members.where("household_code", c := f"{village}{k}"))

    for i, night in enumerate(NIGHTS):
        f = folder[i]
        # hukou (GB18030, comma, dates 20261120) and its changes (GB18030, tab, dates 2026年11月20日)
        h = read(f / file_name("hukou", night), "hukou")
        c = read(f / file_name("hukou_changes", night), "hukou_changes")
        if i >= 1:  # the number corrected in hukou and in its own change log
            for t in (h, c):
                for r in t.where("id_number", old):
                    t.put(r, "id_number", new)
        if i >= 2:  # the birth registered
            mum = h.where("id_number", mother)[0]
            h.add(id_number=baby, name=baby_name, sex="男", birth_date=compact(born), hukou_number=hh(mother),
                  relation="孙子" if grandchild else "子", address_code=h.get(mum, "address_code"),
                  hukou_type=h.get(mum, "hukou_type"), status="正常")
            c.add(id_number=baby, name=baby_name, change_type="出生登记", change_date=cn(NIGHTS[2] - timedelta(days=1)),
                  to_hukou_number=hh(mother))
        if i >= 3:  # the pupil moves to the grandparents; a register member leaves the prefecture
            r = h.where("id_number", pupil)[0]
            h.put(r, "hukou_number", grandparents)
            h.put(r, "address_code", gp_address)
            h.put(r, "relation", "孙子" if col(pupil, "sex") == "男" else "孙女")
            when = NIGHTS[3] - timedelta(days=1)
            for kind in ("迁出", "迁入"):
                c.add(id_number=pupil, name=col(pupil, "name"), change_type=kind, change_date=cn(when),
                      from_hukou_number=hh(pupil), to_hukou_number=grandparents)
            r = h.where("id_number", moved_out)[0]
            h.put(r, "status", "迁出")
            h.put(r, "status_date", compact(when))
            c.add(id_number=moved_out, name=col(moved_out, "name"), change_type="迁出", change_date=cn(when),
                  from_hukou_number=hh(moved_out))
        if i >= 4:  # the old couple splits off
            for person, relation in zip(couple, ("户主", "配偶"), strict=True):
                r = h.where("id_number", person)[0]
                h.put(r, "hukou_number", split_to)
                h.put(r, "relation", relation)
                c.add(id_number=person, name=col(person, "name"), change_type="分户",
                      change_date=cn(NIGHTS[4] - timedelta(days=1)), from_hukou_number=son, to_hukou_number=split_to)
        if i >= 1:
            write_csv(f / file_name("hukou", night), h, "gb18030", ",")
            write_csv(f / file_name("hukou_changes", night), c, "gb18030", "\t")

        # medical insurance (Parquet): the baby's enrolment under the mother's number; the corrected number
        if i >= 1:
            path = f / file_name("medical_insurance", night)
            ins = pl.read_parquet(path)
            ins = pl.concat([ins, pl.DataFrame([[mother], [baby_name], ["2026"], ["参保"]], schema=ins.columns,
                                               orient="col")])
            if i >= 3:
                ins = ins.with_columns(pl.col(ins_id).replace(old, new))
            ins.write_parquet(path)
        # medical bills (UTF-8, comma) follow the correction
        if i >= 3:
            path = f / file_name("medical_claims", night)
            t = read(path, "medical_claims")
            for r in t.where("id_number", old):
                t.put(r, "id_number", new)
            write_csv(path, t, "utf-8", ",")

        # the register's members (UTF-8 with BOM, ISO dates)
        path = f / file_name("register_members", night)
        m = read(path, "register_members")
        if i == 2:  # the same content again, as a workbook
            path.unlink()
            write_xlsx(path.with_suffix(".xlsx"), m)
        if i >= 3:
            for r in m.where("id_number", old):
                m.put(r, "id_number", new)
            mum = m.where("id_number", mother)[0]
            m.add(household_code=m.get(mum, "household_code"), name=baby_name, id_number=baby,
                  relation="孙子" if grandchild else "子", sex="男", birth_date=born.isoformat(), health_status="健康")
        if i >= 5:
            for person, relation in zip(couple, ("户主", "配偶"), strict=True):
                b = col(person, "birth_date")
                m.add(household_code=new_household, name=col(person, "name"), id_number=person, relation=relation,
                      sex=col(person, "sex"), birth_date=f"{b[:4]}-{b[4:6]}-{b[6:]}", health_status="长期慢性病")
            households_file = f / file_name("register_households", night)
            rh = read(households_file, "register_households")
            rh.add(household_code=new_household, village_code=village, head_name=col(couple[0], "name"),
                   head_id_number=couple[0], status="未脱贫", household_type="一般贫困户", main_cause="缺劳力",
                   registered_year="2026")
            write_xlsx(households_file, rh)
        if i >= 3:
            write_csv(path, m, "utf-8-sig", ",")

        # the students file (UTF-8, tab) again in GB18030, its columns in another order
        if i == 4:
            path = f / file_name("students", night)
            s = read(path, "students")
            write_csv(path, s, "gb18030", "\t", order=list(reversed(range(len(s.header)))))

    # The night's marker last, as a department writes it: it vouches for the files written before it.
    for night in NIGHTS:
        (root / "inbox" / night.isoformat() / "_SUCCESS").write_bytes(b"")
    return Planted(old, new, mother, baby, baby_name, pupil, pupils[pupil], moved_out, couple, new_household)


# ---------------------------------------------------------------- what the two homes hold


def marked_last(folder: Path) -> None:
    """The night's marker written again after files a test changed in the folder, as a department
    writes it last: the marker vouches only for files written before it, and a file written after it
    would wait `settle_seconds` (30 s). A folder whose files are all older keeps its marker as it is,
    so a night already run is not taken as resent."""
    marker = folder / "_SUCCESS"
    if not marker.exists():
        return
    since = marker.stat().st_mtime_ns
    if any(p.stat().st_mtime_ns > since for p in folder.iterdir() if p.is_file() and p != marker):
        marker.write_bytes(b"")


def run(home: Path, folder: Path, *flags: str) -> int:
    marked_last(folder)
    result = CliRunner().invoke(app, ["--home", str(home), "run", "--plain", *flags, str(folder)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code


def warehouse_state(home: Path, night: date) -> dict[str, list[tuple]]:
    con = wh.connect(Home(home).warehouse)
    try:
        return same_results.warehouse_rows(con, night)
    finally:
        con.close()


def stale_digests(home: Path, night: date) -> int:
    """How many of the night's hits carry an evidence digest other than their record's."""
    from bidui.evidence import evidence_hash

    con = wh.connect(Home(home).warehouse)
    try:
        rows = con.execute("SELECT evidence_record, evidence_digest FROM rule_hits WHERE night = ?", [night]).fetchall()
    finally:
        con.close()
    return sum(1 for record, digest in rows if digest != evidence_hash(record or ""))


def ledger_state(home: Path) -> dict[str, list[tuple]]:
    """The ledger without its surrogate ids and clock times: each clue by (rule, subject, evidence)."""
    return same_results.ledger_rows(Home(home).ledger)


def links_of(home: Path, night: date, dataset: str, id_number: str) -> list[tuple[str, str | None, str]]:
    """(name, person_key, method) of the night's links of the records in force carrying this number."""
    con = wh.connect(Home(home).warehouse)
    try:
        snap = wh.in_force(con, night)[dataset]
        return [row for ref in BY_CODE[dataset].persons for row in con.execute(f"""
            SELECT m.{ref.name_column}, l.person_key, l.method FROM ds_{dataset}_at(?) m
            JOIN links l ON ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = ? AND l.role = ?
                 AND l.row_id = m.row_id
            WHERE m.{ref.id_column} = ?""", [snap, night, dataset, ref.role, id_number]).fetchall()]
    finally:
        con.close()


def clerk_of(s, township: str, username: str):
    """The township's clerk who signs (孙丽, 扶贫专干), added the first time."""
    from sqlalchemy import select

    from bidui.clues.models import User
    from bidui.clues.users import add_user

    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        user = add_user(s, username, "核实乡镇", "township", township, "sunli-signs-2026", "扶贫专干")
        user.real_name = "孙丽"
        s.flush()
    return user


def sign(home: Path, clue_key: tuple[str, str, str], finding, *, review: bool = False, amend: bool = False) -> None:
    """A township clerk signs (or amends) a finding (a `bidui.clues.states.Finding`) on the clue;
    `review`: the clue's link was one the linker was unsure of (待确认), as test_link_decisions_web
    marks it."""
    from sqlalchemy import select, update

    from bidui.clues import actions
    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import Clue

    ledger = open_ledger(ledger_url(Home(home).ledger))
    try:
        with ledger.write() as s:
            rule, subject, evidence = clue_key
            clue = s.scalar(select(Clue).where(Clue.rule_code == rule, Clue.subject_key == subject,
                                               Clue.evidence_key == evidence))
            if review:
                s.execute(update(Clue).where(Clue.id == clue.id).values(link_method="review"))
                s.refresh(clue)
            clerk = clerk_of(s, clue.township_code, f"clerk{clue.township_code}")
            (actions.amend if amend else actions.verify)(s, clue.id, clue.version, clerk, finding,
                                                         today=finding.verified_on)
    finally:
        ledger.close()


def refute(home: Path, clue_id: tuple[str, str, str], today: date) -> None:
    """A township clerk finds the clue 不属实: the record is not this person (不是本人)."""
    from bidui.clues.states import NOT_SELF, NOT_TRUE, Finding

    sign(home, clue_id, Finding(NOT_TRUE, None, "入户核对身份证：记录上的是同名的另一人", "孙丽", "扶贫专干", today,
                                detail=NOT_SELF))


def clue_to_refute(home: Path) -> tuple[tuple[str, str, str], tuple[str, str, str, str]]:
    """A dispatched clue whose evidence is a record of a dataset no file changes on night 4
    (its sure link would be carried), and that record."""
    from sqlalchemy import select

    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.link_decisions import records_of
    from bidui.clues.models import Clue

    ledger = open_ledger(ledger_url(Home(home).ledger))
    try:
        with ledger.read() as s:
            return next(((c.rule_code, c.subject_key, c.evidence_key), (r.dataset, r.id_number, r.name, r.person_key))
                        for c in s.scalars(select(Clue).where(Clue.status == "dispatched")
                                           .order_by(Clue.rule_code, Clue.subject_key, Clue.evidence_key))
                        if len(refs := records_of(s, c)) == 1 and (r := refs[0]).dataset in ("property", "payroll",
                                                                                             "business_investors"))
    finally:
        ledger.close()


def carried_links(home: Path, night: date) -> tuple[int, int]:
    """Links carried from the night before, and of them scored outcomes kept."""
    con = wh.connect(Home(home).warehouse)
    try:
        return con.execute("SELECT carried, held FROM link_runs WHERE night = ?", [night]).fetchone()
    finally:
        con.close()


def rules_scope(home: Path, night: date) -> tuple[date | None, int | None, int]:
    """(the night whose hits the rules carried, the register households they looked at again, of
    how many): nothing carried when they were evaluated whole."""
    con = wh.connect(Home(home).warehouse)
    try:
        before, households = con.execute("SELECT before, households FROM rule_states WHERE night = ?", [night]).fetchone()
        total = con.execute("SELECT count(*) FROM ds_register_households_at(?)",
                            [wh.in_force(con, night)["register_households"]]).fetchone()[0]
        return before, households, total
    finally:
        con.close()


def identities(home: Path, night: date) -> dict[str, dict[int, int]]:
    """{dataset: {a row's delivered-text fingerprint: its record's identity}} of the snapshots in
    force on the night (rows with a fingerprint: a row with a rejected value has none), after
    asserting that every row has an identity and no two rows of a snapshot share one."""
    con = wh.connect(Home(home).warehouse)
    try:
        out = {}
        for code, snap in wh.in_force(con, night).items():
            rows, ids, empty = con.execute(f"SELECT count(*), count(DISTINCT row_id), count(*) - count(row_id) "
                                           f"FROM ds_{code}_at(?)", [snap]).fetchone()
            assert rows == ids and not empty, (night, code, rows, ids, empty)
            out[code] = dict(con.execute(f"SELECT raw_hash, row_id FROM ds_{code}_at(?) WHERE raw_hash IS NOT NULL",
                                         [snap]).fetchall())
        return out
    finally:
        con.close()


def diff(a: list[tuple], b: list[tuple]) -> list[tuple]:
    """What one side holds and the other does not (the first few, for the failure message); for
    links, those linked to another person or by another method before those scored otherwise."""
    width = 6 if a and len(a[0]) == len(PLACED_COLUMNS.split(", ")) else None
    shown = sorted({r[:width] for r in a} ^ {r[:width] for r in b}, key=str)
    return (shown or sorted(set(a) ^ set(b), key=str))[:10]


# ---------------------------------------------------------------- the test


def test_six_nights_incrementally_and_from_scratch_give_the_same_links_hits_and_ledger(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    from bidui.matching import link

    # Drift watched on a third of the residue whatever its size, so that the incremental home keeps
    # the scored outcomes no change reached (at the tiny size the whole residue is watched; a third
    # of it is too few pairs to measure drift by, against a limit these nights stay under).
    monkeypatch.setattr(link, "DRIFT_SAMPLE_FROM", 0)
    monkeypatch.setattr(link, "DRIFT_SAMPLE", 3)
    monkeypatch.setattr(link, "DRIFT", 0.5)
    # Rules looked at again where something changed however much did (a tiny register: a few changes
    # reach a third of it, where the rules would otherwise be evaluated whole).
    monkeypatch.setattr(changed, "MOST", 1.0)
    started = time.perf_counter()
    root = tmp_path / "prefecture"
    generate(root, SynthConfig(size="tiny", seed=11, nights=len(NIGHTS)))
    p = plant(root)
    incremental, scratch = tmp_path / "incremental", tmp_path / "scratch"
    counts: list[int] = []
    relinked: list[int] = []  # records whose link moved, each night
    kept: list[int] = []  # scored outcomes kept, each night
    scopes: list[tuple[date | None, int | None, int]] = []  # what the rules carried, each night
    records: dict[str, dict[int, int]] = {}  # each record's identity, by what its row says, the night before
    kept_records: list[int] = []  # rows that said the same as the night before and kept their identity

    for i, night in enumerate(NIGHTS):
        folder = root / "inbox" / night.isoformat()
        if i == 3:  # a township refuted a clue as 不是本人 the day before (both ledgers alike)
            p.refuted, p.refuted_record = clue_to_refute(incremental)
            for home in (incremental, scratch):
                refute(home, p.refuted, night - timedelta(days=1))
        codes = [run(incremental, folder), run(scratch, folder, "--from-scratch")]
        files = nightly.stored_report(Home(incremental), night).files
        held = [(f["dataset"], f["status"], f["message"]) for f in files if f["status"] in ("held", "refused")]
        # Night 3: the property file is cut (held); every other file is taken.
        assert codes == [2, 2] if i == 2 else codes == [0, 0], (night, codes, held)
        assert held == ([("property", "held", held[0][2])] if i == 2 else []), held

        # The same links, rule hits and ledger.
        ours_state, theirs = warehouse_state(incremental, night), warehouse_state(scratch, night)
        for what in ours_state:
            assert ours_state[what] == theirs[what], (night, what, diff(ours_state[what], theirs[what]))
        assert ours_state["links"] and ours_state["rule_hits"]
        # Each hit's evidence digest is that of what its record says: a carried hit keeps its own
        # (requoted, not computed again), and publishing compares clues by it.
        assert stale_digests(incremental, night) == 0, night
        ours, theirs = ledger_state(incremental), ledger_state(scratch)
        for what in ours:
            assert ours[what] == theirs[what], (night, what, diff(ours[what], theirs[what]))

        # What moved since the night before is told alike: the incremental home follows only the
        # links made tonight, the scratch home (nothing carried) every link; and every link of
        # both nights compared on the incremental home tells the same.
        moved = [dict(nightly.stored_report(Home(h), night).relinks) for h in (incremental, scratch)]
        for m in moved:
            m.pop("carried", None)
            m.pop("held", None)
        assert moved[0] == moved[1], (night, moved)
        con = wh.connect(Home(incremental).warehouse)
        try:
            assert night_relinks(con, night, every=True) == moved[0], night
        finally:
            con.close()
        relinked.append(sum(n for d in moved[0].get("datasets", {}).values() for k, n in d.items() if k != "why"))

        # A record delivered again saying the same — in place, moved, or in another form (the register's
        # members as XLSX on night 3, the students in GB18030 with their columns reordered on night 5) —
        # is the record it was in the incremental home.
        now = identities(incremental, night)
        same = {code: now[code].keys() & records.get(code, {}).keys() for code in now}
        assert {c: {h: now[c][h] for h in same[c]} for c in now} == {c: {h: records[c][h] for h in same[c]} for c in now}
        kept_records.append(sum(len(hs) for hs in same.values()))
        records = now

        # Incremental really was: from night 2 on most links were carried (hukou changed by a few rows).
        carried = [carried_links(h, night) for h in (incremental, scratch)]
        hukou = nightly.stored_report(Home(incremental), night).changes["hukou"]
        if i:
            assert hukou["new"] + hukou["changed"] + hukou["removed"] <= 10, hukou
            assert carried[0][0] > 0, (night, carried, len(ours_state["links"]))
        assert carried[1] == (0, 0), night
        counts.append(carried[0][0])
        kept.append(carried[0][1])
        # The rules too: evaluated only where something changed, the night before's hits carried
        # for the rest (bidui.rules.changed); from scratch, evaluated whole.
        scopes.append(rules_scope(incremental, night))
        assert rules_scope(scratch, night)[0] is None, night

    assert sum(1 for n in relinked if n) >= 2, relinked  # links moved (births, corrections, moves…)
    # (each later night carries from the one before, looking again at part of the register only)
    assert scopes[0][0] is None and all(b == NIGHTS[i] and h < t for i, (b, h, t) in enumerate(scopes[1:])), scopes
    assert sum(1 for n in kept if n) >= 3, kept  # scored outcomes kept on most nights
    assert kept_records[0] == 0 and all(kept_records[1:]), kept_records

    # ---- the events happened (checked on the incremental home; the scratch one is the same)
    def linked(night: int, dataset: str, id_number: str) -> list[tuple]:
        return links_of(incremental, NIGHTS[night], dataset, id_number)

    # ID correction: from night 2 no link to the old number; from night 4 the departments' and the
    # register's records under the new number are surely linked to it.
    con = wh.connect(Home(incremental).warehouse)
    try:
        olds = [con.execute("SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND person_key = ?", [n, p.old_id]).fetchone()[0]
                for n in NIGHTS]
        births = [con.execute("SELECT count(*) FROM ds_hukou_at(?) WHERE id_number = ?",
                              [n, p.baby]).fetchone()[0] for n in NIGHTS]
        hits = {(r, n): k for r, n, k in con.execute(
            "SELECT rule_code, night, count(*) FROM rule_hits GROUP BY ALL").fetchall()}
        former = [con.execute("SELECT count(*) FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND method = 'former_name'", [n]).fetchone()[0]
                  for n in NIGHTS]
        moved = con.execute("SELECT count(*) FROM rule_hits WHERE night = ? AND rule_code = 'MOVED_OUT' "
                            "AND subject_person_key = ?", [NIGHTS[3], p.moved_out]).fetchone()[0]
        split = con.execute("SELECT count(*) FROM rule_hits WHERE night = ? AND rule_code = 'HOUSEHOLD_SPLIT' "
                            "AND household_code = ?", [NIGHTS[5], p.new_household]).fetchone()[0]
    finally:
        con.close()
    assert olds[0] > 0 and olds[1:] == [0] * 5, olds
    for n in (3, 4, 5):
        for dataset in ("medical_insurance", "medical_claims", "register_members"):
            got = linked(n, dataset, p.new_id)
            assert got and all(k == p.new_id and m in SURE for _, k, m in got), (n, dataset, got)
    for dataset in ("medical_insurance", "medical_claims", "register_members"):
        assert linked(0, dataset, p.old_id) and not linked(3, dataset, p.old_id), dataset
    # Birth: the insurance under the mother's number is the baby's once hukou registers the birth.
    assert births == [0, 0, 1, 1, 1, 1]
    assert all(k != p.baby for name, k, _ in linked(1, "medical_insurance", p.mother) if name == p.baby_name)
    for n in (2, 3, 4, 5):
        assert (p.baby_name, p.baby, "household") in linked(n, "medical_insurance", p.mother), n
    # New register members: the baby, then the couple who split off.
    assert linked(3, "register_members", p.baby) == [(p.baby_name, p.baby, "exact")]
    assert all(linked(5, "register_members", i) and all(m == "exact" for _, _, m in linked(5, "register_members", i))
               for i in p.couple)
    # Move: the pupil's record under the parent's number was the pupil's by the household; moved
    # out of it, it is not any more.
    before = [m for _, k, m in linked(2, "students", p.pupil_parent) if k == p.pupil]
    after = [m for _, k, m in linked(3, "students", p.pupil_parent) if k == p.pupil]
    assert before == ["household"] and "household" not in after, (before, after)
    assert moved == 1  # MOVED_OUT for the register member who left
    assert split == 1  # HOUSEHOLD_SPLIT for the couple registered after splitting off
    # The verdict: the record is not linked to that person any more, and the clue did not come back.
    dataset, number, name, person = p.refuted_record
    assert (name, person) in [(n, k) for n, k, _ in linked(2, dataset, number)]
    for n in (3, 4, 5):
        assert all(k != person for nm, k, _ in linked(n, dataset, number) if nm == name), n
    sqlite = sqlite3.connect(f"file:{Home(incremental).ledger}?mode=ro", uri=True)
    clues = sqlite.execute("SELECT evidence_key, status, outcome_detail, evidence_gone, last_seen FROM clues "
                           "WHERE rule_code = ? AND subject_key = ? AND last_seen >= ?",
                           [*p.refuted[:2], NIGHTS[3].isoformat()]).fetchall()
    refuted = sqlite.execute("SELECT status, outcome_detail, evidence_gone, last_seen FROM clues WHERE rule_code = ? "
                             "AND subject_key = ? AND evidence_key = ?", p.refuted).fetchall()
    sqlite.close()
    assert refuted == [("verified", "不是本人", 1, NIGHTS[2].isoformat())] and clues == [], (refuted, clues)
    # Synth's own events: deaths (DECEASED clues each night), hukou name corrections (links by the former name).
    assert hits[("DECEASED", NIGHTS[0])] < hits[("DECEASED", NIGHTS[5])], hits
    assert former[0] == 0 and all(former[1:]), former
    # The files re-delivered in another form: every row unchanged.
    for n, dataset in ((2, "register_members"), (4, "students")):
        report = nightly.stored_report(Home(incremental), NIGHTS[n])
        change = report.changes[dataset]
        assert not change["carried"] and change["unchanged"] == change["rows"] > 0, (dataset, change)
        assert (change["new"], change["changed"], change["removed"]) == (0, 0, 0), (dataset, change)
        assert [f["status"] for f in report.files if f["dataset"] == dataset] == ["accepted"]
    # A night already run, run again from scratch (its carried work in doubt): it is run, not
    # skipped as done, links everything and ends as the scratch home has it.
    last = NIGHTS[-1]
    assert carried_links(incremental, last)[0] > 0
    assert run(incremental, root / "inbox" / last.isoformat(), "--from-scratch") == 0
    assert carried_links(incremental, last) == (0, 0)
    assert nightly.stored_report(Home(incremental), last).status == "completed"
    assert warehouse_state(incremental, last) == warehouse_state(scratch, last)
    print(f"six nights both ways in {time.perf_counter() - started:.1f} s; links carried {counts}, of them scored "
          f"outcomes kept {kept}; {p}")
