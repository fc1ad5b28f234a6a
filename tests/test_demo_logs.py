"""No ID number in any log line of a full demo run: `make demo`'s steps on the tiny prefecture —
synth, both nights through the Prefect flow, the report, the demo users, then the web app used by
a township (an ID number typed into the search box, a clue opened, the workbook downloaded) —
with everything printed, the web app's log, and Prefect's own store (its run logs and artifacts)
scanned for every ID number of the prefecture, 18-digit and 15-digit forms."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    out = subprocess.run([str(BIN / "bidui"), *args], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode in ok, out.stderr[-2000:]
    return out.stdout + out.stderr


def browse(port: int, password: str, id_number: str) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True, timeout=30) as c:
        for _ in range(100):
            try:
                c.get("/login")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
        assert "退出" in c.post("/login", data={"username": "township", "password": password, "csrf_token": token}).text
        # Searches are posted (an ID never rides in a URL); what the server logs of them is checked below.
        form = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/inbox").text).group(1)
        c.post("/inbox/search", data={"csrf_token": form, "q": id_number})
        c.post("/inbox/search", data={"csrf_token": form, "q": id_number[:15], "status": "dispatched"})
        clue = re.search(r'href="/clues/(\d+)"', c.get("/inbox").text).group(1)
        assert c.get(f"/clues/{clue}").status_code == 200
        assert c.get("/workbook").status_code == 200


def id_like(text: str) -> set[str]:
    return set(re.findall(r"(?<!\d)\d{15,17}[\dXx]?(?!\d)", text))


def test_no_id_number_in_anything_a_demo_run_prints_or_logs(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    env = os.environ | {"PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
                        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90", "PREFECT_LOGGING_LEVEL": "DEBUG"}
    printed = [run("--home", str(home), "synth", "--out", str(home), "--size", "tiny", "--nights", "2", "--seed", "7", env=env)]
    for night in sorted((home / "inbox").iterdir()):
        printed.append(run("--home", str(home), "run", str(night), env=env, ok=(0, 2)))  # 2: night 2's cut file held
    printed.append(run("--home", str(home), "report", env=env))
    printed.append(run("--home", str(home), "loads", "--json", env=env))  # every load log message
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:  # reject reasons (values are data)
        printed.append("\n".join(r for (r,) in con.execute("SELECT reason FROM rejects").fetchall()))
    users = subprocess.run([sys.executable, "-m", "bidui.clues.demo_users", str(home)], capture_output=True, text=True,
                           env=env, check=True).stdout
    printed.append(users)
    password = re.search(r"township / (\S+) /", users).group(1)

    ids = pl.read_parquet(home / "truth" / "residents.parquet")["id_number"].drop_nulls().to_list()
    searched = ids[0]
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        server = subprocess.Popen([str(BIN / "bidui"), "--home", str(home), "serve", "--port", str(port)],
                                  stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            browse(port, password, searched)
        finally:
            server.terminate()
            server.wait(timeout=30)
    printed.append(log.read_text())
    text = "\n".join(printed)
    assert "：完成" in text and "GET /inbox" in text and "/workbook" in text  # the logs were captured
    assert "POST /inbox/search" in text

    # Prefect's own store: flow and task run logs, artifacts (the run report), parameters.
    stores = [p for p in (home / "prefect").rglob("*") if p.is_file()]  # the database, its WAL, logs, results
    assert any(p.name.endswith(".db") for p in stores)
    stored = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in stores)
    assert "nightly-comparison" in stored

    forms = set(ids) | {i[:15] for i in ids} | {i.lower() for i in ids}
    leaked = (id_like(text) | id_like(stored)) & forms
    assert not leaked, f"{len(leaked)} ID numbers in logs, e.g. …{sorted(leaked)[0][-4:]}"
    assert not [i for i in forms if i in text]
    # Nor a resident's name in what the batch commands print or log (the web log records paths only).
    names = set(pl.read_parquet(home / "truth" / "residents.parquet")["name"].drop_nulls().to_list())
    batch = "\n".join(printed[:-1])
    said = [n for n in names if len(n) >= 2 and n in batch]
    assert not said, f"{len(said)} names in the batch output, e.g. {said[0][0]}…"
