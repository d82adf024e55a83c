"""GLUE's official metrics as an `evaluate` module that needs no network.

`evaluate.load("glue", task)` fetches its script from the Hub; this file computes the same numbers (MCC for
CoLA, accuracy and F1 for MRPC and QQP, Pearson and Spearman for STS-B, accuracy otherwise) and is loaded by
path: `evaluate.load(".../glue_metric.py", "mrpc")`. Two extra configurations serve custom datasets:
`classification` (accuracy and macro F1) and `regression` (Pearson and Spearman).

`evaluate` copies this file into its module cache and imports it alone, so it must not import from the
package around it.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

_DESCRIPTION = """Offline GLUE metrics: the per-task official metrics of the GLUE benchmark, plus `classification`
and `regression` configurations for custom datasets."""

_CITATION = """@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted label ids (classification) or scores (`stsb`, `regression`).
    references: gold label ids or scores.
Returns: a dict with `matthews_correlation` (cola); `accuracy` and `f1` (mrpc, qqp; macro F1 for
    `classification`); `pearson` and `spearmanr` (stsb, regression); `accuracy` (the other tasks).
"""

CLASSIFICATION_TASKS = ("sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli", "hans", "ax")
CONFIGS = ("cola", "mrpc", "qqp", "stsb", "classification", "regression", *CLASSIFICATION_TASKS)
REGRESSION_CONFIGS = ("stsb", "regression")


def correlations(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    # A constant prediction has no correlation: scipy warns and returns NaN, which callers treat as failure.
    if len(predictions) < 2 or np.ptp(predictions) == 0 or not np.all(np.isfinite(predictions)):
        return {"pearson": float("nan"), "spearmanr": float("nan")}
    return {
        "pearson": float(pearsonr(predictions, references)[0]),
        "spearmanr": float(spearmanr(predictions, references)[0]),
    }


def compute_glue_metrics(config_name: str, predictions, references) -> dict[str, float]:
    predictions = np.asarray(predictions)
    references = np.asarray(references)
    if config_name in REGRESSION_CONFIGS:
        return correlations(predictions.astype(np.float64), references.astype(np.float64))
    accuracy = float((predictions == references).mean()) if len(references) else float("nan")
    if config_name == "cola":
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}
    if config_name in ("mrpc", "qqp"):
        return {"accuracy": accuracy, "f1": float(f1_score(references, predictions, zero_division=0.0))}
    if config_name == "classification":
        return {"accuracy": accuracy, "f1": float(f1_score(references, predictions, average="macro", zero_division=0.0))}
    return {"accuracy": accuracy}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GlueMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown configuration {self.config_name!r}; choose one of {', '.join(CONFIGS)}.")
        value = "float32" if self.config_name in REGRESSION_CONFIGS else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(value), "references": datasets.Value(value)}),
            format="numpy",
        )

    def _compute(self, predictions, references):
        return compute_glue_metrics(self.config_name, predictions, references)
