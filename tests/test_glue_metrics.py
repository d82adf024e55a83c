"""Offline GLUE metrics and ECE through `evaluate`, the trivial-predictor baseline, and the stability report."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from recurrent_mlm.glue.ece_metric import expected_calibration_error
from recurrent_mlm.glue.metrics import compute_metrics, load_ece_metric, load_metric, majority_baseline
from recurrent_mlm.glue.report import aggregate, load_sweep, main as report_main, summarise, write_report
from recurrent_mlm.glue.sweep import RESULT_FILE, SPEC_FILE
from recurrent_mlm.glue.tasks import TASKS

RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 2, size=50)
PREDS = np.where(RNG.random(50) < 0.7, LABELS, 1 - LABELS)


@pytest.mark.parametrize("config", sorted({t.metric_config for t in TASKS.values()}))
def test_glue_metric_matches_reference_implementations(config):
    metric = load_metric(config)  # by path: works with HF_HUB_OFFLINE=1 (set by conftest)
    if config == "stsb":
        gold = RNG.uniform(0, 5, size=40)
        pred = gold + RNG.normal(0, 1, size=40)
        out = metric.compute(predictions=pred, references=gold)
        assert out["pearson"] == pytest.approx(pearsonr(pred, gold)[0], abs=1e-5)
        assert out["spearmanr"] == pytest.approx(spearmanr(pred, gold)[0], abs=1e-5)
        return
    out = metric.compute(predictions=PREDS, references=LABELS)
    if config == "cola":
        assert out == {"matthews_correlation": pytest.approx(matthews_corrcoef(LABELS, PREDS))}
    elif config in ("mrpc", "qqp"):
        assert out == {"accuracy": pytest.approx((PREDS == LABELS).mean()), "f1": pytest.approx(f1_score(LABELS, PREDS))}
    else:
        assert out == {"accuracy": pytest.approx((PREDS == LABELS).mean())}


def test_constant_regression_has_no_correlation():
    out = compute_metrics("stsb", "pearson_spearman", np.full(10, 2.5), np.linspace(0, 5, 10))
    assert math.isnan(out["pearson"]) and math.isnan(out["score"])


def test_ece_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.58, 0.42], [0.55, 0.45], [0.97, 0.03]])
    references = np.array([0, 0, 0, 1, 0])
    # 15 bins of width 1/15: 0.9 -> bin 13, 0.8 -> bin 11, 0.58 and 0.55 -> bin 8 (8/15, 9/15], 0.97 -> bin 14.
    expected = (1 * abs(1 - 0.9) + 1 * abs(0 - 0.8) + 2 * abs(0.5 - 0.565) + 1 * abs(1 - 0.97)) / 5
    direct = expected_calibration_error(probabilities, references)
    assert direct["ece"] == pytest.approx(expected)
    counts = [b["count"] for b in direct["bins"]]
    assert len(counts) == 15 and sum(counts) == 5 and counts[8] == 2
    through_evaluate = load_ece_metric().compute(predictions=probabilities, references=references)
    assert through_evaluate["ece"] == pytest.approx(expected, abs=1e-6)


def test_ece_edges_and_perfect_calibration():
    # A confidence of exactly 2/15 is the top of bin 1 (right-closed bins), not the bottom of bin 2.
    p = np.array([[2 / 15, 13 / 15]])
    assert expected_calibration_error(p, np.array([1]))["bins"][12]["count"] == 1
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure, np.array([0, 1]))["ece"] == 0.0
    assert math.isnan(expected_calibration_error(np.array([[math.nan, math.nan]]), np.array([0]))["ece"])


def test_trivial_predictor_baseline():
    references = np.array([1, 1, 1, 0])
    score, text = majority_baseline("mrpc", "accuracy_f1", [1, 1, 0], references, is_regression=False)
    assert score == pytest.approx((0.75 + 2 * 0.75 / 1.75) / 2) and "label 1" in text
    assert majority_baseline("cola", "matthews_correlation", [0, 1, 1], references, False)[0] == 0.0
    assert majority_baseline("stsb", "pearson_spearman", None, np.array([1.0, 2.0]), True)[0] == 0.0


# -- report -------------------------------------------------------------------------------------------------------
def _run(model, lr, seed, score, diverged=False, ece=0.1, best=None):
    return {
        "run_id": f"{model}/lr_{lr:g}_seed_{seed}",
        "model": f"/models/{model}",
        "model_label": model,
        "learning_rate": lr,
        "seed": seed,
        "final": {"step": 10, "score": score, "splits": {"validation": {"accuracy": score, "score": score, "ece": ece}}},
        "best": {"step": 5, "score": best if best is not None else score},
        "ece": ece,
        "baseline_score": 0.5,
        "diverged": diverged,
        "diverged_reason": "non-finite training loss at step 3" if diverged else None,
        "loss_curve": [[5, 0.7, lr], [10, 0.5, 0.0]],
        "train_steps": 10,
        "wall_seconds": 1.0,
    }


RUNS = [
    _run("bert", 1e-5, 1, 0.80),
    _run("bert", 1e-5, 2, 0.84),
    _run("bert", 1e-4, 1, 0.70),
    _run("bert", 1e-4, 2, None, diverged=True, ece=None),  # NaN score: counts as the trivial predictor's 0.5
    _run("bert", 1e-3, 1, 0.82),
    _run("bert", 1e-3, 2, 0.86),
    _run("rec", 1e-5, 1, 0.81),
    _run("rec", 1e-5, 2, 0.81),
    _run("rec", 1e-4, 1, 0.83),
    _run("rec", 1e-4, 2, 0.85),
    _run("rec", 1e-3, 1, 0.5, diverged=True),
    _run("rec", 1e-3, 2, 0.5, diverged=True),
]
META = {"task": "sst2", "score": "accuracy", "primary_split": "validation", "seeds": [1, 2], "baseline_score": 0.5, "baseline": "always label 0"}


def test_aggregate_and_summary():
    rows = aggregate(RUNS)
    assert [(r["model"], r["learning_rate"]) for r in rows][:3] == [("bert", 1e-5), ("bert", 1e-4), ("bert", 1e-3)]
    cell = rows[1]
    assert cell["mean"] == pytest.approx(0.6) and cell["min"] == 0.5 and cell["max"] == 0.7 and cell["diverged"] == 1
    assert cell["std"] == pytest.approx(np.std([0.7, 0.5], ddof=1))
    assert cell["mean_ece"] == pytest.approx(0.1)  # the NaN-ECE run is left out of the ECE mean only
    summary = {s["model"]: s for s in summarise(rows)}
    assert summary["bert"]["stable_range"] == "1e-05, 0.001"  # not contiguous: listed
    assert summary["rec"]["stable_range"] == "1e-05 to 0.0001"
    assert summary["rec"]["best_learning_rate"] == 1e-4 and summary["rec"]["diverged"] == 2
    assert summary["rec"]["mean_seed_std"] == pytest.approx(np.mean([0.0, np.std([0.83, 0.85], ddof=1), 0.0]))
    assert summary["rec"]["line"].startswith("rec: mean std across seeds")


def test_report_files(tmp_path):
    write_report(tmp_path, META, RUNS)
    assert json.loads((tmp_path / "runs.json").read_text())["runs"][3]["final"]["score"] is None
    rows = list(csv.DictReader((tmp_path / "runs.csv").open()))
    assert len(rows) == 12 and rows[3]["diverged"] == "True" and rows[3]["final_score"] == ""
    assert {"validation_accuracy", "validation_ece", "final_train_loss"} <= set(rows[0])
    table = (tmp_path / "stability.md").read_text()
    assert "| bert | 0.0001 | 2 | 0.6000 |" in table and "## Summary" in table and "- rec: " in table
    assert (tmp_path / "stability.png").read_bytes().startswith(b"\x89PNG")
    stability = json.loads((tmp_path / "stability.json").read_text())
    assert len(stability["table"]) == 6 and len(stability["summary"]) == 2


def test_report_rebuilds_from_a_sweep_folder(tmp_path, capsys):
    (tmp_path / SPEC_FILE).write_text(json.dumps({"models": {"bert": "/models/bert", "rec": "/models/rec"}, "report": META}))
    for run in RUNS:
        folder = tmp_path / "runs" / run["model_label"] / f"lr_{run['learning_rate']:g}_seed_{run['seed']}"
        folder.mkdir(parents=True)
        (folder / RESULT_FILE).write_text(json.dumps(run))
    meta, runs = load_sweep(tmp_path)
    assert len(runs) == 12 and meta["seeds"] == [1, 2] and runs[0]["model_label"] == "bert"
    assert report_main([str(tmp_path), "--no_plot"]) == 0
    assert "| rec | 0.001 | 2 | 0.5000 |" in capsys.readouterr().out
