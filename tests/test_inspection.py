"""迎检抽样 (issue 19): the sample's sizes, the good / middling / poor choice by the stated measure,
reproducibility with a seed, the Excel file and the page (Chinese only, formulas neutralised), scope."""

from __future__ import annotations

import random
import re
from datetime import date
from pathlib import Path

from python_calamine import CalamineWorkbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from bidui.cli import app as cli_app
from bidui.clues import inspection
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, RegisterHousehold
from bidui.clues.states import CLOSED, OPEN
from tests.present_support import internal_codes
from tests.test_web import client_for, login
from tests.test_web_work import sign


def _ledger_of(h):
    return open_ledger(ledger_url(h.ledger))


def _codes(sample: inspection.Sample) -> list[tuple[str, str, list[str]]]:
    return [(t.code, v.score.code, [hh.household.household_code for hh in v.households])
            for t in sample.townships for v in t.villages]


def test_sizes_three_by_three_and_at_least_n_households(tmp_path: Path) -> None:
    """A county of 5 townships × 4 villages × 50 households: 3 townships, 3 villages each, N per village."""
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    county = "529001000000"
    with ledger.write() as s:
        for t in range(1, 6):
            town = f"529001{t:03d}000"
            for v in range(1, 5):
                village = town[:9] + f"{200 + v:03d}"
                for n in range(50 if v != 4 else 12):  # one village smaller than N: all of it
                    s.add(RegisterHousehold(household_code=f"{village}{n:04d}", county_code=county, township_code=town,
                                            village_code=village, head_name="户主", status="已脱贫", registered_year=2016,
                                            member_count=0, night=date(2026, 11, 20)))
    with ledger.read() as s:
        a = inspection.draw(s, county, seed=2, per_village=43)
        again = inspection.draw(s, county, seed=2, per_village=43)
        b = inspection.draw(s, county, seed=3, per_village=43)
        small = inspection.draw(s, county, seed=2, per_village=5)
    ledger.close()
    assert len(a.townships) == 3 and all(len(t.villages) == 3 for t in a.townships)
    for t in a.townships:
        assert [v.grade for v in t.villages] == ["好", "中", "差"]
        for v in t.villages:
            assert len(v.households) == min(43, v.score.households)
            assert len({h.household.household_code for h in v.households}) == len(v.households)
            assert all(h.household.village_code == v.score.code for h in v.households)
    assert all(len(v.households) == 5 for t in small.townships for v in t.villages)
    assert _codes(a) == _codes(again)  # the same seed, the same sample
    assert _codes(a) != _codes(b)  # another seed, another


def test_choose_villages_takes_the_best_the_median_and_the_worst() -> None:
    scores = [inspection.VillageScore(f"52900100120{i}", 10, clues, open_, closed)
              for i, (clues, open_, closed) in enumerate([(8, 5, 3), (4, 0, 4), (6, 2, 2), (9, 2, 7), (10, 9, 1)])]
    chosen = inspection.choose_villages(scores, random.Random(1))
    # Open per household 0.0, 0.2 (closure 78%), 0.2 (closure 33%), 0.5, 0.9: the middle one is the third.
    assert [(g, s.code[-1]) for g, s in chosen] == [("好", "1"), ("中", "2"), ("差", "4")]
    assert [g for g, _ in inspection.choose_villages(scores[:2], random.Random(1))] == ["好", "差"]


def test_the_tiny_prefectures_sample_follows_the_stated_measure_and_reads_in_chinese(home, tmp_path: Path) -> None:
    h, town, _ = home
    county = town[:6] + "000000"
    ledger = _ledger_of(h)
    with ledger.read() as s:
        sample = inspection.draw(s, county, seed=5, per_village=3)
        towns = set(s.scalars(select(RegisterHousehold.township_code).where(RegisterHousehold.county_code == county)))
        for t in sample.townships:
            # The measure recomputed here from the ledger: open clues per household, then closure rate.
            measured = []
            for village, n in s.execute(select(RegisterHousehold.village_code, func.count())
                                        .where(RegisterHousehold.township_code == t.code)
                                        .group_by(RegisterHousehold.village_code)):
                states = list(s.scalars(select(Clue.status).where(Clue.village_code == village)))
                open_ = sum(st in OPEN for st in states)
                closed = sum(st == CLOSED for st in states)
                measured.append((open_ / n, -(closed / len(states) if states else 0.0), village))
            measured.sort()
            chosen = {v.grade: v.score.code for v in t.villages}
            by_code = {m[2]: m[:2] for m in measured}
            assert by_code[chosen["好"]] == measured[0][:2]
            assert by_code[chosen["差"]] == measured[-1][:2]
            if "中" in chosen:
                assert measured[0][:2] <= by_code[chosen["中"]] <= measured[-1][:2]
            for v in t.villages:
                assert len(v.households) == min(3, v.score.households)
                # The village's clues on households not on the register (漏评) are counted apart:
                # none of them is among the households drawn.
                registered = set(s.scalars(select(RegisterHousehold.household_code)))
                assert v.score.off_register == sum(
                    code not in registered for code in s.scalars(select(Clue.household_code).where(
                        Clue.village_code == v.score.code)))
                for hh in v.households:
                    assert [c.clue.id for c in hh.clues] == list(s.scalars(
                        select(Clue.id).where(Clue.household_code == hh.household.household_code)
                        .order_by(Clue.first_seen, Clue.id)))
        assert any(v.score.off_register for t in sample.townships for v in t.villages)  # (not 0 == 0)
    ledger.close()
    assert {t.code for t in sample.townships} == towns and len(towns) <= 3  # fewer than three: all

    # A signed finding that looks like a formula, in a sampled household's clue.
    target = next(c.clue.id for t, _, hh in sample.households for c in hh.clues if t.code == town)
    sign(h, target, finding="=1+1 入户核实，已整改")
    out = tmp_path / "sample.xlsx"
    for none in ("0", "-5"):  # at least one household a village: refused, not read as one
        bad = CliRunner().invoke(cli_app, ["--home", str(h.root), "inspect", "sample", "--county", county,
                                           "--households", none, "--out", str(out)])
        assert bad.exit_code == 1 and "--households" in bad.output and not out.exists(), bad.output
    res = CliRunner().invoke(cli_app, ["--home", str(h.root), "inspect", "sample", "--county", county, "--seed", "5",
                                       "--households", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert internal_codes(res.output.split("→")[0]) == []
    wb = CalamineWorkbook.from_path(str(out))
    assert wb.sheet_names == ["说明", "抽中的村", "样本户及成员", "线索及核实", "尚未办结"]
    text = "\n".join(str(v) for name in wb.sheet_names for row in wb.get_sheet_by_name(name).to_python()
                     for v in row if v not in (None, ""))
    assert internal_codes(text) == [] and inspection.MEASURE in text
    clues = wb.get_sheet_by_name("线索及核实").to_python()
    header = clues[1]
    row = next(r for r in clues[2:] if int(r[header.index("线索编号")]) == target)
    assert row[header.index("核实情况")].startswith("'=") and "王秀兰（扶贫专干）" in row[header.index("核实人签字")]
    assert row[header.index("状态")] == "已核实待审核"
    villages = wb.get_sheet_by_name("抽中的村").to_python()
    shares = [r[villages[1].index("销号率")] for r in villages[2:]]
    assert shares and all(v == "无线索" or (isinstance(v, float) and 0 <= v <= 1) for v in shares), shares  # numbers, not "0%"
    opened = wb.get_sheet_by_name("尚未办结").to_python()
    assert len(opened) - 2 == sum(len(hh.open) for *_, hh in sample.households)

    # The page: the county's user draws the same sample; another county's code is refused.
    c = client_for(h)
    login(c, "county")
    page = c.get(f"/inspection?seed=5&county={county}")
    assert page.status_code == 200 and "户均未办结" in page.text
    body = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", page.text, flags=re.S)))
    assert internal_codes(body) == []
    for t in sample.townships:
        for v in t.villages:
            assert f'/villages/{v.score.code}/households/print' in page.text
    assert c.get(f"/inspection.xlsx?county={county}&seed=5").status_code == 200
    assert "打印" in c.get(f"/inspection/print?county={county}&seed=5").text
    p = client_for(h)
    login(p, "pref")
    assert p.get("/inspection").status_code == 200
    assert p.get("/inspection?county=539001000000").status_code == 404  # outside the prefecture
    t = client_for(h)
    login(t, "town")
    assert t.get("/inspection").status_code == 404  # a township does not draw the county's sample
    assert t.get(f"/inspection.xlsx?county={county}").status_code == 404
