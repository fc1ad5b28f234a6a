"""What rows that only moved cost a later night (issue 18): the night as delivered, against the same
night with each file's new rows put at its end, so that no row moves.

    python bench/moved_rows.py --home HOME --before INBOX/2026-11-20 --inbox INBOX/2026-11-21 [--repeat 2]

HOME is a home whose last night is `--before`'s (a night-1 home); it is copied for each run and
left as it was. The variant night is written to a temporary folder: every CSV and XLSX file of
`--inbox` whose dataset has a file in `--before` keeps, in their order, the rows that are also in
that file (by their bytes: a CSV line, a worksheet row without its row number), and then the rest
(new and changed rows). The rows and what they say are those delivered; only their order differs.
A file none of whose rows moved is left as delivered (written again, a workbook would not be the
same bytes, and would be read as a new delivery), and so is a CSV file cut short or with a quoted
line break, and a workbook whose data is not on its first sheet. Then each night is run on a copy
of HOME (`bidui run --plain`'s steps, in this process) and its steps timed. Prints, per file
reordered, its rows, how many came and how many stand elsewhere than the night before as
delivered; then per step the median seconds of each form and their difference.

The synthetic prefecture writes a night's new rows among the others, as an extract sorted by
anything but arrival does: on the large night 2 nearly every vehicles, enterprise, household-change
and death row stands lower in its file than the night before.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STEPS = ("ingest", "link", "rules", "publish")
SHEET = "xl/worksheets/sheet1.xml"
ROW = re.compile(rb'<row r="(\d+)"([^>]*)>(.*?)</row>', re.S)
CELL_REF = re.compile(rb' r="([A-Z]+)\d+"')
CELL_COLUMN = re.compile(rb' r="([A-Z]+)"')


def _reorder(before: set[bytes], rows: list[bytes]) -> tuple[list[int], int]:
    """The order of `rows` (indexes) with the rows also in `before` first, as they come, then the
    rest; how many rows came."""
    kept = [i for i, r in enumerate(rows) if r in before]
    came = [i for i, r in enumerate(rows) if r not in before]
    return kept + came, len(came)


def _moved(before: list[bytes], rows: list[bytes]) -> int:
    """How many of `rows` stand elsewhere than the same bytes stood in `before` (twins by rank)."""
    places: dict[bytes, list[int]] = {}
    for i, r in enumerate(before):
        places.setdefault(r, []).append(i)
    seen: dict[bytes, int] = {}
    moved = 0
    for i, r in enumerate(rows):
        k = seen.get(r, 0)
        seen[r] = k + 1
        at = places.get(r, [])
        moved += k < len(at) and at[k] != i
    return moved


def _csv(old: Path, new: Path, out: Path) -> tuple[int, int, int] | None:
    data = new.read_bytes()
    a, b = old.read_bytes().split(b"\n"), data.split(b"\n")
    if not data.endswith(b"\n") or any(line.count(b'"') % 2 for line in (*a, *b)):
        return None  # cut short (its last line is not a row), or a quoted line break: lines are not rows
    head, body = b[0], [line for line in b[1:] if line]
    moved = _moved([line for line in a[1:] if line], body)
    if not moved:
        return None
    order, came = _reorder(set(a[1:]), body)
    out.write_bytes(b"\n".join([head, *(body[i] for i in order)]) + b"\n")
    return len(body), came, moved


def _sheet_rows(path: Path) -> tuple[zipfile.ZipFile, bytes, list[re.Match]] | None:
    z = zipfile.ZipFile(path)
    if SHEET not in z.namelist():
        return None
    xml = z.read(SHEET)
    return z, xml, list(ROW.finditer(xml))


def _xlsx(old: Path, new: Path, out: Path) -> tuple[int, int, int] | None:
    a, b = _sheet_rows(old), _sheet_rows(new)
    if a is None or b is None or len(b[2]) < 2:
        return None
    z, xml, rows = b
    key = [CELL_REF.sub(rb' r="\1"', m.group(3)) for m in rows]  # (a row's bytes without its number)
    before = [CELL_REF.sub(rb' r="\1"', m.group(3)) for m in a[2]][1:]
    moved = _moved(before, key[1:])
    if not moved:
        return None
    order, came = _reorder(set(before), key[1:])
    parts = []
    for n, i in enumerate([0, *(j + 1 for j in order)], start=1):
        cells = CELL_COLUMN.sub(lambda m, n=n: b' r="' + m.group(1) + str(n).encode() + b'"', key[i])
        parts.append(b'<row r="%d"%s>%s</row>' % (n, rows[i].group(2), cells))
    sheet = xml[:rows[0].start()] + b"".join(parts) + xml[rows[-1].end():]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in z.infolist():
            zo.writestr(info.filename, sheet if info.filename == SHEET else z.read(info.filename))
    return len(rows) - 1, came, moved


def variant(before: Path, night: Path, out: Path) -> list[tuple[str, int, int, int]]:
    """`night`'s folder written to `out` with each file's new rows at its end; per file reordered:
    (file, rows, rows that came, rows standing elsewhere than the night before as delivered)."""
    from bidui.datasets import dataset_named

    out.mkdir(parents=True)
    earlier = {ds.code: p for p in before.iterdir() if (ds := dataset_named(p.name))}
    done = []
    for p in sorted(night.iterdir()):
        target = out / p.name
        ds = dataset_named(p.name)
        old = earlier.get(ds.code) if ds else None
        reader = {".csv": _csv, ".xlsx": _xlsx}.get(p.suffix.lower())
        counts = reader(old, p, target) if old is not None and reader is not None and old.suffix == p.suffix else None
        if counts is None:
            shutil.copy2(p, target)
        else:
            done.append((p.name, *counts))
    return done


def run(home: Path, folder: Path) -> dict[str, float]:
    """Each step's wall seconds for the night of `folder` on a copy of `home`."""
    from bidui.flows import nightly
    from bidui.home import Home

    with tempfile.TemporaryDirectory() as tmp:
        copy = Home(Path(tmp) / "home")
        shutil.copytree(home, copy.root)
        (copy.root / "run.lock").unlink(missing_ok=True)
        steps = nightly.plain_steps(copy, folder, date.fromisoformat(folder.name))
        seconds = {}
        for step in STEPS:
            start = time.perf_counter()
            steps[step]()
            seconds[step] = time.perf_counter() - start
        return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="a home whose last night is --before's")
    ap.add_argument("--before", type=Path, required=True, help="that night's folder, inbox/YYYY-MM-DD")
    ap.add_argument("--inbox", type=Path, required=True, help="the next night's folder, inbox/YYYY-MM-DD")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / args.inbox.name
        files = variant(args.before, args.inbox, folder)
        print("| file | rows | came | standing elsewhere as delivered |\n|---|---|---|---|")
        for name, rows, came, moved in files:
            print(f"| {name} | {rows:,} | {came:,} | {moved:,} |")
        times: dict[str, dict[str, list[float]]] = {"delivered": {}, "appended": {}}
        for _ in range(args.repeat):  # (alternating, so that both see the machine's same hours)
            for form, night in (("delivered", args.inbox), ("appended", folder)):
                for step, s in run(args.home, night).items():
                    times[form].setdefault(step, []).append(s)
    med = {form: {step: statistics.median(v) for step, v in steps.items()} for form, steps in times.items()}
    print(f"\nmedian of {args.repeat} run(s) each\n\n| step | as delivered | new rows at the end | rows that moved cost |\n"
          "|---|---|---|---|")
    for step in (*STEPS, "night"):
        d = sum(med["delivered"].values()) if step == "night" else med["delivered"][step]
        a = sum(med["appended"].values()) if step == "night" else med["appended"][step]
        print(f"| {step} | {d:.2f} | {a:.2f} | {d - a:+.2f} |")


if __name__ == "__main__":
    main()
