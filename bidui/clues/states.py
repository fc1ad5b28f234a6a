"""The clue state machine: who may do what, from which state, with what signed payload.

dispatched → verified (a township's signed finding) → closed (a county reviewer), or
verified → returned (with a reason and a new due date) → verified again. While the county has not
acted, the township may amend its own finding (verified → verified). Anything else is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from bidui.text import typed

DISPATCHED, VERIFIED, RETURNED, CLOSED = "dispatched", "verified", "returned", "closed"
STATUSES = (DISPATCHED, VERIFIED, RETURNED, CLOSED)
STATUS_LABELS = {DISPATCHED: "待核实", VERIFIED: "已核实待审核", RETURNED: "已退回", CLOSED: "已销号"}
OPEN = (DISPATCHED, RETURNED, VERIFIED)

# Outcomes of shared/rules.md; what each needs besides the signature.
TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE = "属实·已整改", "属实·申请豁免", "不属实"
OUTCOMES = (TRUE_FIXED, TRUE_EXEMPT, NOT_TRUE)
TRUE_OUTCOMES = (TRUE_FIXED, TRUE_EXEMPT)
# Why a clue is 不属实, when the reason teaches the linker (issue 18): the record is someone
# else's, put on this person by the linker; the pair becomes a cannot-link (bidui.clues.link_decisions).
NOT_SELF = "不是本人"
NOT_TRUE_DETAILS = (NOT_SELF,)
# Actions taken (属实·已整改): the ones rules.md names, and what the exit-risk and
# missed-inclusion rules lead to.
ACTIONS = ("清退出列", "数据已更正", "标注返贫", "纳入监测", "已落实保障", "新识别纳入", "其他")

# How much a person may type: a 6,600-character return reason went through and squeezed every
# list it showed in (a county reviewer's walk). Room for a visit's account, not for a pasted file.
MAX_FINDING = 2000
MAX_REASON = 500
MAX_SIGNER = 64  # a name or a position (what the admin pages let an account's be)
# A return's new due date: not before today, and at most this far ahead: 2099-12-31 went through
# and took the clue off every overdue list for good.
MAX_RETURN_DAYS = 60

# action → (statuses it may start from, resulting status, roles that may do it)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "verify": ((DISPATCHED, RETURNED), VERIFIED, ("township",)),
    "amend": ((VERIFIED,), VERIFIED, ("township",)),
    "close": ((VERIFIED,), CLOSED, ("county",)),
    "return": ((VERIFIED,), RETURNED, ("county",)),
}


class TransitionError(ValueError):
    """An illegal transition or an invalid payload (the message says which, in Chinese)."""


@dataclass(frozen=True)
class Finding:
    """A township's signed verification."""

    outcome: str
    action: str | None
    finding: str
    verifier_name: str
    verifier_position: str
    verified_on: date
    detail: str | None = None  # 不属实's reason, when it is one of NOT_TRUE_DETAILS

    def problems(self, today: date, first_seen: date | None = None) -> list[str]:
        """What is wrong with the finding (in Chinese); `first_seen`: the day the clue was first
        found, before which nobody can have verified it (a date years back went through and made
        the on-time rate and the days to verify wrong)."""
        out = []
        if self.outcome not in OUTCOMES:
            out.append(f"核实结论须为 {' / '.join(OUTCOMES)} 之一")
        if self.outcome == TRUE_FIXED and self.action not in ACTIONS:
            out.append(f"属实·已整改须选择整改措施（{'、'.join(ACTIONS)}）")
        if self.outcome != TRUE_FIXED and self.action:
            out.append("只有属实·已整改填写整改措施")
        if self.detail and self.detail not in NOT_TRUE_DETAILS:
            out.append(f"不属实的原因只能选“{'、'.join(NOT_TRUE_DETAILS)}”")
        elif self.detail and self.outcome != NOT_TRUE:
            out.append(f"只有核实结论为不属实时，才能选“{self.detail}”")
        finding, name, position = typed(self.finding), typed(self.verifier_name), typed(self.verifier_position)
        if not finding:
            out.append({TRUE_FIXED: "须说明整改情况", TRUE_EXEMPT: "须说明豁免依据", NOT_TRUE: "须说明不属实的依据"}.get(
                self.outcome, "须填写核实情况说明"))
        elif len(finding) > MAX_FINDING:
            out.append(f"核实情况说明不能超过 {MAX_FINDING} 字（现有 {len(finding)} 字），请精简后再签字")
        if not name:
            out.append("须由核实人签字（姓名）")
        elif len(name) > MAX_SIGNER:
            out.append(f"核实人姓名不能超过 {MAX_SIGNER} 字")
        if not position:
            out.append("须填写核实人职务")
        elif len(position) > MAX_SIGNER:
            out.append(f"核实人职务不能超过 {MAX_SIGNER} 字")
        if self.verified_on > today:
            out.append("核实日期不能晚于今天")
        elif first_seen is not None and self.verified_on < first_seen:
            out.append(f"核实日期不能早于线索首次发现的日期（{first_seen.isoformat()}）")
        return out


def next_status(action: str, status: str, role: str) -> str:
    """The state after `action`, or TransitionError."""
    if action not in TRANSITIONS:
        raise TransitionError(f"未知操作：{action}")
    sources, target, roles = TRANSITIONS[action]
    if role not in roles:
        raise TransitionError("您的角色不能执行此操作")
    if status not in sources:
        raise TransitionError(f"线索当前状态为{STATUS_LABELS.get(status, status)}，不能执行此操作")
    return target


def return_problems(reason: str, due: date | None, today: date) -> list[str]:
    """What is wrong with a county's return (in Chinese): its reason and, when given, its new due date."""
    out = []
    reason = typed(reason)
    if not reason:
        out.append("退回须说明理由")
    elif len(reason) > MAX_REASON:
        out.append(f"退回理由不能超过 {MAX_REASON} 字（现有 {len(reason)} 字），请精简")
    if due is not None:
        latest = today + timedelta(days=MAX_RETURN_DAYS)
        if due < today:
            out.append("新的截止日期不能早于今天")
        elif due > latest:
            out.append(f"新的截止日期不能晚于 {latest.isoformat()}（退回后最多再给 {MAX_RETURN_DAYS} 天）")
    return out
