"""A week of the real users in headless Chromium (issue 16): the township clerk opens a clue of
each of the 19 rules and finds what it means and the evidence the rule used; attaches a photo and
signs; the county returns one with a reason; the clerk sees it first and answers with a PDF; the
county closes both; the supervisor's figures and chart move; the admin unlocks the locked clerk
and disables a user. Every page is photographed at desktop and phone width (into
docs/screenshots when BIDUI_SCREENSHOTS names it: `make screenshots`), and no page shows an
internal code.

.ci/run installs Debian's chromium and chromium-driver; without them this is skipped."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Attachment, Clue, User
from bidui.rules.engine import load_rules
from tests.conftest import PASSWORD
from tests.present_support import internal_codes
from tests.test_browser import (  # noqa: F401
    CHROMIUM,
    DRIVER,
    browser,
    server,
    shots,
    sign_in,
    sign_out,
    wait_for,
    wait_gone,
    wait_text,
)

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
PHONE, DESKTOP = (390, 844), (1280, 1000)
# What each rule's evidence must show a clerk: the fields the rule used (bidui/sql/rules/*.sql).
USED = {
    "BUSINESS": "注册资本", "DANGEROUS_HOUSE": "鉴定等级", "DECEASED": "人员状态", "DROPOUT": "学籍状态",
    "DUPLICATE_MEMBER": "其他户", "HIGH_FEE_SCHOOL": "年学费", "HIGH_MEDICAL_COST": "结算明细",
    "HOUSEHOLD_SPLIT": "变动类型", "ID_INVALID": "证件号码问题", "MISSED_DANGEROUS_HOUSE": "鉴定等级",
    "MISSED_MEDICAL": "统计期间", "MOVED_OUT": "人员状态", "NAME_MISMATCH": "姓名", "NONAGRI_HUKOU": "变动类型",
    "NOT_IN_HUKOU": "没有找到此人", "PUBLIC_PAYROLL": "编制类型", "UNINSURED": "参保", "URBAN_PROPERTY": "建筑面积",
    "VEHICLE": "车辆类型",
}


def _photo(path: Path) -> Path:
    """A JPEG as a phone takes it: with GPS in its EXIF."""
    from PIL import Image

    img = Image.new("RGB", (640, 480), (180, 150, 110))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = (25.0, 3.0, 0.0)  # GPS latitude
    img.save(path, "JPEG", exif=exif.tobytes())
    return path


def _pdf(path: Path) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(buf, "PDF")
    path.write_bytes(buf.getvalue())
    return path


class Camera:
    """Each page at desktop and at phone width, numbered in the order of the week."""

    def __init__(self, driver, folder: Path) -> None:
        self.driver, self.folder, self.n = driver, folder, 0

    def __call__(self, name: str) -> None:
        self.n += 1
        stem = f"{self.n:02d}-{name}"
        self.driver.save_screenshot(str(self.folder / f"{stem}.png"))
        self.driver.set_window_size(*PHONE)
        # Nothing wider than a phone's screen.
        assert self.driver.execute_script("return document.documentElement.scrollWidth") <= PHONE[0] + 10, name
        self.driver.save_screenshot(str(self.folder / f"{stem}-phone.png"))
        self.driver.set_window_size(*DESKTOP)


def _no_codes(driver, where: str, data: tuple[str, ...] = ()) -> None:
    """`data`: words that are data on this page (login names an admin manages, the config's file name)."""
    text = driver.find_element("tag name", "body").text
    for word in data:
        text = text.replace(word, "")
    assert internal_codes(text) == [], (where, internal_codes(text))


def _wrong_password(driver, base: str, username: str, password: str = "not-the-password") -> str:
    from selenium.webdriver.common.by import By
    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    button = driver.find_element(By.ID, "login")
    button.click()
    wait_gone(driver, button, 30)  # the answer, not the form sent
    return driver.find_element(By.TAG_NAME, "body").text


def test_a_week_of_every_role(server, browser, tmp_path: Path) -> None:  # noqa: F811 - the fixtures of test_browser
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, home, town = server
    snap = Camera(browser, shots(tmp_path))
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        per_rule = {}
        for c in s.scalars(select(Clue).where(Clue.township_code == town, Clue.status == "dispatched").order_by(Clue.id)):
            per_rule.setdefault(c.rule_code, c.id)
    assert set(per_rule) == {r.code for r in load_rules()[0]}, "the township has a clue of every rule"

    # Monday: the supervisor looks before the week starts.
    browser.get(base + "/login")
    snap("login")
    sign_in(browser, base, "pref")
    closed_before = int(browser.find_element(By.ID, "kpi-closed").text)
    sign_out(browser)

    # The clerk reads a clue of every rule: what it means, what to check, the evidence it used.
    sign_in(browser, base, "town")
    assert browser.current_url.endswith("/inbox")
    snap("township-inbox")
    _no_codes(browser, "inbox")
    for rule, clue_id in sorted(per_rule.items()):
        browser.get(f"{base}/clues/{clue_id}")
        guide = browser.find_element(By.ID, "guide").text
        assert "规则含义" in guide and "入户核实要点" in guide and "不属实" in guide, rule
        assert USED[rule] in browser.find_element(By.ID, "evidence").text, rule
        _no_codes(browser, rule)
    browser.get(f"{base}/clues/{per_rule['VEHICLE']}")
    snap("clue")

    # Tuesday: a photo of the household's situation, then the signature.
    first, second = per_rule["VEHICLE"], per_rule["DROPOUT"]
    browser.find_element(By.ID, "att-files").send_keys(str(_photo(tmp_path / "现场照片.jpg")))
    browser.find_element(By.ID, "att-upload").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#attachments img"))
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("属实·已整改")
    Select(browser.find_element(By.ID, "action")).select_by_visible_text("清退出列")
    browser.find_element(By.ID, "finding").send_keys("入户核实：家中确有小型货车一辆，已按程序清退")
    assert "王秀兰" in browser.find_element(By.ID, "signer").text
    snap("clue-sign")
    browser.find_element(By.ID, "sign").click()
    WebDriverWait(browser, 30).until(lambda d: "已核实并签字" in d.page_source)
    browser.get(f"{base}/clues/{second}")
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("不属实")
    browser.find_element(By.ID, "finding").send_keys("孩子在邻县寄宿学校就读，学校已出具在读证明")
    browser.find_element(By.ID, "sign").click()
    WebDriverWait(browser, 30).until(lambda d: "已核实并签字" in d.page_source)
    browser.get(f"{base}/clues/{first}/print")
    assert browser.find_elements(By.ID, "signature-block") and not browser.find_elements(By.TAG_NAME, "nav")
    snap("clue-print")
    browser.get(f"{base}/clues/{first}")
    browser.find_element(By.ID, "print-household").click()
    assert browser.find_elements(By.ID, "signature-block") and "户疑点线索核实档案" in browser.page_source
    snap("household-print")
    browser.get(base + "/inbox")
    sign_out(browser)

    # Wednesday: the county sees the photo, returns the dropout clue for proof.
    sign_in(browser, base, "county")
    assert browser.current_url.endswith("/review")
    snap("county-review")
    _no_codes(browser, "review")
    browser.get(f"{base}/clues/{first}")
    assert browser.find_elements(By.CSS_SELECTOR, "#attachments img")
    browser.get(f"{base}/clues/{second}")
    browser.find_element(By.ID, "reason").send_keys("请补充学校出具的在读证明")
    browser.find_element(By.ID, "return").click()
    WebDriverWait(browser, 30).until(lambda d: "已退回" in d.page_source)
    sign_out(browser)

    # Thursday: the returned clue comes first, with its reason; the clerk answers with a PDF.
    sign_in(browser, base, "town")
    top = browser.find_element(By.CSS_SELECTOR, "table.inbox tbody tr")
    assert "已退回" in top.text and "请补充学校出具的在读证明" in top.text
    snap("township-inbox-returned")
    top.find_element(By.CSS_SELECTOR, "a").click()
    wait_for(browser, f"/clues/{second}")
    browser.find_element(By.ID, "att-files").send_keys(str(_pdf(tmp_path / "在读证明.pdf")))
    browser.find_element(By.ID, "att-upload").click()
    wait_text(browser, "attachments", "在读证明")  # the page reloads under it
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("不属实")
    browser.find_element(By.ID, "finding").send_keys("已补充学校在读证明（见附件）")
    browser.find_element(By.ID, "sign").click()
    WebDriverWait(browser, 30).until(lambda d: "已核实并签字" in d.page_source)
    sign_out(browser)

    # Friday: the county closes both, after confirming what it closes.
    sign_in(browser, base, "county")
    for clue_id in (first, second):
        browser.find_element(By.CSS_SELECTOR, f"input[name=clue][value^='{clue_id}:']").click()
    browser.find_element(By.ID, "close-picked").click()
    snap("county-confirm-close")
    browser.find_element(By.ID, "confirm-close").click()
    WebDriverWait(browser, 30).until(lambda d: "已销号 2 条" in d.page_source)
    sign_out(browser)

    # The supervisor's figures and chart move.
    sign_in(browser, base, "pref")
    assert int(browser.find_element(By.ID, "kpi-closed").text) == closed_before + 2
    chart = browser.find_element(By.CSS_SELECTOR, "#trend svg")
    assert "整改销号率" in chart.get_attribute("innerHTML") and "今天" in chart.get_attribute("innerHTML")
    snap("dashboard")
    _no_codes(browser, "dashboard")
    sign_out(browser)

    # A clerk locks herself out; the admin unlocks her and disables a user who left.
    for _ in range(5):
        message = _wrong_password(browser, base, "town")
    assert "锁定" in message
    sign_in(browser, base, "admin")
    snap("admin")
    _no_codes(browser, "admin", ("bidui.toml", "admin", "county", "pref", "other", "town"))
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#users tr") if "王秀兰" in r.text)
    row.find_element(By.XPATH, ".//button[contains(., '解除锁定')]").click()
    WebDriverWait(browser, 30).until(lambda d: "已解除锁定" in d.page_source)
    browser.get(base + "/admin/users/other")
    snap("admin-user")
    browser.find_element(By.XPATH, "//button[contains(., '停用')]").click()
    snap("admin-confirm")
    browser.find_element(By.XPATH, "//button[contains(., '确认')]").click()
    WebDriverWait(browser, 30).until(lambda d: "已停用" in d.page_source)
    sign_out(browser)
    sign_in(browser, base, "town")  # unlocked: in at once
    assert browser.current_url.endswith("/inbox")
    sign_out(browser)
    refused = _wrong_password(browser, base, "other", PASSWORD)  # the right password: disabled, no way in
    assert "/login" in browser.current_url and "用户名或密码错误" in refused

    with ledger.read() as s:
        assert [s.get(Clue, i).status for i in (first, second)] == ["closed", "closed"]
        kinds = {a.clue_id: a.media_type for a in s.scalars(select(Attachment))}
        assert kinds == {first: "image/jpeg", second: "application/pdf"}
        assert s.scalar(select(User.active).where(User.username == "other")) is False
        assert s.scalar(select(Clue.verifier_name).where(Clue.id == first)) == "王秀兰"
    ledger.close()
    assert not re.search(r"\d{17}[\dX]", browser.current_url)
