"""Issue 16, the web side of "no internal code reaches a person": every clue of every rule, in
every state and outcome, through every page that shows it — the clue page, its printed record,
the household's printed record, the inbox, the review queue, the dashboard and the admin page —
read as text (what the browser shows, not the markup) by tests/present_support.internal_codes.
The non-web surfaces are in tests/test_present.py, whose ledger this reuses."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select, update

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, User
from bidui.home import Home
from tests.present_support import internal_codes
from tests.test_present import PASSWORD, home  # noqa: F401 - the ledger with every outcome and state
from tests.test_web import client_for, login

TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S)


def page_text(markup: str) -> str:
    """What a person reads: the text between tags, not attribute values, scripts or styles."""
    return html.unescape(TAGS.sub(" ", markup))


def _check(where: str, markup: str, data: tuple[str, ...] = ()) -> None:
    text = page_text(markup)
    for word in data:
        text = text.replace(word, "")
    found = internal_codes(text)
    assert not found, f"{where} shows internal codes: {sorted(set(found))[:20]}"


@pytest.fixture(scope="module")
def signed_in(home: Home):  # noqa: F811
    """A client per user of the ledger, each with the real name and position a signature needs."""
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        s.execute(update(User).values(real_name="张敏", position="扶贫专干"))
        accounts = {u.username: (u.role, u.scope) for u in s.scalars(select(User))}
        clues = [(c.id, c.township_code, c.household_code or c.hukou_number, c.status) for c in s.scalars(select(Clue))]
    ledger.close()
    clients = {}
    for username in accounts:
        client = client_for(home)
        assert login(client, username, PASSWORD).status_code == 303
        clients[username] = client
    return clients, accounts, clues


def test_every_clue_page_and_printed_record_reads_without_codes(signed_in) -> None:
    clients, accounts, clues = signed_in
    town_of = {scope: name for name, (role, scope) in accounts.items() if role == "township"}
    assert {status for *_, status in clues} == {"dispatched", "verified", "returned", "closed"}
    households = set()
    for clue_id, township, household, _ in clues:
        client = clients[town_of[township]]
        page = client.get(f"/clues/{clue_id}")
        assert page.status_code == 200
        _check(f"clue {clue_id}", page.text)
        _check(f"clue {clue_id} printed", client.get(f"/clues/{clue_id}/print").text)
        if household and household not in households:
            households.add(household)
            _check(f"household {household} printed", client.get(f"/households/{household}/print").text)


def test_every_list_reads_without_codes(signed_in) -> None:
    clients, accounts, _ = signed_in
    for username, (role, _) in accounts.items():
        client = clients[username]
        if role == "township":
            for status in ("open", "", "dispatched", "verified", "returned", "closed"):
                _check(f"{username} inbox {status}", client.get(f"/inbox?status={status}").text)
        if role == "county":
            _check(f"{username} review", client.get("/review").text)
            _check(f"{username} dashboard", client.get("/dashboard").text)
            _check(f"{username} inbox", client.get("/inbox?status=").text)


def test_the_check_fails_on_a_planted_code(signed_in, home: Home) -> None:  # noqa: F811
    """A rule title replaced by its code must be caught on the clue page."""
    clients, accounts, clues = signed_in
    clue_id, township, _, _ = clues[0]
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        clue = s.get(Clue, clue_id)
        saved, clue.rule_title = clue.rule_title, clue.rule_code
        code = clue.rule_code
    try:
        client = clients[next(n for n, (role, scope) in accounts.items() if role == "township" and scope == township)]
        with pytest.raises(AssertionError, match=code):
            _check("planted", client.get(f"/clues/{clue_id}").text)
    finally:
        with ledger.write() as s:
            s.get(Clue, clue_id).rule_title = saved
        ledger.close()


def test_a_household_of_another_county_is_named_in_the_review_queue(signed_in, home: Home) -> None:  # noqa: F811
    """一人多户 across counties: the county reviewer's queue words the other household's village by
    its name, as the clue page does, and says which number is the household's (a walk found the
    village's bare code there, and in the inspection workbook: names came from the user's county only)."""
    import json

    from bidui.clues.models import Division, EvidenceSnapshot

    clients, accounts, _ = signed_in
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        first = s.scalars(select(Clue).where(Clue.status == "verified").order_by(Clue.verified_on, Clue.id)).first()
        clue_id, township = first.id, first.township_code  # the first in the queue (the longest waiting)
        reviewer = next(n for n, (role, scope) in accounts.items()
                        if role == "county" and township.startswith(scope.rstrip("0")[:6]))
        # A village of a county next to it (the tiny prefecture has one county).
        village = Division(code=township[:4] + "99001001", name="远山村村委会", level="village", parent_code=None)
        s.add(village)
        snap = s.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id == clue_id)
                         .order_by(EvidenceSnapshot.night.desc(), EvidenceSnapshot.id.desc())).first()
        saved = snap.record
        household, code = village.code + "0042", village.code
        record = {"other_households": [{"household_code": household, "village_code": code, "head_name": "孙伟"}]}
        snap.record = json.dumps(record, ensure_ascii=False)
        name = village.name
    try:
        text = page_text(clients[reviewer].get("/review").text)
        assert f"户编号 {household}" in text and name in text and "户主 孙伟" in text, text[-2000:]
        assert code not in text.replace(household, "")
        _check("review with another county's household", text, data=(household,))
    finally:
        with ledger.write() as s:
            s.get(EvidenceSnapshot, snap.id).record = saved
            s.delete(s.get(Division, code))
        ledger.close()
