"""The decision rule, written down before any run, and the plan file that fixes it.

A claim's `Plan` names the comparisons, the metric, the predicted direction and the level; `write_plan`
stores it as `plan.json` with a creation time and a hash and refuses to replace it with a different plan
unless asked (`replace=True` keeps a record of the plan it supersedes). After the runs, `decide` turns the
evidence (bootstrap intervals, trend tests) into a verdict:

- reproduced: the 95% interval excludes 0 in the predicted direction;
- contradicted: it excludes 0 in the other direction;
- inconclusive: otherwise, reported with the minimum detectable effect at 80% power,
  MDE = (z_{1 - alpha / (2 m)} + z_{0.80}) * SE  (= 2.80 SE for one comparison at alpha = 0.05);
- not tested: with the reason.

With m > 1 comparisons the per-comparison test is Holm-adjusted p < alpha (for a bootstrap, p is the smallest
level at which its percentile interval excludes 0, so m = 1 is exactly the interval rule), and the claim
combines them as the plan says: "all" (every comparison must hold; one contradiction contradicts the claim)
or "any" (one that holds suffices; contradicted only if every one is contradicted). A claim that two models
*match* ("equivalent") needs a margin: reproduced when the interval lies inside (-margin, +margin),
contradicted when it lies entirely beyond one side, with no multiplicity correction for "all" (an
intersection-union test, Berger 1982).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as _sps

from ..files import atomic_write_json
from .stats import BootstrapResult, TrendResult, holm

VERDICTS = ("reproduced", "contradicted", "inconclusive", "not tested")
DIRECTIONS = ("greater", "less", "equivalent")
COMBINE = ("all", "any")
POWER = 0.80
PLAN_SCHEMA = "recurrent-mlm.study.plan/1"
DECISION_SCHEMA = "recurrent-mlm.study.decision/1"
# With fewer pretraining seeds than this carrying at least this share of an effect's variance, the bootstrap
# interval is too narrow (docs/statistics.md: a 20% false-positive rate at 3 seeds, 7% at 10).
FEW_SEEDS = 10
SEED_SHARE = 0.5


def fmt(value, digits: int = 3) -> str:
    """A signed number with `digits` significant digits (effects, intervals)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:+.{digits}g}"


def fmt_p(p, floor: float | None = None) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p == 0 and floor:
        return f"< {floor:.2g}"
    return f"{p:.3g}"


@dataclass(frozen=True)
class Comparison:
    """One planned comparison. Two models (a, b): the effect is score(a) - score(b). Three or more: a trend
    along the listed order (effect: Page's L as a mean Spearman correlation, positive when rising)."""

    name: str
    models: tuple[str, ...]
    task: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "models", tuple(self.models))
        if not self.name:
            raise ValueError("a comparison needs a name (e.g. the task, or 'T < ST < SUT < LSTM').")
        if len(self.models) < 2 or len(set(self.models)) != len(self.models):
            raise ValueError(
                f"comparison {self.name!r}: models must be 2 (a - b) or more (a trend), all distinct."
            )

    @property
    def kind(self) -> str:
        return "difference" if len(self.models) == 2 else "trend"


@dataclass(frozen=True)
class Plan:
    """What a claim's study will do and how it will be judged, fixed before any run (see `write_plan`).

    predicted_direction: "greater" (the effect a - b, or the trend along the listed order, is positive),
    "less" (negative), "equivalent" (within +- equivalence_margin, in the metric's units).
    """

    claim_id: str
    paper: str
    statement: str
    paper_numbers: str
    protocol: str
    metric: str
    predicted_direction: str
    comparisons: tuple[Comparison, ...]
    alpha: float = 0.05
    combine: str = "all"
    equivalence_margin: float | None = None
    primary: str | None = None
    decision_rule: str = ""

    def __post_init__(self):
        comparisons = tuple(
            c if isinstance(c, Comparison) else Comparison(**c) if isinstance(c, Mapping) else Comparison(*c)
            for c in self.comparisons
        )
        object.__setattr__(self, "comparisons", comparisons)
        for name in ("claim_id", "paper", "statement", "metric"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"Plan.{name} is empty; a plan must say what it tests.")
        if self.predicted_direction not in DIRECTIONS:
            raise ValueError(
                f"Plan.predicted_direction must be one of {DIRECTIONS}, got {self.predicted_direction!r}."
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"Plan.alpha must be in (0, 1), e.g. 0.05; got {self.alpha}.")
        if self.combine not in COMBINE:
            raise ValueError(f"Plan.combine must be one of {COMBINE}, got {self.combine!r}.")
        if not comparisons:
            raise ValueError("Plan.comparisons is empty; name at least one comparison.")
        names = [c.name for c in comparisons]
        if len(set(names)) != len(names):
            raise ValueError(f"Plan.comparisons names must be unique, got {names}.")
        if self.primary is not None and self.primary not in names:
            raise ValueError(f"Plan.primary {self.primary!r} is not one of the comparisons {names}.")
        if self.predicted_direction == "equivalent":
            if self.equivalence_margin is None or not self.equivalence_margin > 0:
                raise ValueError(
                    "an 'equivalent' claim needs Plan.equivalence_margin > 0 (in the metric's units)."
                )
            if any(c.kind == "trend" for c in comparisons) or self.combine != "all":
                raise ValueError("an 'equivalent' claim takes two-model comparisons and combine='all'.")
        elif self.equivalence_margin is not None:
            raise ValueError("Plan.equivalence_margin applies only to predicted_direction='equivalent'.")
        if not self.decision_rule:
            object.__setattr__(self, "decision_rule", default_decision_rule(self))

    @property
    def primary_comparison(self) -> str:
        return self.primary or self.comparisons[0].name

    def to_dict(self) -> dict:
        data = asdict(self)
        data["comparisons"] = [
            {"name": c.name, "models": list(c.models), "task": c.task} for c in self.comparisons
        ]
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Plan:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"plan has unknown fields {sorted(unknown)}; expected {sorted(known)}.")
        return cls(**data)

    def hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def default_decision_rule(plan: Plan) -> str:
    m = len(plan.comparisons)
    level = f"{100 * (1 - plan.alpha):g}%"
    sign = {"greater": "positive", "less": "negative", "equivalent": "zero"}[plan.predicted_direction]
    if plan.predicted_direction == "equivalent":
        text = (
            f"For each comparison the effect is {plan.metric} of the first model minus the second, with a {level} "
            f"paired bootstrap interval. Reproduced: every interval lies inside +-{plan.equivalence_margin:g}; "
            f"contradicted: an interval lies entirely beyond +-{plan.equivalence_margin:g}; inconclusive otherwise."
        )
        return text
    text = (
        f"For each comparison the effect is {plan.metric} of the first model minus the second (for three or more "
        f"models, Page's trend along the listed order), predicted {sign}, with a {level} paired interval. "
        f"Reproduced: the interval excludes 0 in the predicted direction; contradicted: it excludes 0 the other "
        f"way; inconclusive otherwise, reported with the minimum detectable effect at {POWER:.0%} power, "
        f"MDE = (z_(1-alpha/(2m)) + z_{POWER:.2f}) x SE."
    )
    if m > 1:
        text += (
            f" The {m} comparisons are Holm-adjusted (a comparison holds when its adjusted p < {plan.alpha:g}); "
            + (
                "the claim is reproduced when every comparison is, contradicted when any is contradicted."
                if plan.combine == "all"
                else "the claim is reproduced when any comparison is, contradicted when every one is contradicted."
            )
        )
    return text


# ---------------------------------------------------------------------------------------------------------
# plan.json


class PlanChangedError(ValueError):
    """An existing plan.json holds a different plan: plans are fixed before the runs."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_plan(plan: Plan, path: str | Path, *, replace: bool = False, created: str | None = None) -> dict:
    """Write `plan` to `path` (plan.json) before any run; returns the record on disk.

    The same plan again is a no-op (the original creation time stays). A different plan raises
    `PlanChangedError` unless `replace=True`, which writes it with a `supersedes` entry (the old hash and
    creation time), so a changed plan is visible in the results.
    """
    path = Path(path)
    record = {
        "schema": PLAN_SCHEMA,
        "created": created or _now(),
        "hash": plan.hash(),
        "plan": plan.to_dict(),
    }
    if path.exists():
        old_plan, old = read_plan(path)
        if old["hash"] == record["hash"]:
            return old
        if not replace:
            changed = sorted(k for k, v in plan.to_dict().items() if old_plan.to_dict().get(k) != v)
            raise PlanChangedError(
                f"{path} holds a different plan for claim {old_plan.claim_id} (changed: {', '.join(changed)}), "
                f"created {old['created']}; a plan is fixed before the runs: pass replace=True to record the change "
                "explicitly, or write to a new output folder."
            )
        record["supersedes"] = {"hash": old["hash"], "created": old["created"], "plan": old["plan"]}
    atomic_write_json(path, record)
    return record


def read_plan(path: str | Path) -> tuple[Plan, dict]:
    """The plan in a plan.json and its record; refuses a file whose hash does not match (edited by hand)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read plan {path}: {err}") from err
    if record.get("schema") != PLAN_SCHEMA:
        raise ValueError(
            f"{path} is not a study plan (schema {record.get('schema')!r}, expected {PLAN_SCHEMA!r})."
        )
    plan = Plan.from_dict(record["plan"])
    if plan.hash() != record.get("hash"):
        raise ValueError(
            f"{path} was edited after it was written (its hash does not match its contents); restore it, or "
            "write the changed plan with write_plan(..., replace=True)."
        )
    return plan, record


# ---------------------------------------------------------------------------------------------------------
# Evidence and decisions


@dataclass(frozen=True)
class Evidence:
    """The result of one comparison's test, as the decision rule reads it.

    estimate, low, high: the effect and its interval at `confidence` (must be 1 - plan.alpha); se: its
    standard error; p_value: two-sided. `p_floor` is the p-value's resolution (2 / resamples for a bootstrap).
    """

    comparison: str
    estimate: float
    low: float
    high: float
    se: float
    p_value: float
    confidence: float
    method: str
    sizes: dict = field(default_factory=dict)
    estimates: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    p_floor: float | None = None
    effect_label: str = "difference"

    @classmethod
    def from_bootstrap(cls, comparison: str, result: BootstrapResult) -> Evidence:
        return cls(
            comparison=comparison,
            estimate=result.estimate,
            low=result.low,
            high=result.high,
            se=result.se,
            p_value=result.p_value,
            confidence=result.confidence,
            method=result.method,
            sizes=dict(result.sizes),
            estimates=dict(result.estimates),
            diagnostics=dict(result.diagnostics),
            p_floor=2.0 / result.n_resamples,
        )

    @classmethod
    def from_trend(cls, comparison: str, result: TrendResult) -> Evidence:
        return cls(
            comparison=comparison,
            estimate=result.rho,
            low=result.low,
            high=result.high,
            se=result.se,
            p_value=result.p_value,
            confidence=result.confidence,
            method=result.method,
            sizes={"blocks": result.n_blocks, "models": len(result.order)},
            diagnostics={
                "statistic": result.statistic,
                "p_increasing": result.p_increasing,
                "p_decreasing": result.p_decreasing,
            },
            effect_label="rho",
        )


def _caveats(evidence: Evidence) -> list[str]:
    seeds = evidence.diagnostics.get("pretrain_seeds")
    share = evidence.diagnostics.get("seed_variance_share")
    out = []
    if seeds == 1:
        out.append(
            f"{evidence.comparison}: one pretraining seed, so the interval is conditional on that pretraining run."
        )
    elif (
        seeds is not None
        and seeds < FEW_SEEDS
        and share is not None
        and not math.isnan(share)
        and share >= SEED_SHARE
    ):
        out.append(
            f"{evidence.comparison}: {seeds} pretraining seeds carry {share:.0%} of the effect's variance; a bootstrap "
            "over so few seeds gives too narrow an interval (docs/statistics.md), so read its verdict with care."
        )
    return out


def _decide_one(plan: Plan, ev: Evidence, p_holm: float | None, m: int) -> dict:
    alpha = plan.alpha
    if plan.predicted_direction == "equivalent":
        margin = plan.equivalence_margin
        mde = (_sps.norm.ppf(1 - alpha / 2) + _sps.norm.ppf(POWER)) * ev.se
        interval = f"{ev.confidence:.0%} CI [{fmt(ev.low)}, {fmt(ev.high)}]"
        if -margin < ev.low and ev.high < margin:
            verdict, why = "reproduced", f"{interval} lies inside +-{margin:g}"
        elif ev.low > margin or ev.high < -margin:
            verdict, why = "contradicted", f"{interval} lies entirely beyond +-{margin:g}"
        else:
            verdict, why = "inconclusive", f"{interval} is not inside +-{margin:g} (nor entirely beyond it)"
    else:
        mde = (_sps.norm.ppf(1 - alpha / (2 * m)) + _sps.norm.ppf(POWER)) * ev.se
        predicted = 1 if plan.predicted_direction == "greater" else -1
        p_used = ev.p_value if p_holm is None else p_holm
        significant = p_used < alpha
        sign = int(np.sign(ev.estimate))
        label = "rho" if ev.effect_label == "rho" else "effect"
        interval = f"{label} {fmt(ev.estimate)}, {ev.confidence:.0%} CI [{fmt(ev.low)}, {fmt(ev.high)}]"
        p_text = f"p = {fmt_p(ev.p_value, ev.p_floor)}"
        if p_holm is not None:
            p_text += f", Holm-adjusted {fmt_p(p_holm, ev.p_floor)} over {m} comparisons"
        # A bootstrap's p is its interval's (p < alpha iff the interval excludes 0); a trend's p is Page's test.
        holds = "is significant" if label == "rho" else "excludes 0"
        if significant and sign == predicted:
            verdict, why = "reproduced", f"{interval} {holds} in the predicted direction ({p_text})"
        elif significant and sign == -predicted:
            verdict, why = "contradicted", f"{interval} {holds} against the predicted direction ({p_text})"
        else:
            if label == "rho":
                reason = "is not significant"
            else:
                reason = "includes 0" if ev.low <= 0 <= ev.high else "is not significant after Holm"
            verdict = "inconclusive"
            why = f"{interval} {reason} ({p_text}); the smallest effect this run could detect is about +-{abs(mde):.3g}"
    return {
        "comparison": ev.comparison,
        "verdict": verdict,
        "reason": why,
        "estimate": ev.estimate,
        "low": ev.low,
        "high": ev.high,
        "confidence": ev.confidence,
        "se": ev.se,
        "p_value": ev.p_value,
        "p_holm": p_holm,
        "p_floor": ev.p_floor,
        "mde": float(abs(mde)),
        "method": ev.method,
        "sizes": ev.sizes,
        "estimates": ev.estimates,
        "diagnostics": ev.diagnostics,
        "effect_label": ev.effect_label,
    }


def decide(plan: Plan, evidence: Sequence[Evidence] | Mapping[str, Evidence]) -> dict:
    """Apply the plan's decision rule to the evidence; returns the decision record stored in summary.json.

    Comparisons without evidence are "not tested" and count against "all". Raises on evidence for a
    comparison the plan does not name, or at a confidence other than 1 - alpha.
    """
    if isinstance(evidence, Mapping):
        evidence = list(evidence.values())
    by_name: dict[str, Evidence] = {}
    planned = [c.name for c in plan.comparisons]
    for ev in evidence:
        if ev.comparison not in planned:
            raise ValueError(
                f"evidence for {ev.comparison!r}, which plan {plan.claim_id} does not name ({planned})."
            )
        if ev.comparison in by_name:
            raise ValueError(f"two pieces of evidence for comparison {ev.comparison!r}.")
        if abs(ev.confidence - (1 - plan.alpha)) > 1e-9:
            raise ValueError(
                f"evidence for {ev.comparison!r} has a {ev.confidence:.0%} interval; plan {plan.claim_id} decides at "
                f"alpha={plan.alpha:g}, so compute {1 - plan.alpha:.0%} intervals."
            )
        by_name[ev.comparison] = ev
    tested = [
        by_name[n]
        for n in planned
        if n in by_name
        and all(math.isfinite(x) for x in (by_name[n].estimate, by_name[n].p_value, by_name[n].se))
    ]
    if not tested:
        return not_tested(plan, "no comparison produced a finite result")
    m = len(tested)
    p_holm = (
        [None] * m
        if plan.predicted_direction == "equivalent" or m == 1
        else [float(p) for p in holm([ev.p_value for ev in tested])]
    )
    decided = {ev.comparison: _decide_one(plan, ev, ph, m) for ev, ph in zip(tested, p_holm)}
    rows = []
    for comparison in plan.comparisons:
        name = comparison.name
        if name in decided:
            row = decided[name]
        else:
            why = "no evidence" if name not in by_name else "non-finite result"
            row = {"comparison": name, "verdict": "not tested", "reason": why}
        rows.append({**row, "models": list(comparison.models)})
    verdicts = [r["verdict"] for r in rows]
    count = {v: verdicts.count(v) for v in VERDICTS}
    if plan.combine == "all":
        if count["contradicted"]:
            verdict = "contradicted"
        elif count["reproduced"] == len(rows):
            verdict = "reproduced"
        else:
            verdict = "inconclusive"
    else:
        if count["reproduced"]:
            verdict = "reproduced"
        elif count["contradicted"] == len(rows):
            verdict = "contradicted"
        else:
            verdict = "inconclusive"
    if len(rows) == 1:
        reason = rows[0]["reason"][0].upper() + rows[0]["reason"][1:] + "."
    else:
        parts = [
            f"{count[v]} {v} ({', '.join(r['comparison'] for r in rows if r['verdict'] == v)})"
            for v in VERDICTS
            if count[v]
        ]
        need = "every comparison must hold" if plan.combine == "all" else "one comparison holding suffices"
        reason = f"Of {len(rows)} comparisons: {'; '.join(parts)}; {need}."
    caveats = [c for ev in tested for c in _caveats(ev)]
    return {
        "schema": DECISION_SCHEMA,
        "claim_id": plan.claim_id,
        "verdict": verdict,
        "reason": reason,
        "caveats": caveats,
        "primary": plan.primary_comparison,
        "predicted_direction": plan.predicted_direction,
        "alpha": plan.alpha,
        "combine": plan.combine,
        "equivalence_margin": plan.equivalence_margin,
        "comparisons": rows,
    }


def not_tested(plan: Plan, reason: str) -> dict:
    """The decision record of a claim this run could not test, with the reason (e.g. the tier skips it)."""
    if not reason.strip():
        raise ValueError("say why the claim was not tested.")
    return {
        "schema": DECISION_SCHEMA,
        "claim_id": plan.claim_id,
        "verdict": "not tested",
        "reason": reason.strip(),
        "caveats": [],
        "primary": plan.primary_comparison,
        "predicted_direction": plan.predicted_direction,
        "alpha": plan.alpha,
        "combine": plan.combine,
        "equivalence_margin": plan.equivalence_margin,
        "comparisons": [
            {
                "comparison": c.name,
                "verdict": "not tested",
                "reason": reason.strip(),
                "models": list(c.models),
            }
            for c in plan.comparisons
        ],
    }


__all__ = [
    "COMBINE",
    "DIRECTIONS",
    "POWER",
    "VERDICTS",
    "Comparison",
    "Evidence",
    "Plan",
    "PlanChangedError",
    "decide",
    "default_decision_rule",
    "not_tested",
    "read_plan",
    "write_plan",
]
