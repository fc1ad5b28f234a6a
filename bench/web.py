"""The web app under load: a ledger of 100 k clues, 50 concurrent township users on loopback,
each signing in and then opening its inbox and clue pages in turn, reading each page for about
a second (`--think`; 0 measures saturation instead). Prints p50/p95 per page.

    python bench/web.py [--clues 100000] [--users 50] [--rounds 20] [--workers 2] [--think 1.0]

The ledger is built once under bench/out/web (SQLite, the default store); the server is
`bidui serve` in its own processes, the load comes from one asyncio client process."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

OUT = Path("bench/out/web")
PASSWORD = "bench-pass-1"
NIGHT = date(2026, 11, 20)


def township_codes(n: int) -> list[str]:
    """n townships over counties of ten: 529001001000, 529001002000, …"""
    return [f"5290{c + 1:02d}{t + 1:03d}000" for c in range((n + 9) // 10) for t in range(10)][:n]


def build(clues: int, users: int) -> Path:
    import polars as pl

    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.publish import publish
    from bidui.clues.users import add_user
    from bidui.home import Home

    home = Home(OUT / f"home-{clues}-{users}")
    if (home.root / "ready").exists():
        return home.root
    home.root.mkdir(parents=True, exist_ok=True)
    (home.ledger).unlink(missing_ok=True)
    towns = township_codes(max(users, 10))
    rng = random.Random(1)
    rules = [("VEHICLE", "mis_inclusion"), ("DECEASED", "natural_change"), ("UNINSURED", "exit_risk"),
             ("ID_INVALID", "data_quality"), ("MISSED_DANGEROUS_HOUSE", "missed_inclusion")]
    rows = []
    for i in range(clues):
        town = towns[i % len(towns)]
        rule, category = rules[i % len(rules)]
        village = town[:9] + f"{200 + rng.randrange(8):03d}"
        hh = f"{village}{rng.randrange(400):04d}"
        rows.append({"rule_code": rule, "category": category, "subject_key": f"S{i}", "subject_person_key": None,
                     "subject_id_number": f"{town[:6]}19{rng.randrange(50, 99)}0101{i % 10000:04d}",
                     "subject_name": rng.choice("王李张刘陈杨黄赵") + rng.choice(["伟", "芳", "秀英", "建国", "丽"]),
                     "household_code": hh, "hukou_number": "", "township_code": town, "village_code": village,
                     "household_status": rng.choice(["未脱贫", "已脱贫"]), "registered_year": 2016,
                     "evidence_dataset": "vehicles", "evidence_key": f"E{i}", "evidence_date": NIGHT,
                     "link_method": "exact", "link_score": 1.0, "link_explanation": None, "before_registration": False,
                     "evidence_record": f'{{"plate": "浙A{i:05d}", "vehicle_type": "K33", "status": "正常"}}'})
    hits = pl.DataFrame(rows)
    ledger = open_ledger(ledger_url(home.ledger))
    publish(ledger, hits, {r: "ran" for r, _ in rules}, NIGHT, {r: r for r, _ in rules})
    with ledger.write() as s:
        for i, town in enumerate(towns[:users]):
            add_user(s, f"t{i}", f"乡镇{i}", "township", town, PASSWORD)
    ledger.close()
    (home.root / "ready").write_text("ok")
    return home.root


async def one_user(base: str, username: str, rounds: int, think: float, times: dict[str, list[float]],
                   errors: list[str]) -> None:
    import httpx

    # People do not all press "login" in the same millisecond: arrivals spread over ten seconds.
    await asyncio.sleep(random.random() * 10 if think else 0)
    async with httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=False) as c:
        page = await c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = await c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
        if r.status_code != 303:
            errors.append(f"login {username}: {r.status_code}")
            return
        inbox = await c.get("/inbox")
        ids = [int(x) for x in re.findall(r'href="/clues/(\d+)"', inbox.text)]
        for _ in range(rounds):
            for kind, path in (("inbox", "/inbox"), ("clue", f"/clues/{random.choice(ids)}")):
                t = time.perf_counter()
                r = await c.get(path)
                times[kind].append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    errors.append(f"{path}: {r.status_code}")
                # A person reads the page before the next click (0.5–1.5 × think seconds).
                await asyncio.sleep(think * (0.5 + random.random()))


async def load(base: str, users: int, rounds: int, think: float) -> tuple[dict[str, list[float]], list[str], float]:
    times: dict[str, list[float]] = {"inbox": [], "clue": []}
    errors: list[str] = []
    start = time.perf_counter()
    await asyncio.gather(*(one_user(base, f"t{i}", rounds, think, times, errors) for i in range(users)))
    return times, errors, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clues", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds a user reads a page (0: no pause)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    t = time.perf_counter()
    root = build(args.clues, args.users)
    print(f"ledger: {args.clues:,} clues, {args.users} township users ({time.perf_counter() - t:.0f} s to build or reuse)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bidui = Path(sys.executable).parent / "bidui"
    server = subprocess.Popen([str(bidui), "--home", str(root), "serve", "--port", str(port), "--workers",
                               str(args.workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=os.environ | {"BIDUI_SECRET": "bench"})
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        times, errors, seconds = asyncio.run(load(f"http://127.0.0.1:{port}", args.users, args.rounds, args.think))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
    print(f"\n{args.users} concurrent users × {args.rounds} rounds (think time {args.think} s), {args.workers} server processes, "
          f"{seconds:.1f} s, errors: {len(errors)}\n")
    print("| page | requests | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    figures: dict[str, object] = {"users": args.users, "errors": len(errors), "pages": {}}
    for kind, xs in times.items():
        xs = sorted(xs)
        p95 = xs[int(0.95 * (len(xs) - 1))] if xs else 0
        figures["pages"][kind] = {"requests": len(xs), "p50": statistics.median(xs), "p95": p95, "max": xs[-1]}
        print(f"| {kind} | {len(xs):,} | {statistics.median(xs):.0f} | {p95:.0f} | {xs[-1]:.0f} |")
    if errors:
        print("\nfirst errors: " + "; ".join(errors[:5]))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
