"""The nightly comparison as plain steps — ingest, link, rules, publish — and its run report.

Prefect (bidui.flows.prefect_flows) wraps these steps as tasks; everything here runs and is
tested without it. Each step is safe to repeat: ingest skips files it already holds, link and
rules replace the night's rows in one transaction, publish does nothing for a night it has
published. A night whose run completed is not run again (its stored report is returned), and a
run that stopped midway is completed by the next one: the ledger changes only in publish, in
one transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

from bidui import config
from bidui.home import Home

STEPS = ("ingest", "link", "rules", "publish")
RUNS_SCHEMA = """
CREATE TABLE IF NOT EXISTS nightly_runs (
    night DATE PRIMARY KEY, status VARCHAR NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP, report VARCHAR
)"""


@dataclass
class NightReport:
    night: str
    folder: str
    # running | completed | partial (a file was still being written: a later run of the night takes it)
    # | already
    status: str = "running"
    timings: dict[str, float] = field(default_factory=dict)
    files: list[dict] = field(default_factory=list)  # per file: dataset, status, rows read/loaded/rejected, message
    links: dict[str, int] = field(default_factory=dict)  # by method
    # the linking model: version, trained_at, trained (why it was trained tonight; None: kept)
    model: dict = field(default_factory=dict)
    quality: dict[str, dict[str, int]] = field(default_factory=dict)  # by dataset: defects counted (matching.quality)
    # 数据质量通报 by dataset (bidui.quality.bulletin): kept here so the web page reads it from the ledger
    bulletin: dict[str, dict] = field(default_factory=dict)
    # by dataset: rows new / changed / removed / unchanged against its previous snapshot, or carried
    # whole (bidui.connectors.changes)
    changes: dict[str, dict] = field(default_factory=dict)
    # records whose link changed since the night linked before, by dataset and why; identities that
    # split or merged (bidui.matching.relinks)
    relinks: dict = field(default_factory=dict)
    rules: dict[str, dict] = field(default_factory=dict)  # by rule: status, hits, message
    # what the rules looked at again (bidui.rules.changed): the night carried from and the households,
    # or why they were evaluated whole
    rules_scope: dict = field(default_factory=dict)
    clues: dict[str, dict[str, int]] = field(default_factory=dict)  # by rule: new, seen, gone, reraised, suppressed
    new_by_township: dict[str, int] = field(default_factory=dict)
    published_already: bool = False
    superseded: bool = False  # a later night was already published: this one changed nothing
    withheld: int = 0  # new hits not dispatched for a row kept without a rejected value
    township_names: dict[str, str] = field(default_factory=dict)  # of new_by_township's codes (from the ledger)
    delivered: dict[str, list[int]] = field(default_factory=dict)  # the night folder as the run began (`inbox.folder_state`)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> NightReport:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    def dataset_rows(self) -> list[dict]:
        """Each file as a person reads it: the dataset's name, the outcome and message in Chinese."""
        from bidui.clues.load_messages import file_message
        from bidui.clues.present import RUN_STATUS_LABELS, dataset_title

        return [{"文件": f["file"], "数据集": dataset_title(f["dataset"]), "结果": RUN_STATUS_LABELS.get(f["status"], "其他"),
                 "读取": f["rows_read"], "入库": f["rows_loaded"], "拒收": f["rows_rejected"],
                 "说明": file_message(f["file"], f["status"], f["message"])} for f in self.files]

    def clue_rows(self) -> list[dict]:
        """Each rule's clues tonight, by the rule's title (keys of PUBLISH_LABELS for the counts)."""
        from bidui.clues.present import RUN_STATUS_LABELS, rule_title

        return [{"规则": self.rules.get(rule, {}).get("title") or rule_title(rule), **{k: c.get(k, 0) for k in ("new", "seen", "gone", "reraised", "suppressed",
                                                                          "withheld")},
                 "状态": RUN_STATUS_LABELS.get(self.rules.get(rule, {}).get("status", ""), "")}
                for rule, c in sorted(self.clues.items())]

    def township_rows(self) -> list[tuple[str, int]]:
        """New clues by township, by its name."""
        return [(self.township_names.get(t, t), n) for t, n in sorted(self.new_by_township.items())]

    def skipped_rules(self) -> list[tuple[str, str, str]]:
        """Rules that did not run tonight: title, status and why, in Chinese."""
        from bidui.clues.present import RUN_STATUS_LABELS, rule_title

        return [(v.get("title") or rule_title(r), RUN_STATUS_LABELS.get(v["status"], "未运行"), v.get("message", ""))
                for r, v in sorted(self.rules.items()) if v["status"] != "ran"]

    def markdown(self) -> str:
        from bidui.clues.present import (
            PUBLISH_LABELS,
            RUN_STATUS_LABELS,
            STEP_LABELS,
            changes_text,
            defects_text,
            files_outcome_text,
            links_text,
            model_lines,
            relinks_text,
            rules_scope_text,
        )

        files = self.dataset_rows()
        held = [f for f, raw in zip(files, self.files, strict=True) if raw["status"] in ("held", "refused", "missing")]
        counts = ("new", "seen", "gone", "reraised", "suppressed", "withheld")
        lines = [f"# 比对运行报告 {self.night}", "",
                 f"数据目录：`{self.folder}`；状态：{RUN_STATUS_LABELS.get(self.status, self.status)}", "",
                 *([outcome, ""] if (outcome := files_outcome_text(self.files)) else []),
                 "## 步骤耗时", "", "| 步骤 | 秒 |", "|---|---|",
                 *[f"| {STEP_LABELS.get(k, k)} | {v:.1f} |" for k, v in self.timings.items()], "",
                 "## 数据集", "", "| 文件 | 数据集 | 结果 | 读取 | 入库 | 拒收 | 说明 |", "|---|---|---|---|---|---|---|",
                 *[f"| {f['文件']} | {f['数据集']} | {f['结果']} | {f['读取']:,} | {f['入库']:,} | {f['拒收']:,} | {f['说明']} |"
                   for f in files], ""]
        if held:
            lines += ["**未入库（暂缓、拒收或缺失）：** " + "；".join(
                f"{f['文件'] or f['数据集']}：{f['说明'] or f['结果']}" for f in held), ""]
        if self.changes:
            lines += ["## 数据变化（与上一版相比）", "", *[f"- {line}" for line in changes_text(self.changes, self.files)], ""]
        lines += ["## 关联", "", links_text(self.links), ""]
        if self.relinks:
            lines += ["与上一夜相比：", "", *[f"- {line}" for line in relinks_text(self.relinks)], ""]
        for line in model_lines(self.model):
            lines += [line, ""]
        if self.quality:
            lines += ["## 数据质量（姓名与证件号码）", "", *[f"- {line}" for line in defects_text(self.quality)], ""]
        if self.bulletin:
            from bidui.clues.present import department_title
            from bidui.quality.bulletin import by_department

            lines += ["## 数据质量通报（问题记录，按部门）", "", "；".join(
                f"{department_title(d)} {t['problem_rows']:,}" for d, t in by_department(self.bulletin).items()), ""]
        scope = rules_scope_text(self.rules_scope)
        lines += [
                  "## 线索", "", *([scope, ""] if scope else []),
                  "| 规则 | " + " | ".join(PUBLISH_LABELS[k] for k in counts) + " |",
                  "|---|---|---|---|---|---|---|",
                  *["| " + " | ".join([r["规则"], *(f"{r[k]:,}" for k in counts)]) + " |" for r in self.clue_rows()], "",
                  "## 新增线索（按乡镇）", "", "| 乡镇 | 新增 |", "|---|---|",
                  *[f"| {t} | {n:,} |" for t, n in self.township_rows()]]
        if self.superseded:
            lines += ["", "**已发布更晚一夜的比对结果：本夜的结果不再改变线索。**"]
        if self.status == "partial":
            lines += ["", "**有文件仍在写入，已暂缓；再次运行本夜时入库并重新发布。**"]
        skipped = self.skipped_rules()
        if skipped:
            lines += ["", "**未运行的规则：** " + "；".join(f"{t}（{why or status}）" for t, status, why in skipped)]
        return "\n".join(lines)


# ---------------------------------------------------------------- the steps


def ingest_step(home: Home, folder: Path, night: date, force: bool = False, carry: bool = True) -> list[dict]:
    """Ingest the night's folder (`carry`: rows delivered as before are not normalised again)."""
    from bidui.clues import approvals
    from bidui.connectors import warehouse
    from bidui.connectors.ingest import Limits, ingest_file, ingest_night

    limits = Limits.from_config(config.load(home.config))
    con = warehouse.connect(home.ensure().warehouse)
    try:
        outcomes = ingest_night(con, folder, night, force=force, limits=limits, carry=carry)
        # Held files an administrator approved on the admin page (the web app cannot write the
        # warehouse): stored now as forced, if they are still the bytes that were approved.
        approved = approvals.pending(home, night)
        taken = []
        for i, o in enumerate(outcomes):
            if o.status != "held" or o.incomplete or o.file not in approved:
                continue
            if approved[o.file] and approvals.file_sha(folder / o.file) != approved[o.file]:
                continue  # replaced since it was approved: held again, for a new decision
            if o.file not in approvals.pending(home, night):
                continue  # withdrawn on the admin page while the night was being read
            outcomes[i] = ingest_file(con, folder / o.file, night, force=True, limits=limits)
            if outcomes[i].status == "forced":
                taken.append(asdict(outcomes[i]))
    finally:
        con.close()
    approvals.applied(home, night, taken)
    return [asdict(o) for o in outcomes]


def link_step(home: Home, night: date, relink_all: bool = False) -> dict[str, dict]:
    """Link the night (`relink_all`: every record again, nothing carried from the night before)."""
    from bidui.connectors import warehouse
    from bidui.connectors.changes import night_changes
    from bidui.matching import decisions
    from bidui.matching.dedupe import register_duplicates, store_duplicates
    from bidui.matching.link import Thresholds, link_night
    from bidui.matching.quality import night_defects
    from bidui.matching.relinks import night_relinks
    from bidui.quality.bulletin import night_bulletin

    con = warehouse.connect(home.warehouse)
    try:
        decided = decisions.refresh(con, home)  # the townships' verdicts, from the ledger
        result = link_night(con, night, Thresholds.from_config(config.load(home.config)), carry=not relink_all)
        relinks = night_relinks(con, night)
        if relinks:
            relinks["carried"], relinks["held"] = result.carried, result.held
        store_duplicates(con, night, register_duplicates(con, night))
        defects = night_defects(con, night)
        bulletin = night_bulletin(con, night, defects, result.tallies or None)
        changes = night_changes(con, night)
    finally:
        con.close()
    model = {"version": result.model_version, "trained": result.trained,
             "trained_at": result.model_trained_at.isoformat() if result.model_trained_at else None,
             "trained_night": result.model_night.isoformat() if result.model_night else None}
    model["decisions"] = decided
    return {"links": result.counts, "quality": defects, "bulletin": bulletin, "model": model, "changes": changes,
            "relinks": relinks}


def rules_step(home: Home, night: date, whole: bool = False) -> dict[str, dict]:
    """Run the rules on the night: only where something changed since the night they last ran, when
    it can be (bidui.rules.changed); `whole`: on everything."""
    from bidui.connectors import warehouse
    from bidui.rules.engine import run_rules, store_hits

    con = warehouse.connect(home.warehouse)
    try:
        result = run_rules(con, night, config.load(home.config), home.root / "rules", incremental=not whole)
        failed = [o for o in result.outcomes if o.status == "failed"]
        if failed:  # a broken rule file must not silently drop its clues (nor mark them gone)
            raise RuntimeError("; ".join(o.message for o in failed))
        store_hits(con, night, result)
    finally:
        con.close()
    plan = result.plan
    # What the rules looked at again, for the run report (bidui.clues.present.rules_scope_text words it).
    scope = ({"before": plan.before.isoformat(), "households": plan.households, "of": plan.of,
              "hukou_households": plan.hukou_households} if plan is not None else {"whole": result.whole_because})
    return {"by_rule": {o.code: {"status": o.status, "hits": o.hits, "message": o.message, "title": o.title or None}
                        for o in result.outcomes},
            "scope": scope}


def publish_step(home: Home, night: date, again: bool = False) -> dict:
    from bidui.clues.publish import publish_night

    result = publish_night(home, night, again)
    return {"already": result.already, "by_rule": result.by_rule, "new_by_township": result.new_by_township,
            "superseded": result.superseded, "withheld": result.withheld,
            "township_names": division_names(home, list(result.new_by_township))}


def division_names(home: Home, codes: list[str]) -> dict[str, str]:
    """The names of these divisions, from the ledger (the report names townships, not codes)."""
    if not codes:
        return {}
    from sqlalchemy import select

    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import Division

    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.read() as s:
            return {c: n for c, n in s.execute(select(Division.code, Division.name).where(Division.code.in_(codes)))}
    finally:
        ledger.close()


# ---------------------------------------------------------------- the run


def stored_report(home: Home, night: date, status: str = "completed") -> NightReport | None:
    """The report of a completed run of the night (or of one with another status), if there was one."""
    if not home.warehouse.exists():
        return None
    from bidui.connectors import warehouse

    con = warehouse.connect(home.warehouse)
    try:
        con.execute(RUNS_SCHEMA)
        row = con.execute("SELECT report FROM nightly_runs WHERE night = ? AND status = ?", [night, status]).fetchone()
    finally:
        con.close()
    return NightReport.from_json(row[0]) if row else None


def record(home: Home, report: NightReport, started: datetime) -> None:
    """Keep the report in the warehouse (the run's record) and in the ledger (for the web app,
    which never opens DuckDB)."""
    from bidui.clues.db import ledger_url, open_ledger
    from bidui.clues.models import RunReport
    from bidui.connectors import warehouse

    finished = datetime.now()
    ledger = open_ledger(ledger_url(home.ledger))
    try:
        with ledger.write() as s:
            s.merge(RunReport(night=date.fromisoformat(report.night), finished_at=finished, report=report.to_json()))
    finally:
        ledger.close()
    con = warehouse.connect(home.warehouse)
    try:
        con.execute(RUNS_SCHEMA)
        con.execute("INSERT OR REPLACE INTO nightly_runs VALUES (?, ?, ?, ?, ?)",
                    [date.fromisoformat(report.night), report.status, started, finished, report.to_json()])
    finally:
        con.close()


def apply_step(report: NightReport, step: str, value: object) -> None:
    """Put a step's result into the report."""
    if step == "ingest":
        report.files = value  # type: ignore[assignment]
    elif step == "link":
        linked: dict = value  # type: ignore[assignment]
        report.links, report.quality = linked["links"], linked["quality"]
        report.model = linked.get("model", {})
        report.bulletin = linked.get("bulletin", {})
        report.changes = linked.get("changes", {})
        report.relinks = linked.get("relinks", {})
    elif step == "rules":
        ran: dict = value  # type: ignore[assignment]
        # (a step's result of an earlier version, by rule alone, has no scope)
        report.rules, report.rules_scope = (ran["by_rule"], ran["scope"]) if "by_rule" in ran else (ran, {})
    elif step == "publish":
        v: dict = value  # type: ignore[assignment]
        report.published_already = v["already"]
        report.clues = v["by_rule"]
        report.new_by_township = v["new_by_township"]
        report.superseded = v.get("superseded", False)
        report.withheld = v.get("withheld", 0)
        report.township_names = v.get("township_names", {})


def plain_steps(home: Home, folder: Path, night: date, again: bool = False,
                force: bool = False, from_scratch: bool = False) -> dict[str, Callable[[], object]]:
    return {"ingest": lambda: ingest_step(home, folder, night, force, carry=not from_scratch),
            "link": lambda: link_step(home, night, from_scratch),
            "rules": lambda: rules_step(home, night, from_scratch), "publish": lambda: publish_step(home, night, again)}


def resuming_partial(home: Home, night: date) -> bool:
    """Did an earlier run of the night finish with a file still being written, or has an
    administrator since approved a held file of it? Then this run publishes the night again, with
    that file taken."""
    return stored_report(home, night, "partial") is not None or approved_since(home, night)


def approved_since(home: Home, night: date) -> bool:
    """A held file of the night approved on the admin page and not yet applied: the night is
    run again (its completed report notwithstanding)."""
    from bidui.clues import approvals

    return bool(approvals.pending(home, night))


def resent(done: NightReport | None, folder: Path) -> bool:
    """Does the night's folder hold other files than when its completed run (`done`) began — a file
    come, gone, renamed, written again or with a checksum beside it? A department resending the file
    the night held or refused (`请部门重新报送`): the night is run again, not forced — a file held for
    what it holds stays held, one whose new bytes pass is taken. The folder's state is compared,
    not clocks (a copy may keep its old time; a run's time zone is not the checker's), and each run
    records its own, so one rerun answers each change."""
    from bidui.connectors.inbox import folder_state

    return bool(done is not None and done.delivered and folder.is_dir() and folder_state(folder) != done.delivered)


def run_night(home: Home, folder: Path, night: date | None = None,
              on_step: Callable[[str, str], None] | None = None,
              steps: Callable[[bool], dict[str, Callable[[], object]]] | None = None, force: bool = False,
              from_scratch: bool = False) -> NightReport:
    """Ingest, link, run the rules and publish one night; `on_step(step, "start"|"done")` is called
    around each step (progress bars, logs, tests); `steps` makes how each step runs (the Prefect
    flow passes its tasks), given whether the night publishes again (a night run before: forced,
    from scratch, resent, or resuming a partial run). A night already completed is returned as it
    was, unless `force`: then held files are applied (`ingest --force`) and the night is run and
    published again. `from_scratch` normalises every delivered row and links every record again,
    carrying nothing from the night before (`bidui run --from-scratch`); on a night already run, it
    links and publishes it again (the files that night stored stay as stored)."""
    from bidui.connectors.inbox import folder_state
    from bidui.connectors.ingest import night_of

    night = night or night_of(folder)
    # From scratch on a night already run: run it again (its links and clues are what is in doubt).
    # A night whose folder got a file since its run (a department resending one that was held) runs again.
    done = None if force or from_scratch else stored_report(home, night)
    again = done is not None and resent(done, folder)
    if done is not None and not again and not approved_since(home, night):
        done.status = "already"
        return done
    report, started = NightReport(night.isoformat(), str(folder)), datetime.now()
    if folder.is_dir():
        report.delivered = folder_state(folder)
    again = force or from_scratch or again or resuming_partial(home, night)
    steps = steps(again) if steps else plain_steps(home, folder, night, again, force, from_scratch)
    for step in STEPS:
        if on_step:
            on_step(step, "start")
        t = time.perf_counter()
        apply_step(report, step, steps[step]())
        report.timings[step] = round(time.perf_counter() - t, 2)
        if on_step:
            on_step(step, "done")
    report.status = "partial" if any(f.get("incomplete") for f in report.files) else "completed"
    record(home, report, started)
    return report


def unprocessed_nights(home: Home, inbox: Path) -> list[Path]:
    """Night folders (inbox/YYYY-MM-DD) without a completed run, oldest first (a partial run, one
    that held a file still being written, is not completed), or with a file resent since it
    (`resent`)."""
    out = []
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir()):
        try:
            night = date.fromisoformat(folder.name)
        except ValueError:
            continue
        done = stored_report(home, night)
        if done is None or approved_since(home, night) or resent(done, folder):
            out.append(folder)
    return out
