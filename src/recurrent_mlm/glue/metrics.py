"""Metrics through `evaluate`, offline: our two metric modules are loaded by path, never from the Hub."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from .ece_metric import DEFAULT_BINS
from .tasks import score_of

_HERE = Path(__file__).resolve().parent
GLUE_METRIC_PATH = _HERE / "glue_metric.py"
ECE_METRIC_PATH = _HERE / "ece_metric.py"


@lru_cache(maxsize=None)
def load_metric(config_name: str):
    """The offline GLUE metric for a task config (`cola`, `mrpc`, ..., `classification`, `regression`)."""
    import evaluate

    # keep_in_memory: evaluate otherwise writes an Arrow cache per call under HF_HOME, and with several
    # processes each would lock it; we gather predictions ourselves and compute on every process.
    return evaluate.load(str(GLUE_METRIC_PATH), config_name, keep_in_memory=True)


@lru_cache(maxsize=None)
def load_ece_metric():
    import evaluate

    return evaluate.load(str(ECE_METRIC_PATH), keep_in_memory=True)


def compute_metrics(
    metric_config: str,
    score: str,
    predictions: np.ndarray,
    references: np.ndarray,
    probabilities: np.ndarray | None = None,
    n_bins: int = DEFAULT_BINS,
) -> dict:
    """Official metrics, the study's score and (with class probabilities) ECE for one evaluation split.

    A score of NaN (correlations of a constant or non-finite prediction) means the model learned nothing
    usable; `score` is then reported as NaN and callers count the run as diverged.
    """
    values = load_metric(metric_config).compute(predictions=predictions, references=references)
    out = {name: float(value) for name, value in values.items()}
    out["score"] = score_of(score, out)
    if probabilities is not None:
        ece = load_ece_metric().compute(predictions=probabilities, references=references, n_bins=n_bins)
        out["ece"] = float(ece["ece"])
        out["reliability"] = ece["bins"]
    return out


def majority_baseline(
    metric_config: str, score: str, train_labels, references, is_regression: bool
) -> tuple[float, str]:
    """Score of the trivial predictor on an evaluation split, and how it was made.

    Classification: always the most frequent training label (ties: the smallest id). Regression: a constant,
    whose correlation with anything is undefined; we count it as 0, so a run must correlate positively.
    """
    references = np.asarray(references)
    if is_regression:
        return 0.0, "constant prediction (correlation taken as 0)"
    source = np.asarray(train_labels if train_labels is not None and len(train_labels) else references)
    values, counts = np.unique(source, return_counts=True)
    majority = int(values[np.argmax(counts)])
    predictions = np.full_like(references, majority)
    value = compute_metrics(metric_config, score, predictions, references)["score"]
    return (0.0 if math.isnan(value) else value), f"always label {majority} (the most frequent training label)"


def task_baseline(data) -> tuple[float, str]:
    """The trivial predictor's score on a task's first validation split (what a run must beat)."""
    primary = data.validation_splits[0]
    train_labels = data.splits["train"]["label"] if "train" in data.splits else None
    return majority_baseline(data.metric_config, data.score, train_labels, data.splits[primary]["label"], data.is_regression)


__all__ = [
    "GLUE_METRIC_PATH",
    "ECE_METRIC_PATH",
    "load_metric",
    "load_ece_metric",
    "compute_metrics",
    "majority_baseline",
    "task_baseline",
]
