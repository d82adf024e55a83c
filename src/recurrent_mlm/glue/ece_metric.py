"""Expected calibration error (Guo et al. 2017) as an `evaluate` module that needs no network.

Each example's confidence is its highest class probability. Examples fall into `n_bins` equal-width bins of
confidence, (0, 1/B], (1/B, 2/B], ..., ((B-1)/B, 1]; ECE is the example-weighted mean over bins of
|accuracy - mean confidence|. 15 bins, as in Guo et al. and Abnar et al.

Loaded by path (`evaluate.load(".../ece_metric.py")`); `evaluate` imports this file alone, so it must not
import from the package around it.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Expected calibration error over equal-width confidence bins."

_CITATION = """@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={International Conference on Machine Learning},
  year={2017}
}"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-example class probabilities (each a list that sums to 1).
    references: gold label ids.
    n_bins: number of equal-width confidence bins (default 15).
Returns: `ece`, and per bin (`bins`): lower and upper edge, count, accuracy and mean confidence.
"""

DEFAULT_BINS = 15


def expected_calibration_error(probabilities, references, n_bins: int = DEFAULT_BINS) -> dict:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    references = np.asarray(references)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    if probabilities.ndim != 2 or len(probabilities) != len(references):
        raise ValueError("probabilities must be (examples, classes) with one reference per example.")
    if len(references) == 0:
        return {"ece": float("nan"), "bins": []}
    if not np.all(np.isfinite(probabilities)):
        # A diverged model (NaN logits) has no calibration to speak of.
        return {"ece": float("nan"), "bins": []}
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == references
    # Right-closed bins; a confidence of exactly 0 (impossible for a distribution) would join the first bin.
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        accuracy = float(correct[members].mean()) if count else None
        mean_confidence = float(confidence[members].mean()) if count else None
        if count:
            ece += count / len(references) * abs(accuracy - mean_confidence)
        bins.append(
            {"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": count, "accuracy": accuracy, "confidence": mean_confidence}
        )
    return {"ece": float(ece), "bins": bins}


class ExpectedCalibrationError(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, n_bins: int = DEFAULT_BINS):
        return expected_calibration_error(predictions, references, n_bins=n_bins)
