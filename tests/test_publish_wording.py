"""Re-publishing a night tells the operator in Chinese what happened (nothing, or the register copy filled)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from bidui.cli import app
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import RegisterHousehold, RegisterMember
from tests.present_support import internal_codes


def _publish(root, night: str = "2026-11-20") -> str:
    res = CliRunner().invoke(app, ["--home", str(root), "publish", "--date", night])
    assert res.exit_code == 0, res.output
    return res.output


def test_republishing_a_night_says_in_chinese_that_nothing_changed(home) -> None:
    h, _, _ = home
    out = _publish(h.root)
    assert "2026年11月20日的数据已发布过，没有变化" in out
    assert "名册" not in out  # the register copy was already there: nothing filled
    assert internal_codes(out) == []


def test_republishing_fills_a_missing_register_copy_and_says_so(home) -> None:
    h, _, _ = home
    ledger = open_ledger(ledger_url(h.ledger))
    with ledger.write() as s:
        assert s.scalar(select(func.count()).select_from(RegisterHousehold))  # the night had a register
        s.execute(delete(RegisterMember))
        s.execute(delete(RegisterHousehold))
    out = _publish(h.root)
    assert "已发布过，没有变化；已补齐台账中的建档立卡名册副本" in out
    assert internal_codes(out) == []
    with ledger.read() as s:
        assert s.scalar(select(func.count()).select_from(RegisterHousehold))
    ledger.close()
