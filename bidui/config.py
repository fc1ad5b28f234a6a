"""Configuration: packaged defaults (bidui/defaults.toml) overridden by <home>/bidui.toml."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
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


@dataclass(frozen=True)
class UploadSettings:
    """Limits on every file a user sends ([uploads]; bidui.uploads applies them): the workbook's
    size as sent, what its zip may expand to, its rows, the problems listed, and the worker
    process that reads it (its memory, its time, how many at once)."""

    max_workbook_bytes: int
    max_expanded_bytes: int  # all members of a workbook's zip together, as actually expanded
    max_ratio: int  # expanded ÷ compressed, per member
    max_members: int
    max_rows: int
    max_problems: int  # listed on the refusal page; the rest are counted
    worker_memory_bytes: int
    worker_seconds: int
    workers: int  # uploads read at once; more wait their turn

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> UploadSettings:
        section = cfg.get("uploads", {})
        keys = ("max_workbook_mb", "max_expanded_mb", "max_ratio", "max_members", "max_rows", "max_problems",
                "worker_memory_mb", "worker_seconds", "workers")
        values = {key: section.get(key) for key in keys}
        for key, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"[uploads] {key} must be a positive whole number, not {value!r}")
        mb = 1024 * 1024
        return cls(values["max_workbook_mb"] * mb, values["max_expanded_mb"] * mb, values["max_ratio"],
                   values["max_members"], values["max_rows"], values["max_problems"], values["worker_memory_mb"] * mb,
                   values["worker_seconds"], values["workers"])


def upload_settings(home_config: Path | None) -> UploadSettings:
    return UploadSettings.from_config(load(home_config))


@dataclass(frozen=True)
class WebSettings:
    """The web app's sessions and where a client's address comes from ([web])."""

    session_idle_seconds: int
    session_max_seconds: int
    trusted_proxy_header: str  # "" : the socket's address, whatever the headers say
    trusted_proxies: tuple[str, ...]  # addresses or networks (CIDR) whose header is believed

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> WebSettings:
        section = cfg.get("web", {})
        hours = {key: section.get(key) for key in ("session_idle_hours", "session_max_hours")}
        for key, value in hours.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"[web] {key} must be a positive number of hours, not {value!r}")
        header, proxies = section.get("trusted_proxy_header", ""), section.get("trusted_proxies", [])
        if not isinstance(header, str):
            raise ValueError(f"[web] trusted_proxy_header must be a header name or \"\", not {header!r}")
        if not isinstance(proxies, list) or not all(isinstance(p, str) for p in proxies):
            raise ValueError(f"[web] trusted_proxies must be a list of addresses, not {proxies!r}")
        import ipaddress

        for p in proxies:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError as e:
                raise ValueError(f"[web] trusted_proxies: {p!r} is not an address or network") from e
        return cls(int(hours["session_idle_hours"] * 3600), int(hours["session_max_hours"] * 3600), header.strip(),
                   tuple(proxies))


def web_settings(home_config: Path | None) -> WebSettings:
    return WebSettings.from_config(load(home_config))


# ---------------------------------------------------------------- switching a rule (admin page)

_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_DISABLED = re.compile(r"^(\s*)disabled\s*=\s*\[[^\]]*\]", re.MULTILINE)


def _render_list(codes: list[str]) -> str:
    return "[" + ", ".join(f'"{c}"' for c in codes) + "]"


def set_rule_enabled(home_config: Path, code: str, enabled: bool) -> list[str]:
    """Switch a rule on or off in <home>/bidui.toml (`[rules] disabled`), keeping the rest of the
    file as it is — comments included — and writing it atomically (a crash leaves the old file
    or the new one, never half of one). Returns the rules now disabled."""
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", code):
        raise ValueError(f"not a rule code: {code!r}")
    text = home_config.read_text(encoding="utf-8") if home_config.exists() else ""
    current = tomllib.loads(text).get("rules", {}).get("disabled", []) if text else []
    wanted = sorted({*current, code} - ({code} if enabled else set()))
    lines = text.splitlines(keepends=True)
    # The [rules] table's lines: from its header to the next table's.
    start = end = None
    for i, line in enumerate(lines):
        m = _TABLE_HEADER.match(line)
        if m and start is None and m.group(1) == "rules":
            start = i
        elif m and start is not None:
            end = i
            break
    if start is None:
        new = text + ("" if not text or text.endswith("\n") else "\n") + f"\n[rules]\ndisabled = {_render_list(wanted)}\n"
    else:
        end = len(lines) if end is None else end
        body = "".join(lines[start + 1:end])
        if _DISABLED.search(body):
            body = _DISABLED.sub(lambda m: f"{m.group(1)}disabled = {_render_list(wanted)}", body, count=1)
        else:
            body = f"disabled = {_render_list(wanted)}\n" + body
        new = "".join(lines[:start + 1]) + body + "".join(lines[end:])
    try:
        check = tomllib.loads(new)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{home_config}: could not be changed safely: {e}") from e
    if sorted(check.get("rules", {}).get("disabled", [])) != wanted:
        raise ValueError(f"{home_config}: [rules] disabled is written in a form this switch does not edit")
    _write_atomically(home_config, new)
    return wanted


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
