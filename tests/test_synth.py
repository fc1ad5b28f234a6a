"""The synthetic prefecture: determinism, validity, conformance to the extract spec, and an
answer key consistent with the files. Files are read back as a department's file would be
(through the spec-level reader), not from the generator's tables."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from bidui.cli import app
from bidui.connectors.readers import read_table
from bidui.datasets import BY_CODE, VEHICLE_TYPE_NAMES, dataset_for_filename, header_key
from bidui.ids import IdStatus, normalise_id
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate

NIGHTS = ("2026-11-20", "2026-11-21", "2026-11-22")
DATE_FORMS = (
    r"\d{4}-\d{2}-\d{2}", r"\d{8}", r"\d{4}/\d{1,2}/\d{1,2}", r"\d{4}年\d{1,2}月\d{1,2}日", r"\d{4}-\d{1,2}-\d{1,2}",
)


def manifest(root: Path, night: str) -> dict:
    return json.loads((root / "truth" / night / "manifest.json").read_text(encoding="utf-8"))


def clues(root: Path, night: str) -> pl.DataFrame:
    return pl.read_csv(root / "truth" / night / "clues.csv", infer_schema=False)


def columns_of(path: Path) -> tuple[str, dict[str, int], object]:
    """Dataset code, canonical column → position, and the table, read as the spec says."""
    ds = dataset_for_filename(path.name)
    table = read_table(path)
    positions: dict[str, int] = {}
    for i, h in enumerate(table.header):
        owners = [c.name for c in ds.columns if header_key(h) in {header_key(x) for x in c.headers}]
        assert len(owners) <= 1, (path.name, h, owners)
        if owners:
            assert owners[0] not in positions, f"{path.name}: two headers for {owners[0]}"
            positions[owners[0]] = i
    return ds.code, positions, table


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 5), (b, 5), (c, 6)):
        generate(out, SynthConfig(size="tiny", seed=seed, nights=2))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "config.json")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "config.json")
    assert files_a == files_b and len(files_a) > 30
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    hukou = "inbox/2026-11-20/hukou_20261120.csv"
    assert (a / hukou).read_bytes() != (c / hukou).read_bytes()


def test_every_clean_id_is_valid_and_agrees_with_sex_and_birth(tiny: Path) -> None:
    people = pl.read_parquet(tiny / "truth" / "residents.parquet")
    for idn, sex, born, shared in people.select("id_number", "sex", "birth_date", "shared_id").iter_rows():
        assert normalise_id(idn) == (idn, IdStatus.VALID)
        if not shared:  # a shared ID was A's first: it need not fit B
            assert (int(idn[16]) % 2 == 1) == (sex == "男")
            assert idn[6:14] == born.strftime("%Y%m%d")
    # IDs are unique but for the shared ones (一号多人), each held by exactly two people.
    held = people.group_by("id_number").agg(pl.len().alias("n"), pl.col("shared_id").all().alias("shared"))
    assert held.filter(pl.col("n") > 1)["shared"].all() and held["n"].max() == 2
    assert held.filter(pl.col("shared")).height == people["shared_id"].sum() // 2
    for night in NIGHTS:
        rec = pl.read_parquet(tiny / "truth" / night / "records.parquet")
        clean = rec.filter((pl.col("id_corruption") == "") & pl.col("true_id_number").is_not_null())
        assert clean.height > 1000
        for raw, true in clean.select("id_number_raw", "true_id_number").iter_rows():
            assert normalise_id(raw) == (true, IdStatus.VALID), (raw, true)


@pytest.mark.parametrize("night", NIGHTS)
def test_every_file_conforms_to_the_extract_spec(tiny: Path, night: str) -> None:
    m = manifest(tiny, night)
    folder = tiny / "inbox" / night
    assert sorted(f["file"] for f in m["files"]) == sorted(p.name for p in folder.iterdir() if p.name != "_SUCCESS")
    assert (folder / "_SUCCESS").read_bytes() == b""  # the night is complete: ingest need not wait
    for f in m["files"]:
        code, pos, table = columns_of(folder / f["file"])
        assert code == f["dataset"]
        ds = BY_CODE[code]
        missing = [c for c in ds.required if c not in pos]
        assert not missing, (f["file"], missing)
        data = table.data
        if f["truncated"]:
            data = data.head(f["rows"])
        assert data.height == f["rows"]
        for col in ds.columns:
            if col.name not in pos:
                continue
            values = [v for v in data[f"c{pos[col.name]}"].to_list() if v is not None and v != ""]
            if col.kind == "enum":
                allowed = set(col.values) | set(col.aliases)
                bad = {v for v in values if v not in allowed}
                assert not bad, (f["file"], col.name, bad)
            elif col.kind == "date":
                bad = {v for v in values if not any(re.fullmatch(p, v) for p in DATE_FORMS)}
                assert not bad, (f["file"], col.name, list(bad)[:3])
            elif col.kind == "code":
                assert all(re.fullmatch(r"\d{12}", v) for v in values), (f["file"], col.name)
            elif col.kind in ("money", "number", "year"):
                assert all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in values), (f["file"], col.name)
        if code == "vehicles":
            types = set(data[f"c{pos['vehicle_type']}"].to_list())
            assert all(t in VEHICLE_TYPE_NAMES or re.fullmatch(r"[A-Z]\d{2}", t) for t in types)
            assert types & set(VEHICLE_TYPE_NAMES) and any(re.fullmatch(r"[A-Z]\d{2}", t) for t in types)


def test_files_cover_the_forms_the_spec_allows(tiny: Path) -> None:
    files = manifest(tiny, NIGHTS[0])["files"]
    forms = {(f["format"], f["encoding"], f["delimiter"]) for f in files}
    assert ("csv", "gb18030", "comma") in forms and ("csv", "gb18030", "tab") in forms
    assert ("csv", "utf-8-sig", "comma") in forms and ("csv", "utf-8", "comma") in forms
    assert ("csv", "utf-8", "tab") in forms
    assert {"xlsx", "parquet"} <= {f["format"] for f in files}
    assert any(re.search(r"[\u4e00-\u9fff]", f["file"]) for f in files)
    assert any(not re.search(r"[\u4e00-\u9fff]", f["file"]) for f in files)
    folder = tiny / "inbox" / NIGHTS[0]
    for f in files:
        raw = (folder / f["file"]).read_bytes()
        if f["encoding"] == "gb18030":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        if f["encoding"] == "utf-8-sig":
            assert raw.startswith(b"\xef\xbb\xbf")
    # The appraisal workbook's ID cells are numbers, as Excel makes them.
    dh = next(f for f in files if f["dataset"] == "dangerous_housing")
    _, pos, table = columns_of(folder / dh["file"])
    numeric_ids = [r for r, c in table.numeric_cells if c == pos["owner_id_number"]]
    assert len(numeric_ids) > 0.8 * table.data.height
    sample = table.data[f"c{pos['owner_id_number']}"][numeric_ids[0]]
    assert normalise_id(sample)[1] is IdStatus.EXCEL_MANGLED or sample.endswith("000")
    # Header dialects: at least one synonym or English name somewhere.
    headers = []
    for f in files:
        headers += read_table(folder / f["file"]).header
    primary = {c.header for ds in BY_CODE.values() for c in ds.columns}
    assert any(h not in primary for h in headers)


@pytest.mark.parametrize("night", NIGHTS)
def test_truth_records_match_the_files(tiny: Path, night: str) -> None:
    m = manifest(tiny, night)
    rec = pl.read_parquet(tiny / "truth" / night / "records.parquet")
    folder = tiny / "inbox" / night
    for f in m["files"]:
        ds = BY_CODE[f["dataset"]]
        mine = rec.filter(pl.col("source_file") == f["file"]).sort("source_row")
        if not ds.persons:
            assert mine.is_empty()
            continue
        assert mine.height == f["rows"] and mine["source_row"].to_list() == list(range(1, f["rows"] + 1))
        _, pos, table = columns_of(folder / f["file"])
        ref = ds.persons[0]
        ids = table.data[f"c{pos[ref.id_column]}"].to_list()
        names = table.data[f"c{pos[ref.name_column]}"].to_list()
        for row, raw_id, raw_name, corr in mine.select("source_row", "id_number_raw", "name_raw", "id_corruption").iter_rows():
            file_id, file_name = ids[row - 1], names[row - 1]
            if corr in ("id_excel_numeric", "id_digit_excel"):
                assert normalise_id(file_id)[0][:15] == raw_id[:15]
            elif raw_id:
                assert (file_id or "").strip() == raw_id.strip(), (f["file"], row)
            assert (file_name or "").strip() == raw_name.strip(), (f["file"], row)


def test_truth_links_point_at_hukou(tiny: Path) -> None:
    rec = pl.read_parquet(tiny / "truth" / NIGHTS[0] / "records.parquet")
    hukou = set(rec.filter(pl.col("dataset") == "hukou")["id_number_raw"].to_list())
    linked = rec.filter(pl.col("hukou_id_number").is_not_null())
    assert set(linked["hukou_id_number"].to_list()) <= hukou
    outsiders = rec.filter(pl.col("person_pid").is_not_null() & pl.col("hukou_id_number").is_null())
    assert outsiders.height > 0  # outsiders and people nobody can find exist


def test_every_rule_is_planted_both_ways_and_expected(tiny: Path) -> None:
    plants = pl.read_csv(tiny / "truth" / "plants.csv", infer_schema=False)
    rules = set(json.loads(Path("tests/rule_codes.json").read_text()))
    for rule in rules:
        kinds = set(plants.filter(pl.col("rule_code") == rule)["kind"].to_list())
        assert {"positive", "near_miss"} <= kinds, rule
    assert set(clues(tiny, NIGHTS[0])["rule_code"].to_list()) == rules


@pytest.mark.parametrize("night_index", [0, 1, 2])
def test_plants_fire_and_near_misses_do_not(tiny: Path, night_index: int) -> None:
    plants = pl.read_csv(tiny / "truth" / "plants.csv", infer_schema=False).filter(
        pl.col("night").cast(pl.Int64) == night_index)
    hits = clues(tiny, NIGHTS[night_index]).select("rule_code", pl.col("subject_pid").alias("pid")).unique()
    hits = hits.with_columns(pl.lit(True).alias("hit"))
    j = plants.join(hits, on=["rule_code", "pid"], how="left")
    missed = j.filter((pl.col("kind") == "positive") & pl.col("hit").is_null())
    raised = j.filter((pl.col("kind") == "near_miss") & pl.col("hit").is_not_null())
    assert missed.is_empty(), missed.select("rule_code", "description").rows()
    assert raised.is_empty(), raised.select("rule_code", "description").rows()
    if night_index:
        before = clues(tiny, NIGHTS[night_index - 1])
        after = clues(tiny, NIGHTS[night_index])
        gone = plants.filter(pl.col("kind") == "gone")
        assert gone.height >= 1
        for rule, pid, what in gone.select("rule_code", "pid", "description").iter_rows():
            key = what.split()[1] if rule == "VEHICLE" else None
            b = before.filter((pl.col("rule_code") == rule) & (pl.col("subject_pid") == pid))
            a = after.filter((pl.col("rule_code") == rule) & (pl.col("subject_pid") == pid))
            if key:
                b, a = b.filter(pl.col("evidence_key") == key), a.filter(pl.col("evidence_key") == key)
            assert b.height == 1 and a.is_empty(), (rule, what)


def test_a_skipped_night_and_a_truncated_file(tiny: Path) -> None:
    _m1, m2, m3 = (manifest(tiny, n) for n in NIGHTS)
    assert m2["missing"] == ["students"] and "students" not in {f["dataset"] for f in m2["files"]}
    assert m2["in_force"]["students"] == NIGHTS[0]
    prop3 = next(f for f in m3["files"] if f["dataset"] == "property")
    prop2 = next(f for f in m2["files"] if f["dataset"] == "property")
    assert prop3["truncated"] and prop3["expected"] == "held" and prop3["rows"] < 0.7 * prop2["rows"]
    assert m3["in_force"]["property"] == NIGHTS[1]
    raw = (tiny / "inbox" / NIGHTS[2] / prop3["file"]).read_bytes().decode("utf-8-sig")
    assert not raw.endswith("\n")  # cut mid-row
    # Clues on property still come from the snapshot in force, not the truncated file.
    c2, c3 = clues(tiny, NIGHTS[1]), clues(tiny, NIGHTS[2])
    assert (c2.filter(pl.col("rule_code") == "URBAN_PROPERTY")["evidence_key"].sort().to_list()
            == c3.filter(pl.col("rule_code") == "URBAN_PROPERTY")["evidence_key"].sort().to_list())


def test_expected_clues_are_grounded_in_the_files(tiny: Path) -> None:
    night = NIGHTS[0]
    folder = tiny / "inbox" / night
    m = manifest(tiny, night)
    text = {f["dataset"]: read_table(folder / f["file"]) for f in m["files"]}

    def values(dataset: str, column: str) -> set[str]:
        _, pos, table = columns_of(folder / next(f["file"] for f in m["files"] if f["dataset"] == dataset))
        return {(v or "").strip() for v in table.data[f"c{pos[column]}"].to_list()}

    c = clues(tiny, night)
    members_raw = values("register_members", "id_number")
    hukou_ids = values("hukou", "id_number")
    for rule, raw, hh, _key in c.select("rule_code", "subject_id_number_raw", "household_code", "evidence_key").iter_rows():
        if rule.startswith("MISSED_"):
            assert raw in hukou_ids and not hh
        else:
            assert raw in members_raw, (rule, raw)
    checks = {"VEHICLE": ("vehicles", "plate"), "BUSINESS": ("businesses", "credit_code"),
              "URBAN_PROPERTY": ("property", "cert_number"), "PUBLIC_PAYROLL": ("payroll", "employer"),
              "HIGH_FEE_SCHOOL": ("students", "school_name"), "HOUSEHOLD_SPLIT": ("hukou_changes", "from_hukou_number")}
    for rule, (dataset, column) in checks.items():
        keys = set(c.filter(pl.col("rule_code") == rule)["evidence_key"].to_list())
        assert keys and keys <= values(dataset, column), rule
    assert text  # every file was readable
    cats = Counter(c["category"].to_list())
    assert set(cats) == {"mis_inclusion", "natural_change", "data_quality", "exit_risk", "missed_inclusion"}


def test_corruptions_all_occur_at_about_their_rates(small: Path) -> None:
    rec = pl.read_parquet(small / "truth" / NIGHTS[0] / "records.parquet").filter(
        ~pl.col("dataset").is_in(["hukou", "register_members", "register_households"]))
    n = rec.height
    ids = Counter(rec["id_corruption"].to_list())
    names = Counter(rec["name_corruption"].to_list())
    cfg = SynthConfig().corruption
    for kind, rate in (("id_digit", cfg.id_digit), ("id_transposition", cfg.id_transposition),
                       ("id_fullwidth", cfg.id_fullwidth), ("id_space", cfg.id_space),
                       ("name_homophone", cfg.name_homophone), ("name_traditional", cfg.name_traditional),
                       ("name_space", cfg.name_space), ("name_typo", cfg.name_typo)):
        got = (ids[kind] or names[kind]) / n
        assert 0.4 * rate < got < 1.8 * rate, (kind, got, rate)
    for kind in ("id_15", "id_lower_x", "id_missing", "id_excel_numeric", "dot_variant"):
        assert (ids[kind] or names[kind]) > 0, kind
    # Issue 15: names as other systems write them, and the record phenomena (each against its base).
    phen = Counter(rec["phenomenon"].to_list())
    for kind, rate in (("name_placeholder", cfg.name_placeholder), ("name_pinyin", cfg.name_pinyin),
                       ("name_annotation", cfg.name_annotation), ("name_invisible", cfg.name_invisible)):
        got = names[kind] / n
        assert 0.4 * rate < got < 1.8 * rate, (kind, got, rate)
    for kind, rate in (("id_valid_unheld", cfg.id_valid_unheld), ("id_and_name", cfg.id_and_name)):
        got = phen[kind] / n
        assert 0.4 * rate < got < 1.8 * rate, (kind, got, rate)
    numeric = ids["id_excel_numeric"] + ids["id_digit_excel"]
    assert 0.4 * cfg.id_digit_excel < ids["id_digit_excel"] / numeric < 1.8 * cfg.id_digit_excel
    people = pl.read_parquet(small / "truth" / "residents.parquet")
    age = (pl.date(2026, 11, 20) - pl.col("birth_date")).dt.total_days() / 365.2425
    young = rec.join(people.select(pl.col("pid").alias("person_pid"), age.alias("age")), on="person_pid").filter(
        pl.col("hukou_id_number").is_not_null())
    for dataset, limit, rate in (("students", 18, cfg.household_students),
                                 ("medical_insurance", 7, cfg.household_infant_insurance),
                                 ("medical_claims", 7, cfg.household_infant_claims)):
        base = young.filter((pl.col("dataset") == dataset) & (pl.col("age") < limit))
        got = base.filter(pl.col("phenomenon") == "household_id").height / base.height
        assert 0.4 * rate < got < 1.8 * rate, (dataset, got, rate)
    two = rec.filter(pl.col("person_pid").is_in(people.filter(pl.col("alias_id_number").is_not_null())["pid"].implode()))
    got = (two["id_corruption"] == "id_alias").mean()
    assert 0.4 * cfg.two_ids_records < got < 1.8 * cfg.two_ids_records, got
    missing = rec.filter(pl.col("id_corruption") == "id_missing")
    assert set(missing["dataset"].to_list()) <= {"deaths", "dangerous_housing"}
    reg = pl.read_parquet(small / "truth" / NIGHTS[0] / "records.parquet").filter(pl.col("dataset") == "register_members")
    assert {"name_homophone", "name_traditional"} <= set(reg["name_corruption"].to_list())


def test_the_population_looks_like_a_rural_prefecture(small: Path) -> None:
    people = pl.read_parquet(small / "truth" / "residents.parquet").filter(pl.col("origin") == "resident")
    assert 45_000 < people.height < 56_000
    male = (people["sex"] == "男").mean()
    assert 0.47 < male < 0.56
    surnames = Counter(n[0] for n in people["name"].to_list())
    assert {s for s, _ in surnames.most_common(5)} >= {"王", "李", "张"}
    assert any("·" in n for n in people["name"].to_list())
    births = people["birth_date"].dt.year()
    assert (births < 1966).mean() > 0.12 and (births > 2010).mean() > 0.08
    m = manifest(small, NIGHTS[0])
    folder = small / "inbox" / NIGHTS[0]
    _code, pos, table = columns_of(folder / next(f["file"] for f in m["files"] if f["dataset"] == "register_households"))
    status = Counter(table.data[f"c{pos['status']}"].to_list())
    assert status["已脱贫"] / sum(status.values()) > 0.85
    causes = Counter(table.data[f"c{pos['main_cause']}"].to_list())
    assert causes.most_common(1)[0][0] == "缺技术"
    exit_years = {int(y) for y in table.data[f"c{pos['exit_year']}"].to_list() if y}
    assert min(exit_years) >= 2016
    # about a tenth of rural households are registered
    _, hpos, hukou = columns_of(folder / next(f["file"] for f in m["files"] if f["dataset"] == "hukou"))
    _, dpos, div = columns_of(folder / next(f["file"] for f in m["files"] if f["dataset"] == "divisions"))
    rural = {c for c, u in zip(div.data[f"c{dpos['code']}"], div.data[f"c{dpos['urban_rural']}"], strict=True) if u == "乡村"}
    heads = [a for a, r in zip(hukou.data[f"c{hpos['address_code']}"], hukou.data[f"c{hpos['relation']}"], strict=True)
             if r == "户主" and a in rural]
    share = table.data.height / len(heads)
    assert 0.08 < share < 0.13


def test_cli_writes_a_prefecture(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "synth", "--out", str(tmp_path / "p"),
                                      "--size", "tiny", "--nights", "1", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "truth" / "2026-11-20" / "clues.csv").exists()
    bad = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "q"), "--size", "huge"])
    assert bad.exit_code != 0


# ---------------------------------------------------------------- issue 15: what real data does


def records(root: Path, night: str) -> pl.DataFrame:
    return pl.read_parquet(root / "truth" / night / "records.parquet")


def residents(root: Path) -> pl.DataFrame:
    return pl.read_parquet(root / "truth" / "residents.parquet")


def hukou_rows(root: Path, night: str) -> pl.DataFrame:
    """The hukou file as written: ID, name, sex, birth date, hukou number, address, status, and the
    person each row belongs to (from the answer key)."""
    folder = root / "inbox" / night
    m = manifest(root, night)
    _, pos, table = columns_of(folder / next(f["file"] for f in m["files"] if f["dataset"] == "hukou"))
    cols = ("id_number", "name", "sex", "birth_date", "hukou_number", "address_code", "status", "status_date")
    df = pl.DataFrame({c: table.data[f"c{pos[c]}"] for c in cols}).with_row_index("source_row", offset=1)
    truth = records(root, night).filter(pl.col("dataset") == "hukou").select(
        pl.col("source_row").cast(pl.UInt32), "person_pid")
    return df.join(truth, on="source_row")


def differing(a: str, b: str) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def test_phenomenon_column_and_counts(tiny: Path) -> None:
    from bidui.synth.phenomena import PHENOMENA

    config = json.loads((tiny / "truth" / "config.json").read_text(encoding="utf-8"))
    for night in NIGHTS:
        rec = records(tiny, night)
        assert {"true_hukou_number", "phenomenon"} <= set(rec.columns)
        assert set(rec["phenomenon"].unique().to_list()) <= {"", *PHENOMENA}
        counts = manifest(tiny, night)["phenomena"]
        assert counts == config["phenomena"]["records"][night]
        for kind in PHENOMENA:
            if kind != "name_corrected" or night != NIGHTS[0]:
                assert counts[kind] > 0, (night, kind)
        # The link a linker should make: the primary hukou record's ID and hukou number.
        linked = rec.filter(pl.col("hukou_id_number").is_not_null())
        assert linked["true_hukou_number"].is_not_null().all()
        assert (linked["hukou_id_number"] == linked["true_id_number"]).all()
    assert config["phenomena"]["made"]["shared_id_pairs"] >= 4 and config["phenomena"]["made"]["two_ids"] >= 2
    people = residents(tiny)
    assert {"alias_id_number", "shared_id"} <= set(people.columns)


def test_household_id_a_childs_record_under_a_parents_id(tiny: Path) -> None:
    rec = records(tiny, NIGHTS[0])
    people = residents(tiny).select("pid", "id_number", "hukou_number", "birth_date")
    hh = rec.filter(pl.col("phenomenon") == "household_id")
    assert set(hh["dataset"].unique().to_list()) == {"students", "medical_insurance", "medical_claims"}
    for dataset in ("students", "medical_insurance", "medical_claims"):
        assert hh.filter(pl.col("dataset") == dataset).height >= 2, dataset
    owner = people.rename({"pid": "owner", "hukou_number": "owner_hukou", "birth_date": "owner_birth"})
    j = hh.join(owner, left_on="id_number_raw", right_on="id_number", how="left").join(
        people.select("pid", "birth_date"), left_on="person_pid", right_on="pid")
    assert j["owner"].is_not_null().all()  # the ID is a real person's …
    assert (j["owner"] != j["person_pid"]).all()  # … not the child's …
    assert (j["owner_hukou"] == j["true_hukou_number"]).all()  # … but a member of the child's household
    assert (j["name_raw"] == j["true_name"]).all() and (j["name_corruption"] == "").all()
    assert (j["hukou_id_number"] == j["true_id_number"]).all()  # the truth points at the child
    assert (j["id_number_raw"] != j["true_id_number"]).all()
    age = (pl.date(2026, 11, 20) - pl.col("birth_date")).dt.total_days() / 365.25
    assert j.filter(pl.col("dataset") != "students").select((age < 7).all()).item()
    assert (j["owner_birth"] < j["birth_date"]).all()  # a parent: born before the child


def test_id_valid_unheld_a_valid_id_nobody_holds(tiny: Path) -> None:
    rec = records(tiny, NIGHTS[0])
    people = residents(tiny)
    held = set(people["id_number"].to_list()) | set(people["alias_id_number"].drop_nulls().to_list())
    rows = rec.filter(pl.col("phenomenon") == "id_valid_unheld")
    assert rows.height >= 2
    for raw, true, name, true_name in rows.select("id_number_raw", "true_id_number", "name_raw", "true_name").iter_rows():
        assert normalise_id(raw) == (raw, IdStatus.VALID)
        assert raw not in held
        diff = differing(raw, true)
        assert len(diff) == 2 and set(diff) <= {14, 15, 16}, (raw, true)
        assert name == true_name


def test_id_digit_excel_a_wrong_id_then_truncated(tiny: Path) -> None:
    night = NIGHTS[0]
    rec = records(tiny, night)
    rows = rec.filter(pl.col("phenomenon") == "id_digit_excel")
    assert rows.height >= 2 and set(rows["dataset"].to_list()) <= {"dangerous_housing", "vehicles"}
    folder = tiny / "inbox" / night
    for file in rows["source_file"].unique().to_list():
        _, pos, table = columns_of(folder / file)
        ds = BY_CODE[dataset_for_filename(file).code]
        col = pos[ds.persons[0].id_column]
        numeric = {r for r, c in table.numeric_cells if c == col}
        cells = table.data[f"c{col}"].to_list()
        for row, true in rows.filter(pl.col("source_file") == file).select("source_row", "true_id_number").iter_rows():
            assert row - 1 in numeric  # a number cell …
            digits = normalise_id(cells[row - 1])[0]
            assert normalise_id(cells[row - 1])[1] is IdStatus.EXCEL_MANGLED and digits[15:] == "000"
            diff = differing(digits[:15], true[:15])
            assert len(diff) == 1 and 6 <= diff[0] <= 14, (digits, true)  # … one digit wrong in 7–15


def test_id_and_name_an_id_typo_with_a_damaged_name(tiny: Path) -> None:
    from bidui.names import form_key

    rows = records(tiny, NIGHTS[0]).filter(pl.col("phenomenon") == "id_and_name")
    assert rows.height >= 2
    for raw, true, name, true_name, idc, nmc in rows.select(
            "id_number_raw", "true_id_number", "name_raw", "true_name", "id_corruption", "name_corruption").iter_rows():
        assert normalise_id(raw)[1] is not IdStatus.VALID
        diff = differing(raw, true)
        assert (idc == "id_digit" and len(diff) == 1) or (idc == "id_transposition" and len(diff) == 2
                                                          and diff[1] == diff[0] + 1)
        assert min(diff) >= 6
        assert nmc in ("name_homophone", "name_typo", "name_placeholder") and form_key(name) != form_key(true_name)


def test_names_as_other_systems_write_them(tiny: Path) -> None:
    from bidui.names import form_key

    rec = records(tiny, NIGHTS[0])
    dept = rec.filter(~pl.col("dataset").is_in(["hukou", "register_members", "register_households"]))
    kinds = {k: dept.filter(pl.col("phenomenon") == k) for k in
             ("name_placeholder", "name_pinyin", "name_annotation", "name_invisible")}
    for kind, rows in kinds.items():
        assert rows.height >= 2, kind
        for name, true in rows.select("name_raw", "true_name").iter_rows():
            if kind == "name_placeholder":
                assert len(name) == len(true) and any(c in name for c in "□?*〓")
            elif kind == "name_pinyin":
                assert re.fullmatch(r"[^a-z]+[a-z]+[^a-z]*", name) and name != true
            else:  # a difference of form only
                assert name != true and form_key(name) == form_key(true), (kind, name)
                if kind == "name_annotation":
                    assert re.search(r"[(（](户主|已故|迁出|之妻)[)）]$", name)
    # In the register too (form-only variants): never a NAME_MISMATCH for them.
    reg = rec.filter((pl.col("dataset") == "register_members")
                     & pl.col("name_corruption").is_in(["name_annotation", "name_invisible"]))
    assert set(reg["name_corruption"].to_list()) == {"name_annotation", "name_invisible"}
    assert all(form_key(n) == form_key(t) for n, t in reg.select("name_raw", "true_name").iter_rows())
    mismatch = clues(tiny, NIGHTS[0]).filter(pl.col("rule_code") == "NAME_MISMATCH")["subject_pid"].cast(pl.Int64)
    assert not set(reg["person_pid"].to_list()) & set(mismatch.to_list())


def test_shared_id_two_hukou_persons_one_id(tiny: Path) -> None:
    from bidui.synth.phenomena import PHENOMENA

    night = NIGHTS[0]
    hukou = hukou_rows(tiny, night)
    shared = hukou.group_by("id_number").agg(pl.col("person_pid").n_unique().alias("people"), pl.len().alias("rows"),
                                             "person_pid", "hukou_number").filter(pl.col("rows") > 1)
    assert shared.height >= 4 and (shared["people"] == 2).all()
    assert all(a != b for a, b in shared["hukou_number"].to_list())  # two hukou households
    pairs = {pid: ids for ids, pids in shared.select("id_number", "person_pid").iter_rows() for pid in pids}
    rec = records(tiny, night)
    kinds = rec.filter(pl.col("person_pid").is_in(list(pairs)))["phenomenon"]
    assert "shared_id" in kinds.to_list() and kinds.is_in(PHENOMENA[: PHENOMENA.index("shared_id") + 1]).all()
    members = rec.filter(pl.col("dataset") == "register_members")
    member_pids = set(members["person_pid"].to_list())
    c = clues(tiny, night).with_columns(pl.col("subject_pid").cast(pl.Int64))
    # A is a member, B (not) owns a car under the same ID: no VEHICLE clue for A from B's car.
    cars = rec.filter((pl.col("dataset") == "vehicles") & pl.col("person_pid").is_in(list(pairs))
                      & ~pl.col("person_pid").is_in(list(member_pids)))
    car_cases = 0
    for b, plate_row in cars.select("person_pid", "source_row").iter_rows():
        a = next(p for p in shared.filter(pl.col("id_number") == pairs[b])["person_pid"][0] if p != b)
        if a in member_pids:
            car_cases += 1
            vehicle = c.filter((pl.col("rule_code") == "VEHICLE") & (pl.col("subject_pid") == a))
            file = cars["source_file"][0]
            _, pos, table = columns_of(tiny / "inbox" / night / file)
            plate = table.data[f"c{pos['plate']}"][plate_row - 1]
            assert plate not in vehicle["evidence_key"].to_list()
    assert car_cases >= 2
    # Both register members of two households: not one person in two households.
    both = [pids for pids in shared["person_pid"].to_list() if set(pids) <= member_pids]
    assert len(both) >= 2
    dup = c.filter(pl.col("rule_code") == "DUPLICATE_MEMBER")["subject_pid"].to_list()
    names = {p: n for p, n in hukou.select("person_pid", "name").iter_rows()}
    for pids in both:
        listed = members.filter(pl.col("person_pid").is_in(pids))["person_pid"].value_counts()
        twice = set(listed.filter(pl.col("count") > 1)["person_pid"].to_list())  # a planted duplicate
        assert set(pids) & set(dup) == twice
        for pid in pids:  # each compared with their own hukou name, never with the other's
            other = next(names[p] for p in pids if p != pid)
            keys = c.filter((pl.col("rule_code") == "NAME_MISMATCH") & (pl.col("subject_pid") == pid))["evidence_key"]
            assert other not in keys.to_list()
    # Nothing fans out: one clue per rule, subject, household and evidence.
    assert c.select("rule_code", "subject_pid", "household_code", "evidence_key").is_duplicated().sum() == 0


def test_two_ids_one_person_two_hukou_records(tiny: Path) -> None:
    night = NIGHTS[0]
    people = residents(tiny).filter(pl.col("alias_id_number").is_not_null())
    assert people.height >= 2
    hukou = hukou_rows(tiny, night)
    for pid, idn, alias, name, sex, born, hukou_no, address in people.select(
            "pid", "id_number", "alias_id_number", "name", "sex", "birth_date", "hukou_number", "address_code").iter_rows():
        rows = hukou.filter(pl.col("person_pid") == pid)
        assert rows.height == 2
        main, old = rows.filter(pl.col("id_number") == idn), rows.filter(pl.col("id_number") == alias)
        assert main["status"][0] == "正常" and old["status"][0] == "注销" and old["status_date"][0]
        assert main["hukou_number"][0] == hukou_no and old["hukou_number"][0] != hukou_no
        assert old["hukou_number"][0] not in set(hukou.filter(pl.col("person_pid") != pid)["hukou_number"].to_list())
        assert old["address_code"][0] == address
        for r in (main, old):
            assert (r["name"][0], r["sex"][0], r["birth_date"][0]) == (name, sex, born.strftime("%Y%m%d"))
        assert normalise_id(alias) == (alias, IdStatus.VALID) and alias[:14] == idn[:14] and alias != idn
        assert (int(alias[16]) % 2 == 1) == (sex == "男")
    rec = records(tiny, night)
    aliases = dict(zip(people["pid"].to_list(), people["alias_id_number"].to_list(), strict=True))
    old = rec.filter(pl.col("phenomenon") == "two_ids")
    assert old.filter(~pl.col("dataset").is_in(["hukou", "register_members"])).height >= 2
    for pid, raw, hid in old.select("person_pid", "id_number_raw", "hukou_id_number").iter_rows():
        assert raw == aliases[pid] and hid == people.filter(pl.col("pid") == pid)["id_number"][0]
    # The register lists a couple of them under the old ID, and nothing is raised for that.
    reg = old.filter(pl.col("dataset") == "register_members")
    assert reg.height >= 2
    c = clues(tiny, night).filter(pl.col("subject_pid").cast(pl.Int64).is_in(reg["person_pid"].to_list()))
    assert not {"NAME_MISMATCH", "ID_INVALID", "NOT_IN_HUKOU", "DUPLICATE_MEMBER"} & set(c["rule_code"].to_list())


def test_name_corrected_in_hukou_only(tiny: Path) -> None:
    from bidui.synth.phenomena import PHENOMENA

    first = hukou_rows(tiny, NIGHTS[0]).select("person_pid", "id_number", pl.col("name").alias("before"))
    for night in NIGHTS[1:]:
        now = hukou_rows(tiny, night).select("person_pid", "id_number", pl.col("name").alias("after"))
        changed = first.join(now, on=["person_pid", "id_number"]).filter(pl.col("before") != pl.col("after"))
        assert changed.height >= 2 * NIGHTS.index(night)
        rec = records(tiny, night)
        members = rec.filter(pl.col("dataset") == "register_members")
        reg = changed.join(members.select("person_pid", "name_raw"), on="person_pid")
        assert reg.height >= 1  # at least one register member a night
        assert (reg["name_raw"] != reg["after"]).all()
        mismatch = clues(tiny, night).filter(pl.col("rule_code") == "NAME_MISMATCH").with_columns(
            pl.col("subject_pid").cast(pl.Int64))
        for pid, after in reg.select("person_pid", "after").iter_rows():
            assert after in mismatch.filter(pl.col("subject_pid") == pid)["evidence_key"].to_list()
        mine = rec.filter(pl.col("person_pid").is_in(changed["person_pid"].to_list()))
        assert mine["phenomenon"].is_in(PHENOMENA[: PHENOMENA.index("name_corrected") + 1]).all()
        assert "name_corrected" in mine["phenomenon"].to_list()
        dept = mine.filter(pl.col("dataset") != "hukou")
        assert dept.height and (dept["true_name"] != dept["name_raw"]).all()
        assert dept.filter(pl.col("name_corruption") == "name_corrected").height > 0
        # Departments keep the old name.
        old = dept.join(changed.select("person_pid", "before"), on="person_pid")
        assert (old.filter(pl.col("name_corruption") == "name_corrected")["name_raw"]
                == old.filter(pl.col("name_corruption") == "name_corrected")["before"]).all()


def test_namesakes_in_a_village_and_a_household(tiny: Path) -> None:
    people = residents(tiny).filter(pl.col("origin") == "resident")
    config = json.loads((tiny / "truth" / "config.json").read_text(encoding="utf-8"))["phenomena"]["made"]
    assert config["namesake_household"] >= 2 and config["namesake_village"] >= 2
    same_hh = people.group_by("hukou_number", "name").agg(pl.len().alias("n"), pl.col("sex").n_unique().alias("sexes"),
                                                          pl.col("birth_date").min().alias("old"),
                                                          pl.col("birth_date").max().alias("young"))
    same_hh = same_hh.filter(pl.col("n") > 1)
    assert same_hh.height >= 2 and (same_hh["sexes"] == 1).all()
    assert ((same_hh["young"] - same_hh["old"]).dt.total_days() > 15 * 365).all()  # another generation
    village = people.group_by("address_code", "name", "sex").agg(pl.col("hukou_number").n_unique().alias("households"))
    assert village.filter(pl.col("households") > 1).height >= 2
    rec = records(tiny, NIGHTS[0])
    assert rec.filter(pl.col("phenomenon") == "namesake").height > 0
