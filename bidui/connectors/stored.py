"""How a dataset is kept in the warehouse: its columns with their SQL types, and the fingerprint
each stored row keeps of the text it was read from. Apart from the normaliser, so that what only
reads the warehouse (linking, rules, reports) does not load the readers and cleaners."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from bidui.datasets import Dataset

SQL_TYPES = {"date": "DATE", "year": "INTEGER", "money": "DOUBLE", "number": "DOUBLE"}


@dataclass
class Known:
    """The fingerprints (`raw_hi`, `raw_lo`) of the rows of a dataset's snapshot in force (`snapshot`,
    a night not after tonight's), stored with it: a row delivered again exactly is not normalised
    again."""

    snapshot: date
    hashes: pl.DataFrame
    # Of a snapshot read from a CSV file whose every line is a row (bidui.connectors.csv_lines): its
    # rows' line fingerprints with their row fingerprints and rows (`line_hi`, `line_lo`, `raw_hi`,
    # `raw_lo`, `source_row`) and the file's form; a line delivered again in the same form is not
    # even parsed, and one at its row of the snapshot is known to be in place there.
    lines: pl.DataFrame | None = None
    line_form: str | None = None
    load: int | None = None  # the load that stored the snapshot (its rows do not change while it is in force)

    @staticmethod
    def of(snapshot: date, prints: pl.DataFrame, line_form: str | None, load: int | None) -> Known:
        """From the snapshot's fingerprints as stored (`raw_hi`, `raw_lo`; with a line form also
        `line_hi`, `line_lo` and `source_row`)."""
        if line_form is None:
            return Known(snapshot, prints, load=load)
        lines = prints.filter(pl.col("line_hi").is_not_null()).select("line_hi", "line_lo", "raw_hi", "raw_lo", "source_row")
        return Known(snapshot, prints.select("raw_hi", "raw_lo"), lines, line_form, load)


@dataclass
class KnownFile:
    """A `Known` handed to a worker process as a Parquet file of its fingerprints, read there only
    when the file has to be read (not for the same bytes as the snapshot in force). Pickled to the
    worker through the pool's pipe, the hukou snapshot's 231 MB of fingerprints cost the writer's
    process 0.6 s and delayed the worker's start by more; those of files sent again byte for byte
    (medical claims and insurance: 178 MB) were shipped for nothing."""

    snapshot: date
    path: Path
    line_form: str | None
    load: int | None

    def read(self) -> Known:
        return Known.of(self.snapshot, pl.read_parquet(self.path), self.line_form, self.load)


def runs(rows: pl.Series) -> pl.DataFrame:
    """Sorted distinct row numbers as runs of consecutive ones (`first_row`, `last_row`)."""
    starts = (rows.diff() != 1).fill_null(True)
    frame = pl.DataFrame({"source_row": rows, "run": starts.cum_sum()})
    return frame.group_by("run", maintain_order=True).agg(pl.col("source_row").first().alias("first_row"),
                                                          pl.col("source_row").last().alias("last_row")).drop("run")


def run_rows(frame: pl.DataFrame | None) -> int:
    """How many rows runs of rows (`runs`; `normalise.Normalised.in_place`) hold."""
    return int((frame["last_row"] - frame["first_row"] + 1).sum()) if frame is not None and frame.height else 0


# A fingerprint is stored as one UHUGEINT (`raw_hash`, `line_hash`) and handled outside DuckDB as
# two UBIGINT halves (`raw_hi`, `raw_lo`: polars has no 128-bit unsigned type).
def raw_halves_sql(h: str, kind: str = "raw") -> str:
    return f"({h} >> 64)::UBIGINT AS {kind}_hi, ({h} & 18446744073709551615)::UBIGINT AS {kind}_lo"


def raw_whole_sql(prefix: str = "", kind: str = "raw") -> str:
    return f"({prefix}{kind}_hi::UHUGEINT << 64) | {prefix}{kind}_lo::UHUGEINT"


def table_columns(ds: Dataset) -> list[tuple[str, str]]:
    """The warehouse columns of a dataset table after the common ones, with SQL types."""
    cols: list[tuple[str, str]] = [("source_row", "BIGINT")]
    for c in ds.columns:
        if c.kind == "id":
            cols += [(f"{c.name}_raw", "VARCHAR"), (c.name, "VARCHAR"), (f"{c.name}_status", "VARCHAR")]
        elif c.kind == "name":
            cols += [(f"{c.name}_raw", "VARCHAR"), (c.name, "VARCHAR")]
        else:
            if ds.code == "vehicles" and c.name == "vehicle_type":
                cols.append(("vehicle_type_code", "VARCHAR"))
            cols.append((c.name, SQL_TYPES.get(c.kind, "VARCHAR")))
    cols += [("extra_json", "VARCHAR"), ("rejected_columns", "VARCHAR")]
    return cols
