"""Configuration: packaged defaults (bidui/defaults.toml) overridden by <home>/bidui.toml."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load(home_config: Path | None) -> dict[str, Any]:
    defaults = tomllib.loads(resources.files("bidui").joinpath("defaults.toml").read_text(encoding="utf-8"))
    if home_config is not None and home_config.exists():
        try:
            local = tomllib.loads(home_config.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{home_config}: not valid TOML: {e}") from e
        return _merge(defaults, local)
    return defaults
