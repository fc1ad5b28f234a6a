"""A bad delivery never becomes clues (issue 14): every recipe of tests/corpus/night2.py, and every
bad file of tests/corpus/files, delivered as night 2 of the tiny prefecture after night 1 ran.

Night 1 runs once into a template home; a clean night 2 runs on a copy of it (the reference: what
night 2 should dispatch). Each case copies the template home and the inbox (nights 1 and 2), applies
its recipe to night 2, runs `bidui run --plain` in-process and checks:
- the bad file's load-log status is the expected one, its message holds the fragment and names the
  file (an accepted file: the fragment anywhere in its load-log row, e.g. the evidence it was whole);
- the exit code: 2 when a file was refused or held, else 0; no other file refused or held;
- no half-load: a refused or held file leaves no snapshot of its dataset dated night 2, no rows;
- no clue dispatched that the clean night 2 would not dispatch, and no clue marked evidence-gone
  that is not gone in the clean night 2;
- no ID number (18-digit, lower-case x, the old 15-digit form, the first 15 digits Excel keeps,
  scientific notation with 12+ digits) nor name (2+ characters) of any resident of the answer key
  in anything the run printed or logged, the load log's messages, the rejects' reasons, or the run
  reports (warehouse and ledger).
The whole set is slow; a representative few also run in the normal suite. A real writer process
appends to hukou while a run reads it (test_a_file_still_being_written_…).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import sys
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bidui.cli import app
from bidui.clues.db import ledger_url, open_ledger
from bidui.clues.models import Clue, RunReport
from bidui.flows import nightly
from bidui.home import Home


def _load_recipes():
    path = Path(__file__).parent / "corpus" / "night2.py"
    spec = importlib.util.spec_from_file_location("bidui_tests_night2", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


night2 = _load_recipes()
Recipe = night2.Recipe

NIGHT1, NIGHT2 = date(2026, 11, 20), date(2026, 11, 21)
# Files settle at once (their modification times are set an hour back), and a night never waits
# long for a file still being written.
SETTINGS = "[ingest]\nsettle_seconds = 1\nmax_wait_seconds = 5\n"
NOT_TAKEN = ("refused", "held")
REPRESENTATIVE = {"hukou_cut_mid_row_90", "hukou_cut_at_row_end_98", "deaths_cut_inside_character", "medical_insurance_ids_blank", "medical_claims_every_row_x10",
                  "property_usage_bad_3_percent", "hukou_symlink_to_night_1", "vehicles_file_name_gbk_bytes",
                  "deaths_id_in_date_column", "hukou_changes_fifo"}


# ---------------------------------------------------------------- personal data


@dataclass(frozen=True)
class Personal:
    ids: frozenset[str]  # every written form of every resident's ID
    prefixes: dict[int, frozenset[str]]  # first n digits, for IDs in scientific notation
    names: frozenset[str]

    @classmethod
    def from_truth(cls, truth: Path) -> Personal:
        residents = pl.read_parquet(truth / "residents.parquet")
        ids18 = [i for i in residents["id_number"].drop_nulls().to_list() if len(i) == 18]
        forms = set()
        for i in ids18:
            forms |= {i, i.lower(), i[:15], i[:6] + i[8:17]}
        prefixes = {n: frozenset(i[:n] for i in ids18) for n in range(12, 16)}
        names = frozenset(unicodedata.normalize("NFKC", n).strip() for n in residents["name"].drop_nulls().to_list())
        return cls(frozenset(forms), prefixes, frozenset(n for n in names if len(n) >= 2))

    def leaks(self, text: str) -> tuple[list[str], list[str]]:
        """(ID numbers, names) found in the text; IDs masked for the report."""
        text = unicodedata.normalize("NFKC", text)
        ids = set()
        for run in re.findall(r"[0-9Xx]{15,}", text):
            for n in (15, 18):
                ids |= {run[k:k + n] for k in range(len(run) - n + 1) if run[k:k + n] in self.ids}
        for lead, frac in re.findall(r"(?<![0-9.])([0-9])\.([0-9]{11,14})[Ee]\+?17", text):
            digits = lead + frac
            if digits in self.prefixes[len(digits)]:
                ids.add(digits)
        names = sorted(n for n in self.names if n in text)
        return sorted(i[:4] + "*" * (len(i) - 8) + i[-4:] for i in ids), names


# ---------------------------------------------------------------- running a night


@dataclass
class Run:
    exit_code: int
    output: str
    crash: str | None
    logged: str
    seconds: float


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record))


@contextlib.contextmanager
def _wide_console():
    """Tables unfolded (an ID split over two table lines would escape the scan)."""
    from rich.console import Console

    import bidui.cli as cli

    old = getattr(cli, "console", None)
    if old is not None:
        cli.console = Console(width=100_000)
    try:
        yield
    finally:
        if old is not None:
            cli.console = old


def run_cli(home: Path, folder: Path) -> Run:
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    start = time.perf_counter()
    try:
        with _wide_console():
            result = CliRunner().invoke(app, ["--home", str(home), "run", "--plain", str(folder)])
    finally:
        root.removeHandler(records)
        gc.collect()  # a connection a crash left behind must not keep the warehouse open
    output = result.output
    with contextlib.suppress(Exception):
        if result.stderr and result.stderr not in output:
            output += result.stderr
    crash = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        crash = f"{type(result.exception).__name__}: {result.exception}"
    return Run(result.exit_code, output, crash, "\n".join(records.lines), time.perf_counter() - start)


def copy_home(template: Path, dest: Path, settings: str = SETTINGS) -> Path:
    shutil.copytree(template, dest)
    (dest / "bidui.toml").write_text(settings, encoding="utf-8")
    return dest


def copy_inbox(tiny: Path, dest: Path) -> Path:
    for night in (NIGHT1, NIGHT2):
        shutil.copytree(tiny / "inbox" / night.isoformat(), dest / night.isoformat(), symlinks=True)
    return dest


def age(inbox: Path, seconds: float = 3600) -> None:
    """Delivered an hour ago: every entry's times set back (links themselves, not their targets)."""
    when = time.time() - seconds
    for dirpath, dirnames, filenames in os.walk(os.fsencode(inbox)):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (when, when), follow_symlinks=False)


# ---------------------------------------------------------------- reading a home


def warehouse(home: Path) -> duckdb.DuckDBPyConnection:
    gc.collect()
    try:
        return duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    except duckdb.Error:
        return duckdb.connect(str(home / "warehouse.duckdb"))


def rows(con: duckdb.DuckDBPyConnection, sql: str, args: list | None = None) -> list[dict]:
    try:
        cur = con.execute(sql, args or [])
    except duckdb.CatalogException:
        return []
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, args: list | None = None) -> int:
    try:
        return int(con.execute(sql, args or []).fetchone()[0])
    except duckdb.CatalogException:
        return 0


@dataclass
class Ledger:
    new: set[tuple[str, str, str]]  # clues first seen on night 2
    gone: set[tuple[str, str, str]]  # clues marked evidence gone
    reports: list[str]


def read_ledger(home: Path) -> Ledger:
    ledger = open_ledger(ledger_url(home / "ledger.sqlite"))
    try:
        with ledger.read() as s:
            clues = list(s.scalars(select(Clue)))
            new = {(c.rule_code, c.subject_key, c.evidence_key) for c in clues if c.first_seen == NIGHT2}
            gone = {(c.rule_code, c.subject_key, c.evidence_key) for c in clues if c.evidence_gone}
            reports = [r.report for r in s.scalars(select(RunReport))]
    finally:
        ledger.close()
    return Ledger(new, gone, reports)


def outputs(home: Path, run: Run) -> dict[str, str]:
    """Everything a person could read after the run, by where it is."""
    con = warehouse(home)
    try:
        out = {
            "CLI output": run.output + "\n" + (run.crash or ""),
            "log records": run.logged,
            "load_log messages": "\n".join(r["message"] or "" for r in rows(con, "SELECT message FROM load_log")),
            "rejects.reason": "\n".join(r["reason"] or "" for r in rows(con, "SELECT reason FROM rejects")),
            "nightly_runs reports": "\n".join(r["report"] or "" for r in rows(con, "SELECT report FROM nightly_runs")),
        }
    finally:
        con.close()
    out["ledger run reports"] = "\n".join(read_ledger(home).reports)
    logs = sorted(p for p in home.rglob("*.log") if p.is_file())
    out["log files"] = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    return out


def leak_problems(personal: Personal, texts: dict[str, str]) -> list[str]:
    problems = []
    for where, text in texts.items():
        ids, names = personal.leaks(text)
        if ids or names:
            problems.append(f"personal data in {where}: {len(ids)} ID number(s) {ids[:3]}, {len(names)} name(s)")
    return problems


# ---------------------------------------------------------------- the reference


@dataclass
class Reference:
    tiny: Path
    template: Path
    home: Path
    run: Run
    ledger: Ledger
    files: set[str]  # night 2's files in the load log
    rows: dict[str, int]  # rows of each dataset's snapshot in force on night 2
    texts: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def personal(tiny: Path) -> Personal:
    return Personal.from_truth(tiny / "truth")


@pytest.fixture(scope="module")
def reference(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("bad-nights")
    template = root / "template"
    report = nightly.run_night(Home(template), tiny / "inbox" / NIGHT1.isoformat())
    assert report.status == "completed"
    # run_night closed the warehouse and the ledger: nothing half-written is copied
    assert not list(template.glob("*.wal")), sorted(p.name for p in template.iterdir())
    home = copy_home(template, root / "reference")
    inbox = copy_inbox(tiny, root / "reference-inbox")
    age(inbox)
    run = run_cli(home, inbox / NIGHT2.isoformat())
    assert run.crash is None and run.exit_code == 0, run.output[-3000:]
    con = warehouse(home)
    try:
        files = {r["file"] for r in rows(con, "SELECT file FROM load_log WHERE night = ?", [NIGHT2]) if r["file"]}
        in_force = rows(con, "SELECT dataset, rows FROM snapshots s WHERE snapshot_date = (SELECT max(snapshot_date) "
                             "FROM snapshots t WHERE t.dataset = s.dataset AND t.snapshot_date <= ?)", [NIGHT2])
    finally:
        con.close()
    ref = Reference(tiny, template, home, run, read_ledger(home), files, {r["dataset"]: r["rows"] for r in in_force})
    ref.texts = outputs(home, run)
    return ref


def test_the_clean_night_two_is_a_fair_reference(reference: Reference, personal: Personal) -> None:
    """The reference dispatches night 2's few new clues, prints no personal data (the scan finds
    nothing where there is nothing), and the scan itself finds what it looks for."""
    assert reference.ledger.new and len(reference.files) >= 14
    assert not leak_problems(personal, reference.texts)
    some_id, some_name = sorted(personal.ids)[0], sorted(personal.names)[0]
    assert personal.leaks(f"row 3 ({some_id}), {some_name}") == ([some_id[:4] + "*" * (len(some_id) - 8)
                                                                    + some_id[-4:]], [some_name])


# ---------------------------------------------------------------- one case


class FifoGuard:
    """Notices (and unblocks) anyone opening a FIFO of the night for reading: bidui must refuse a
    FIFO from its lstat, never open it (an open blocks until a writer comes)."""

    def __init__(self, folder: Path) -> None:
        self.fifos = [folder / n for n in os.listdir(folder) if stat.S_ISFIFO(os.lstat(folder / n).st_mode)]
        self.opened: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for f in self.fifos:
                try:
                    fd = os.open(f, os.O_WRONLY | os.O_NONBLOCK)  # succeeds only when a reader has it open
                except OSError:
                    continue
                os.close(fd)  # the reader sees end of file
                self.opened.append(f.name)
            time.sleep(0.05)

    def __enter__(self) -> FifoGuard:
        if self.fifos:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.fifos:
            self._thread.join(5)


def _whole_row(row: dict) -> str:
    return " ".join(str(v) for v in row.values() if v is not None)


def check(recipe: Recipe, ref: Reference, personal: Personal, home: Path, run: Run) -> list[str]:
    """Every way the night went wrong, one line each."""
    problems: list[str] = []
    if run.crash:
        problems.append(f"the run crashed: {run.crash[:300]}")
    con = warehouse(home)
    try:
        log = rows(con, "SELECT * FROM load_log WHERE night = ? ORDER BY load_id", [NIGHT2])
        if recipe.file is not None:
            mine = [r for r in log if r["file"] in (recipe.file, recipe.file + "/")]
        else:
            mine = [r for r in log if r["file"] and r["file"] not in ref.files]
        matched = None
        if not mine:
            problems.append(f"no load-log row for the bad file (night 2 logged: "
                            f"{sorted((r['file'], r['status']) for r in log)})")
        else:
            row = mine[-1]
            message = row["message"] or ""
            for status, fragment in recipe.outcomes():
                where = _whole_row(row) if status == "accepted" else message
                if row["status"] == status and fragment in where:
                    matched = (status, fragment)
                    break
            if matched is None:
                earlier = f" (after {[r['status'] for r in mine[:-1]]})" if len(mine) > 1 else ""
                evidence = f" [evidence: {row['evidence']}]" if row.get("evidence") else ""
                problems.append(f"{row['status']}{earlier}: {message[:300]!r}{evidence}; expected {recipe.outcomes()}")
            elif matched[0] in NOT_TAKEN and (recipe.file or row["file"]) not in message:
                problems.append(f"the message does not name the file: {message[:200]!r}")
            elif matched[0] == "accepted":
                stored = scalar(con, "SELECT rows FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                                [recipe.dataset, NIGHT2])
                clean = ref.rows.get(recipe.dataset, -1)
                if (recipe.clean_rows or recipe.cause) and (stored, row["rows_rejected"]) != (clean, 0):
                    problems.append(f"accepted with {stored} rows, {row['rows_rejected']} rejected; the clean file "
                                    f"has {clean}, none rejected")
                if recipe.keeps_rows is not None and stored != clean + recipe.keeps_rows:
                    problems.append(f"accepted with {stored} rows: {clean + recipe.keeps_rows} expected (a rejected "
                                    "value must not remove its row)")
        outcome = matched or recipe.outcomes()[0]
        expected_exit = 2 if outcome[0] in NOT_TAKEN else 0
        if run.exit_code != expected_exit:
            problems.append(f"exit code {run.exit_code}, expected {expected_exit}")
        others = [r for r in log if r not in mine and r["status"] in NOT_TAKEN]
        if others:
            problems.append("other files refused or held: " + "; ".join(f"{r['file']} {r['status']} "
                                                                         f"({(r['message'] or '')[:120]})" for r in others))
        if outcome[0] in NOT_TAKEN and recipe.dataset:
            snaps = scalar(con, "SELECT count(*) FROM snapshots WHERE dataset = ? AND snapshot_date = ?",
                           [recipe.dataset, NIGHT2])
            stored = scalar(con, f"SELECT count(*) FROM ds_{recipe.dataset}_at(?)", [NIGHT2])
            if snaps or stored:
                problems.append(f"half-loaded: {snaps} snapshot(s) of {recipe.dataset} dated night 2, {stored} rows")
        if recipe.not_stored and recipe.dataset:
            bad = scalar(con, f"SELECT count(*) FROM ds_{recipe.dataset}_at(?) WHERE "
                              f"({recipe.not_stored})", [NIGHT2])
            if bad:
                problems.append(f"{bad} row(s) of ds_{recipe.dataset} stored with {recipe.not_stored}")
    finally:
        con.close()
    ledger = read_ledger(home)
    false = ledger.new - ref.ledger.new
    if false:
        problems.append(f"{len(false)} clue(s) dispatched that the clean night does not: "
                        f"{dict(Counter(c[0] for c in false))}")
    gone = ledger.gone - ref.ledger.gone
    if gone:
        problems.append(f"{len(gone)} real clue(s) marked evidence gone: {dict(Counter(c[0] for c in gone))}")
    problems += leak_problems(personal, outputs(home, run))
    return problems


@dataclass
class Case:
    home: Path
    inbox: Path
    folder: Path


def prepare(recipe: Recipe, ref: Reference, work: Path, settings: str = SETTINGS) -> Case:
    home = copy_home(ref.template, work / "home", settings)
    inbox = copy_inbox(ref.tiny, work / "inbox")
    folder = inbox / NIGHT2.isoformat()
    recipe.apply(folder)
    age(inbox)
    return Case(home, inbox, folder)


def run_case(recipe: Recipe, ref: Reference, personal: Personal, work: Path) -> list[str]:
    case = prepare(recipe, ref, work)
    with FifoGuard(case.folder) as guard:
        run = run_cli(case.home, case.folder)
    problems = check(recipe, ref, personal, case.home, run)
    if guard.opened:
        problems.append(f"bidui opened the FIFO {guard.opened[0]} (it must refuse it from lstat alone)")
    return problems


def _params(recipes: list[Recipe], fast: set[str] = frozenset()) -> list:
    return [pytest.param(r, id=r.id, marks=[] if r.id in fast else [pytest.mark.slow]) for r in recipes]


STATIC = [r for r in night2.RECIPES if r.writer is None]


def test_the_corpus_holds_every_case() -> None:
    """At least 70 bad extracts (the corpus files expected not to load, and every recipe: an
    accepted recipe is a bad delivery that must load all the same), every finding of issue 14."""
    corpus = Path(__file__).parent / "corpus"
    cases = json.loads((corpus / "expected.json").read_text(encoding="utf-8"))
    assert len(night2.RECIPES) >= 45
    assert sum(c["status"] != "accepted" for c in cases) + len(night2.RECIPES) >= 70
    assert len(night2.CORPUS_RECIPES) == sum(c["status"] != "accepted" for c in cases)
    assert set(night2.BY_ID) >= REPRESENTATIVE
    assert {r.status for r in night2.RECIPES} == {"refused", "held", "accepted"}
    assert set(night2.ISSUE_CASES) == set(range(1, 14))
    for number, covered in night2.ISSUE_CASES.items():
        assert covered, number
        for item in covered:
            if "::" in item:
                assert item.split("::")[1] in globals(), item
            elif item.startswith("tests/"):
                assert (Path(__file__).parent.parent / item).exists(), item
            else:
                assert item in night2.BY_ID, (number, item)


@pytest.mark.parametrize("recipe", _params(STATIC, REPRESENTATIVE))
def test_a_bad_file_in_night_two(recipe: Recipe, reference: Reference, personal: Personal, tmp_path: Path) -> None:
    problems = run_case(recipe, reference, personal, tmp_path)
    assert not problems, f"{recipe.id} ({recipe.note}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("recipe", _params(night2.CORPUS_RECIPES))
def test_a_corpus_file_in_night_two(recipe: Recipe, reference: Reference, personal: Personal, tmp_path: Path) -> None:
    problems = run_case(recipe, reference, personal, tmp_path)
    assert not problems, f"{recipe.id} ({recipe.note}):\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------- a file still being written


@pytest.mark.slow
def test_a_file_still_being_written_is_held_and_taken_once_complete(reference: Reference, personal: Personal,
                                                                    tmp_path: Path) -> None:
    """A real writer process appends hukou rows (one every 0.2 s) while `bidui run` reads the
    night: the file is held as still being written and nothing of it is published; the night is
    not recorded as completed, so once the writer has finished, the next run takes the file and
    publishes what the clean night publishes."""
    recipe = night2.BY_ID["hukou_still_being_written"]
    case = prepare(recipe, reference, tmp_path)
    stop = tmp_path / "stop-writing"
    hukou = case.folder / recipe.file
    size = hukou.stat().st_size
    writer = recipe.writer(case.folder, stop)
    try:
        deadline = time.time() + 30
        while hukou.stat().st_size == size and time.time() < deadline:  # the writer has begun
            time.sleep(0.05)
        first = run_cli(case.home, case.folder)
        still_writing = writer.poll() is None
    finally:
        stop.touch()
        writer.wait(60)
    assert writer.returncode == 0
    assert still_writing, "the writer had run out of rows before the run finished: the test proves nothing"
    problems = check(recipe, reference, personal, case.home, first)
    assert not problems, "first run, file growing:\n  " + "\n  ".join(problems)

    # The writer is done: the file is whole (night 2's clean hukou, byte for byte).
    assert hukou.read_bytes() == (reference.tiny / "inbox" / NIGHT2.isoformat() / recipe.file).read_bytes()
    time.sleep(1.5)  # past settle_seconds
    second = run_cli(case.home, case.folder)
    assert second.crash is None, second.crash
    con = warehouse(case.home)
    try:
        last = rows(con, "SELECT status, message FROM load_log WHERE night = ? AND file = ? ORDER BY load_id DESC LIMIT 1",
                    [NIGHT2, recipe.file])
        runs = rows(con, "SELECT status FROM nightly_runs WHERE night = ?", [NIGHT2])
    finally:
        con.close()
    assert last and last[0]["status"] == "accepted", (last, second.output[-2000:])
    assert second.exit_code == 0, second.output[-2000:]
    assert [r["status"] for r in runs] == ["completed"]
    ledger = read_ledger(case.home)
    assert ledger.new == reference.ledger.new and ledger.gone == reference.ledger.gone
    assert not leak_problems(personal, outputs(case.home, second))


# ---------------------------------------------------------------- an older night after a newer one


def ledger_state(home: Path) -> tuple[list, list]:
    """Clues and events as a person sees them (ids and clock times left out)."""
    from bidui.clues.models import ClueEvent

    ledger = open_ledger(ledger_url(home / "ledger.sqlite"))
    try:
        with ledger.read() as s:
            clues = sorted((c.rule_code, c.subject_key, c.evidence_key, c.status, c.version, c.first_seen, c.last_seen,
                            c.due_date, c.evidence_gone, c.evidence_hash, c.township_code) for c in s.scalars(select(Clue)))
            events = sorted((e.clue_id, e.kind, e.actor, e.from_status, e.to_status) for e in s.scalars(select(ClueEvent)))
    finally:
        ledger.close()
    return clues, events


def test_publishing_night_one_after_night_two_changes_nothing(reference: Reference, tmp_path: Path) -> None:
    """Issue 14, finding 11: night 1 published (again, its publish record lost) after night 2 —
    whose clean delivery marked evidence gone — writes no evidence_back event and resets nothing."""
    from sqlalchemy import delete

    from bidui.clues.models import PublishRun

    assert reference.ledger.gone  # night 2 marked some evidence gone: the case is not empty
    home = tmp_path / "home"
    shutil.copytree(reference.home, home)
    before = ledger_state(home)
    ledger = open_ledger(ledger_url(home / "ledger.sqlite"))
    try:
        with ledger.write() as s:
            s.execute(delete(PublishRun).where(PublishRun.night == NIGHT1))
    finally:
        ledger.close()
    result = CliRunner().invoke(app, ["--home", str(home), "publish", "--date", NIGHT1.isoformat()])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert ledger_state(home) == before


def test_a_held_file_resent_into_its_night_is_taken_by_the_next_run(reference: Reference, tmp_path: Path) -> None:
    """A department resends the file the night held (请部门重新报送) into the same night folder: the
    next `bidui run` of that night, without --force, takes it and publishes what the clean night
    publishes; a night whose folder did not change is not run again."""
    case = prepare(night2.BY_ID["hukou_cut_mid_row_90"], reference, tmp_path)
    first = run_cli(case.home, case.folder)
    assert first.exit_code == 2, first.output[-2000:]
    again = run_cli(case.home, case.folder)  # nothing resent: the stored outcome, not a second run
    assert again.exit_code == 2 and "已运行过" in again.output, again.output[-2000:]
    hukou = night2.name("hukou")
    was = os.stat(case.folder / hukou).st_mtime
    shutil.copyfile(reference.tiny / "inbox" / NIGHT2.isoformat() / hukou, case.folder / hukou)
    os.utime(case.folder / hukou, (was, was))  # an upload that keeps the file's old time (WinSCP, rsync -a)
    resent = run_cli(case.home, case.folder)
    assert resent.crash is None and resent.exit_code == 0, resent.output[-3000:]
    con = warehouse(case.home)
    try:
        statuses = rows(con, "SELECT file, status FROM load_log WHERE night = ? AND file = ? ORDER BY load_id",
                        [NIGHT2, hukou])
    finally:
        con.close()
    assert [r["status"] for r in statuses] == ["held", "accepted"]
    ledger = read_ledger(case.home)
    assert (ledger.new, ledger.gone) == (reference.ledger.new, reference.ledger.gone)


def test_recipes_are_deterministic(reference: Reference, tmp_path: Path) -> None:
    """The same recipe on the same night gives the same bytes."""
    def digest(recipe: Recipe, work: Path) -> dict[bytes, bytes]:
        inbox = copy_inbox(reference.tiny, work)
        recipe.apply(inbox / NIGHT2.isoformat())
        folder = os.fsencode(inbox / NIGHT2.isoformat())
        out = {}
        for n in sorted(os.listdir(folder)):
            p = os.path.join(folder, n)
            out[n] = os.readlink(p) if os.path.islink(p) else (Path(os.fsdecode(p)).read_bytes() if os.path.isfile(p) else b"")
        return out

    for rid in ("hukou_cut_mid_row_90", "property_usage_bad_3_percent", "medical_claims_cost_nan",
                "vehicles_file_name_gbk_bytes", "dangerous_housing_merged_header", "payroll_twenty_times_the_rows"):
        r = night2.BY_ID[rid]
        assert digest(r, tmp_path / f"{rid}-a") == digest(r, tmp_path / f"{rid}-b"), rid
