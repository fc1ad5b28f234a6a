"""Configuration: packaged defaults (bidui/defaults.toml) overridden by <home>/bidui.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class AttachmentSettings:
    """Limits on photos and PDFs of verifications ([attachments]) and the rules whose verification
    must carry one ([rules.attachments] required: none by default — 基层减负)."""

    max_file_bytes: int
    max_files: int  # per verification round (a return starts a new round)
    max_pixels: int  # a decoded image larger than this is refused (decompression bombs)
    required_rules: frozenset[str]

    @property
    def max_file_mb(self) -> int:
        return self.max_file_bytes // (1024 * 1024)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> AttachmentSettings:
        section = cfg.get("attachments", {})
        required = cfg.get("rules", {}).get("attachments", {}).get("required", [])
        values = {key: section.get(key) for key in ("max_file_mb", "max_files", "max_pixels")}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"[attachments] {key} must be a positive whole number, not {value!r}")
        if not isinstance(required, list) or not all(isinstance(code, str) for code in required):
            raise ValueError(f"[rules.attachments] required must be a list of rule codes, not {required!r}")
        return cls(values["max_file_mb"] * 1024 * 1024, values["max_files"], values["max_pixels"],
                   frozenset(required))


def attachment_settings(home_config: Path | None) -> AttachmentSettings:
    return AttachmentSettings.from_config(load(home_config))
