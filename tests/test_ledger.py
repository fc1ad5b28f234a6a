"""The clue ledger: publish, the state machine, concurrency, the township workbook, reports.

Every test that touches the store runs on SQLite and, when BIDUI_TEST_PG_URL is set (.ci/run
starts a PostgreSQL on loopback and sets it), on PostgreSQL too."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from bidui import config
from bidui.cli import app
from bidui.clues import actions, report
from bidui.clues.db import Ledger, open_ledger
from bidui.clues.models import Clue, ClueEvent, EvidenceSnapshot, PublishRun, User
from bidui.clues.publish import divisions, night_hits, publish
from bidui.clues.states import (
    ACTIONS,
    CLOSED,
    DISPATCHED,
    NOT_TRUE,
    OUTCOMES,
    RETURNED,
    TRUE_FIXED,
    VERIFIED,
    Finding,
    TransitionError,
)
from bidui.clues.users import add_user
from bidui.clues.workbook import WorkbookError, import_workbook, write_workbook
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.evidence import evidence_hash
from bidui.matching.link import link_night
from bidui.rules.engine import load_rules, run_rules, store_hits
from tests.ledger_support import BACKENDS, PG_URL, fill_workbook, fresh_ledger, hit, hits_frame

NIGHTS = [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
TITLES = {r.code: r.title for r in load_rules()[0]}
KEY = "test-secret"
TOWNSHIP = "330102001000"


@pytest.fixture(scope="module")
def nightly(tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny prefecture's three nights ingested, linked and ruled: (home, {night: (hits, runs, divisions)})."""
    home = tmp_path_factory.mktemp("ledgerhome")
    con = wh.connect(home / "warehouse.duckdb")
    out = {}
    for night in NIGHTS:
        ingest_night(con, tiny / "inbox" / night.isoformat(), night)
        link_night(con, night)
        store_hits(con, night, run_rules(con, night, config.load(None)))
        hits, runs = night_hits(con, night)
        out[night] = (hits, runs, divisions(con, night))
    con.close()
    return home, out


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path):
    lg = fresh_ledger(request.param, tmp_path)
    yield lg
    lg.close()


def _publish(ledger, nightly, night: date):
    hits, runs, divs = nightly[1][night]
    return publish(ledger, hits, runs, night, TITLES, 15, divs)


def _users(ledger) -> dict[str, User]:
    with ledger.write() as s:
        users = {
            "town": add_user(s, "town", "乡镇核实员", "township", TOWNSHIP, "password-1", "扶贫专干"),
            "other": add_user(s, "other", "邻镇核实员", "township", "330102002000", "password-2"),
            "county": add_user(s, "county", "县审核员", "county", "330102000000", "password-3"),
            "pref": add_user(s, "pref", "市督导", "prefecture", "330100000000", "password-4"),
        }
    return users


def _finding(outcome: str = NOT_TRUE, **kw) -> Finding:
    base = {"outcome": outcome, "action": ACTIONS[0] if outcome == TRUE_FIXED else None, "finding": "入户核实，车辆已过户",
            "verifier_name": "张三", "verifier_position": "扶贫专干", "verified_on": date(2026, 11, 25)}
    return Finding(**(base | kw))


def _snapshot(ledger) -> list[tuple]:
    with ledger.read() as s:
        clues = [tuple(getattr(c, k) for k in ("id", "version", "status", "evidence_gone", "last_seen", "evidence_hash"))
                 for c in s.scalars(select(Clue).order_by(Clue.id))]
        events = s.scalar(select(func.count()).select_from(ClueEvent))
        evidence = s.scalar(select(func.count()).select_from(EvidenceSnapshot))
    return [*clues, ("events", events), ("evidence", evidence)]


# ---------------------------------------------------------------- schema


def test_the_migrations_create_exactly_the_models(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bidui.clues.models import Base

    lg = fresh_ledger("sqlite", tmp_path)
    with lg.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    lg.close()
    assert diff == []


def test_insert_many_writes_what_sqlalchemys_insert_writes(ledger) -> None:
    """The publish's fast insert against Core's, on the types it carries: dates, times, JSON (None
    too), booleans, NULLs, and a column left to its default."""
    from datetime import datetime

    from sqlalchemy import text

    from bidui.clues.db import insert_many

    stamp = datetime(2026, 11, 20, 23, 5, 7)  # no microseconds: SQLite's own adapter would drop them
    rows = [hit(subject=f"33010219900101{i:04d}", evidence_key=f"浙A{i:05d}") for i in range(3)]
    clues = [{k: v for k, v in r.items() if k in Clue.__table__.c} | {
        "rule_title": "车辆", "county_code": TOWNSHIP[:6], "township_code": TOWNSHIP,
        "status": DISPATCHED, "first_seen": NIGHTS[0], "last_seen": NIGHTS[0], "due_date": NIGHTS[0] + timedelta(days=i),
        "updated_at": stamp, "evidence_hash": f"h{i}", "before_registration": [True, False, None][i],
        "evidence_date": [NIGHTS[0], None, NIGHTS[1]][i]} for i, r in enumerate(rows)]
    for c in clues:
        c.pop("version", None)  # left to its default
    fast, core = ([dict(c, evidence_key=f"{c['evidence_key']}-{way}") for c in clues] for way in ("fast", "core"))
    with ledger.write() as session:
        conn = session.connection()
        insert_many(conn, Clue.__table__, fast)
        conn.execute(Clue.__table__.insert(), core)
        ids = dict(session.execute(select(Clue.evidence_key, Clue.id)).all())
        events = [[{"clue_id": ids[c["evidence_key"]], "at": stamp, "actor": "system", "kind": "dispatched",
                    "from_status": None, "to_status": DISPATCHED, "payload": p}
                   for c, p in zip(batch, [{"night": "2026-11-20", "名": "王伟"}, None, {"n": [1, 2]}], strict=True)]
                  for batch in (fast, core)]
        fields = list(events[0][0])  # the events as tuples of these columns, the clues as dicts
        insert_many(conn, ClueEvent.__table__, [tuple(e[f] for f in fields) for e in events[0]], fields)
        conn.execute(ClueEvent.__table__.insert(), events[1])
    assert insert_many(ledger.engine.connect(), ClueEvent.__table__, []) is None  # nothing to write, no statement
    with ledger.read() as session:
        def stored(table: str, way: str) -> list[tuple]:
            # as the database holds them (text for SQLite's dates), the ids and the way left out
            keyed = "evidence_key" if table == "clues" else "(SELECT evidence_key FROM clues c WHERE c.id = t.clue_id)"
            rows = session.execute(text(f"SELECT * FROM {table} t WHERE {keyed} LIKE :way ORDER BY {keyed}"),
                                   {"way": f"%-{way}"}).mappings().all()
            return [tuple(v.replace(f"-{way}", "") if isinstance(v, str) else v for k, v in r.items()
                          if k not in ("id", "clue_id")) for r in rows]

        for table in ("clues", "clue_events"):
            assert stored(table, "fast") == stored(table, "core") and len(stored(table, "fast")) == 3
        assert [c.version for c in session.scalars(select(Clue))] == [1] * 6


# ---------------------------------------------------------------- publish


def test_publish_creates_one_dispatched_clue_per_hit(ledger, nightly) -> None:
    night = NIGHTS[0]
    hits = nightly[1][night][0]
    result = _publish(ledger, nightly, night)
    distinct = hits.select("rule_code", "subject_key", pl.col("evidence_key").fill_null("")).unique().height
    assert result.new == distinct > 100
    with ledger.read() as s:
        clues = list(s.scalars(select(Clue)))
        assert len(clues) == distinct
        assert {c.status for c in clues} == {DISPATCHED}
        # published days after the night (the suite runs later than 2026-11): due 15 days from today
        assert all(c.due_date == date.today() + timedelta(days=15) and c.first_seen == c.last_seen == night
                   for c in clues)
        assert all(c.township_code and c.township_code.endswith("000") and c.county_code.endswith("000000") for c in clues)
        assert all(c.rule_title == TITLES[c.rule_code] for c in clues)
        dispatched = s.scalars(select(ClueEvent).where(ClueEvent.kind == "dispatched")).all()
        assert sorted(e.clue_id for e in dispatched) == sorted(c.id for c in clues)
        assert s.scalar(select(func.count()).select_from(EvidenceSnapshot)) == distinct


def test_publishing_a_night_twice_changes_nothing(ledger, nightly) -> None:
    _publish(ledger, nightly, NIGHTS[0])
    before = _snapshot(ledger)
    again = _publish(ledger, nightly, NIGHTS[0])
    assert again.already and _snapshot(ledger) == before
    # and an older night after a newer one is also left alone
    _publish(ledger, nightly, NIGHTS[1])
    after_second = _snapshot(ledger)
    assert _publish(ledger, nightly, NIGHTS[0]).already and _snapshot(ledger) == after_second


def test_following_nights_see_again_and_mark_evidence_gone(ledger, nightly) -> None:
    for night in NIGHTS:
        _publish(ledger, nightly, night)
    with ledger.read() as s:
        clues = {(c.rule_code, c.subject_key, c.evidence_key): c for c in s.scalars(select(Clue))}
        gone_events = s.scalars(select(ClueEvent).where(ClueEvent.kind == "evidence_gone")).all()
        runs = {r.night: r for r in s.scalars(select(PublishRun))}
    last_hits, last_runs, _ = nightly[1][NIGHTS[-1]]
    tonight = set(last_hits.select("rule_code", "subject_key", pl.col("evidence_key").fill_null("")).iter_rows())
    for key, c in clues.items():
        if key in tonight:
            assert c.last_seen == NIGHTS[-1] and not c.evidence_gone
        elif last_runs.get(c.rule_code) == "ran":
            assert c.evidence_gone and c.status in (DISPATCHED, VERIFIED, RETURNED), key
        else:  # its rule did not run tonight: nothing is said about its evidence
            assert not c.evidence_gone
    assert gone_events and all(c.status != CLOSED for c in clues.values())
    assert sum(r.new for r in runs.values()) == len(clues)


def test_a_truncated_or_missing_extract_makes_no_clue_disappear(ledger) -> None:
    first = hits_frame([hit(), hit(rule="DROPOUT", evidence_key="", category="exit_risk", record=None)])
    publish(ledger, first, {"VEHICLE": "ran", "DROPOUT": "ran"}, NIGHTS[0], TITLES)
    # Night 2: the vehicles extract was held, so VEHICLE did not run; DROPOUT ran and found nothing.
    publish(ledger, hits_frame([]), {"VEHICLE": "skipped", "DROPOUT": "ran"}, NIGHTS[1], TITLES)
    with ledger.read() as s:
        by_rule = {c.rule_code: c for c in s.scalars(select(Clue))}
    assert not by_rule["VEHICLE"].evidence_gone and by_rule["VEHICLE"].status == DISPATCHED
    assert by_rule["DROPOUT"].evidence_gone and by_rule["DROPOUT"].status == DISPATCHED


def test_a_clue_whose_evidence_comes_back_as_it_was_says_so_and_a_key_found_twice_counts_once(ledger) -> None:
    """Most hits of a night are clues seen again as they were, found together (`_seen_quietly`);
    a clue whose evidence was gone is not one of them: its return is an event."""
    runs = {"VEHICLE": "ran"}
    other = hit(subject="330102199202023456")
    publish(ledger, hits_frame([hit(), other]), runs, NIGHTS[0], TITLES)
    publish(ledger, hits_frame([other]), runs, NIGHTS[1], TITLES)  # the first clue's evidence is gone
    # Back as it was, and the other clue's key found twice: first as it was, then with other evidence
    # (a night's hits of one key are taken in the order of their digests).
    changed = next(c for c in (other | {"evidence_record": f'{{"plate": "浙A12345", "vehicle_type": "H{i:02d}"}}'}
                               for i in range(100))
                   if evidence_hash(c["evidence_record"]) > evidence_hash(other["evidence_record"]))
    result = publish(ledger, hits_frame([hit(), other, changed]), runs, NIGHTS[2], TITLES)
    assert (result.seen, result.back, result.changed, result.new, result.gone) == (2, 1, 0, 0, 0)
    assert result.by_rule == {"VEHICLE": {"seen": 2}}
    with ledger.read() as s:
        clues = {c.subject_key: c for c in s.scalars(select(Clue))}
        kinds = {k: [e.kind for e in s.scalars(select(ClueEvent).where(ClueEvent.clue_id == c.id).order_by(ClueEvent.id))]
                 for k, c in clues.items()}
    back, kept = clues[hit()["subject_key"]], clues[other["subject_key"]]
    assert not back.evidence_gone and back.last_seen == NIGHTS[2] and back.version == 1
    assert kinds[back.subject_key] == ["dispatched", "evidence_gone", "evidence_back"]
    assert kept.last_seen == NIGHTS[2] and kept.version == 1 and kept.evidence_hash == evidence_hash(other["evidence_record"])
    assert kinds[kept.subject_key] == ["dispatched"]


def test_a_refuted_clue_is_not_raised_again_unless_its_evidence_changed(ledger) -> None:
    users = _users(ledger)
    publish(ledger, hits_frame([hit()]), {"VEHICLE": "ran"}, NIGHTS[0], TITLES)
    with ledger.write() as s:
        clue = s.scalars(select(Clue)).one()
        actions.verify(s, clue.id, 1, users["town"], _finding(NOT_TRUE), date(2026, 11, 25))
        actions.close(s, clue.id, 2, users["county"])
    # Same evidence, delivered in another file on another row: still refuted, not raised.
    same = hit(record='{"plate": "浙A12345", "vehicle_type": "K33", "source_file": "b.csv", "source_row": 9}')
    r2 = publish(ledger, hits_frame([same]), {"VEHICLE": "ran"}, NIGHTS[1], TITLES)
    with ledger.read() as s:
        clue = s.scalars(select(Clue)).one()
    assert r2.suppressed == 1 and r2.new == 0 and clue.status == CLOSED and clue.version == 3
    # The same fact as a newer version of the rule shows it (a field added for the reader): not raised.
    richer = hit(record='{"plate": "浙A12345", "vehicle_type": "K33", "vehicle_type_name": "轿车"}')
    r_form = publish(ledger, hits_frame([richer]), {"VEHICLE": "ran"}, NIGHTS[2], TITLES)
    with ledger.read() as s:
        clue = s.scalars(select(Clue)).one()
    assert r_form.suppressed == 1 and r_form.reraised == 0 and clue.status == CLOSED and clue.version == 3
    assert clue.evidence_hash == evidence_hash(richer["evidence_record"])  # compared in its new form from now on
    changed = hit(record='{"plate": "浙A12345", "vehicle_type": "H31", "vehicle_type_name": "重型普通货车"}')
    r3 = publish(ledger, hits_frame([changed]), {"VEHICLE": "ran"}, NIGHTS[2] + timedelta(days=1), TITLES,
                 today=NIGHTS[2] + timedelta(days=1))
    with ledger.read() as s:
        clue = s.scalars(select(Clue)).one()
        kinds = [e.kind for e in s.scalars(select(ClueEvent).where(ClueEvent.clue_id == clue.id).order_by(ClueEvent.id))]
        evidence = s.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id == clue.id)).all()
    assert r3.reraised == 1 and clue.status == DISPATCHED and clue.outcome is None and clue.version == 4
    assert clue.due_date == NIGHTS[2] + timedelta(days=16)
    assert kinds == ["dispatched", "verify", "close", "reraised"] and len(evidence) == 3


def test_a_clue_is_due_counted_from_the_day_it_reaches_the_township(ledger) -> None:
    """A night published days late (a held file approved later, a backlog) handed out clues already
    overdue when the days counted from the night (a supervisor's walk: 631 of 648 overdue the
    moment they were dispatched)."""
    night = NIGHTS[0]
    publish(ledger, hits_frame([hit(subject="S1", evidence_key="P1")]), {"VEHICLE": "ran"}, night, TITLES,
            today=night)
    publish(ledger, hits_frame([hit(subject="S1", evidence_key="P1"), hit(subject="S2", evidence_key="P2")]),
            {"VEHICLE": "ran"}, night + timedelta(days=1), TITLES, today=night + timedelta(days=9))
    with ledger.read() as s:
        due = {k: d for k, d in s.execute(select(Clue.subject_key, Clue.due_date))}
    assert due == {"S1": night + timedelta(days=15),  # on time: as before, and not moved by a later night
                   "S2": night + timedelta(days=9 + 15)}  # nine days late: still 15 days to verify


def test_evidence_says_more_only_with_a_new_value_or_a_new_list_item() -> None:
    from bidui.clues.publish import says_more

    bills = '{"total": 30000, "bills": [{"d": "2026-01-02", "amt": 10000}, {"d": "2026-02-03", "amt": 20000}]}'
    assert not says_more(bills, bills)
    assert not says_more('{"total": 30000, "bills": [{"d": "2026-01-02", "amt": 10000}], "period": "2026"}', bills)
    assert says_more('{"total": 31000, "bills": [{"d": "2026-01-02", "amt": 10000}]}', bills)
    assert says_more('{"total": 30000, "bills": [{"d": "2026-03-04", "amt": 1}]}', bills)
    assert not says_more('{"plate": "浙A1", "source_file": "b.csv"}', '{"plate": "浙A1", "source_file": "a.csv"}')


def test_the_evidence_hash_ignores_delivery_details() -> None:
    a = evidence_hash('{"plate": "浙A1", "plate_raw": "浙A1 ", "source_file": "a.csv", "source_row": 3, "link_score": 0.99, '
                      '"raw_json": "{\\"号牌\\": \\"浙A1 \\"}"}')
    b = evidence_hash('{"source_row": 8, "plate": "浙A1", "source_file": "b.xlsx", "link_score": 1.0, "raw_json": "{}"}')
    assert a == b != evidence_hash('{"plate": "浙A2"}')


# ---------------------------------------------------------------- the state machine


def _one_clue(ledger) -> int:
    publish(ledger, hits_frame([hit()]), {"VEHICLE": "ran"}, NIGHTS[0], TITLES)
    with ledger.read() as s:
        return s.scalars(select(Clue.id)).one()


STEPS = st.lists(st.tuples(st.sampled_from(["verify", "close", "return"]),
                           st.sampled_from(["town", "other", "county", "pref"]),
                           st.sampled_from(["good", "unsigned", "stale"])), max_size=8)


_STATE_MACHINE_START: list[Path] = []


def _state_machine_ledger(factory: pytest.TempPathFactory) -> tuple[Ledger, dict[str, User], int]:
    """A copy of one ledger with the four users and one dispatched clue: made once (its migrations,
    four argon2 hashes and a publish cost about 2 s, which 40 examples paid each), copied per example."""
    if not _STATE_MACHINE_START:
        first = fresh_ledger("sqlite", factory.mktemp("sm-start"))
        _users(first)
        _one_clue(first)
        first.close()
        _STATE_MACHINE_START.append(Path(first.engine.url.database))
    copy = factory.mktemp("sm") / "ledger.sqlite"
    shutil.copyfile(_STATE_MACHINE_START[0], copy)
    lg = open_ledger(f"sqlite:///{copy}")
    with lg.read() as s:
        users = {u.username: u for u in s.scalars(select(User))}
        clue_id = s.scalars(select(Clue.id)).one()
    return lg, users, clue_id


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_the_state_machine_refuses_every_illegal_step(tmp_path_factory: pytest.TempPathFactory, steps) -> None:
    lg, users, clue_id = _state_machine_ledger(tmp_path_factory)
    try:
        status, version, events, last = DISPATCHED, 1, 1, None
        legal = {("verify", DISPATCHED): VERIFIED, ("verify", RETURNED): VERIFIED, ("close", VERIFIED): CLOSED,
                 ("return", VERIFIED): RETURNED}
        roles = {"verify": {"town"}, "close": {"county"}, "return": {"county"}}
        for action, who, how in steps:
            actor = users[who]
            seen = version - 1 if how == "stale" else version
            # The same actor's last step sent again from the page it was sent from (a double
            # click): done already, nothing written (bidui.clues.actions._repeated).
            repeat = how == "stale" and last == (action, who)
            expected_ok = repeat or ((action, status) in legal and who in roles[action] and how != "stale"
                                     and not (action == "verify" and how == "unsigned"))
            try:
                with lg.write() as s:
                    if action == "verify":
                        f = _finding(TRUE_FIXED, verifier_name="" if how == "unsigned" else "张三")
                        actions.verify(s, clue_id, seen, actor, f, date(2026, 11, 30))
                    elif action == "close":
                        actions.close(s, clue_id, seen, actor)
                    else:
                        actions.send_back(s, clue_id, seen, actor, "材料不全")
                ok = True
            except (actions.ConflictError, actions.NotFoundError, ValueError):
                ok = False
            assert ok == expected_ok, (action, who, how, status)
            if ok and not repeat:
                status, version, events, last = legal[(action, status)], version + 1, events + 1, (action, who)
            with lg.read() as s:
                clue = s.get(Clue, clue_id)
                assert (clue.status, clue.version) == (status, version)
                assert s.scalar(select(func.count()).where(ClueEvent.clue_id == clue_id)) == events
    finally:
        lg.close()


def test_verify_needs_a_complete_signed_finding(ledger) -> None:
    users = _users(ledger)
    clue_id = _one_clue(ledger)
    bad = [_finding(TRUE_FIXED, action=None), _finding(NOT_TRUE, finding=" "), _finding(verifier_position=""),
           _finding(outcome="属实"), _finding(verified_on=date(2099, 1, 1))]
    for f in bad:
        with pytest.raises(ValueError), ledger.write() as s:
            actions.verify(s, clue_id, 1, users["town"], f, date(2026, 11, 30))
    with ledger.write() as s:
        clue = actions.verify(s, clue_id, 1, users["town"], _finding(OUTCOMES[1]), date(2026, 11, 30))
    assert clue.verifier_name == "张三" and clue.verifier_position == "扶贫专干" and clue.status == VERIFIED


def test_a_verification_dated_before_the_clue_was_found_is_refused(ledger) -> None:
    """A date years back went through and made the on-time rate and the days to verify wrong (a
    clerk's browser walk, 2026-12-06): no one verifies a clue before it is found."""
    users = _users(ledger)
    clue_id = _one_clue(ledger)
    with ledger.read() as s:
        found = s.get(Clue, clue_id).first_seen
    for day in (date(2019, 1, 1), found - timedelta(days=1)):
        with pytest.raises(TransitionError, match=f"核实日期不能早于线索首次发现的日期（{found.isoformat()}）"), \
                ledger.write() as s:
            actions.verify(s, clue_id, 1, users["town"], _finding(verified_on=day), date(2026, 11, 30))
    with ledger.read() as s:
        clue = s.get(Clue, clue_id)
        assert (clue.status, clue.version, clue.verified_on) == (DISPATCHED, 1, None)
        assert s.scalar(select(func.count()).where(ClueEvent.clue_id == clue_id, ClueEvent.kind == "verify")) == 0
    with ledger.write() as s:  # the day it was found is a day it may have been verified
        clue = actions.verify(s, clue_id, 1, users["town"], _finding(verified_on=found), date(2026, 11, 30))
    assert clue.verified_on == found and clue.status == VERIFIED
    with pytest.raises(TransitionError, match="不能早于线索首次发现"), ledger.write() as s:  # nor amended to before it
        actions.amend(s, clue_id, 2, users["town"], _finding(verified_on=date(2019, 1, 1)), date(2026, 11, 30))


def test_out_of_scope_actors_are_refused_as_if_the_clue_did_not_exist(ledger) -> None:
    users = _users(ledger)
    clue_id = _one_clue(ledger)
    with pytest.raises(actions.NotFoundError), ledger.write() as s:
        actions.verify(s, clue_id, 1, users["other"], _finding(), date(2026, 11, 30))
    with ledger.read() as s:
        assert actions.get_clue(s, clue_id, users["pref"]).status == DISPATCHED  # prefecture sees it


def test_a_close_sent_twice_at_once_is_done_once_and_both_say_so(ledger) -> None:
    """A double click's second request that reads the clue while the first is being written (two
    connections; on PostgreSQL they overlap, SQLite's writers take turns): it waits for the first
    (the row is locked while acted on) and takes its close as its own, not 刚有变动 (a red-team pass)."""
    users = _users(ledger)
    clue_id = _one_clue(ledger)
    with ledger.write() as s:
        actions.verify(s, clue_id, 1, users["town"], _finding(), date(2026, 11, 30))
    first_in = threading.Event()
    out: dict[str, str] = {}

    def first() -> None:
        with ledger.write() as s:
            actions.close(s, clue_id, 2, users["county"])
            first_in.set()
            time.sleep(0.5)  # the second request comes in meanwhile
        out["first"] = "closed"

    def second() -> None:
        first_in.wait(5)
        try:
            with ledger.write() as s:
                actions.close(s, clue_id, 2, users["county"])
            out["second"] = "done"
        except actions.ConflictError as e:
            out["second"] = str(e)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {"first": "closed", "second": "done"}
    with ledger.read() as s:
        assert (s.get(Clue, clue_id).status, s.get(Clue, clue_id).version) == (CLOSED, 3)
        assert s.scalar(select(func.count()).where(ClueEvent.clue_id == clue_id, ClueEvent.kind == "close")) == 1


@pytest.mark.parametrize("workers", [2, 20])
def test_concurrent_verifications_one_wins_the_others_get_a_conflict(ledger, workers: int) -> None:
    users = _users(ledger)
    clue_id = _one_clue(ledger)
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            with ledger.write() as s:
                actions.verify(s, clue_id, 1, users["town"], _finding(finding=f"worker {i}"), date(2026, 11, 30))
            outcomes.append(f"ok {i}")
        except actions.ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("ok")]
    assert len(winners) == 1 and outcomes.count("conflict") == workers - 1
    with ledger.read() as s:
        clue = s.get(Clue, clue_id)
        verify_events = s.scalars(select(ClueEvent).where(ClueEvent.kind == "verify")).all()
    assert clue.version == 2 and clue.finding == f"worker {winners[0].split()[1]}" and len(verify_events) == 1


# ---------------------------------------------------------------- the township workbook


@pytest.fixture
def published(ledger, nightly):
    _publish(ledger, nightly, NIGHTS[0])
    with ledger.read() as s:
        township = s.scalar(select(Clue.township_code).group_by(Clue.township_code)
                            .order_by(func.count().desc()).limit(1))
    with ledger.write() as s:
        add_user(s, "town", "核实员", "township", township, "password-1")
        add_user(s, "other", "邻镇", "township", township[:6] + "999000", "password-2")
        add_user(s, "county", "审核员", "county", township[:6] + "000000", "password-3")
    return ledger, township


def _workbook(ledger, township: str, tmp_path: Path) -> tuple[Path, list[int]]:
    out = tmp_path / "wb.xlsx"
    with ledger.read() as s:
        n = write_workbook(s, township, out, KEY, "county")
        ids = list(s.scalars(select(Clue.id).where(Clue.township_code == township).order_by(Clue.id)))
    assert n == len(ids) > 2
    return out, ids


def _user(ledger, name: str) -> User:
    with ledger.read() as s:
        return s.scalars(select(User).where(User.username == name)).one()


GOOD = {"核实结论": NOT_TRUE, "核实情况说明": "入户核实，车辆登记在同名他人名下", "核实人": "李四", "职务": "驻村干部",
        "核实日期": date(2026, 11, 24)}


def test_workbook_round_trip_applies_the_filled_rows(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD, ids[1]: GOOD | {"核实结论": TRUE_FIXED, "整改措施": ACTIONS[0]}})
    with ledger.write() as s:
        result = import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    assert sorted(result.applied) == ids[:2] and result.untouched == len(ids) - 2
    with ledger.read() as s:
        done = [s.get(Clue, i) for i in ids[:2]]
        events = s.scalars(select(ClueEvent).where(ClueEvent.kind == "verify")).all()
    assert [c.status for c in done] == [VERIFIED, VERIFIED] and done[1].action == ACTIONS[0]
    assert done[0].verifier_name == "李四" and done[0].verified_on == date(2026, 11, 24)
    assert {e.actor for e in events} == {"town"} and len(events) == 2


def test_a_workbook_row_dated_before_its_clue_was_found_refuses_the_workbook(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD, ids[1]: GOOD | {"核实日期": date(2019, 1, 1)}})
    with pytest.raises(WorkbookError) as refused, ledger.write() as s:
        import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    assert "核实日期不能早于线索首次发现的日期" in str(refused.value) + "".join(refused.value.problems)
    with ledger.read() as s:  # the good row is not applied either: the workbook is refused whole
        assert [s.get(Clue, i).status for i in ids[:2]] == [DISPATCHED, DISPATCHED]


def test_the_workbook_is_locked_but_for_the_inputs_with_dropdowns_and_a_hidden_token(published, tmp_path: Path) -> None:
    import zipfile

    ledger, township = published
    src, _ = _workbook(ledger, township, tmp_path)
    with zipfile.ZipFile(src) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        book = z.read("xl/workbook.xml").decode()
        styles = z.read("xl/styles.xml").decode()
    # The outcome's dropdown: with 不属实（不是本人） on the rows on a linked record, without elsewhere.
    assert "<sheetProtection" in sheet and sheet.count("<dataValidation ") in (3, 4) and "不属实（不是本人）" in sheet
    assert OUTCOMES[0] in sheet and ACTIONS[0] in sheet  # the dropdown lists
    assert 'name="_token" sheetId="3" state="veryHidden"' in book
    assert 'locked="0"' in styles  # the input cells' format
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(src)).get_sheet_by_name("线索").to_python()
    villages_households = [(r[2], r[3] or r[4]) for r in rows[1:]]
    # grouped: a household's rows are together
    seen, last = set(), None
    for key in villages_households:
        assert key == last or key not in seen
        seen.add(key)
        last = key


def _refused(ledger, path: Path, user: str) -> WorkbookError:
    before = _snapshot(ledger)
    with pytest.raises(WorkbookError) as info, ledger.write() as s:
        import_workbook(s, path, _user(ledger, user), KEY, date(2026, 11, 30))
    assert _snapshot(ledger) == before  # nothing applied
    return info.value


def test_a_tampered_workbook_is_refused_whole(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    from python_calamine import CalamineWorkbook

    token = str(CalamineWorkbook.from_path(str(src)).get_sheet_by_name("_token").to_python()[0][0])
    forged = tmp_path / "forged.xlsx"
    fill_workbook(src, forged, {ids[0]: GOOD}, token=token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb"))
    assert "签名无效" in str(_refused(ledger, forged, "town"))
    # A row pointed at a clue the workbook was not made for.
    moved = tmp_path / "moved.xlsx"
    fill_workbook(src, moved, {ids[0]: GOOD}, edit={(ids[0], "线索编号"): 999_999})
    err = _refused(ledger, moved, "town")
    assert "不是本工作簿导出的线索" in str(err) and len(err.problems) == 1


def test_another_townships_workbook_is_refused(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD})
    assert "不在您的管辖范围内" in str(_refused(ledger, filled, "other"))
    assert "只有乡镇核实员" in str(_refused(ledger, filled, "county"))  # reviewers do not verify


def test_a_stale_workbook_is_refused_whole(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    with ledger.write() as s:  # verified on screen after the export
        actions.verify(s, ids[1], 1, _user(ledger, "town"), _finding(), date(2026, 11, 30))
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD, ids[1]: GOOD})
    err = _refused(ledger, filled, "town")
    assert len(err.problems) == 1 and f"线索 {ids[1]}" in err.problems[0] and "已被修改" in err.problems[0]


def test_every_bad_row_is_named_and_nothing_is_applied(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD, ids[1]: GOOD | {"核实人": ""},
                                ids[2]: GOOD | {"核实结论": TRUE_FIXED}})  # no action chosen
    err = _refused(ledger, filled, "town")
    assert len(err.problems) == 2
    by_clue = {p.split("线索 ")[1].split("）")[0]: p for p in err.problems}
    assert "须由核实人签字" in by_clue[str(ids[1])] and "整改措施" in by_clue[str(ids[2])]
    assert all(p.startswith("第 ") for p in err.problems)  # the row is named


def test_a_workbook_exported_before_the_hukou_column_was_renamed_is_still_imported(published, tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """The column is 户号 now, as the pages say (it was 户籍号); a workbook out with a village
    under the old name comes back and is taken."""
    import tests.ledger_support as support
    from bidui.clues.workbook_check import LOCKED_COLUMNS

    assert "户号" in LOCKED_COLUMNS and "户籍号" not in LOCKED_COLUMNS
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    monkeypatch.setattr(support, "LOCKED_COLUMNS", tuple("户籍号" if c == "户号" else c for c in LOCKED_COLUMNS))
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD})
    with ledger.write() as s:
        assert import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30)).applied == [ids[0]]


def test_a_row_with_several_mistakes_lists_them_all_at_once_and_a_typed_date_is_read(published, tmp_path: Path) -> None:
    """A clerk's row with a date typed as text the way people write it (2026.11.24) is taken; a row
    with no date and no measure says both at once (it said the date, and the measure only after the
    next upload), with an example of a date."""
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD | {"核实日期": "2026.11.24"},
                                ids[1]: GOOD | {"核实结论": TRUE_FIXED, "核实日期": "昨天"}})
    err = _refused(ledger, filled, "town")
    assert len(err.problems) == 1 and f"线索 {ids[1]}" in err.problems[0]
    assert "核实日期缺失或不是日期（请填写如 2026-11-30）" in err.problems[0] and "整改措施" in err.problems[0]
    fill_workbook(src, filled, {ids[0]: GOOD | {"核实日期": "2026.11.24"}, ids[1]: GOOD | {"核实日期": "2026年11月25号"},
                                ids[2]: GOOD | {"核实日期": 20261126}})  # (a number: as WPS keeps 20261126)
    with ledger.write() as s:
        result = import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    assert sorted(result.applied) == ids[:3]
    with ledger.read() as s:
        assert [s.get(Clue, i).verified_on for i in ids[:3]] == [date(2026, 11, 24), date(2026, 11, 25),
                                                                  date(2026, 11, 26)]


def test_the_same_workbook_uploaded_again_is_taken_as_already_imported(published, tmp_path: Path) -> None:
    """Sending again a workbook already imported signs nothing twice and is not refused as "changed
    since exported" (a clerk read that as their work lost); a row that differs from what was signed
    still is, and then nothing is applied."""
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD, ids[1]: GOOD})
    with ledger.write() as s:
        import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    before = _snapshot(ledger)
    with ledger.read() as s:
        events = s.scalar(select(func.count()).select_from(ClueEvent))
    with ledger.write() as s:
        again = import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    assert again.applied == [] and sorted(again.already) == ids[:2] and again.untouched == len(ids) - 2
    assert _snapshot(ledger) == before
    with ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(ClueEvent)) == events
    other = tmp_path / "other.xlsx"
    fill_workbook(src, other, {ids[0]: GOOD, ids[1]: GOOD | {"核实情况说明": "另一种说法"}, ids[2]: GOOD})
    err = _refused(ledger, other, "town")
    assert len(err.problems) == 1 and f"线索 {ids[1]}" in err.problems[0] and "已被修改" in err.problems[0]
    with ledger.read() as s:
        assert s.get(Clue, ids[2]).status == DISPATCHED


def test_every_event_is_attributable(published, tmp_path: Path) -> None:
    ledger, township = published
    src, ids = _workbook(ledger, township, tmp_path)
    filled = tmp_path / "filled.xlsx"
    fill_workbook(src, filled, {ids[0]: GOOD})
    with ledger.write() as s:
        import_workbook(s, filled, _user(ledger, "town"), KEY, date(2026, 11, 30))
    with ledger.write() as s:
        actions.send_back(s, ids[0], 2, _user(ledger, "county"), "说明不充分")
    with ledger.read() as s:
        names = set(s.scalars(select(User.username))) | {"system"}
        events = s.scalars(select(ClueEvent)).all()
    assert events and all(e.actor in names and e.at is not None and e.kind for e in events)
    assert {e.kind for e in events} >= {"dispatched", "verify", "return"}


# ---------------------------------------------------------------- reports and the CLI


def test_report_figures(ledger) -> None:
    users = _users(ledger)
    rows = [hit(subject=f"S{i}", evidence_key=f"P{i}") for i in range(4)]
    publish(ledger, hits_frame(rows), {"VEHICLE": "ran"}, NIGHTS[0], TITLES, today=NIGHTS[0])  # published that night
    with ledger.write() as s:
        ids = list(s.scalars(select(Clue.id).order_by(Clue.id)))
        actions.verify(s, ids[0], 1, users["town"], _finding(TRUE_FIXED), date(2026, 11, 30))
        actions.close(s, ids[0], 2, users["county"], date(2026, 12, 1))
        actions.verify(s, ids[1], 1, users["town"], _finding(NOT_TRUE, verified_on=date(2026, 12, 10)), date(2026, 12, 10))
    _events_at(ledger, ids[0], "verify", datetime(2026, 11, 25, 17))  # as the ledger recorded the signings
    _events_at(ledger, ids[1], "verify", datetime(2026, 12, 10, 9))
    with ledger.read() as s:
        rep = report.build(s, "330102000000", today=date(2026, 12, 12))
        other = report.build(s, "330102002000", today=date(2026, 12, 12))
    row = rep.overall.row(0, named=True)
    assert (row["issued"], row["verified"], row["closed"], row["overdue"]) == (4, 2, 1, 2)
    assert row["closure_rate"] == 0.25 and row["on_time_rate"] == 0.5 and row["true_rate"] == 0.5
    assert rep.overdue.height == 2 and other.overall.row(0, named=True)["issued"] == 0
    # As of a past day (a 三天一报 made again): what was verified or closed after it is not yet so.
    with ledger.read() as s:
        then = report.build(s, "330102000000", today=date(2026, 11, 30))
        window = report.three_days(s, "330102000000", today=date(2026, 11, 26))  # verified on 11-25
        before = report.build(s, "330102000000", today=NIGHTS[0] - timedelta(days=1))
    row = then.overall.row(0, named=True)
    assert (row["issued"], row["verified"], row["closed"], row["true_rate"]) == (4, 1, 0, 1.0)
    w = window.overall.row(0, named=True)
    assert (w["new_in_window"], w["verified_in_window"], w["closed_in_window"]) == (0, 1, 0)
    assert before.overall.row(0, named=True)["issued"] == 0


def _events_at(ledger, clue_id: int, kind: str, *when: datetime) -> None:
    """The clue's events of `kind`, oldest first, recorded at `when` (the actions stamp the clock's time)."""
    with ledger.write() as s:
        events = s.scalars(select(ClueEvent).where(ClueEvent.clue_id == clue_id, ClueEvent.kind == kind)
                           .order_by(ClueEvent.id)).all()
        assert len(events) == len(when), (clue_id, kind, len(events))
        for e, at in zip(events, when, strict=True):
            e.at = at


def test_on_time_is_the_first_signing_as_recorded_against_the_due_date_it_had(ledger) -> None:
    """按时核实率 counts a clue signed by its due date as the ledger recorded the signing, not as the
    verifier typed 核实日期 (which may be set back), and against the due date the clue had then: a
    county's 退回 with a new due date does not make a late first signing timely (a supervisor's walk
    raised one county from 0% to 22% by both, 2026-12-06)."""
    users = _users(ledger)
    publish(ledger, hits_frame([hit(subject=f"S{i}", evidence_key=f"P{i}") for i in range(4)]), {"VEHICLE": "ran"},
            NIGHTS[0], TITLES)
    with ledger.read() as s:
        ids = list(s.scalars(select(Clue.id).order_by(Clue.id)))
        due = s.get(Clue, ids[0]).due_date
    typed = _finding(NOT_TRUE, verified_on=due - timedelta(days=3))  # a date before the due date, typed
    late, early, resigned = due + timedelta(days=2), due - timedelta(days=1), due + timedelta(days=8)
    with ledger.write() as s:
        for i in ids:
            actions.verify(s, i, 1, users["town"], typed, late)
        actions.send_back(s, ids[1], 2, users["county"], "请补充照片", due + timedelta(days=10), late)
        actions.send_back(s, ids[2], 2, users["county"], "请补充照片", due + timedelta(days=3), late)
        actions.verify(s, ids[1], 3, users["town"], typed, resigned)
        actions.verify(s, ids[2], 3, users["town"], typed, resigned)
    at = lambda d: datetime.combine(d, datetime.min.time()) + timedelta(hours=15)  # noqa: E731
    _events_at(ledger, ids[0], "verify", at(late))  # set back to before the due date: late all the same
    _events_at(ledger, ids[1], "verify", at(late), at(resigned))  # late, then on time for the new due date
    _events_at(ledger, ids[2], "verify", at(early), at(resigned))  # on time, then late for the new due date
    _events_at(ledger, ids[3], "verify", at(due))  # on its due date
    with ledger.read() as s:
        rep = report.build(s, "330102000000", today=resigned)
        frame = report.clue_frame(s, "330102000000")
    assert rep.overall.row(0, named=True)["on_time_rate"] == 0.5
    assert dict(zip(frame["id"], frame["due_when_signed"], strict=True)) == {ids[0]: None, ids[1]: due, ids[2]: due,
                                                                             ids[3]: None}
    assert dict(zip(frame["id"], frame["signed_on"], strict=True)) == {ids[0]: late, ids[1]: late, ids[2]: early,
                                                                       ids[3]: due}


def test_a_return_counts_apart_from_verified_and_in_its_window(ledger) -> None:
    """A county reviewer's four returns took 已核实 from 10 to 6 with no trace of them on the
    dashboard or in the 三天一报: a returned clue is 退回待补充 until signed again, a return in the
    window is 期间退回, and as of a day before the return the clue was verified."""
    users = _users(ledger)
    publish(ledger, hits_frame([hit(subject=f"S{i}", evidence_key=f"P{i}") for i in range(3)]), {"VEHICLE": "ran"},
            NIGHTS[0], TITLES, today=NIGHTS[0])
    with ledger.write() as s:
        ids = list(s.scalars(select(Clue.id).order_by(Clue.id)))
        for i in ids:
            actions.verify(s, i, 1, users["town"], _finding(TRUE_FIXED), date(2026, 11, 25))
        actions.send_back(s, ids[0], 2, users["county"], "材料不全", date(2026, 12, 20), date(2026, 12, 10))
    for i in ids:
        _events_at(ledger, i, "verify", datetime(2026, 11, 25, 9))
    _events_at(ledger, ids[0], "return", datetime(2026, 12, 10, 9))
    with ledger.read() as s:
        window = report.three_days(s, "330102000000", today=date(2026, 12, 11))
        later = report.three_days(s, "330102000000", today=date(2026, 12, 20))
        before = report.build(s, "330102000000", today=date(2026, 12, 9))
    row = window.overall.row(0, named=True)
    assert (row["issued"], row["verified"], row["returned"], row["returned_in_window"]) == (3, 2, 1, 1)
    assert later.overall.row(0, named=True)["returned_in_window"] == 0  # (the window moved on)
    then = before.overall.row(0, named=True)
    assert (then["verified"], then["returned"]) == (3, 0)
    assert list(window.overall.columns) == [c for c in (*report.COLUMNS, *report.WINDOW_COLUMNS)
                                            if c in window.overall.columns]


def test_a_returned_clues_state_on_a_past_day_is_read_from_its_history(ledger) -> None:
    """As of a past day a returned clue was what its last event by then left it (a red-team pass: a
    clue verified and returned after the day counted as verified with no outcome; one returned,
    signed again and returned again as verified)."""
    users = _users(ledger)
    publish(ledger, hits_frame([hit(subject=f"S{i}", evidence_key=f"P{i}") for i in range(3)]), {"VEHICLE": "ran"},
            NIGHTS[0], TITLES, today=NIGHTS[0])
    with ledger.read() as s:
        a, b, c = s.scalars(select(Clue.id).order_by(Clue.id)).all()
    late = date(2026, 12, 20)
    with ledger.write() as s:  # a: verified and returned after the day
        actions.verify(s, a, 1, users["town"], _finding(TRUE_FIXED), date(2026, 12, 5))
        actions.send_back(s, a, 2, users["county"], "材料不全", late, date(2026, 12, 6))
    with ledger.write() as s:  # b: returned before the day, signed again and returned again after it
        actions.verify(s, b, 1, users["town"], _finding(TRUE_FIXED), date(2026, 11, 25))
        actions.send_back(s, b, 2, users["county"], "材料不全", late, date(2026, 11, 26))
        actions.verify(s, b, 3, users["town"], _finding(TRUE_FIXED, finding="已补充"), date(2026, 12, 4))
        actions.send_back(s, b, 4, users["county"], "仍不全", late, date(2026, 12, 5))
    with ledger.write() as s:  # c: returned before the day, signed again and closed after it
        actions.verify(s, c, 1, users["town"], _finding(TRUE_FIXED), date(2026, 11, 25))
        actions.send_back(s, c, 2, users["county"], "材料不全", late, date(2026, 11, 27))
        actions.verify(s, c, 3, users["town"], _finding(TRUE_FIXED, finding="已补充"), date(2026, 12, 3))
        actions.close(s, c, 4, users["county"], date(2026, 12, 4))
    _events_at(ledger, a, "verify", datetime(2026, 12, 5, 9))
    _events_at(ledger, a, "return", datetime(2026, 12, 6, 9))
    _events_at(ledger, b, "verify", datetime(2026, 11, 25, 9), datetime(2026, 12, 4, 9))
    _events_at(ledger, b, "return", datetime(2026, 11, 26, 9), datetime(2026, 12, 5, 9))
    _events_at(ledger, c, "verify", datetime(2026, 11, 25, 9), datetime(2026, 12, 3, 9))
    _events_at(ledger, c, "return", datetime(2026, 11, 27, 9))
    _events_at(ledger, c, "close", datetime(2026, 12, 4, 9))
    with ledger.read() as s:
        then = report.as_of(report.clue_frame(s, "330102000000"), date(2026, 12, 1))
        row = report.build(s, "330102000000", today=date(2026, 12, 1)).overall.row(0, named=True)
        now = report.build(s, "330102000000", today=date(2026, 12, 10)).overall.row(0, named=True)
    assert dict(zip(then["id"], then["status"], strict=True)) == {a: DISPATCHED, b: RETURNED, c: RETURNED}
    assert (row["verified"], row["returned"], row["closed"], row["on_time_rate"]) == (0, 2, 0, None)
    assert (now["verified"], now["returned"], now["closed"]) == (1, 2, 1)


def test_the_report_workbook_says_what_its_rates_count_and_dashes_a_rate_of_nothing(ledger, tmp_path: Path) -> None:
    """A rate with nothing to count from reads —, as on the dashboard (it was a blank cell); the sheets
    with 按时核实率 say what it counts, and the 错评漏评错退 sheet why its figures are not 按类别's."""
    from python_calamine import CalamineWorkbook

    publish(ledger, hits_frame([hit(subject="S0", evidence_key="P0")]), {"VEHICLE": "ran"}, NIGHTS[0], TITLES)
    with ledger.read() as s:
        rep = report.build(s, "330102000000", today=NIGHTS[0])
    out = tmp_path / "report.xlsx"
    report.write_xlsx(rep, out)
    wb = CalamineWorkbook.from_path(str(out))
    overview = wb.get_sheet_by_name("概览").to_python()
    header = overview[1]
    assert overview[2][header.index("按时核实率")] == "—" and overview[2][header.index("下发")] == 1
    rated = [n for n in wb.sheet_names if "按时核实率" in wb.get_sheet_by_name(n).to_python()[1]]
    assert set(rated) == {"概览", "按县", "按乡镇", "按规则", "按类别"}  # 按规则 had the rate but not the note
    def said(sheet: str, note: str) -> bool:
        return any(note in str(c) for row in wb.get_sheet_by_name(sheet).to_python() for c in row)

    assert all(said(n, report.ON_TIME_NOTE) for n in rated)
    # 已核实 leaves out what was sent back: the sheets counting both say so (退回待补充)
    assert all(said(n, report.VERIFIED_NOTE) for n in wb.sheet_names if "退回待补充" in wb.get_sheet_by_name(n).to_python()[1])
    assert report.FINDINGS_NOTE in [c for row in wb.get_sheet_by_name("错评漏评错退").to_python() for c in row]


def test_an_overdue_missed_household_is_listed_by_its_hukou_number(ledger) -> None:
    """漏评: a household on no register has no 户编号; the overdue list names its 户号 (it was blank)."""
    missed = hit(subject="S9", evidence_key="P9", category="missed_inclusion") | {"household_code": "", "hukou_number": "HK0042"}
    publish(ledger, hits_frame([hit(subject="S0", evidence_key="P0"), missed]), {"VEHICLE": "ran"}, NIGHTS[0], TITLES)
    with ledger.read() as s:
        due = s.scalars(select(Clue.due_date)).first()
        rep = report.build(s, "330102000000", today=due + timedelta(days=1))
    assert sorted(rep.overdue["household_code"].to_list()) == ["H0001", "户号 HK0042"]


def test_cli_publish_workbook_import_review_export_report(nightly, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BIDUI_SECRET", KEY)
    home = tmp_path / "home"
    shutil.copytree(nightly[0], home)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        res = runner.invoke(app, ["--home", str(home), *args])
        assert res.exit_code == code, res.output
        return res.output

    run("publish", "--date", "2026-11-20")
    assert "已发布过，没有变化" in run("publish", "--date", "2026-11-20")
    export = tmp_path / "clues.csv"
    run("clues", "export", "--codes", "--out", str(export))
    frame = pl.read_csv(export, infer_schema=False)
    assert frame.columns[-6:] == ["clue_id", "status", "outcome", "first_seen", "last_seen", "due_date"]
    township = frame.group_by("township_code").len().sort("len", descending=True)["township_code"][0]
    run("users", "add", "--name", "town", "--role", "township", "--scope", township, "--password", "pass-word-1")
    run("users", "add", "--name", "county", "--role", "county", "--scope", township[:6] + "000000",
        "--password", "pass-word-2")
    run("users", "add", "--name", "bad", "--role", "township", "--scope", township[:6] + "000000", "--password", "x" * 9,
        code=1)
    wb = tmp_path / "wb.xlsx"
    assert "没有在用的用户 nosuch" in run("clues", "workbook", "--township", township, "--out", str(wb), "--as", "nosuch",
                                 code=1) and not wb.exists()
    run("clues", "workbook", "--township", township, "--out", str(wb))
    ids = frame.filter(pl.col("township_code") == township)["clue_id"].cast(pl.Int64).sort().to_list()
    filled = tmp_path / "filled.xlsx"
    signed = GOOD | {"核实日期": date.today()}  # the CLI checks against today
    fill_workbook(wb, filled, {ids[0]: signed, ids[1]: signed})
    assert "2 条线索已核实并签字" in run("clues", "import", str(filled), "--as", "town")
    # sent again: nothing signed twice, and said so (it was refused as changed since exported)
    assert "0 条线索已核实并签字；2 条此前已导入过" in run("clues", "import", str(filled), "--as", "town")
    later = (date.today() + timedelta(days=10)).isoformat()
    run("clues", "review", str(ids[0]), "--return", "--reason", "", "--due", later, "--as", "county", code=2)
    # A return names the township's new due date, as the review page asks (today or later).
    assert "--due" in run("clues", "review", str(ids[0]), "--return", "--reason", "说明不充分", "--as", "county",
                          code=1)
    assert "不能早于今天" in run("clues", "review", str(ids[0]), "--return", "--reason", "说明不充分",
                              "--due", "2020-01-01", "--as", "county", code=2)
    assert "已销号" in run("clues", "review", str(ids[0]), "--close", "--as", "county")
    assert "已退回" in run("clues", "review", str(ids[1]), "--return", "--reason", "说明不充分", "--due", later,
                        "--as", "county")
    returned = tmp_path / "returned.csv"
    run("clues", "export", "--codes", "--out", str(returned))
    back = pl.read_csv(returned, infer_schema=False).filter(pl.col("clue_id") == str(ids[1])).row(0, named=True)
    assert (back["status"], back["due_date"]) == ("returned", later)
    out = tmp_path / "report.xlsx"
    text = run("report", "--scope", township, "--out", str(out), "--today", "2026-12-31")
    assert out.exists() and "整改销号率" in text
    three = run("report", "--three-day", "--today", "2026-11-22")
    assert "期间新增" in three
    export_x = tmp_path / "clues.xlsx"
    run("clues", "export", "--township", township, "--date", "2026-11-20", "--out", str(export_x))
    assert export_x.exists()
    # the password never reaches the ledger in clear
    assert b"pass-word-1" not in (home / "ledger.sqlite").read_bytes()


def test_a_shared_number_and_a_household_link_publish_on_every_backend(ledger) -> None:
    """The person key of one of two persons sharing a number carries its hukou number (一号多人),
    and a link through the household or a former name has a longer method name (issue 15)."""
    shared = "330102199001011234~3301020010010000123"
    row = hit(subject=shared) | {"subject_id_number": shared[:18], "link_method": "former_name"}
    other = hit(subject=shared[:18] + "~3301020010010000456", evidence_key="浙A99999") | {
        "subject_id_number": shared[:18], "link_method": "household",
        "link_explanation": '{"rule": "household"}'}
    result = publish(ledger, hits_frame([row, other]), {"VEHICLE": "ran"}, NIGHTS[0], TITLES)
    with ledger.read() as s:
        clues = sorted(s.scalars(select(Clue)), key=lambda c: c.evidence_key)
    assert result.new == 2 and [c.subject_person_key for c in clues] == [shared, shared[:18] + "~3301020010010000456"]
    assert [c.link_method for c in clues] == ["former_name", "household"]


@pytest.mark.skipif(not PG_URL, reason="needs BIDUI_TEST_PG_URL (a township user acting during a publish)")
def test_a_clue_acted_on_during_a_publish_keeps_the_change_and_its_new_evidence_comes_the_next_night(
        tmp_path: Path, monkeypatch) -> None:
    """PostgreSQL: a clerk verifies a clue while the night's publish, which found its evidence
    changed, is under way. The clerk's change stands; the publish says nothing of that night's
    evidence (no event, no snapshot), so the next night finds it changed and says so."""
    import bidui.clues.publish as pub

    old = '{"plate": "浙A12345", "vehicle_type": "K33", "owner": "王伟"}'
    new = '{"plate": "浙A12345", "vehicle_type": "K11", "owner": "王伟"}'
    nights = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
    ledger = fresh_ledger("postgresql", tmp_path)
    try:
        publish(ledger, hits_frame([hit(record=old)]), {"VEHICLE": "ran"}, nights[0], {})
        real = pub._apply_updates

        def racing(session, updates):
            from sqlalchemy import text

            with ledger.engine.begin() as other:  # the clerk's request, committed meanwhile
                other.execute(text("UPDATE clues SET status = 'verified', outcome = '属实', version = version + 1"))
            return real(session, updates)

        monkeypatch.setattr(pub, "_apply_updates", racing)
        second = publish(ledger, hits_frame([hit(record=new)]), {"VEHICLE": "ran"}, nights[1], {})
        monkeypatch.setattr(pub, "_apply_updates", real)
        with ledger.read() as s:
            clue = s.scalar(select(Clue))
            assert (clue.status, clue.version, clue.evidence_hash) == ("verified", 2, evidence_hash(old))
            assert s.scalar(select(func.count()).select_from(EvidenceSnapshot).where(
                EvidenceSnapshot.night == nights[1])) == 0
            assert "evidence_changed" not in [e.kind for e in s.scalars(select(ClueEvent))]
        assert second.changed == 0
        third = publish(ledger, hits_frame([hit(record=new)]), {"VEHICLE": "ran"}, nights[2], {})
        assert third.changed == 1
        with ledger.read() as s:
            clue = s.scalar(select(Clue))
            assert (clue.status, clue.version, clue.evidence_hash) == ("verified", 3, evidence_hash(new))
            assert [e.payload["night"] for e in s.scalars(select(ClueEvent).where(ClueEvent.kind == "evidence_changed"))
                    ] == [nights[2].isoformat()]
    finally:
        ledger.close()


def test_a_finding_is_not_reviewed_by_whoever_signed_it(ledger) -> None:
    """谁核实谁签字, and the county's review is someone else's: a clerk whose account was made a
    county reviewer (a walk, 2026-12-06: she closed the clue she had signed) can neither close nor
    return her own finding, whatever her role now; the clue stays as it was for another reviewer."""
    from bidui.clues.users import CLI, rescope

    users = _users(ledger)
    clue_id = _one_clue(ledger)
    with ledger.write() as s:
        actions.verify(s, clue_id, 1, users["town"], _finding(), date(2026, 11, 30))
        rescope(s, "town", "county", "330102000000", CLI)
    town = _user(ledger, "town")
    assert town.role == "county"
    before = _snapshot(ledger)
    for act in (lambda s: actions.close(s, clue_id, 2, town),
                lambda s: actions.send_back(s, clue_id, 2, town, "请补充照片", date.today() + timedelta(days=7))):
        with pytest.raises(TransitionError, match="本人签字"), ledger.write() as s:
            act(s)
        assert _snapshot(ledger) == before
    with ledger.write() as s:
        actions.close(s, clue_id, 2, users["county"])
    with ledger.read() as s:
        assert s.get(Clue, clue_id).status == "closed"


def test_an_upgraded_ledger_flags_the_accounts_still_on_a_password_an_administrator_set(tmp_path: Path) -> None:
    """Migration 0009 (a red team, 2026-12-07: accounts from before it were never asked): the audit
    trail says whose password an administrator chose and was not changed since."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from bidui.clues.db import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
    accounts = {"added": [("user_added", "admin")], "reset": [("user_added", "admin"), ("password_changed", "reset"),
                                                              ("password_reset", "admin")],
                "changed": [("user_added", "命令行"), ("password_changed", "changed")],
                "reset_then_changed": [("password_reset", "admin"), ("password_changed", "reset_then_changed")],
                "seeded": []}
    with engine.begin() as conn:
        for name, events in accounts.items():
            conn.execute(text("INSERT INTO users (username, display_name, role, scope, password_hash, failed_logins, "
                              "active, created_at) VALUES (:n, :n, 'township', '330102001000', 'x', 0, 1, :at)"),
                         {"n": name, "at": datetime(2026, 11, 1)})
            for kind, actor in events:
                conn.execute(text("INSERT INTO audit_events (at, actor, kind, target) VALUES (:at, :a, :k, :t)"),
                             {"at": datetime(2026, 11, 2), "a": actor, "k": kind, "t": name})
    engine.dispose()
    lg = open_ledger(url)
    try:
        with lg.read() as s:
            flagged = {u.username for u in s.scalars(select(User)) if u.must_change_password}
    finally:
        lg.close()
    assert flagged == {"added", "reset"}
