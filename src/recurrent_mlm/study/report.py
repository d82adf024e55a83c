"""Reports from per-claim `summary.json` files: each claim's `report.md` and the generated parts of RESULTS.md.

`docs/RESULTS.md` keeps hand-written text (commands, machine, what differs from each paper) outside markers;
between them everything is generated from the summaries, so a docs test can check it with
`check_results_doc`:

    <!-- results:verdicts:start --> ... <!-- results:verdicts:end -->      the verdict table, first
    <!-- results:claim:L1:start --> ... <!-- results:claim:L1:end -->      one block per claim

A claim that did not reproduce gets the same block as one that did. Text outside the markers is kept byte
for byte. The summary schema is `SUMMARY_SCHEMA`; build one with `make_summary`.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..files import atomic_write_json, atomic_write_text
from .decision import DECISION_SCHEMA, VERDICTS, Plan, fmt, fmt_p

SUMMARY_SCHEMA = "recurrent-mlm.study.summary/1"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
VERDICTS_START, VERDICTS_END = "<!-- results:verdicts:start -->", "<!-- results:verdicts:end -->"
_REQUIRED = (
    "schema",
    "claim_id",
    "paper",
    "statement",
    "paper_numbers",
    "protocol",
    "metric",
    "decision_rule",
    "plan_hash",
    "decision",
)
_CLAIM_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_RUN_COUNTS = ("total", "diverged", "collapsed", "trivial")


def claim_markers(claim_id: str) -> tuple[str, str]:
    return f"<!-- results:claim:{claim_id}:start -->", f"<!-- results:claim:{claim_id}:end -->"


# ---------------------------------------------------------------------------------------------------------
# summary.json


def make_summary(
    plan: Plan,
    decision: Mapping,
    *,
    tables: Sequence[Mapping] = (),
    plots: Sequence[Mapping] = (),
    runs: Mapping | None = None,
    run_info: Mapping | None = None,
    differences: str = "",
    null_meaning: str = "",
    notes: Sequence[str] = (),
) -> dict:
    """A claim's summary: the plan's words, the decision record (`decide` / `not_tested`), and what to show.

    tables: [{"title", "columns": [...], "rows": [[...], ...], "note"?}]; cells are strings or numbers.
    plots: [{"path": file relative to the claim folder, "caption"}]. runs: counts, e.g. {"total": 18,
    "diverged": 2, "collapsed": 1, "trivial": 2}. run_info: {"tier", "command", "machine", "wall_seconds",
    "date"}. differences: what differs from the paper; null_meaning: what a null result here does and does
    not mean.
    """
    summary = {
        "schema": SUMMARY_SCHEMA,
        "claim_id": plan.claim_id,
        "paper": plan.paper,
        "statement": plan.statement,
        "paper_numbers": plan.paper_numbers,
        "protocol": plan.protocol,
        "metric": plan.metric,
        "decision_rule": plan.decision_rule,
        "plan_hash": plan.hash(),
        "decision": dict(decision),
        "tables": [dict(t) for t in tables],
        "plots": [dict(p) for p in plots],
        "runs": dict(runs) if runs else None,
        "run_info": dict(run_info) if run_info else None,
        "differences": differences,
        "null_meaning": null_meaning,
        "notes": list(notes),
    }
    return validate_summary(summary)


def validate_summary(summary: Mapping, source: str = "summary") -> dict:
    """Check a summary's shape; raises ValueError naming the field and the fix. Returns it as a dict."""
    if not isinstance(summary, Mapping):
        raise ValueError(f"{source} must be a JSON object, got {type(summary).__name__}.")
    missing = [k for k in _REQUIRED if k not in summary]
    if missing:
        raise ValueError(f"{source} lacks {missing}; build it with recurrent_mlm.study.report.make_summary.")
    if summary["schema"] != SUMMARY_SCHEMA:
        raise ValueError(f"{source} has schema {summary['schema']!r}; this code reads {SUMMARY_SCHEMA!r}.")
    if not _CLAIM_ID.match(str(summary["claim_id"])):
        raise ValueError(
            f"{source}: claim_id {summary['claim_id']!r} must be letters, digits, '_', '.', '-'."
        )
    decision = summary["decision"]
    if not isinstance(decision, Mapping) or decision.get("schema") != DECISION_SCHEMA:
        raise ValueError(f"{source}: decision must be the record of decision.decide() or not_tested().")
    if decision.get("verdict") not in VERDICTS:
        raise ValueError(f"{source}: verdict {decision.get('verdict')!r} is not one of {VERDICTS}.")
    if decision.get("claim_id") != summary["claim_id"]:
        raise ValueError(
            f"{source}: the decision is for claim {decision.get('claim_id')!r}, not {summary['claim_id']!r}."
        )
    for i, table in enumerate(summary.get("tables") or []):
        if not {"title", "columns", "rows"} <= set(table):
            raise ValueError(f"{source}: tables[{i}] needs title, columns and rows.")
        width = len(table["columns"])
        if any(len(row) != width for row in table["rows"]):
            raise ValueError(
                f"{source}: tables[{i}] ({table['title']!r}) has rows that are not {width} cells wide."
            )
    for i, plot in enumerate(summary.get("plots") or []):
        if "path" not in plot or Path(plot["path"]).is_absolute():
            raise ValueError(f"{source}: plots[{i}] needs a path relative to the claim folder.")
    return dict(summary)


def write_summary(claim_dir: str | Path, summary: Mapping) -> Path:
    path = Path(claim_dir) / SUMMARY_FILE
    atomic_write_json(path, validate_summary(summary, str(path)))
    return path


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read summary {path}: {err}") from err
    return validate_summary(data, str(path))


def _resolve(summaries: Sequence[Mapping | str | os.PathLike]) -> list[tuple[dict, Path | None]]:
    """(summary, its claim folder or None) for each summary given as a dict, a summary.json or a claim folder."""
    out = []
    for item in summaries:
        if isinstance(item, Mapping):
            out.append((validate_summary(item), None))
        else:
            path = Path(item)
            out.append((load_summary(path), path if path.is_dir() else path.parent))
    ids = [s["claim_id"] for s, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two summaries for the same claim: {ids}.")
    return out


# ---------------------------------------------------------------------------------------------------------
# Markdown


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _effect_text(row: Mapping) -> str:
    if row.get("verdict") == "not tested" or "estimate" not in row:
        return "n/a"
    label = "rho " if row.get("effect_label") == "rho" else ""
    return f"{label}{fmt(row['estimate'])} [{fmt(row['low'])}, {fmt(row['high'])}]"


def _primary(decision: Mapping) -> Mapping:
    rows = decision.get("comparisons") or []
    for row in rows:
        if row.get("comparison") == decision.get("primary"):
            return row
    return rows[0] if rows else {}


def verdict_table(summaries: Sequence[Mapping | str | os.PathLike]) -> str:
    """The verdict table: claim, the paper's claim, our verdict, effect with its 95% CI, why."""
    rows = []
    for summary, _ in _resolve(summaries):
        decision = summary["decision"]
        primary = _primary(decision)
        effect = _effect_text(primary)
        if effect != "n/a" and len(decision.get("comparisons") or []) > 1:
            effect = f"{primary['comparison']}: {effect}"
        rows.append(
            [
                f"{summary['claim_id']} ({summary['paper']})",
                f"{summary['statement']} ({summary['paper_numbers']})"
                if summary["paper_numbers"]
                else summary["statement"],
                f"**{decision['verdict']}**",
                effect,
                decision["reason"]
                + ("" if not decision.get("caveats") else " Caveat: " + " ".join(decision["caveats"])),
            ]
        )
    return _table(["claim", "paper's claim", "our verdict", "effect (95% CI)", "why"], rows)


def _comparisons_table(decision: Mapping) -> str:
    rows = []
    for row in decision.get("comparisons") or []:
        scores = row.get("estimates") or {}
        ordered = [m for m in row.get("models", []) if m in scores] + sorted(
            set(scores) - set(row.get("models", []))
        )
        estimates = ", ".join(f"{m}: {scores[m]:.4g}" for m in ordered)
        rows.append(
            [
                row["comparison"],
                estimates or "n/a",
                _effect_text(row),
                fmt_p(row.get("p_value"), row.get("p_floor")),
                fmt_p(row.get("p_holm"), row.get("p_floor")) if row.get("p_holm") is not None else "n/a",
                f"{row['mde']:.3g}" if row.get("mde") is not None else "n/a",
                f"**{row['verdict']}**",
                row.get("method", ""),
            ]
        )
    return _table(
        ["comparison", "scores", "effect (95% CI)", "p", "Holm p", "MDE (80% power)", "verdict", "method"],
        rows,
    )


def _image_link(plot: Mapping, claim_dir: Path | None, doc_dir: Path | None) -> str | None:
    if claim_dir is None:
        return None
    target = claim_dir / plot["path"]
    link = Path(os.path.relpath(target, doc_dir)) if doc_dir is not None else Path(plot["path"])
    return f"![{plot.get('caption', plot['path'])}]({link.as_posix()})"


def _body(
    summary: Mapping, claim_dir: Path | None, doc_dir: Path | None, heading: str, full: bool
) -> list[str]:
    decision = summary["decision"]
    out = []
    out.append(
        f"**Paper's claim.** {summary['statement']}"
        + (f" ({summary['paper_numbers']})" if summary["paper_numbers"] else "")
    )
    out.append("")
    out.append(f"**Verdict: {decision['verdict']}.** {decision['reason']}")
    for caveat in decision.get("caveats") or []:
        out.append("")
        out.append(f"*Caveat.* {caveat}")
    out.append("")
    if full:
        out += [
            f"**Protocol.** {summary['protocol']}",
            "",
            f"**Metric.** {summary['metric']}",
            "",
            f"**Decision rule (written before the runs).** {summary['decision_rule']}",
            "",
        ]
    if any(r.get("verdict") != "not tested" for r in decision.get("comparisons") or []):
        out += [_comparisons_table(decision), ""]
    runs = summary.get("runs")
    if runs:
        # summary.json is written with sorted keys: a fixed order keeps a loaded summary's text the same.
        keys = [k for k in _RUN_COUNTS if k in runs] + sorted(set(runs) - set(_RUN_COUNTS))
        counts = ", ".join(f"{k} {_cell(runs[k])}" for k in keys)
        out += [f"Runs: {counts} (every run is in the statistics).", ""]
    for table in summary.get("tables") or []:
        out += [f"{heading}# {table['title']}", "", _table(table["columns"], table["rows"]), ""]
        if table.get("note"):
            out += [table["note"], ""]
    for plot in summary.get("plots") or []:
        link = _image_link(plot, claim_dir, doc_dir)
        if link:
            out += [link, ""]
    if summary.get("differences"):
        out += [f"**What differs from the paper.** {summary['differences']}", ""]
    if summary.get("null_meaning"):
        out += [f"**What a null result here means.** {summary['null_meaning']}", ""]
    for note in summary.get("notes") or []:
        out += [f"- {note}"]
    if summary.get("notes"):
        out.append("")
    info = summary.get("run_info")
    if info:
        parts = []
        if info.get("command"):
            parts.append(f"`{info['command']}`")
        if info.get("tier"):
            parts.append(f"tier {info['tier']}")
        if info.get("machine"):
            parts.append(f"on {info['machine']}")
        if info.get("wall_seconds") is not None:
            parts.append(f"{info['wall_seconds'] / 60:.1f} min wall time")
        if info.get("date"):
            parts.append(str(info["date"]))
        out += ["Run: " + ", ".join(parts) + ".", ""]
    out.append(f"Plan hash `{summary['plan_hash'][:12]}`.")
    return out


def claim_section(summary: Mapping, claim_dir: Path | None = None, doc_dir: Path | None = None) -> str:
    """A claim's block in RESULTS.md (image links relative to `doc_dir` when the claim folder is known)."""
    lines = [f"### {summary['claim_id']}: {summary['paper']}", ""]
    lines += _body(summary, claim_dir, doc_dir, heading="###", full=False)
    return "\n".join(lines)


def claim_report(summary: Mapping, claim_dir: Path | None = None) -> str:
    """A claim's report.md: the plan, the verdict, every comparison, tables and plots."""
    lines = [f"# {summary['claim_id']}: {summary['paper']}", ""]
    lines += _body(summary, claim_dir, claim_dir, heading="#", full=True)
    return "\n".join(lines) + "\n"


def write_claim_report(claim_dir: str | Path) -> Path:
    """Write `report.md` next to a claim folder's summary.json."""
    claim_dir = Path(claim_dir)
    summary = load_summary(claim_dir)
    path = claim_dir / REPORT_FILE
    atomic_write_text(path, claim_report(summary, claim_dir))
    return path


# ---------------------------------------------------------------------------------------------------------
# RESULTS.md between markers


def replace_between(text: str, start: str, end: str, content: str) -> str:
    """Replace what lies between the `start` and `end` marker lines; everything else is kept byte for byte."""
    i = text.find(start)
    j = text.find(end)
    if i < 0 or j < 0:
        raise ValueError(f"markers {start} ... {end} not found.")
    if text.count(start) > 1 or text.count(end) > 1 or j < i:
        raise ValueError(f"markers {start} ... {end} must appear once each, in that order.")
    return text[: i + len(start)] + "\n" + content.strip("\n") + "\n" + text[j:]


def _skeleton(ids: Sequence[str]) -> str:
    blocks = "\n\n".join("\n".join(claim_markers(i)) for i in ids)
    return (
        "# Results\n\nThe verdicts and numbers between the `results:` markers are generated from each claim's "
        "summary.json by `recurrent_mlm.study.report`; text outside them is written by hand.\n\n"
        f"{VERDICTS_START}\n{VERDICTS_END}\n\n{blocks}\n"
    )


def render_results_doc(
    text: str | None, summaries: Sequence[Mapping | str | os.PathLike], doc_dir: Path | None = None
) -> str:
    """The RESULTS.md text for `summaries`: `text` with its generated sections replaced (a new skeleton if None).

    A claim with no block yet gets one appended at the end; a block for a claim with no summary is an error.
    """
    resolved = _resolve(summaries)
    ids = [s["claim_id"] for s, _ in resolved]
    if text is None:
        text = _skeleton(ids)
    if VERDICTS_START not in text or VERDICTS_END not in text:
        raise ValueError(
            f"the document has no {VERDICTS_START} ... {VERDICTS_END} markers; add them where the verdict table goes."
        )
    stale = sorted(set(re.findall(r"<!-- results:claim:(\S+?):start -->", text)) - set(ids))
    if stale:
        raise ValueError(
            f"the document has blocks for claims {stale} with no summary; pass their summaries or remove the blocks."
        )
    text = replace_between(text, VERDICTS_START, VERDICTS_END, verdict_table([s for s, _ in resolved]))
    for summary, claim_dir in resolved:
        start, end = claim_markers(summary["claim_id"])
        if start not in text:
            text = text.rstrip("\n") + f"\n\n{start}\n{end}\n"
        text = replace_between(text, start, end, claim_section(summary, claim_dir, doc_dir))
    return text


def update_results_doc(path: str | Path, summaries: Sequence[Mapping | str | os.PathLike]) -> bool:
    """Regenerate the marked sections of `path` (created if missing); returns whether the file changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    new = render_results_doc(old, summaries, path.parent.resolve())
    if new != old:
        atomic_write_text(path, new)
    return new != old


def update_between(path: str | Path, start: str, end: str, content: str) -> bool:
    """Replace what lies between the markers in the file `path` (atomically); returns whether it changed."""
    path = Path(path)
    old = path.read_text(encoding="utf-8")
    new = replace_between(old, start, end, content)
    if new != old:
        atomic_write_text(path, new)
    return new != old


def update_readme_verdicts(path: str | Path, summaries: Sequence[Mapping | str | os.PathLike]) -> bool:
    """Regenerate only the verdict table of `path` (a README with the verdict markers); returns whether it changed."""
    return update_between(path, VERDICTS_START, VERDICTS_END, verdict_table(summaries))


def check_readme_verdicts(path: str | Path, summaries: Sequence[Mapping | str | os.PathLike]) -> list[str]:
    """[] when the verdict table of `path` matches `summaries`; else one line saying how to regenerate it."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        expected = replace_between(text, VERDICTS_START, VERDICTS_END, verdict_table(summaries))
    except ValueError as err:
        return [f"{path}: {err}"]
    return [] if expected == text else [f"{path}: the verdict table is out of date; run scripts/publish_results.py."]


def check_results_doc(path: str | Path, summaries: Sequence[Mapping | str | os.PathLike]) -> list[str]:
    """What is out of date in `path` against `summaries`: [] when current; else one line per problem and a diff.

    For a docs test: `assert not check_results_doc("docs/RESULTS.md", claim_folders)`.
    """
    path = Path(path)
    if not path.exists():
        return [f"{path} does not exist; generate it with recurrent_mlm.study.report.update_results_doc."]
    text = path.read_text(encoding="utf-8")
    try:
        expected = render_results_doc(text, summaries, path.parent.resolve())
    except ValueError as err:
        return [f"{path}: {err}"]
    if expected == text:
        return []
    problems = []
    resolved = _resolve(summaries)
    sections = [("the verdict table", VERDICTS_START, VERDICTS_END)] + [
        (f"claim {s['claim_id']}", *claim_markers(s["claim_id"])) for s, _ in resolved
    ]
    for label, start, end in sections:
        if start not in text:
            problems.append(f"{path}: no block for {label} ({start}).")
        elif text[text.find(start) : text.find(end)] != expected[expected.find(start) : expected.find(end)]:
            problems.append(f"{path}: {label} is out of date.")
    diff = "".join(
        difflib.unified_diff(text.splitlines(True), expected.splitlines(True), str(path), "generated", n=1)
    )
    problems.append("regenerate with recurrent_mlm.study.report.update_results_doc; diff:\n" + diff[:4000])
    return problems


__all__ = [
    "REPORT_FILE",
    "SUMMARY_FILE",
    "SUMMARY_SCHEMA",
    "VERDICTS_END",
    "VERDICTS_START",
    "check_readme_verdicts",
    "check_results_doc",
    "claim_markers",
    "claim_report",
    "claim_section",
    "load_summary",
    "make_summary",
    "render_results_doc",
    "replace_between",
    "update_between",
    "update_readme_verdicts",
    "update_results_doc",
    "validate_summary",
    "verdict_table",
    "write_claim_report",
    "write_summary",
]
