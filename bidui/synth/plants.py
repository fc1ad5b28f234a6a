"""Planted cases: for every rule of shared/rules.md, positives and near misses.

Each plant changes the world (adds a car, kills a member, splits a household …) and is logged in
`truth/plants.csv` with the rule, whether it should fire, and what it is. Expected clues are
not taken from this log: `truth.py` evaluates the rules on the true world, and tests check that
every positive plant fires and no near miss does.

Plants of one rule use distinct register households, so a near miss is never rescued by a
positive of the same rule next to it; background records that could interfere (claims of a
medical plant's household, appraisals of a housing plant's owner) are removed first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date

import numpy as np
import polars as pl

from bidui.datasets import BY_CODE
from bidui.synth import corrupt
from bidui.synth.config import SIZES
from bidui.synth.departments import (
    NUMERIC_ID_SHARE,
    appraisal_rows,
    business_rows,
    payroll_rows,
    property_rows,
    vehicle_rows,
)
from bidui.synth.register import written_members
from bidui.synth.state import World
from bidui.synth.world import days, make_ids, to_date

P, N = "positive", "near_miss"


class Planter:
    """Collects a night's plants and applies them in one pass per table (fast at 4 M rows)."""

    def __init__(self, w: World, night: int = 0) -> None:
        self.w, self.night = w, night
        self.rng = w.rng
        self.run = days(w.run)
        self.rows: dict[str, list[pl.DataFrame]] = defaultdict(list)
        self.person_cols: dict[str, dict] = {}
        self.drop: dict[str, set[int]] = defaultdict(set)
        self.person_updates: dict[int, dict] = {}
        self.new_persons: list[dict] = []
        self.new_members: list[dict] = []
        self.member_overrides: dict[tuple[str, int], dict] = {}
        self.used: dict[str, set[str]] = defaultdict(set)
        m = w.tables["register_members"]
        self.members = m
        self.by_household: dict[str, list[int]] = defaultdict(list)
        for hc, pid in zip(m["household_code"], m["_pid"], strict=True):
            self.by_household[hc].append(pid)
        self.codes = sorted(self.by_household)
        self._listed: dict[int, int] | None = None  # how many times each person is listed
        self._taken: set[str] | None = None  # every ID in use, built on the first new child

    # ------------------------------------------------------------ helpers

    def households(self, rule: str, ok: Callable[[str], bool] = lambda _: True) -> Iterator[str]:
        """Register households not yet used by this rule, in a seeded random order."""
        order = self.rng.permutation(len(self.codes))
        for i in order:
            code = self.codes[i]
            if code not in self.used[rule] and ok(code):
                self.used[rule].add(code)
                yield code

    def p(self, pid: int) -> dict:
        if pid < len(self.w.persons):
            row = self.w.persons.row(pid, named=True)
        else:
            row = next(x for x in self.new_persons if x["pid"] == pid)
        row.update(self.person_updates.get(pid, {}))
        return row

    def age(self, pid: int) -> int:
        return int((self.run - self.p(pid)["birth"]) / 365.2425)

    def living_members(self, code: str) -> list[int]:
        return [pid for pid in self.by_household[code] if self.p(pid)["status"] == "正常"]

    def adult(self, code: str) -> int | None:
        adults = [x for x in self.living_members(code) if 20 <= self.age(x) <= 70]
        return adults[0] if adults else None

    def shares_people(self, code: str) -> bool:
        """Whether a member of this household is also listed elsewhere (or twice here)."""
        if self._listed is None:
            self._listed = defaultdict(int)
            for pids in self.by_household.values():
                for pid in pids:
                    self._listed[pid] += 1
        return any(self._listed[pid] > 1 for pid in self.by_household[code])

    def list_member(self, code: str, pid: int) -> None:
        self.by_household[code].append(pid)
        if self._listed is not None:
            self._listed[pid] += 1

    def head(self, code: str) -> int:
        return self.by_household[code][0]

    def record(self, dataset: str, df: pl.DataFrame, id_col: str, name_col: str,
               id_kind: str = "", name_kind: str = "") -> None:
        """Planted rows: person fields written exactly, or with one chosen corruption."""
        ids, names, idc, nmc = [], [], [], []
        for pid in df["_pid"].to_list():
            person = self.p(pid)
            i, n = person["id_number"], person["name"]
            if id_kind:
                i = corrupt.apply_id(id_kind, i, self.rng) or i
            if name_kind:
                n = corrupt.apply_name(name_kind, n, self.rng) or n
            ids.append(i)
            names.append(n)
            idc.append(id_kind)
            nmc.append(name_kind)
        self.stash(dataset, df, id_col, name_col, ids, names, idc, nmc)

    def stash(self, dataset: str, df: pl.DataFrame, id_col: str, name_col: str, ids: list[str], names: list[str],
              idc: list[str], nmc: list[str]) -> None:
        """Queue planted rows with their person fields as written."""
        # In a workbook whose ID cells Excel turned into numbers, planted rows are numbers too.
        share = NUMERIC_ID_SHARE.get(dataset, 0.0)
        numeric = [not k and i[-1:].isdigit() and self.rng.random() < share for k, i in zip(idc, ids, strict=True)]
        idc = ["id_excel_numeric" if n else k for n, k in zip(numeric, idc, strict=True)]
        # Person columns are attached once per dataset at flush: one frame op, not one per plant.
        self.rows[dataset].append(df.drop(id_col, name_col, strict=False))
        fields = self.person_cols.setdefault(dataset, {"_cols": (id_col, name_col), "ids": [], "names": [],
                                                       "idc": [], "nmc": [], "numeric": []})
        for key, values in (("ids", ids), ("names", names), ("idc", idc), ("nmc", nmc), ("numeric", numeric)):
            fields[key].extend(values)

    def log(self, rule: str, kind: str, what: str, pid: int | None, code: str | None = None,
            hukou: str | None = None) -> None:
        self.w.plant(rule, kind, what, pid, code, hukou, self.night)

    def new_child(self, code: str, age_years: int, extra_days: int = 100, name: str | None = None) -> int:
        """A new child of the head: a resident in the head's hukou household and a member."""
        head = self.p(self.head(code))
        male = bool(self.rng.random() < 0.5)
        birth = self.run - age_years * 365 - (age_years // 4) - extra_days
        if self._taken is None:
            self._taken = ids_in_use(self.w)
        taken = self._taken
        pid = len(self.w.persons) + len(self.new_persons)
        idn = make_ids(np.array([head["address_code"][:6]]), np.array([birth]), np.array([male]), self.rng, taken)[0]
        name_override = name
        given = "浩宇" if male else "欣怡"
        name = head["name"][:1] + given if "·" not in head["name"] else head["name"]
        existing = {self.p(x)["name"] for x in self.by_household[code]}
        for alt in ("子豪", "诗涵", "一鸣", "梓萱", "宇航", "雨欣"):
            if name not in existing:
                break
            name = head["name"][:1] + alt
        name = name_override if name_override else name
        self.new_persons.append({
            "pid": pid, "id_number": idn, "name": name, "male": male, "birth": int(birth), "hh": head["hh"],
            "hukou_number": head["hukou_number"], "relation": "子" if male else "女",
            "address_code": head["address_code"], "hukou_type": head["hukou_type"], "status": "正常",
            "status_date": -1, "in_hukou": True, "origin": "resident"})
        self.new_members.append({"household_code": code, "_pid": pid, "relation": "子" if male else "女",
                                 "sex": "男" if male else "女", "birth_date": int(birth), "health_status": "健康"})
        self.list_member(code, pid)
        # Children of registered households are insured (the policy); plants say otherwise.
        self.record("medical_insurance", pl.DataFrame({"year": [self.w.run.year], "status": ["参保"], "_pid": [pid]}),
                    "id_number", "name")
        return pid

    def student(self, pid: int, school: str, stype: str, stage: str, status: str, fee: float) -> None:
        df = pl.DataFrame({"school_name": [school], "school_type": [stype], "stage": [stage], "status": [status],
                           "annual_fee": [float(fee)], "_pid": [pid]})
        self.record("students", df, "id_number", "name")

    # ------------------------------------------------------------ apply

    def flush(self) -> None:
        w = self.w
        for person in self.new_persons:
            person.update(self.person_updates.pop(person["pid"], {}))
        if self.person_updates:
            upd = pl.DataFrame([{"pid": k, **v} for k, v in self.person_updates.items()])
            for col in upd.columns:
                if col == "pid":
                    continue
                part = upd.select("pid", col).drop_nulls(col)
                m = dict(zip(part["pid"].to_list(), part[col].to_list(), strict=True))
                w.persons = w.persons.with_columns(
                    pl.col("pid").replace_strict(m, default=pl.col(col), return_dtype=w.persons.schema[col]).alias(col))
        if self.new_persons:
            w.persons = pl.concat([w.persons, pl.DataFrame(self.new_persons, schema=w.persons.schema)])
        for dataset, pids in self.drop.items():
            if dataset in w.tables:
                w.tables[dataset] = w.tables[dataset].filter(~pl.col("_pid").is_in(list(pids)))
        if self.member_overrides:
            m = w.tables["register_members"]
            key = pl.concat_str([pl.col("household_code"), pl.col("_pid").cast(pl.String)], separator="|")
            for v in self.member_overrides.values():
                v.setdefault("_phen", "")  # the planted writing replaces any phenomenon there
            for field in ("name", "id_number", "_name_corr", "_id_corr", "_phen"):
                mp = {f"{k[0]}|{k[1]}": v[field] for k, v in self.member_overrides.items() if field in v}
                if mp:
                    m = m.with_columns(key.replace_strict(mp, default=pl.col(field), return_dtype=pl.String).alias(field))
            w.tables["register_members"] = m
        if self.new_members:
            rows = pl.DataFrame(self.new_members).with_columns(pl.col("birth_date").cast(pl.Int32))
            clean = written_members(w, rows, clean=True)
            w.append("register_members", clean)
        for dataset, frames in self.rows.items():
            df = pl.concat(frames, how="diagonal_relaxed")
            f = self.person_cols.get(dataset)
            if f is not None:
                id_col, name_col = f["_cols"]
                df = df.with_columns(
                    pl.Series(id_col, f["ids"], dtype=pl.String), pl.Series(name_col, f["names"], dtype=pl.String),
                    pl.Series("_id_corr", f["idc"], dtype=pl.String), pl.Series("_name_corr", f["nmc"], dtype=pl.String),
                    pl.Series("_numeric_id", f["numeric"], dtype=pl.Boolean))
            w.append(dataset, df)


# ---------------------------------------------------------------- per rule


def ids_in_use(w: World) -> set[str]:
    """Every ID a new person must not get: people's IDs, second IDs, and the valid IDs departments
    wrote that nobody holds (they must stay unheld)."""
    taken = set(w.persons["id_number"].to_list())
    if "alias_id_number" in w.persons.columns:
        taken.update(w.persons["alias_id_number"].drop_nulls().to_list())
    for dataset, df in w.tables.items():
        ref = BY_CODE[dataset].persons[0] if BY_CODE[dataset].persons else None
        if ref is not None and "_id_corr" in df.columns:
            taken.update(df.filter(pl.col("_id_corr") == "id_valid_unheld")[ref.id_column].to_list())
    return taken


def counts(w: World, per_household: float, base: int, kinds: int) -> list[int]:
    """How many plants of each kind: the rule's share split over its kinds, each ≥ the minimum."""
    total = round(per_household * base)
    each = max(SIZES[w.cfg.size].min_plants, total // max(kinds, 1))
    return [each] * kinds


def plant_all(w: World) -> None:
    pl_ = Planter(w)
    rates = w.cfg.plants
    n_hh = len(w.households)
    for fn in (vehicle, business, urban_property, payroll, high_fee_school, deceased, moved_out,
               nonagri, id_invalid, not_in_hukou, name_mismatch, duplicate_member, dangerous_house,
               dropout, uninsured, high_medical):
        fn(pl_, lambda k, pos=True: counts(w, rates.positive if pos else rates.near_miss, n_hh, k))
    pl_.flush()
    pl2 = Planter(w)
    household_split(pl2, lambda k, pos=True: counts(w, rates.positive if pos else rates.near_miss, n_hh, k))
    pl2.flush()
    pl3 = Planter(w)
    missed(pl3, lambda k: counts(w, rates.missed, rural_households(w), k))
    pl3.flush()


def rural_households(w: World) -> int:
    rural = w.divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    return int(w.persons.filter((pl.col("relation") == "户主") & pl.col("address_code").is_in(rural)).height)


def _each(kinds: list, sizes: list[int]) -> Iterator:
    for kind, n in zip(kinds, sizes, strict=True):
        for _ in range(n):
            yield kind


def vehicle(t: Planter, n) -> None:
    pos = [("K33", "正常", "非营运", "a family car"), ("小型轿车", "查封", "非营运", "a sealed car written by name"),
           ("H31", "逾期未检验", "营运", "a light truck overdue for inspection"), ("Q11", "正常", "营运", "a tractor unit"),
           ("J11", "正常", "非营运", "a wheel loader")]
    neg = [("M21", "正常", "非营运", "a motorcycle"), ("N11", "正常", "非营运", "a three-wheeler"),
           ("H51", "正常", "营运", "a low-speed truck"), ("H41", "正常", "非营运", "a micro truck"),
           ("T22", "正常", "非营运", "a walking tractor"), ("K33", "正常", "残疾人专用", "a disability vehicle"),
           ("K33", "报废", "非营运", "a scrapped car"), ("K33", "注销", "非营运", "a deregistered car")]
    households = t.households("VEHICLE", lambda c: t.adult(c) is not None)
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for i, (vt, status, use, what) in enumerate(_each(kinds, sizes)):
            code = next(households, None)
            if code is None:
                return
            pid = t.adult(code)
            if label == N:  # a near miss: none of the person's own background evidence
                t.drop["vehicles"].add(pid)
            reg = t.run - int(t.rng.integers(30, 12 * 365))
            df = vehicle_rows(t.w, np.array([pid]), np.array([vt]), np.array([status]), np.array([use]), np.array([reg]))
            # Some positives carry a corrupted ID, as traffic police extracts do.
            idk = ("id_15", "id_space", "")[i % 3] if label == P and i % 4 == 1 else ""
            t.record("vehicles", df, "owner_id_number", "owner_name", id_kind=idk if (idk != "id_15" or t.p(pid)["id_number"][6:8] == "19") else "")
            t.log("VEHICLE", label, what, pid, code)


def business(t: Planter, n) -> None:
    pos = [("有限责任公司", 100.0, "存续", "rep", "legal representative of a company"),
           ("合伙企业", 50.0, "在业", "investor", "investor in an operating partnership"),
           ("个体工商户", 10.0, "存续", "rep", "individual business at the 10万 threshold"),
           ("个体工商户", 15.0, "在业", "rep", "individual business above the threshold")]
    neg = [("农民专业合作社", 50.0, "存续", "rep", "a cooperative's legal representative"),
           ("个体工商户", 9.99, "存续", "rep", "individual business just under the threshold"),
           ("有限责任公司", 100.0, "注销", "rep", "a deregistered company"),
           ("个体工商户", 20.0, "吊销", "rep", "a revoked individual business"),
           ("农民专业合作社", 20.0, "在业", "investor", "a cooperative's member-investor")]
    households = t.households("BUSINESS", lambda c: t.adult(c) is not None)
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for i, (etype, cap, status, role, what) in enumerate(_each(kinds, sizes)):
            code = next(households, None)
            if code is None:
                return
            pid = t.adult(code)
            if label == N:  # a near miss: none of the person's own background evidence
                t.drop["businesses"].add(pid)
                t.drop["business_investors"].add(pid)
            reg_year = int(t.w.households.filter(pl.col("household_code") == code)["registered_year"][0])
            # Alternate: evidence before the household's registration (错评) and after it.
            est_year = reg_year - 2 if i % 2 == 0 else min(reg_year + 3, t.w.run.year - 1)
            est = days(date(est_year, 6, 1))
            if role == "rep":
                df = business_rows(t.w, np.array([pid]), np.array([etype]), np.array([cap]), np.array([status]), np.array([est]))
                t.record("businesses", df, "legal_rep_id_number", "legal_rep_name")
            else:
                outsiders = t.w.persons.filter(pl.col("origin") == "outsider")["pid"]
                outsider_rep = outsiders[int(t.rng.integers(len(outsiders)))]
                df = business_rows(t.w, np.array([outsider_rep]), np.array([etype]), np.array([cap]), np.array([status]), np.array([est]))
                t.record("businesses", df, "legal_rep_id_number", "legal_rep_name")
                inv = pl.DataFrame({"credit_code": df["credit_code"], "subscribed_capital": [5.0], "_pid": [pid]})
                t.record("business_investors", inv, "investor_id_number", "investor_name")
            t.log("BUSINESS", label, what + (" (before registration)" if i % 2 == 0 else " (after registration)"), pid, code)


def urban_property(t: Planter, n) -> None:
    pos = [("城镇", "商品房", "commercial housing in town")]
    neg = [("城镇", "安置房", "relocation housing (易地扶贫搬迁)"), ("城镇", "保障房", "social housing"),
           ("乡村", "自建房", "a self-built rural house"), ("乡村", "商品房", "commercial housing in a village")]
    households = t.households("URBAN_PROPERTY", lambda c: t.adult(c) is not None)
    for kinds, sizes, label in ((pos, n(len(pos) * 3), P), (neg, n(len(neg), False), N)):
        for region, htype, what in _each(kinds * (3 if label == P else 1), sizes):
            code = next(households, None)
            if code is None:
                return
            pid = t.adult(code)
            if label == N:  # a near miss: none of the person's own background evidence
                t.drop["property"].add(pid)
            df = property_rows(t.w, np.array([pid]), np.array([region]), np.array([htype]))
            t.record("property", df, "owner_id_number", "owner_name",
                     name_kind="name_traditional" if t.rng.random() < 0.2 else "")
            t.log("URBAN_PROPERTY", label, what, pid, code)


def payroll(t: Planter, n) -> None:
    households = t.households("PUBLIC_PAYROLL", lambda c: t.adult(c) is not None)
    for _ in range(n(1)[0] * 2):
        code = next(households, None)
        if code is None:
            return
        pid = t.adult(code)
        t.record("payroll", payroll_rows(t.w, np.array([pid])), "id_number", "name")
        t.log("PUBLIC_PAYROLL", P, "a member on the public payroll", pid, code)
    # Near miss: someone else of the same name (a namesake from outside) is on the payroll.
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.adult(code)
        t.drop["payroll"].add(pid)  # a near miss: none of the person's own background evidence
        me = t.p(pid)
        other = make_ids(np.array(["510104"]), np.array([me["birth"] + 400]), np.array([me["male"]]), t.rng)[0]
        df = payroll_rows(t.w, np.array([pid])).with_columns(pl.lit(-1, pl.Int64).alias("_pid"))
        t.stash("payroll", df, "id_number", "name", [other], [me["name"]], [""], [""])
        t.log("PUBLIC_PAYROLL", N, "a namesake (same name, other ID) on the payroll", pid, code)


def high_fee_school(t: Planter, n) -> None:
    pos = [("民办", 20000, "在读", "a private school at the fee threshold"),
           ("民办", 36000, "在读", "an expensive private school")]
    neg = [("民办", 19999, "在读", "a private school just under the threshold"),
           ("公办", 25000, "在读", "a public school with a high fee"),
           ("民办", 30000, "毕业", "graduated from an expensive private school")]
    households = t.households("HIGH_FEE_SCHOOL")
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for stype, fee, status, what in _each(kinds, sizes):
            code = next(households, None)
            if code is None:
                return
            pid = t.new_child(code, 16)
            t.student(pid, "黔中博雅国际学校" if stype == "民办" else "黔中州第一中学", stype, "高中", status, fee)
            if status == "毕业":
                t.student(pid, "黔中州第二中学", "公办", "高中", "在读", 0)
            t.log("HIGH_FEE_SCHOOL", label, what, pid, code)


def deceased(t: Planter, n) -> None:
    households = t.households("PERSON_STATUS", lambda c: len(t.living_members(c)) >= 2)
    for i in range(n(2)[0] * 2):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[-1]
        when = t.run - int(t.rng.integers(30, 700))
        if i % 2 == 0:
            t.person_updates[pid] = {"status": "死亡", "status_date": when}
            what = "hukou says dead, and a death certificate"
        else:
            what = "a death certificate only (hukou not yet updated)"
        t.record("deaths", pl.DataFrame({"death_date": [when], "_pid": [pid]}).with_columns(pl.col("death_date").cast(pl.Int32)),
                 "id_number", "name", name_kind="name_space" if i % 3 == 0 else "")
        t.log("DECEASED", P, what, pid, code)
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[-1]
        t.person_updates[pid] = {"status": "注销", "status_date": t.run - 200}
        t.log("DECEASED", N, "hukou cancelled (注销) for another reason", pid, code)


def moved_out(t: Planter, n) -> None:
    households = t.households("PERSON_STATUS", lambda c: len(t.living_members(c)) >= 2)
    for _ in range(n(1)[0] * 2):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[-1]
        when = t.run - int(t.rng.integers(30, 900))
        t.person_updates[pid] = {"status": "迁出", "status_date": when}
        t.log("MOVED_OUT", P, "hukou moved out", pid, code)
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[-1]
        df = pl.DataFrame({"change_type": ["迁入"], "change_date": [t.run - 300], "from_hukou_number": [None],
                           "to_hukou_number": [t.p(pid)["hukou_number"]], "_pid": [pid]}).with_columns(
            pl.col("change_date").cast(pl.Int32), pl.col("from_hukou_number").cast(pl.String))
        t.record("hukou_changes", df, "id_number", "name")
        t.log("MOVED_OUT", N, "a move-in record, still resident", pid, code)


def nonagri(t: Planter, n) -> None:
    households = t.households("NONAGRI_HUKOU")
    for _ in range(n(1)[0] * 2):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[0] if t.living_members(code) else t.head(code)
        when = t.run - int(t.rng.integers(60, 1500))
        t.person_updates[pid] = {"hukou_type": "非农业"}
        df = pl.DataFrame({"change_type": ["农转非"], "change_date": [when], "from_hukou_number": [t.p(pid)["hukou_number"]],
                           "to_hukou_number": [t.p(pid)["hukou_number"]], "_pid": [pid]}).with_columns(pl.col("change_date").cast(pl.Int32))
        t.record("hukou_changes", df, "id_number", "name")
        t.log("NONAGRI_HUKOU", P, "converted to non-agricultural hukou (农转非)", pid, code)
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.head(code)
        t.person_updates[pid] = {"hukou_type": "居民"}
        t.log("NONAGRI_HUKOU", N, "unified resident hukou (居民), not 非农业", pid, code)


def _override_member(t: Planter, code: str, pid: int, **fields) -> None:
    t.member_overrides.setdefault((code, pid), {}).update(fields)


def id_invalid(t: Planter, n) -> None:
    pos = ["id_digit", "id_transposition", "id_excel_text"]
    neg = ["id_15", "id_lower_x", "id_fullwidth", "id_space"]
    households = t.households("REGISTER_FIELDS")
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for kind in _each(kinds, sizes):
            code = next(households, None)
            if code is None:
                return
            cands = [x for x in t.by_household[code] if x < len(t.w.persons)]
            pid = None
            for x in cands:
                idn = t.p(x)["id_number"]
                if kind == "id_15" and idn[6:8] != "19":
                    continue
                if kind == "id_lower_x" and not idn.endswith("X"):
                    continue
                pid = x
                break
            if pid is None and kind == "id_lower_x":
                kind = "id_fullwidth"
                pid = cands[0] if cands else None
            if pid is None:
                continue
            new = corrupt.apply_id(kind, t.p(pid)["id_number"], t.rng)
            if new is None:
                continue
            _override_member(t, code, pid, id_number=new, _id_corr=kind, name=t.p(pid)["name"], _name_corr="")
            t.log("ID_INVALID", label, f"register ID written with {kind}", pid, code)


def not_in_hukou(t: Planter, n) -> None:
    households = t.households("REGISTER_FIELDS")
    taken = set()
    for _ in range(n(1)[0] * 2):
        code = next(households, None)
        if code is None:
            return
        head = t.p(t.head(code))
        pid = len(t.w.persons) + len(t.new_persons)
        birth = t.run - int(t.rng.integers(20, 60)) * 365
        male = bool(t.rng.random() < 0.5)
        idn = make_ids(np.array([head["address_code"][:6]]), np.array([birth]), np.array([male]), t.rng, taken)[0]
        t.new_persons.append({"pid": pid, "id_number": idn, "name": head["name"][:1] + ("永福" if male else "秀芝"),
                              "male": male, "birth": birth, "hh": -1, "hukou_number": "", "relation": "",
                              "address_code": "", "hukou_type": "", "status": "", "status_date": -1,
                              "in_hukou": False, "origin": "ghost"})
        t.new_members.append({"household_code": code, "_pid": pid, "relation": "其他", "sex": "男" if male else "女",
                              "birth_date": birth, "health_status": "健康"})
        t.list_member(code, pid)
        t.log("NOT_IN_HUKOU", P, "a member nobody can find in hukou", pid, code)
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.head(code)
        new = corrupt.apply_id("id_digit", t.p(pid)["id_number"], t.rng)
        _override_member(t, code, pid, id_number=new, _id_corr="id_digit", name=t.p(pid)["name"], _name_corr="")
        t.log("NOT_IN_HUKOU", N, "a member with a mistyped ID (found by name and birth date)", pid, code)


def name_mismatch(t: Planter, n) -> None:
    pos = ["name_homophone", "name_typo", "name_star"]
    neg = ["name_traditional", "name_space", "dot_variant"]
    households = t.households("REGISTER_FIELDS")
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for kind in _each(kinds, sizes):
            code = next(households, None)
            if code is None:
                return
            pid = next((x for x in t.by_household[code] if x < len(t.w.persons)), None)
            if pid is None:
                continue
            name = t.p(pid)["name"]
            if kind == "dot_variant" and "·" not in name:
                kind = "name_space"
            if kind == "name_traditional" and corrupt.traditional(name) is None:
                kind = "name_space"
            new = corrupt.apply_name(kind, name, t.rng)
            if new is None:
                continue
            _override_member(t, code, pid, name=new, _name_corr=kind, id_number=t.p(pid)["id_number"], _id_corr="")
            t.log("NAME_MISMATCH", label, f"register name written with {kind}", pid, code)


def duplicate_member(t: Planter, n) -> None:
    households = t.households("DUPLICATE_MEMBER", lambda c: len(t.by_household[c]) >= 2)
    for i in range(n(1)[0] * 3):
        a, b = next(households, None), next(households, None)
        if a is None or b is None:
            return
        pid = next((x for x in reversed(t.by_household[a]) if x < len(t.w.persons)), None)
        if pid is None:
            continue
        if i % 3 == 2:
            b = a  # twice in one household
        person = t.p(pid)
        t.new_members.append({"household_code": b, "_pid": pid, "relation": "其他",
                              "sex": "男" if person["male"] else "女", "birth_date": person["birth"], "health_status": "健康"})
        t.list_member(b, pid)
        t.log("DUPLICATE_MEMBER", P, "the same person in two households" if a != b else "twice in one household", pid, a)
    for _ in range(n(1, False)[0]):
        a, b = next(households, None), next(households, None)
        if a is None or b is None:
            return
        pa = t.by_household[a][0]
        # A namesake: a child born in b who carries the name of a's head (another person).
        pb = t.new_child(b, 20, name=t.p(pa)["name"])
        t.log("DUPLICATE_MEMBER", N, "two different people of the same name in two households", pb, b)


def dangerous_house(t: Planter, n) -> None:
    pos = [(("D",), ("未改造",), "a D-grade house, not renovated"), (("C",), ("改造中",), "a C-grade house being renovated"),
           (("B", "D"), ("未改造", "未改造"), "a B-grade appraisal, then a D-grade one")]
    neg = [(("B",), ("未改造",), "a B-grade house"), (("D",), ("已改造",), "a renovated D-grade house"),
           (("D", "A"), ("未改造", "未改造"), "D-grade once, A-grade at the latest appraisal")]
    households = t.households("DANGEROUS_HOUSE")
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for grades, renos, what in _each(kinds, sizes):
            code = next(households, None)
            if code is None:
                return
            pid = t.head(code)
            t.drop["dangerous_housing"].add(pid)
            when = np.array([t.run - 900, t.run - 200][-len(grades):])
            df = appraisal_rows(t.w, np.array([pid] * len(grades)), np.array(grades), np.array(renos), when)
            t.record("dangerous_housing", df, "owner_id_number", "owner_name")
            t.log("DANGEROUS_HOUSE", label, what, pid, code)


def dropout(t: Planter, n) -> None:
    pos = [(7, None, "aged 7, no school record"), (15, "辍学", "aged 15, dropped out"),
           (11, "转出", "aged 11, transferred out and enrolled nowhere")]
    neg = [(6, None, "aged 6, no school record"), (16, None, "aged 16, no school record"),
           (10, "休学", "aged 10, suspended (休学) but enrolled")]
    households = t.households("DROPOUT")
    for kinds, sizes, label in ((pos, n(len(pos)), P), (neg, n(len(neg), False), N)):
        for age, status, what in _each(kinds, sizes):
            code = next(households, None)
            if code is None:
                return
            pid = t.new_child(code, age, extra_days=30 + int(t.rng.integers(0, 300)))
            if status:
                t.student(pid, "黔中州第三中学" if age > 12 else "黔中州实验小学", "公办", "初中" if age > 12 else "小学", status, 0)
            t.log("DROPOUT", label, what, pid, code)


def uninsured(t: Planter, n) -> None:
    households = t.households("UNINSURED", lambda c: bool(t.living_members(c)))
    year = t.w.run.year
    for i in range(n(3)[0] * 3):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[0]
        t.drop["medical_insurance"].add(pid)
        status = (None, "未参保", "中断")[i % 3]
        if status:
            t.record("medical_insurance", pl.DataFrame({"year": [year], "status": [status], "_pid": [pid]}), "id_number", "name")
        t.record("medical_insurance", pl.DataFrame({"year": [year - 1], "status": ["参保"], "_pid": [pid]}), "id_number", "name")
        t.log("UNINSURED", P, f"no insurance for {year}" + (f" ({status})" if status else ""), pid, code)
    for _ in range(n(1, False)[0]):
        code = next(households, None)
        if code is None:
            return
        pid = t.living_members(code)[0]
        t.drop["medical_insurance"].add(pid)
        t.record("medical_insurance", pl.DataFrame({"year": [year], "status": ["参保"], "_pid": [pid]}), "id_number", "name",
                 name_kind="name_traditional")
        t.log("UNINSURED", N, "insured, the name written in traditional characters", pid, code)


def _claims(t: Planter, pids: list[int], amounts: list[float], when: list[int]) -> None:
    df = pl.DataFrame({"settle_date": when, "total_cost": [round(a * 3, 2) for a in amounts],
                       "out_of_pocket": amounts, "hospital": ["黔中州人民医院"] * len(pids), "_pid": pids}).with_columns(
        pl.col("settle_date").cast(pl.Int32))
    t.record("medical_claims", df, "id_number", "name")


def high_medical(t: Planter, n) -> None:
    # Household sums: keep away from households that share a person with another.
    households = t.households("HIGH_MEDICAL_COST", lambda c: len(t.living_members(c)) >= 2 and not t.shares_people(c))
    run = t.run
    cases = [([6000.0, 4000.0], [run - 100, run - 364], P, "two members' costs sum to exactly 10,000"),
             ([12500.5], [run - 10], P, "one large bill"),
             ([5000.0, 4999.99], [run - 100, run - 200], N, "costs sum to 9,999.99"),
             ([9000.0, 1000.0], [run - 50, run - 365], N, "10,000 only counting a bill settled 365 days ago")]
    for amounts, when, label, what in _each(cases, n(2) + n(2, False)):
        code = next(households, None)
        if code is None:
            return
        members = t.living_members(code)
        for pid in t.by_household[code]:
            t.drop["medical_claims"].add(pid)
        who = [members[i % len(members)] for i in range(len(amounts))]
        _claims(t, who, amounts, when)
        top = who[int(np.argmax(amounts))]
        t.log("HIGH_MEDICAL_COST", label, what, top, code)


def household_split(t: Planter, n) -> None:
    """Old parents split off from a child's household (分户争贫, seed 004), then registered."""
    w = t.w
    run = t.run
    rural = w.divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    p = w.persons
    age = ((run - pl.col("birth")) / 365.2425).floor()
    cand = p.filter(pl.col("in_hukou") & (pl.col("status") == "正常") & pl.col("address_code").is_in(rural)
                    & (pl.col("relation").is_in(["父亲", "母亲"])) & (age >= 59)
                    & ~pl.col("hh").is_in(w.households["hh"].implode()) & ~pl.col("hh").is_in(pl.Series(w.reserved_hh, dtype=pl.Int64).implode()))
    by_hh = cand.with_columns(age.alias("age")).group_by("hh", maintain_order=True).agg(
        "pid", "address_code", pl.col("age").min().alias("youngest"))
    by_hh = by_hh.sample(fraction=1.0, shuffle=True, seed=int(t.rng.integers(1 << 31)))
    old_pairs = by_hh.filter(pl.col("youngest") >= 61).rows(named=True)
    young_pairs = by_hh.filter(pl.col("youngest") == 59).rows(named=True)
    five_years_ago = days(date(t.w.run.year - 5, t.w.run.month, t.w.run.day))
    cases = ([("within", P, "old parents split off 2 years ago")] * n(1)[0] * 2
             + [("edge", N, "split exactly five years ago (outside the window)"),
                ("young", N, "split off, but one of them is 59 (not all are 60 or over)"),
                ("registered_origin", N, "split from a household that is itself registered")] * n(1, False)[0])
    hh_rows = []
    first_new_hh = int(p["hh"].max()) + 1
    for i, (case, label, what) in enumerate(cases):
        pool = young_pairs if case == "young" else old_pairs
        if not pool:
            continue
        r = pool.pop()
        parents = r["pid"]
        old = t.p(parents[0])
        new_hukou = old["hukou_number"][:12] + f"{9000000 + i:07d}"
        new_hh = first_new_hh + i
        when = five_years_ago if case == "edge" else run - 700
        for j, pid in enumerate(parents):
            t.person_updates[pid] = {"hukou_number": new_hukou, "relation": "户主" if j == 0 else "配偶", "hh": new_hh}
            df = pl.DataFrame({"change_type": ["分户"], "change_date": [when], "from_hukou_number": [old["hukou_number"]],
                               "to_hukou_number": [new_hukou], "_pid": [pid]}).with_columns(pl.col("change_date").cast(pl.Int32))
            t.record("hukou_changes", df, "id_number", "name")
        village = r["address_code"][0]
        code = f"{village}{8000 + i:04d}"
        # Registered after the split: the split was made to qualify (seed 004).
        hh_rows.append({"household_code": code, "village_code": village, "head_pid": parents[0], "hh": new_hh,
                        "status": "未脱贫", "exit_year": None, "household_type": "一般贫困户", "main_cause": "缺劳力",
                        "registered_year": to_date(when).year})
        for j, pid in enumerate(parents):
            person = t.p(pid)
            t.new_members.append({"household_code": code, "_pid": pid, "relation": "户主" if j == 0 else "配偶",
                                  "sex": "男" if person["male"] else "女", "birth_date": person["birth"], "health_status": "健康"})
        if case == "registered_origin":
            # the children's household (the origin) is registered too
            kids = p.filter((pl.col("hh") == old["hh"]) & ~pl.col("pid").is_in(parents))
            if kids.height:
                kcode = f"{village}{8500 + i:04d}"
                hh_rows.append({"household_code": kcode, "village_code": village, "head_pid": kids["pid"][0],
                                "hh": old["hh"], "status": "已脱贫", "exit_year": 2020, "household_type": "一般贫困户",
                                "main_cause": "因病", "registered_year": 2016})
                for kp in kids["pid"].to_list():
                    k = t.p(kp)
                    t.new_members.append({"household_code": kcode, "_pid": kp, "relation": k["relation"],
                                          "sex": "男" if k["male"] else "女", "birth_date": k["birth"], "health_status": "健康"})
        t.log("HOUSEHOLD_SPLIT", label, what, parents[0], code, old["hukou_number"])
    if hh_rows:
        w.households = pl.concat([w.households, pl.DataFrame(hh_rows, schema=w.households.schema)])


def missed(t: Planter, n) -> None:
    """Rural households off the register that qualify (漏评), and near misses."""
    w = t.w
    run = t.run
    rural = w.divisions.filter(pl.col("urban_rural") == "乡村")["code"].implode()
    urban = w.divisions.filter(pl.col("urban_rural") == "城镇")["code"].implode()
    p = w.persons.filter(pl.col("in_hukou") & (pl.col("status") == "正常") & (pl.col("relation") == "户主")
                         & ~pl.col("hh").is_in(w.households["hh"].implode()) & ~pl.col("hh").is_in(pl.Series(w.reserved_hh, dtype=pl.Int64).implode()))
    rural_heads = p.filter(pl.col("address_code").is_in(rural)).sample(fraction=1.0, shuffle=True, seed=int(t.rng.integers(1 << 31)))
    urban_heads = p.filter(pl.col("address_code").is_in(urban)).sample(fraction=1.0, shuffle=True, seed=int(t.rng.integers(1 << 31)))
    # Only as many candidate households as the plants can use: no pass over the population.
    need = 4 * (sum(n(1)) * 2 + sum(n(4)) + sum(n(3)) + 2)
    rural_heads, urban_heads = rural_heads.head(need), urban_heads.head(need)
    rural_it, urban_it = iter(rural_heads["pid"].to_list()), iter(urban_heads["pid"].to_list())
    heads = pl.concat([rural_heads, urban_heads])
    household_of = dict(zip(heads["pid"].to_list(), heads["hh"].to_list(), strict=True))
    members = w.persons.filter(pl.col("hh").is_in(heads["hh"].implode()) & (pl.col("status") == "正常"))
    hh_members: dict[int, list[int]] = defaultdict(list)
    for pid, hh in zip(members["pid"].to_list(), members["hh"].to_list(), strict=True):
        hh_members[hh].append(pid)

    def clear(head: int) -> list[int]:
        members = hh_members[household_of[head]]
        for ds in ("vehicles", "businesses", "business_investors", "property", "payroll", "medical_claims", "dangerous_housing"):
            t.drop[ds].update(members)
        return members

    house = [("D", "未改造", "rural", P, "a D-grade house, not renovated"), ("C", "未改造", "rural", N, "a C-grade house"),
             ("D", "已改造", "rural", N, "a renovated D-grade house"), ("D", "未改造", "urban", N, "a D-grade house in a town community"),
             ("D", "未改造", "car", N, "a D-grade house, but the family owns a car")]
    for grade, reno, where, label, what in _each(house, [n(1)[0] * 2, *n(4)]):
        head = next(urban_it if where == "urban" else rural_it, None)
        if head is None:
            return
        members = clear(head)
        df = appraisal_rows(w, np.array([head]), np.array([grade]), np.array([reno]), np.array([run - 300]))
        t.record("dangerous_housing", df, "owner_id_number", "owner_name")
        if where == "car":
            t.record("vehicles", vehicle_rows(w, np.array([members[-1]]), np.array(["K33"]), np.array(["正常"])),
                     "owner_id_number", "owner_name")
        t.log("MISSED_DANGEROUS_HOUSE", label, what, head, None, t.p(head)["hukou_number"])
    medical = [([15000.0, 5000.0], "rural", P, "costs sum to exactly 20,000"), ([19999.99], "rural", N, "costs sum to 19,999.99"),
               ([25000.0], "payroll", N, "large costs, but a member is on the public payroll"),
               ([25000.0], "urban", N, "large costs in a town community")]
    for amounts, where, label, what in _each(medical, [n(1)[0] * 2, *n(3)]):
        head = next(urban_it if where == "urban" else rural_it, None)
        if head is None:
            return
        members = clear(head)
        _claims(t, [members[i % len(members)] for i in range(len(amounts))], amounts, [run - 40 - 30 * i for i in range(len(amounts))])
        if where == "payroll":
            t.record("payroll", payroll_rows(w, np.array([members[-1]])), "id_number", "name")
        t.log("MISSED_MEDICAL", label, what, head, None, t.p(head)["hukou_number"])

