"""A date typed wrong on the command line is named with its option and exits 1 (bad input), never a traceback
(one parser for every command: `bidui.clitools.cli_date`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.home import Home


@pytest.mark.parametrize("args", [
    ["report", "--today", "2026-13-01"],
    ["loads", "--date", "11/21/2026"],
    ["links", "export", "--date", "2026-11-31", "--out", "links.csv"],
    ["run", "--plain", "--date", "tomorrow"],
])
def test_a_bad_date_is_a_clear_error(tmp_path: Path, args: list[str]) -> None:
    folder = tmp_path / "inbox" / "2026-11-20"
    folder.mkdir(parents=True)
    if args[0] == "run":
        args = ["run", str(folder), *args[1:]]
    home = Home(tmp_path / "home").ensure()
    home.config.write_text("")  # a home bidui has worked in
    res = CliRunner().invoke(cli_app, ["--home", str(home.root), *args])
    assert res.exit_code == 1, res.output
    assert "YYYY-MM-DD" in res.output and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize(("args", "suffix"), [
    (["clues", "export", "--out", "clues.txt"], ".csv or .xlsx"),
    (["quality", "report", "--date", "2026-11-20", "--out", "quality.csv"], ".xlsx"),
])
def test_a_file_named_for_another_kind_is_refused(tmp_path: Path, args: list[str], suffix: str) -> None:
    """An Excel workbook is not written under x.csv, nor CSV under x.txt: the operator would open it wrong."""
    home = Home(tmp_path / "home").ensure()
    home.config.write_text("")
    args = [str(tmp_path / a) if a.endswith((".txt", ".csv")) else a for a in args]
    res = CliRunner().invoke(cli_app, ["--home", str(home.root), *args])
    assert res.exit_code == 1 and suffix in res.output and "--out" in res.output, res.output
    assert not any(tmp_path.glob("*.txt")) and not any(tmp_path.glob("*.csv"))
