"""Red team of links kept in place across nights (bidui.matching.link_nights, commit 6847187): a home
that carries sure links (kept by moving `last_night` on) must hold, night by night, exactly the links
of a home that links everything; linking a night again (in the middle, out of order, retrained, with
a verdict) must leave every other night's links as they were; no record is ever linked twice on a
night."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from bidui.connectors import snapshot_rows
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.matching import decisions, link_nights
from bidui.matching.link import link_night
from tests.test_carry import twins  # noqa: F401  (the fixture)

N1, N2, N3, N4, N5 = (date(2026, 11, d) for d in (20, 21, 22, 23, 24))


def on(con, night: date) -> list[tuple]:
    # As stored (by the records' identities: the twins ingest alike, so theirs are the same): a
    # night's links do not change when a snapshot put in force later moves their rows.
    return con.execute(f"SELECT {link_nights.LINK_COLUMNS} FROM links WHERE {link_nights.on_night('?::DATE')} ORDER BY ALL",
                       [night]).fetchall()


def nights_of(con, nights) -> dict[date, list[tuple]]:
    return {n: on(con, n) for n in nights}


def twice(con, night: date) -> list[tuple]:
    """Records with more than one link row valid on the night."""
    return con.execute(f"""SELECT dataset, row_id, role, count(*) FROM links
                           WHERE {link_nights.on_night('?::DATE')} GROUP BY ALL HAVING count(*) > 1""",
                       [night]).fetchall()


def check_shape(con, nights) -> None:
    """No record linked twice on any night; every range is well formed and starts and ends on a
    night linked."""
    for n in nights:
        assert twice(con, n) == [], n
    assert con.execute("SELECT count(*) FROM links WHERE last_night < night").fetchone()[0] == 0
    linked = {n for n, in con.execute("SELECT night FROM link_runs").fetchall()}
    ends = {n for n, in con.execute("SELECT night FROM links UNION SELECT last_night FROM links "
                                    "WHERE last_night IS NOT NULL").fetchall()}
    assert ends <= linked, ends - linked


def inbox_with_empty(tiny: Path, tmp_path: Path) -> Path:
    """The tiny prefecture's nights 2 and 3, and empty night folders 4 and 5 (nothing delivered:
    every dataset keeps its snapshot, its sure links are kept in place)."""
    inbox = tmp_path / "inbox"
    for night in (N2, N3):
        shutil.copytree(tiny / "inbox" / night.isoformat(), inbox / night.isoformat())
    for night in (N4, N5):
        (inbox / night.isoformat()).mkdir()
    return inbox


def ingest(twins, inbox: Path, night: date) -> None:  # noqa: F811
    for con in twins:
        ingest_night(con, inbox / night.isoformat(), night, workers=1)


def both(twins, night: date, **kw) -> None:  # noqa: F811
    carry, everything = twins
    link_night(carry, night, **kw)
    link_night(everything, night, carry=False, **kw)


def same(twins, nights) -> dict[date, list[tuple]]:  # noqa: F811
    carry, everything = twins
    got = nights_of(carry, nights)
    want = nights_of(everything, nights)
    for n in nights:
        assert got[n] == want[n], (n, sorted(set(got[n]) ^ set(want[n]))[:10])
    check_shape(carry, nights)
    check_shape(everything, nights)
    return got


def relink(con, night: date, all_nights, expected: dict, **kw) -> None:
    """Link `night` again (`kw`: as link_night takes): every other night holds what it held; the
    night itself, when it was carried, holds what linking everything (in the same home, just after)
    gives — which it then holds (re-linking a night may change its own links: a model kept instead
    of trained, snapshots stored since)."""
    link_night(con, night, **kw)
    others = [n for n in all_nights if n != night]
    assert nights_of(con, others) == {n: expected[n] for n in others}, (night, kw)
    check_shape(con, all_nights)
    got = on(con, night)
    if kw.get("carry", True) and not kw.get("retrain"):
        link_night(con, night, carry=False)
        assert on(con, night) == got, (night, kw, sorted(set(got) ^ set(on(con, night)))[:10])
        assert nights_of(con, others) == {n: expected[n] for n in others}, (night, kw)
        check_shape(con, all_nights)
    expected[night] = got


def linked_2_to_4(twins, tiny: Path, tmp_path: Path) -> tuple[Path, dict]:  # noqa: F811
    inbox = inbox_with_empty(tiny, tmp_path)
    for night in (N2, N3, N4):
        ingest(twins, inbox, night)
        both(twins, night)
    return inbox, same(twins, (N1, N2, N3, N4))


def test_relinking_nights_in_the_middle_every_way_changes_no_other(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    carry, everything = twins
    _, nights = linked_2_to_4(twins, tiny, tmp_path)
    assert carry.execute("SELECT count(*) FROM links WHERE last_night > night").fetchone()[0] > 0  # kept in place
    all_nights = (N1, N2, N3, N4)
    steps = [(carry, N3, {}), (carry, N3, {"carry": False}), (carry, N3, {}), (carry, N2, {"carry": False}),
             (carry, N3, {}), (carry, N2, {}), (carry, N2, {}), (carry, N4, {}), (carry, N4, {}),
             (carry, N1, {}), (carry, N2, {}), (everything, N3, {}), (everything, N4, {}), (everything, N2, {})]
    expected = {id(carry): dict(nights), id(everything): dict(nights)}
    for con, night, kw in steps:
        relink(con, night, all_nights, expected[id(con)], **kw)


def test_a_middle_night_retrained(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    carry, everything = twins
    _, nights = linked_2_to_4(twins, tiny, tmp_path)
    both(twins, N3, retrain=True)
    after = same(twins, (N1, N2, N3, N4))
    assert {n: after[n] for n in (N1, N2, N4)} == {n: nights[n] for n in (N1, N2, N4)}
    both(twins, N4)  # carried from the retrained night
    same(twins, (N1, N2, N3, N4))
    link_night(carry, N3, retrain=True)  # retrained again, in the carrying home alone
    link_night(carry, N4)
    assert nights_of(carry, (N1, N2, N3, N4)) == nights_of(everything, (N1, N2, N3, N4))
    check_shape(carry, (N1, N2, N3, N4))


def test_a_verdict_on_a_middle_night(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    carry, _ = twins
    _, nights = linked_2_to_4(twins, tiny, tmp_path)
    # A record linked exactly since night 1 and kept in place through night 4 is refuted by a township.
    found = carry.execute("""SELECT dataset, role, person_key FROM links WHERE method = 'exact'
                             AND NOT contains(person_key, '~') AND night <= ? AND last_night >= ?
                             ORDER BY 1, 2, 3 LIMIT 1""", [N2, N4]).fetchone()
    assert found is not None
    dataset, role, person = found
    for con in twins:
        name, = con.execute("SELECT name FROM ds_hukou_at(?) WHERE id_number = ?",
                            [wh.in_force(con, N3)["hukou"], person]).fetchone()
        decisions.store(con, [{"kind": "cannot", "dataset": dataset, "role": role, "id_number": person, "name": name,
                               "person_key": person, "clue_id": 1, "verifier_name": "孙丽", "decided_on": N3}])
    both(twins, N3)
    after = same(twins, (N1, N2, N3, N4))
    assert {n: after[n] for n in (N1, N2, N4)} == {n: nights[n] for n in (N1, N2, N4)}
    assert after[N3] != nights[N3]  # the verdict took the link off night 3
    for con in twins:
        decisions.store(con, [])  # revoked: night 4 again, carried from night 3
    both(twins, N4)
    same(twins, (N1, N2, N3, N4))
    both(twins, N3)  # and night 3 once more, with the verdict gone
    same(twins, (N1, N2, N3, N4))


def test_a_night_folder_that_came_late(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    """Nights 2 and 4 linked, then night 3's folder comes and is linked; then night 5, and night 3
    and 4 again."""
    carry, _ = twins
    inbox = inbox_with_empty(tiny, tmp_path)
    for night in (N2, N4):
        ingest(twins, inbox, night)
        both(twins, night)
    nights = same(twins, (N1, N2, N4))
    for con in twins:  # forgetting a night never linked, in the gap, before and after every night
        con.execute("BEGIN TRANSACTION")
        for n in (N3, date(2026, 11, 19), date(2026, 11, 30)):
            link_nights.forget(con, n)
        con.execute("ROLLBACK")
    ingest(twins, inbox, N3)
    both(twins, N3)
    after = same(twins, (N1, N2, N3, N4))
    assert {n: after[n] for n in (N1, N2, N4)} == nights
    ingest(twins, inbox, N5)
    both(twins, N5)
    same(twins, (N1, N2, N3, N4, N5))
    expected = nights_of(carry, (N1, N2, N3, N4, N5))
    for night in (N4, N3, N4, N5, N3):
        relink(carry, night, (N1, N2, N3, N4, N5), expected)


def test_forgetting_a_night_never_linked_changes_nothing(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    carry, _ = twins
    inbox = inbox_with_empty(tiny, tmp_path)
    for night in (N2, N4):  # night 3 skipped
        ingest(twins, inbox, night)
        link_night(carry, night)
    nights = nights_of(carry, (N1, N2, N4))
    stored = carry.execute("SELECT * FROM links ORDER BY ALL").fetchall()
    for n in (date(2026, 11, 19), date(2026, 11, 30)):  # before and after every night linked
        link_nights.forget(carry, n)
        assert carry.execute("SELECT * FROM links ORDER BY ALL").fetchall() == stored
    link_nights.forget(carry, N3)  # in the gap: the ranges are cut, the nights hold the same
    assert nights_of(carry, (N1, N2, N4)) == nights
    check_shape(carry, (N1, N2, N4))


def test_a_night_not_linked_holds_no_links(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    """Night 3's folder is late: nights 2 and 4 are linked, night 3 is not. Asked for night 3's links
    (as every reader asks: `on_night`), the carrying home answers as the one that links everything
    (none: night 3 was not linked)."""
    inbox = inbox_with_empty(tiny, tmp_path)
    for night in (N2, N4):
        ingest(twins, inbox, night)
        both(twins, night)
    carry, everything = twins
    assert on(everything, N3) == []
    assert on(carry, N3) == on(everything, N3), len(on(carry, N3))


def test_a_snapshot_withdrawn_returns_to_the_load_before(twins, tiny: Path, tmp_path: Path) -> None:  # noqa: F811
    """Vehicles delivered anew on night 3 then withdrawn (its night 3 snapshot deleted): nights 3 and
    4 have night 2's load in force again, the one night 2 was linked with: carried whole, in place."""
    _, nights = linked_2_to_4(twins, tiny, tmp_path)
    for con in twins:
        assert wh.in_force(con, N3)["vehicles"] == N3
        snapshot_rows.forget(con, "vehicles", N3)  # as a snapshot withdrawn goes (rows kept past it stay)
        con.execute("DELETE FROM snapshots WHERE dataset = 'vehicles' AND snapshot_date = ?", [N3])
        assert wh.in_force(con, N4)["vehicles"] < N3
    both(twins, N4)  # linked with night 3's vehicles: not carried from it
    both(twins, N3)
    after = same(twins, (N1, N2, N3, N4))
    assert {n: after[n] for n in (N1, N2)} == {n: nights[n] for n in (N1, N2)}
    both(twins, N4)
    same(twins, (N1, N2, N3, N4))
    ingest(twins, inbox_with_empty(tiny, tmp_path / "again"), N5)
    both(twins, N5)
    same(twins, (N1, N2, N3, N4, N5))

