"""A date typed wrong on the command line is named with its option and exits 2, never a traceback
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
    assert res.exit_code == 2, res.output
    assert "YYYY-MM-DD" in res.output and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
