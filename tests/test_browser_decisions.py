"""不是本人 in headless Chromium (issue 18, part 3): the clue page offers the reason once 不属实 is
chosen, says after signing that the record will no longer be linked to the person, and the task
force's list shows the decision — at desktop and phone width, no internal code, nothing wider
than the phone. With BIDUI_SCREENSHOTS set, its PNGs go there (18-decisions-<page>-desktop/-phone.png).

.ci/run installs Debian's chromium and chromium-driver; without them this is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_browser import (  # noqa: F401
    CHROMIUM,
    DRIVER,
    browser,
    server,
    shoot,
    shots,
    sign_in,
    sign_out,
    wait_for,
    wait_gone,
)
from tests.test_link_decisions_web import pick

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
PHONE, DESKTOP = (390, 844), (1280, 1000)


def _shoot(driver, folder: Path, page: str, show=None) -> None:
    shoot(driver, folder / f"18-decisions-{page}", show, desktop_too=True)


def test_not_self_on_the_clue_page_and_the_task_forces_list(server, browser, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, home, town = server
    linked, _ = pick(home, town)
    folder = shots(tmp_path)
    browser.set_window_size(*DESKTOP)
    sign_in(browser, base, "town")
    browser.get(f"{base}/clues/{linked}")
    box = browser.find_element(By.CSS_SELECTOR, ".not-self")
    assert not box.is_displayed()  # offered with 不属实 only
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("不属实")
    assert box.is_displayed() and "记录不是本人" in box.text
    browser.find_element(By.ID, "detail").click()
    browser.find_element(By.ID, "finding").send_keys("入户核实：车辆登记在同名的另一人名下，不是本人")
    _shoot(browser, folder, "clue-form", browser.find_element(By.ID, "verify-form"))
    page = browser.find_element(By.TAG_NAME, "main")
    browser.find_element(By.ID, "sign").click()
    # The signed page has the clue's URL too: wait for the form's page to go, not for a URL.
    wait_gone(browser, page)
    wait_for(browser, "/clues/")
    assert "不再把这条记录关联到本人" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(f"{base}/clues/{linked}")
    decisions = browser.find_element(By.ID, "decisions")
    assert "不再把它关联到本人" in decisions.text
    _shoot(browser, folder, "clue-signed", browser.find_element(By.XPATH, "//h2[text()='核实结论']"))
    sign_out(browser)
    sign_in(browser, base, "pref")
    browser.get(f"{base}/admin/link-decisions")
    table = browser.find_element(By.ID, "decisions")
    assert "不是本人（不再关联）" in table.text and f"线索 {linked}" in table.text
    _shoot(browser, folder, "list")
    sign_out(browser)
    sign_in(browser, base, "county")  # the county reads the reason in its review queue
    browser.get(f"{base}/review")
    assert "不属实（不是本人）" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.LINK_TEXT, "记录关联决定").get_attribute("href").endswith("/admin/link-decisions")
    _shoot(browser, folder, "review", browser.find_element(By.XPATH, "//*[contains(text(), '不属实（不是本人）')]"))
