"""迎检抽样 and 一户一档 in headless Chromium (issue 19): the county's sample page, its print, and a
household's file with a signed clue and a photo, at desktop and phone width; no internal code, nothing
wider than the phone. With BIDUI_SCREENSHOTS set, the PNGs go there as 19-inspection-<page>-….png."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bidui.clues import attachments as store
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, RegisterHousehold, User
from bidui.config import attachment_settings
from tests.present_support import internal_codes
from tests.test_browser import CHROMIUM, DRIVER, browser, server, sign_in, sign_out  # noqa: F401
from tests.test_web_work import sign

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
PHONE, DESKTOP = (390, 844), (1280, 1000)


def _photograph(driver, folder: Path | None, page: str) -> None:
    text = driver.find_element("tag name", "body").text
    assert internal_codes(text) == [], (page, internal_codes(text)[:5])
    if folder:
        driver.save_screenshot(str(folder / f"19-inspection-{page}-desktop.png"))
    driver.set_window_size(*PHONE)
    assert driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0] + 10, page
    if folder:
        driver.save_screenshot(str(folder / f"19-inspection-{page}-phone.png"))
    driver.set_window_size(*DESKTOP)


def _prepare(home, town: str) -> str:
    """A household of the township with the most clues: one clue signed, a photo kept with it."""
    from PIL import Image

    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        code = s.scalar(select(Clue.household_code).join(
            RegisterHousehold, RegisterHousehold.household_code == Clue.household_code)
            .where(Clue.township_code == town).group_by(Clue.household_code)
            .order_by(func.count().desc(), Clue.household_code).limit(1))
        first = s.scalar(select(Clue.id).where(Clue.household_code == code).order_by(Clue.id))
    ledger.close()
    sign(home, first, finding="入户核实，车辆已过户，已清退")
    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (180, 150, 110)).save(picture, "JPEG")
    settings = attachment_settings(home.config)
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        user = s.scalar(select(User).where(User.username == "town"))
        store.add(s, home, first, user, [store.prepare("入户照片.jpg", picture.getvalue(), settings)], settings)
    ledger.close()
    return code


def test_the_sample_and_a_household_file_on_desktop_and_phone(server, browser) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    base, home, town = server
    folder = Path(os.environ["BIDUI_SCREENSHOTS"]) if os.environ.get("BIDUI_SCREENSHOTS") else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    code = _prepare(home, town)
    browser.set_window_size(*DESKTOP)
    sign_in(browser, base, "county")
    browser.get(base + "/inspection?seed=3")
    assert browser.find_elements(By.CSS_SELECTOR, "table.insp-households")
    assert "户均未办结" in browser.find_element(By.CSS_SELECTOR, ".insp-measure").text
    _photograph(browser, folder, "sample")
    browser.get(base + "/inspection/print?seed=3&county=" + town[:6] + "000000")
    _photograph(browser, folder, "sample-print")
    browser.get(base + "/inspection")  # the printed page has no header to sign out from
    sign_out(browser)
    sign_in(browser, base, "town")
    browser.get(f"{base}/households/{code}/print")
    assert "王秀兰（扶贫专干）" in browser.page_source
    img = browser.find_element(By.CSS_SELECTOR, "ul.hh-thumbs img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
    _photograph(browser, folder, "household")
