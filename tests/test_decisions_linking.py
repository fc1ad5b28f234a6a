"""Verdicts that teach the linker (issue 18, part 3), end to end: a township refutes a clue as
不是本人, and on later nights — including after `bidui link --retrain` — the record is never
linked to that person again, so the clue cannot come back; a revoked decision links them again."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.clues import actions
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.link_decisions import active, records_of, revoke
from bidui.clues.models import Clue, User
from bidui.clues.present import link_sentence, link_text
from bidui.clues.states import DISPATCHED, NOT_SELF, NOT_TRUE, Finding
from bidui.clues.users import add_user
from bidui.connectors import warehouse as wh
from bidui.datasets import DATASETS
from bidui.flows import nightly
from tests.present_support import internal_codes

NIGHT1, NIGHT2 = date(2026, 11, 20), date(2026, 11, 21)


def _links_of_record(home, night: date, ref) -> list[tuple]:
    """(person_key, method, explanation) of the night's links of the records that say what `ref` says."""
    ds = next(d for d in DATASETS if d.code == ref.dataset)
    person = next(p for p in ds.persons if p.role == ref.role)
    con = wh.connect(home.warehouse)
    try:
        snap = wh.in_force(con, night)[ref.dataset]
        return con.execute(f"""
            SELECT l.person_key, l.method, l.explanation FROM ds_{ref.dataset}_at(?) m
            JOIN links l ON ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = ? AND l.role = ?
                 AND l.row_id = m.row_id
            WHERE m.{person.id_column} = ? AND m.{person.name_column} = ?""",
                           [snap, night, ref.dataset, ref.role, ref.id_number, ref.name]).fetchall()
    finally:
        con.close()


def test_a_record_refuted_as_not_the_person_is_never_linked_to_them_again(home, tiny) -> None:
    h, _, _ = home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        # A dispatched clue standing on a department record the linker gave to a person.
        clue, ref = next((c, refs[0]) for c in s.scalars(select(Clue).where(Clue.status == DISPATCHED).order_by(Clue.id))
                         if (refs := records_of(s, c)) and refs[0].dataset != "register_members")
        clue_id, rule = clue.id, clue.rule_code
        clerk = add_user(s, "verdict", "核实乡镇", "township", clue.township_code, "sunli-signs-2026", "扶贫专干")
        clerk.real_name = "孙丽"
        s.flush()
        actions.verify(s, clue_id, clue.version, clerk, Finding(NOT_TRUE, None, "入户核对身份证，死亡记录是同名的另一人",
                                                                "孙丽", "扶贫专干", NIGHT1, detail=NOT_SELF), today=NIGHT1)
        assert [(d.kind, d.dataset, d.record_id_number, d.record_name, d.person_key) for d in active(s)] == [
            ("cannot", ref.dataset, ref.id_number, ref.name, ref.person_key)]
    assert any(p == ref.person_key for p, _, _ in _links_of_record(h, NIGHT1, ref))  # night 1: the wrong link

    report = nightly.run_night(h, tiny / "inbox" / NIGHT2.isoformat())
    assert report.model.get("decisions") == 1
    # The run report says the record's link changed because of a township's verdict (part 5).
    assert report.relinks["datasets"][ref.dataset]["why"]["verdict"] >= 1
    text = report.markdown()
    assert "## 数据变化（与上一版相比）" in text and "乡镇核实结论" in text and "沿用上一夜的关联" in text
    assert internal_codes(text.split("## 数据变化")[1].split("## 线索")[0]) == []
    night2 = _links_of_record(h, NIGHT2, ref)
    assert night2, "the record is delivered again on night 2"
    assert all(p != ref.person_key for p, _, _ in night2)
    # An unlinked record says why, in words.
    unlinked = [link_text(m, None, e) for p, m, e in night2 if m == "none"]
    assert all("不再与其关联" in t and "孙丽" in t and not internal_codes(t) for t in unlinked)
    with ledger.read() as s:
        refuted = s.get(Clue, clue_id)
        assert refuted.last_seen == NIGHT1 and refuted.evidence_gone  # the rule no longer finds it
        again = s.scalars(select(Clue).where(Clue.rule_code == rule, Clue.first_seen == NIGHT2,
                                             Clue.subject_person_key == ref.person_key)).all()
        assert again == []

    # Trained again from scratch: the decision holds (it is not part of the model).
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "link", "--date", NIGHT2.isoformat(), "--retrain"])
    assert res.exit_code == 0, res.output
    assert "按要求重新训练" in res.output
    assert all(p != ref.person_key for p, _, _ in _links_of_record(h, NIGHT2, ref))

    # The task force revokes the decision: the next linking links the pair again.
    with ledger.write() as s:
        admin = s.scalars(select(User).where(User.role == "admin")).first()
        revoke(s, active(s)[0], admin, "核实有误，撤销")
        assert active(s) == []
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "link", "--date", NIGHT2.isoformat()])
    assert res.exit_code == 0, res.output
    assert any(p == ref.person_key for p, _, _ in _links_of_record(h, NIGHT2, ref))
    ledger.close()


def test_a_confirmed_identity_is_linked_without_a_score_and_a_barred_scored_link_is_not_made(
        published_home, tmp_path) -> None:
    """Decisions copied into the warehouse as the batch does: a must pair is linked as 核实确认
    (even where scoring found it too), one naming a person not in hukou tonight changes nothing,
    and a cannot pair on a scored link leaves the record without that person."""
    import shutil

    from bidui.home import Home
    from bidui.matching import decisions
    from bidui.matching.link import link_night

    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        rows = con.execute("""
            SELECT l.dataset, l.role, m.id_number, m.name, l.person_key FROM links l
            JOIN ds_students_at(?) m ON m.row_id = l.row_id
            WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'students' AND l.method = 'fuzzy' AND m.id_number IS NOT NULL
            ORDER BY m.source_row LIMIT 2""", [NIGHT1, NIGHT1]).fetchall()
        assert len(rows) == 2
        (ds, role, id1, name1, p1), (_, _, id2, name2, p2) = rows
        decided = [{"kind": "must", "dataset": ds, "role": role, "id_number": id1, "name": name1, "person_key": p1,
                    "clue_id": 7, "verifier_name": "孙丽", "decided_on": NIGHT1},
                   {"kind": "must", "dataset": ds, "role": role, "id_number": id2, "name": name2,
                    "person_key": "999999999999999999", "clue_id": 8, "verifier_name": "孙丽", "decided_on": NIGHT1},
                   {"kind": "cannot", "dataset": ds, "role": role, "id_number": id2, "name": name2, "person_key": p2,
                    "clue_id": 9, "verifier_name": "孙丽", "decided_on": NIGHT1}]
        assert decisions.store(con, decided) == 3
        link_night(con, NIGHT1)
        out = dict(((i, n), (p, m, e)) for i, n, p, m, e in con.execute("""
            SELECT m.id_number, m.name, l.person_key, l.method, l.explanation FROM links l
            JOIN ds_students_at(?) m ON m.row_id = l.row_id
            WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'students' AND m.id_number IN (?, ?)""", [NIGHT1, NIGHT1, id1, id2]).fetchall())
    finally:
        con.close()
    person, method, explanation = out[(id1, name1)]
    assert (person, method) == (p1, "confirmed")
    said = link_text(method, 1.0, explanation)
    assert "确认此记录是本人" in said and "孙丽" in said and not internal_codes(said)
    person, method, _ = out[(id2, name2)]
    assert person != p2 and method != "confirmed"


def test_two_confirmations_of_one_pair_give_one_explanation_whatever_their_order(published_home, tmp_path) -> None:
    """Two clues may each confirm the same record as the same person (是本人): the link names one of
    them, the same one whichever order the decisions were copied in (DuckDB's `any_value` chose by it)."""
    import shutil

    from bidui.home import Home
    from bidui.matching import decisions
    from bidui.matching.link import link_night

    root, _, _ = published_home
    shutil.copy(Home(root).warehouse, tmp_path / "w.duckdb")
    con = wh.connect(tmp_path / "w.duckdb")
    try:
        (row, ds, role, number, name, person), = con.execute("""
            SELECT l.row_id, l.dataset, l.role, m.id_number, m.name, l.person_key FROM links l
            JOIN ds_students_at(?) m ON m.row_id = l.row_id
            WHERE ? BETWEEN l.night AND coalesce(l.last_night, l.night) AND l.dataset = 'students' AND l.method = 'exact'
            ORDER BY m.source_row LIMIT 1""", [NIGHT1, NIGHT1]).fetchall()
        both = [{"kind": "must", "dataset": ds, "role": role, "id_number": number, "name": name, "person_key": person,
                 "clue_id": clue, "verifier_name": who, "decided_on": NIGHT1} for clue, who in ((1, "孙丽"), (2, "王芳"))]
        said = []
        for order in (both, both[::-1]):
            decisions.store(con, order)
            link_night(con, NIGHT1, carry=False)
            said.append(con.execute("SELECT method, explanation FROM links WHERE ? BETWEEN night AND coalesce(last_night, night) AND dataset = 'students' "
                                    "AND row_id = ?", [NIGHT1, row]).fetchone())
    finally:
        con.close()
    assert said[0][0] == "confirmed" and said[0] == said[1]


def test_a_member_refuted_as_not_the_person_does_not_get_the_same_clue_again_under_another_key(home, tiny) -> None:
    """不是本人 on a clue that stands on the register member's own link (an invalid ID whose probable
    correct number was that person's): the member is unlinked from then on, so the rule finds them
    under another subject key. It is the question the township answered, not a new clue: the
    refuted clue stays seen and answered, and no new clue of its rule, household and evidence comes."""
    h, _, _ = home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        clue = next(c for c in s.scalars(select(Clue).where(Clue.status == DISPATCHED, Clue.rule_code == "ID_INVALID",
                                                            Clue.link_method == "fuzzy").order_by(Clue.id))
                    if (refs := records_of(s, c)) and refs[0].dataset == "register_members")
        clue_id, household, evidence, subject = clue.id, clue.household_code, clue.evidence_key, clue.subject_key
        clerk = add_user(s, "verdict", "核实乡镇", "township", clue.township_code, "sunli-signs-2026", "扶贫专干")
        clerk.real_name = "孙丽"
        s.flush()
        actions.verify(s, clue_id, clue.version, clerk, Finding(NOT_TRUE, None, "系统给出的号码不是本人的，本人号码待户籍核对",
                                                                "孙丽", "扶贫专干", NIGHT1, detail=NOT_SELF), today=NIGHT1)
        version = s.get(Clue, clue_id).version
    report = nightly.run_night(h, tiny / "inbox" / NIGHT2.isoformat())
    with ledger.read() as s:
        refuted = s.get(Clue, clue_id)
        assert refuted.last_seen == NIGHT2 and not refuted.evidence_gone  # still found, under its answer
        assert refuted.status != DISPATCHED and refuted.outcome == NOT_TRUE and refuted.outcome_detail == NOT_SELF
        # …as it was answered: its subject and the link it refuted (a corrected finding can still say 不是本人).
        assert refuted.subject_key == subject and refuted.version == version and records_of(s, refuted)
        new = s.scalars(select(Clue).where(Clue.rule_code == "ID_INVALID", Clue.first_seen == NIGHT2,
                                           Clue.household_code == household, Clue.evidence_key == evidence)).all()
        assert new == []
        # Not a test that cannot fail: the member is found tonight under another subject key.
        con = wh.connect(h.warehouse)
        try:
            keys = {k for k, in con.execute("SELECT subject_key FROM rule_hits WHERE night = ? AND rule_code = 'ID_INVALID' "
                                            "AND household_code = ? AND evidence_key = ?",
                                            [NIGHT2, household, evidence]).fetchall()}
        finally:
            con.close()
        assert keys and subject not in keys
    assert "new" not in report.clues["ID_INVALID"]
    # The member is not found in hukou now: that clue says why, in words (the township's verdict).
    with ledger.read() as s:
        missing = s.scalars(select(Clue).where(Clue.rule_code == "NOT_IN_HUKOU", Clue.first_seen == NIGHT2,
                                               Clue.household_code == household)).all()
        assert missing
        said = [link_sentence(c) for c in missing]
        assert any("不再与其关联" in t and "孙丽" in t for t in said) and not any(internal_codes(t) for t in said)
    ledger.close()
