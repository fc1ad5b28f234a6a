"""A task force's own rule (<home>/rules/<CODE>.sql): the README's example works copied literally,
and a header bidui cannot read is refused in one line naming the file, the line and the value —
by `rules list` and every command that loads the rules, `bidui run` before it starts — never a
traceback, and never a rule that runs on nothing (or not at all) and says so only in a report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bidui import config
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.errors import BadInput
from bidui.home import Home
from bidui.matching.link import link_night
from bidui.rules.engine import RuleError, load_rules, run_rules

ROOT = Path(__file__).resolve().parents[1]
NIGHT = "2026-11-20"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_rule() -> str:
    """The SQL block of README's "Adding or changing a rule", as a reader copies it."""
    section = README.split("## Adding or changing a rule", 1)[1]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


def bidui(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bidui.cli", "--home", str(home), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env=os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"})


def rule_home(tmp_path: Path, text: str, name: str = "LARGE_HOUSE.sql") -> Home:
    home = Home(tmp_path / "home").ensure()
    home.config.write_text("[rules.parameters]\nlarge_house_area = 150\n", encoding="utf-8")
    (home.root / "rules").mkdir()
    (home.root / "rules" / name).write_text(text, encoding="utf-8")
    return home


def test_the_readmes_rule_runs_when_copied_literally(tiny: Path, tmp_path: Path) -> None:
    home = rule_home(tmp_path, readme_rule())
    (rule,) = [r for r in load_rules(home.root / "rules")[0] if r.code == "LARGE_HOUSE"]
    assert (rule.category, rule.inputs, rule.parameters) == ("mis_inclusion", ["register_members", "property"],
                                                             ["large_house_area"])
    con = wh.connect(home.warehouse)
    day = date.fromisoformat(NIGHT)
    ingest_night(con, tiny / "inbox" / NIGHT, day)
    link_night(con, day)
    result = run_rules(con, day, config.load(home.config), home.root / "rules", only=["LARGE_HOUSE"])
    con.close()
    assert [(o.status, o.message) for o in result.outcomes] == [("ran", "")]
    assert result.outcomes[0].hits > 0  # the tiny prefecture has houses of 150 m² and more


HEADER = ("-- code: LARGE_HOUSE\n-- title: 家庭成员拥有大面积房产\n-- category: mis_inclusion\n"
          "-- inputs: register_members, property\n-- parameters: large_house_area\n")
BODY = "SELECT * FROM subjects WHERE $large_house_area > 0\n"


@pytest.mark.parametrize(("replace", "line", "value"), [
    # The README's example as it was: a note after each value.
    (("-- category: mis_inclusion", "-- category: mis_inclusion   (mis_inclusion | natural_change)"), 3,
     "(mis_inclusion | natural_change)"),
    (("-- inputs: register_members, property", "-- inputs: register_members, property   (skipped, and said so, "
      "when one has no snapshot)"), 4, "property   (skipped"),
    (("-- parameters: large_house_area", "-- parameters: large_house_area   (from [rules.parameters] in "
      "bidui.toml, used as $large_house_area)"), 5, "(from [rules.parameters]"),
    (("-- inputs: register_members, property", "-- inputs: register_members, houses"), 4, "'houses'"),
    (("-- inputs: register_members, property", "-- inputs: 不动产登记"), 4, "'不动产登记'"),
    (("-- inputs: register_members, property", "-- inputs:"), 4, "names no dataset"),
    (("-- parameters: large_house_area", "-- parameters: large-house-area"), 5, "'large-house-area'"),
    (("-- parameters: large_house_area", "-- parameters: large_house_area area"), 5, "'large_house_area area'"),
])
def test_a_header_bidui_would_misread_is_refused_naming_file_line_and_value(
        tmp_path: Path, replace: tuple[str, str], line: int, value: str) -> None:
    home = rule_home(tmp_path, HEADER.replace(*replace) + BODY)
    with pytest.raises(RuleError) as refused:
        load_rules(home.root / "rules")
    said = str(refused.value)
    assert said.startswith(f"{home.root / 'rules' / 'LARGE_HOUSE.sql'}: line {line}: ") and value in said, said
    assert "\n" not in said
    assert isinstance(refused.value, BadInput)  # bidui.errors prints it as one line, exit 1


def test_a_shared_view_files_parameters_are_checked_too(tmp_path: Path) -> None:
    home = rule_home(tmp_path, "-- parameters: large_house_area (square metres)\nCREATE TEMP TABLE big AS "
                               "SELECT 1;\n", name="_big.sql")
    with pytest.raises(RuleError, match=r"_big\.sql: line 1: parameters: 'large_house_area \(square metres\)'"):
        load_rules(home.root / "rules")


def test_a_rule_file_not_in_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    home = rule_home(tmp_path, "")
    (home.root / "rules" / "LARGE_HOUSE.sql").write_bytes((HEADER + BODY).encode("gbk"))
    with pytest.raises(RuleError, match=r"LARGE_HOUSE\.sql: not UTF-8"):
        load_rules(home.root / "rules")


def test_every_packaged_rule_passes_the_header_checks() -> None:
    rules, shared = load_rules(None)
    assert len(rules) > 10 and shared


def test_rules_list_says_a_broken_home_rule_in_one_line(tmp_path: Path) -> None:
    home = rule_home(tmp_path, HEADER.replace("-- category: mis_inclusion", "-- category: mis_inclusion   "
                                                                           "(mis_inclusion | exit_risk)") + BODY)
    out = bidui(home.root, "rules", "list")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"{home.root / 'rules' / 'LARGE_HOUSE.sql'}: line 3: category: "), line


def test_a_run_with_a_broken_home_rule_refuses_to_start(tmp_path: Path) -> None:
    """Safest for the townships: no night is ingested, linked or published with a rule read in
    part; the run says which file and line in one line, exit 1 (bad input), and runs once fixed."""
    home = rule_home(tmp_path, HEADER.replace("register_members, property", "register_members, houses") + BODY)
    night = tmp_path / "inbox" / NIGHT
    night.mkdir(parents=True)
    out = bidui(home.root, "run", "--plain", night)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"{home.root / 'rules' / 'LARGE_HOUSE.sql'}: line 4: inputs: 'houses'"), line
    assert not home.warehouse.exists() and not home.ledger.exists()
