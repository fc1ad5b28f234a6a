"""What departments do to names and ID numbers, applied to a chosen share of rows and recorded
per row (`_name_corr`, `_id_corr`) so accuracy can be measured per corruption type.

Name corruptions: typo (look-alike or other character), homophone (同音字), traditional
characters, stray space, middle-dot variant, `*` for a character (register only), and names as
other systems write them: a placeholder (□ ? * 〓) or lower-case pinyin for a character, an
annotation in the name field, invisible characters.
ID corruptions: one digit, adjacent transposition, 15-digit form, lower-case x, full-width
digits, spaces, missing, and Excel's float (XLSX writers store the cell as a number); the
record-level phenomena of issue 15 (another's ID, a valid ID nobody holds, …) are in
`phenomena.py`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import polars as pl

from bidui.names import simplified
from bidui.synth import vocab

LOOK_ALIKE = {
    "王": "玉", "玉": "王", "未": "末", "末": "未", "己": "已", "已": "己", "土": "士", "士": "土",
    "大": "太", "太": "大", "天": "夫", "夫": "天", "人": "入", "入": "人", "田": "由", "由": "田",
    "甲": "申", "申": "甲", "力": "刀", "干": "千", "千": "干", "贝": "见", "见": "贝", "凤": "风",
    "风": "凤", "明": "朋", "朋": "明", "军": "车", "兵": "丘", "红": "江", "林": "材", "英": "荚",
    "华": "毕", "国": "固", "建": "健", "春": "舂", "秀": "莠", "兰": "芏", "平": "乎", "伟": "纬",
}
DOT_VARIANTS = (".", "•", "・", "‧", "．")
# What a system writes for a character outside its character set.
PLACEHOLDERS = ("□", "?", "*", "〓")
# Annotations other systems put in the name field.
ANNOTATIONS = ("(户主)", "（户主）", "(已故)", "（已故）", "(迁出)", "（之妻）")
# Weights of ID positions 15–17 (the sequence code) in the check character's sum.
_SEQ_WEIGHTS = (8, 4, 2)
FULLWIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
_EXTRA = ("伟玮炜苇卫为维微 丽莉俐立力利栗 华化花桦 明鸣铭名 军君均钧 强墙蔷 红宏洪鸿虹 英莺鹰瑛樱 "
          "兰蓝岚澜 芳方芬 秀绣 珍贞真桢 梅玫媚 燕艳雁彦 霞侠峡 平萍苹评 国果郭 建健剑键 勇永涌泳 "
          "志智之芝 涛滔韬 东冬栋 斌彬宾滨 辉晖挥徽 杰洁捷 磊垒 鹏朋蓬 浩皓昊豪 超潮朝 刚钢纲 "
          "敏民闵 静晶菁精 婷亭廷庭 娜纳 倩茜 琳林霖 颖影莹 佳家嘉 雪薛 露璐鹭 瑶遥姚 玲铃龄 "
          "娟鹃 张章 王汪 刘柳留 陈晨沉 杨阳扬 黄皇煌 周舟洲 吴武伍 徐许 马玛 朱珠 胡湖 李黎理")


@lru_cache(maxsize=1)
def homophones() -> dict[str, tuple[str, ...]]:
    """Simplified characters grouped by toneless pinyin (pypinyin's reading)."""
    from pypinyin import Style, lazy_pinyin

    chars: set[str] = set(_EXTRA.replace(" ", ""))
    for group in (*vocab.CLASSIC_MALE, *vocab.CLASSIC_FEMALE):
        for name in group:
            chars.update(name)
    for a, b in (*vocab.POOL_MALE, *vocab.POOL_FEMALE):
        chars.update(a + b)
    for s, _ in vocab.SURNAMES:
        chars.update(s)
    by_sound: dict[str, list[str]] = defaultdict(list)
    for c in sorted(chars):
        if simplified(c) == c:
            by_sound[lazy_pinyin(c, style=Style.NORMAL)[0]].append(c)
    return {c: tuple(o for o in group if o != c) for group in by_sound.values() for c in group
            if len(group) > 1}


@lru_cache(maxsize=1)
def _s2t():
    import opencc

    return opencc.OpenCC("s2t")


def _positions(name: str) -> list[int]:
    """Positions worth corrupting: the given name first (surnames are corrupted less often)."""
    core = [i for i, c in enumerate(name) if c != "·"]
    return core[1:] or core


def homophone(name: str, rng: np.random.Generator, surname_too: bool = True) -> str | None:
    table = homophones()
    options = [i for i in (_positions(name) + ([0] if surname_too else [])) if name[i] in table]
    if not options:
        return None
    i = options[int(rng.integers(len(options)))]
    alts = table[name[i]]
    new = alts[int(rng.integers(len(alts)))]
    return name[:i] + new + name[i + 1 :]


def typo(name: str, rng: np.random.Generator) -> str | None:
    pos = _positions(name)
    look = [i for i in pos if name[i] in LOOK_ALIKE]
    if look:
        i = look[int(rng.integers(len(look)))]
        return name[:i] + LOOK_ALIKE[name[i]] + name[i + 1 :]
    if not pos:
        return None
    i = pos[-1]
    pool = vocab.PLACE_FIRST
    new = pool[int(rng.integers(len(pool)))]
    return None if new == name[i] else name[:i] + new + name[i + 1 :]


def traditional(name: str) -> str | None:
    t = _s2t().convert(name)
    return t if t != name else None


def star(name: str, rng: np.random.Generator) -> str | None:
    pos = _positions(name)
    if not pos:
        return None
    i = pos[int(rng.integers(len(pos)))]
    return name[:i] + "*" + name[i + 1 :]


def space(name: str, rng: np.random.Generator) -> str:
    k = int(rng.integers(4))
    if k == 0 and len(name) > 1:
        return name[0] + " " + name[1:]
    if k == 1:
        return name + " "
    if k == 2:
        return "\u3000" + name
    return " " + name + " "


def placeholder(name: str, rng: np.random.Generator) -> str | None:
    """One character (the given name first) written as a placeholder: `王□`, `李?华`."""
    pos = _positions(name)
    if not pos:
        return None
    i = pos[int(rng.integers(len(pos)))]
    mark = PLACEHOLDERS[int(rng.integers(len(PLACEHOLDERS)))]
    return name[:i] + mark + name[i + 1 :]


@lru_cache(maxsize=8192)
def _pinyin(char: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(char, style=Style.NORMAL)[0]


def pinyin(name: str, rng: np.random.Generator) -> str | None:
    """One given-name character written as its lower-case toneless pinyin: `王yan`."""
    pos = [i for i in _positions(name) if i > 0 and "\u4e00" <= name[i] <= "\u9fff"]
    if not pos:
        return None
    i = pos[int(rng.integers(len(pos)))]
    reading = _pinyin(name[i])
    if not (reading.isascii() and reading.isalpha()):
        return None
    return name[:i] + reading.lower() + name[i + 1 :]


def annotation(name: str, rng: np.random.Generator) -> str:
    """An annotation in the name field: `张三(户主)`, `李四（已故）`."""
    return name + ANNOTATIONS[int(rng.integers(len(ANNOTATIONS)))]


def invisible(name: str, rng: np.random.Generator) -> str:
    """A character nobody sees: zero-width space, BOM, full-width space, leading or trailing space."""
    k = int(rng.integers(6))
    i = 1 + int(rng.integers(max(1, len(name) - 1))) if len(name) > 1 else len(name)
    if k == 0:
        return name[:i] + "\u200b" + name[i:]
    if k == 1:
        return name + "\u200b"
    if k == 2:
        return "\ufeff" + name
    if k == 3:
        return name[:i] + "\u3000" + name[i:]
    if k == 4:
        return " " + name
    return name + " "


def dot_variant(name: str, rng: np.random.Generator) -> str | None:
    if "·" not in name:
        return None
    return name.replace("·", DOT_VARIANTS[int(rng.integers(len(DOT_VARIANTS)))])


def id_digit(id18: str, rng: np.random.Generator) -> str:
    i = int(rng.integers(6, 17))  # region digits are typed from a list, rarely wrong
    d = str((int(id18[i]) + int(rng.integers(1, 10))) % 10)
    return id18[:i] + d + id18[i + 1 :]


def id_digit_in(id18: str, rng: np.random.Generator, first: int, last: int) -> str:
    """One digit of positions first..last (1-based) mistyped."""
    i = int(rng.integers(first - 1, last))
    d = str((int(id18[i]) + int(rng.integers(1, 10))) % 10)
    return id18[:i] + d + id18[i + 1 :]


def unheld_candidates(id18: str) -> list[str]:
    """Every ID two digits away inside positions 15–17 whose check character stays valid."""
    return [id18[:14] + seq + id18[17:] for seq in _sequence_neighbours(id18[14:17])]


@lru_cache(maxsize=1024)
def _sequence_neighbours(seq: str) -> tuple[str, ...]:
    """Sequence codes with two digits changed and the same weighted sum modulo 11."""
    d = [int(c) for c in seq]
    out = []
    for a, b in ((0, 1), (0, 2), (1, 2)):
        for na in range(10):
            if na == d[a]:
                continue
            for nb in range(10):
                if nb != d[b] and (_SEQ_WEIGHTS[a] * (na - d[a]) + _SEQ_WEIGHTS[b] * (nb - d[b])) % 11 == 0:
                    new = list(d)
                    new[a], new[b] = na, nb
                    out.append("".join(map(str, new)))
    return tuple(out)


def id_transposition(id18: str, rng: np.random.Generator) -> str | None:
    options = [i for i in range(6, 16) if id18[i] != id18[i + 1]]
    if not options:
        return None
    i = options[int(rng.integers(len(options)))]
    return id18[:i] + id18[i + 1] + id18[i] + id18[i + 2 :]


def id_15(id18: str) -> str | None:
    return id18[:6] + id18[8:17] if id18[6:8] == "19" else None


def id_space(id18: str, rng: np.random.Generator) -> str:
    k = int(rng.integers(3))
    if k == 0:
        return id18[:6] + " " + id18[6:14] + " " + id18[14:]
    if k == 1:
        return " " + id18 + " "
    return id18 + "\t"


def excel_float_text(id18: str) -> str:
    """How an ID looks after Excel made it a number and it was saved as text."""
    return f"{id18[0]}.{id18[1:15].rstrip('0') or '0'}E+17"


NAME_KINDS = ("name_typo", "name_homophone", "name_traditional", "name_space", "name_placeholder", "name_pinyin",
              "name_annotation", "name_invisible")
ID_KINDS = ("id_digit", "id_transposition", "id_15", "id_fullwidth", "id_space")


def apply_name(kind: str, name: str, rng: np.random.Generator) -> str | None:
    if kind == "name_typo":
        return typo(name, rng)
    if kind == "name_homophone":
        return homophone(name, rng)
    if kind == "name_traditional":
        return traditional(name)
    if kind == "name_space":
        return space(name, rng)
    if kind == "name_star":
        return star(name, rng)
    if kind == "dot_variant":
        return dot_variant(name, rng)
    if kind == "name_placeholder":
        return placeholder(name, rng)
    if kind == "name_pinyin":
        return pinyin(name, rng)
    if kind == "name_annotation":
        return annotation(name, rng)
    if kind == "name_invisible":
        return invisible(name, rng)
    raise ValueError(kind)


def apply_id(kind: str, id18: str, rng: np.random.Generator) -> str | None:
    if kind == "id_digit":
        return id_digit(id18, rng)
    if kind == "id_transposition":
        return id_transposition(id18, rng)
    if kind == "id_15":
        return id_15(id18)
    if kind == "id_fullwidth":
        return id18.translate(FULLWIDTH)
    if kind == "id_space":
        return id_space(id18, rng)
    if kind == "id_lower_x":
        return id18[:-1] + "x" if id18.endswith("X") else None
    if kind == "id_missing":
        return ""
    if kind == "id_excel_text":
        return excel_float_text(id18)
    raise ValueError(kind)


def corrupt_column(values: list[str], kinds: tuple[str, ...], rates: tuple[float, ...],
                   rng: np.random.Generator, fn) -> tuple[list[str], list[str]]:
    """Apply at most one of `kinds` to each value with the given rates; return values and kinds."""
    n = len(values)
    out, applied = list(values), [""] * n
    r = rng.random(n)
    edges = np.cumsum(rates)
    pick = np.searchsorted(edges, r, side="right")
    for i in np.flatnonzero(pick < len(kinds)):
        kind = kinds[pick[i]]
        new = fn(kind, values[i], rng)
        if new is not None and new != values[i]:
            out[i], applied[i] = new, kind
    return out, applied


def person_fields(rows: pl.DataFrame, persons: pl.DataFrame, id_col: str, name_col: str,
                  rates, rng: np.random.Generator, *, allow_missing: bool, numeric_share: float = 0.0
                  ) -> pl.DataFrame:
    """Fill a department table's ID and name columns from the true person, with corruption."""
    truth = persons.select("pid", pl.col("id_number").alias("_true_id"), pl.col("name").alias("_true_name"))
    joined = rows.join(truth, left_on="_pid", right_on="pid", how="left", maintain_order="left")
    ids = joined["_true_id"].fill_null("").to_list()
    names = joined["_true_name"].fill_null("").to_list()
    id_kinds = (*ID_KINDS, "id_missing") if allow_missing else ID_KINDS
    id_rates = (rates.id_digit, rates.id_transposition, rates.id_15, rates.id_fullwidth,
                rates.id_space) + ((rates.id_missing,) if allow_missing else ())
    new_ids, id_corr = corrupt_column(ids, id_kinds, id_rates, rng, apply_id)
    for i, v in enumerate(new_ids):
        if not id_corr[i] and v.endswith("X") and rng.random() < rates.id_lower_x:
            new_ids[i], id_corr[i] = v[:-1] + "x", "id_lower_x"
    name_rates = (rates.name_typo, rates.name_homophone, rates.name_traditional, rates.name_space,
                  rates.name_placeholder, rates.name_pinyin, rates.name_annotation, rates.name_invisible)
    new_names, name_corr = corrupt_column(names, NAME_KINDS, name_rates, rng, apply_name)
    for i, v in enumerate(new_names):
        if "·" in v and not name_corr[i] and rng.random() < rates.dot_variant:
            new_names[i], name_corr[i] = dot_variant(v, rng) or v, "dot_variant"
    numeric = np.zeros(len(rows), dtype=bool)
    if numeric_share > 0:
        clean = np.array([not c and v[-1:].isdigit() for c, v in zip(id_corr, new_ids, strict=True)])
        numeric = clean & (rng.random(len(rows)) < numeric_share)
        for i in np.flatnonzero(numeric):
            id_corr[i] = "id_excel_numeric"
    return rows.with_columns(
        pl.Series(id_col, new_ids, dtype=pl.String),
        pl.Series(name_col, new_names, dtype=pl.String),
        pl.Series("_id_corr", id_corr, dtype=pl.String),
        pl.Series("_name_corr", name_corr, dtype=pl.String),
        pl.Series("_numeric_id", numeric, dtype=pl.Boolean),
    )
