"""数据质量通报 in headless Chromium (issue 19, part 1): the task force's page over three nights (a
held file on the last), at desktop and phone width, no internal code and nothing wider than the
phone. With BIDUI_SCREENSHOTS set, its PNGs go there (19-quality-<page>-desktop/-phone.png).

.ci/run installs Debian's chromium and chromium-driver; without them this is skipped."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from bidui.flows import nightly
from bidui.home import Home
from bidui.web.app import UVICORN_OPTIONS, create_app
from tests.test_browser import CHROMIUM, DRIVER, _free_port, browser, shoot, shots, sign_in  # noqa: F401

pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
PHONE, DESKTOP = (390, 844), (1280, 1000)


@pytest.fixture
def quality_server(published_home, tiny: Path, tmp_path: Path):
    import uvicorn

    root, _, _ = published_home
    home = Home(tmp_path / "home")
    shutil.copytree(root, home.root)
    for night in ("2026-11-21", "2026-11-22"):
        nightly.run_night(home, tiny / "inbox" / night)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(home), host="127.0.0.1", port=port, log_level="warning",
                                        **UVICORN_OPTIONS))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _shoot(driver, folder: Path, page: str, show=None) -> None:
    shoot(driver, folder / f"19-quality-{page}", show, desktop_too=False)


def test_the_bulletin_page(quality_server, browser, tmp_path: Path) -> None:  # noqa: F811 - test_browser's fixture
    from selenium.webdriver.common.by import By

    folder = shots(tmp_path)
    browser.set_window_size(*DESKTOP)
    sign_in(browser, quality_server, "pref")
    browser.get(quality_server + "/quality")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert f"比对日期 {date(2026, 11, 22)}" in body and "不动产登记（暂缓入库）" in body
    assert len(browser.find_elements(By.CSS_SELECTOR, ".quality-chart svg")) >= 10
    _shoot(browser, folder, "page")
    # A department's details opened, as the task force reads them before writing to it.
    housing = browser.find_elements(By.CSS_SELECTOR, ".quality-dept")[6]
    housing.find_element(By.CSS_SELECTOR, "details summary").click()
    browser.execute_script("arguments[0].scrollIntoView()", housing)
    assert "住建" in housing.text and "证件号码：" in housing.text and "沿用 2026-11-20 的数据" in housing.text
    _shoot(browser, folder, "details", housing)


def test_the_run_list_says_what_changed_in_each_dataset(quality_server, browser, tmp_path: Path) -> None:  # noqa: F811
    """Issue 18, part 5: the administrator's list of runs says, per dataset, the rows new, changed,
    removed and unchanged since its previous snapshot, and which datasets were carried whole."""
    from selenium.webdriver.common.by import By

    folder = shots(tmp_path)
    browser.set_window_size(*DESKTOP)
    sign_in(browser, quality_server, "admin")
    browser.get(quality_server + "/admin#runs")
    runs = browser.find_element(By.ID, "runs")
    latest = runs.find_elements(By.CSS_SELECTOR, "tbody tr")[0]
    cell = latest.find_element(By.CSS_SELECTOR, "td[data-label='数据变化']").text
    assert "户籍人口：新增" in cell and "（与 2026-11-21 的版本相比）" in cell
    # carried whole: sent again unchanged, or not loaded tonight, said apart
    assert "今晚报送的文件与上一版相同：" in cell or "今晚未入库（原因见“未入库”一栏），沿用上一版：" in cell, cell
    first = runs.find_elements(By.CSS_SELECTOR, "tbody tr")[-1].find_element(By.CSS_SELECTOR, "td[data-label='数据变化']")
    assert "首次入库" in first.text
    # and what the rules looked at again, or why all of it (issue 18)
    assert "规则只重新核查了 2026-11-21 以来有变化的" in cell or "规则全部重新计算：" in cell, cell
    assert "规则全部重新计算：此前没有运行过规则" in first.text, first.text
    # The rest of the page lists accounts by their login names: only the runs are checked for codes.
    from tests.present_support import internal_codes

    assert internal_codes(runs.text) == []
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        browser.set_window_size(*size)
        browser.execute_script("arguments[0].scrollIntoView()", runs)
        assert browser.execute_script("return document.documentElement.scrollWidth") <= size[0] + 10
        browser.save_screenshot(str(folder / f"18-changes-admin-runs-{name}.png"))
        said = runs.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(
            By.CSS_SELECTOR, "td[data-label='数据变化'] div")[-1]
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", said)
        browser.save_screenshot(str(folder / f"18-rules-scope-admin-runs-{name}.png"))
