"""Accuracy on the medium synthetic prefecture over three nights, with every phenomenon of issue 15
(a child's record under a parent's ID, a valid ID held by nobody, a wrong ID cut by Excel, an ID
typo with a damaged name, names as other systems write them, shared IDs and second numbers, hukou
name corrections, namesakes): links and clues against the answer key. `bench/linkage.py` and
`bench/rules.py` print the full figures."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from bidui import config
from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import ingest_night
from bidui.matching import accuracy as link_accuracy
from bidui.matching.link import link_night, links_of
from bidui.rules import accuracy as rule_accuracy
from bidui.rules.engine import run_rules
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate

pytestmark = pytest.mark.slow
PHENOMENA = ("household_id", "id_valid_unheld", "id_digit_excel", "id_and_name", "name_placeholder", "name_pinyin",
             "name_annotation", "name_invisible", "shared_id", "two_ids", "name_corrected", "namesake")


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    out = tmp_path_factory.mktemp("medium")
    generate(out, SynthConfig(size="medium", seed=3, nights=3))
    con = wh.connect(out / "warehouse.duckdb")
    figures = {}
    try:
        for folder in sorted((out / "inbox").iterdir()):
            night = date.fromisoformat(folder.name)
            ingest_night(con, folder, night)
            link_night(con, night)
            _, links = link_accuracy.evaluate(links_of(con, night), out / "truth" / folder.name,
                                              link_accuracy.persons(con, night), link_accuracy.tie_records(con, night))
            rules, _, _ = rule_accuracy.evaluate(run_rules(con, night, config.load(None)).hits, out / "truth" / folder.name)
            figures[folder.name] = (links, rules)
    finally:
        con.close()
    return figures


def test_links_are_right_on_every_dataset_every_night(medium) -> None:
    for night, (links, _) in medium.items():
        datasets = links.filter(pl.col("kind") == "dataset")
        assert (datasets["precision"] >= 0.998).all() and (datasets["recall"] >= 0.998).all(), (night, datasets)


def test_every_phenomenon_occurs_and_is_linked(medium) -> None:
    _, (links, _) = sorted(medium.items())[-1]
    groups = dict(zip(links["group"], links.select("records", "precision", "recall").rows(), strict=True))
    for name in PHENOMENA:
        records, precision, recall = groups[f"phenomenon:{name}"]
        assert records >= 5 and precision >= 0.99 and recall >= 0.97, (name, records, precision, recall)


def test_every_rule_is_right_every_night(medium) -> None:
    for night, (_, rules) in medium.items():
        assert rules.height >= 15
        assert (rules["precision"] >= 0.99).all() and (rules["recall"] >= 0.99).all(), (night, rules)
