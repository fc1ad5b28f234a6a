"""What real department data does that plain corruption does not (issue 15), and the answer
key's view of it.

World defects, made once (before any record is written, so everything downstream agrees):
namesakes in a village or a household, one ID shared by two hukou persons (一号多人), one
person with a second, cancelled hukou record under another ID (一人多号). Each night from the
second, hukou corrects a few names that nobody else has followed yet.

Record phenomena, applied to department rows as they are written (`apply_records`): a child's
record under a parent's ID, a valid ID held by nobody, an ID mistyped and then truncated by
Excel, an ID typo together with a damaged name, a two-ID person's record under the old ID. The
names other systems write (placeholder, pinyin, annotation, invisible characters) are name
corruptions (`corrupt.py`). Every kind occurs at least `minimum(w)` times (`finalise`).

Rates are in `config.py` and documented in synth/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from bidui.datasets import BY_CODE
from bidui.synth import corrupt
from bidui.synth.config import SIZES
from bidui.synth.state import World
from bidui.synth.world import NameMaker, days, make_ids

# The answer key's phenomenon column: where several apply, the first of this order.
PHENOMENA = ("household_id", "id_valid_unheld", "id_digit_excel", "id_and_name", "name_placeholder", "name_pinyin",
             "name_annotation", "name_invisible", "shared_id", "two_ids", "name_corrected", "namesake")
NAME_SYSTEM = ("name_placeholder", "name_pinyin", "name_annotation", "name_invisible")
# Datasets where a child's record may carry a parent's ID: the rate's field and the age limit.
HOUSEHOLD_ID = {"students": ("household_students", 18), "medical_insurance": ("household_infant_insurance", 7),
                "medical_claims": ("household_infant_claims", 7)}
# Department datasets (every person-bearing dataset but hukou and the register).
NOT_DEPARTMENTS = ("hukou", "register_members", "register_households")
ALIAS_REC = 1 << 40  # `_rec` of a person's cancelled second hukou row: its person's pid + this
ALIAS_HUKOU_BASE = 7_000_000  # old hukou numbers: village code + 7xxxxxx (live ones stay below)
CHILD_RELATIONS = ("子", "女")
GRANDCHILD_RELATIONS = ("孙子", "孙女")


def minimum(w: World) -> int:
    """How often every record phenomenon occurs at least, whatever the rate."""
    return max(3, SIZES[w.cfg.size].min_plants)


# ---------------------------------------------------------------- the world: namesakes


def make_namesakes(people: pl.DataFrame, cfg, rng: np.random.Generator) -> tuple[pl.DataFrame, dict[str, int]]:
    """Rename a few residents to the exact name of another: a same-sex member of their own
    household of another generation (grandson after grandfather, son after the head's father),
    and a same-sex villager of another household (the same surname where one exists)."""
    size = SIZES[cfg.size]
    rates = cfg.defects
    n = people.height
    hh = people["hh"].to_numpy()

    # A household's grandfather and grandson (or the head's father and the head's son).
    pairs = []
    for old_rel, young_rel in (("户主", "孙子"), ("父亲", "子")):
        old = people.filter((pl.col("relation") == old_rel) & pl.col("male")).select("hh", pl.col("pid").alias("old"))
        young = people.filter(pl.col("relation") == young_rel).select("hh", pl.col("pid").alias("young"))
        pairs.append(young.join(old, on="hh").unique("hh", keep="first", maintain_order=True))
    pairs_df = pl.concat(pairs).unique("young", keep="first", maintain_order=True)
    pairs_df = pairs_df.unique("hh", keep="first", maintain_order=True)
    k = min(pairs_df.height, max(size.min_plants, round(rates.namesake_household * n)))
    pick = pl.Series(np.sort(rng.choice(pairs_df.height, k, replace=False)) if k else [], dtype=pl.Int64)
    young, old = pairs_df["young"].gather(pick), pairs_df["old"].gather(pick)
    names = people["name"].scatter(young, people["name"].gather(old))
    renamed = np.zeros(n, dtype=bool)
    renamed[young.to_numpy()] = True
    n_household = int(renamed.sum())

    # Villagers: group by village and sex (and surname, tried first).
    frame = people.select("address_code", "male").with_columns(names.alias("name"))
    minority = frame["name"].str.contains("·", literal=True).to_numpy()
    base = pl.concat_str(pl.col("address_code"), pl.when(pl.col("male")).then(pl.lit("m")).otherwise(pl.lit("f")))
    groups = []
    for key in (pl.concat_str(base, pl.col("name").str.slice(0, 1)), base):
        _, codes = np.unique(frame.select(key.hash(seed=0)).to_series().to_numpy(), return_inverse=True)
        order = np.argsort(codes, kind="stable")
        starts = np.searchsorted(codes[order], np.arange(codes.max() + 2))
        groups.append((codes, order, starts))
    name = names.to_numpy()
    k = max(size.min_plants, round(rates.namesake_village * n))
    chosen = rng.choice(np.flatnonzero(~renamed & ~minority), k, replace=False)
    chosen_mask = np.zeros(n, dtype=bool)
    chosen_mask[chosen] = True
    new_names: dict[int, str] = {}
    for i in np.sort(chosen).tolist():
        for codes, order, starts in groups:
            g = codes[i]
            lo, hi = starts[g], starts[g + 1]
            if hi - lo < 2:
                continue
            found = None
            for j in order[lo + rng.integers(0, hi - lo, 6)].tolist():
                if hh[j] != hh[i] and not chosen_mask[j] and not renamed[j] and name[j] != name[i] and not minority[j]:
                    found = j
                    break
            if found is not None:
                new_names[i] = name[found]
                break
    at = pl.Series(list(new_names), dtype=pl.Int64)
    renamed_names = names.scatter(at, pl.Series(list(new_names.values()), dtype=pl.String))
    # Never a second person of one name in a household by chance (only the planted generations).
    village_renamed = np.zeros(n, dtype=bool)
    village_renamed[at.to_numpy()] = True
    dup = pl.DataFrame({"hh": hh, "name": renamed_names}).select(
        pl.struct("hh", "name").is_duplicated()).to_series().to_numpy()
    undo = np.flatnonzero(dup & village_renamed)
    renamed_names = renamed_names.scatter(undo, names.gather(undo))
    village_renamed[undo] = False
    counts = {"namesake_household": n_household, "namesake_village": int(village_renamed.sum())}
    return people.with_columns(renamed_names.alias("name")), counts


# ---------------------------------------------------------------- the world: public-security defects


def add_defect_columns(people: pl.DataFrame) -> pl.DataFrame:
    return people.with_columns(pl.lit(None, pl.String).alias("alias_id_number"), pl.lit(False).alias("shared_id"),
                               pl.lit(None, pl.String).alias("hukou_name"))


def _pair(cands: pl.DataFrame, a: pl.DataFrame, used: set[int], rng: np.random.Generator, k: int) -> list[tuple[int, int]]:
    """Up to k pairs (A from `a`, B from `cands`): different hukou households, the same county,
    the same birth date and sex where such a pair exists, else the same sex and the nearest birth
    date, else anyone of the county; each person in one pair at most."""
    out: list[tuple[int, int]] = []
    if not k or a.is_empty() or cands.is_empty():
        return out
    a = a.sample(n=min(a.height, 100 * k + 2000), shuffle=True, seed=int(rng.integers(1 << 31)))
    cands = cands.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(1 << 31)))

    def take(pa: int, pb: int) -> bool:
        if pa in used or pb in used:
            return False
        used.update((pa, pb))
        out.append((pa, pb))
        return len(out) >= k

    keys = ["county", "birth", "male"]
    j = a.select("pid", "hh", *keys).join(cands.select(pl.col("pid").alias("b"), pl.col("hh").alias("b_hh"), *keys),
                                           on=keys, maintain_order="left").filter(pl.col("hh") != pl.col("b_hh"))
    j = j.head(50 * k + 1000)
    for pa, pb in zip(j["pid"].to_list(), j["b"].to_list(), strict=True):
        if take(pa, pb):
            return out
    # Fallbacks (small prefectures): the nearest birth date of the same sex, then anyone.
    pool = cands.sort("birth")
    for same_sex in (True, False):
        groups = pool.group_by(["county", "male"] if same_sex else ["county"], maintain_order=True).agg(
            "pid", "hh", "birth")
        index = {tuple(r[:-3]): (np.array(r[-3]), np.array(r[-2]), np.array(r[-1])) for r in groups.iter_rows()}
        for pa, hh, county, male, birth in a.head(20 * k + 100).select("pid", "hh", "county", "male", "birth").iter_rows():
            if pa in used:
                continue
            got = index.get((county, male) if same_sex else (county,))
            if got is None:
                continue
            pids, hhs, births = got
            at = int(np.searchsorted(births, birth))
            window = np.arange(max(0, at - 12), min(len(pids), at + 12))
            window = window[np.argsort(np.abs(births[window] - birth), kind="stable")]
            for i in window.tolist():
                if hhs[i] != hh and pids[i] not in used:
                    if take(pa, int(pids[i])):
                        return out
                    break
    return out


def public_security(w: World) -> dict[str, int]:
    """一号多人 and 一人多号, after the register is made and before any department record."""
    from bidui.synth.departments import add_records, vehicle_rows

    rng, run = w.rng, days(w.run)
    size = SIZES[w.cfg.size]
    rates = w.cfg.defects
    w.persons = add_defect_columns(w.persons)
    age = ((run - pl.col("birth")) / 365.2425).floor()
    member_pids = w.tables["register_members"]["_pid"].unique().implode()
    people = w.persons.filter(pl.col("in_hukou") & (pl.col("origin") == "resident") & (pl.col("status") == "正常"))
    people = people.with_columns(pl.col("address_code").str.slice(0, 6).alias("county"), age.alias("age"))
    residents = int(w.persons.filter(pl.col("in_hukou")).height)
    used: set[int] = set()

    # 一号多人: B's ID becomes A's.
    in_register = people.filter(pl.col("pid").is_in(member_pids))
    outside = people.filter(~pl.col("pid").is_in(member_pids))
    car_pairs = _pair(outside.filter((pl.col("age") >= 20) & (pl.col("age") <= 70)),
                      in_register.filter(pl.col("age") >= 18), used, rng, size.min_plants)
    member_pairs = _pair(in_register, in_register, used, rng, 2)
    total = max(round(rates.shared_id * residents), len(car_pairs) + len(member_pairs))
    other_pairs = _pair(people, people, used, rng, total - len(car_pairs) - len(member_pairs))
    pairs = car_pairs + member_pairs + other_pairs
    ids = w.array("id_number")
    new_id = {b: ids[a] for a, b in pairs}
    shared = {p for pair in pairs for p in pair}
    w.persons = w.persons.with_columns(
        pl.col("pid").replace_strict(new_id, default=pl.col("id_number"), return_dtype=pl.String).alias("id_number"),
        pl.col("pid").is_in(list(shared)).alias("shared_id"))
    # The register writes B with the shared ID, as public security gave it (every B in the
    # register, not only the pairs chosen for it).
    b_members = [b for _, b in pairs]
    if b_members:
        m = w.tables["register_members"]
        hit = pl.col("_pid").is_in(b_members)
        w.tables["register_members"] = m.with_columns(
            pl.when(hit).then(pl.col("_pid").replace_strict(new_id, default=None, return_dtype=pl.String))
            .otherwise(pl.col("id_number")).alias("id_number"),
            pl.when(hit).then(pl.lit("")).otherwise(pl.col("_id_corr")).alias("_id_corr"))

    # 一人多号: a second, cancelled hukou record under another valid ID.
    k = max(size.min_plants, round(rates.two_ids * residents))
    adults = people.filter((pl.col("age") >= 16) & ~pl.col("pid").is_in(list(used)))
    reg_adults = adults.filter(pl.col("pid").is_in(member_pids) & (pl.col("relation") != "户主"))
    reg_pick = reg_adults["pid"].to_numpy()
    reg_pick = rng.choice(reg_pick, min(3, len(reg_pick)), replace=False) if len(reg_pick) else reg_pick
    rest = adults.filter(~pl.col("pid").is_in(reg_pick.tolist()))["pid"].to_numpy()
    rest = rng.choice(rest, max(0, min(len(rest), k - len(reg_pick))), replace=False)
    two = np.sort(np.concatenate([reg_pick, rest]).astype(np.int64))
    taken = set(w.persons["id_number"].to_list())
    p = w.persons
    region = np.array([x[:6] for x in p["id_number"].to_numpy()[two]], dtype=object)
    alias = make_ids(region, p["birth"].to_numpy()[two], p["male"].to_numpy()[two], rng, taken)
    villages = p["address_code"].to_numpy()[two]
    w.aliases = pl.DataFrame({
        "pid": two, "alias_id_number": pl.Series(alias.astype(str), dtype=pl.String),
        "alias_hukou_number": [f"{v}{ALIAS_HUKOU_BASE + i:07d}" for i, v in enumerate(villages)],
        "alias_status_date": (run - rng.integers(3 * 365, 15 * 365, len(two))).astype(np.int32),
        "register": np.isin(two, reg_pick)})
    w.persons = w.persons.with_columns(pl.col("pid").replace_strict(
        dict(zip(two.tolist(), alias.tolist(), strict=True)), default=None, return_dtype=pl.String).alias("alias_id_number"))
    # B, outside the register, owns a car: a VEHICLE clue for A would be a wrong one.
    car_owners = np.array([b for _, b in car_pairs], dtype=np.int64)
    if len(car_owners):
        add_records(w, "vehicles", vehicle_rows(w, car_owners, np.full(len(car_owners), "K33"),
                                                np.full(len(car_owners), "正常")))
    # Households of these people stay out of the missed-inclusion and split plants (they would
    # move a car owner into the register or clear the car).
    w.reserved_hh = sorted(set(w.persons["hh"].to_numpy()[sorted(used | set(two.tolist()))].tolist()))
    return {"shared_id_pairs": len(pairs), "shared_id_vehicle_pairs": len(car_pairs),
            "shared_id_member_pairs": len(member_pairs), "two_ids": len(two)}


# ---------------------------------------------------------------- the world: name corrections


def correct_names(w: World, night: int) -> int:
    """Hukou corrects a few names (one given-name character, or the whole given name); the
    register and departments keep the old one."""
    rng = w.rng
    p = w.persons
    planted = {x["pid"] for x in w.plants if x["pid"] is not None}
    ok = (p["in_hukou"] & (p["origin"] == "resident") & (p["status"] == "正常") & ~p["shared_id"].fill_null(False)
          & p["alias_id_number"].is_null() & p["hukou_name"].is_null()
          & ~p["name"].str.contains("·", literal=True) & ~p["pid"].is_in(list(planted))).to_numpy().copy()
    members = np.isin(p["pid"].to_numpy(), w.tables["register_members"]["_pid"].to_numpy())
    n = int(p["in_hukou"].sum())
    k = max(2, round(w.cfg.defects.name_corrected * n))
    mem = np.flatnonzero(ok & members)
    first = rng.choice(mem, min(1, len(mem)), replace=False) if len(mem) else np.array([], dtype=np.int64)
    ok[first] = False
    pool = np.flatnonzero(ok)
    chosen = np.sort(np.concatenate([first, rng.choice(pool, min(len(pool), k - len(first)), replace=False)]))
    names = p["name"].to_numpy()
    birth, male, hh = p["birth"].to_numpy(), p["male"].to_numpy(), p["hh"].to_numpy()
    maker = NameMaker(rng)
    year = 1970 + (birth[chosen] / 365.2425).astype(int)
    fresh = maker.given_for(year, male[chosen])
    household_names = p.filter(pl.col("hh").is_in(hh[chosen].tolist())).group_by("hh").agg("name")
    taken = dict(zip(household_names["hh"].to_list(), household_names["name"].to_list(), strict=True))
    new: dict[int, str] = {}
    for j, pid in enumerate(chosen.tolist()):
        old = names[pid]
        surname = old[:1]
        if rng.random() < 0.5 and len(old) >= 3:
            # one character of the given name changed
            i = 1 + int(rng.integers(len(old) - 1))
            given = fresh[j][-1]
            cand = old[:i] + given + old[i + 1 :]
        else:
            cand = surname + fresh[j]
        if cand == old or cand in taken.get(hh[pid], []):
            cand = surname + ("嘉" if cand[-1:] != "嘉" else "彦") + old[1:][-1:]
        if cand != old:
            new[pid] = cand
    if new:
        w.persons = w.persons.with_columns(pl.col("pid").replace_strict(new, default=pl.col("hukou_name"),
                                                                        return_dtype=pl.String).alias("hukou_name"))
    w.counts["name_corrected"] = w.counts.get("name_corrected", 0) + len(new)
    return len(new)


# ---------------------------------------------------------------- records


@dataclass
class _Context:
    ids: np.ndarray  # the ID each person uses, by pid
    names: np.ndarray
    id18: np.ndarray  # whether that ID has 18 characters
    alias: np.ndarray  # the second ID ("" none)
    guardian: np.ndarray  # the ID of a parent in the same hukou household ("" none)
    age: np.ndarray
    held: set[str] | None = None  # every ID somebody holds, built when first needed


def _context(w: World) -> _Context:
    key = f"_phenomena_context_{w.run}"
    if key not in w._arrays:
        p = w.persons
        run = days(w.run)
        alias = p["alias_id_number"].fill_null("").to_numpy() if "alias_id_number" in p.columns else np.full(p.height, "")
        w._arrays[key] = _Context(ids=w.array("id_number"), names=w.array("name"),
                                  id18=(p["id_number"].str.len_chars() == 18).to_numpy(), alias=alias.astype(object),
                                  guardian=_guardian_ids(w), age=(run - w.array("birth")) / 365.2425)  # type: ignore[assignment]
    return w._arrays[key]  # type: ignore[return-value]


def _guardian_ids(w: World) -> np.ndarray:
    """For a child of a hukou household, the ID of a parent there: the head or spouse for their
    children; the child's spouse, an adult child, the head or spouse for grandchildren."""
    run = days(w.run)
    p = w.persons.filter(pl.col("hh") >= 0).select("pid", "hh", "relation", "status", "birth")
    adult = p.filter((((run - pl.col("birth")) / 365.2425) >= 18) & (pl.col("status") == "正常"))

    def first(relations: tuple[str, ...], alias: str) -> pl.DataFrame:
        return adult.filter(pl.col("relation").is_in(relations)).group_by("hh").agg(pl.col("pid").min().alias(alias))

    kids = p.filter(pl.col("relation").is_in(CHILD_RELATIONS + GRANDCHILD_RELATIONS)).select("pid", "hh", "relation")
    for rel, alias in ((("户主",), "head"), (("配偶",), "spouse"), (("儿媳", "女婿"), "cs"), (CHILD_RELATIONS, "ac")):
        kids = kids.join(first(rel, alias), on="hh", how="left")
    kids = kids.with_columns(
        pl.when(pl.col("relation").is_in(GRANDCHILD_RELATIONS)).then(pl.coalesce("cs", "ac", "head", "spouse"))
        .otherwise(pl.coalesce("head", "spouse")).alias("g")).filter(pl.col("g").is_not_null() & (pl.col("g") != pl.col("pid")))
    ids = w.array("id_number")
    out = np.full(w.persons.height, "", dtype=object)
    out[kids["pid"].to_numpy()] = ids[kids["g"].to_numpy()]
    return out


def _held(w: World) -> set[str]:
    """Every ID somebody holds (the IDs people use and their second IDs), cached like the context."""
    cx = _context(w)
    if cx.held is None:
        p = w.persons
        cx.held = set(p["id_number"].to_list())
        if "alias_id_number" in p.columns:
            cx.held.update(p["alias_id_number"].drop_nulls().to_list())
    return cx.held


def apply_kind(w: World, dataset: str, df: pl.DataFrame, idx: np.ndarray, kind: str) -> pl.DataFrame:
    """Write phenomenon `kind` into rows `idx` of a department table (person fields from the truth)."""
    if not len(idx):
        return df
    ref = BY_CODE[dataset].persons[0]
    cx = _context(w)
    rng = w.rng
    s_idx = pl.Series(idx.astype(np.int64))
    if "_phen" not in df.columns:
        df = df.with_columns(pl.lit("").alias("_phen"))

    def at(column: str) -> np.ndarray:
        return df[column].gather(s_idx).to_numpy().astype(object)

    pids = df["_pid"].gather(s_idx).to_numpy()
    ids, names, idc, nmc, phen = at(ref.id_column), at(ref.name_column), at("_id_corr"), at("_name_corr"), at("_phen")
    numeric = df["_numeric_id"].gather(s_idx).to_numpy().astype(bool)
    true_ids, true_names = cx.ids[pids], cx.names[pids]
    if kind == "household_id":
        ids, names, idc, nmc = cx.guardian[pids], true_names, "id_household_member", ""
        numeric[:] = False
    elif kind == "id_valid_unheld":
        cands = [corrupt.unheld_candidates(t) for t in true_ids]
        held = _held(w)
        ids = ids.copy()
        for j, cs in enumerate(cands):
            ok = [c for c in cs if c not in held]
            ids[j] = ok[int(rng.integers(len(ok)))] if ok else corrupt.id_digit(true_ids[j], rng)
        names, idc, nmc = true_names, np.where([len(c) > 0 for c in cands], "id_valid_unheld", "id_digit"), ""
        numeric[:] = False
    elif kind == "id_and_name":
        for j in range(len(idx)):
            tid, tname = true_ids[j], true_names[j]
            t = corrupt.id_transposition(tid, rng) if rng.random() < 0.4 else None
            ids[j], idc[j] = (t, "id_transposition") if t else (corrupt.id_digit(tid, rng), "id_digit")
            for nk in rng.permutation(["name_homophone", "name_typo", "name_placeholder"]).tolist():
                new = corrupt.apply_name(str(nk), tname, rng)
                if new and new != tname:
                    names[j], nmc[j] = new, nk
                    break
            else:
                names[j], nmc[j] = tname, ""
        phen[:] = "id_and_name"
        numeric[:] = False
    elif kind == "id_digit_excel":
        ids = np.array([corrupt.id_digit_in(t, rng, 7, 15) for t in true_ids], dtype=object)
        idc = "id_digit_excel"
        numeric[:] = True
    elif kind == "two_ids":
        ids, idc = cx.alias[pids], "id_alias"
    elif kind in NAME_SYSTEM:
        for j in range(len(idx)):
            new = corrupt.apply_name(kind, true_names[j], rng)
            if new and new != true_names[j]:
                names[j], nmc[j], phen[j] = new, kind, kind
    else:
        raise ValueError(kind)

    def col(values) -> list:
        return list(values) if isinstance(values, np.ndarray | list) else [values] * len(idx)

    return df.with_columns(
        df[ref.id_column].scatter(s_idx, pl.Series(col(ids), dtype=pl.String)),
        df[ref.name_column].scatter(s_idx, pl.Series(col(names), dtype=pl.String)),
        df["_id_corr"].scatter(s_idx, pl.Series(col(idc), dtype=pl.String)),
        df["_name_corr"].scatter(s_idx, pl.Series(col(nmc), dtype=pl.String)),
        df["_numeric_id"].scatter(s_idx, pl.Series(col(numeric), dtype=pl.Boolean)),
        df["_phen"].scatter(s_idx, pl.Series(col(phen), dtype=pl.String)),
    )


def _eligible(w: World, dataset: str, df: pl.DataFrame, kind: str, idx: np.ndarray | None = None) -> np.ndarray:
    """Which rows (all, or those at `idx`) of a department table may show `kind`."""
    cx = _context(w)
    take = (lambda c: df[c].to_numpy()) if idx is None else (lambda c: df[c].gather(pl.Series(idx)).to_numpy())
    pid = take("_pid")
    ok = (pid >= 0) & (pid < len(cx.ids))
    safe = np.where(ok, pid, 0)
    ok &= cx.id18[safe]
    idc = take("_id_corr")
    numeric = take("_numeric_id")
    if kind == "household_id":
        _, limit = HOUSEHOLD_ID[dataset]
        return ok & (cx.guardian[safe] != "") & (cx.age[safe] < limit) & (idc != "id_missing")
    if kind in ("id_valid_unheld", "id_and_name"):
        return ok & ~numeric & (idc != "id_missing")
    if kind == "id_digit_excel":
        return ok & numeric & (idc == "id_excel_numeric")
    if kind == "two_ids":
        return ok & (cx.alias[safe] != "") & (idc == "")
    return ok & (idc != "id_missing")


def apply_records(w: World, dataset: str, rows: pl.DataFrame) -> pl.DataFrame:
    """The record phenomena, at their rates, on department rows just written by `person_fields`."""
    if dataset in NOT_DEPARTMENTS or not BY_CODE[dataset].persons or rows.is_empty():
        return rows
    rates = w.cfg.corruption
    rng = w.rng
    n = rows.height
    cx = _context(w)
    rows = rows.with_columns(pl.when(pl.col("_name_corr").is_in(NAME_SYSTEM)).then(pl.col("_name_corr"))
                             .otherwise(pl.lit("")).alias("_phen"))

    def apply(kind: str, sel: np.ndarray) -> None:
        nonlocal rows
        idx = np.flatnonzero(sel)
        if len(idx):
            idx = idx[_eligible(w, dataset, rows, kind, idx)]
            rows = apply_kind(w, dataset, rows, idx, kind)

    # One draw decides between the kinds that replace the whole person fields.
    r = rng.random(n)
    h = getattr(rates, HOUSEHOLD_ID[dataset][0]) if dataset in HOUSEHOLD_ID else 0.0
    u, b = rates.id_valid_unheld, rates.id_and_name
    for kind, lo, hi in (("household_id", 0.0, h), ("id_valid_unheld", h, h + u), ("id_and_name", h + u, h + u + b)):
        if hi > lo:
            apply(kind, (r >= lo) & (r < hi))
    # A two-ID person's record under the old ID.
    pid = rows["_pid"].to_numpy()
    safe = np.where((pid >= 0) & (pid < len(cx.ids)), pid, 0)
    alias = (pid >= 0) & (pid < len(cx.ids)) & (cx.alias[safe] != "")
    if alias.any():
        apply("two_ids", alias & (rng.random(n) < rates.two_ids_records) & (r >= h + u + b))
    numeric = rows["_numeric_id"].to_numpy()
    if numeric.any():
        apply("id_digit_excel", numeric & (rng.random(n) < rates.id_digit_excel))
    return rows


def record_kind_counts(tables: dict[str, pl.DataFrame]) -> dict[str, int]:
    """How many department rows show each record phenomenon (by dataset for household_id)."""
    out: dict[str, int] = {}
    for dataset, df in tables.items():
        if dataset in NOT_DEPARTMENTS or not BY_CODE[dataset].persons or "_pid" not in df.columns:
            continue
        idc, nmc = df["_id_corr"], df["_name_corr"]
        phen = df["_phen"] if "_phen" in df.columns else pl.Series([""] * df.height)
        for kind, mask in (("household_id", idc == "id_household_member"), ("id_valid_unheld", idc == "id_valid_unheld"),
                           ("id_digit_excel", idc == "id_digit_excel"), ("id_and_name", phen == "id_and_name"),
                           ("two_ids", idc == "id_alias"), *[(k, nmc == k) for k in NAME_SYSTEM]):
            c = int(mask.sum())
            out[kind] = out.get(kind, 0) + c
            if kind == "household_id" and dataset in HOUSEHOLD_ID:
                out[f"household_id:{dataset}"] = c
    return out


def finalise(w: World, first_plant_rec: int) -> None:
    """After the plants: the register writes a couple of two-ID members with the old ID, and every
    record phenomenon reaches its minimum (on background rows, never on a planted one)."""
    rng = w.rng
    m = w.tables["register_members"]
    a = w.aliases.filter(pl.col("register"))
    clean = m.with_row_index("_i").filter(pl.col("_pid").is_in(a["pid"].implode()) & (pl.col("_id_corr") == "")
                                          & (pl.col("_name_corr") == "")).unique("_pid", keep="first", maintain_order=True)
    clean = clean.sort("_pid").head(2)
    if clean.height:
        alias = dict(zip(a["pid"].to_list(), a["alias_id_number"].to_list(), strict=True))
        idx = pl.Series(clean["_i"].cast(pl.Int64))
        new = pl.Series([alias[p] for p in clean["_pid"].to_list()], dtype=pl.String)
        w.tables["register_members"] = m.with_columns(
            m["id_number"].scatter(idx, new), m["_id_corr"].scatter(idx, pl.Series(["id_alias"] * clean.height)))
    # The register's form-only variants include annotations and invisible characters: a few of each.
    m = w.tables["register_members"]
    planted = pl.Series([x["pid"] for x in w.plants if x["pid"] is not None], dtype=pl.Int64).implode()
    for kind in ("name_annotation", "name_invisible"):
        missing = SIZES[w.cfg.size].min_plants - int((m["_name_corr"] == kind).sum())
        ok = ((m["_name_corr"] == "") & (m["_id_corr"] == "") & (m["_phen"] == "") & ~m["_pid"].is_in(planted)
              & (m["_pid"] < w.persons.height)).to_numpy()
        if missing > 0 and ok.any():
            pick = np.sort(rng.choice(np.flatnonzero(ok), min(missing, int(ok.sum())), replace=False))
            m = apply_kind(w, "register_members", m, pick, kind)
    w.tables["register_members"] = m
    need = minimum(w)
    counts = record_kind_counts(w.tables)
    todo = [(k, (d,)) for d, _ in HOUSEHOLD_ID.items() for k in [f"household_id:{d}"]]
    todo += [("id_valid_unheld", None), ("id_digit_excel", None), ("id_and_name", None), ("two_ids", None)]
    todo += [(k, None) for k in NAME_SYSTEM]
    departments = [d for d in sorted(w.tables) if d not in NOT_DEPARTMENTS and BY_CODE[d].persons]
    for key, only in todo:
        missing = need - counts.get(key, 0)
        if missing <= 0:
            continue
        kind = key.split(":")[0]
        cands = []
        for d in only or departments:
            df = w.tables[d]
            ok = _eligible(w, d, df, kind) & (df["_rec"].to_numpy() < first_plant_rec)
            if kind != "id_digit_excel":
                ok &= (df["_id_corr"].to_numpy() == "") & (df["_name_corr"].to_numpy() == "")
            if "_phen" in df.columns:
                ok &= df["_phen"].to_numpy() == ""
            cands += [(d, int(i)) for i in np.flatnonzero(ok)]
        if not cands:
            continue
        pick = np.sort(rng.choice(len(cands), min(missing, len(cands)), replace=False))
        by_ds: dict[str, list[int]] = {}
        for j in pick.tolist():
            by_ds.setdefault(cands[j][0], []).append(cands[j][1])
        for d, rows in sorted(by_ds.items()):
            w.tables[d] = apply_kind(w, d, w.tables[d], np.array(rows, dtype=np.int64), kind)
    w.counts.update({f"records_{k}": v for k, v in record_kind_counts(w.tables).items()})


# ---------------------------------------------------------------- the answer key


def person_truth(persons: pl.DataFrame, hukou: pl.DataFrame) -> pl.DataFrame:
    """Per person (row i is pid i), that night: the true ID and name, the primary hukou record's ID
    and number, and the person-level phenomena (shared ID, corrected name, namesake)."""
    primary = hukou.filter(~pl.col("_alias")) if "_alias" in hukou.columns else hukou
    primary = primary.select(pl.col("_pid").alias("pid"), pl.col("id_number").alias("hukou_id_number"),
                             pl.col("hukou_number").alias("true_hukou_number"), pl.col("name").alias("_hukou_name"),
                             (pl.len().over("name", "address_code") >= 2).alias("_namesake"))
    shared = pl.col("shared_id").fill_null(False) if "shared_id" in persons.columns else pl.lit(False)
    corrected = pl.col("hukou_name").is_not_null() if "hukou_name" in persons.columns else pl.lit(False)
    out = persons.select("pid", pl.col("id_number").alias("true_id_number"), pl.col("name").alias("_dept_name"),
                         shared.alias("_shared"), corrected.alias("_corrected"))
    out = out.join(primary, on="pid", how="left", maintain_order="left")
    return out.select("pid", "true_id_number", pl.coalesce("_hukou_name", "_dept_name").alias("true_name"),
                      "hukou_id_number", "true_hukou_number", "_shared", "_corrected",
                      pl.col("_namesake").fill_null(False))


def phenomenon_expr() -> pl.Expr:
    """The record's phenomenon from its corruption columns and its person's flags (first that applies)."""
    idc, nmc = pl.col("id_corruption"), pl.col("name_corruption")
    flags = {"household_id": idc == "id_household_member", "id_valid_unheld": idc == "id_valid_unheld",
             "id_digit_excel": idc == "id_digit_excel", "id_and_name": pl.col("_phen") == "id_and_name",
             **{k: nmc == k for k in NAME_SYSTEM}, "shared_id": pl.col("_shared").fill_null(False),
             "two_ids": idc == "id_alias", "name_corrected": pl.col("_corrected").fill_null(False),
             "namesake": pl.col("_namesake").fill_null(False)}
    expr = pl.lit("")
    for kind in reversed(PHENOMENA):
        expr = pl.when(flags[kind]).then(pl.lit(kind)).otherwise(expr)
    return expr.alias("phenomenon")
