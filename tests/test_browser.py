"""In a real browser (headless Chromium driven by Selenium through chromedriver): township staff
log in, open a household's clue, verify and sign; the county reviewer closes it; the supervisor
dashboard's closure rate moves. A screenshot of every page is taken on the way (kept under
docs/screenshots/ when BIDUI_SCREENSHOTS names that folder).

.ci/run installs Debian's chromium and chromium-driver; without them these tests are skipped."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue
from bidui.home import Home
from bidui.web.app import UVICORN_OPTIONS, create_app
from tests.conftest import PASSWORD

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(published_home, tmp_path: Path):
    import uvicorn

    root, town, _ = published_home
    home = Home(tmp_path / "home")
    shutil.copytree(root, home.root)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(home), host="127.0.0.1", port=port, log_level="warning",
                                        **UVICORN_OPTIONS))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", home, town
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = Path(tempfile.mkdtemp(prefix="bidui-chromium-"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=zh-CN",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    # Chromium keeps its singleton socket in a folder of its own under /tmp, linked from the
    # profile, and leaves it behind when the driver ends it: one folder a test, without this.
    socket_link = profile / "SingletonSocket"
    socket_folder = Path(os.readlink(socket_link)).parent if socket_link.is_symlink() else None
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
        if socket_folder is not None and socket_folder.name.startswith("org.chromium.Chromium."):
            shutil.rmtree(socket_folder, ignore_errors=True)
        shutil.rmtree(profile, ignore_errors=True)


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BIDUI_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(driver, path: Path, show=None, desktop_too: bool = True, phone=(390, 844), desktop=(1280, 1000)) -> None:
    """A page at desktop and phone width (`path` with -desktop.png / -phone.png appended), with no
    internal code in its text and nothing wider than the phone. `show`: the element the pictures
    scroll to (the phone's only unless `desktop_too`: the layout moves when the window narrows)."""
    from selenium.webdriver.common.by import By

    from tests.present_support import internal_codes

    text = driver.find_element(By.TAG_NAME, "body").text
    assert internal_codes(text) == [], (path.name, internal_codes(text))
    if show is not None and desktop_too:
        driver.execute_script("arguments[0].scrollIntoView()", show)
    driver.save_screenshot(f"{path}-desktop.png")
    driver.set_window_size(*phone)
    assert driver.execute_script("return document.documentElement.scrollWidth") <= phone[0] + 10, path.name
    if show is not None:
        driver.execute_script("arguments[0].scrollIntoView()", show)
    driver.save_screenshot(f"{path}-phone.png")
    driver.set_window_size(*desktop)

def wait_for(driver, url_part: str) -> None:
    """Until the form's redirect has landed (a click returns before the next page loads)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: url_part in d.current_url)


def wait_gone(driver, element, seconds: float = 10) -> None:
    """Until a page's element has left the document (the next page has replaced it). selenium's
    `staleness_of` expects "stale element", but chromedriver, asked while the old page is torn
    down, may answer "node does not belong to the document" as an unknown error: gone too."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def left(_driver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    WebDriverWait(driver, seconds).until(left)


def wait_text(driver, element_id: str, text: str, seconds: float = 30) -> None:
    """Until the element with this id holds the text, the page perhaps reloading under the wait: an
    element read while its page is torn down (stale, or chromedriver's "node does not belong to the
    document", as in `wait_gone`) does not hold it yet."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def holds(d) -> bool:
        try:
            return text in d.find_element(By.ID, element_id).text
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return False
            raise

    WebDriverWait(driver, seconds).until(holds)


def sign_in(driver, base: str, username: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)


def sign_out(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, "//header//form//button").click()
    wait_for(driver, "/login")


def test_verify_sign_close_and_the_dashboard_moves(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, home, _ = server
    out = shots(tmp_path)
    browser.get(base + "/login")
    browser.save_screenshot(str(out / "01-login.png"))
    sign_in(browser, base, "town")
    assert browser.current_url.endswith("/inbox")
    assert browser.find_elements(By.CSS_SELECTOR, "table.inbox")
    browser.save_screenshot(str(out / "02-township-inbox.png"))
    # Open the most urgent clue.
    link = browser.find_element(By.CSS_SELECTOR, "table.inbox td a")
    link.click()
    clue_id = int(browser.current_url.rsplit("/", 1)[1])
    browser.save_screenshot(str(out / "03-clue.png"))
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("属实·已整改")
    Select(browser.find_element(By.ID, "action")).select_by_visible_text("数据已更正")
    browser.find_element(By.ID, "finding").send_keys("入户核实，已更正户籍信息")
    assert "王秀兰" in browser.find_element(By.ID, "signer").text  # the stored signature, not typed
    browser.find_element(By.ID, "sign").click()
    WebDriverWait(browser, 10).until(lambda d: not d.current_url.endswith(f"/clues/{clue_id}"))
    assert "已核实并签字" in browser.page_source  # and on to the next clue
    browser.get(f"{base}/clues/{clue_id}")
    assert "已核实待审核" in browser.page_source
    browser.save_screenshot(str(out / "04-clue-verified.png"))
    sign_out(browser)

    sign_in(browser, base, "county")
    assert browser.current_url.endswith("/review")
    browser.get(base + "/dashboard")
    before = browser.find_element(By.ID, "kpi-closure").text
    browser.get(base + "/review")
    browser.save_screenshot(str(out / "05-county-review.png"))
    browser.find_element(By.CSS_SELECTOR, f"input[name=clue][value^='{clue_id}:']").click()
    browser.find_element(By.ID, "close-picked").click()
    # The confirmation lists what will be closed; a double click on it sends it once (app.js): a
    # form sent, not stopped, is counted where the count outlives the page (once the confirmation
    # has loaded: the queue's page may still be the one shown).
    confirm = browser.find_element(By.ID, "confirm-close")
    browser.execute_script("""
        window.addEventListener('submit', function (e) {
          if (!e.defaultPrevented) sessionStorage.setItem('sent', String(+(sessionStorage.getItem('sent') || 0) + 1));
        });""")
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).double_click(confirm).perform()
    WebDriverWait(browser, 10).until(lambda d: "已销号 1 条" in d.page_source)
    assert "没有销号任何线索" not in browser.page_source
    assert browser.execute_script("return sessionStorage.getItem('sent')") == "1"
    browser.get(base + "/dashboard")
    after = browser.find_element(By.ID, "kpi-closure").text
    browser.save_screenshot(str(out / "06-dashboard.png"))
    assert float(after.rstrip("%")) > float(before.rstrip("%"))
    sign_out(browser)

    sign_in(browser, base, "admin")
    browser.save_screenshot(str(out / "07-admin.png"))
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.read() as s:
        assert s.get(Clue, clue_id).status == "closed"
        assert s.scalar(select(Clue.verifier_name).where(Clue.id == clue_id)) == "王秀兰"
    ledger.close()


def test_the_inbox_works_on_a_phone(server, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    base, _, _ = server
    browser.set_window_size(390, 844)
    sign_in(browser, base, "town")
    table = browser.find_element(By.CSS_SELECTOR, "table.responsive")
    # The table folds into cards: nothing wider than the screen.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 400
    assert table.find_element(By.CSS_SELECTOR, "td[data-label]").is_displayed()
    browser.save_screenshot(str(shots(tmp_path) / "08-township-inbox-phone.png"))


def test_signing_with_a_file_chosen_but_not_uploaded_asks_first(server, browser, tmp_path: Path) -> None:
    """A clerk picked a photo, did not press 上传 and signed: the clue was saved and the photo lost
    without a word (a browser walk, 2026-12-06). Signing now asks; 取消 keeps the page as it was."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, home, _ = server
    photo = tmp_path / "入户照片.png"
    photo.write_bytes(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="))
    sign_in(browser, base, "town")
    browser.find_element(By.CSS_SELECTOR, "table.inbox td a").click()
    clue_id = int(browser.current_url.rsplit("/", 1)[1])
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("不属实")
    browser.find_element(By.ID, "finding").send_keys("入户核实，车辆已过户")
    browser.find_element(By.ID, "att-files").send_keys(str(photo))
    browser.find_element(By.ID, "sign").click()
    alert = WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert)
    assert "还没有点“上传”" in alert.text and "附件不会保存" in alert.text
    alert.dismiss()
    assert browser.current_url.endswith(f"/clues/{clue_id}")
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.read() as s:
            assert s.get(Clue, clue_id).status == "dispatched"  # nothing signed
        browser.find_element(By.ID, "att-upload").click()  # uploaded first, then signed: no question
        # (the page reloads after the upload: an element found before it goes stale, so wait past that)
        WebDriverWait(browser, 10, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: "入户照片.png" in d.find_element(By.ID, "attachments").text)
        # what was typed before the upload is still there after its reload (app.js keeps it)
        assert browser.find_element(By.ID, "finding").get_attribute("value") == "入户核实，车辆已过户"
        assert Select(browser.find_element(By.ID, "outcome")).first_selected_option.text == "不属实"
        browser.find_element(By.ID, "sign").click()
        # (the upload left the page at /clues/<id>#attachments: wait for the signing's own answer)
        WebDriverWait(browser, 10).until(lambda d: "已核实并签字" in d.page_source)
        with ledger.read() as s:
            assert s.get(Clue, clue_id).status == "verified"
    finally:
        ledger.close()


def test_a_finding_typed_when_the_session_ended_is_there_after_signing_in_again(server, browser, tmp_path: Path) -> None:
    """A clerk wrote up a visit, the session had ended meanwhile (here: revoked, as an idle limit or
    a sign-out in another window ends it), and 确认核实并签字 led to a bare login page, then the inbox,
    the text lost (a township clerk's walk, 2026-12-06). The login now says why and leads back to
    the clue, whose form has what was typed; nothing was signed until the clerk signs again."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
    from sqlalchemy import update

    from bidui.clues.models import WebSession
    from bidui.web.security import ENDED

    base, home, _ = server
    sign_in(browser, base, "town")
    browser.find_element(By.CSS_SELECTOR, "table.inbox td a").click()
    clue_id = int(browser.current_url.rsplit("/", 1)[1])
    Select(browser.find_element(By.ID, "outcome")).select_by_visible_text("不属实")
    # the measure belongs to 属实·已整改: hidden with another outcome, not dropped unseen when signed
    assert not browser.find_element(By.ID, "action").is_displayed()
    browser.find_element(By.ID, "finding").send_keys("入户核实，车辆已于去年过户给他人")
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.write() as s:
            s.execute(update(WebSession).values(revoked_at=WebSession.created_at, revoked_why="test"))
        browser.find_element(By.ID, "sign").click()
        wait_for(browser, "/login")
        assert ENDED in browser.find_element(By.TAG_NAME, "body").text
        shoot(browser, shots(tmp_path) / "20-login-after-session-ended")
        sign_in(browser, base, "town")
        wait_for(browser, f"/clues/{clue_id}")
        restored = browser.find_element(By.ID, "draft-restored")
        assert "还没有签字" in restored.text
        assert browser.find_element(By.ID, "finding").get_attribute("value") == "入户核实，车辆已于去年过户给他人"
        assert Select(browser.find_element(By.ID, "outcome")).first_selected_option.text == "不属实"
        shoot(browser, shots(tmp_path) / "21-clue-draft-restored", show=restored)
        with ledger.read() as s:
            assert s.get(Clue, clue_id).status == "dispatched"  # nothing signed meanwhile
        browser.find_element(By.ID, "sign").click()
        WebDriverWait(browser, 10).until(lambda d: "已核实并签字" in d.page_source)
        with ledger.read() as s:
            assert s.get(Clue, clue_id).finding == "入户核实，车辆已于去年过户给他人"
        browser.get(f"{base}/clues/{clue_id}")  # signed: its draft is not offered again
        assert not browser.find_elements(By.ID, "draft-restored")
    finally:
        ledger.close()
