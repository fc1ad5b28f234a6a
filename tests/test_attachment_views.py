"""A clue page's thumbnails do not flood its history with 查看附件; every full open is recorded."""

from __future__ import annotations

import re

from sqlalchemy import select

from bidui.clues.attachments import VIEWED
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import ClueEvent
from tests.test_attachments import client, first_clue, photo, upload


def _views(h, clue_id: int) -> list[tuple[str, bool]]:
    with open_ledger(ledger_url(h.ledger)).read() as s:
        return [(e.actor, bool((e.payload or {}).get("thumbnail"))) for e in s.scalars(
            select(ClueEvent).where(ClueEvent.clue_id == clue_id, ClueEvent.kind == VIEWED).order_by(ClueEvent.id))]


def test_thumbnails_once_a_day_per_person_full_opens_every_time(home) -> None:
    h, town, _ = home
    clue = first_clue(h, town)
    r, page = upload(client(h, "town"), clue.id, *((f"入户照片{i}.jpg", photo((600 + 20 * i, 400))) for i in range(3)))
    assert r.status_code == 303
    thumbs = re.findall(r'src="(/attachments/\d+\?thumb=1)"', page)
    assert len(thumbs) == 3
    county = client(h, "county")
    for _visit in range(2):  # the clue page opened twice, each showing three thumbnails
        assert all(county.get(t).status_code == 200 for t in thumbs)
    assert _views(h, clue.id) == [("county", True)]
    full = thumbs[0].split("?")[0]
    assert county.get(full).status_code == 200 and county.get(full).status_code == 200
    assert _views(h, clue.id) == [("county", True), ("county", False), ("county", False)]
    # Another person's look at the photos is theirs to answer for: recorded too.
    assert client(h, "pref").get(thumbs[1]).status_code == 200
    assert _views(h, clue.id)[-1] == ("pref", True)
