"""In a real browser: the prefecture's supervisor runs a 阈值推演 and reads its result, then the
dashboard's 核查负担 table; each at desktop and phone width, in Chinese, no wider than a phone.
With BIDUI_SCREENSHOTS set, the pages are kept there as 19-whatif-*.png and 19-burden-*.png."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bidui.clues import actions
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, User
from bidui.clues.states import NOT_TRUE, TRUE_EXEMPT, Finding
from tests.present_support import internal_codes
from tests.test_browser import CHROMIUM, DRIVER, browser, server, shots, sign_in  # noqa: F401

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
PHONE, DESKTOP = (390, 1200), (1280, 1100)


def _verify_some(home, town: str) -> None:
    """A few verifications in the clerk's township, through the real actions: the burden table
    has something to show (属实, 不属实, a rule with none 属实)."""
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        clerk = s.scalar(select(User).where(User.username == "town"))
        rules = [r for r, in s.execute(select(Clue.rule_code).where(Clue.township_code == town).group_by(Clue.rule_code)
                                       .order_by(func.count().desc(), Clue.rule_code).limit(2))]
        first_seen = s.scalar(select(func.min(Clue.first_seen)))
        plan = {rules[0]: [(TRUE_EXEMPT, 2), (TRUE_EXEMPT, 5), (NOT_TRUE, 7)], rules[1]: [(NOT_TRUE, 3), (NOT_TRUE, 4)],
                # The rule the what-if below changes: its past 属实率 shows there.
                "DANGEROUS_HOUSE": [(TRUE_EXEMPT, 3), (NOT_TRUE, 6)]}
        for rule, steps in plan.items():
            ids = s.scalars(select(Clue.id).where(Clue.township_code == town, Clue.rule_code == rule).order_by(Clue.id))
            for cid, (outcome, after) in zip(ids, steps, strict=False):
                actions.verify(s, cid, s.get(Clue, cid).version, clerk, Finding(
                    outcome, None, "入户核实，情况如实记录，附村委会证明。", clerk.real_name, "扶贫专干",
                    min(date.today(), first_seen + timedelta(days=after))))
    ledger.close()


def _snap(driver, folder: Path, name: str, anchor: str) -> None:
    """The page at desktop width and at a phone's, from `anchor` down; in Chinese, no wider
    than the phone."""
    from selenium.webdriver.common.by import By

    for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        driver.set_window_size(*size)
        driver.execute_script("arguments[0].scrollIntoView();", driver.find_element(By.ID, anchor))
        text = driver.find_element(By.TAG_NAME, "body").text
        assert internal_codes(text) == [], (name, internal_codes(text))
        if suffix == "phone":
            assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0] + 10, name
        driver.save_screenshot(str(folder / f"19-{name}-{suffix}.png"))
    driver.set_window_size(*DESKTOP)


def test_whatif_and_burden_pages(server, browser, tmp_path: Path) -> None:  # noqa: F811 - test_browser's fixtures
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, home, town = server
    out = shots(tmp_path)
    _verify_some(home, town)
    browser.set_window_size(*DESKTOP)
    sign_in(browser, base, "pref")
    browser.get(base + "/whatif")
    _snap(browser, out, "whatif-form", "whatif-form")
    browser.find_element(By.NAME, "p_medical_household_threshold").send_keys("5000")
    browser.find_element(By.NAME, "p_dangerous_grades").send_keys("D")
    browser.find_element(By.CSS_SELECTOR, "#whatif-form button[type=submit]").click()
    WebDriverWait(browser, 120).until(lambda d: d.find_elements(By.ID, "whatif-result"))
    assert int(browser.find_element(By.ID, "whatif-added").text) > 0
    assert int(browser.find_element(By.ID, "whatif-removed").text) > 0
    result = browser.find_element(By.ID, "whatif-result").text
    assert "户医疗自付费用门槛" in result and "%" in result  # a past 属实率 of a changed rule
    _snap(browser, out, "whatif-result", "whatif-result")
    browser.get(base + "/dashboard")
    burden = browser.find_element(By.ID, "burden").text
    assert "核查负担" in burden and "1.5" in burden and "—" in burden
    _snap(browser, out, "burden-dashboard", "burden")
