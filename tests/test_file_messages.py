"""Every message a delivered file can get when refused or held reads in Chinese (load_messages.file_message):
the reason itself, with its row, column and byte offset, never "see the run log" (a --plain run
writes none) and never the English the log keeps.

The messages are taken from the source (the connectors' ReadError / RefusedError / FileOutcome
texts, inbox's refusals, the plausibility checks): a message added without Chinese fails here,
naming it."""

from __future__ import annotations

import ast
import itertools
import os
import re
from datetime import date
from pathlib import Path

import pytest

from bidui.clues import present
from bidui.clues.load_messages import file_message
from bidui.clues.present import FILE_STATUS_LABELS, rule_title, rules_scope_text

ROOT = Path(present.__file__).resolve().parents[1]
# Where a file's load message is written: its readers, header mapping, inbox, ingest and checks.
SOURCES = ("connectors/inbox.py", "connectors/ingest.py", "connectors/mapping.py", "connectors/readers.py",
           "connectors/plausibility.py", "datasets.py")
ERRORS = {"ReadError", "RefusedError", "DatasetNameError"}
# Product and format names a Chinese data engineer reads as they are (present_support.ALLOWED_WORDS),
# and UTF of UTF-8, the encoding Excel's Save As dialog names "CSV UTF-8".
ALLOWED = {"EXCEL", "CSV", "XLSX", "WPS", "UTF"}
CJK = re.compile(r"[\u4e00-\u9fff]")
NAME = "死亡医学证明_20261121.csv"


def english(text: str) -> list[str]:
    """English words in the text; an Excel error value (#SPILL!, #DIV/0!) is the cell's own text."""
    return [w for w in re.findall(r"(?<![#A-Za-z])[A-Za-z]{3,}", text) if w.upper() not in ALLOWED]


def assert_chinese(said: str, message: str) -> None:
    assert CJK.search(said), (message, said)
    assert english(said) == [], (message, said)
    assert "运行日志" not in said and "原文：" not in said, (message, said)


# ---------------------------------------------------------------- the messages, from the source

def _call_name(f: ast.expr) -> str:
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _variants(node: ast.expr) -> list[list]:
    """The texts an expression can be, each as a list of literal pieces and placeholders
    (ast.FormattedValue or an expression): an f-string's pieces, `a + b`, `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [[node.value]]
    if isinstance(node, ast.JoinedStr):
        out: list[list] = [[]]
        for v in node.values:
            out = [o + p for o in out for p in _variants(v)]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in _variants(node.left) for b in _variants(node.right)]
    if isinstance(node, ast.IfExp):
        return _variants(node.body) + _variants(node.orelse)
    return [[node]]


def _tree(rel: str) -> ast.Module:
    return ast.parse((ROOT / rel).read_text(encoding="utf-8"))


def _functions(rel: str) -> dict[str, ast.FunctionDef]:
    return {f.name: f for f in ast.walk(_tree(rel)) if isinstance(f, ast.FunctionDef)}


FILE_NAMES = {"name", "p.name", "e.name", "path.name", "filename", "shown"}


def _names_the_file(node: ast.AST) -> bool:
    """An f-string that starts with the file's name and a colon, as every message of a file does."""
    return (isinstance(node, ast.JoinedStr) and len(node.values) > 1 and isinstance(node.values[0], ast.FormattedValue)
            and ast.unparse(node.values[0].value) in FILE_NAMES and isinstance(node.values[1], ast.Constant)
            and str(node.values[1].value).startswith(": ")
            # (not a prefix the message is made on: `where`, the left of a `+`)
            and not (isinstance(node.values[-1], ast.Constant) and str(node.values[-1].value).endswith(": ")))


def message_templates() -> list[tuple[str, int, str, list]]:
    """(file, line, the status it gets, pieces) of every message a delivered file's load can say."""
    out, seen = [], set()
    for rel in SOURCES:
        for fn in _functions(rel).values():
            status = ("held" if fn.name in ("checks", "_whole") or rel.endswith("plausibility.py")
                      else "accepted" if fn.name == "_notes" else "refused")
            for node in ast.walk(fn):
                msg = None
                if isinstance(node, ast.Call):
                    called = _call_name(node.func)
                    if called in ERRORS and node.args:
                        msg = node.args[0]
                    elif called == "FileOutcome":
                        msg = next((k.value for k in node.keywords if k.arg == "message"),
                                   node.args[7] if len(node.args) > 7 else None)
                        given = node.args[2] if len(node.args) > 2 else None
                        if isinstance(given, ast.Constant):
                            status = given.value
                    elif called == "Entry" and len(node.args) > 2:
                        msg = node.args[2]
                    elif called == "append" and fn.name in ("checks", "_whole", "_notes"):
                        msg = node.args[0]
                elif isinstance(node, ast.Return) and fn.name == "checks" and isinstance(node.value, ast.List):
                    msg = node.value.elts[0]
                elif isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) in ("msg", "p.refused", "o.message"):
                    msg = node.value
                elif _names_the_file(node):
                    msg = node  # any other text that starts with the file's name (a check's own function)
                if msg is None:
                    continue
                for pieces in _variants(msg):
                    key = (rel, node.lineno, "".join(p if isinstance(p, str) else ast.dump(p) for p in pieces))
                    if any(isinstance(p, str) for p in pieces) and key not in seen:
                        seen.add(key)
                        out.append((rel, node.lineno, "missing" if fn.name == "ingest_night" else status, pieces))
    return out


def _own_nodes(fn: ast.FunctionDef):
    """The nodes of a function, not of the functions defined inside it."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        if not isinstance(node, (ast.FunctionDef, ast.Lambda)):
            yield node
            todo += ast.iter_child_nodes(node)


def _returns(rel: str, function: str) -> list[list]:
    """The texts a function returns (readers._diagnose's causes, inbox._kind's kinds…)."""
    fn = _functions(rel)[function]
    return [v for node in _own_nodes(fn) if isinstance(node, ast.Return) and node.value is not None
            for v in _variants(node.value) if any(isinstance(p, str) for p in v)]


def _assigned(rel: str, function: str, name: str) -> list[list]:
    fn = _functions(rel)[function]
    return [v for node in ast.walk(fn) if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name
            for v in _variants(node.value)]


def _constant(rel: str, name: str) -> str:
    for node in _tree(rel).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == name:
            return node.value.value  # type: ignore[attr-defined]
    raise KeyError(name)


def _reject_reasons() -> list[list]:
    """normalise's reasons for a rejected value (the text after a held file's "first: row …")."""
    out = []
    for node in ast.walk(_tree("connectors/normalise.py")):
        if isinstance(node, ast.Call) and _call_name(node.func) in ("_reason", "_put"):
            for arg in node.args[1:]:
                for sub in [arg] if isinstance(arg, ast.JoinedStr) else [
                        n for n in ast.walk(arg) if isinstance(n, ast.Constant) and isinstance(n.value, str)]:
                    out += [v for v in _variants(sub) if any(isinstance(p, str) and p.strip() for p in v)]
    return [*out, [_constant("connectors/normalise.py", "EXCEL_ERROR")]]


# Realistic values of each placeholder, by its expression ("module:expression" where two modules use
# one name differently); a list gives several. Numbers a person needs to find the problem (rows,
# columns, byte offsets, counts) are distinctive, and KEPT says which must be in the Chinese.
SAMPLES: dict[str, object] = {
    "shown": NAME, "e.name": NAME, "p.name": NAME, "name": NAME, "filename": NAME, "path.name": NAME,
    "base": "低保对象名单.csv", "datasets.py:names": "户籍 (hukou), 户籍变动 (hukou_changes), 死亡 (deaths)", "ds.code": "deaths", "code": "deaths", "last[0]": "2026-11-20",
    "limits.settle_seconds": 30.0, "limits.max_wait_seconds": 600.0, "load_id": 118, "seen[1]": "2026-11-20",
    "seen[0]": 117, "type(e).__name__": "ValueError", "others": "死亡医学证明_20261121（补报）.csv",
    "ingest.py:e": "IO Error: No space left on device; write failed", "t": "decimal128(18, 0)",
    "p.raw.header[pos]": "身份证号", "algo": "sha256", "ingest.py:path.name": f"{NAME}.sha256",
    "result.duplicates": 1234, "rejected": 317, "result.dropped": 29, "read": 5021,
    "names": ["id_number (证件号码 / 身份证号)", "id_number (证件号码 / 身份证号); name (姓名 / 死者姓名)"],
    "hint": ["", " (none of the 6 headers on row 3 is a deaths header: is that row the header?)"],
    "seen[key] + 1": 13, "i + 1": 17, "positions[name] + 1": 13, "header[positions[name]]": "证件号码", "h": "身份证号",
    "mapping.py:name": "id_number", "mapping.py:shown": "'死亡日期'",
    "suffix or '(none)'": [".xls", "(none)"], "wide": ["UTF-16 (little-endian, with byte-order mark)",
                                                      "UTF-32 (big-endian, no byte-order mark)"],
    "k": 3, "k + 1": 4, "k + 2": 5, "busiest + 1": 2, "_filled(rows[busiest])": 7,
    "readers.py:where": [f"{NAME}: ", f"{NAME}: sheet '死亡证明': "],
    "sheet": "填表说明", "cell or '(no reference)'": ["B4", "(no reference)"], "m.group(1)": "#SPILL!",
    "expanded / 2 ** 20": 9216.0, "size / 2 ** 20": 0.4, "meta.num_rows": 90000000, "size / 1024": 310.0,
    "', '.join(map(repr, nested[:5]))": "'证件号码', '备注'", "e.start": 69, "e.start + 3": 4870,
    "encoding": ["utf-8", "gb18030"], "e.size / 2 ** 30": 9.6, "MAX_XLSX_EXPANDED / 2 ** 30": 8.0,
    "e.member": "xl/worksheets/sheet1.xml", "e.ratio": 512.0, "e.rows": 1048576, "e.cols": 16384,
    "MAX_XLSX_CELLS": 400000000, "readers.py:e": "zip file is truncated",
    "_pct(result.duplicates / read)": "24.6%", "_pct(limits.max_duplicate_share)": "1.0%",
    "_pct(rejected / read)": "6.3%", "_pct(limits.max_reject_share)": "5.0%", "_pct(now.valid_share)": "31.5%",
    "_pct(limits.min_valid_id_share)": "50.0%", "col": "id_number", "ds.column(col).header": "证件号码",
    "now.rows": 195, "_pct(limits.min_row_ratio)": "90.0%", "_pct(limits.max_row_ratio)": "150.0%",
    "before.rows": 434, "when": "2026-11-20", "_pct(ratio)": "44.9%", "_pct(before.valid_share)": "97.1%",
    "limits.max_valid_id_drop": 0.05, "_pct(before.distinct_share)": "99.0%", "_pct(now.distinct_share)": "61.2%",
    "now.distinct_ids": 3077, "before.distinct_ids": 4411, "limits.max_distinct_id_drop": 0.1,
    "plausibility.py:col": "death_place", "header": "死亡地点", "value": "医院", "_pct(now_share)": "12.0%",
    "_pct(was)": "71.0%", "limits.max_value_shift": 0.2,
    # the first rejected value (plausibility.first_reject) and why (`reason`: see _reject_reasons)
    "where": ["row 4, column death_date ('2026-13-01')", "row 4, column name (None)".replace("None", "(empty)"),
              "row 4, column death_date ('张" + "*" * 23 + "… (31 characters)')"],
    # readers._diagnose's places and causes
    "label": ["data row 7", "the header", "a row above the header"],
    "_row_label(record, skip)[0]": ["data row 7", "the header"], "_row_label(rec, skip)[0]": "data row 7",
    "len(row)": 11, "width": 9, "kind": ["comma", "tab"],
    "loc(record, start)": ["spreadsheet row 9", "spreadsheet row 9, starting on line 8 of the file"],
    "loc(rec, st)": "spreadsheet row 9", "msg": "line contains NUL",
    # readers._sheet_summary's
    "first + 1": 2, "best + 1": 1, "_filled(rows[first])": 7, "', '.join(known)": "姓名, 证件号码", "readers.py:others": 3,
    "lacks": "death_date (死亡日期)",
    # normalise's reasons
    "EARLIEST_EVENT.year": 1900, "latest.isoformat()": "2026-12-21", "ceiling": 5000000.0,
    "' / '.join(c.values)": ["正常 / 转出 / 注销", "county / township / village"], "MAX_ID_CHARS": 40,
    "limits.max_name_chars": 50, "limits.max_text_chars": 2000,
    "gone": 57, "int(limits.tail_cut_rows)": 20,
    # a held file's reasons, joined (each is checked alone above)
    "'; '.join(held)": [
        f"{NAME}: 195 rows, fewer than 90.0% (min_row_ratio) of the 434 rows of the snapshot of 2026-11-20 (44.9%; "
        "truncated?)",
        f"{NAME}: still being written (it changed while it was read); a later run of this night takes it; {NAME}: the "
        f"last record is cut (no line break ends the last record); a transfer that stopped? Resend it, ending with a "
        f"line break, or with {NAME}.sha256 beside it; {NAME}: 317 of 5,021 rows rejected (6.3%, limit "
        "max_reject_share 5.0%); first: row 4, column death_date ('2026-13-01'), impossible date"],
}
# Placeholders whose number says where the problem is or how big: the Chinese keeps it.
KEPT = {"seen[key] + 1", "i + 1", "positions[name] + 1", "k", "k + 1", "k + 2", "busiest + 1", "e.start",
        "e.start + 3", "result.duplicates", "rejected", "result.dropped", "read", "now.rows", "before.rows",
        "e.rows", "e.cols", "len(row)", "width", "label", "loc(record, start)", "loc(rec, st)", "ingest.py:where", "plausibility.py:where",
        "_row_label(record, skip)[0]", "_row_label(rec, skip)[0]", "cell or '(no reference)'", "first + 1",
        "limits.settle_seconds", "limits.max_wait_seconds", "ceiling", "MAX_ID_CHARS", "hint", "gone"}


def _sub_templates() -> dict[str, list[list]]:
    """Placeholders whose texts are themselves in the source (filled in turn)."""
    return {
        "_kind(mode)": _returns("connectors/inbox.py", "_kind"),
        "what": _assigned("connectors/readers.py", "_check_zip", "what"),
        "_diagnose(full_text(), sep, skip)": _returns("connectors/readers.py", "_diagnose"),
        "cause": _assigned("connectors/readers.py", "_diagnose", "cause"),
        "'; '.join((_sheet_summary(s, t, ds) for s, t in seen))": _returns("connectors/readers.py", "_sheet_summary"),
        "BIG5_MESSAGE": [[_constant("connectors/readers.py", "BIG5_MESSAGE")]],
        # why a CSV looks cut (readers._cut): its two sentences
        "cut": [[_constant("connectors/readers.py", "NO_FINAL_BREAK")],
                *[v for v in _returns("connectors/readers.py", "_cut") if isinstance(v[0], str)],
                *[[_constant("connectors/readers.py", ast.unparse(v[0]))] for v in
                  _assigned("connectors/readers.py", "read_csv_bytes", "cut") if isinstance(v[0], ast.Name)]],
        "reason": _reject_reasons(),
    }


class NoSampleError(Exception):
    pass


def _fill(rel: str, pieces: list, subs: dict[str, list[list]], depth: int = 0) -> list[tuple[str, list[str]]]:
    """Each text the pieces can make, with the numbers it must keep."""
    options: list[list[tuple[str, list[str]]]] = []
    for p in pieces:
        if isinstance(p, str):
            options.append([(p, [])])
            continue
        expr = p.value if isinstance(p, ast.FormattedValue) else p
        key = ast.unparse(expr)
        module = f"{Path(rel).name}:{key}"
        if key in subs and module not in SAMPLES and depth < 3:
            options.append([x for sub in subs[key] for x in _fill(rel, sub, subs, depth + 1)])
            continue
        if module not in SAMPLES and key not in SAMPLES:
            raise NoSampleError(f"{rel}: no sample for {{{key}}}: add one to SAMPLES (and Chinese to present.py)")
        given = SAMPLES.get(module, SAMPLES.get(key))
        texts = []
        for value in given if isinstance(given, list) else [given]:
            spec = p.format_spec if isinstance(p, ast.FormattedValue) else None
            text = format(value, "".join(v.value for v in spec.values)) if spec else str(value)  # type: ignore[attr-defined]
            if isinstance(p, ast.FormattedValue) and p.conversion == ord("r"):
                text = repr(value)
            kept = re.findall(r"\d+(?:,\d{3})*", text) if key in KEPT or module in KEPT else []
            texts.append((text, kept))
        options.append(texts)
    out = []
    for combo in itertools.islice(itertools.product(*options), 200):
        out.append(("".join(t for t, _ in combo), [n for _, kept in combo for n in kept]))
    return out


def test_the_source_has_the_messages_this_test_checks() -> None:
    """The extraction finds the messages (a refactor that hides them from it must not pass silently)."""
    found = message_templates()
    text = ["".join(p if isinstance(p, str) else "{}" for p in t[3]) for t in found]
    for known in ("empty file", "a symbolic link", "not a regular file", "names no dataset",
                  "missing required column(s)", "has a UTF-8 byte-order mark", "neither UTF-8 nor GB18030",
                  "a header but no data rows", "rows rejected", "the last record is cut", "two files for",
                  "is stored as numbers", "could not be read"):
        assert any(known in t for t in text), known
    assert len(found) >= 60
    subs = _sub_templates()
    assert all(subs.values()), [k for k, v in subs.items() if not v]
    assert len(subs["_diagnose(full_text(), sep, skip)"]) >= 4 and len(subs["what"]) >= 4 and len(subs["reason"]) >= 15


def test_every_message_a_file_can_get_reads_in_chinese_with_its_numbers() -> None:
    subs = _sub_templates()
    failures = []
    for rel, line, status, pieces in message_templates():
        try:
            filled = _fill(rel, pieces, subs)
        except NoSampleError as e:
            failures.append(str(e))
            continue
        for message, kept in filled:
            if status == "held" and not message.startswith(NAME):
                message = f"{NAME}: {message}"
            said = file_message(NAME, status, message)
            problems = []
            if not CJK.search(said):
                problems.append("no Chinese")
            if english(said):
                problems.append(f"English {english(said)}")
            if "（）" in said:
                problems.append("an empty bracket (a list the pattern did not read)")
            if "运行日志" in said or "原文：" in said:
                problems.append("no Chinese for it (原文 / 运行日志)")
            missing = [n for n in kept if n not in said]
            if missing:
                problems.append(f"lost the numbers {missing}")
            if problems:
                failures.append(f"{rel}:{line}: {message!r} → {said!r}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)


def test_a_reject_reason_in_a_held_files_first_problem_is_chinese() -> None:
    """Every reason normalise gives a rejected value, as a held file's first problem."""
    subs = _sub_templates()
    for pieces in subs["reason"]:
        for reason, _ in _fill("connectors/normalise.py", pieces, subs):
            message = (f"{NAME}: 317 of 5,021 rows rejected (6.3%, limit max_reject_share 5.0%); first: row 4, column "
                       f"death_date ('2026-13-01'), {reason}")
            said = file_message(NAME, "held", message)
            assert_chinese(said, message)
            assert "值不合规" not in said, (reason, said)  # (the words for a reason no pattern knows)


# ---------------------------------------------------------------- what the walk hit, end to end

def _deaths_header(id_header: str = "身份证号") -> list[str]:
    from bidui.datasets import BY_CODE

    return [id_header if c.name == "id_number" else c.header for c in BY_CODE["deaths"].columns if c.required]


def test_the_walks_refusals_say_why_in_chinese(tmp_path: Path) -> None:
    """An empty file, a name naming no dataset, 身份号 for 身份证号, a stray quote, UTF-8 cut mid-character
    (with and without a byte-order mark), a symbolic link, a folder: each says its reason."""
    from bidui.connectors import warehouse as wh
    from bidui.connectors.ingest import ingest_night

    header = ",".join(_deaths_header())
    width = len(_deaths_header())
    rows = [",".join(["x"] * width)] * 5 + ['x,"x"x' + ",x" * (width - 2)] + [",".join(["x"] * width)] * 3
    body = (header + "\n" + "死者,1\n" * 3).encode("utf-8")
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(header + "\n", encoding="utf-8")
    delivered = {  # one night each: two files for one dataset would be refused for that
        "deaths_empty_20261121.csv": b"",
        "低保对象名单.csv": (header + "\n").encode("utf-8"),
        "死亡_身份号_20261121.csv": (",".join(_deaths_header("身份号")) + "\n").encode("utf-8"),
        "死亡_引号_20261121.csv": (header + "\n" + "\n".join(rows) + "\n").encode("utf-8"),
        "死亡_截断_20261121.csv": b"\xef\xbb\xbf" + body + "张".encode()[:2] + body,
        "死亡_无标记_20261121.csv": body + "张".encode()[:2] + body,
        "死亡_链接_20261121.csv": None, "死亡_目录_20261121": None}
    outcomes = {}
    for i, (file, data) in enumerate(delivered.items()):
        night = tmp_path / str(i) / "2026-11-21"
        night.mkdir(parents=True)
        if data is not None:
            (night / file).write_bytes(data)
        elif "链接" in file:
            (night / file).symlink_to(outside)
        else:
            (night / file).mkdir()
        con = wh.connect(tmp_path / str(i) / "w.duckdb")
        outcomes |= {o.file: o for o in ingest_night(con, night, date(2026, 11, 21), workers=1) if o.file}
        con.close()
    expected = {"deaths_empty_20261121.csv": ["空的"], "低保对象名单.csv": ["文件名"],
                "死亡_身份号_20261121.csv": ["缺少必填列", "证件号码", "身份证号"],
                "死亡_引号_20261121.csv": ["第 6 行", "引号"],
                "死亡_截断_20261121.csv": ["UTF-8", "字节"], "死亡_无标记_20261121.csv": ["GB18030", "字节"],
                "死亡_链接_20261121.csv": ["符号链接"], "死亡_目录_20261121": ["文件夹"]}
    for file, words in expected.items():
        o = outcomes[file]
        assert o.status == "refused", (file, o.status, o.message)
        said = file_message(file, o.status, o.message)
        assert_chinese(said, o.message)
        assert all(w in said for w in words), (file, o.message, said)
        assert file not in said
        numbers = re.findall(r"(?:row|byte|offset|columns?) (\d+)", o.message)
        assert all(n in said for n in numbers), (o.message, said)


def test_the_corpus_files_refused_or_held_say_why_in_chinese(tmp_path: Path) -> None:
    """The corpus of bad files (tests/corpus, as test_ingest reads them), through ingest."""
    import json

    from bidui.connectors import warehouse as wh
    from bidui.connectors.ingest import ingest_file

    corpus = Path(__file__).parent / "corpus"
    for i, case in enumerate(json.loads((corpus / "expected.json").read_text(encoding="utf-8"))):
        if case["status"] == "accepted":
            continue
        con = wh.connect(tmp_path / f"w{i}.duckdb")
        if case["baseline"]:
            ingest_file(con, next((corpus / "baseline").glob(f"{case['baseline']}_*")), date(2026, 11, 19))
        o = ingest_file(con, corpus / "files" / case["file"], date(2026, 11, 20))
        con.close()
        said = file_message(case["file"], o.status, o.message)
        assert_chinese(said, o.message)
        numbers = re.findall(r"(?:row|byte|offset|columns?) (\d+)", o.message)
        assert all(n in said for n in numbers), (o.message, said)


# ---------------------------------------------------------------- the held file's first problem, the fallback

def test_a_held_file_says_its_first_bad_value_by_row_and_column() -> None:
    message = (f"{NAME}: 317 of 5,021 rows rejected (6.3%, limit max_reject_share 5.0%); first: row 4, column "
               "death_date ('2026-13-01'), impossible date; the snapshot of 2026-11-20 stays in force; to apply it "
               "anyway: bidui run --force (the night is run again)")
    said = file_message(NAME, "held", message)
    assert "首个问题：第 4 行“死亡日期”列的值为 '2026-13-01'，日期不存在" in said, said
    assert "5021 行中有 317 行" in said.replace(",", "") and "继续使用 2026-11-20 的数据" in said
    assert_chinese(said, message)
    accepted = file_message(NAME, "accepted", "2 row(s) with a rejected value, kept with that value empty; first: row 9, "
                                              "column death_date ('1899-02-01'): date before 1900")
    assert accepted == "2 行有不合规的值，该值置空后保留；首个问题：第 9 行“死亡日期”列的值为 '1899-02-01'，日期早于 1900 年"


def test_a_message_no_pattern_knows_says_the_status_and_the_original_not_the_log() -> None:
    said = file_message("x.xlsx", "refused", "x.xlsx: sheet not found (WorksheetNotFound)")
    assert said == "拒收（原文：sheet not found (WorksheetNotFound)）"
    said = file_message(NAME, "held", f"{NAME}: a header but no data rows; {NAME}: something new happened")
    assert said == "只有表头，没有数据行；暂缓入库（原文：something new happened）"


# ---------------------------------------------------------------- the run report

def test_a_forced_file_reads_as_approved_in_the_run_reports_result_column() -> None:
    from bidui.flows.nightly import NightReport

    report = NightReport(night="2026-11-21", folder="x", files=[
        {"file": NAME, "dataset": "deaths", "status": "forced", "rows_read": 5021, "rows_loaded": 5021,
         "rows_rejected": 0, "message": f"applied with --force: {NAME}: 195 rows, fewer than 90.0% (min_row_ratio) of "
                                       "the 434 rows of the snapshot of 2026-11-20 (44.9%; truncated?)"}])
    row = report.dataset_rows()[0]
    assert row["结果"] == FILE_STATUS_LABELS["forced"] == "批准入库"
    assert row["说明"].startswith("已强制入库：本期 195 行")
    assert "| 批准入库 |" in report.markdown()


def test_the_carried_datasets_point_at_the_column_that_says_why() -> None:
    from bidui.clues.present import REASONS_ON_ADMIN_PAGE, changes_text

    changes = {"deaths": {"carried": True}}
    files = [{"dataset": "deaths", "status": "held"}]
    assert changes_text(changes, files) == ["今晚未入库（原因见“数据集”表的“说明”一栏），沿用上一版：死亡医学证明"]
    assert changes_text(changes, files, REASONS_ON_ADMIN_PAGE) == ["今晚未入库（原因见“未入库”一栏），沿用上一版：死亡医学证明"]


def test_a_homes_own_rule_reads_by_its_title(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "LARGE_HOUSE.sql").write_text(
        "-- code: LARGE_HOUSE\n-- title: 家庭成员拥有大面积房产\n-- category: mis_inclusion\n"
        "-- inputs: register_members, property\n-- parameters:\n"
        "SELECT s.* FROM property_linked p JOIN subjects s ON s.ident = p.ident WHERE p.area >= 150\n", encoding="utf-8")
    assert rule_title("LARGE_HOUSE", rules) == "家庭成员拥有大面积房产"
    assert rule_title("LARGE_HOUSE") == "LARGE_HOUSE"  # the packaged rules alone do not know it
    assert rule_title("VEHICLE", rules) == rule_title("VEHICLE") != "VEHICLE"
    scope = {"whole": "LARGE_HOUSE compares the run date and does not declare how it compares"}
    assert "家庭成员拥有大面积房产" in rules_scope_text(scope, rules)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_the_file_name_is_not_repeated(tmp_path: Path) -> None:
    said = file_message(NAME, "refused", f"{NAME}: a symbolic link, not a file; deliver the file itself")
    assert NAME not in said and said.startswith("是一个快捷方式")
