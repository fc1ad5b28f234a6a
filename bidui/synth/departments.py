"""Background department records for the whole population, before any planted case.

Rates are plausible for a rural prefecture of Guizhou; register households get fewer of the
things that would disqualify them (they were screened once), so most of their rule hits come
from the planted cases in `plants.py` and from natural change over nights.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from bidui.datasets import BY_CODE, VEHICLE_TYPE_NAMES
from bidui.synth import phenomena, vocab
from bidui.synth.corrupt import person_fields
from bidui.synth.state import World
from bidui.synth.world import days

# Share of the XLSX files' ID cells that Excel turned into numbers.
NUMERIC_ID_SHARE = {"dangerous_housing": 1.0, "vehicles": 0.02}
# Datasets where a missing ID is written (another column still identifies: village, date).
MISSING_ID_OK = {"dangerous_housing", "deaths"}
DAMPEN_MEMBERS = 0.08  # register members keep this share of disqualifying background records


def add_records(w: World, dataset: str, rows: pl.DataFrame) -> None:
    """Append department rows (with `_pid`), writing their person fields as the department does."""
    ds = BY_CODE[dataset]
    if ds.persons and "_pid" in rows.columns and len(rows):
        ref = ds.persons[0]
        rows = person_fields(rows, w.persons, ref.id_column, ref.name_column, w.cfg.corruption, w.rng,
                             allow_missing=dataset in MISSING_ID_OK,
                             numeric_share=NUMERIC_ID_SHARE.get(dataset, 0.0))
        rows = phenomena.apply_records(w, dataset, rows)
        if dataset == "dangerous_housing":
            # An appraisal without an ID still names its village (that is what identifies it).
            village = pl.Series(w.array("address_code")[rows["_pid"].to_numpy()])
            rows = rows.with_columns(pl.when(pl.col("_id_corr") == "id_missing").then(village)
                                     .otherwise(pl.col("village_code")).alias("village_code"))
    w.append(dataset, rows)


def member_pids(w: World) -> set[int]:
    return set(w.tables["register_members"]["_pid"].to_list()) if "register_members" in w.tables else set()


def _dampen(w: World, pids: np.ndarray) -> np.ndarray:
    """Keep-mask that drops most disqualifying records of register members."""
    members = np.isin(pids, np.fromiter(member_pids(w), dtype=np.int64))
    return ~members | (w.rng.random(len(pids)) < DAMPEN_MEMBERS)


def _county(codes: pl.Expr) -> pl.Expr:
    return codes.str.slice(0, 6)


def living(w: World) -> pl.DataFrame:
    p = w.persons
    return p.filter(pl.col("in_hukou") & (pl.col("status") == "正常"))


def age_expr(run_days: int) -> pl.Expr:
    return ((run_days - pl.col("birth")) / 365.2425).floor().cast(pl.Int32)


def pick(rng: np.random.Generator, options: tuple | list, n: int, p=None) -> np.ndarray:
    arr = np.array(list(options), dtype=object)
    if p is not None:
        p = np.asarray(p, dtype=float)
        p = p / p.sum()
    return rng.choice(arr, n, p=p)


def outsiders_sample(w: World, n: int) -> np.ndarray:
    out = w.persons.filter(pl.col("origin") == "outsider")["pid"].to_numpy()
    return w.rng.choice(out, n) if len(out) and n else np.array([], dtype=np.int64)



def fill(template: str, county: str, town: str) -> str:
    return template.format(county=county, town=town)


# ---------------------------------------------------------------- public security


def background_life_events(w: World) -> None:
    """Deaths, moves out and cancellations that already happened before the first night."""
    rng, run = w.rng, days(w.run)
    p = w.persons
    age = ((run - p["birth"].to_numpy()) / 365.2425).astype(int)
    resident = p["in_hukou"].to_numpy()
    r = rng.random(len(p))
    dead = resident & (r < np.clip((age - 40) / 60, 0, 1) ** 3 * 0.06)
    moved = resident & ~dead & (age >= 18) & (age <= 45) & (rng.random(len(p)) < 0.012)
    cancelled = resident & ~dead & ~moved & (rng.random(len(p)) < 0.0015)
    status = np.where(dead, "死亡", np.where(moved, "迁出", np.where(cancelled, "注销", p["status"].to_numpy())))
    sdate = np.where(dead, run - rng.integers(20, 3 * 365, len(p)),
                     np.where(moved | cancelled, run - rng.integers(30, 6 * 365, len(p)), -1))
    w.persons = p.with_columns(pl.Series("status", status.astype(str)),
                               pl.Series("status_date", sdate.astype(np.int32)))


def hukou_table(w: World) -> pl.DataFrame:
    """The hukou extract is the spine: clean, written straight from the truth. A corrected name
    (`hukou_name`) is written here only; a person with two IDs has a second, cancelled row
    (`_alias`) under the old ID and an old hukou number."""
    p = w.persons.filter(pl.col("in_hukou"))
    name = pl.coalesce("hukou_name", "name") if "hukou_name" in p.columns else pl.col("name")
    sex = pl.when(pl.col("male")).then(pl.lit("男")).otherwise(pl.lit("女")).alias("sex")
    hidden = (pl.lit("").alias("_name_corr"), pl.lit(False).alias("_numeric_id"), pl.lit("").alias("_phen"))
    main = p.select(
        pl.col("id_number"), name.alias("name"), sex,
        pl.col("birth").alias("birth_date"), "hukou_number", "relation", "address_code", "hukou_type",
        "status", pl.when(pl.col("status_date") >= 0).then(pl.col("status_date")).alias("status_date"),
        pl.col("pid").alias("_pid"), pl.col("pid").alias("_rec"), pl.lit("").alias("_id_corr"), *hidden,
        pl.lit(False).alias("_alias"),
    )
    if not w.aliases.height:
        return main
    alias = w.aliases.join(p, on="pid", how="inner").select(
        pl.col("alias_id_number").alias("id_number"), name.alias("name"), sex, pl.col("birth").alias("birth_date"),
        pl.col("alias_hukou_number").alias("hukou_number"), "relation", "address_code", "hukou_type",
        pl.lit("注销").alias("status"), pl.col("alias_status_date").alias("status_date"),
        pl.col("pid").alias("_pid"), (pl.col("pid") + phenomena.ALIAS_REC).alias("_rec"),
        pl.lit("id_alias").alias("_id_corr"), *hidden, pl.lit(True).alias("_alias"))
    return pl.concat([main, alias.cast(dict(main.schema))])


def background_changes(w: World) -> None:
    rng, run = w.rng, days(w.run)
    p = w.persons.filter(pl.col("in_hukou"))
    window = run - 6 * 365
    parts = []
    ev = p.filter((pl.col("status") == "死亡") & (pl.col("status_date") > window))
    parts.append(ev.select("pid", pl.lit("死亡注销").alias("change_type"), pl.col("status_date").alias("change_date"),
                           pl.col("hukou_number").alias("from_hukou_number"), pl.lit(None, pl.String).alias("to_hukou_number")))
    ev = p.filter((pl.col("status") == "迁出") & (pl.col("status_date") > window))
    parts.append(ev.select("pid", pl.lit("迁出").alias("change_type"), pl.col("status_date").alias("change_date"),
                           pl.col("hukou_number").alias("from_hukou_number"), pl.lit(None, pl.String).alias("to_hukou_number")))
    ev = p.filter(pl.col("birth") > window)
    parts.append(ev.select("pid", pl.lit("出生登记").alias("change_type"),
                           (pl.col("birth") + 30).clip(upper_bound=run - 1).alias("change_date"),
                           pl.lit(None, pl.String).alias("from_hukou_number"), pl.col("hukou_number").alias("to_hukou_number")))
    conv = p.filter(pl.col("hukou_type") == "非农业").sample(fraction=0.25, seed=int(rng.integers(1 << 31)))
    parts.append(conv.select("pid", pl.lit("农转非").alias("change_type"),
                             pl.lit(0).alias("change_date"), pl.col("hukou_number").alias("from_hukou_number"),
                             pl.col("hukou_number").alias("to_hukou_number")))
    movers = p.filter(pl.col("status") == "正常").sample(fraction=0.01, seed=int(rng.integers(1 << 31)))
    parts.append(movers.select("pid", pl.lit("迁入").alias("change_type"), pl.lit(0).alias("change_date"),
                               pl.lit(None, pl.String).alias("from_hukou_number"), pl.col("hukou_number").alias("to_hukou_number")))
    # Young couples who split off from the parents' household (a normal 分户).
    age = age_expr(run)
    heads = p.filter((pl.col("relation") == "户主") & (age < 45) & (pl.col("status") == "正常"))
    heads = heads.sample(fraction=0.05, seed=int(rng.integers(1 << 31)))
    others = p.filter(pl.col("relation") == "户主")["hukou_number"].to_numpy()
    parts.append(heads.select("pid", pl.lit("分户").alias("change_type"), pl.lit(0).alias("change_date"),
                              pl.Series("from_hukou_number", rng.choice(others, len(heads)).astype(str)),
                              pl.col("hukou_number").alias("to_hukou_number")))
    df = pl.concat([x.with_columns(pl.col("change_date").cast(pl.Int32)) for x in parts])
    df = df.with_columns(
        pl.when(pl.col("change_date") == 0)
        .then(pl.Series(rng.integers(window, run - 1, len(df)).astype(np.int32)))
        .otherwise(pl.col("change_date")).alias("change_date"))
    add_records(w, "hukou_changes", df.rename({"pid": "_pid"}).select(
        pl.lit(None, pl.String).alias("id_number"), pl.lit(None, pl.String).alias("name"),
        "change_type", "change_date", "from_hukou_number", "to_hukou_number", "_pid"))


# ---------------------------------------------------------------- health


def background_deaths(w: World) -> None:
    p = w.persons.filter((pl.col("status") == "死亡") & (pl.col("status_date") > days(w.run) - 4 * 365))
    p = p.sample(fraction=0.92, seed=int(w.rng.integers(1 << 31)))
    add_records(w, "deaths", p.select(pl.lit(None, pl.String).alias("id_number"), pl.lit(None, pl.String).alias("name"),
                                      pl.col("status_date").alias("death_date"), pl.col("pid").alias("_pid")))


def background_insurance(w: World) -> None:
    rng = w.rng
    p = living(w)
    r = rng.random(len(p))
    members = np.isin(p["pid"].to_numpy(), np.fromiter(member_pids(w), dtype=np.int64))
    status = np.where(members, "参保", np.where(r < 0.96, "参保", np.where(r < 0.99, "未参保", "中断")))
    add_records(w, "medical_insurance", p.select(
        pl.lit(None, pl.String).alias("id_number"), pl.lit(None, pl.String).alias("name"),
        pl.lit(w.run.year).alias("year"), pl.Series("status", status.astype(str)), pl.col("pid").alias("_pid")))


def claims_for(w: World, pids: np.ndarray, start: int, end: int, rate_per_year: float) -> pl.DataFrame:
    """Claims settled between start and end (days) for these people, Poisson by age."""
    rng = w.rng
    span_years = (end - start) / 365.0
    k = rng.poisson(rate_per_year * span_years, len(pids))
    who = np.repeat(pids, k)
    n = len(who)
    members = np.isin(who, np.fromiter(member_pids(w), dtype=np.int64))
    total = np.round(rng.lognormal(7.0, 1.15, n), 2)
    oop_share = np.where(members, rng.uniform(0.05, 0.15, n), rng.uniform(0.2, 0.5, n))
    oop = np.round(total * oop_share, 2)
    villages = w.array("address_code")[np.minimum(who, len(w.persons) - 1)]
    county = w.division_names()
    hosp = [fill(vocab.HOSPITALS[i], county.get(v[:6] + "000000", "黔中州"), county.get(v[:9] + "000", ""))
            for i, v in zip(rng.integers(0, len(vocab.HOSPITALS), n), villages, strict=True)]
    return pl.DataFrame({
        "id_number": pl.Series([None] * n, dtype=pl.String), "name": pl.Series([None] * n, dtype=pl.String),
        "settle_date": rng.integers(start, end + 1, n).astype(np.int32),
        "total_cost": total, "out_of_pocket": oop, "hospital": hosp, "_pid": who.astype(np.int64)})


def background_claims(w: World) -> None:
    run = days(w.run)
    p = living(w)
    add_records(w, "medical_claims", claims_for(w, p["pid"].to_numpy(), run - 400, run, 0.45))


# ---------------------------------------------------------------- education


SCHOOL_AGE = (("学前", 3, 5), ("小学", 6, 11), ("初中", 12, 14), ("高中", 15, 17), ("本科", 18, 21))


def background_students(w: World) -> None:
    rng, run = w.rng, days(w.run)
    p = living(w).with_columns(age=age_expr(run)).filter((pl.col("age") >= 3) & (pl.col("age") <= 24))
    age = p["age"].to_numpy()
    n = len(p)
    members = np.isin(p["pid"].to_numpy(), np.fromiter(member_pids(w), dtype=np.int64))
    stage = np.full(n, "", dtype=object)
    enrolled = np.zeros(n, dtype=bool)
    r = rng.random(n)
    for name, lo, hi in SCHOOL_AGE:
        m = (age >= lo) & (age <= hi)
        stage[m] = name
    stage[(age == 6) & (r < 0.4)] = "学前"
    stage[(age == 15) & (r < 0.5)] = "初中"
    hs = (age >= 15) & (age <= 17) & (stage == "高中")
    stage[hs & (rng.random(n) < 0.4)] = "中职"
    univ = (age >= 18) & (age <= 21)
    stage[univ & (rng.random(n) < 0.5)] = "高职"
    compulsory = (age >= 7) & (age <= 15)
    enrolled = np.where(age <= 5, r < 0.75, np.where(compulsory, members | (r < 0.995),
                        np.where(age <= 17, r < 0.8, np.where(age <= 21, r < 0.4, False))))
    status = np.where(enrolled, np.where(rng.random(n) < 0.005, "休学", "在读"), "")
    # School leavers keep a record: graduated (毕业) from the last stage they finished.
    grad = ~enrolled & (age >= 15)
    stage[grad] = np.where(age[grad] <= 18, "初中", "高中")
    status[grad & (rng.random(n) < 0.8)] = "毕业"
    keep = status != ""
    private = (rng.random(n) < 0.03) & _dampen(w, p["pid"].to_numpy())
    fee = np.where(private, np.round(rng.choice([6000, 9000, 12000, 16000, 18000, 24000, 36000], n), 0),
                   np.where(np.isin(stage, ["高职", "本科"]), 5500, 0))
    div = w.division_names()
    villages = p["address_code"].to_numpy()
    school = []
    for v, st, pr in zip(villages, stage, private, strict=True):
        county, town = div.get(v[:6] + "000000", ""), div.get(v[:9] + "000", "")
        tpl = vocab.PRIVATE_SCHOOLS[int(v) % len(vocab.PRIVATE_SCHOOLS)] if pr else vocab.PUBLIC_SCHOOLS.get(st, "{county}第一中学")
        school.append(fill(tpl, county, town))
    df = pl.DataFrame({"id_number": pl.Series([None] * n, dtype=pl.String),
                       "name": pl.Series([None] * n, dtype=pl.String),
                       "school_name": school, "school_type": np.where(private, "民办", "公办").astype(str),
                       "stage": stage.astype(str), "status": status.astype(str), "annual_fee": fee.astype(float),
                       "_pid": p["pid"].to_numpy()}).filter(pl.Series(keep))
    add_records(w, "students", df)


# ---------------------------------------------------------------- housing


def cert_numbers(w: World, counties: list[str], years: np.ndarray) -> list[str]:
    div = w.division_names()
    start = w.next_rec
    return [f"{vocab.PREFECTURE_ABBR}({y}){div.get(c, '')}不动产权第{start + i:07d}号"
            for i, (c, y) in enumerate(zip(counties, years, strict=True))]


def property_rows(w: World, pids: np.ndarray, region: np.ndarray, house_type: np.ndarray) -> pl.DataFrame:
    rng, n = w.rng, len(pids)
    villages = w.array("address_code")[pids]
    counties = [v[:6] + "000000" if v else "529001000000" for v in villages]
    reg = rng.integers(days(w.run) - 16 * 365, days(w.run) - 30, n).astype(np.int32)
    years = 1970 + (reg / 365.2425).astype(int)
    div = w.division_names()
    loc = [f"{div.get(c, '')}{rng.choice(list(vocab.FIRM_WORDS))}小区{int(rng.integers(1, 30))}栋"
           if r == "城镇" else f"{div.get(v[:9] + '000', '')}{div.get(v, '')}{int(rng.integers(1, 12))}组"
           for c, v, r in zip(counties, villages, region, strict=True)]
    usage = np.where((house_type == "商品房") & (rng.random(n) < 0.08), "商业", "住宅")
    area = np.round(np.where(region == "城镇", rng.uniform(55, 140, n), rng.uniform(60, 220, n)), 2)
    return pl.DataFrame({"owner_id_number": pl.Series([None] * n, dtype=pl.String),
                         "owner_name": pl.Series([None] * n, dtype=pl.String),
                         "cert_number": cert_numbers(w, counties, years), "location": loc,
                         "region_type": region.astype(str), "usage": usage.astype(str),
                         "house_type": house_type.astype(str), "area": area, "register_date": reg,
                         "_pid": pids.astype(np.int64)})


def background_property(w: World) -> None:
    rng = w.rng
    heads = living(w).filter(pl.col("relation") == "户主")
    urban = heads["address_code"].is_in(
        w.divisions.filter(pl.col("urban_rural") == "城镇")["code"].implode()).to_numpy()
    pids = heads["pid"].to_numpy()
    r = rng.random(len(heads))
    ok = _dampen(w, pids)
    buy = np.where(urban, r < 0.65, (r < 0.09) & ok)
    members = np.isin(pids, np.fromiter(member_pids(w), dtype=np.int64))
    resettled = members & (rng.random(len(pids)) < 0.10)
    self_built = ~urban & (rng.random(len(pids)) < 0.7)
    social = urban & (rng.random(len(pids)) < 0.03)
    rows = [
        property_rows(w, pids[buy], np.full(int(buy.sum()), "城镇"), np.full(int(buy.sum()), "商品房")),
        property_rows(w, pids[resettled], np.full(int(resettled.sum()), "城镇"), np.full(int(resettled.sum()), "安置房")),
        property_rows(w, pids[self_built], np.full(int(self_built.sum()), "乡村"), np.full(int(self_built.sum()), "自建房")),
        property_rows(w, pids[social], np.full(int(social.sum()), "城镇"), np.full(int(social.sum()), "保障房")),
    ]
    out = outsiders_sample(w, int(len(heads) * 0.01))
    rows.append(property_rows(w, out, np.full(len(out), "城镇"), np.full(len(out), "商品房")))
    add_records(w, "property", pl.concat(rows))


def appraisal_rows(w: World, pids: np.ndarray, grade: np.ndarray, renovated: np.ndarray,
                   when: np.ndarray) -> pl.DataFrame:
    n = len(pids)
    villages = w.array("address_code")[pids]
    vcol = np.where(w.rng.random(n) < 0.9, villages, None)
    return pl.DataFrame({"owner_id_number": pl.Series([None] * n, dtype=pl.String),
                         "owner_name": pl.Series([None] * n, dtype=pl.String),
                         "village_code": pl.Series(vcol.tolist(), dtype=pl.String),
                         "grade": grade.astype(str), "appraisal_date": when.astype(np.int32),
                         "renovated": renovated.astype(str), "_pid": pids.astype(np.int64)})


def background_dangerous(w: World) -> None:
    rng, run = w.rng, days(w.run)
    rural = w.divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    heads = living(w).filter((pl.col("relation") == "户主") & pl.col("address_code").is_in(rural))
    pids = heads["pid"].to_numpy()
    members = np.isin(pids, np.fromiter(member_pids(w), dtype=np.int64))
    appraised = members | (rng.random(len(pids)) < 0.08)
    pids, members = pids[appraised], members[appraised]
    n = len(pids)
    grade = np.where(members, pick(rng, "ABCD", n, [40, 30, 18, 12]), pick(rng, "ABCD", n, [50, 30, 12, 8]))
    unsafe = np.isin(grade, ["C", "D"])
    reno = np.where(members, "已改造", pick(rng, ("已改造", "改造中", "未改造"), n, [60, 8, 32]))
    reno = np.where(unsafe, reno, "未改造")
    when = rng.integers(run - 8 * 365, run - 60, n)
    add_records(w, "dangerous_housing", appraisal_rows(w, pids, grade, reno, when))


# ---------------------------------------------------------------- commerce


def credit_code(rng: np.random.Generator, kind: str, county: str) -> str:
    alnum = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    head = {"个体工商户": "92", "农民专业合作社": "93"}.get(kind, "91")
    return head + county[:6] + "".join(alnum[int(i)] for i in rng.integers(0, len(alnum), 10))


ENTERPRISE_TYPES = ("有限责任公司", "股份有限公司", "个人独资企业", "合伙企业")


def business_rows(w: World, pids: np.ndarray, etype: np.ndarray, capital: np.ndarray,
                  status: np.ndarray, established: np.ndarray) -> pl.DataFrame:
    rng, n = w.rng, len(pids)
    div = w.division_names()
    villages = w.array("address_code")[pids]
    names_true = w.array("name")[pids]
    codes, entity = [], []
    for v, t, who in zip(villages, etype, names_true, strict=True):
        county = v[:6] if v else "529001"
        cname = div.get(county + "000000", "黔中州")
        codes.append(credit_code(rng, t, county))
        word = vocab.FIRM_WORDS[int(rng.integers(len(vocab.FIRM_WORDS)))]
        if t == "个体工商户":
            shop = vocab.SHOP_TRADES[int(rng.integers(len(vocab.SHOP_TRADES)))]
            entity.append(f"{cname}{div.get(v[:9] + '000', '')}{who[:1]}记{shop}")
        elif t == "农民专业合作社":
            entity.append(f"{cname}{word}种养殖农民专业合作社")
        else:
            trade = vocab.FIRM_TRADES[int(rng.integers(len(vocab.FIRM_TRADES)))]
            entity.append(f"黔中{word}{trade}{'有限公司' if '公司' in t else '商行'}")
    return pl.DataFrame({"credit_code": codes, "entity_name": entity, "entity_type": etype.astype(str),
                         "legal_rep_name": pl.Series([None] * n, dtype=pl.String),
                         "legal_rep_id_number": pl.Series([None] * n, dtype=pl.String),
                         "registered_capital": capital.astype(float), "established_date": established.astype(np.int32),
                         "status": status.astype(str), "_pid": pids.astype(np.int64)})


def background_businesses(w: World) -> None:
    rng, run = w.rng, days(w.run)
    adults = living(w).with_columns(age=age_expr(run)).filter((pl.col("age") >= 20) & (pl.col("age") <= 65))
    pids = adults["pid"].to_numpy()
    r = rng.random(len(pids))
    ok = _dampen(w, pids)
    shop = (r < 0.04) & ok
    firm = (r >= 0.04) & (r < 0.052) & ok
    coop = (r >= 0.052) & (r < 0.06)  # cooperatives are not disqualifying: members keep theirs
    parts = []
    for mask, kinds, p_kind in ((shop, ("个体工商户",), None), (firm, ENTERPRISE_TYPES, [70, 5, 18, 7]),
                                (coop, ("农民专业合作社",), None)):
        ps = pids[mask]
        n = len(ps)
        etype = pick(rng, kinds, n, p_kind)
        cap = np.where(etype == "个体工商户", np.round(rng.choice([0.5, 1, 2, 3, 5, 8, 10, 20, 30], n,
                       p=[.2, .25, .2, .12, .1, .05, .04, .03, .01]), 2), np.round(rng.choice([10, 50, 100, 200, 500], n), 2))
        status = pick(rng, ("存续", "在业", "注销", "吊销"), n, [50, 30, 15, 5])
        est = rng.integers(run - 20 * 365, run - 30, n)
        parts.append(business_rows(w, ps, etype, cap, status, est))
    out = outsiders_sample(w, int(len(pids) * 0.002))
    parts.append(business_rows(w, out, np.full(len(out), "有限责任公司"), np.full(len(out), 100.0),
                               np.full(len(out), "存续"), np.full(len(out), run - 1000)))
    add_records(w, "businesses", pl.concat(parts))
    # Investors: enterprises list their rep and up to two others; cooperatives five farmers.
    b = w.tables["businesses"].filter(pl.col("entity_type") != "个体工商户")
    living_pids = living(w)["pid"].to_numpy()
    rows = []
    for code, etype, rep in zip(b["credit_code"], b["entity_type"], b["_pid"], strict=True):
        others = 4 if etype == "农民专业合作社" else int(rng.integers(0, 3))
        people = [rep, *rng.choice(living_pids, others).tolist()]
        for i, who in enumerate(people):
            rows.append((code, None, None, round(float(rng.choice([1, 5, 10, 20, 50])) * (2 if i == 0 else 1), 2), int(who)))
    inv = pl.DataFrame(rows, schema={"credit_code": pl.String, "investor_name": pl.String,
                                     "investor_id_number": pl.String, "subscribed_capital": pl.Float64,
                                     "_pid": pl.Int64}, orient="row")
    keep = _dampen(w, inv["_pid"].to_numpy()) | inv["credit_code"].str.starts_with("93").to_numpy()
    add_records(w, "business_investors", inv.filter(pl.Series(keep)))


# ---------------------------------------------------------------- vehicles


COUNTED_TYPES = ("K33", "K33", "K33", "K31", "K41", "H31", "H21", "Q11", "J11", "Z51")
UNCOUNTED_TYPES = ("M21", "M21", "M21", "N11", "H51", "H41", "T21", "T22")
_NAME_OF = {code: name for name, code in VEHICLE_TYPE_NAMES.items()}


def plates(w: World, n: int) -> list[str]:
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    start = w.next_rec
    return [f"{vocab.PLATE_PREFIX}J{letters[(start + i) % 24]}{(start + i) * 7919 % 100000:05d}"
            if i % 3 else f"{vocab.PLATE_PREFIX}J{(start + i) * 104729 % 100000:05d}" for i in range(n)]


def vehicle_rows(w: World, pids: np.ndarray, vtype: np.ndarray, status: np.ndarray,
                 use: np.ndarray | None = None, registered: np.ndarray | None = None) -> pl.DataFrame:
    rng, n = w.rng, len(pids)
    run = days(w.run)
    written = np.array([_NAME_OF[t] if t in _NAME_OF and rng.random() < 0.3 else t for t in vtype], dtype=object)
    if use is None:
        use = np.where(np.char.startswith(vtype.astype(str), "H") | np.char.startswith(vtype.astype(str), "Q"),
                       "营运", "非营运")
    if registered is None:
        registered = rng.integers(run - 15 * 365, run - 30, n)
    return pl.DataFrame({"plate": plates(w, n), "use_nature": use.astype(str), "vehicle_type": written.astype(str),
                         "owner_name": pl.Series([None] * n, dtype=pl.String),
                         "owner_id_number": pl.Series([None] * n, dtype=pl.String),
                         "register_date": registered.astype(np.int32), "status": status.astype(str),
                         "_pid": pids.astype(np.int64)})


def background_vehicles(w: World) -> None:
    rng, run = w.rng, days(w.run)
    adults = living(w).with_columns(age=age_expr(run)).filter((pl.col("age") >= 20) & (pl.col("age") <= 70))
    urban_codes = w.divisions.filter(pl.col("urban_rural") == "城镇")["code"].implode()
    urban = adults["address_code"].is_in(urban_codes).to_numpy()
    pids = adults["pid"].to_numpy()
    n = len(pids)
    car = (rng.random(n) < np.where(urban, 0.16, 0.07)) & _dampen(w, pids)
    moto = rng.random(n) < np.where(urban, 0.04, 0.12)
    parts = []
    for mask, types in ((car, COUNTED_TYPES), (moto, UNCOUNTED_TYPES)):
        ps = pids[mask]
        k = len(ps)
        status = pick(rng, ("正常", "逾期未检验", "报废", "注销", "转出", "查封"), k, [86, 5, 4, 3, 1, 1])
        use = np.where(rng.random(k) < 0.004, "残疾人专用", None)
        vt = pick(rng, types, k)
        df = vehicle_rows(w, ps, vt, status)
        df = df.with_columns(pl.when(pl.Series(use.tolist(), dtype=pl.String).is_not_null())
                             .then(pl.Series(use.tolist(), dtype=pl.String)).otherwise(pl.col("use_nature")).alias("use_nature"))
        parts.append(df)
    out = outsiders_sample(w, int(n * 0.01))
    parts.append(vehicle_rows(w, out, np.full(len(out), "K33"), np.full(len(out), "正常")))
    add_records(w, "vehicles", pl.concat(parts))


# ---------------------------------------------------------------- finance


def payroll_rows(w: World, pids: np.ndarray) -> pl.DataFrame:
    rng, n = w.rng, len(pids)
    div = w.division_names()
    villages = w.array("address_code")[pids]
    emp = [fill(vocab.EMPLOYERS[int(rng.integers(len(vocab.EMPLOYERS)))],
                div.get(v[:6] + "000000", "黔中州"), div.get(v[:9] + "000", "")) for v in villages]
    return pl.DataFrame({"id_number": pl.Series([None] * n, dtype=pl.String),
                         "name": pl.Series([None] * n, dtype=pl.String), "employer": emp,
                         "staff_type": pick(rng, vocab.STAFF_TYPES, n, [35, 45, 12, 8]).astype(str),
                         "_pid": pids.astype(np.int64)})


def background_payroll(w: World) -> None:
    rng, run = w.rng, days(w.run)
    adults = living(w).with_columns(age=age_expr(run)).filter((pl.col("age") >= 22) & (pl.col("age") <= 60))
    urban_codes = w.divisions.filter(pl.col("urban_rural") == "城镇")["code"].implode()
    urban = adults["address_code"].is_in(urban_codes).to_numpy()
    pids = adults["pid"].to_numpy()
    staff = (rng.random(len(pids)) < np.where(urban, 0.06, 0.015)) & _dampen(w, pids)
    add_records(w, "payroll", payroll_rows(w, pids[staff]))
