"""The bulletin as people read it: each department's totals on a night with the change since the
previous and the first night, the details per dataset, the trend, and the workbook sent to the
departments. Works on nightly bulletins (bidui.quality.bulletin) however they were read: the web
page from the ledger's run reports, the command from the warehouse."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from bidui.clues.present import (
    DEFECT_LABELS,
    ID_KIND_LABELS,
    QUALITY_TOTAL_LABELS,
    REJECT_KIND_LABELS,
    RUN_STATUS_LABELS,
    dataset_title,
    department_title,
    problem_reason,
    shown_value,
)
from bidui.datasets import BY_CODE
from bidui.quality.bulletin import TOTALS, Problem, by_department, column_kind, totals
from bidui.text import XLSX_OPTIONS, neutralise_formula

# Load outcomes that mean tonight's file is not what is in force.
NOT_TAKEN = ("held", "refused", "missing")


@dataclass
class DepartmentView:
    code: str
    title: str
    now: dict[str, int]
    previous: dict[str, int] | None
    first: dict[str, int] | None
    datasets: list[dict] = field(default_factory=list)  # per dataset: title, outcome, snapshot, counts
    trend: list[tuple[date, int]] = field(default_factory=list)  # problem records per night

    def change(self, key: str, since: str) -> int | None:
        base = self.previous if since == "previous" else self.first
        return None if base is None else self.now.get(key, 0) - base.get(key, 0)

    @property
    def not_taken(self) -> list[dict]:
        return [d for d in self.datasets if d["status_code"] in NOT_TAKEN]


def signed(n: int | None) -> str:
    """A change as people write it: +3, −2, 0; “—” when there is nothing to compare with."""
    if n is None:
        return "—"
    return f"+{n:,}" if n > 0 else (f"−{-n:,}" if n < 0 else "0")


def _outcome(entry: dict) -> str:
    status = entry.get("status", "none")
    if status == "none":
        return "本夜未报送"
    return RUN_STATUS_LABELS.get(status, "其他")


def dataset_details(entry: dict, night: date) -> dict:
    """One dataset's line of the bulletin, in words: every count with its label."""
    ds = BY_CODE.get(entry.get("code", ""))
    headers = {c.name: c.header for c in ds.columns} if ds else {}
    counts: list[tuple[str, int]] = []
    counts += [("拒收：" + REJECT_KIND_LABELS.get(k, "其他"), n) for k, n in sorted(entry.get("rejects", {}).items())]
    counts += [("证件号码：" + ID_KIND_LABELS.get(k, "有误"), n) for k, n in sorted(entry.get("ids", {}).items())]
    counts += [(DEFECT_LABELS.get(k, "姓名不规范"), n) for k, n in sorted(entry.get("names", {}).items())]
    counts += [(f"必填项为空：{headers.get(c, '其他列')}", n) for c, n in sorted(entry.get("empty", {}).items())]
    rows = entry.get("rows", 0)
    links = entry.get("links", {})
    linked = sum(links.values())
    snapshot = entry.get("snapshot", "")
    return {"code": entry.get("code", ""), "title": dataset_title(entry.get("code")) or "其他数据",
            "status_code": entry.get("status", "none"), "outcome": _outcome(entry),
            "snapshot": snapshot,
            "in_force": "" if not snapshot or snapshot == night.isoformat() else f"沿用 {snapshot} 的数据",
            "totals": totals(entry), "counts": counts,
            "complete": 1 - sum(entry.get("empty", {}).values()) / (rows * max(len(ds.required), 1)) if ds and rows else 1.0,
            "linked_share": (links.get("exact", 0) + links.get("fuzzy", 0)) / linked if linked else None}


@dataclass
class Bulletin:
    night: date
    previous: date | None
    first: date | None
    departments: list[DepartmentView]


def build(nights: dict[date, dict[str, dict]], night: date, department: str | None = None) -> Bulletin:
    """The bulletin of `night` from the bulletins of every night (those after it are ignored);
    `department` (a code of bidui.datasets): that department only."""
    known = sorted(n for n in nights if n <= night and nights[n])
    earlier = [n for n in known if n < night]
    previous, first = (earlier[-1] if earlier else None), (known[0] if known and known[0] < night else None)
    now = nights.get(night, {})
    per_night = {n: by_department(nights[n]) for n in known}
    out = []
    for code, t in by_department(now).items():
        if department and code != department:
            continue
        view = DepartmentView(code, department_title(code), t,
                              per_night[previous].get(code) if previous else None,
                              per_night[first].get(code) if first else None)
        view.datasets = [dataset_details({"code": ds, **entry}, night) for ds, entry in now.items()
                         if entry.get("department") == code]
        view.trend = [(n, per_night[n][code]["problem_rows"]) for n in known if code in per_night[n]]
        out.append(view)
    return Bulletin(night, previous, first, out)


# ---------------------------------------------------------------- the workbook

SUMMARY_KEYS = ("problem_rows", "rows", "delivered", "rejected_rows", "invalid_ids", "name_defects", "exact", "fuzzy",
                "none", "shared_ids", "empty_required")
assert set(SUMMARY_KEYS) == set(TOTALS)


def write_xlsx(bulletin: Bulletin, out: Path, problems: Iterable[Problem] | None = None) -> int:
    """The bulletin as a workbook: 汇总 (each department's totals and changes), 明细 (each dataset's
    counts) and, given `problems`, 问题记录 (file, row, column, the value masked, the reason):
    ready to send back to the department. Returns the number of problem rows written."""
    import xlsxwriter

    out.parent.mkdir(parents=True, exist_ok=True)
    wb = xlsxwriter.Workbook(str(out), XLSX_OPTIONS)
    bold = wb.add_format({"bold": True})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    pct = wb.add_format({"num_format": "0.0%"})
    change_format = wb.add_format({"num_format": '+#,##0;"−"#,##0;0'})

    def text(ws, r: int, c: int, v: str, fmt=None) -> None:
        ws.write_string(r, c, neutralise_formula(v), fmt)

    prev = bulletin.previous.isoformat() if bulletin.previous else "无"
    first = bulletin.first.isoformat() if bulletin.first else "无"
    heading = f"数据质量通报　比对日期：{bulletin.night.isoformat()}　上一次：{prev}　首次：{first}"

    ws = wb.add_worksheet("汇总")
    text(ws, 0, 0, heading, bold)
    head = ["部门"]
    for k in SUMMARY_KEYS:
        head.append(QUALITY_TOTAL_LABELS[k])
        if k == "problem_rows":
            head += ["问题记录较上一次", "问题记录较首次"]
    head.append("本夜未入库的文件")
    for i, h in enumerate(head):
        text(ws, 1, i, h, bold)
    for r, d in enumerate(bulletin.departments, start=2):
        text(ws, r, 0, d.title)
        c = 1
        for k in SUMMARY_KEYS:
            ws.write_number(r, c, d.now.get(k, 0))
            c += 1
            if k == "problem_rows":
                for since in ("previous", "first"):
                    # A number (Excel flagged '0' stored as text), shown signed as on the page.
                    change = d.change(k, since)
                    if change is None:
                        text(ws, r, c, "—")
                    else:
                        ws.write_number(r, c, change, change_format)
                    c += 1
        text(ws, r, c, "；".join(f"{x['title']}（{x['outcome']}）" for x in d.not_taken) or "无", wrap)
    ws.set_column(0, 0, 12)
    ws.set_column(1, len(head) - 2, 11)
    ws.set_column(len(head) - 1, len(head) - 1, 40)
    ws.freeze_panes(2, 1)

    ws = wb.add_worksheet("明细")
    text(ws, 0, 0, heading, bold)
    for i, h in enumerate(("部门", "数据集", "本夜结果", "数据日期", "在用记录", "问题记录", "必填项完整率", "关联率",
                           "问题", "数量")):
        text(ws, 1, i, h, bold)
    r = 2
    for d in bulletin.departments:
        for x in d.datasets:
            rows = x["counts"] or [("无问题", 0)]
            for label, n in rows:
                text(ws, r, 0, d.title)
                text(ws, r, 1, x["title"])
                text(ws, r, 2, x["outcome"])
                text(ws, r, 3, x["in_force"] or bulletin.night.isoformat())
                ws.write_number(r, 4, x["totals"]["rows"])
                ws.write_number(r, 5, x["totals"]["problem_rows"])
                ws.write_number(r, 6, x["complete"], pct)
                if x["linked_share"] is not None:
                    ws.write_number(r, 7, x["linked_share"], pct)
                else:
                    text(ws, r, 7, "不关联")
                text(ws, r, 8, label)
                ws.write_number(r, 9, n)
                r += 1
    ws.set_column(0, 3, 14)
    ws.set_column(4, 7, 11)
    ws.set_column(8, 8, 34)
    ws.freeze_panes(2, 2)

    written = 0
    if problems is not None:
        ws = wb.add_worksheet("问题记录")
        text(ws, 0, 0, heading + "　（证件号码和姓名已遮蔽；行号为表头下的第几行数据）", bold)
        for i, h in enumerate(("数据集", "文件", "行号", "列", "值（已遮蔽）", "问题")):
            text(ws, 1, i, h, bold)
        for written, p in enumerate(problems, start=1):
            ds = BY_CODE.get(p.dataset)
            header = next((c.header for c in ds.columns if c.name == p.column), "其他列") if ds else "其他列"
            text(ws, written + 1, 0, dataset_title(p.dataset) or "其他数据")
            text(ws, written + 1, 1, p.file)
            ws.write_number(written + 1, 2, p.row)
            text(ws, written + 1, 3, header)
            text(ws, written + 1, 4, shown_value(p.value, column_kind(p.dataset, p.column)))
            text(ws, written + 1, 5, problem_reason(p.reason))
        ws.set_column(0, 0, 16)
        ws.set_column(1, 1, 34)
        ws.set_column(3, 5, 22)
        ws.freeze_panes(2, 0)
    wb.close()
    return written
