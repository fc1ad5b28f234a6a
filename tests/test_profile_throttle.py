"""The profile page's current-password check is throttled as the login is (one throttle, one place)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import AuditEvent
from bidui.web import security
from bidui.web.app import create_app
from tests.conftest import PASSWORD
from tests.present_support import internal_codes
from tests.test_security_sessions import GOOD, client, login, token


def _change(c, current: str):
    return c.post("/profile/password", data={"csrf_token": token(c, "/profile"), "current": current, "new": GOOD,
                                             "again": GOOD})


def test_wrong_current_passwords_lock_the_form_even_for_the_right_one(home, monkeypatch) -> None:
    h, _, _ = home
    real, shift = security.now, [timedelta(0)]
    monkeypatch.setattr(security, "now", lambda: real() + shift[0])
    app = create_app(h)
    c = client(app)
    assert login(c, "town").status_code == 303
    guesses = [f"guess-number-{i}" for i in range(security.PAIR_BLOCK_AFTER)]
    answers = [_change(c, g) for g in guesses]
    assert all(r.status_code == 400 for r in answers)
    assert "当前密码不正确" in answers[0].text and "已锁定" in answers[-1].text
    refused = _change(c, PASSWORD)  # the right one, within the lock period
    assert refused.status_code == 400 and "已锁定" in refused.text and "密码已修改" not in refused.text
    main = refused.text.split("<main", 1)[-1].split("</main>", 1)[0]
    # What the page says, not its markup; the login name "town" is the person's own, shown as typed.
    assert internal_codes(re.sub(r"<[^>]+>", " ", main).replace("town", "")) == []
    with open_ledger(ledger_url(h.ledger)).read() as s:
        failed = [e for e in s.scalars(select(AuditEvent).where(AuditEvent.kind == "login_failed"))]
    assert len(failed) == security.PAIR_BLOCK_AFTER + 1 and all(e.target == "town" for e in failed)
    assert not any(g in str(e.payload) or PASSWORD in str(e.payload) for e in failed for g in guesses)
    # The lock period over, the right password changes it (and the login throttle was the one used).
    shift[0] = security.PAIR_BLOCK + timedelta(seconds=1)
    c = client(app)
    assert login(c, "town").status_code == 303
    done = _change(c, PASSWORD)
    assert done.status_code == 303, done.text
