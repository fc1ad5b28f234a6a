"""`bidui loads` and `bidui rules list` read in Chinese for the data engineer and the task force."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bidui import config
from bidui.cli import app
from bidui.rules.engine import load_rules
from tests.present_support import internal_codes


def _run(root, *args: str) -> str:
    res = CliRunner().invoke(app, ["--home", str(root), *args], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    return res.output


def test_loads_reads_in_chinese_and_json_keeps_the_codes(home) -> None:
    h, _, _ = home
    rows = [json.loads(line) for line in _run(h.root, "loads", "--json").splitlines()]
    assert rows and {"dataset", "status", "fmt", "encoding", "evidence"} <= set(rows[0])  # the machine's form unchanged
    table = _run(h.root, "loads")
    assert "入库记录" in table and "已入库" in table and "户籍人口" in table and "accepted" not in table
    # File names are the departments' own, as on disk; everything else reads as people write.
    for name in {r["file"] for r in rows if r["file"]}:
        table = table.replace(name, "")
    assert internal_codes(table) == []


def test_rules_list_reads_in_chinese_but_for_the_keys_a_config_takes(home) -> None:
    h, _, _ = home
    out = _run(h.root, "rules", "list")
    assert all(w in out for w in ("规则名称", "类别", "比对数据", "是否启用", "错评疑点", "贫困户家庭成员"))
    rules, _ = load_rules(h.root / "rules")
    params = config.load(h.config).get("rules", {}).get("parameters", {})
    keys = {r.code for r in rules} | set(params)
    # Only the rule codes (`--rule`) and parameter names (bidui.toml) are left in Latin letters;
    # the parameter values are the operator's own configuration.
    for v in params.values():
        out = out.replace(str(v), "")
    assert set(internal_codes(out)) <= keys
