"""Expected clues: the rules of shared/rules.md evaluated on the true world.

This is the answer key, not the product: it knows who every record truly belongs to, so it
needs no linkage. It reads the snapshots in force on the night (a skipped or held file leaves
the previous night's in force) and follows rules.md literally; where rules.md is silent, the
choice is written in synth/README.md ("Reading of the rules").
"""

from __future__ import annotations

from datetime import date

import polars as pl

from bidui.datasets import VEHICLE_TYPE_NAMES
from bidui.ids import IdStatus, normalise_id
from bidui.names import form_key

CATEGORY = {
    "VEHICLE": "mis_inclusion", "BUSINESS": "mis_inclusion", "URBAN_PROPERTY": "mis_inclusion",
    "PUBLIC_PAYROLL": "mis_inclusion", "HIGH_FEE_SCHOOL": "mis_inclusion", "HOUSEHOLD_SPLIT": "mis_inclusion",
    "DECEASED": "natural_change", "MOVED_OUT": "natural_change", "NONAGRI_HUKOU": "natural_change",
    "ID_INVALID": "data_quality", "NOT_IN_HUKOU": "data_quality", "NAME_MISMATCH": "data_quality",
    "DUPLICATE_MEMBER": "data_quality", "DANGEROUS_HOUSE": "exit_risk", "DROPOUT": "exit_risk",
    "UNINSURED": "exit_risk", "HIGH_MEDICAL_COST": "exit_risk", "MISSED_DANGEROUS_HOUSE": "missed_inclusion",
    "MISSED_MEDICAL": "missed_inclusion",
}
EVIDENCE_DATASET = {
    "VEHICLE": "vehicles", "BUSINESS": "businesses", "URBAN_PROPERTY": "property", "PUBLIC_PAYROLL": "payroll",
    "HIGH_FEE_SCHOOL": "students", "HOUSEHOLD_SPLIT": "hukou_changes", "DECEASED": "hukou|deaths",
    "MOVED_OUT": "hukou", "NONAGRI_HUKOU": "hukou|hukou_changes", "ID_INVALID": "register_members",
    "NOT_IN_HUKOU": "hukou", "NAME_MISMATCH": "hukou", "DUPLICATE_MEMBER": "register_members",
    "DANGEROUS_HOUSE": "dangerous_housing", "DROPOUT": "students", "UNINSURED": "medical_insurance",
    "HIGH_MEDICAL_COST": "medical_claims", "MISSED_DANGEROUS_HOUSE": "dangerous_housing",
    "MISSED_MEDICAL": "medical_claims",
}
COLUMNS = ("rule_code", "category", "subject_pid", "subject_id_number", "subject_id_number_raw", "subject_name",
           "household_code", "hukou_number", "township_code", "village_code", "evidence_dataset", "evidence_key",
           "before_registration", "household_status")

ACTIVE_VEHICLE = ("正常", "查封", "逾期未检验")
ACTIVE_ENTITY = ("存续", "在业")
MEDICAL_HOUSEHOLD = 10_000.0
MEDICAL_MISSED = 20_000.0
SCHOOL_FEE = 20_000.0
INDIVIDUAL_CAPITAL = 10.0


def vehicle_code(written: str) -> str:
    return VEHICLE_TYPE_NAMES.get(written.strip(), written.strip().upper())


def counted_vehicle(code: str) -> bool:
    return code[:1] in ("K", "J", "Q", "Z") or code[:2] in ("H1", "H2", "H3")


def iso(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Date).dt.strftime("%Y-%m-%d")


def _age(birth: pl.Expr, run: date) -> pl.Expr:
    later = (birth.dt.month().cast(pl.Int32) * 100 + birth.dt.day().cast(pl.Int32)) > (run.month * 100 + run.day)
    return (run.year - birth.dt.year().cast(pl.Int32) - later.cast(pl.Int32)).cast(pl.Int32)


def expected_clues(run: date, persons: pl.DataFrame, households: pl.DataFrame, divisions: pl.DataFrame,
                   t: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """All clues the rules should raise on `run`, given the tables in force (with `_pid`)."""
    rd = (run - date(1970, 1, 1)).days
    hukou = t["hukou"]
    # A person's hukou record is the primary one: a second, cancelled record under an old ID
    # (一人多号, `_alias`) is not a second person and raises nothing. Everything joins on the
    # person (`_pid`), never on an ID number, which two people may share (一号多人).
    alias = pl.col("_alias") if "_alias" in hukou.columns else pl.lit(False)
    all_records = hukou.select(pl.col("_pid").alias("pid"), "id_number", "name")
    in_hukou = hukou.filter(~alias).select(pl.col("_pid").alias("pid"), "id_number", "name", "hukou_number",
                                           "address_code", "hukou_type", "status", "status_date", "relation",
                                           "birth_date")
    members = t["register_members"].with_row_index("_row")
    norm = [normalise_id(v) for v in members["id_number"].to_list()]
    members = members.with_columns(
        pl.Series("norm_id", [n for n, _ in norm], dtype=pl.String),
        pl.Series("id_status", [str(s) for _, s in norm], dtype=pl.String),
        pl.col("id_number").str.strip_chars().alias("raw_id"),
    ).join(households.select("household_code", "village_code", pl.col("status").alias("household_status"),
                             "registered_year"), on="household_code", how="left")
    linked = members.join(in_hukou.select("pid", pl.col("hukou_number").alias("m_hukou"),
                                          pl.col("birth_date").alias("h_birth")),
                          left_on="_pid", right_on="pid", how="left")
    own_birth = pl.col("norm_id").str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    linked = linked.with_columns(
        pl.when(pl.col("h_birth").is_not_null()).then(pl.col("h_birth").cast(pl.Date)).otherwise(own_birth).alias("birth"))
    linked = linked.with_columns(_age(pl.col("birth"), run).alias("age"))

    subject_cols = [pl.col("norm_id").alias("subject_id_number"), pl.col("raw_id").alias("subject_id_number_raw"),
                    pl.col("name").alias("subject_name"), "household_code",
                    pl.col("m_hukou").fill_null("").alias("hukou_number"), "village_code", "household_status",
                    "registered_year"]
    # One subject row per person: the lowest household code (rules.md, Subjects).
    subjects = (linked.sort("household_code", "_row").group_by("_pid", maintain_order=True).first()
                .select(pl.col("_pid").alias("subject_pid"), *subject_cols))
    subj_id_out = pl.when(pl.col("id_status") == str(IdStatus.VALID)).then(pl.col("norm_id")).otherwise(pl.col("raw_id"))
    subjects = subjects.join(linked.sort("household_code", "_row").group_by("_pid", maintain_order=True).first()
                             .select(pl.col("_pid").alias("subject_pid"), subj_id_out.alias("_sid")), on="subject_pid")
    subjects = subjects.with_columns(pl.col("_sid").alias("subject_id_number")).drop("_sid")
    member_pids = subjects["subject_pid"].implode()
    out: list[pl.DataFrame] = []

    def emit(rule: str, df: pl.DataFrame, key: pl.Expr, evidence_date: pl.Expr | None = None) -> None:
        if df.is_empty():
            return
        df = df.with_columns(key.cast(pl.String).fill_null("").alias("evidence_key"))
        if evidence_date is not None and CATEGORY[rule] == "mis_inclusion":
            before = (evidence_date.cast(pl.Date).dt.year() < pl.col("registered_year"))
            df = df.with_columns(before.alias("before_registration"))
        else:
            df = df.with_columns(pl.lit(None, pl.Boolean).alias("before_registration"))
        df = df.with_columns(pl.lit(rule).alias("rule_code"), pl.lit(CATEGORY[rule]).alias("category"),
                             pl.lit(EVIDENCE_DATASET[rule]).alias("evidence_dataset"),
                             (pl.col("village_code").str.slice(0, 9) + "000").alias("township_code"))
        out.append(df.select(COLUMNS).unique(subset=["rule_code", "subject_pid", "household_code", "evidence_key"],
                                             keep="first", maintain_order=True))

    def by_member(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(subjects, left_on="_pid", right_on="subject_pid", how="inner").with_columns(
            pl.col("_pid").alias("subject_pid"))

    # ---------------------------------------------------------------- mis_inclusion
    v = t.get("vehicles")
    if v is not None:
        codes = v["vehicle_type"].map_elements(vehicle_code, return_dtype=pl.String)
        v = v.with_columns(codes.alias("_code"))
        v = v.filter(pl.col("status").is_in(ACTIVE_VEHICLE)
                     & (pl.col("use_nature").fill_null("") != "残疾人专用")
                     & pl.col("_code").map_elements(counted_vehicle, return_dtype=pl.Boolean))
        emit("VEHICLE", by_member(v), pl.col("plate"), pl.col("register_date"))
    b = t.get("businesses")
    if b is not None:
        active = b.filter(pl.col("status").is_in(ACTIVE_ENTITY))
        enterprise = active.filter(~pl.col("entity_type").is_in(["个体工商户", "农民专业合作社"]))
        shops = active.filter((pl.col("entity_type") == "个体工商户")
                              & (pl.col("registered_capital").fill_null(0) >= INDIVIDUAL_CAPITAL))
        reps = pl.concat([enterprise, shops]).select("credit_code", "established_date", "_pid")
        parts = [reps]
        inv = t.get("business_investors")
        if inv is not None:
            parts.append(inv.select("credit_code", "_pid").join(enterprise.select("credit_code", "established_date"),
                                                                on="credit_code"))
        business_hits = pl.concat([x.select("credit_code", "established_date", "_pid") for x in parts])
        emit("BUSINESS", by_member(business_hits), pl.col("credit_code"), pl.col("established_date"))
    p = t.get("property")
    if p is not None:
        hits = p.filter((pl.col("region_type") == "城镇") & (pl.col("house_type") == "商品房"))
        emit("URBAN_PROPERTY", by_member(hits), pl.col("cert_number"), pl.col("register_date"))
    pay = t.get("payroll")
    if pay is not None:
        emit("PUBLIC_PAYROLL", by_member(pay), pl.col("employer"))
    st = t.get("students")
    if st is not None:
        hits = st.filter((pl.col("status") == "在读") & (pl.col("school_type") == "民办")
                         & (pl.col("annual_fee").fill_null(0) >= SCHOOL_FEE))
        emit("HIGH_FEE_SCHOOL", by_member(hits), pl.col("school_name"))
    ch = t.get("hukou_changes")
    if ch is not None:
        five = date(run.year - 5, run.month, run.day if not (run.month == 2 and run.day == 29) else 28)
        lo = (five - date(1970, 1, 1)).days
        splits = ch.filter((pl.col("change_type") == "分户") & (pl.col("change_date") > lo) & (pl.col("change_date") <= rd))
        # Hukou households that hold a register member (living members only).
        living = in_hukou.filter(pl.col("status") == "正常")
        reg_hukou = living.filter(pl.col("pid").is_in(member_pids))["hukou_number"].unique().implode()
        splits = splits.filter(~pl.col("from_hukou_number").is_in(reg_hukou))
        old_enough = linked.group_by("household_code").agg((pl.col("age").fill_null(-1) >= 60).all().alias("all_old"))
        rows = linked.join(old_enough.filter("all_old"), on="household_code").join(
            splits.select("_pid", "from_hukou_number", "change_date"), on="_pid")
        heads = linked.join(households.select("household_code", pl.col("head_pid")), on="household_code").filter(
            pl.col("_pid") == pl.col("head_pid")).sort("_row").unique("household_code", keep="first")
        rows = rows.select("household_code", "from_hukou_number", "change_date").join(
            heads.select(pl.col("_pid").alias("subject_pid"), "household_code", "id_status",
                         *[c for c in subject_cols if not (isinstance(c, str) and c == "household_code")]),
            on="household_code")
        rows = rows.with_columns(pl.when(pl.col("id_status") == str(IdStatus.VALID)).then(pl.col("subject_id_number"))
                                 .otherwise(pl.col("subject_id_number_raw")).alias("subject_id_number"))
        emit("HOUSEHOLD_SPLIT", rows, pl.col("from_hukou_number"), pl.col("change_date"))

    # ---------------------------------------------------------------- natural_change
    dead = in_hukou.filter((pl.col("status") == "死亡") & (pl.col("status_date") <= rd)).select(
        pl.col("pid").alias("_pid"), pl.col("status_date").alias("d"))
    d = t.get("deaths")
    if d is not None:
        dead = pl.concat([dead, d.filter(pl.col("death_date") <= rd).select("_pid", pl.col("death_date").alias("d"))])
    emit("DECEASED", by_member(dead), iso("d"))
    moved = in_hukou.filter(pl.col("status") == "迁出").select(pl.col("pid").alias("_pid"), "status_date")
    emit("MOVED_OUT", by_member(moved), iso("status_date"))
    conv = in_hukou.filter(pl.col("hukou_type") == "非农业").select(pl.col("pid").alias("_pid"))
    if ch is not None:
        changes = ch.filter(pl.col("change_type") == "农转非").select("_pid", pl.col("change_date").alias("c"))
        with_change = changes["_pid"].unique().implode()
        conv = pl.concat([conv.filter(~pl.col("_pid").is_in(with_change)).with_columns(pl.lit(None, pl.Int32).alias("c")),
                          changes])
    else:
        conv = conv.with_columns(pl.lit(None, pl.Int32).alias("c"))
    emit("NONAGRI_HUKOU", by_member(conv), iso("c"))

    # ---------------------------------------------------------------- data_quality
    bad = linked.filter(pl.col("id_status") != str(IdStatus.VALID)).sort("household_code", "_row").unique(
        ["_pid", "raw_id"], keep="first", maintain_order=True)
    emit("ID_INVALID", bad.select(pl.col("_pid").alias("subject_pid"), pl.col("raw_id").alias("subject_id_number"),
                                  *[c for c in subject_cols[1:]]), pl.col("subject_id_number_raw"))
    nowhere = subjects.filter(~pl.col("subject_pid").is_in(in_hukou["pid"].implode()))
    emit("NOT_IN_HUKOU", nowhere, pl.lit(""))
    # The member's name against the hukou record of that same person carrying the member's ID (the
    # cancelled record for an old ID), never against another person who shares the ID.
    exact = linked.filter(pl.col("id_status") == str(IdStatus.VALID)).join(
        all_records.select(pl.col("pid").alias("_pid"), pl.col("id_number").alias("norm_id"),
                           pl.col("name").alias("hukou_name")), on=["_pid", "norm_id"])
    exact = exact.filter(pl.col("name").map_elements(form_key, return_dtype=pl.String)
                         != pl.col("hukou_name").map_elements(form_key, return_dtype=pl.String))
    exact = exact.sort("household_code", "_row").unique(["_pid", "hukou_name"], keep="first", maintain_order=True)
    emit("NAME_MISMATCH", exact.select(pl.col("_pid").alias("subject_pid"), *subject_cols, "hukou_name"),
         pl.col("hukou_name"))
    counts = linked.group_by("_pid").agg(pl.col("household_code").alias("codes"))
    dups = counts.filter(pl.col("codes").list.len() >= 2)
    if dups.height:
        rows = []
        for pid, codes in dups.iter_rows():
            for code in sorted(set(codes)):
                others = list(codes)
                others.remove(code)
                rows.append((pid, code, ";".join(sorted(set(others)))))
        dd = pl.DataFrame(rows, schema={"_pid": pl.Int64, "household_code": pl.String, "others": pl.String}, orient="row")
        per_hh = linked.sort("_row").unique(["_pid", "household_code"], keep="first", maintain_order=True)
        per_hh = per_hh.with_columns(pl.when(pl.col("id_status") == str(IdStatus.VALID)).then(pl.col("norm_id"))
                                     .otherwise(pl.col("raw_id")).alias("norm_id"))
        dd = dd.join(per_hh, on=["_pid", "household_code"]).select(pl.col("_pid").alias("subject_pid"), *subject_cols, "others")
        emit("DUPLICATE_MEMBER", dd, pl.col("others"))

    # ---------------------------------------------------------------- exit_risk
    dh = t.get("dangerous_housing")
    if dh is not None:
        latest = dh.sort("appraisal_date", "_rec").group_by("_pid").last()
        risky = latest.filter(pl.col("grade").is_in(["C", "D"]) & (pl.col("renovated") != "已改造"))
        emit("DANGEROUS_HOUSE", by_member(risky), iso("appraisal_date"))
    if st is not None:
        enrolled = st.filter(pl.col("status").is_in(["在读", "休学"]))["_pid"].unique().implode()
        kids = linked.filter((pl.col("age") >= 7) & (pl.col("age") <= 15) & ~pl.col("_pid").is_in(enrolled))
        kids = kids.sort("household_code", "_row").unique("_pid", keep="first", maintain_order=True)
        emit("DROPOUT", kids.select(pl.col("_pid").alias("subject_pid"), *subject_cols).join(
            subjects.select("subject_pid", pl.col("subject_id_number").alias("_s")), on="subject_pid").with_columns(
            pl.col("_s").alias("subject_id_number")).drop("_s"), pl.lit(""))
    ins = t.get("medical_insurance")
    if ins is not None and ins.filter(pl.col("year") == run.year).height:
        covered = ins.filter((pl.col("year") == run.year) & (pl.col("status") == "参保"))["_pid"].unique().implode()
        emit("UNINSURED", subjects.filter(~pl.col("subject_pid").is_in(covered)), pl.lit(str(run.year)))
    cl = t.get("medical_claims")
    window = None
    if cl is not None:
        window = cl.filter((pl.col("settle_date") > rd - 365) & (pl.col("settle_date") <= rd))
        per_person = window.group_by("_pid").agg(pl.col("out_of_pocket").sum().alias("oop"))
        hh = linked.select("_pid", "household_code", "_row").join(per_person, on="_pid")
        totals = hh.group_by("household_code").agg(pl.col("oop").sum().alias("total"))
        big = totals.filter(pl.col("total") >= MEDICAL_HOUSEHOLD - 1e-6)
        top = hh.join(big, on="household_code").sort(["household_code", "oop", "_row"], descending=[False, True, False]
                                                     ).unique("household_code", keep="first", maintain_order=True)
        top = top.join(linked.select("_pid", "household_code", "id_status", pl.col("norm_id"), "raw_id", "name", "m_hukou",
                                     "village_code", "household_status", "registered_year"), on=["_pid", "household_code"])
        top = top.unique("household_code", keep="first").with_columns(
            pl.when(pl.col("id_status") == str(IdStatus.VALID)).then(pl.col("norm_id")).otherwise(pl.col("raw_id")).alias("norm_id"))
        emit("HIGH_MEDICAL_COST", top.select(pl.col("_pid").alias("subject_pid"), *subject_cols), pl.lit(str(run.year)))

    # ---------------------------------------------------------------- missed_inclusion
    rural = divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    living = in_hukou.filter(pl.col("status") == "正常")
    disq: list[pl.Series] = []
    if v is not None:
        disq.append(v["_pid"])
    if b is not None:
        disq.append(business_hits["_pid"])
    if p is not None:
        disq.append(p.filter((pl.col("region_type") == "城镇") & (pl.col("house_type") == "商品房"))["_pid"])
    if pay is not None:
        disq.append(pay["_pid"])
    disq_pids = pl.concat(disq).unique().implode() if disq else pl.Series([], dtype=pl.Int64).implode()
    bad_hukou = living.filter(pl.col("pid").is_in(member_pids) | pl.col("pid").is_in(disq_pids))["hukou_number"].unique().implode()
    eligible = living.filter(pl.col("address_code").is_in(rural) & ~pl.col("hukou_number").is_in(bad_hukou))
    heads = eligible.sort(pl.col("relation") != "户主", "birth_date", "pid").unique("hukou_number", keep="first",
                                                                                    maintain_order=True)
    head_cols = [pl.col("pid").alias("subject_pid"), pl.col("id_number").alias("subject_id_number"),
                 pl.col("id_number").alias("subject_id_number_raw"), pl.col("name").alias("subject_name"),
                 pl.lit("").alias("household_code"), "hukou_number", pl.col("address_code").alias("village_code"),
                 pl.lit(None, pl.String).alias("household_status"), pl.lit(None, pl.Int32).alias("registered_year")]
    if dh is not None:
        latest = dh.sort("appraisal_date", "_rec").group_by("_pid").last()
        d_grade = latest.filter((pl.col("grade") == "D") & (pl.col("renovated") != "已改造"))
        rows = eligible.select("pid", "hukou_number").join(d_grade.select(pl.col("_pid").alias("pid"), "appraisal_date"),
                                                             on="pid").drop("pid")
        emit("MISSED_DANGEROUS_HOUSE", rows.join(heads.select(*head_cols), on="hukou_number"), iso("appraisal_date"))
    if window is not None:
        per = eligible.select("pid", "hukou_number").join(window.select(pl.col("_pid").alias("pid"), "out_of_pocket"), on="pid")
        tot = per.group_by("hukou_number").agg(pl.col("out_of_pocket").sum().alias("total")).filter(
            pl.col("total") >= MEDICAL_MISSED - 1e-6)
        emit("MISSED_MEDICAL", tot.join(heads.select(*head_cols), on="hukou_number"), pl.lit(str(run.year)))

    if not out:
        return pl.DataFrame(schema={c: pl.String for c in COLUMNS})
    return pl.concat(out, how="vertical_relaxed").sort("rule_code", "household_code", "hukou_number", "subject_id_number",
                                                        "evidence_key")

