"""How each department delivers its file: name, format, encoding, delimiter, header dialect,
date style. Chosen to cover every form shared/extract-spec.md allows, at least once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from bidui.datasets import BY_CODE, Dataset
from bidui.synth.xlsx import write_frame


@dataclass(frozen=True)
class Delivery:
    name: str  # file-name template: {ymd} 20261120, {md} 1120, {m} 11
    fmt: str  # csv | xlsx | parquet
    encoding: str = "utf-8"  # utf-8 | utf-8-sig | gb18030
    sep: str = ","
    dates: str = "iso"  # iso | compact | slash | slash_unpadded | cn | cn_unpadded | excel


DELIVERIES: dict[str, Delivery] = {
    "divisions": Delivery("行政区划代码.csv", "csv", "utf-8-sig"),
    "register_households": Delivery("建档立卡贫困户.xlsx", "xlsx"),
    "register_members": Delivery("贫困人口明细_{ymd}.csv", "csv", "utf-8-sig", dates="iso"),
    "hukou": Delivery("hukou_{ymd}.csv", "csv", "gb18030", dates="compact"),
    "hukou_changes": Delivery("hukou_changes_{ymd}.csv", "csv", "gb18030", "\t", dates="cn"),
    "deaths": Delivery("死亡医学证明_{md}.csv", "csv", "utf-8-sig", dates="cn_unpadded"),
    "medical_insurance": Delivery("medical_insurance_{ymd}.parquet", "parquet"),
    "medical_claims": Delivery("医疗费用结算明细_{ymd}.csv", "csv", "utf-8", dates="slash_unpadded"),
    "students": Delivery("学籍信息_{ymd}.csv", "csv", "utf-8", "\t"),
    "property": Delivery("不动产登记信息_{ymd}.csv", "csv", "utf-8-sig", dates="iso"),
    "dangerous_housing": Delivery("农村危房鉴定结果.xlsx", "xlsx", dates="excel"),
    "businesses": Delivery("市场主体登记信息_{ymd}.xlsx", "xlsx", dates="slash"),
    "business_investors": Delivery("business_investors_{ymd}.csv", "csv", "utf-8"),
    "vehicles": Delivery("机动车登记信息（{m}月）.xlsx", "xlsx", dates="iso"),
    "payroll": Delivery("财政供养人员_{ymd}.csv", "csv", "gb18030"),
}
CHUNK_ROWS = 500_000
LEVEL_WORDS = {"county": ("县", "区"), "township": ("镇", "乡", "街道"), "village": ("村", "社区")}


def file_name(dataset: str, night: date) -> str:
    return DELIVERIES[dataset].name.format(ymd=night.strftime("%Y%m%d"), md=night.strftime("%m%d"), m=night.month)


def choose_headers(ds: Dataset, rng: np.random.Generator) -> dict[str, str]:
    """A header dialect for one department: per column the Chinese header, a synonym or the
    English name, never two columns with the same header."""
    while True:
        chosen = {}
        for col in ds.columns:
            r = rng.random()
            if r < 0.6 or not col.synonyms:
                chosen[col.name] = col.header if r < 0.93 else col.name
            else:
                chosen[col.name] = col.synonyms[int(rng.integers(len(col.synonyms)))]
        if len(set(chosen.values())) == len(chosen):
            return chosen


def format_dates(s: pl.Series, style: str) -> pl.Series:
    d = s.cast(pl.Int32).cast(pl.Date)
    if style == "iso":
        return d.dt.strftime("%Y-%m-%d")
    if style == "compact":
        return d.dt.strftime("%Y%m%d")
    if style == "slash":
        return d.dt.strftime("%Y/%m/%d")
    y, m, dd = d.dt.year().cast(pl.String), d.dt.month().cast(pl.String), d.dt.day().cast(pl.String)
    if style == "slash_unpadded":
        return (y + "/" + m + "/" + dd).alias(s.name)
    if style == "cn":
        return d.dt.strftime("%Y年%m月%d日")
    if style == "cn_unpadded":
        return (y + "年" + m + "月" + dd + "日").alias(s.name)
    raise ValueError(style)


def render(dataset: str, df: pl.DataFrame, style: str) -> pl.DataFrame:
    """Canonical table → the values the department writes (dates, money, enumerations)."""
    ds = BY_CODE[dataset]
    cols = []
    for col in ds.columns:
        s = df[col.name]
        if col.kind == "date" and style != "excel":
            s = format_dates(s, style)
        elif col.kind == "money" or col.kind == "number":
            s = s.cast(pl.Float64).round(2).cast(pl.String).str.replace(r"\.0$", "")
        elif col.kind == "year":
            s = s.cast(pl.Int64).cast(pl.String)
        cols.append(s.alias(col.name))
    return pl.DataFrame(cols)


def divisions_rendered(df: pl.DataFrame) -> pl.DataFrame:
    """Levels as the statistics bureau writes them: 区/县, 街道/镇/乡, 社区/村."""
    def word(code: str, level: str, name: str) -> str:
        for w in sorted(LEVEL_WORDS[level], key=len, reverse=True):
            if name.endswith(w) or name.endswith(w + "委会") or name.endswith(w + "居委会") or name.endswith(w + "村委会"):
                return w
        return LEVEL_WORDS[level][0]
    words = [word(c, lv, n) for c, lv, n in zip(df["code"], df["level"], df["name"], strict=True)]
    return df.with_columns(pl.Series("level", words))


def write_dataset(dataset: str, df: pl.DataFrame, folder: Path, night: date, headers: dict[str, str],
                  truncate_to: float | None = None) -> tuple[str, int]:
    """Write one night's file; return its name and the number of complete data rows in it."""
    d = DELIVERIES[dataset]
    name = file_name(dataset, night)
    path = folder / name
    if dataset == "divisions":
        out = divisions_rendered(df.select([c.name for c in BY_CODE[dataset].columns]))
    else:
        out = render(dataset, df, d.dates)
    numeric = df["_numeric_id"].to_numpy() if "_numeric_id" in df.columns else np.zeros(len(df), dtype=bool)
    header = [headers[c] for c in out.columns]
    if d.fmt == "parquet":
        out.rename(dict(zip(out.columns, header, strict=True))).write_parquet(path)
        return name, len(out)
    if d.fmt == "xlsx":
        ds = BY_CODE[dataset]
        numeric_cols = {}
        for c in ds.columns:
            if c.kind == "id" and numeric.any():
                # Excel keeps 15 significant digits of a number typed into a cell.
                out = out.with_columns(pl.when(pl.Series(numeric)).then(pl.col(c.name).str.slice(0, 15) + "000")
                                       .otherwise(pl.col(c.name)).alias(c.name))
                numeric_cols[c.name] = pl.Series(numeric)
        serial = []
        if d.dates == "excel":
            serial = [c.name for c in ds.columns if c.kind == "date"]
            out = out.with_columns([(pl.col(c).cast(pl.Int64) + 25569).alias(c) for c in serial])
        n = write_frame(path, header, out, numeric_cols, serial)
        return name, n
    named = out.rename(dict(zip(out.columns, header, strict=True)))
    if truncate_to is None:
        # Chunks of 500 k rows: a 4 M-row GB18030 file never sits whole in memory as Python text.
        with path.open("wb") as f:
            for start in range(0, max(named.height, 1), CHUNK_ROWS):
                buf = io.BytesIO()
                named.slice(start, CHUNK_ROWS).write_csv(buf, separator=d.sep, null_value="", include_header=start == 0)
                data = buf.getvalue().decode("utf-8").encode("gb18030" if d.encoding == "gb18030" else "utf-8")
                if start == 0 and d.encoding == "utf-8-sig":
                    data = b"\xef\xbb\xbf" + data
                f.write(data)
        return name, named.height
    buf = io.BytesIO()
    named.write_csv(buf, separator=d.sep, null_value="")
    text = buf.getvalue().decode("utf-8")
    # A transfer cut off mid-row: keep a share of the bytes, ending inside a line.
    text = text[: int(len(text) * truncate_to)]
    n = max(0, text.count("\n") - 1)
    data = text.encode("gb18030" if d.encoding == "gb18030" else "utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if d.encoding == "utf-8-sig" else b"") + data)
    return name, n
