from __future__ import annotations

from pathlib import Path

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
