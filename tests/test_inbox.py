"""The night folder as other people's systems leave it: links, FIFOs, folders, names in GBK bytes,
files still arriving, checksum files and the night's completion marker."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import date
from pathlib import Path

import pytest

from bidui.connectors import warehouse as wh
from bidui.connectors.ingest import Limits, exit_code, ingest_night

CORPUS = Path(__file__).parent / "corpus"
GOOD = CORPUS / "baseline" / "vehicles_20261119.csv"
NIGHT = date(2026, 11, 20)


@pytest.fixture
def night(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox" / NIGHT.isoformat()
    folder.mkdir(parents=True)
    return folder


def put(path: Path, data: bytes | str) -> Path:
    """Delivered long ago (settled)."""
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.utime(path, (1e9, 1e9))
    return path


def logged(con) -> list[tuple]:
    return con.execute("SELECT file, status, evidence, message FROM load_log WHERE file <> '' ORDER BY load_id").fetchall()


def test_links_fifos_and_folders_are_refused_unread(night: Path, tmp_path: Path) -> None:
    other = tmp_path / "inbox" / "2026-11-19"
    other.mkdir()
    shutil.copy(GOOD, other / "vehicles_20261119.csv")
    (night / "vehicles_20261120.csv").symlink_to(other / "vehicles_20261119.csv")
    (night / "hukou_20261120.csv").symlink_to("/etc/passwd")
    os.mkfifo(night / "deaths_20261120.csv")  # opening it would block the run for ever
    (night / "students_20261120.csv").mkdir()
    con = wh.connect(tmp_path / "w.duckdb")
    outcomes = {o.file: o for o in ingest_night(con, night, NIGHT) if o.file}
    assert {f: o.status for f, o in outcomes.items()} == {f: "refused" for f in (
        "vehicles_20261120.csv", "hukou_20261120.csv", "deaths_20261120.csv", "students_20261120.csv")}
    assert "symbolic link" in outcomes["vehicles_20261120.csv"].message
    assert "symbolic link" in outcomes["hukou_20261120.csv"].message
    assert "not a regular file (a FIFO" in outcomes["deaths_20261120.csv"].message
    assert "not a regular file (a folder)" in outcomes["students_20261120.csv"].message
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0
    assert exit_code(list(outcomes.values())) == 2


def test_a_file_name_in_gbk_bytes_is_read_under_its_decoded_name(night: Path, tmp_path: Path) -> None:
    raw_name = "机动车登记".encode("gbk") + b"_20261120.csv"
    fd = os.open(os.fsencode(night) + b"/" + raw_name, os.O_WRONLY | os.O_CREAT)
    os.write(fd, GOOD.read_bytes())
    os.close(fd)
    con = wh.connect(tmp_path / "w.duckdb")
    outcomes = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert [(o.file, o.dataset, o.status) for o in outcomes] == [("机动车登记_20261120.csv", "vehicles", "accepted")]
    assert con.execute("SELECT file FROM snapshots").fetchall() == [("机动车登记_20261120.csv",)]


def test_evidence_of_completeness_is_logged(night: Path, tmp_path: Path) -> None:
    data = GOOD.read_bytes()
    (night / "vehicles_20261120.csv").write_bytes(data)
    (night / "vehicles_20261120.csv.sha256").write_text(hashlib.sha256(data).hexdigest() + "  vehicles_20261120.csv\n")
    put(night / "deaths_20261120.csv", "证件号码,姓名,死亡日期\n")
    con = wh.connect(tmp_path / "w.duckdb")
    ingest_night(con, night, NIGHT, limits=Limits(settle_seconds=30))
    rows = {f: (s, e) for f, s, e, _ in logged(con)}
    assert rows["vehicles_20261120.csv"] == ("accepted", "checksum file vehicles_20261120.csv.sha256")
    # (written just now, but a checksum file vouches; the other was written long ago)
    assert rows["deaths_20261120.csv"][1] == "unchanged for 30 s (settle_seconds)"


def test_a_checksum_that_does_not_match_holds_the_file(night: Path, tmp_path: Path) -> None:
    put(night / "vehicles_20261120.csv", GOOD.read_bytes())
    (night / "vehicles_20261120.csv.md5").write_text("0" * 32 + "\n")
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert o.status == "held" and "the checksum in vehicles_20261120.csv.md5 does not match" in o.message
    assert con.execute("SELECT count(*) FROM ds_vehicles").fetchone()[0] == 0


def test_a_cut_file_is_held_unless_its_checksum_vouches_for_the_missing_final_line_break(night: Path,
                                                                                         tmp_path: Path) -> None:
    data = GOOD.read_bytes().rstrip(b"\n")
    put(night / "vehicles_20261120.csv", data)
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert o.status == "held" and "the last record is cut (no line break ends the last record)" in o.message
    (night / "vehicles_20261120.csv.sha256").write_text(hashlib.sha256(data).hexdigest())
    (o,) = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert o.status == "accepted" and o.rows_loaded == 40


def test_a_file_not_yet_settled_is_waited_for_then_held_as_still_being_written(night: Path, tmp_path: Path) -> None:
    (night / "vehicles_20261120.csv").write_bytes(GOOD.read_bytes())
    now = [os.stat(night / "vehicles_20261120.csv").st_mtime]
    slept = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    con = wh.connect(tmp_path / "w.duckdb")
    limits = Limits(settle_seconds=30, max_wait_seconds=10)
    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=limits, clock=lambda: now[0], sleep=sleep) if o.file]
    assert o.status == "held" and o.incomplete and "still being written" in o.message
    assert 9 <= sum(slept) <= 11  # waited max_wait_seconds, no more
    # Within the wait it settles: taken.
    now[0] = os.stat(night / "vehicles_20261120.csv").st_mtime
    limits = Limits(settle_seconds=3, max_wait_seconds=10)
    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=limits, clock=lambda: now[0], sleep=sleep) if o.file]
    assert o.status == "accepted" and o.evidence == "unchanged for 3 s (settle_seconds)"


def test_the_night_marker_vouches_for_every_file(night: Path, tmp_path: Path) -> None:
    (night / "vehicles_20261120.csv").write_bytes(GOOD.read_bytes())
    (night / "_SUCCESS").write_bytes(b"")
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=Limits(settle_seconds=3600)) if o.file]
    assert o.status == "accepted" and o.evidence == "night marker _SUCCESS"


def test_the_night_marker_does_not_vouch_for_a_file_written_after_it(night: Path, tmp_path: Path) -> None:
    """A file resent into a night folder whose _SUCCESS came long before (its upload may still be
    going on) settles like any other; the marker vouches for what came before it (a review, 2026-12-06)."""
    (night / "_SUCCESS").write_bytes(b"")
    marker = os.stat(night / "_SUCCESS").st_mtime
    (night / "vehicles_20261120.csv").write_bytes(GOOD.read_bytes())
    os.utime(night / "vehicles_20261120.csv", (marker + 60, marker + 60))
    con = wh.connect(tmp_path / "w.duckdb")
    now = [marker + 70]
    limits = Limits(settle_seconds=30, max_wait_seconds=5)

    def sleep(s: float) -> None:
        now[0] += s

    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=limits, clock=lambda: now[0], sleep=sleep) if o.file]
    assert o.status == "held" and o.incomplete and "still being written" in o.message
    now[0] = marker + 100  # unchanged for 40 s: taken on its own settling, not on the marker
    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=limits, clock=lambda: now[0]) if o.file]
    assert o.status == "accepted" and o.evidence == "unchanged for 30 s (settle_seconds)"


def test_a_resumed_night_reports_what_its_earlier_run_stored(night: Path, tmp_path: Path) -> None:
    put(night / "vehicles_20261120.csv", GOOD.read_bytes())
    con = wh.connect(tmp_path / "w.duckdb")
    first = [o for o in ingest_night(con, night, NIGHT) if o.file]
    again = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert [(o.status, o.rows_loaded) for o in first] == [("accepted", 40)]
    assert [(o.status, o.rows_loaded) for o in again] == [("accepted", 40)]
    assert "stored by an earlier run of this night" in again[0].message


def test_a_file_name_with_rich_markup_is_printed_as_text(night: Path, tmp_path: Path) -> None:
    """Markup in a delivered name (`[/i]` in a value once crashed the table: exit 1) is shown as text."""
    from typer.testing import CliRunner

    from bidui.cli import app

    put(night / "vehicles_[b]20261120.csv", GOOD.read_bytes().rstrip(b"\n"))  # held: cut
    out = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "ingest", str(night)])
    assert out.exit_code == 2, out.output
    assert "vehicles_[b]20261120.csv" in out.output.replace("\n", "").replace("│", "").replace(" ", "")


def test_a_transfer_tools_temporary_file_is_still_arriving(night: Path, tmp_path: Path) -> None:
    put(night / "hukou_20261120.csv.filepart", GOOD.read_bytes())
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert o.status == "held" and o.incomplete and "temporary file, still being written" in o.message


def test_a_file_stamped_in_the_future_is_read_if_it_does_not_change(night: Path, tmp_path: Path) -> None:
    path = night / "vehicles_20261120.csv"
    path.write_bytes(GOOD.read_bytes())
    ahead = path.stat().st_mtime + 8 * 3600  # a zip unpacked with another time zone's times
    os.utime(path, (ahead, ahead))
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT, limits=Limits(settle_seconds=30, max_wait_seconds=1)) if o.file]
    assert o.status == "accepted" and o.evidence == "modification time in the future; unchanged while read"


def test_control_characters_in_a_file_name_are_shown_escaped(night: Path, tmp_path: Path) -> None:
    put(night / "vehicles_\x1b[31m_20261120.csv", GOOD.read_bytes())
    con = wh.connect(tmp_path / "w.duckdb")
    (o,) = [o for o in ingest_night(con, night, NIGHT) if o.file]
    assert o.file == "vehicles_\\x1b[31m_20261120.csv" and "\x1b" not in o.message
