from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Prefect, before anything imports it: a private home, no analytics, no block registration, and
# time for the ephemeral server to start on a loaded CI machine.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="bidui-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_API_BLOCKS_REGISTER_ON_START", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")

import pytest

from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate


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
