"""The township workbook brought back, read as a file — no ledger: in the web app this runs in an
upload worker process (bidui.uploads), and only the rows it returns reach the web process, which
checks them against the ledger and applies them (bidui.clues.workbook.apply_workbook).

The order is the defence: the zip container is checked first (bidui.uploads.check_zip: sizes as
declared and as really expanded, the parts, each sheet's declared rows); then only the hidden token
sheet is read (calamine opens a sheet when asked, not before) and its signature and township
checked; only then is the data sheet read, and a sheet with more rows than `max_rows` is refused
before its rows are walked. Light imports only: a worker starts in a fraction of a second."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bidui import scope
from bidui.signing import BadSignature, serializer

SHEET, TOKEN_SHEET = "线索", "_token"
LOCKED_COLUMNS = ("线索编号", "版本", "村", "户编号", "户号", "对象姓名", "证件号码", "疑点", "类别", "证据来源", "证据",
                  "身份关联", "首次发现", "截止日期", "状态", "退回理由")
INPUT_COLUMNS = ("核实结论", "整改措施", "核实情况说明", "核实人", "职务", "核实日期")
# The header of workbooks exported before the hukou number's column was named 户号, as the pages
# name it (it was 户籍号): still imported.
EARLIER_HEADERS = (tuple("户籍号" if c == "户号" else c for c in LOCKED_COLUMNS) + INPUT_COLUMNS,)
TOKEN_PURPOSE = "township-workbook"
ROLE_ONLY = "只有乡镇核实员可以导入核实工作簿"
NOT_OURS = ("不是本系统导出的乡镇核实工作簿，无法导入。请在“下载核实工作簿”重新下载，"
            "在 Excel 或 WPS 中填写后直接保存（不要另存为其他格式），再上传")


class WorkbookError(ValueError):
    """The workbook is refused as a whole; `problems` names each bad row."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message + ("\n" + "\n".join(self.problems) if self.problems else ""))


def capped(problems: list[str], limit: int) -> list[str]:
    """At most `limit` problems listed, then how many more (a million bad rows must not become a
    111 MB page; the first few hundred say what is wrong)."""
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"另有 {len(problems) - limit:,} 处问题未列出"]


def cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


# A date typed as text the way people write one: 2026-12-05, 2026/12/5, 2026.12.5, 2026年12月5日 (or
# 号), 20261205 (a number too, as WPS keeps it), with a time of day or not.
TYPED_DATE = re.compile(r"(?:(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?|(\d{4})(\d{2})(\d{2}))"
                        r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")


def cell_date(v: object) -> date | None:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    typed = TYPED_DATE.fullmatch(cell_text(v))
    try:
        return date(*(int(g) for g in typed.groups() if g is not None)) if typed else None
    except ValueError:  # 2026-02-30
        return None


@dataclass
class FilledRow:
    """A row with something in its input columns, as read (its checks against the ledger come later)."""

    row: int  # as Excel numbers it
    clue_id: int
    version: int
    values: dict[str, str]  # input column → text
    verified_on: date | None


@dataclass
class Filled:
    """What a workbook holds once its token and rows are read: the township and clue versions
    the token signs, the problems found in the file alone (row, message), the filled rows."""

    township: str
    versions: dict[int, int]
    problems: list[tuple[int, str]]
    rows: list[FilledRow]

    def to_json(self) -> dict[str, Any]:
        return {"township": self.township, "versions": [[i, v] for i, v in self.versions.items()],
                "problems": [list(p) for p in self.problems],
                "rows": [[r.row, r.clue_id, r.version, r.values, r.verified_on.isoformat() if r.verified_on else None]
                         for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Filled:
        return cls(str(data["township"]), {int(i): int(v) for i, v in data["versions"]},
                   [(int(r), str(m)) for r, m in data["problems"]],
                   [FilledRow(int(r), int(i), int(v), {str(k): str(x) for k, x in values.items()},
                              date.fromisoformat(d) if d else None) for r, i, v, values, d in data["rows"]])


def read_filled(path: Path, key: str, name: str, user_scope: str, user_role: str, max_rows: int) -> Filled:
    """Read a filled-in workbook: the token sheet first (signature, township, the user's scope),
    then the data sheet, refused past `max_rows`. WorkbookError for the file as a whole."""
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
        token_rows = wb.get_sheet_by_name(TOKEN_SHEET).to_python()  # only this sheet is expanded
    except Exception as e:  # any unreadable file is refused the same way
        raise WorkbookError(f"{name}: {NOT_OURS}") from e
    try:
        token = serializer(key, TOKEN_PURPOSE).loads(cell_text(token_rows[0][0]) if token_rows and token_rows[0] else "")
    except BadSignature as e:
        raise WorkbookError(f"{name}: 工作簿签名无效：文件被改动过，或不是本系统导出的") from e
    township = token["township"]
    if user_role != "township":
        raise WorkbookError(f"{name}: {ROLE_ONLY}")
    if not scope.covers(user_scope, township):
        raise WorkbookError(f"{name}: 该工作簿属于其他乡镇，不在您的管辖范围内")
    versions = {int(i): int(v) for i, v in token["clues"]}
    try:
        sheet = wb.get_sheet_by_name(SHEET)
    except Exception as e:
        raise WorkbookError(f"{name}: {NOT_OURS}") from e
    # The declared range was checked with the zip; this is the range the sheet really has.
    if sheet.height > max_rows + 1:
        from bidui.uploads import rows_message

        raise WorkbookError(rows_message(name, sheet.height - 1, max_rows))
    rows = sheet.to_python()
    header = [cell_text(h) for h in rows[0]] if rows else []
    if tuple(header) != LOCKED_COLUMNS + INPUT_COLUMNS and tuple(header) not in EARLIER_HEADERS:
        raise WorkbookError(f"{name}: 表头被改动过，无法导入：请重新下载工作簿填写")
    col = {c: i for i, c in enumerate(header)}
    problems: list[tuple[int, str]] = []
    filled: list[FilledRow] = []
    seen: set[int] = set()
    for r, row in enumerate(rows[1:], start=2):
        if not any(cell_text(x) for x in row):
            continue
        try:
            clue_id = int(float(cell_text(row[col["线索编号"]])))
            version = int(float(cell_text(row[col["版本"]])))
        except (ValueError, OverflowError):
            problems.append((r, f"第 {r} 行：线索编号或版本不是数字"))
            continue
        if clue_id not in versions or versions[clue_id] != version or clue_id in seen:
            problems.append((r, f"第 {r} 行（线索 {clue_id}）：不是本工作簿导出的线索（行被复制、改动或重复）"))
            continue
        seen.add(clue_id)
        values = {c: row[col[c]] if col[c] < len(row) else None for c in INPUT_COLUMNS}
        if not any(cell_text(v) for v in values.values()):
            continue
        filled.append(FilledRow(r, clue_id, version, {c: cell_text(v) for c, v in values.items()},
                                cell_date(values["核实日期"])))
    return Filled(township, versions, problems, filled)


def read_upload(path: str, key: str, name: str, user_scope: str, user_role: str, max_rows: int, max_expanded: int,
                max_ratio: float, max_members: int) -> dict[str, Any]:
    """The upload worker's task (bidui.uploads.TASKS): the zip really expanded and checked, then
    the workbook read. A dict for JSON: Filled, or {"error", "problems"}."""
    from bidui import uploads

    limits = uploads.workbook_zip_limits(max_expanded, max_ratio, max_members, max_rows)
    try:
        uploads.check_zip(Path(path), limits, expand=True)
        return {"filled": read_filled(Path(path), key, name, user_scope, user_role, max_rows).to_json()}
    except uploads.ZipRefused as e:
        return {"error": uploads.zip_message(e, name, limits, NOT_OURS), "problems": []}
    except WorkbookError as e:
        return {"error": str(e).splitlines()[0], "problems": e.problems}
    except MemoryError:
        raise
    except Exception:  # a parser's failure on a strange file: refused like any unreadable one
        return {"error": f"{name}: {NOT_OURS}", "problems": []}
