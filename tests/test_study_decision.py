"""The decision rule and the plan file (recurrent_mlm.study.decision), on planted data."""

import json

import numpy as np
import pytest

from recurrent_mlm.study import stats as S
from recurrent_mlm.study.decision import (
    Comparison,
    Evidence,
    Plan,
    PlanChangedError,
    decide,
    not_tested,
    read_plan,
    write_plan,
)
from recurrent_mlm.study.planted import Design, planted_pair


def make_plan(**overrides) -> Plan:
    fields = {
        "claim_id": "L1",
        "paper": "Lei et al. 2022",
        "statement": "the recurrent sublayer improves BERT at the same parameter count",
        "paper_numbers": "+2.1 points averaged over 10 tasks",
        "protocol": "pretrain both on the bundled corpus, fine-tune 3 seeds each",
        "metric": "accuracy",
        "predicted_direction": "greater",
        "comparisons": [Comparison("sst2", ("recurrent_bert", "bert"), task="sst2")],
    }
    fields.update(overrides)
    return Plan(**fields)


def evidence(name, estimate, p, se=0.01, low=None, high=None) -> Evidence:
    low = estimate - 2 * se if low is None else low
    high = estimate + 2 * se if high is None else high
    return Evidence(name, estimate, low, high, se, p, 0.95, "hand-made")


def bootstrap_verdict(effect: float, seed: int) -> dict:
    a, b = planted_pair(np.random.default_rng(seed), Design(n_items=300), effect=effect)
    result = S.paired_bootstrap(a, b, n_resamples=1000, seed=seed)
    return decide(make_plan(), [Evidence.from_bootstrap("sst2", result)])


def test_planted_difference_is_reproduced_and_reversed_is_contradicted():
    up = bootstrap_verdict(0.3, seed=1)
    assert up["verdict"] == "reproduced", up["reason"]
    assert "excludes 0 in the predicted direction" in up["reason"]
    down = bootstrap_verdict(-0.3, seed=2)
    assert down["verdict"] == "contradicted", down["reason"]


def test_identical_models_are_never_reproduced():
    a, _ = planted_pair(np.random.default_rng(3), Design(n_items=300))
    result = S.paired_bootstrap(a, a.copy(), n_resamples=500)
    decision = decide(make_plan(), [Evidence.from_bootstrap("sst2", result)])
    assert decision["verdict"] == "inconclusive"
    nulls = [bootstrap_verdict(0.0, seed)["verdict"] for seed in range(100, 160)]
    assert nulls.count("reproduced") <= 3  # nominal 2.5% one-sided: 1.5 of 60


def test_inconclusive_reports_the_minimum_detectable_effect():
    decision = decide(make_plan(), [evidence("sst2", 0.001, 0.7, se=0.01)])
    row = decision["comparisons"][0]
    assert decision["verdict"] == "inconclusive"
    assert row["mde"] == pytest.approx((1.959964 + 0.841621) * 0.01, rel=1e-5)  # 2.80 SE
    assert "smallest effect this run could detect is about +-0.028" in decision["reason"]
    # With m comparisons the MDE is at the first Holm level, alpha / m.
    plan = make_plan(comparisons=[Comparison(t, ("recurrent_bert", "bert"), t) for t in ("a", "b", "c")])
    rows = decide(plan, [evidence(t, 0.0, 0.9) for t in "abc"])["comparisons"]
    assert rows[0]["mde"] == pytest.approx((2.393980 + 0.841621) * 0.01, rel=1e-5)


def test_holm_combines_several_tasks():
    plan = make_plan(
        comparisons=[Comparison(t, ("recurrent_bert", "bert"), t) for t in ("cola", "sst2", "stsb")]
    )
    all_hold = decide(
        plan, [evidence("cola", 0.02, 0.01), evidence("sst2", 0.02, 0.02), evidence("stsb", 0.02, 0.04)]
    )
    assert all_hold["verdict"] == "reproduced"
    assert [r["p_holm"] for r in all_hold["comparisons"]] == pytest.approx([0.03, 0.04, 0.04])
    # 0.03 and 0.04 pass alone but not after Holm (0.06): only cola holds.
    one = [evidence("cola", 0.02, 0.01), evidence("sst2", 0.02, 0.03, se=0.008), evidence("stsb", 0.02, 0.04)]
    decision = decide(plan, one)
    assert [r["verdict"] for r in decision["comparisons"]] == ["reproduced", "inconclusive", "inconclusive"]
    assert decision["verdict"] == "inconclusive" and "every comparison must hold" in decision["reason"]
    assert "not significant after Holm" in decision["comparisons"][1]["reason"]
    assert decide(make_plan(comparisons=plan.comparisons, combine="any"), one)["verdict"] == "reproduced"
    against = [evidence("cola", 0.02, 0.001), evidence("sst2", -0.02, 0.001), evidence("stsb", 0.02, 0.001)]
    assert decide(plan, against)["verdict"] == "contradicted"
    # A comparison the run did not make counts against "all".
    partial = decide(plan, [evidence("cola", 0.02, 0.001)])
    assert partial["verdict"] == "inconclusive"
    assert partial["comparisons"][1] == {
        "comparison": "sst2",
        "verdict": "not tested",
        "reason": "no evidence",
        "models": ["recurrent_bert", "bert"],
    }


def test_equivalence_and_trend_claims():
    plan = make_plan(
        claim_id="M1",
        predicted_direction="equivalent",
        equivalence_margin=0.05,
        comparisons=[Comparison("wikitext", ("stable_lstm", "lstm"))],
    )
    assert decide(plan, [evidence("wikitext", 0.0, 0.9, low=-0.02, high=0.03)])["verdict"] == "reproduced"
    assert decide(plan, [evidence("wikitext", 0.1, 0.0, low=0.06, high=0.14)])["verdict"] == "contradicted"
    assert decide(plan, [evidence("wikitext", 0.04, 0.1, low=-0.01, high=0.09)])["verdict"] == "inconclusive"

    order = ("transformer", "sequential_transformer", "sequential_ut", "lstm")
    trend_plan = make_plan(claim_id="A1", comparisons=[Comparison("order", order)])
    rng = np.random.default_rng(4)
    planted = {m: 0.6 + 0.1 * j + rng.normal(0, 0.02, 4) for j, m in enumerate(order)}
    up = decide(trend_plan, [Evidence.from_trend("order", S.trend_test(planted, order))])
    assert up["verdict"] == "reproduced" and up["reason"].startswith("Rho +1, 95% CI")
    # Calibration error predicted to fall along the order: direction "less".
    falling = decide(
        make_plan(claim_id="A2", predicted_direction="less", comparisons=[Comparison("order", order)]),
        [Evidence.from_trend("order", S.trend_test({m: -v for m, v in planted.items()}, order))],
    )
    assert falling["verdict"] == "reproduced"
    shuffled = {m: rng.normal(0.7, 0.05, 4) for m in order}  # no order at all
    assert (
        decide(trend_plan, [Evidence.from_trend("order", S.trend_test(shuffled, order))])["verdict"]
        != "reproduced"
    )


def test_caveat_when_few_pretraining_seeds_carry_the_variance():
    design = Design(n_items=200, sd_pretrain=0.3, sd_finetune=0.01, sd_model_item=0.05, sd_noise=0.05)
    a, b = planted_pair(np.random.default_rng(5), design, effect=0.0)
    result = S.paired_bootstrap(a, b, n_resamples=500)
    assert result.diagnostics["pretrain_seeds"] == 3 and result.diagnostics["seed_variance_share"] > 0.5
    decision = decide(make_plan(), [Evidence.from_bootstrap("sst2", result)])
    assert decision["caveats"] and "3 pretraining seeds" in decision["caveats"][0]
    single = S.paired_item_bootstrap(a[0, 0], b[0, 0], n_resamples=500)
    assert (
        "one pretraining seed" in decide(make_plan(), [Evidence.from_bootstrap("sst2", single)])["caveats"][0]
    )


def test_bad_evidence_and_plans_are_named():
    with pytest.raises(ValueError, match="does not name"):
        decide(make_plan(), [evidence("qnli", 0.1, 0.01)])
    with pytest.raises(ValueError, match="90% interval"):
        decide(make_plan(), [Evidence("sst2", 0.1, 0.0, 0.2, 0.05, 0.01, 0.90, "x")])
    with pytest.raises(ValueError, match="predicted_direction"):
        make_plan(predicted_direction="up")
    with pytest.raises(ValueError, match="equivalence_margin"):
        make_plan(predicted_direction="equivalent")
    with pytest.raises(ValueError, match="unique"):
        make_plan(comparisons=[Comparison("x", ("a", "b")), Comparison("x", ("b", "c"))])
    decision = not_tested(make_plan(), "the cpu tier has no QNLI training set")
    assert decision["verdict"] == "not tested" and decision["comparisons"][0]["verdict"] == "not tested"
    assert decide(make_plan(), [evidence("sst2", float("nan"), float("nan"))])["verdict"] == "not tested"


def test_plan_file_is_fixed_before_the_runs(tmp_path):
    plan = make_plan()
    path = tmp_path / "plan.json"
    record = write_plan(plan, path, created="2026-01-01T00:00:00+00:00")
    assert record["hash"] == plan.hash() and len(record["hash"]) == 64
    assert "Reproduced: the interval excludes 0 in the predicted direction" in record["plan"]["decision_rule"]
    again = write_plan(make_plan(), path)
    assert again["created"] == "2026-01-01T00:00:00+00:00"
    loaded, _ = read_plan(path)
    assert loaded == plan
    changed = make_plan(alpha=0.1)
    with pytest.raises(PlanChangedError, match=r"changed: alpha.*replace=True"):
        write_plan(changed, path)
    assert read_plan(path)[0] == plan  # untouched
    replaced = write_plan(changed, path, replace=True)
    assert replaced["supersedes"]["hash"] == plan.hash()
    assert read_plan(path)[0] == changed
    data = json.loads(path.read_text())
    data["plan"]["alpha"] = 0.2
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="edited after it was written"):
        read_plan(path)


def test_recall_scores_flatten_queries_into_paired_items():
    """W1/W3 read each run's per-query correctness, (examples, queries); the bootstrap takes (seeds, 1, items)."""
    import numpy as np

    from recurrent_mlm.study.stats import TaskResults, hierarchical_bootstrap
    from recurrent_mlm.study.wen import paired_scores

    rng = np.random.default_rng(0)
    per_query = {f"{m}|{s}|4": rng.random((16, 2)) < p for m, p in (("bert", 0.9), ("recurrent", 0.3)) for s in (1, 2)}
    scores = paired_scores(per_query, ("bert", "recurrent"), [1, 2], 4)
    assert scores["bert"].shape == (2, 1, 32)
    assert np.array_equal(scores["bert"][1, 0], per_query["bert|2|4"].reshape(-1))
    result = hierarchical_bootstrap(TaskResults(scores=scores, metric="mean", name="N=4"), n_resamples=200, seed=0)
    assert result.difference("bert", "recurrent").estimate > 0.3
