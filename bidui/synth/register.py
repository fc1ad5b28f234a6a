"""The register of poor households (建档立卡): about a tenth of rural hukou households.

Most exited in 2016–2020, some not; causes of poverty in the shares seed 002 reports. Members
are written into the register by village clerks, with their own (lower) rate of mistakes.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from bidui.synth import corrupt
from bidui.synth.departments import pick
from bidui.synth.state import World

# Seed 002: 因病 26.45%, 因学 2.55%, 缺技术 32.64%, 缺资金 2.3%, 缺劳力 10.89%,
# 自身发展动力不足 15.72%, 因灾 0.36%, others 9% (spread over the remaining causes).
CAUSES = (("因病", 26.45), ("因学", 2.55), ("缺技术", 32.64), ("缺资金", 2.3), ("缺劳力", 10.89),
          ("自身发展动力不足", 15.72), ("因灾", 0.36), ("因残", 4.0), ("缺土地", 2.0), ("缺水", 1.5),
          ("交通条件落后", 1.5))
HEALTH = (("健康", 78), ("长期慢性病", 11), ("患有大病", 5), ("残疾", 6))


def make_register(w: World) -> None:
    rng = w.rng
    rural = w.divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    p = w.persons.filter(pl.col("in_hukou") & (pl.col("origin") == "resident"))
    heads = p.filter((pl.col("relation") == "户主") & (pl.col("status") == "正常")
                     & pl.col("address_code").is_in(rural))
    # Poorer households are more often old, large or single; weight the draw a little.
    age = (w.run.toordinal() - 719163 - heads["birth"].to_numpy()) / 365.2425
    weight = 1 + np.clip((age - 45) / 30, 0, 1)
    k = round(len(heads) * w.cfg.register_share)
    chosen = heads[np.sort(rng.choice(len(heads), k, replace=False, p=weight / weight.sum()))]
    n = len(chosen)
    reg_year = pick(rng, (2014, 2015, 2016, 2017, 2018, 2019), n, [60, 15, 10, 7, 5, 3]).astype(int)
    exited = rng.random(n) < 0.95
    exit_year = np.maximum(reg_year + 1, pick(rng, (2016, 2017, 2018, 2019, 2020), n, [12, 22, 30, 26, 10]).astype(int))
    exit_year = np.minimum(exit_year, 2020)
    village = chosen["address_code"].to_numpy()
    order = np.argsort(village, kind="stable")
    seq = np.empty(n, dtype=int)
    for v in np.unique(village):
        idx = order[village[order] == v]
        seq[idx] = np.arange(1, len(idx) + 1)
    codes = [f"{v}{s:04d}" for v, s in zip(village, seq, strict=True)]
    causes, cw = zip(*CAUSES, strict=True)
    w.households = pl.DataFrame({
        "household_code": codes, "village_code": village.astype(str), "head_pid": chosen["pid"].to_numpy(),
        "hh": chosen["hh"].to_numpy(), "status": np.where(exited, "已脱贫", "未脱贫").astype(str),
        "exit_year": pl.Series(np.where(exited, exit_year, 0).tolist(), dtype=pl.Int32),
        "household_type": pick(rng, ("一般贫困户", "低保贫困户", "特困供养贫困户"), n, [70, 25, 5]).astype(str),
        "main_cause": pick(rng, causes, n, cw).astype(str), "registered_year": reg_year.astype(np.int32),
    }).with_columns(pl.when(pl.col("exit_year") > 0).then(pl.col("exit_year")).alias("exit_year"))

    members = p.join(w.households.select("hh", "household_code"), on="hh", how="inner").filter(
        pl.col("status").is_in(["正常", "死亡", "迁出"]))
    n = len(members)
    health = pick(rng, [h for h, _ in HEALTH], n, [x for _, x in HEALTH])
    rows = pl.DataFrame({
        "household_code": members["household_code"], "_pid": members["pid"],
        "relation": members["relation"], "sex": np.where(members["male"].to_numpy(), "男", "女").astype(str),
        "birth_date": members["birth"], "health_status": health.astype(str)})
    w.append("register_members", written_members(w, rows))


def written_members(w: World, rows: pl.DataFrame, clean: bool = False) -> pl.DataFrame:
    """Register members' name and ID as the village clerk typed them."""
    rates = w.cfg.corruption
    rng = w.rng
    truth = rows.drop("id_number", "name", strict=False).join(
        w.persons.select("pid", "id_number", "name"), left_on="_pid", right_on="pid", how="left", maintain_order="left")
    ids, names = truth["id_number"].to_list(), truth["name"].to_list()
    if clean:
        id_corr, name_corr = [""] * len(ids), [""] * len(ids)
    else:
        # Form only: traditional, a space, and (issue 15) an annotation or an invisible character.
        names, name_corr = corrupt.corrupt_column(
            names, ("name_homophone", "name_typo", "name_star", "name_traditional", "name_space", "name_annotation",
                    "name_invisible"),
            (rates.register_name * 0.5, rates.register_name * 0.3, rates.register_name * 0.2,
             rates.register_form * 0.45, rates.register_form * 0.25, rates.register_form * 0.15,
             rates.register_form * 0.15), rng, corrupt.apply_name)
        ids, id_corr = corrupt.corrupt_column(
            ids, ("id_digit", "id_transposition", "id_15", "id_fullwidth", "id_lower_x"),
            (rates.register_id * 0.6, rates.register_id * 0.4, rates.register_id_form * 0.5,
             rates.register_id_form * 0.2, rates.register_id_form * 0.3), rng, corrupt.apply_id)
        for i, v in enumerate(names):
            if "·" in v and not name_corr[i] and rng.random() < rates.dot_variant:
                names[i], name_corr[i] = corrupt.dot_variant(v, rng) or v, "dot_variant"
    return rows.with_columns(pl.Series("name", names, dtype=pl.String), pl.Series("id_number", ids, dtype=pl.String),
                             pl.Series("_name_corr", name_corr, dtype=pl.String),
                             pl.Series("_id_corr", id_corr, dtype=pl.String)).select(
        "household_code", "name", "id_number", "relation", "sex", "birth_date", "health_status",
        "_pid", "_name_corr", "_id_corr")
