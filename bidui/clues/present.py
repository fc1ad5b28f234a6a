"""How a clue's evidence and link explanation read to a person (workbook and web pages)."""

from __future__ import annotations

import json

from bidui.clues.publish import is_delivery_detail

LINK_LABELS = {"exact": "证件号码精确匹配", "former_name": "证件号码精确匹配（姓名为户籍更正前的原名）",
               "household": "同户成员的证件号码，姓名与本人一致（如子女记录填了父母的证件号）",
               "fuzzy": "模糊匹配", "review": "模糊匹配（身份待确认）", "none": "未匹配"}
# Why a link needed no score, said in words (the explanation of an exact, former-name or household link).
RULE_LABELS = {"shared_id": "该证件号码在户籍中由{holders}人共用（一号多人），按姓名确定为其中一人；核实时请当面确认是本人",
               "former_name": "户籍已更正姓名，记录仍用原名", "household": "证件号码属于同一户籍户的另一成员，按姓名确定本人"}
COMPARISON_LABELS = {"id": "证件号码", "name": "姓名", "birth": "出生日期", "sex": "性别", "village": "村",
                     "head": "户主", "name frequency": "姓名常见度"}
LEVEL_LABELS = {
    "valid and another person's": "他人的有效号码", "different": "不同", "two digits apart": "相差两位",
    "valid, held by nobody, one or two digits apart": "有效但户籍中无人使用，相差一至两位",
    "one of the 15 digits Excel kept apart": "被 Excel 截断后保留的15位中相差一位",
    "same pinyin (homophone) or equal but for unknown characters": "同音或仅有无法录入的字不同",
    "one digit or a transposition apart": "相差一位或相邻颠倒", "first 15 digits equal": "前15位相同", "equal": "相同",
    "one character apart": "相差一字", "same pinyin (homophone)": "同音", "same writing": "相同",
    "one digit or month/day apart": "相差一位或月日颠倒", "same township": "同乡镇", "not the household head": "非户主",
    "the household head": "是户主", "not observed": "无此项", "adjustment": "调整",
}


# The data-quality counts of a night (bidui.matching.quality), as the run report words them.
DEFECT_LABELS = {"placeholder": "姓名有无法录入的字（□?*〓）", "annotation": "姓名带括注", "pinyin": "姓名夹拼音",
                 "invisible": "姓名含不可见字符", "shared_ids": "一号多人", "second_numbers": "一人多号"}


def defects_text(quality: dict[str, dict[str, int]]) -> list[str]:
    """Each dataset's counts as one line: `户籍人口：一号多人（号码数）206，…`."""
    from bidui.datasets import BY_CODE

    return [f"{BY_CODE[d].title if d in BY_CODE else d}：" + "，".join(f"{DEFECT_LABELS.get(k, k)} {n:,}" for k, n in found.items())
            for d, found in sorted(quality.items())]


ID_STATUS_LABELS = {"valid": "有效", "missing": "缺失", "bad_length": "位数不对", "bad_province": "省份代码不对",
                    "bad_birth_date": "出生日期不对", "bad_check": "校验位不对", "excel_mangled": "被 Excel 截断",
                    "too_few_digits": "科学计数法只剩几位，无法使用"}
EXTRA_LABELS = {"age": "年龄", "other_households": "其他户", "household_total": "全户自付合计", "status": "状态",
                "probable_id": "可能的正确证件号"}


def _field_labels() -> dict[str, dict[str, str]]:
    """Each dataset's canonical columns with their Chinese headers (the extract spec), and under
    "" the first header seen for each name: to show a record as it was delivered."""
    from bidui.datasets import DATASETS

    out: dict[str, dict[str, str]] = {"": {}}
    for ds in DATASETS:
        out[ds.code] = {col.name: col.header for col in ds.columns}
        for col in ds.columns:
            out[""].setdefault(col.name, col.header)
    return out


FIELD_LABELS = _field_labels()


def evidence_text(record: str | None, dataset: str | None = None) -> str:
    """The department record as `字段：值` pairs in the extract's Chinese headers (delivery details
    left out; an ID's validity said in words)."""
    if not record or record == "null":
        return ""
    try:
        value = json.loads(record)
    except json.JSONDecodeError:
        return record
    if not isinstance(value, dict):
        return _fmt(value)
    labels = FIELD_LABELS[""] | FIELD_LABELS.get(dataset or "", {})
    parts = []
    for k, v in value.items():
        if is_delivery_detail(k) or v in (None, ""):
            continue
        if k.endswith("_status") and k != "status":
            if v == "valid":
                continue
            parts.append(f"{labels.get(k.removesuffix('_status'), k)}：{ID_STATUS_LABELS.get(v, v)}")
            continue
        parts.append(f"{labels.get(k) or EXTRA_LABELS.get(k, k)}：{_fmt(v)}")
    return "；".join(parts)


def _fmt(v: object) -> str:
    if isinstance(v, list):
        return "、".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return "，".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def explanation_parts(explanation: str | None) -> list[dict]:
    """Each comparison of a fuzzy link: label, level label, weight (a waterfall)."""
    if not explanation:
        return []
    try:
        parts = json.loads(explanation).get("parts", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    return [{"comparison": COMPARISON_LABELS.get(p["comparison"], p["comparison"]),
             "level": LEVEL_LABELS.get(p["level"], p["level"]), "weight": p["weight"]} for p in parts]


def rule_text(explanation: str | None) -> str:
    """The reason of a link that needed no score (empty for a scored one)."""
    try:
        value = json.loads(explanation or "")
    except json.JSONDecodeError:
        return ""
    if not isinstance(value, dict) or value.get("rule") not in RULE_LABELS:
        return ""
    return RULE_LABELS[value["rule"]].format(holders=value.get("holders", 2))


def link_text(method: str | None, score: float | None, explanation: str | None) -> str:
    label = LINK_LABELS.get(method or "none", method or "")
    if method == "exact" and rule_text(explanation):
        return f"{label}：{rule_text(explanation)}"
    if method in ("fuzzy", "review"):
        why = "；".join(f"{p['comparison']}{p['level']}({p['weight']:+.1f})" for p in explanation_parts(explanation))
        return f"{label}，概率 {score:.4f}" + (f"：{why}" if why else "") if score is not None else label
    return label


def clue_view(clue, snapshots) -> dict:
    """Everything `_evidence.html` shows of a clue: its evidence per night, the link in words and
    its weights. `snapshots` are the clue's EvidenceSnapshot rows, newest first."""
    return {"evidence": [(e.night, evidence_text(e.record, clue.evidence_dataset)) for e in snapshots],
            "link": link_text(clue.link_method, clue.link_score, clue.link_explanation),
            "waterfall": explanation_parts(clue.link_explanation)}
