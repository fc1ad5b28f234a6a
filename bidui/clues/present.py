"""How a clue reads to a person: its evidence, its link, what its rule means and what to check.

The one place that turns what the warehouse and the ledger store (dataset codes, column names, ID
statuses, GA 802 vehicle codes, category and state codes, link explanations as JSON) into the
words a township clerk reads on the clue page, in the workbook, the exports and the reports.
Labels, units and code translations of a dataset's columns live with the columns themselves
(bidui.datasets); a rule's guide lives in its rule file (bidui.rules.engine)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from bidui.clues.link_decisions import KIND_LABELS
from bidui.clues.states import STATUS_LABELS
from bidui.evidence import is_delivery_detail

CATEGORY_LABELS = {"mis_inclusion": "错评疑点", "natural_change": "自然变化", "data_quality": "数据质量",
                   "exit_risk": "错退/返贫风险", "missed_inclusion": "漏评疑点"}
# What became of a delivered file (ingest outcomes): one wording for the run report, the CLI, the
# quality page and the admin page.
FILE_STATUS_LABELS = {"accepted": "已入库", "forced": "批准入库", "duplicate": "与上期相同", "held": "暂缓入库",
                      "refused": "拒收", "missing": "未报送"}
# A night's rule and file outcomes (bidui.rules.engine RuleOutcome.status, ingest outcomes): a
# file's as FILE_STATUS_LABELS says it, forced too (the run report's 结果 read 其他 for it).
RUN_STATUS_LABELS = {"ran": "已运行", "skipped": "未运行", "disabled": "已停用", "failed": "出错",
                     **FILE_STATUS_LABELS,
                     "completed": "完成", "partial": "部分完成（有文件暂缓入库）", "already": "已运行过", "running": "运行中"}


def files_outcome_text(files: list[dict]) -> str:
    """What a night's run headline must say when a delivery did not go in (a run said only 完成, and
    the held and refused files were in a wide table below): how many, and what follows. "" when
    every file went in."""
    counts = {s: sum(1 for f in files if f.get("status") == s) for s in ("held", "refused", "missing")}
    said = "、".join(f"{n} 个{FILE_STATUS_LABELS[s]}" for s, n in counts.items() if n)
    return (f"但有文件未入库：{said}。这些数据集继续使用上一期的数据，不会据此下发线索；"
            "原因和处理办法见“数据集”表的“说明”（暂缓的文件经核实后可在管理页批准入库，或请部门重新报送）") if said else ""


STEP_LABELS = {"ingest": "接收入库", "link": "身份关联", "rules": "规则比对", "publish": "发布线索"}
PUBLISH_LABELS = {"new": "新增", "seen": "再次发现", "gone": "证据消失", "reraised": "重新下发", "suppressed": "不再下发",
                  "withheld": "数据存疑暂不下发"}

LINK_LABELS = {"exact": "证件号码一致", "former_name": "证件号码一致（姓名为户籍更正前的原名）",
               "household": "同户成员的证件号码，姓名与本人一致（如子女记录填了父母的证件号）",
               "excel_cut": "证件号码前15位一致（后三位被 Excel 改成了0）",
               "confirmed": "乡镇核实确认是本人",
               "fuzzy": "模糊匹配", "review": "模糊匹配（身份待当面确认）", "none": "未找到"}
# Why a link needed no score, said in words (the explanation of an exact, former-name or household link).
RULE_LABELS = {"shared_id": "该证件号码在户籍中由{holders}人共用（一号多人），按姓名确定为其中一人；核实时请当面确认是本人",
               "former_name": "户籍已更正姓名，记录仍用原名", "household": "证件号码属于同一户籍户的另一成员，按姓名确定本人",
               "excel_cut": "记录中的证件号码被 Excel 截成15位有效数字，前15位只与户籍中一人相符，姓名也一致",
               "confirmed": "{verifier}于{decided_on}入户核实，确认此记录是本人（线索 {clue}），此后直接关联",
               "barred": "{verifier}于{decided_on}入户核实，认定此记录不是原先关联的人（线索 {clue}），此后不再与其关联"}
COMPARISON_LABELS = {"id": "证件号码", "name": "姓名", "birth": "出生日期", "sex": "性别", "village": "村",
                     "head": "户主", "name frequency": "姓名常见程度"}
# Each level of bidui.matching.compare.COMPARISONS (and the two the explanation adds), for the table of weights.
LEVEL_LABELS = {
    "valid and another person's": "是他人的有效号码", "different": "不同", "two digits apart": "相差两位",
    "valid, held by nobody, one or two digits apart": "有效但户籍中无人使用，相差一至两位",
    "one of the 15 digits Excel kept apart": "被 Excel 截断后保留的15位中相差一位",
    "same pinyin (homophone) or equal but for unknown characters": "同音或仅有无法录入的字不同",
    "one digit or a transposition apart": "相差一位或相邻两位颠倒", "first 15 digits equal": "前15位相同", "equal": "相同",
    "one character apart": "相差一字", "same pinyin (homophone)": "同音", "same writing": "相同",
    "one digit or month/day apart": "相差一位或月日颠倒", "same township": "同乡镇不同村", "not the household head": "不是户主",
    "the household head": "是户主", "not observed": "无此项", "adjustment": "调整",
}
# The same levels as a reason, in a sentence: why the record is believed to be the person's.
REASONS = {
    ("id", "equal"): "证件号码一致", ("id", "first 15 digits equal"): "证件号码前15位一致（记录中的号码被 Excel 截断）",
    ("id", "one digit or a transposition apart"): "证件号码差一位（或相邻两位颠倒）", ("id", "two digits apart"): "证件号码差两位",
    ("id", "one of the 15 digits Excel kept apart"): "证件号码被 Excel 截断，保留的15位中差一位",
    ("id", "valid, held by nobody, one or two digits apart"): "证件号码户籍中无人使用，与本人的差一至两位",
    ("id", "different"): "证件号码不同", ("id", "valid and another person's"): "证件号码是他人的",
    ("name", "same writing"): "姓名一致", ("name", "one character apart"): "姓名差一字",
    ("name", "same pinyin (homophone) or equal but for unknown characters"): "姓名同音",
    ("name", "same pinyin (homophone)"): "姓名同音", ("name", "different"): "姓名不同",
    ("birth", "equal"): "出生日期一致", ("birth", "one digit or month/day apart"): "出生日期差一位或月日颠倒",
    ("birth", "different"): "出生日期不同", ("sex", "equal"): "性别一致", ("sex", "different"): "性别不同",
    ("village", "equal"): "同村", ("village", "same township"): "同乡镇不同村", ("village", "different"): "不在同一乡镇",
    ("head", "the household head"): "同为户主", ("head", "not the household head"): "不是户主",
}

# The data-quality counts of a night (bidui.matching.quality), as the run report words them.
DEFECT_LABELS = {"placeholder": "姓名有无法录入的字（□?*〓）", "annotation": "姓名带括注", "pinyin": "姓名夹拼音",
                 "invisible": "姓名含不可见字符", "shared_ids": "一号多人", "second_numbers": "一人多号"}

ID_STATUS_LABELS = {"valid": "有效", "missing": "缺失", "bad_length": "位数不对", "bad_province": "省份代码不对",
                    "bad_birth_date": "出生日期不合法", "bad_check": "校验位不对", "excel_mangled": "被 Excel 截断",
                    "too_few_digits": "被 Excel 改成科学计数法，只剩几位，无法使用"}
# Keys the rules add to an evidence record (bidui/sql/rules): label and unit.
EXTRA_LABELS = {"age": ("年龄", "岁"), "household_total": ("全户自付合计", "元"), "member_share": ("本人自付", "元"),
                "status": ("证件号码问题", ""), "probable_id": ("可能的正确证件号码", ""),
                "times_in_household": ("在本户登记次数", "次")}
# Internal columns of a stored record that say nothing to a person.
HIDDEN = {"is_primary", "rejected_columns", "vehicle_type_code"}
SUB_TABLES = {
    "bills": ("结算明细", (("settle_date", "结算日期", ""), ("name", "患者", ""), ("hospital", "医疗机构", ""),
                           ("total_cost", "医疗总费用", "元"), ("out_of_pocket", "个人自付", "元"))),
    "other_households": ("其他户（本人也登记在这些户中）", (("household_code", "户编号", ""), ("village_code", "村", ""),
                                                   ("head_name", "户主", ""))),
    "school_records": ("本人的学籍记录（无“在读”或“休学”）", (("school_name", "学校名称", ""), ("school_type", "办学类型", ""),
                                                ("stage", "学段", ""), ("status", "学籍状态", ""))),
}
EMPTY_TABLES = {"school_records": ("学籍记录", "学籍数据中没有本人的任何记录"),
                "other_households": ("其他户", "无（本人在本户中重复登记）")}


# ---------------------------------------------------------------- values


def signer(name: str | None, position: str | None) -> str:
    """Who signed, as every page and file writes it: 张三（扶贫专干）, the name alone without a position."""
    return f"{name}（{position}）" if name and position else name or ""


def number(v: float | int, unit: str = "") -> str:
    """A number as people write it: no `.0`, money to the fen, then its unit (20000 元, 100 万元)."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    text = f"{v:.2f}" if isinstance(v, float) else str(v)
    return f"{text} {unit}" if unit else text


def _is_division(name: str) -> bool:
    return name in ("village_code", "address_code", "code", "parent_code")


def _value(name: str, v: Any, dataset: str | None, names: dict[str, str], unit: str = "") -> str:
    from bidui.datasets import BY_CODE, vehicle_type_words

    # The column in the record's dataset, else in any (a business clue's record may be an investor's).
    cols = [c for ds in ([BY_CODE[dataset]] if dataset in BY_CODE else []) + list(BY_CODE.values())  # type: ignore[index]
            for c in ds.columns if c.name == name]
    col = cols[0] if cols else None
    if isinstance(v, bool):
        return "是" if v else "否"
    if isinstance(v, int | float):
        return number(v, unit or (col.unit if col else ""))
    if isinstance(v, list):
        return "、".join(_value(name, x, dataset, names) for x in v)
    text = str(v)
    if name == "vehicle_type":
        return vehicle_type_words(text)
    if col and text in col.display:
        return col.display[text]
    if _is_division(name):
        return names.get(text, text)
    return text


def _label(name: str, dataset: str | None, v: Any, names: dict[str, str], anywhere: bool = True) -> str:
    """The column's header in its own dataset, else (`anywhere`) in the first dataset that has it."""
    label = FIELD_LABELS.get(dataset or "", {}).get(name) or (FIELD_LABELS[""].get(name, "") if anywhere else "")
    # A division code shown as its name: 村代码 529001101201 reads 村 和屯村.
    if label and _is_division(name) and isinstance(v, str) and v in names:
        label = label.removesuffix("代码").removesuffix("区划") or label
    return label


def _field_labels() -> dict[str, dict[str, str]]:
    """Each dataset's canonical columns with their Chinese headers (the extract spec), and under
    "" the first header seen for each name."""
    from bidui.datasets import DATASETS

    out: dict[str, dict[str, str]] = {"": {}}
    for ds in DATASETS:
        out[ds.code] = {col.name: col.header for col in ds.columns}
        for col in ds.columns:
            out[""].setdefault(col.name, col.header)
    return out


FIELD_LABELS = _field_labels()


def _id_text(number_: str, status: str) -> str:
    """An ID number with what is wrong with it, in words."""
    if status == "excel_mangled":
        return f"{number_[:15]}…（被 Excel 截断，只剩前15位）"
    return f"{number_}（{ID_STATUS_LABELS.get(status, '号码有误')}）" if number_ else ID_STATUS_LABELS.get(status, "号码有误")


# ---------------------------------------------------------------- records


@dataclass
class SubTable:
    title: str
    columns: list[str]
    rows: list[list[str]]

    def text(self) -> str:
        """One line: a cell whose column is not obvious from it (an amount, a head's name) says its column."""
        said = {"医疗总费用": "总费用 ", "个人自付": "自付 ", "户主": "户主 ", "户编号": "户编号 ", "办学类型": "",
                "学籍状态": ""}
        return f"{self.title}：" + "；".join("，".join(said.get(col, "") + c for col, c in zip(self.columns, row, strict=True) if c)
                                           for row in self.rows)


@dataclass
class Record:
    """One evidence record as a person reads it: label/value pairs, lists as sub-tables."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    tables: list[SubTable] = field(default_factory=list)

    def text(self) -> str:
        return "；".join([f"{k}：{v}" for k, v in self.fields] + [t.text() for t in self.tables])


def _sub_table(key: str, rows: list, names: dict[str, str]) -> SubTable:
    title, columns = SUB_TABLES[key]
    out = []
    for row in rows:
        row = row if isinstance(row, dict) else {}
        cells = []
        for name, _, unit in columns:
            v = row.get(name)
            cells.append("" if v is None else number(v, unit) if isinstance(v, int | float) and not isinstance(v, bool)
                         else names.get(str(v), str(v)) if _is_division(name) else str(v))
        out.append(cells)
    return SubTable(title, [label for _, label, _ in columns], out)


def read_record(record: str | None, dataset: str | None = None, names: dict[str, str] | None = None,
                night: date | None = None) -> Record:
    """The stored evidence record (JSON) as a person reads it. `names` turns division codes into
    names; `night` (the night the record was found) dates a window the rule counted over."""
    names = names or {}
    out = Record()
    if not record or record == "null":
        return out
    try:
        value = json.loads(record)
    except json.JSONDecodeError:
        out.fields.append(("记录", record))
        return out
    if not isinstance(value, dict):
        out.fields.append(("记录", _value("", value, dataset, names)))
        return out
    statuses = {k.removesuffix("_status"): v for k, v in value.items() if k.endswith("_status") and k != "status"}
    for k, v in value.items():
        if is_delivery_detail(k) or k in HIDDEN or (k.endswith("_status") and k != "status"):
            continue
        if k in SUB_TABLES:
            if v:
                out.tables.append(_sub_table(k, v, names))
            elif k in EMPTY_TABLES:
                out.fields.append(EMPTY_TABLES[k])
            continue
        if v in (None, ""):
            continue
        if k == "vehicle_type" and value.get("vehicle_type_code"):
            v = value["vehicle_type_code"]
        if k == "window_days":
            out.fields.append(("统计期间", f"{night - timedelta(days=int(v) - 1)} 至 {night}（比对日前 {int(v)} 天）"
                               if night else f"比对日前 {int(v)} 天内"))
            continue
        if k == "times_in_household" and v == 1:
            continue
        label = _label(k, dataset, v, names, anywhere=k not in EXTRA_LABELS)
        if not label and k in EXTRA_LABELS:
            label, unit = EXTRA_LABELS[k]
            if k == "status":
                text = ID_STATUS_LABELS.get(str(v), "号码有误")
            elif k == "probable_id":
                text = str(v).split("~")[0]  # the person's key: ID~hukou number when two share it
            else:
                text = _value(k, v, None, names, unit)
            out.fields.append((label, text))
            continue
        if not label:
            continue  # a column nobody has a word for is not shown as its code
        if k in statuses and statuses[k] not in ("valid", None):
            out.fields.append((label, _id_text(str(v), statuses[k])))
            continue
        out.fields.append((label, _value(k, v, dataset, names)))
    return out


def evidence_text(record: str | None, dataset: str | None = None, names: dict[str, str] | None = None,
                  night: date | None = None) -> str:
    """The record as one line of `字段：值` pairs (workbook, exports)."""
    return read_record(record, dataset, names, night).text()


def empty_evidence(rule_code: str, evidence_key: str = "") -> str:
    """What a clue without a record means (the missing record is the finding)."""
    if rule_code == "NOT_IN_HUKOU":
        return "户籍数据中按证件号码、姓名和出生日期都没有找到此人：缺少记录本身就是疑点。"
    if rule_code == "UNINSURED":
        return f"基本医疗保险参保数据中没有本人{' ' + evidence_key + ' ' if evidence_key else '本'}年度状态为“参保”的记录。"
    return "该规则的证据是“没有记录”：缺少记录本身就是疑点。"


def dataset_title(code: str | None) -> str:
    from bidui.datasets import BY_CODE

    return BY_CODE[code].title if code in BY_CODE else ""


def defects_text(quality: dict[str, dict[str, int]]) -> list[str]:
    """Each dataset's counts as one line: `户籍人口：一号多人 206，…`."""
    return [f"{dataset_title(d) or '其他数据'}：" + "，".join(f"{DEFECT_LABELS.get(k, '其他')} {n:,}" for k, n in found.items())
            for d, found in sorted(quality.items())]


# Where a surface lists why a file was not loaded tonight: the run report's and the CLI's table
# 数据集 has it in its column 说明 (bidui.flows.nightly, bidui.flows.cli); the admin page's run list
# in its column 未入库.
REASONS_IN_REPORT = "“数据集”表的“说明”一栏"
REASONS_ON_ADMIN_PAGE = "“未入库”一栏"


def changes_text(changes: dict[str, dict], files: list[dict] | None = None,
                 reasons_at: str = REASONS_IN_REPORT) -> list[str]:
    """Each dataset's rows against its previous snapshot, one line each (`户籍人口：新增 12，变更 161，…`);
    the datasets carried whole in a last line: no file tonight, the same bytes again, or a file held
    or refused (a snapshot carried is not news that nothing changed, only that nothing new came).
    With the night's `files` (the run report's), those not loaded tonight (held, refused, missing:
    the report lists why) are told apart from those sent again unchanged, which one line lumped
    together (an admin read it as saying the held files had come unchanged). `reasons_at`: where
    the surface says why (REASONS_IN_REPORT, REASONS_ON_ADMIN_PAGE)."""
    not_in = {f.get("dataset") for f in files or [] if f.get("status") in ("held", "refused", "missing")}
    lines, carried, kept = [], [], []
    for d, c in sorted(changes.items(), key=lambda kv: dataset_title(kv[0])):
        title = dataset_title(d) or "其他数据"
        if c.get("carried") and files is not None and d not in not_in:
            kept.append(title)
        elif c.get("carried"):
            carried.append(title)
        elif c.get("since") is None:
            lines.append(f"{title}：首次入库 {c.get('rows', 0):,} 行")
        else:
            lines.append(f"{title}：新增 {c['new']:,}，变更 {c['changed']:,}，删除 {c['removed']:,}，"
                         f"未变 {c['unchanged']:,}（与 {c['since']} 的版本相比）")
    if kept:
        lines.append("今晚报送的文件与上一版相同：" + "、".join(kept))
    if carried:
        lines.append((f"今晚未入库（原因见{reasons_at}），沿用上一版：" if files is not None else "本夜无新版本、沿用上一版：")
                     + "、".join(carried))
    return lines


RELINK_KINDS = {"other_person": "改关联到另一人", "linked": "新关联上", "unlinked": "不再关联"}
RELINK_WHY = {"verdict": "乡镇核实结论", "hukou": "户籍变化", "model": "模型重新训练", "other": "候选人变化"}
IDENTITY_EVENTS = {"split": "一号多人新出现（一个号码分为两人）", "merged": "一号多人消除（合为一人）",
                   "second_found": "一人多号新认定（注销号码并入本人）", "second_gone": "一人多号解除"}


def relinks_text(relinks: dict) -> list[str]:
    """The records whose link changed since the night linked before, by dataset and why; the hukou
    identities that split or merged (bidui.matching.relinks)."""
    if not relinks:
        return []
    lines = []
    if relinks.get("carried"):
        held = relinks.get("held") or 0
        lines.append(f"沿用上一夜的关联 {relinks['carried']:,} 条" + (
            f"（其中模型评分 {held:,} 条）：记录及其户籍、候选人都没有变化，不再重新关联" if held
            else "：记录及其户籍都没有变化，不再重新关联"))
    for d, c in sorted(relinks.get("datasets", {}).items(), key=lambda kv: dataset_title(kv[0])):
        kinds = "，".join(f"{w} {c[k]:,}" for k, w in RELINK_KINDS.items() if c.get(k))
        why = "，".join(f"{w} {c['why'][k]:,}" for k, w in RELINK_WHY.items() if c.get("why", {}).get(k))
        lines.append(f"{dataset_title(d) or '其他数据'}：{kinds}（原因：{why}）")
    if "hukou" in relinks.get("not_compared", []):
        return [*lines, f"户籍人口在 {relinks['since']} 或本夜所用的版本后来被重新入库，本夜不比较关联变化"]
    if relinks.get("not_compared"):
        lines.append("未比较：" + "、".join(dataset_title(d) or "其他数据" for d in relinks["not_compared"])
                     + "（两夜所用的版本之一后来被重新入库）")
    if not relinks.get("datasets"):
        lines.append(f"与 {relinks['since']} 相比，{'其他数据' if relinks.get('not_compared') else ''}没有记录改变关联")
    events = relinks.get("identities") or {}
    if any(events.values()):
        lines.append("户籍身份：" + "，".join(f"{w} {events[k]:,}" for k, w in IDENTITY_EVENTS.items() if events.get(k)))
    elif events:
        lines.append("户籍身份：没有拆分或合并")
    return lines


# Why the rules were evaluated whole (bidui.rules.changed.plan, bidui.rules.engine), as the run
# report says it.
RULES_WHOLE_WHY = {
    "evaluated whole on request": "按要求从头运行",
    "no night before": "此前没有运行过规则",
    "a later night's rules have run": "更晚一夜的规则已经运行过",
    "that night was linked again since its rules ran": "上一次运行规则的那一夜后来重新关联过",
    "the rules, their parameters or bidui changed": "规则、参数或比对程序有变化",
    "a rule ran then and not now, or the other way round": "有规则上次运行而本夜未运行，或相反",
    "a new year": "进入新的年度",
    "a snapshot of that night was stored again since": "上一次运行规则所用的数据后来重新入库",
    "a snapshot in force tonight is not the one tonight was linked with": "本夜关联之后又有数据入库，本夜需重新关联",
    "a dataset came or went": "有数据集新到或不再提供",
    "the divisions changed": "行政区划有变化",
    "rows stored before their content was hashed": "有早期版本入库、没有内容指纹的数据",
    "some rules only": "只运行了部分规则",
    "the home has rules of its own": "本地有自定义规则",
}


def rules_scope_text(scope: dict, home_rules: Path | None = None) -> str:
    """What the rules looked at again tonight, or why they were evaluated whole, in a sentence
    (empty for a report made before it was kept). `home_rules`: the home's rules folder, for the
    title of a rule of its own (rule_title)."""
    if not scope:
        return ""
    if "whole" not in scope:
        return (f"规则只重新核查了 {scope['before']} 以来有变化的 {scope['households']:,} 户"
                + (f"（共 {scope['of']:,} 户）" if scope.get("of") else "")
                + (f"和 {scope['hukou_households']:,} 个户籍户" if scope.get("hukou_households") else "")
                + "，其余沿用上一次的结果")
    why = scope["whole"]
    most = re.fullmatch(r"(\d+) of (\d+) households in scope", why)
    undeclared = re.fullmatch(r"(\w+) compares the run date and does not declare how .*", why)
    if most:
        text = f"有变化的户数超过一半（{int(most[1]):,} / {int(most[2]):,} 户）"
    elif undeclared:
        text = f"规则「{rule_title(undeclared[1], home_rules)}」比较运行日期但没有声明比较的字段"
    else:
        text = RULES_WHOLE_WHY.get(why, "")
    return "规则全部重新计算" + (f"：{text}" if text else "")


# ---------------------------------------------------------------- links


def explanation_parts(explanation: str | None) -> list[dict]:
    """Each comparison of a fuzzy link: label, level label, weight (a waterfall)."""
    if not explanation:
        return []
    try:
        parts = json.loads(explanation).get("parts", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    return [{"comparison": COMPARISON_LABELS.get(p["comparison"], "其他"),
             "level": LEVEL_LABELS.get(p["level"], "其他"), "weight": p["weight"]} for p in parts]


def _differing(a: str | None, b: str | None) -> str:
    """The characters two names of one length differ in: `威/伟`."""
    if not a or not b or len(a) != len(b) or a == b:
        return ""
    return "、".join(f"{x}/{y}" for x, y in zip(a, b, strict=True) if x != y)


def reasons(explanation: str | None, record_name: str | None = None, person_name: str | None = None) -> str:
    """Why a scored link is believed to be the person, in words: `证件号码差一位；姓名同音（威/伟）；出生日期一致`."""
    try:
        parts = json.loads(explanation or "").get("parts", [])
    except (json.JSONDecodeError, AttributeError):
        return ""
    out = []
    for p in parts:
        words = REASONS.get((p.get("comparison"), p.get("level")))
        if not words:
            continue  # not observed, the name-frequency adjustment: no reason either way
        if p["comparison"] == "name" and p["level"] != "same writing":
            diff = _differing(record_name, person_name)
            words += f"（{diff}）" if diff else ""
        out.append(words)
    return "；".join(out)


def rule_text(explanation: str | None) -> str:
    """The reason of a link that needed no score (empty for a scored one)."""
    try:
        value = json.loads(explanation or "")
    except json.JSONDecodeError:
        return ""
    if not isinstance(value, dict) or value.get("rule") not in RULE_LABELS:
        return ""
    return RULE_LABELS[value["rule"]].format(holders=value.get("holders", 2), verifier=value.get("verifier") or "乡镇核实人",
                                             decided_on=value.get("decided_on") or "", clue=value.get("clue") or "")


def confidence(score: float) -> str:
    """A link's probability as a reader takes it: a saturated 100.00% would claim certainty."""
    return "可信度 99.9% 以上" if score >= 0.999 else f"可信度 {score:.1%}"


def link_text(method: str | None, score: float | None, explanation: str | None) -> str:
    """The link alone: how it was made, its probability and its reasons."""
    label = LINK_LABELS.get(method or "none", "未找到")
    if method in ("exact", "former_name", "household", "excel_cut", "confirmed", "none", None) and rule_text(explanation):
        return f"{label}：{rule_text(explanation)}"
    if method in ("fuzzy", "review") and score is not None:
        why = reasons(explanation)
        return f"{label}，{confidence(score)}" + (f"：{why}" if why else "")
    return label


@lru_cache(maxsize=8)
def _rules(home_rules: Path | None) -> dict[str, Any]:
    from bidui.rules.engine import load_rules

    try:
        return {r.code: r for r in load_rules(home_rules)[0]}
    except Exception:  # a broken rule file must not take the clue page down with it
        return {r.code: r for r in load_rules(None)[0]}


def rule_guide(code: str, home_rules: Path | None = None):
    """The rule's guide for people (bidui.rules.engine.RuleGuide), None when its file has none."""
    rule = _rules(home_rules).get(code)
    return rule.guide if rule else None


def _record_name(record: str | None, dataset: str | None) -> str | None:
    from bidui.datasets import BY_CODE

    if not record or dataset not in BY_CODE or not BY_CODE[dataset].persons:  # type: ignore[index]
        return None
    try:
        value = json.loads(record)
    except json.JSONDecodeError:
        return None
    return value.get(BY_CODE[dataset].persons[0].name_column) if isinstance(value, dict) else None  # type: ignore[index]


def link_sentence(clue: Any, record: str | None = None) -> str:
    """Where the evidence comes from and how it was tied to the person, in one sentence."""
    method, score, explanation = clue.link_method, clue.link_score, clue.link_explanation
    rule = _rules(None).get(clue.rule_code)
    kind = rule.link if rule else "record"
    label = link_text(method, score, explanation) if method else ""
    if method in ("fuzzy", "review"):
        # The two names the link compared: the department's and the person's; for a register
        # member's own link, the register's and hukou's (the hukou record is then the evidence).
        if kind == "record":
            compared = (_record_name(record, clue.evidence_dataset), clue.subject_name)
        else:
            compared = (clue.subject_name, _record_name(record, "hukou") if clue.evidence_dataset == "hukou" else None)
        why = reasons(explanation, *compared)
        label = f"{LINK_LABELS[method]}，{confidence(score)}" + (f"：{why}" if why else "") if score is not None \
            else LINK_LABELS[method]
    # Unlinked because a township found the record is not the person it was linked to: said.
    barred = "" if method else rule_text(explanation)
    verdict = f"{barred}。" if barred else ""
    if clue.rule_code == "NOT_IN_HUKOU":
        return "户籍中没有找到此人（按证件号码、姓名和出生日期比对）。" + verdict
    if clue.evidence_dataset == "hukou":
        return "证据是本人的户籍记录" + (f"（成员与户籍：{label}）" if label else "") + "。"
    title = dataset_title(clue.evidence_dataset) or "部门"
    if clue.category == "missed_inclusion":
        head = "对象是户籍户的成员（该户不在建档立卡名单中）"
        return f"{head}；{title}记录与该户成员：{label or '证件号码一致'}。"
    if kind == "member":
        return f"成员与户籍：{label}。" if method else "该成员在户籍中没有找到，按名单上的证件号码比对。" + verdict
    return f"{title}记录与本人：{label or '未找到'}。"


# ---------------------------------------------------------------- a clue


def division_names(clue: Any) -> dict[str, str]:
    """Every division's name, through the clue's own session (pages pass no names)."""
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    from bidui.clues.models import Division

    session = object_session(clue)
    if session is None:
        return {}
    return {code: name for code, name in session.execute(select(Division.code, Division.name))}


def clue_evidence_text(clue: Any, record: str | None, night: date | None = None,
                       names: dict[str, str] | None = None) -> str:
    """The clue's evidence as one line, or what its missing record means."""
    return evidence_text(record, clue.evidence_dataset, names, night) or empty_evidence(clue.rule_code,
                                                                                         clue.evidence_key or "")


def clue_view(clue: Any, snapshots: list, names: dict[str, str] | None = None) -> dict:
    """Everything `_evidence.html` shows of a clue: what its rule means and what to check, its
    evidence per night (label/value pairs, sub-tables), the link in words and its weights.
    `snapshots` are the clue's EvidenceSnapshot rows, newest first."""
    names = names if names is not None else division_names(clue)
    records = []
    for e in snapshots:
        rec = read_record(e.record, clue.evidence_dataset, names, e.night)
        if clue.rule_code == "NAME_MISMATCH" and clue.subject_name:
            # The two names the rule compares, side by side (the register's was at the top of the
            # page, the record's far below it: a clerk's walk, 2026-12-06).
            rec.fields = [(label, f"{value}（建档立卡名单上为“{clue.subject_name}”）"
                           if label == "姓名" and value != clue.subject_name else value) for label, value in rec.fields]
        records.append({"night": e.night, "fields": rec.fields, "tables": rec.tables,
                        "empty": "" if rec.fields or rec.tables else empty_evidence(clue.rule_code, clue.evidence_key or "")})
    latest = snapshots[0].record if snapshots else None
    return {"evidence": [(r["night"], clue_evidence_text(clue, e.record, e.night, names)) for r, e in zip(records, snapshots, strict=True)],
            "records": records, "source": dataset_title(clue.evidence_dataset),
            "link": link_sentence(clue, latest), "waterfall": explanation_parts(clue.link_explanation),
            "guide": rule_guide(clue.rule_code), "category": CATEGORY_LABELS.get(clue.category, ""),
            "status": STATUS_LABELS.get(clue.status, "")}


# ---------------------------------------------------------------- the night's run


def rule_title(code: str, home_rules: Path | None = None) -> str:
    """A rule's title (its code only for a rule no file names any more); `home_rules`: the home's
    own rules folder (<home>/rules), whose rules the packaged ones do not know."""
    rule = _rules(home_rules).get(code)
    return rule.title if rule else code


def model_text(version: int | None, trained_at: object, trained: str | None, night: object = None) -> str:
    """The linking model of a night, as the run report says it: its version and the night it was
    trained on (else, in a report written before that was kept, the day it was trained), and why it
    was trained tonight (first night, asked for, the data drifted from it)."""
    if version is None:
        return "关联模型：本夜无需打分（全部精确关联或无记录）"
    if trained is None:
        when = f"{str(night)[:10]} 的比对中训练" if night else f"{str(trained_at)[:10]} 训练"
        return f"关联模型：沿用第 {version} 版（{when}）"
    why = {"first": "首次训练", "asked": "按要求重新训练"}.get(trained)
    if why is None and trained.startswith("drift:"):
        why = f"数据变化较大（{COMPARISON_LABELS.get(trained[6:], '比对项')}），重新训练"
    return f"关联模型：第 {version} 版，今晚训练（{why or '重新训练'}）"


def model_lines(model: dict) -> list[str]:
    """The linking model a night used and the verdicts it obeyed (a run report's `model`), as the
    CLI, the run report and the admin page's run list say them."""
    if not model:
        return []
    lines = [model_text(model.get("version"), model.get("trained_at"), model.get("trained"), model.get("trained_night"))]
    return lines + ([decisions_text(model.get("decisions"))] if model.get("decisions") else [])


def decisions_text(count: int | None) -> str:
    """How many townships' verdicts on links the night obeyed (issue 18)."""
    if not count:
        return ""
    return f"乡镇核实认定的关联 {count:,} 条已遵从（认定不是本人的不再关联，确认是本人的直接关联）"


def links_text(links: dict[str, int]) -> str:
    """The night's links by method, in words."""
    words = {"exact": "证件号码一致", "former_name": "原名", "household": "同户成员号码", "excel_cut": "前15位一致",
             "confirmed": "核实确认",
             "fuzzy": "模糊匹配",
             "review": "待确认", "none": "未找到"}
    return " · ".join(f"{words.get(k, '其他')} {v:,}" for k, v in links.items())


# ---------------------------------------------------------------- rule parameters (issue 19: 阈值推演)
# Each parameter of [rules.parameters] as a person reads it: its name and the unit its value is in
# ("" : a list of values or a word). The what-if page and command show these, never the key.
PARAMETER_WORDS: dict[str, tuple[str, str]] = {
    "vehicle_active_statuses": ("计入的车辆状态", ""),
    "vehicle_counted_types": ("计入的车辆类型（GA 802 代码开头）", ""),
    "vehicle_excluded_uses": ("不计入的车辆使用性质", ""),
    "business_active_statuses": ("计入的企业登记状态", ""),
    "business_not_enterprise": ("不按企业计的市场主体", ""),
    "individual_business_min_capital": ("个体工商户注册资本门槛", "万元"),
    "property_region": ("房产所在区域", ""),
    "property_counted_types": ("计入的房产类型", ""),
    "school_fee_types": ("计入的学校类型", ""),
    "school_fee_threshold": ("年学费门槛", "元"),
    "split_min_age": ("分户老人年龄下限", "岁"),
    "split_years": ("分户年限", "年"),
    "dangerous_grades": ("危房等级", ""),
    "dropout_min_age": ("义务教育起始年龄", "岁"),
    "dropout_max_age": ("义务教育截止年龄", "岁"),
    "medical_household_threshold": ("户医疗自付费用门槛", "元"),
    "medical_window_days": ("医疗费用统计天数", "天"),
    "missed_dangerous_grades": ("漏评危房等级", ""),
    "missed_medical_threshold": ("漏评医疗自付费用门槛", "元"),
}


def parameter_words(name: str) -> tuple[str, str]:
    """(label, unit) of a rule parameter; a task force's own parameter reads 其他参数."""
    return PARAMETER_WORDS.get(name, ("其他参数", ""))


def parameter_value_text(value: object) -> str:
    """A parameter's value as a person reads it: lists joined with 、, whole numbers without .0."""
    if isinstance(value, list | tuple):
        return "、".join(str(x) for x in value) or "（无）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


# ---------------------------------------------------------------- a clue's history (issue 19)
# What each event of a clue's history says (the clue page, its print and the household file).
EVENT_LABELS = {"dispatched": "下发", "verify": "核实签字", "amended": "修改核实结论", "close": "销号", "return": "退回",
                "evidence_gone": "证据消失", "evidence_back": "证据重现", "evidence_changed": "证据变化",
                "reraised": "重新下发", "seen": "再次发现", "decision_revoked": "撤销关联认定",
                "attachment_added": "上传附件", "attachment_viewed": "查看附件", "attachment_removed": "删除附件"}


def brief(text: str | None, limit: int = 80) -> str:
    """A long text where a list or a history line shows it: its beginning (the clue's page has it
    whole). A 6,600-character return reason squeezed a list's other columns to a character a line."""
    text = text or ""
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


def _finding_said(p: dict) -> str:
    """A signed finding as a history line says it: outcome, measure and the beginning of its text."""
    said = outcome_text(p.get("outcome"), p.get("outcome_detail"))
    if p.get("action"):
        said += f"（{p['action']}）"
    if p.get("finding"):
        said += "：" + brief(p["finding"], 60)
    return said


def event_note(kind: str, payload: dict | None, labels: dict[int, str] | None = None) -> str:
    """The detail of an event beside its label: the attachment's name, the return's reason, the
    finding signed (and, amended, the one it replaced: a reviewer saw 修改核实结论 three times in a
    minute and not that 不属实 had become 属实), who verified when a workbook brought it in, what
    it taught the linker."""
    p = payload or {}
    if kind.startswith("attachment_") and labels:
        return labels.get(p.get("attachment"), "")
    if kind in ("verify", "amended"):
        note = _finding_said(p) or str(p.get("outcome") or "")
        if kind == "amended" and p.get("before"):
            note += "；原为 " + _finding_said(p["before"])
        # A workbook names who verified (a village cadre without an account, say); the account that
        # brought it in is the event's. Both are said, not two names that seem to disagree.
        if p.get("via") == "workbook":
            note += f"；由核实工作簿导入，核实人 {signer(p.get('verifier_name'), p.get('verifier_position'))}"
        if p.get("link_revoked"):
            note += "；" + DECISION_REVOKED_NOTE
        if p.get("link_decision") in DECISION_NOTES:
            note += "；" + DECISION_NOTES[p["link_decision"]]
        return note
    if kind == "return":
        note = p.get("reason", "") + (f"（新的截止日期 {p['due_date']}）" if p.get("due_date") else "")
        return note + ("；" + DECISION_REVOKED_NOTE if p.get("link_revoked") else "")
    if kind == "decision_revoked":
        said = KIND_LABELS.get(p.get("decision", ""), "关联")
        return f"“{said}”的认定已撤销" + (f"（理由：{p['reason']}）" if p.get("reason") else "")
    return str(p.get("outcome") or p.get("night") or "")


# ---------------------------------------------------------------- 数据质量通报 (issue 19, bidui.quality)

# The departments of bidui.datasets (Dataset.department) as the task force names them.
DEPARTMENT_LABELS = {"statistics": "统计", "poverty alleviation": "乡村振兴", "public security": "公安",
                     "health": "卫健", "medical security": "医保", "education": "教育", "housing": "住建",
                     "commerce": "市场监管", "public security (traffic)": "公安交管",
                     "finance / human resources": "财政人社"}
# Kinds of bidui.quality.bulletin: rejected values, ID problems, link outcomes, the totals.
REJECT_KIND_LABELS = {"required_missing": "必填项为空", "bad_date": "日期无法识别", "early_date": "日期过早",
                      "future_date": "日期晚于比对日（未来日期）", "not_number": "不是数字", "negative": "金额或数量为负",
                      "over_ceiling": "金额超出合理上限", "not_year": "年度不对", "bad_code": "不是12位区划代码",
                      "unknown_value": "不在规定的取值范围内", "control_character": "含控制字符",
                      "too_long": "内容过长", "excel_error": "Excel 错误值（公式出错，如 #N/A）", "other": "其他无法识别的值"}
ID_KIND_LABELS = {"bad_check": "校验位不对", "bad_length": "位数不对", "bad_province": "省份代码不对",
                  "bad_birth_date": "出生日期不合法", "excel_mangled": "被 Excel 截断（只剩15位）",
                  "too_few_digits": "被 Excel 改成科学计数法", "missing": "为空", "old_15": "15位旧号码",
                  "full_width": "用了全角数字"}
QUALITY_TOTAL_LABELS = {"problem_rows": "问题记录", "rows": "在用记录", "delivered": "本次报送行数",
                        "rejected_rows": "有拒收值的行", "invalid_ids": "证件号码问题", "name_defects": "姓名问题",
                        "exact": "精确关联", "fuzzy": "模糊关联", "none": "未关联", "shared_ids": "一号多人",
                        "empty_required": "必填项为空"}


def department_title(code: str) -> str:
    return DEPARTMENT_LABELS.get(code, "其他部门")


def problem_reason(kind: str) -> str:
    """A problem row's reason (bidui.quality.bulletin.Problem.reason) in words."""
    group, _, k = kind.partition("_")
    if group == "reject":
        return "值无法入库：" + REJECT_KIND_LABELS.get(k, "其他无法识别的值")
    if group == "id":
        return "证件号码：" + ID_KIND_LABELS.get(k, "有误")
    if group == "name":
        return DEFECT_LABELS.get(k, "姓名不规范")
    return "其他"


def shown_value(value: object, kind: str) -> str:
    """A delivered value as a bulletin shows it: an ID number or a name masked, any other value
    masked where it could be personal (bidui.privacy.quote, without its quotes)."""
    import ast
    import re

    from bidui.privacy import quote

    if value is None or value == "":
        return "（空）"
    shown = str(ast.literal_eval(quote(value, kind)))
    return re.sub(r"… \(([\d,]+) characters\)$", r"…（共\1字）", shown)


# ---------------------------------------------------------------- verdicts that teach the linker (issue 18)
# A 不属实 verification may say the record is not the person's (states.NOT_SELF); each record↔person
# pair a verification decided is kept (bidui.clues.link_decisions) and listed for the task force.
NOT_SELF_CHOICE = "不属实的原因：记录不是本人（比对把别人的记录对到了本人身上）"
WORKBOOK_NOT_SELF = "不属实（不是本人）"  # the workbook's fourth outcome: 不属实 with 不是本人
DECISION_NOTES = {"cannot": "记录不是本人：以后的比对不再把这条记录关联到本人",
                  "must": "已确认是本人：以后的比对直接把这条记录关联到本人，不再打分"}
DECISION_REVOKED_NOTE = "原先的关联决定已撤销"
DECISION_AUDIT_LABELS = {"link_decision_made": "记录关联决定", "link_decision_revoked": "撤销关联决定"}


# The register's own datasets: a decision on one of their records is about the hukou person linked.
REGISTER_DATASETS = frozenset({"register_members", "register_households"})


def decision_sentence(kind: str, dataset: str | None, revoked_why: str | None = None) -> str:
    """One decision as the clue page says it: which record, what later nights do with it;
    `revoked_why`: the reason it was revoked (a changed finding, the task force's)."""
    source = dataset_title(dataset) or "比对数据"
    if revoked_why is not None:
        said = "不是本人" if kind == "cannot" else "确认是本人"
        return f"{source}的这条记录：原先“{said}”的决定已撤销（{revoked_why or '未说明理由'}），以后的比对照常判断是不是本人"
    if dataset in REGISTER_DATASETS:
        # The register's own record is the clue's subject: what was wrong (or confirmed) is the hukou
        # person it was linked to (a death found in hukou: "贫困户家庭成员的这条记录不是本人的" read as
        # if the member were not herself; a walk, 2026-12-06).
        if kind == "cannot":
            return (f"户籍中关联到的这个人不是{source}中的本人：以后的比对不再把两者关联，"
                    "这条线索不会因此再次下发")
        return f"已确认户籍中关联到的这个人就是{source}中的本人：以后的比对直接把两者关联，不再打分"
    if kind == "cannot":
        return f"{source}的这条记录不是本人的：以后的比对不再把它关联到本人，这条线索不会因此再次下发"
    return f"已确认{source}的这条记录是本人的：以后的比对直接把它关联到本人，不再打分"


def outcome_text(outcome: str | None, detail: str | None) -> str:
    """A signed outcome with its reason (不属实（不是本人）)."""
    return f"{outcome}（{detail}）" if outcome and detail else outcome or ""


# ---------------------------------------------------------------- load log (`bidui loads`)
# A file's load status as the data engineer reads it; a file applied with --force as the admin page says it.
LOAD_STATUS_LABELS = {**RUN_STATUS_LABELS, **FILE_STATUS_LABELS}
