"""The true world of the synthetic prefecture: divisions, residents in hukou households.

Everything here is truth; what departments write (with their mistakes) is derived from it in
`departments.py` and `corrupt.py`. Arrays are built with numpy so the large size (4 M residents)
takes seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from bidui.ids import CHECK_CHARS, WEIGHTS, check_char
from bidui.synth import vocab
from bidui.synth.config import Size

EPOCH = date(1970, 1, 1)


def days(d: date) -> int:
    return (d - EPOCH).days


def to_date(n: int) -> date:
    return EPOCH + timedelta(days=int(n))


# ---------------------------------------------------------------- divisions


def make_divisions(size: Size, rng: np.random.Generator) -> pl.DataFrame:
    """Prefecture 5290 (a fictional prefecture of Guizhou, province 52) with 12-digit codes.

    Counties 529001…, townships NNN: 001–099 street offices (街道), 100–199 towns (镇),
    200–399 townships (乡); villages NNN: 001–199 communities (社区, 城镇), 200–399 village
    committees (村, 乡村) — as in the statistical division code rules.
    """
    rows: list[tuple[str, str, str, str, str | None]] = []
    used: set[str] = set()
    first, second = list(vocab.PLACE_FIRST), list(vocab.PLACE_SECOND)

    def place(scope: set[str] = used) -> str:
        """A two-character name new in its scope (the prefecture for counties and townships,
        the township for villages, as names repeat across a real prefecture)."""
        while True:
            name = str(rng.choice(first)) + str(rng.choice(second))
            if name not in scope:
                scope.add(name)
                return name

    prefecture = "529000000000"
    for c in range(size.counties):
        ccode = f"5290{c + 1:02d}000000"
        cname = place() + ("区" if c == 0 else "县")
        rows.append((ccode, cname, "county", prefecture, None))
        for t in range(size.townships_per_county):
            if t == 0:
                tnum, suffix = 1, "街道"  # the county seat
            elif t % 3 == 0:
                tnum, suffix = 200 + t, "乡"
            else:
                tnum, suffix = 100 + t, "镇"
            tcode = ccode[:6] + f"{tnum:03d}000"
            rows.append((tcode, place() + suffix, "township", ccode, None))
            n_comm = max(1, size.villages_per_township // 3) if t == 0 else 1
            local: set[str] = set()
            for v in range(size.villages_per_township):
                if v < n_comm:
                    vcode, vname, ur = tcode[:9] + f"{v + 1:03d}", place(local) + "社区", "城镇"
                else:
                    vcode, vname, ur = tcode[:9] + f"{200 + v:03d}", place(local) + "村", "乡村"
                rows.append((vcode, vname + ("村委会" if ur == "乡村" else "居委会"), "village", tcode, ur))
    return pl.DataFrame(rows, schema=["code", "name", "level", "parent_code", "urban_rural"], orient="row")


# ---------------------------------------------------------------- names


@dataclass
class NameMaker:
    rng: np.random.Generator

    def __post_init__(self) -> None:
        names, weights = zip(*vocab.SURNAMES, strict=True)
        w = np.array(weights, dtype=float)
        self.surnames = np.array(names, dtype=object)
        self.surname_p = w / w.sum()

    def surnames_for(self, n: int) -> np.ndarray:
        return self.rng.choice(self.surnames, size=n, p=self.surname_p)

    def given_for(self, birth_years: np.ndarray, male: np.ndarray) -> np.ndarray:
        era = np.searchsorted(np.array(vocab.ERAS), birth_years, side="right")
        out = np.empty(len(birth_years), dtype=object)
        rng = self.rng
        for e in range(len(vocab.ERAS) + 1):
            for is_male in (True, False):
                idx = np.flatnonzero((era == e) & (male == is_male))
                if not len(idx):
                    continue
                classic = np.array((vocab.CLASSIC_MALE if is_male else vocab.CLASSIC_FEMALE)[e], dtype=object)
                first, second = (vocab.POOL_MALE if is_male else vocab.POOL_FEMALE)[e]
                k = len(idx)
                kind = rng.random(k)
                composed = (rng.choice(np.array(list(first), dtype=object), k)
                            + rng.choice(np.array(list(second), dtype=object), k))
                single = rng.choice(np.array(list(second), dtype=object), k)
                pick = rng.choice(classic, k)
                single_share = vocab.SINGLE_SHARE[e]
                out[idx] = np.where(kind < single_share, single,
                                    np.where(kind < single_share + 0.45, pick, composed))
        return out

    def minority(self, n: int) -> np.ndarray:
        g = self.rng.choice(np.array(vocab.MINORITY_GIVEN, dtype=object), n)
        f = self.rng.choice(np.array(vocab.MINORITY_FATHER, dtype=object), n)
        return g + "·" + f


# ---------------------------------------------------------------- ID numbers


def make_ids(region: np.ndarray, birth_days: np.ndarray, male: np.ndarray,
             rng: np.random.Generator, taken: set[str] | None = None) -> np.ndarray:
    """Valid, unique 18-digit IDs: region + birth date + sequence (odd = male) + check."""
    n = len(region)
    taken = set() if taken is None else taken
    if n <= 32:  # a planted person or two: plain Python beats building frames
        out: list[str] = []
        for r, b, m in zip(region, birth_days, male, strict=True):
            ymd = to_date(int(b)).strftime("%Y%m%d")
            while True:
                first17 = f"{r}{ymd}{int(rng.integers(0, 500)) * 2 + int(bool(m)):03d}"
                idn = first17 + check_char(first17)
                if idn not in taken and idn not in out:
                    break
            out.append(idn)
        taken.update(out)
        return np.array(out, dtype=object)
    reg = pl.Series(np.asarray(region).astype(str), dtype=pl.String)
    ymd = pl.Series(np.asarray(birth_days, dtype=np.int32)).cast(pl.Date).dt.strftime("%Y%m%d")
    male = np.asarray(male, dtype=bool)

    def build(idx: np.ndarray) -> pl.Series:
        seq = pl.Series(rng.integers(0, 500, len(idx)) * 2 + male[idx].astype(np.int64))
        first17 = reg.gather(idx) + ymd.gather(idx) + seq.cast(pl.String).str.zfill(3)
        return _with_check(first17)

    ids = build(np.arange(n))
    # Same county, birth date and sequence happens; draw again until every ID is new.
    while True:
        dup = (~ids.is_first_distinct()).to_numpy()
        if taken:
            dup |= np.fromiter((x in taken for x in ids.to_list()), dtype=bool, count=n)
        if not dup.any():
            break
        idx = np.flatnonzero(dup)
        ids = ids.scatter(idx, build(idx))
    out = ids.to_numpy().astype(object)
    taken.update(out.tolist())
    return out


def _with_check(first17: pl.Series) -> pl.Series:
    raw = first17.to_numpy().astype("S17")
    digits = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(-1, 17) - 48
    total = (digits.astype(np.int64) * np.array(WEIGHTS)).sum(axis=1) % 11
    checks = pl.Series(np.array(list(CHECK_CHARS))[total])
    return first17 + checks


# ---------------------------------------------------------------- households and residents

def make_residents(size: Size, divisions: pl.DataFrame, run: date, rng: np.random.Generator,
                   names: NameMaker) -> pl.DataFrame:
    """Residents grouped in hukou households with a plausible age pyramid and relations."""
    villages = divisions.filter(pl.col("level") == "village")
    vcodes = villages["code"].to_numpy()
    urban = (villages["urban_rural"] == "城镇").to_numpy()
    n_hh = int(size.residents / 3.5)
    weights = np.where(urban, 1.6, 1.0) * rng.uniform(0.6, 1.4, len(vcodes))
    hh_village = rng.choice(len(vcodes), n_hh, p=weights / weights.sum())
    hh_urban = urban[hh_village]

    head_age = np.clip(rng.normal(52, 14, n_hh), 22, 92).astype(int)
    head_male = rng.random(n_hh) < np.where(hh_urban, 0.7, 0.82)
    spouse = rng.random(n_hh) < np.where(head_age < 75, 0.85, 0.55)
    lam = np.where(head_age < 30, 0.6, np.where(head_age < 58, np.where(hh_urban, 1.1, 1.7), 0.4))
    n_child = np.minimum(rng.poisson(lam), 4)
    n_parent = np.where((head_age < 58) & (rng.random(n_hh) < 0.22), rng.integers(1, 3, n_hh), 0)
    extended = (head_age >= 52) & (rng.random(n_hh) < np.where(hh_urban, 0.12, 0.3))
    n_grand = np.where(extended, rng.integers(1, 3, n_hh), 0)
    n_child = np.where(extended, np.maximum(n_child, 1), n_child)

    parts = []
    hh_ids = np.arange(n_hh)

    def add(rel_kind: str, ages: np.ndarray, male: np.ndarray, hh: np.ndarray) -> None:
        parts.append((hh, ages, male, np.full(len(hh), rel_kind, dtype=object)))

    add("head", head_age, head_male, hh_ids)
    h = hh_ids[spouse]
    add("spouse", np.clip(head_age[h] + rng.normal(-2, 3, len(h)).astype(int), 18, 99), ~head_male[h], h)
    h = np.repeat(hh_ids, n_child)
    ages = head_age[h] - rng.integers(20, 38, len(h))
    ages = np.where(ages < 0, rng.integers(0, 3, len(h)), ages)
    add("child", ages, rng.random(len(h)) < 0.52, h)
    h = np.repeat(hh_ids, n_parent)
    # Two parents: father then mother; one: more often the mother, who lives longer.
    first_parent = np.r_[True, h[1:] != h[:-1]] if len(h) else np.array([], dtype=bool)
    two = n_parent[h] == 2
    parent_male = np.where(two, first_parent, rng.random(len(h)) < 0.4)
    add("parent", np.minimum(head_age[h] + rng.integers(22, 34, len(h)), 99), parent_male, h)
    h = hh_ids[extended]
    cs_age = np.clip(head_age[h] - rng.integers(22, 32, len(h)), 20, 99)
    add("child_spouse", cs_age, rng.random(len(h)) < 0.2, h)
    h = np.repeat(hh_ids, n_grand)
    add("grandchild", rng.integers(0, 15, len(h)), rng.random(len(h)) < 0.52, h)

    hh = np.concatenate([p[0] for p in parts])
    age = np.concatenate([p[1] for p in parts]).astype(int)
    male = np.concatenate([p[2] for p in parts]).astype(bool)
    kind = np.concatenate([p[3] for p in parts])
    rank = {"head": 0, "spouse": 1, "parent": 2, "child": 3, "child_spouse": 4, "grandchild": 5}
    order = np.lexsort((np.vectorize(rank.__getitem__, otypes=[int])(kind), hh))
    hh, age, male, kind = hh[order], age[order], male[order], kind[order]
    n = len(hh)

    run_days = days(run)
    birth = run_days - age * 365 - rng.integers(0, 365, n)
    # Twins: a second child born the same day as the first (about 1% of births).
    is_child = kind == "child"
    same_hh_prev = np.r_[False, (hh[1:] == hh[:-1]) & is_child[1:] & is_child[:-1]]
    twin = same_hh_prev & (rng.random(n) < 0.02)
    birth = np.where(twin, np.r_[birth[:1], birth[:-1]], birth)
    birth_year = (np.datetime64("1970-01-01") + birth.astype("timedelta64[D]")).astype("datetime64[Y]").astype(int) + 1970

    surname_hh = names.surnames_for(n_hh)
    own_surname = names.surnames_for(n)
    # The family surname is the husband's: a woman heading the household keeps her own, while
    # her husband and children carry the family's.
    head_is_male_hh = head_male[hh]
    family = (((kind == "head") & head_is_male_hh) | ((kind == "spouse") & ~head_is_male_hh)
              | (kind == "child") | (kind == "grandchild") | ((kind == "parent") & male))
    surname = np.where(family, surname_hh[hh], own_surname)
    given = names.given_for(birth_year, male)
    name = surname + given
    # Avoid two members of one household with the same name (twins get different given names).
    minority_hh = rng.random(n_hh) < 0.004
    mino = minority_hh[hh]
    name[mino] = names.minority(int(mino.sum()))
    dup = pl.DataFrame({"hh": hh, "name": name}).select(pl.struct("hh", "name").is_duplicated()).to_series().to_numpy()
    while dup.any():
        name[dup] = surname[dup] + names.given_for(birth_year[dup], male[dup])
        dup = pl.DataFrame({"hh": hh, "name": name}).select(
            pl.struct("hh", "name").is_first_distinct().not_()).to_series().to_numpy()

    village = vcodes[hh_village[hh]]
    county = np.array([v[:6] for v in vcodes])[hh_village[hh]]
    r = rng.random(n)
    other_county = np.array([f"5290{rng.integers(1, 13):02d}" for _ in range(64)])
    region = np.where(r < 0.94, county, np.where(r < 0.97, other_county[rng.integers(0, 64, n)],
                      np.array(vocab.OTHER_PROVINCE_REGIONS)[rng.integers(0, len(vocab.OTHER_PROVINCE_REGIONS), n)]))
    ids = make_ids(region, birth, male, rng)

    hukou_no = (pl.Series(village.astype(str)) + pl.Series(hh + 1).cast(pl.String).str.zfill(7)).to_numpy()
    rel = np.where(kind == "head", "户主", np.where(kind == "spouse", "配偶", None)).astype(object)
    rel = np.where(kind == "child", np.where(male, "子", "女"), rel)
    rel = np.where(kind == "parent", np.where(male, "父亲", "母亲"), rel)
    rel = np.where(kind == "child_spouse", np.where(male, "女婿", "儿媳"), rel)
    rel = np.where(kind == "grandchild", np.where(male, "孙子", "孙女"), rel)
    urb = hh_urban[hh]
    t = rng.random(n)
    hukou_type = np.where(urb, np.where(t < 0.5, "非农业", np.where(t < 0.95, "居民", "农业")),
                          np.where(t < 0.9, "农业", np.where(t < 0.98, "居民", "非农业")))

    return pl.DataFrame({
        "pid": np.arange(n, dtype=np.int64),
        "id_number": ids.astype(str),
        "name": name.astype(str),
        "male": male,
        "birth": birth.astype(np.int32),
        "hh": hh.astype(np.int64),
        "hukou_number": hukou_no.astype(str),
        "relation": rel.astype(str),
        "address_code": village.astype(str),
        "hukou_type": hukou_type.astype(str),
        "status": np.full(n, "正常"),
        "status_date": np.full(n, -1, dtype=np.int32),
        "in_hukou": np.ones(n, dtype=bool),
        "origin": np.full(n, "resident"),
    }).with_columns(pl.col("birth").cast(pl.Int32), pl.col("status_date").cast(pl.Int32))


def make_outsiders(n: int, run: date, rng: np.random.Generator, names: NameMaker, first_pid: int,
                   taken: set[str]) -> pl.DataFrame:
    """People from outside the prefecture who appear in department records (not in hukou)."""
    age = np.clip(rng.normal(40, 15, n), 1, 90).astype(int)
    male = rng.random(n) < 0.5
    birth = days(run) - age * 365 - rng.integers(0, 365, n)
    birth_year = 1970 + (birth // 365.25).astype(int)
    name = names.surnames_for(n) + names.given_for(birth_year, male)
    region = np.array(vocab.OTHER_PROVINCE_REGIONS)[rng.integers(0, len(vocab.OTHER_PROVINCE_REGIONS), n)]
    ids = make_ids(region, birth, male, rng, taken)
    return pl.DataFrame({
        "pid": np.arange(first_pid, first_pid + n, dtype=np.int64),
        "id_number": ids.astype(str), "name": name.astype(str), "male": male,
        "birth": birth.astype(np.int32), "hh": np.full(n, -1, dtype=np.int64),
        "hukou_number": np.full(n, ""), "relation": np.full(n, ""), "address_code": np.full(n, ""),
        "hukou_type": np.full(n, ""), "status": np.full(n, ""),
        "status_date": np.full(n, -1, dtype=np.int32), "in_hukou": np.zeros(n, dtype=bool),
        "origin": np.full(n, "outsider"),
    })
