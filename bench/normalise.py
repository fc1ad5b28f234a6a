"""The normalising steps every delivered file goes through, timed on a synthetic prefecture's
largest files (night 1): ID numbers, NFKC of the text columns, and whether any row repeats.

    python bench/normalise.py --size large [--repeat 3]

Each step runs in this process on the file's columns as the reader gives them (medians of
`--repeat` runs, wall seconds; polars uses both cores). Beside the steps as ingest runs them, the
ways they were run before 2026-12-06, for comparison: every ID number through the whole pipeline
(`ids._normalise_any`), NFKC skipping ASCII values only, and a polars hash of every cell to tell
whether a row repeats.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

FILES = ("hukou_", "medical_insurance_")  # the two 4-million-row files of the large night


def _nfkc_ascii_skipped(s: pl.Series) -> pl.Series:
    """NFKC as `bidui.text.nfkc_series` did it before 2026-12-06: every value not ASCII normalised."""
    s = s.cast(pl.String)
    if len(s) > 1000 and s.head(20_000).n_unique() * 4 < min(len(s), 20_000):
        distinct = s.unique().drop_nulls()
        return s.replace_strict(distinct, _nfkc_ascii_skipped(distinct), default=None)
    idx = (s.str.len_bytes() != s.str.len_chars()).fill_null(False).arg_true()
    return s.scatter(idx, s.gather(idx).str.normalize("NFKC")) if len(idx) else s


def _median(f: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from bidui import ids
    from bidui.connectors.mapping import map_headers
    from bidui.connectors.normalise import ValueLimits, raw_row_hashes
    from bidui.connectors.readers import read_table
    from bidui.datasets import dataset_for_filename
    from bidui.text import nfkc_series

    out = Path("bench/out") / args.size
    if not (out / "inbox").exists():
        subprocess.run([sys.executable, "-m", "bidui.cli", "synth", "--out", str(out), "--size", args.size,
                        "--seed", str(args.seed), "--nights", "1"], check=True)
    night = sorted((out / "inbox").iterdir())[0]
    print(f"normalising steps, {args.size} prefecture, {night.name}; median of {args.repeat} run(s), wall seconds\n")
    print("| file | step | values | as ingest runs it | as before 2026-12-06 |")
    print("|---|---|---|---|---|")
    for path in sorted(p for p in night.iterdir() if p.name.startswith(FILES)):
        ds = dataset_for_filename(path.name)
        raw = read_table(path, ds)
        data = raw.data.rechunk()
        mapping = map_headers(ds, raw.header, path.name, raw.first_data_row - 1)
        for c in ds.columns:
            pos = mapping.positions.get(c.name)
            if c.kind != "id" or pos is None:
                continue
            col = data[f"c{pos}"]
            plain = int(col.str.contains(ids._PLAIN_18).sum())
            now = _median(lambda col=col: ids.normalise_id_series(col), args.repeat)
            before = _median(lambda col=col: ids._normalise_any(col), args.repeat)
            print(f"| {path.name} | ID numbers ({c.name}; {plain / max(len(col), 1):.0%} plain) | {len(col):,} | "
                  f"{now:.2f} | {before:.2f} |")
        texts = [data[f"c{p}"] for c in ds.columns if c.kind != "id" and (p := mapping.positions.get(c.name)) is not None]
        now = _median(lambda texts=texts: [nfkc_series(s) for s in texts], args.repeat)
        before = _median(lambda texts=texts: [_nfkc_ascii_skipped(s) for s in texts], args.repeat)
        print(f"| {path.name} | NFKC of {len(texts)} text columns | {data.height:,} | {now:.2f} | {before:.2f} |")
        hashes = raw_row_hashes(ds, mapping, raw, data, ValueLimits())
        now = _median(lambda hashes=hashes: hashes["raw_hi"].n_unique(), args.repeat)
        before = _median(lambda data=data: data.select(pl.struct(pl.all()).hash(seed=0)).to_series().n_unique(),
                         args.repeat)
        print(f"| {path.name} | does any row repeat? (the rows' fingerprints, computed anyway) | {data.height:,} | "
              f"{now:.2f} | {before:.2f} |")


if __name__ == "__main__":
    main()
