"""Build the synthetic prefecture and write its nights and answer key (see synth/README.md)."""

from __future__ import annotations

import json
import resource
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from bidui.datasets import BY_CODE, DATASETS
from bidui.synth import departments as dep
from bidui.synth.config import SIZES, SynthConfig
from bidui.synth.nights import advance
from bidui.synth.phenomena import (
    PHENOMENA,
    finalise,
    make_namesakes,
    person_truth,
    phenomenon_expr,
    public_security,
)
from bidui.synth.plants import plant_all
from bidui.synth.register import make_register
from bidui.synth.state import World
from bidui.synth.truth import expected_clues
from bidui.synth.world import NameMaker, make_divisions, make_outsiders, make_residents
from bidui.synth.writers import DELIVERIES, choose_headers, write_dataset


def build_world(cfg: SynthConfig) -> World:
    size = SIZES[cfg.size]
    rng = np.random.default_rng(cfg.seed)
    run = date.fromisoformat(cfg.start)
    divisions = make_divisions(size, rng)
    names = NameMaker(rng)
    residents = make_residents(size, divisions, run, rng, names)
    residents, namesakes = make_namesakes(residents, cfg, rng)
    taken = set(residents["id_number"].to_list())
    outsiders = make_outsiders(max(20, int(len(residents) * cfg.corruption.outsiders)), run, rng, names,
                               len(residents), taken)
    w = World(cfg, rng, run, divisions, pl.concat([residents, outsiders]), pl.DataFrame())
    w.counts.update(namesakes)
    dep.background_life_events(w)
    make_register(w)
    w.counts.update(public_security(w))
    dep.background_changes(w)
    dep.background_deaths(w)
    dep.background_insurance(w)
    dep.background_claims(w)
    dep.background_students(w)
    dep.background_property(w)
    dep.background_dangerous(w)
    dep.background_businesses(w)
    dep.background_vehicles(w)
    dep.background_payroll(w)
    first_plant = w.next_rec
    plant_all(w)
    finalise(w, first_plant)
    return w


def register_households_table(w: World) -> pl.DataFrame:
    """The register's household sheet: the head's name and ID as the clerk typed them."""
    heads = w.tables["register_members"].select(
        "household_code", pl.col("_pid").alias("head_pid"), pl.col("name").alias("head_name"),
        pl.col("id_number").alias("head_id_number"), "_name_corr", "_id_corr", "_phen").unique(
        ["household_code", "head_pid"], keep="first", maintain_order=True)
    return w.households.join(heads, on=["household_code", "head_pid"], how="left").select(
        "household_code", "village_code", "head_name", "head_id_number", "status", "exit_year", "household_type",
        "main_cause", "registered_year", pl.col("head_pid").alias("_pid"),
        pl.col("head_pid").alias("_rec"), "_name_corr", "_id_corr", pl.lit(False).alias("_numeric_id"), "_phen")


def night_tables(w: World) -> dict[str, pl.DataFrame]:
    tables = {"divisions": w.divisions.with_columns(pl.lit(-1, pl.Int64).alias("_pid"), pl.lit(-1, pl.Int64).alias("_rec")),
              "hukou": dep.hukou_table(w), "register_households": register_households_table(w)}
    for code, df in w.tables.items():
        # A stable shuffle: planted rows do not sit at the end of a file.
        tables[code] = df.sort((pl.col("_rec") * 2654435761) % 4294967296)
    tables["hukou"] = tables["hukou"].sort("hukou_number", "_rec")
    return tables


def record_truth(dataset: str, file: str, df: pl.DataFrame, rows: int, people: pl.DataFrame) -> pl.DataFrame | None:
    """One answer-key row per person-bearing data row; `people` is `phenomena.person_truth` of the night."""
    ds = BY_CODE[dataset]
    if not ds.persons:
        return None
    df = df.head(rows)
    numeric = pl.col("_numeric_id") & (pl.col("_id_corr") != "id_digit_excel")
    out = df.select(pl.lit(dataset).alias("dataset"), pl.lit(file).alias("source_file"),
                    pl.int_range(1, pl.len() + 1).alias("source_row"), pl.lit(ds.persons[0].role).alias("role"),
                    pl.col(ds.persons[0].id_column).alias("id_number_raw"), pl.col(ds.persons[0].name_column).alias("name_raw"),
                    "_pid", pl.when(numeric).then(pl.lit("id_excel_numeric")).otherwise(pl.col("_id_corr")).alias("id_corruption"),
                    pl.col("_name_corr").alias("name_corruption"),
                    (pl.col("_phen") if "_phen" in df.columns else pl.lit("")).alias("_phen"))
    # `people` is indexed by pid (row i is pid i): a gather, not a join, per file.
    pid = df["_pid"].to_numpy()
    known = (pid >= 0) & (pid < people.height)
    at = pl.Series(np.where(known, pid, 0), dtype=pl.Int64).scatter(np.flatnonzero(~known), None)
    out = pl.concat([out, people.drop("pid").gather(at)], how="horizontal")
    if dataset != "hukou":
        # The hukou corrected the name; this record still carries the old one.
        out = out.with_columns(pl.when(pl.col("_corrected").fill_null(False) & (pl.col("name_corruption") == ""))
                               .then(pl.lit("name_corrected")).otherwise(pl.col("name_corruption")).alias("name_corruption"))
    return out.select("dataset", "source_file", "source_row", "role", "id_number_raw", "name_raw",
                      pl.when(pl.col("_pid") >= 0).then(pl.col("_pid")).alias("person_pid"),
                      "true_id_number", "true_name", "hukou_id_number", "true_hukou_number",
                      "id_corruption", "name_corruption", phenomenon_expr())


def generate(out: Path, cfg: SynthConfig) -> dict:
    """Write `out/inbox/<date>/…` and `out/truth/…`; return a summary with timings."""
    t0 = time.perf_counter()
    out = Path(out)
    w = build_world(cfg)
    built = time.perf_counter() - t0
    header_rng = np.random.default_rng(cfg.seed + 1_000_003)
    headers = {d.code: choose_headers(d, header_rng) for d in DATASETS}
    (out / "truth").mkdir(parents=True, exist_ok=True)
    in_force: dict[str, tuple[str, pl.DataFrame]] = {}
    nights = []
    for night in range(cfg.nights):
        if night > 0:
            advance(w, night)
        nights.append(write_night(w, night, out, headers, in_force))
    pl.DataFrame(w.plants, schema={"plant_id": pl.Int64, "rule_code": pl.String, "kind": pl.String,
                                   "description": pl.String, "pid": pl.Int64, "household_code": pl.String,
                                   "hukou_number": pl.String, "night": pl.Int64}, orient="row").write_csv(out / "truth" / "plants.csv")
    w.persons.select("pid", "id_number", "name", pl.when(pl.col("male")).then(pl.lit("男")).otherwise(pl.lit("女")).alias("sex"),
                     pl.col("birth").cast(pl.Date).alias("birth_date"), "hukou_number", "address_code", "origin",
                     "in_hukou", "alias_id_number", pl.col("shared_id").fill_null(False)).write_parquet(
        out / "truth" / "residents.parquet")
    summary = {
        "size": cfg.size, "seed": cfg.seed, "nights": [n["date"] for n in nights],
        "residents": int(w.persons.filter(pl.col("in_hukou")).height),
        "register_households": int(w.households.height),
        "register_members": int(w.tables["register_members"].height),
        "department_rows": int(sum(n["rows"] for n in nights) / max(1, len(nights))),
        "seconds": round(time.perf_counter() - t0, 1), "seconds_world": round(built, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "corruption": asdict(cfg.corruption), "plants": asdict(cfg.plants), "defects": asdict(cfg.defects),
        "phenomena": {"made": dict(sorted(w.counts.items())), "records": {n["date"]: n["phenomena"] for n in nights}},
    }
    (out / "truth" / "config.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    return summary


def write_night(w: World, night: int, out: Path, headers: dict[str, dict[str, str]],
                in_force: dict[str, tuple[str, pl.DataFrame]]) -> dict:
    cfg = w.cfg
    day = w.run.isoformat()
    folder = out / "inbox" / day
    folder.mkdir(parents=True, exist_ok=True)
    tdir = out / "truth" / day
    tdir.mkdir(parents=True, exist_ok=True)
    tables = night_tables(w)
    skip = cfg.skip_dataset if night == 1 else None
    truncate = cfg.truncate_dataset if cfg.nights >= 2 and night == min(2, cfg.nights - 1) else None
    files, records, total = [], [], 0
    people = person_truth(w.persons, tables["hukou"])
    for ds in DATASETS:
        if ds.code == skip:
            continue
        df = tables[ds.code]
        cut = 0.45 if ds.code == truncate else None
        name, rows = write_dataset(ds.code, df, folder, w.run, headers[ds.code], truncate_to=cut)
        total += rows
        d = DELIVERIES[ds.code]
        files.append({"dataset": ds.code, "file": name, "format": d.fmt, "encoding": d.encoding if d.fmt == "csv" else None,
                      "delimiter": {",": "comma", "\t": "tab"}[d.sep] if d.fmt == "csv" else None, "rows": rows,
                      "truncated": cut is not None, "expected": "held" if cut is not None else "accepted"})
        rec = record_truth(ds.code, name, df, rows, people)
        if rec is not None:
            records.append(rec)
        if cut is None:
            in_force[ds.code] = (day, df)
    expected = expected_clues(w.run, w.persons, w.households, w.divisions, {k: v for k, (_, v) in in_force.items()})
    expected.write_csv(tdir / "clues.csv")
    records_df = pl.concat(records, how="vertical_relaxed")
    records_df.write_parquet(tdir / "records.parquet")
    found = dict(records_df.filter(pl.col("phenomenon") != "")["phenomenon"].value_counts().iter_rows())
    phenomena = {k: int(found.get(k, 0)) for k in PHENOMENA}
    manifest = {"date": day, "files": files, "missing": [skip] if skip else [],
                "in_force": {k: d for k, (d, _) in in_force.items()}, "clues": expected.height,
                "phenomena": phenomena}
    (tdir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    # Last, as a department's drop-off does: the night's files are complete (no settle wait).
    (folder / "_SUCCESS").write_bytes(b"")
    return {"date": day, "rows": total, "phenomena": phenomena}
