"""The synthetic world's state between nights: truth tables and department tables.

Department tables hold canonical column values as the department writes them, plus hidden
columns (leading `_`) that carry the truth: `_pid` the person a row's person fields belong to
(-1: nobody), `_rec` a stable record number, `_name_corr` / `_id_corr` the corruption applied,
`_numeric_id` whether an XLSX writer stores the ID cell as a number (Excel mangling), `_phen`
a record phenomenon of issue 15 (`phenomena.py`).
Dates are Int32 days since 1970-01-01 until a writer formats them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl

from bidui.synth.config import SynthConfig


@dataclass
class World:
    cfg: SynthConfig
    rng: np.random.Generator
    run: date
    divisions: pl.DataFrame
    people: pl.DataFrame  # residents, outsiders and ghosts (register members who do not exist)
    households: pl.DataFrame  # register households (truth: head pid; written fields)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    plants: list[dict] = field(default_factory=list)
    next_rec: int = 0
    aliases: pl.DataFrame = field(default_factory=pl.DataFrame)  # second, cancelled hukou records (一人多号)
    reserved_hh: list[int] = field(default_factory=list)  # households the plants leave alone (defects live there)
    counts: dict[str, int] = field(default_factory=dict)  # how often each phenomenon was made
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def persons(self) -> pl.DataFrame:
        return self.people

    @persons.setter
    def persons(self, df: pl.DataFrame) -> None:
        self.people = df
        self._arrays.clear()

    def array(self, column: str) -> np.ndarray:
        """A persons column as numpy, indexed by pid (cached until persons change)."""
        if column not in self._arrays:
            self._arrays[column] = self.people[column].to_numpy()
        return self._arrays[column]

    def division_names(self) -> dict[str, str]:
        if "_divnames" not in self._arrays:
            self._arrays["_divnames"] = dict(zip(self.divisions["code"], self.divisions["name"], strict=True))  # type: ignore[assignment]
        return self._arrays["_divnames"]  # type: ignore[return-value]

    def recs(self, n: int) -> np.ndarray:
        out = np.arange(self.next_rec, self.next_rec + n, dtype=np.int64)
        self.next_rec += n
        return out

    def append(self, dataset: str, rows: pl.DataFrame) -> None:
        """Add rows (canonical columns + `_pid`) to a department table."""
        n = len(rows)
        rows = rows.with_columns(_rec=pl.Series(self.recs(n)))
        for col, dtype, default in (("_name_corr", pl.String, ""), ("_id_corr", pl.String, ""),
                                    ("_numeric_id", pl.Boolean, False), ("_phen", pl.String, "")):
            if col not in rows.columns:
                rows = rows.with_columns(pl.lit(default, dtype=dtype).alias(col))
        if dataset in self.tables:
            rows = rows.select(self.tables[dataset].columns).cast(dict(self.tables[dataset].schema))
            self.tables[dataset] = pl.concat([self.tables[dataset], rows], how="vertical", rechunk=True)
        else:
            self.tables[dataset] = rows

    def plant(self, rule: str, kind: str, what: str, pid: int | None, household: str | None = None,
              hukou_number: str | None = None, night: int = 0) -> None:
        self.plants.append({"plant_id": len(self.plants) + 1, "rule_code": rule, "kind": kind,
                            "description": what, "pid": pid, "household_code": household,
                            "hukou_number": hukou_number, "night": night})
