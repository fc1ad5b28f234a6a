"""迎检抽样: the sample a third-party evaluation draws from a county, drawn before it comes.

As the evaluators do (seed 002): 3 townships of the county (all when fewer), 3 villages of each —
one good, one middling, one poor by the measure below — and at least N households of each village
(all when fewer), at random from every register household of the village, clue or no clue. The
draw is reproducible: the same county, seed and size give the same sample. For each household:
its members, every clue with its state and verification, and what is still open.

Read from the ledger only (its copy of the register, bidui.clues.publish.register_rows): the web
page and the command draw the same sample."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from bidui import scope
from bidui.clues.models import Clue, Division, EvidenceSnapshot, RegisterHousehold, RegisterMember
from bidui.clues.present import clue_evidence_text, signer
from bidui.clues.states import CLOSED, OPEN, STATUS_LABELS, VERIFIED

TOWNSHIPS = 3
VILLAGES = 3
HOUSEHOLDS = 43  # at least this many per village, as the evaluation's sample asks
# The stated measure, as the page and the file say it.
MEASURE = ("好、中、差村的评判：按“户均未办结线索”（未办结线索条数 ÷ 建档立卡户数）由少到多排，"
           "相同时按“销号率”（已销号 ÷ 全部线索）由高到低；排在最前的为好，居中的为中，最后的为差。")
GRADES = {3: ("好", "中", "差"), 2: ("好", "差"), 1: ("仅此一村",)}


@dataclass
class VillageScore:
    code: str
    households: int
    clues: int
    open: int
    closed: int
    # Of `clues`, those on households not on the register (漏评: a hukou household): counted with
    # the village, never among the households drawn — said beside the counts, else they did not
    # add up to what the sample shows (a browser walk, 2026-12-06).
    off_register: int = 0

    @property
    def open_per_household(self) -> float:
        return self.open / self.households if self.households else 0.0

    @property
    def closure_rate(self) -> float | None:
        return self.closed / self.clues if self.clues else None


@dataclass
class ClueLine:
    """One clue as the sample shows it."""

    clue: Clue
    member: str  # the member it is about, by name
    evidence: str
    open: bool
    overdue: bool

    @property
    def state(self) -> str:
        return STATUS_LABELS.get(self.clue.status, "")

    @property
    def signature(self) -> str:
        c = self.clue
        if not c.verifier_name:
            return ""
        return f"{signer(c.verifier_name, c.verifier_position)} {c.verified_on or ''}".strip()


@dataclass
class SampledHousehold:
    household: RegisterHousehold
    members: list[RegisterMember]
    clues: list[ClueLine]

    @property
    def open(self) -> list[ClueLine]:
        return [c for c in self.clues if c.open]


@dataclass
class SampledVillage:
    score: VillageScore
    grade: str
    households: list[SampledHousehold]


@dataclass
class SampledTownship:
    code: str
    villages: list[SampledVillage]


@dataclass
class Sample:
    county: str
    seed: int
    per_village: int
    drawn_on: date
    night: date | None  # the register's night the draw is from
    townships: list[SampledTownship] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)

    @property
    def households(self) -> list[tuple[SampledTownship, SampledVillage, SampledHousehold]]:
        return [(t, v, h) for t in self.townships for v in t.villages for h in v.households]


def counties(session: Session, under: str) -> list[tuple[str, str]]:
    """The counties under a division that have register households: (code, name)."""
    codes = session.scalars(select(RegisterHousehold.county_code).where(scope.under(RegisterHousehold.county_code, under))
                            .distinct().order_by(RegisterHousehold.county_code)).all()
    names = _names(session, codes)
    return [(c, names.get(c, "")) for c in codes]


def _names(session: Session, codes) -> dict[str, str]:
    return {d.code: d.name for d in session.scalars(select(Division).where(Division.code.in_(list(codes))))}


def village_scores(session: Session, township: str) -> list[VillageScore]:
    """Each village of a township that has register households, with its clue counts."""
    households = dict(session.execute(select(RegisterHousehold.village_code, func.count())
                                      .where(RegisterHousehold.township_code == township)
                                      .group_by(RegisterHousehold.village_code)).all())
    counts = {v: (n, o, c, off) for v, n, o, c, off in session.execute(
        select(Clue.village_code, func.count(), func.sum(case((Clue.status.in_(OPEN), 1), else_=0)),
               func.sum(case((Clue.status == CLOSED, 1), else_=0)),
               func.sum(case((func.coalesce(Clue.household_code, "") == "", 1), else_=0)))
        .where(Clue.village_code.in_(list(households))).group_by(Clue.village_code))}
    return [VillageScore(v, n, *(int(x or 0) for x in counts.get(v, (0, 0, 0, 0))))
            for v, n in sorted(households.items())]


def choose_villages(scores: list[VillageScore], rng: random.Random) -> list[tuple[str, VillageScore]]:
    """Good, middling and poor by the stated measure (ties in a seeded order); all when fewer than three."""
    tiebreak = {s.code: rng.random() for s in scores}  # drawn in code order: reproducible
    ranked = sorted(scores, key=lambda s: (s.open_per_household, -(s.closure_rate or 0.0), tiebreak[s.code]))
    if len(ranked) > VILLAGES:
        ranked = [ranked[0], ranked[len(ranked) // 2], ranked[-1]]
    return list(zip(GRADES.get(len(ranked), ()), ranked, strict=True))


def _clue_lines(session: Session, codes: list[str], members: dict[str, list[RegisterMember]],
                today: date, names: dict[str, str]) -> dict[str, list[ClueLine]]:
    clues = session.scalars(select(Clue).where(Clue.household_code.in_(codes))
                            .order_by(Clue.household_code, Clue.first_seen, Clue.id)).all()
    latest: dict[int, EvidenceSnapshot] = {}
    for e in session.scalars(select(EvidenceSnapshot).where(EvidenceSnapshot.clue_id.in_([c.id for c in clues]))
                             .order_by(EvidenceSnapshot.night, EvidenceSnapshot.id)):
        latest[e.clue_id] = e  # the last one read is the newest
    out: dict[str, list[ClueLine]] = {}
    for c in clues:
        by_key = {m.person_key: m.name for m in members.get(c.household_code, [])}
        snap = latest.get(c.id)
        # Overdue is the township's lateness: a verified clue waits on the county, not on it.
        out.setdefault(c.household_code, []).append(ClueLine(
            c, by_key.get(c.subject_key) or c.subject_name or "",
            clue_evidence_text(c, snap.record if snap else None, snap.night if snap else None, names),
            c.status in OPEN, c.status in OPEN and c.status != VERIFIED and c.due_date < today))
    return out


def draw(session: Session, county: str, seed: int = 1, per_village: int = HOUSEHOLDS,
         today: date | None = None) -> Sample:
    """The sample of a county (a 12-digit county code) with a seed."""
    today = today or date.today()
    per_village = max(1, per_village)
    # String seeds: the same draw on every machine and Python. One generator per stage and place,
    # so the villages chosen do not depend on how many households are drawn, nor one village's on another's.
    def rng(*where: str) -> random.Random:
        return random.Random("/".join((county, str(seed), *where)))

    night = session.scalar(select(func.max(RegisterHousehold.night)))
    sample = Sample(county, seed, per_village, today, night)
    towns = session.scalars(select(RegisterHousehold.township_code).where(RegisterHousehold.county_code == county)
                            .distinct().order_by(RegisterHousehold.township_code)).all()
    chosen = sorted(rng("townships").sample(list(towns), min(TOWNSHIPS, len(towns))))
    picks: list[tuple[str, str, VillageScore, list[str]]] = []
    for town in chosen:
        for grade, score in choose_villages(village_scores(session, town), rng("villages", town)):
            codes = session.scalars(select(RegisterHousehold.household_code)
                                    .where(RegisterHousehold.village_code == score.code)
                                    .order_by(RegisterHousehold.household_code)).all()
            picks.append((town, grade, score, sorted(rng("households", score.code).sample(
                list(codes), min(per_village, len(codes))))))
    every = [c for *_, codes in picks for c in codes]
    households = {h.household_code: h for h in session.scalars(
        select(RegisterHousehold).where(RegisterHousehold.household_code.in_(every)))}
    members: dict[str, list[RegisterMember]] = {}
    for m in session.scalars(select(RegisterMember).where(RegisterMember.household_code.in_(every))
                             .order_by(RegisterMember.household_code, RegisterMember.seq)):
        members.setdefault(m.household_code, []).append(m)
    for rows in members.values():
        rows.sort(key=lambda m: (m.relation != "户主", m.seq))  # the head first, as the register reads
    # Every division's name: a clue's evidence may name a household in another county (一人多户).
    sample.names = {code: name for code, name in session.execute(select(Division.code, Division.name))}
    lines = _clue_lines(session, every, members, today, sample.names)
    by_town: dict[str, SampledTownship] = {}
    for town, grade, score, codes in picks:
        t = by_town.setdefault(town, SampledTownship(town, []))
        t.villages.append(SampledVillage(score, grade, [
            SampledHousehold(households[c], members.get(c, []), lines.get(c, [])) for c in codes]))
    sample.townships = [by_town[t] for t in chosen if t in by_town]
    return sample


@dataclass(frozen=True)
class Share:
    """A proportion a workbook writes as a number formatted as a percentage (not the text "60%")."""

    value: float


def rate(value: float | None) -> str:
    return "无线索" if value is None else f"{value:.0%}"


def summary(sample: Sample) -> dict[str, int]:
    rows = sample.households
    return {"townships": len(sample.townships), "villages": sum(len(t.villages) for t in sample.townships),
            "households": len(rows), "members": sum(len(h.members) for *_, h in rows),
            "clues": sum(len(h.clues) for *_, h in rows), "open": sum(len(h.open) for *_, h in rows),
            "overdue": sum(sum(c.overdue for c in h.clues) for *_, h in rows)}


def title(sample: Sample) -> str:
    return f"{sample.names.get(sample.county, '')}迎检抽样（随机种子 {sample.seed}）"


def filename(sample: Sample) -> str:
    return f"{sample.names.get(sample.county, '本县')}迎检抽样_种子{sample.seed}_{sample.drawn_on}.xlsx"


def write_xlsx(sample: Sample, out: Path) -> None:
    """The sample as a workbook: what was drawn and why, the households with their members, every
    clue with its verification, and what is still open. Every text cell neutralised (formulas)."""
    import xlsxwriter

    from bidui.text import XLSX_OPTIONS, neutralise_formula

    names = sample.names
    wb = xlsxwriter.Workbook(str(out), XLSX_OPTIONS)
    bold = wb.add_format({"bold": True})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})

    pct = wb.add_format({"num_format": "0%", "valign": "top"})

    def sheet(name: str, header: list[str], rows: list[list[object]], widths: list[int]) -> None:
        ws = wb.add_worksheet(name)
        ws.write_string(0, 0, neutralise_formula(title(sample)), bold)
        ws.write_row(1, 0, header, bold)
        for r, row in enumerate(rows, start=2):
            for c, v in enumerate(row):
                if v is None or v == "":
                    continue
                if isinstance(v, bool):
                    ws.write_string(r, c, "是" if v else "否")
                elif isinstance(v, Share):
                    ws.write_number(r, c, v.value, pct)  # a number Excel sorts and sums, shown as 60%
                elif isinstance(v, int | float):
                    ws.write_number(r, c, v)
                else:  # names, findings and evidence come from people and departments
                    ws.write_string(r, c, neutralise_formula(str(v)), wrap)
        for c, w in enumerate(widths):
            ws.set_column(c, c, w)
        ws.freeze_panes(2, 0)

    s = summary(sample)
    about = [["县", names.get(sample.county, "")], ["随机种子", sample.seed], ["每村抽取户数", f"至少 {sample.per_village} 户（不足时全部）"],
             ["抽样日期", str(sample.drawn_on)], ["建档立卡数据日期", str(sample.night or "尚无")],
             ["抽样办法", f"随机抽取 {TOWNSHIPS} 个乡镇（不足时全部），每个乡镇好、中、差村各一个，每村随机抽取农户；"
                      "同一县、同一随机种子、同一户数，抽样结果相同。"],
             ["评判标准", MEASURE],
             ["抽中", f"{s['townships']} 个乡镇、{s['villages']} 个村、{s['households']} 户、{s['members']} 人"],
             ["线索", f"共 {s['clues']} 条，未办结 {s['open']} 条，其中逾期未核实 {s['overdue']} 条"]]
    sheet("说明", ["项目", "内容"], about, [16, 100])
    sheet("抽中的村", ["乡镇", "村", "评判", "建档立卡户数", "线索条数", "其中未建档户（疑似漏评）", "未办结", "已销号", "户均未办结",
                     "销号率", "抽取户数"],
          [[names.get(t.code, ""), names.get(v.score.code, ""), v.grade, v.score.households, v.score.clues,
            v.score.off_register, v.score.open, v.score.closed, round(v.score.open_per_household, 2),
            Share(v.score.closure_rate) if v.score.closure_rate is not None else rate(None), len(v.households)]
           for t in sample.townships for v in t.villages], [14, 14, 8, 12, 10, 14, 10, 10, 10, 10, 10])
    sheet("样本户及成员", ["乡镇", "村", "评判", "户编号", "户主", "脱贫状态", "识别年度", "成员", "与户主关系", "性别", "出生年份",
                     "线索条数", "未办结"],
          [[names.get(t.code, ""), names.get(v.score.code, ""), v.grade, h.household.household_code, h.household.head_name,
            h.household.status, h.household.registered_year, m.name, m.relation, m.sex, m.birth_year,
            len(h.clues) if i == 0 else None, len(h.open) if i == 0 else None]
           for t, v, h in sample.households for i, m in enumerate(h.members)]
          + [[names.get(t.code, ""), names.get(v.score.code, ""), v.grade, h.household.household_code,
              h.household.head_name, h.household.status, h.household.registered_year, "（名单中无成员）", None, None, None,
              len(h.clues), len(h.open)] for t, v, h in sample.households if not h.members],
          [12, 12, 6, 20, 10, 10, 10, 10, 10, 6, 10, 10, 8])
    clue_header = ["乡镇", "村", "户编号", "户主", "对象", "线索编号", "疑点", "状态", "首次发现", "截止日期", "是否逾期",
                   "证据", "核实结论", "整改措施", "核实情况", "核实人签字", "退回理由", "销号日期"]

    def clue_row(t: SampledTownship, v: SampledVillage, h: SampledHousehold, c: ClueLine) -> list[object]:
        k = c.clue
        return [names.get(t.code, ""), names.get(v.score.code, ""), h.household.household_code, h.household.head_name,
                c.member, k.id, k.rule_title, c.state, str(k.first_seen), str(k.due_date), "逾期" if c.overdue else "",
                c.evidence, k.outcome or "尚未核实", k.action, k.finding, c.signature, k.return_reason,
                str(k.closed_on or "")]

    widths = [12, 12, 20, 10, 10, 10, 24, 12, 12, 12, 8, 50, 14, 12, 40, 24, 30, 12]
    sheet("线索及核实", clue_header, [clue_row(t, v, h, c) for t, v, h in sample.households for c in h.clues], widths)
    sheet("尚未办结", clue_header, [clue_row(t, v, h, c) for t, v, h in sample.households for c in h.open], widths)
    wb.close()
