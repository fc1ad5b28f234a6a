"""Generation time and peak memory of the synthetic prefecture, per size.

Each size runs in its own process so that peak RSS is that size's alone.
    python bench/synth.py --sizes tiny,small,medium,large [--nights 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys
from bidui.synth.config import SynthConfig
from bidui.synth.generate import generate
s = generate(sys.argv[1], SynthConfig(size=sys.argv[2], seed=int(sys.argv[3]), nights=int(sys.argv[4])))
print(json.dumps({k: v for k, v in s.items() if k not in ("corruption", "plants")}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="tiny,small")
    ap.add_argument("--nights", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", CHILD, str(Path(tmp) / size), size, str(args.seed),
                                  str(args.nights)], capture_output=True, text=True, check=True)
            s = json.loads(out.stdout.strip().splitlines()[-1])
            disk = sum(p.stat().st_size for p in (Path(tmp) / size).rglob("*") if p.is_file())
        rows.append((size, s["residents"], s["register_members"], s["department_rows"], s["seconds"],
                     s["peak_rss_mb"], round(disk / 2**20)))
    head = ("size", "residents", "register members", "rows/night", "seconds", "peak RSS MB", "disk MB")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
