from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Prefect, before anything imports it: a private home, no analytics, no block registration, and
# time for the ephemeral server to start on a loaded CI machine.
# Each pytest-xdist worker gets its own (it inherits the controller's, and two ephemeral servers on
# one Prefect database lock each other out); a process a worker starts, which may import this file
# again, keeps its worker's (it would never remove one of its own).
if not os.environ.get("PREFECT_HOME") or (
        os.environ.get("PYTEST_XDIST_WORKER")
        and os.environ["PREFECT_HOME"] == os.environ.get("BIDUI_TEST_PREFECT_HOME")
        and os.environ.get("BIDUI_TEST_PREFECT_WORKER") != os.environ["PYTEST_XDIST_WORKER"]):
    # (made here, and removed when the run ends: pytest_unconfigure)
    os.environ["PREFECT_HOME"] = os.environ["BIDUI_TEST_PREFECT_HOME"] = tempfile.mkdtemp(prefix="bidui-prefect-")
    os.environ["BIDUI_TEST_PREFECT_WORKER"] = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_API_BLOCKS_REGISTER_ON_START", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")

import pytest

from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate


def pytest_unconfigure(config: pytest.Config) -> None:
    """The private Prefect home made above goes with the test run (each run left one behind); one
    the caller set is left alone."""
    made = os.environ.get("BIDUI_TEST_PREFECT_HOME")
    if made and made == os.environ.get("PREFECT_HOME"):
        shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny prefecture over three nights (skip on night 2, truncation on night 3)."""
    out = tmp_path_factory.mktemp("tiny")
    generate(out, SynthConfig(size="tiny", seed=11, nights=3))
    return out


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's small prefecture, one night: enough rows to see every corruption."""
    out = tmp_path_factory.mktemp("small")
    generate(out, SynthConfig(size="small", seed=7, nights=1))
    return out


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary database and server) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


PASSWORD = "web-pass-123"  # every web test user's


@pytest.fixture(scope="session")
def published_home(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A home with the tiny prefecture's first night published, and one user per role."""
    from sqlalchemy import func, select

    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import Clue
    from bidui.clues.users import add_user
    from bidui.flows import nightly
    from bidui.home import Home

    home = Home(tmp_path_factory.mktemp("webhome"))
    nightly.run_night(home, tiny / "inbox" / "2026-11-20")
    ledger = open_ledger(ledger_url(home.ledger))
    with ledger.write() as s:
        towns = [t for t, in s.execute(select(Clue.township_code).group_by(Clue.township_code)
                                       .order_by(func.count().desc()))]
        town, other = towns[0], next(t for t in towns[1:] if t[:6] == towns[0][:6])
        # Each with the real name and position a signature uses (without them the login asks first).
        for username, display, role, code, real_name, position in (
                ("town", "乡镇甲", "township", town, "王秀兰", "扶贫专干"),
                ("other", "乡镇乙", "township", other, "李建国", "民政助理员"),
                ("county", "县审核", "county", town[:6] + "000000", "赵志刚", "县乡村振兴局审核员"),
                ("pref", "市督导", "prefecture", town[:4] + "00000000", "陈静", "市专班督导"),
                ("admin", "专班", "admin", town[:4] + "00000000", "周明", "数据专班")):
            add_user(s, username, display, role, code, PASSWORD, position).real_name = real_name
    ledger.close()
    return home.root, town, other




@pytest.fixture
def home(published_home, tmp_path: Path):
    """A private copy of the published home (a test may write to its ledger): (Home, town, other)."""
    import shutil

    from bidui.home import Home

    root, town, other = published_home
    copy = tmp_path / "home"
    shutil.copytree(root, copy)
    return Home(copy), town, other


@pytest.fixture
def homes(tmp_path: Path):
    """Two warehouses for the same nights: the first carries and keeps what it can, the second is
    given every row (`carry=False`), the reference."""
    from bidui.connectors import warehouse as wh

    cons = [wh.connect(tmp_path / "kept.duckdb"), wh.connect(tmp_path / "whole.duckdb")]
    yield cons
    for con in cons:
        con.close()
