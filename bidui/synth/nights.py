"""What changes between nights: deaths, cars bought and scrapped, new businesses, renovations,
new medical bills, hukou name corrections. Each night also changes at least one register member's situation, logged as
a plant (`positive` for a new clue, `gone` for evidence that disappears).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from bidui.synth.departments import add_records, business_rows, claims_for, living, vehicle_rows
from bidui.synth.phenomena import correct_names
from bidui.synth.plants import P, Planter
from bidui.synth.state import World
from bidui.synth.truth import counted_vehicle, vehicle_code
from bidui.synth.world import days

GONE = "gone"


def advance(w: World, night: int) -> None:
    """Move the world one day on and let things happen."""
    w.run = w.run + timedelta(days=1)
    rng, run = w.rng, days(w.run)
    alive = living(w)
    pids = alive["pid"].to_numpy()
    age = (run - alive["birth"].to_numpy()) / 365.2425
    # Deaths: about 7 per 1,000 a year, mostly the old.
    die = rng.random(len(pids)) < 0.007 / 365 * np.clip((age - 30) / 25, 0.05, 4)
    t = Planter(w, night)
    member_set = set(t.members["_pid"].to_list())
    living_members = [p for p in pids.tolist() if p in member_set]
    k = max(1, len(living_members) // 2000)
    chosen_members = rng.choice(living_members, k, replace=False).tolist() if living_members else []
    for pid in chosen_members:
        code = next(c for c in t.codes if pid in t.by_household[c])
        t.log("DECEASED", P, f"died before night {night + 1}", pid, code)
    dead = set(pids[die].tolist()) | set(chosen_members)
    for pid in sorted(dead):
        when = run - int(rng.integers(1, 6))
        t.person_updates[pid] = {"status": "死亡", "status_date": when}
        t.record("deaths", pl.DataFrame({"death_date": [when], "_pid": [pid]}).with_columns(pl.col("death_date").cast(pl.Int32)),
                 "id_number", "name")
        person = t.p(pid)
        t.record("hukou_changes", pl.DataFrame({"change_type": ["死亡注销"], "change_date": [when],
                                                "from_hukou_number": [person["hukou_number"]], "to_hukou_number": [None],
                                                "_pid": [pid]}).with_columns(pl.col("change_date").cast(pl.Int32),
                                                                             pl.col("to_hukou_number").cast(pl.String)),
                 "id_number", "name")

    # Cars bought: the population at large, and a register member or two.
    adults = pids[(age >= 20) & (age <= 70)]
    buyers = rng.choice(adults, max(1, len(adults) // 8000), replace=False) if len(adults) else np.array([], dtype=np.int64)
    if len(buyers):
        add_records(w, "vehicles", vehicle_rows(w, buyers, np.full(len(buyers), "K33"), np.full(len(buyers), "正常"),
                                                registered=np.full(len(buyers), run - 2)))
    member_adults = [p for p in living_members if p not in dead and 20 <= (run - t.p(p)["birth"]) / 365.2425 <= 70]
    for pid in rng.choice(member_adults, min(k, len(member_adults)), replace=False).tolist() if member_adults else []:
        code = next(c for c in t.codes if pid in t.by_household[c])
        t.record("vehicles", vehicle_rows(w, np.array([pid]), np.array(["K33"]), np.array(["正常"]),
                                          registered=np.array([run - 1])), "owner_id_number", "owner_name")
        t.log("VEHICLE", P, f"bought a car before night {night + 1}", pid, code)
        pid2 = rng.choice(member_adults)
        if pid2 != pid:
            code2 = next(c for c in t.codes if pid2 in t.by_household[c])
            est = np.array([run - 3])
            t.record("businesses", business_rows(w, np.array([pid2]), np.array(["有限责任公司"]), np.array([50.0]),
                                                 np.array(["存续"]), est), "legal_rep_id_number", "legal_rep_name")
            t.log("BUSINESS", P, f"set up a company before night {night + 1} (after registration)", pid2, code2)

    # Cars scrapped: a few everywhere, and one counted car of a member (its clue's evidence goes).
    v = w.tables["vehicles"]
    scrap = v.filter(pl.col("status") == "正常").sample(fraction=0.0003, seed=int(rng.integers(1 << 31)))["_rec"].to_list()
    members_cars = v.filter(pl.col("_pid").is_in(list(member_set)) & (pl.col("status") == "正常")
                            & (pl.col("use_nature").fill_null("") != "残疾人专用"))
    members_cars = members_cars.filter(pl.col("vehicle_type").map_elements(lambda x: counted_vehicle(vehicle_code(x)),
                                                                           return_dtype=pl.Boolean))
    if members_cars.height:
        row = members_cars.row(int(rng.integers(members_cars.height)), named=True)
        scrap.append(row["_rec"])
        code = next(c for c in t.codes if row["_pid"] in t.by_household[c])
        t.log("VEHICLE", GONE, f"car {row['plate']} scrapped before night {night + 1}", row["_pid"], code)
    w.tables["vehicles"] = v.with_columns(pl.when(pl.col("_rec").is_in(scrap)).then(pl.lit("报废"))
                                          .otherwise(pl.col("status")).alias("status"))

    # Renovations: one member's unsafe house is renovated (its clue's evidence goes).
    dh = w.tables["dangerous_housing"]
    latest = dh.sort("appraisal_date", "_rec").group_by("_pid").last().sort("_pid")
    unsafe = latest.filter(pl.col("grade").is_in(["C", "D"]) & (pl.col("renovated") != "已改造")
                           & pl.col("_pid").is_in(list(member_set)))
    if unsafe.height:
        row = unsafe.row(int(rng.integers(unsafe.height)), named=True)
        w.tables["dangerous_housing"] = dh.with_columns(pl.when(pl.col("_rec") == row["_rec"]).then(pl.lit("已改造"))
                                                        .otherwise(pl.col("renovated")).alias("renovated"))
        code = next(c for c in t.codes if row["_pid"] in t.by_household[c])
        t.log("DANGEROUS_HOUSE", GONE, f"house renovated before night {night + 1}", row["_pid"], code)
    t.flush()
    # The day's medical bills.
    add_records(w, "medical_claims", claims_for(w, living(w)["pid"].to_numpy(), run, run, 0.45))
    # Hukou corrects a few names; the register and departments have not followed yet.
    correct_names(w, night)
