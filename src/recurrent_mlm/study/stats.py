"""The study's statistics: every number in a verdict comes from a function in this module.

Design (why each method is the one used) is in `docs/statistics.md`. In short:

- models are compared *paired*: the same pretraining seed gives every model the same batches and masks, the
  same fine-tuning seed the same data order, and every run is scored on the same evaluation items;
- intervals are percentile bootstraps that resample the design's three levels (pretraining seeds, fine-tuning
  seeds within them, evaluation items, which are crossed with the runs, so one item draw serves every run and
  every model of a resample), vectorised as multinomial weights;
- exact tests where an exact test exists (McNemar on paired items, sign-flip over paired seeds, Page's L for a
  predicted order); Holm across a family;
- no number is silently dropped: a NaN score is an error (score an undefined run at the trivial predictor's
  value, see `classify_divergence`), and a diverged run stays in every statistic.

numpy and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as _sps

LEVELS = ("pretrain", "finetune", "items")
ALTERNATIVES = ("two-sided", "greater", "less")
DEFAULT_RESAMPLES = 10_000
ECE_BINS = 15  # Guo et al. 2017 and Abnar et al.; the same binning as recurrent_mlm.glue.ece_metric
# Bootstrap differences within this fraction of the scores' magnitude are floating-point noise (BLAS may sum
# identical columns in a different order), counted as exact ties so identical models give a zero effect.
_TIE_RTOL = 1e-10
# Exact replicates' item-index draws are done in chunks of at most this many integers (16 MB of int64).
_CHUNK_INTS = 1 << 21


def _seed_rng(seed: int | np.random.Generator | np.random.SeedSequence) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed=None would make the study's intervals irreproducible; pass an integer seed.")
    return np.random.default_rng(seed)


def _finite_array(values, name: str, dtype=np.float64) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} contains NaN or inf; score an undefined or collapsed run at the trivial predictor's value "
            "(see classify_divergence) so that it stays in the statistics."
        )
    return array


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}.")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}.")


# ---------------------------------------------------------------------------------------------------------
# Descriptive statistics


def describe(values) -> dict:
    """n, mean, standard deviation (ddof=1; NaN for one value), min, median and max of run scores."""
    array = _finite_array(values, "values").ravel()
    if array.size == 0:
        raise ValueError("describe() needs at least one value.")
    return {
        "n": int(array.size),
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if array.size > 1 else math.nan,
        "min": float(array.min()),
        "median": float(np.median(array)),
        "max": float(array.max()),
    }


def variance_components(run_scores) -> dict:
    """Method-of-moments variance components of a (pretraining seeds, fine-tuning seeds) table of run scores.

    One-way random effects: y_pf = mu + u_p + v_pf. Returns the estimates of var(u) (between pretraining
    seeds, clipped at 0) and var(v) (fine-tuning seeds within one), the variance of the grand mean they imply,
    and the share of it due to pretraining seeds. Pass paired run differences to see which level dominates an
    effect's uncertainty (with few pretraining seeds a bootstrap over them is too narrow: docs/statistics.md).
    """
    y = _finite_array(run_scores, "run_scores")
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(
            f"run_scores must be (pretraining seeds >= 2, fine-tuning seeds >= 2), got {y.shape}."
        )
    p, f = y.shape
    means = y.mean(axis=1)
    within = float(((y - means[:, None]) ** 2).sum() / (p * (f - 1)))
    between_ms = float(f * ((means - means.mean()) ** 2).sum() / (p - 1))
    between = max(0.0, (between_ms - within) / f)
    var_mean = between / p + within / (p * f)
    return {
        "pretrain": between,
        "finetune": within,
        "var_of_mean": var_mean,
        "share_pretrain": (between / p) / var_mean if var_mean > 0 else math.nan,
    }


def wilson_interval(successes, total, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion (Wilson 1927); arrays broadcast. NaN where total == 0.

    Unlike the Wald interval it stays inside [0, 1] and keeps near-nominal coverage at small n and at
    proportions near 0 or 1 (Brown, Cai and DasGupta 2001): the regime of accuracy per attractor count.
    """
    _check_confidence(confidence)
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("successes must lie in [0, total].")
    z = _sps.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / n
        denom = 1 + z * z / n
        centre = (phat + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
        low = np.clip(centre - half, 0.0, 1.0)
        high = np.clip(centre + half, 0.0, 1.0)
    low = np.where(n > 0, low, np.nan)
    high = np.where(n > 0, high, np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


# ---------------------------------------------------------------------------------------------------------
# Item metrics as sums of per-item features, so that a resample of items is a weighted sum (a matrix product)


@dataclass(frozen=True)
class ItemMetric:
    """A score computed from sums over items of per-item features, so resampling items is a weighted sum.

    `features(values, labels)` maps (models, pretrain, finetune, items) values to (..., items, k) features;
    `finish(sums, n)` maps (..., k) weighted sums over n items to the score.
    """

    name: str
    needs_labels: bool
    features: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    finish: Callable[[np.ndarray, float], np.ndarray]
    exact: bool  # features are integers: sums are exact in float64 whatever the summation order


def _mean_features(values, labels):
    return values[..., None]


def _mean_finish(sums, n):
    return sums[..., 0] / n


def _accuracy_features(values, labels):
    return (values == labels).astype(np.float64)[..., None]


def _class_ids(values: np.ndarray, labels: np.ndarray) -> int:
    for name, array in (("predictions", values), ("labels", labels)):
        if np.any(array < 0) or np.any(array != np.round(array)):
            raise ValueError(f"{name} for a classification metric must be non-negative class ids.")
    return int(max(values.max(initial=0), labels.max(initial=0))) + 1


def _mcc_features(values, labels):
    classes = _class_ids(values, labels)
    cell = labels.astype(np.int64) * classes + values.astype(np.int64)  # (..., items): true * C + predicted
    return (cell[..., None] == np.arange(classes * classes)).astype(np.float64)


def _mcc_finish(sums, n):
    classes = math.isqrt(sums.shape[-1])
    confusion = sums.reshape(*sums.shape[:-1], classes, classes)  # (..., true, predicted)
    total = confusion.sum(axis=(-2, -1))
    correct = np.trace(confusion, axis1=-2, axis2=-1)
    true = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    numerator = correct * total - (true * predicted).sum(axis=-1)
    denominator = np.sqrt((total**2 - (predicted**2).sum(axis=-1)) * (total**2 - (true**2).sum(axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        # sklearn's convention: a constant predictor (or a single class) has MCC 0.
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)


def _f1_features(values, labels):
    values = values.astype(bool) if np.isin(values, (0, 1)).all() else None
    if values is None or not np.isin(labels, (0, 1)).all():
        raise ValueError("metric 'f1' is binary: predictions and labels must be 0/1 (positive class 1).")
    labels = labels.astype(bool)
    tp = values & labels
    fp = values & ~labels
    fn = ~values & labels
    return np.stack(np.broadcast_arrays(tp, fp, fn), axis=-1).astype(np.float64)


def _f1_finish(sums, n):
    tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1.0), 0.0)


def _pearson_features(values, labels):
    # Centring first (per run, and the labels once) keeps the moment sums free of cancellation.
    x = values - values.mean(axis=-1, keepdims=True)
    y = np.broadcast_to(labels - labels.mean(), x.shape)
    return np.stack([x, y, x * x, y * y, x * y], axis=-1)


def _pearson_finish(sums, n):
    sx, sy, sxx, syy, sxy = (sums[..., i] for i in range(5))
    cov = sxy - sx * sy / n
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    denominator = np.sqrt(np.clip(vx, 0, None) * np.clip(vy, 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        # A constant prediction has no correlation: scored 0, like a trivial predictor.
        return np.where(denominator > 0, cov / np.where(denominator > 0, denominator, 1.0), 0.0)


METRICS: dict[str, ItemMetric] = {
    "mean": ItemMetric("mean", False, _mean_features, _mean_finish, exact=False),
    "accuracy": ItemMetric("accuracy", True, _accuracy_features, _mean_finish, exact=True),
    "mcc": ItemMetric("mcc", True, _mcc_features, _mcc_finish, exact=True),
    "f1": ItemMetric("f1", True, _f1_features, _f1_finish, exact=True),
    "pearson": ItemMetric("pearson", True, _pearson_features, _pearson_finish, exact=False),
}


def item_metric(name: str) -> ItemMetric:
    if name not in METRICS:
        raise ValueError(
            f"unknown item metric {name!r}; choose one of {sorted(METRICS)} (Spearman is not a sum over items: "
            "bootstrap Pearson, or pass run scores)."
        )
    return METRICS[name]


# ---------------------------------------------------------------------------------------------------------
# The paired hierarchical bootstrap


@dataclass(frozen=True)
class TaskResults:
    """One task's results for every model, on a shared design.

    `scores[model]` is either (pretraining seeds, fine-tuning seeds, items): per-item values (0/1 correctness
    or a per-item loss for metric "mean"; predicted class ids or values for "accuracy", "mcc", "f1",
    "pearson", which need `labels`), or (pretraining seeds, fine-tuning seeds): one score per run (no items
    level). Index [p, f] must be the same pretraining and fine-tuning seed for every model (the pairing), and
    item i the same evaluation example in every run.
    """

    scores: Mapping[str, Any]
    labels: Any = None
    metric: str = "mean"
    name: str = ""
    weight: float = 1.0


@dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap estimate: the point estimate, its percentile interval, standard error and p-value.

    For a difference, `p_value` is two-sided and the smallest level at which the percentile interval excludes
    zero (so `p_value < 1 - confidence` exactly when the interval excludes zero); its resolution is
    2 / n_resamples. For a single model's score it is NaN.
    """

    estimate: float
    low: float
    high: float
    se: float
    p_value: float
    confidence: float
    n_resamples: int
    method: str
    sizes: dict
    estimates: dict
    distribution: np.ndarray = field(repr=False, compare=False)
    diagnostics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "diagnostics": self.diagnostics,
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "se": self.se,
            "p_value": self.p_value,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "method": self.method,
            "sizes": self.sizes,
            "estimates": self.estimates,
        }


def _percentile_interval(distribution: np.ndarray, confidence: float) -> tuple[float, float]:
    # Lower end: the empirical alpha/2 quantile; upper end mirrored (the alpha/2 quantile of -d), so the
    # interval excludes 0 exactly when the two-sided p-value below is under alpha, on either side.
    tail = (1 - confidence) / 2
    low = float(np.quantile(distribution, tail, method="inverted_cdf"))
    high = float(-np.quantile(-distribution, tail, method="inverted_cdf"))
    return low, high


def _two_sided_p(distribution: np.ndarray) -> float:
    return float(min(1.0, 2 * min(np.mean(distribution <= 0), np.mean(distribution >= 0))))


@dataclass(frozen=True)
class HierarchicalBootstrap:
    """Bootstrap replicates of every model's score on every task, from one shared set of resamples.

    `replicates` is (n_resamples, tasks, models); `estimates` (tasks, models) are the point estimates (each
    model's score averaged over its runs). Ask for a paired difference with `difference(a, b)` (task=None: the
    weighted mean over tasks), for one model's interval with `score(model)`.
    """

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    task_weights: np.ndarray
    estimates: np.ndarray
    replicates: np.ndarray = field(repr=False)
    confidence: float
    n_resamples: int
    resampled: tuple[str, ...]
    sizes: tuple[dict, ...]
    metrics: tuple[str, ...]
    runs: np.ndarray = field(repr=False)  # (tasks, models, pretrain, finetune) point scores of each run

    def _series(self, model: str, task: str | None) -> tuple[float, np.ndarray]:
        if model not in self.models:
            raise ValueError(f"unknown model {model!r}; the bootstrap has {list(self.models)}.")
        m = self.models.index(model)
        if task is None:
            w = self.task_weights / self.task_weights.sum()
            return float(self.estimates[:, m] @ w), self.replicates[:, :, m] @ w
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}; the bootstrap has {list(self.tasks)}.")
        t = self.tasks.index(task)
        return float(self.estimates[t, m]), self.replicates[:, t, m]

    def _method(self, task: str | None) -> str:
        sizes = self.sizes if task is None else (self.sizes[self.tasks.index(task)],)
        levels = []
        for level in LEVELS:
            counts = sorted({s[level] for s in sizes if level in s})
            if counts:
                resampled = level in self.resampled
                levels.append(f"{level} ({'/'.join(map(str, counts))}{'' if resampled else ', fixed'})")
        scope = f", mean over {len(self.tasks)} tasks" if task is None and len(self.tasks) > 1 else ""
        return f"paired percentile bootstrap, {self.n_resamples} resamples of " + " > ".join(levels) + scope

    def _sizes(self, task: str | None) -> dict:
        if task is not None:
            return dict(self.sizes[self.tasks.index(task)])
        if len(self.sizes) == 1:
            return dict(self.sizes[0])
        return {"tasks": {name: dict(s) for name, s in zip(self.tasks, self.sizes)}}

    def _seed_diagnostics(self, a: str, b: str, task: str | None, se: float) -> dict:
        # How much of the effect's uncertainty lies between pretraining seeds: the unbiased variance of the
        # mean of per-pretraining-seed run differences over the bootstrap's variance. With few pretraining
        # seeds carrying most of it, the percentile interval is too narrow (docs/statistics.md).
        weights = self.task_weights / self.task_weights.sum()
        if task is not None:
            weights = (np.arange(len(self.tasks)) == self.tasks.index(task)).astype(np.float64)
        ia, ib = self.models.index(a), self.models.index(b)
        runs = np.tensordot(weights, self.runs[:, ia] - self.runs[:, ib], axes=1)  # (pretrain, finetune)
        n_pre = runs.shape[0]
        if n_pre < 2:
            return {"pretrain_seeds": n_pre, "seed_variance_share": math.nan}
        between = float(runs.mean(axis=1).var(ddof=1) / n_pre)
        share = min(1.0, between / se**2) if se > 0 else math.nan
        return {"pretrain_seeds": n_pre, "seed_variance_share": share}

    def difference(self, a: str, b: str, task: str | None = None) -> BootstrapResult:
        """The paired effect score(a) - score(b), on one task or on the weighted mean over tasks."""
        est_a, rep_a = self._series(a, task)
        est_b, rep_b = self._series(b, task)
        scale = np.maximum(np.abs(rep_a), np.abs(rep_b))
        d = rep_a - rep_b
        d[np.abs(d) <= _TIE_RTOL * scale] = 0.0
        estimate = est_a - est_b
        if abs(estimate) <= _TIE_RTOL * max(abs(est_a), abs(est_b)):
            estimate = 0.0
        low, high = _percentile_interval(d, self.confidence)
        se = float(d.std(ddof=1))
        return BootstrapResult(
            diagnostics=self._seed_diagnostics(a, b, task, se),
            estimate=float(estimate),
            low=low,
            high=high,
            se=se,
            p_value=_two_sided_p(d),
            confidence=self.confidence,
            n_resamples=self.n_resamples,
            method=self._method(task),
            sizes=self._sizes(task),
            estimates={a: est_a, b: est_b},
            distribution=d,
        )

    def score(self, model: str, task: str | None = None) -> BootstrapResult:
        """One model's score (mean over its runs) with a percentile interval from the same resamples."""
        estimate, rep = self._series(model, task)
        low, high = _percentile_interval(rep, self.confidence)
        return BootstrapResult(
            estimate=estimate,
            low=low,
            high=high,
            se=float(rep.std(ddof=1)),
            p_value=math.nan,
            confidence=self.confidence,
            n_resamples=self.n_resamples,
            method=self._method(task).replace("paired ", ""),
            sizes=self._sizes(task),
            estimates={model: estimate},
            distribution=rep,
        )


def _prepare_task(task: TaskResults, models: tuple[str, ...], index: int) -> dict:
    name = task.name or f"task{index}"
    if set(task.scores) != set(models):
        raise ValueError(
            f"task {name!r} has models {sorted(task.scores)}; every task needs {sorted(models)}."
        )
    metric = item_metric(task.metric)
    arrays = [_finite_array(task.scores[m], f"scores[{m!r}] of task {name!r}") for m in models]
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays):
        raise ValueError(
            f"task {name!r}: every model needs the same (pretrain, finetune[, items]) shape for a paired design; "
            f"got {[a.shape for a in arrays]}."
        )
    if len(shape) not in (2, 3) or 0 in shape:
        raise ValueError(
            f"task {name!r}: scores must be (pretraining seeds, fine-tuning seeds, items) per-item values or "
            f"(pretraining seeds, fine-tuning seeds) run scores, got shape {shape}."
        )
    if not float(task.weight) > 0:
        raise ValueError(f"task {name!r}: weight must be positive, got {task.weight}.")
    values = np.stack(arrays)  # (models, pretrain, finetune[, items])
    prepared = {"name": name, "metric": metric.name, "weight": float(task.weight), "pf": shape[:2]}
    if len(shape) == 2:
        if metric.name != "mean" or task.labels is not None:
            raise ValueError(f"task {name!r}: run scores (no items level) take metric 'mean' and no labels.")
        prepared.update(items=0, runs=values, sizes={"pretrain": shape[0], "finetune": shape[1]})
        return prepared
    labels = None
    if metric.needs_labels:
        if task.labels is None:
            raise ValueError(f"task {name!r}: metric {metric.name!r} needs labels (one per item).")
        labels = _finite_array(task.labels, f"labels of task {name!r}")
        if labels.shape != (shape[2],):
            raise ValueError(f"task {name!r}: labels must be ({shape[2]},), got {labels.shape}.")
    elif task.labels is not None:
        raise ValueError(f"task {name!r}: metric 'mean' takes per-item scores and no labels; use 'accuracy'.")
    features = metric.features(values, labels)  # (models, pretrain, finetune, items, k)
    n_items = shape[2]
    k = features.shape[-1]
    matrix = np.ascontiguousarray(np.moveaxis(features, 3, 0).reshape(n_items, -1))  # (items, M*P*F*k)
    runs = metric.finish(matrix.sum(axis=0).reshape(len(models), *shape[:2], k), n_items)
    prepared.update(
        items=n_items,
        runs=runs,
        matrix=matrix,
        k=k,
        finish=metric.finish,
        sizes={"pretrain": shape[0], "finetune": shape[1], "items": n_items},
    )
    return prepared


def hierarchical_bootstrap(
    tasks: TaskResults | Sequence[TaskResults],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    resample: Sequence[str] = LEVELS,
) -> HierarchicalBootstrap:
    """Percentile-bootstrap replicates of every model's score, resampling the design's levels.

    Each replicate draws pretraining seeds with replacement, then, within each drawn pretraining seed,
    fine-tuning seeds with replacement, then evaluation items with replacement once for the whole replicate
    (items are crossed with runs: every run and every model is scored on the same resampled test set). The
    same draws serve every model (the pairing) and every task (tasks share seeds; items are drawn per task).
    A run's score is its metric on the resampled items; a model's score is the mean over drawn runs. Levels
    not in `resample` stay fixed (inference conditional on them). Vectorised: seed draws are multinomial
    counts, item draws are bincounts, a task's replicates are one matrix product.
    """
    _check_confidence(confidence)
    if isinstance(tasks, TaskResults):
        tasks = [tasks]
    if not tasks:
        raise ValueError("hierarchical_bootstrap needs at least one task.")
    if int(n_resamples) < 100:
        raise ValueError(
            f"n_resamples={n_resamples} is too few for a 95% interval; use >= 1000 (default 10000)."
        )
    resample = tuple(resample)
    unknown = set(resample) - set(LEVELS)
    if unknown:
        raise ValueError(f"resample names unknown levels {sorted(unknown)}; choose from {LEVELS}.")
    models = tuple(tasks[0].scores)
    if len(models) == 0:
        raise ValueError("a task needs at least one model's scores.")
    prepared = [_prepare_task(t, models, i) for i, t in enumerate(tasks)]
    names = [p["name"] for p in prepared]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}.")
    pf = prepared[0]["pf"]
    if any(p["pf"] != pf for p in prepared):
        raise ValueError(
            f"every task must share the seeds design (pretrain, finetune); got {[p['pf'] for p in prepared]}."
        )
    n_pre, n_fine = pf
    n_models = len(models)
    rng = _seed_rng(seed)
    n_resamples = int(n_resamples)
    replicates = np.empty((n_resamples, len(prepared), n_models))
    chunk = max(1, min(n_resamples, _CHUNK_INTS // max(1, max(p["items"] for p in prepared))))
    for start in range(0, n_resamples, chunk):
        c = min(chunk, n_resamples - start)
        if "pretrain" in resample:
            pre = rng.multinomial(n_pre, np.full(n_pre, 1.0 / n_pre), size=c)  # (c, P) draws of each seed
        else:
            pre = np.ones((c, n_pre), dtype=np.int64)
        if "finetune" in resample:
            # Each drawn copy of pretraining seed p draws F fine-tuning seeds; the sum of n independent
            # Multinomial(F, 1/F) counts is Multinomial(n F, 1/F).
            run_weights = rng.multinomial(pre * n_fine, np.full(n_fine, 1.0 / n_fine))  # (c, P, F)
        else:
            run_weights = pre[:, :, None] * np.ones(n_fine, dtype=np.int64)
        run_weights = run_weights.astype(np.float64) / (n_pre * n_fine)
        for t, task in enumerate(prepared):
            if task["items"] and "items" in resample:
                n_items = task["items"]
                # int32 halves the draw's cost; c * n_items <= _CHUNK_INTS cannot overflow it.
                draws = rng.integers(0, n_items, size=(c, n_items), dtype=np.int32)
                draws += (np.arange(c, dtype=np.int32) * n_items)[:, None]
                counts = np.bincount(draws.ravel(), minlength=c * n_items).reshape(c, n_items)
                sums = counts.astype(np.float64) @ task["matrix"]  # (c, M*P*F*k)
                runs = task["finish"](sums.reshape(c, n_models, n_pre, n_fine, task["k"]), n_items)
                replicates[start : start + c, t] = np.einsum("cpf,cmpf->cm", run_weights, runs)
            else:
                replicates[start : start + c, t] = np.einsum("cpf,mpf->cm", run_weights, task["runs"])
    return HierarchicalBootstrap(
        models=models,
        tasks=tuple(names),
        task_weights=np.array([p["weight"] for p in prepared]),
        estimates=np.array([p["runs"].mean(axis=(1, 2)) for p in prepared]),
        replicates=replicates,
        confidence=confidence,
        n_resamples=n_resamples,
        resampled=tuple(level for level in LEVELS if level in resample),
        sizes=tuple(p["sizes"] for p in prepared),
        metrics=tuple(p["metric"] for p in prepared),
        runs=np.stack([p["runs"] for p in prepared]),
    )


def paired_bootstrap(
    a, b, *, labels=None, metric: str = "mean", names: tuple[str, str] = ("a", "b"), **kwargs
) -> BootstrapResult:
    """Paired bootstrap of score(a) - score(b) for two models on one task.

    a, b: (pretraining seeds, fine-tuning seeds, items) per-item values, or (pretraining seeds, fine-tuning
    seeds) run scores. `names` label the two models in the result. Keyword arguments go to
    `hierarchical_bootstrap`.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"names must be two distinct model names, got {names!r}.")
    task = TaskResults(scores={names[0]: a, names[1]: b}, labels=labels, metric=metric, name="task")
    return hierarchical_bootstrap(task, **kwargs).difference(*names)


def paired_seed_bootstrap(a, b, **kwargs) -> BootstrapResult:
    """Paired bootstrap over seeds only (no per-item results): a, b are (seeds,) or (pretrain, finetune)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.ndim != 2:
        raise ValueError(
            f"seed scores must be (seeds,) or (pretraining seeds, fine-tuning seeds), got {a.shape}."
        )
    return paired_bootstrap(a, b, **kwargs)


def paired_item_bootstrap(a, b, *, labels=None, metric: str = "mean", **kwargs) -> BootstrapResult:
    """Paired bootstrap over evaluation items only (one run of each model): a, b are (items,)."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1:
        raise ValueError(f"per-item results of one run must be (items,), got {a.shape}.")
    return paired_bootstrap(a[None, None], b[None, None], labels=labels, metric=metric, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Exact tests and multiplicity


@dataclass(frozen=True)
class McNemarResult:
    a_only: int  # items model a got right and model b wrong
    b_only: int
    n_items: int
    p_value: float
    alternative: str

    @property
    def n_discordant(self) -> int:
        return self.a_only + self.b_only

    def to_dict(self) -> dict:
        return {
            "a_only": self.a_only,
            "b_only": self.b_only,
            "n_discordant": self.n_discordant,
            "n_items": self.n_items,
            "p_value": self.p_value,
            "alternative": self.alternative,
        }


def mcnemar_exact(correct_a, correct_b, *, alternative: str = "two-sided") -> McNemarResult:
    """Exact McNemar test on paired per-item correctness of two runs (McNemar 1947, exact binomial form).

    Under H0 (both models equally accurate on these items) each discordant item is equally likely to favour
    either model, so a_only ~ Binomial(a_only + b_only, 1/2). Two-sided p doubles the smaller tail (capped at
    1); "greater" tests a better than b. No discordant items gives p = 1.
    """
    _check_alternative(alternative)
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"correct_a and correct_b must be paired (items,) arrays, got {a.shape} and {b.shape}."
        )
    for name, x in (("correct_a", a), ("correct_b", b)):
        if not np.isin(x, (0, 1)).all():
            raise ValueError(f"{name} must be 0/1 or boolean per-item correctness.")
    a = a.astype(bool)
    b = b.astype(bool)
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(_sps.binomtest(a_only, n, 0.5, alternative=alternative).pvalue)
    return McNemarResult(
        a_only=a_only, b_only=b_only, n_items=int(a.size), p_value=min(1.0, p), alternative=alternative
    )


@dataclass(frozen=True)
class SignFlipResult:
    mean_difference: float
    n: int
    p_value: float
    exact: bool
    n_permutations: int
    alternative: str

    def to_dict(self) -> dict:
        return {
            "mean_difference": self.mean_difference,
            "n": self.n,
            "p_value": self.p_value,
            "exact": self.exact,
            "n_permutations": self.n_permutations,
            "alternative": self.alternative,
        }


def sign_flip_test(
    differences,
    *,
    alternative: str = "two-sided",
    max_exact: int = 16,
    n_resamples: int = 100_000,
    seed: int | np.random.Generator = 0,
) -> SignFlipResult:
    """Permutation test of a zero mean over paired differences by flipping their signs (Fisher 1935).

    Under H0 each paired difference (model a - model b on one seed) is symmetric about 0, so every sign
    pattern is equally likely. The statistic is the mean difference. With n <= max_exact all 2^n patterns are
    enumerated (exact; the smallest two-sided p is 2 / 2^n, so n = 5 is the least that can reach p < 0.05);
    beyond, n_resamples random patterns with the (1 + hits) / (1 + n_resamples) estimate (Phipson and Smyth
    2010). The differences must be independent: with nested seeds pass one mean difference per pretraining
    seed.
    """
    _check_alternative(alternative)
    d = _finite_array(differences, "differences").ravel()
    n = d.size
    if n == 0:
        raise ValueError("sign_flip_test needs at least one paired difference.")
    observed = float(d.mean())
    # Sums of the same numbers in another order may differ in the last bits: count those as ties.
    tolerance = 1e-9 * max(float(np.abs(d).sum()), 1e-300) / n
    if n <= max_exact:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # (2^n, n) of +-1
        means = patterns @ d / n
        exact = True
    else:
        rng = _seed_rng(seed)
        means = np.empty(int(n_resamples))
        step = max(1, _CHUNK_INTS // n)
        for start in range(0, int(n_resamples), step):
            c = min(step, int(n_resamples) - start)
            means[start : start + c] = (rng.integers(0, 2, size=(c, n)) * 2 - 1) @ d / n
        exact = False
    if alternative == "two-sided":
        hits = np.abs(means) >= abs(observed) - tolerance
    elif alternative == "greater":
        hits = means >= observed - tolerance
    else:
        hits = means <= observed + tolerance
    count = int(hits.sum())
    p = count / means.size if exact else (1 + count) / (1 + means.size)
    return SignFlipResult(
        mean_difference=observed,
        n=n,
        p_value=float(min(1.0, p)),
        exact=exact,
        n_permutations=int(means.size),
        alternative=alternative,
    )


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979): reject H_i at family-wise level alpha iff adjusted < alpha.

    Sorted ascending, p_(j) is multiplied by (m - j + 1), running maxima keep the step-down order, capped at 1.
    Valid under any dependence between the tests.
    """
    p = _finite_array(p_values, "p_values").ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1].")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


# ---------------------------------------------------------------------------------------------------------
# Trend test for a predicted order of k models


@dataclass(frozen=True)
class TrendResult:
    """Page's L test of a predicted order, with a signed effect size and a bootstrap interval over blocks.

    `rho` is Page's L rescaled to the mean Spearman correlation between the predicted order and each block's
    observed order: +1 when every block (seed) ranks the models exactly as predicted, -1 when exactly reversed,
    about 0 at random. `p_value` is two-sided: 2 * min(p_increasing, p_decreasing), capped at 1.
    """

    order: tuple[str, ...]
    statistic: float
    rho: float
    low: float
    high: float
    se: float
    p_value: float
    p_increasing: float
    p_decreasing: float
    n_blocks: int
    confidence: float
    method: str

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def trend_test(
    scores,
    order: Sequence[str] | None = None,
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int | np.random.Generator = 0,
) -> TrendResult:
    """Page's (1963) L test that k models' scores rise in a predicted order, over n independent blocks.

    scores: a mapping model -> (n_blocks,) scores with `order` listing the models from predicted lowest to
    predicted highest, or an (n_blocks, k) array whose columns are in that order. A block is one independent
    replicate in which every model was trained the same way (a pretraining seed: same corpus order and
    masks); average nested fine-tuning runs within it first. For a predicted *decrease* (e.g. calibration
    error), list the models in the order predicted to fall and read `p_decreasing`, or reverse the order.
    Page's L is the within-block permutation test of the mean Spearman correlation with the predicted order,
    exact for small designs (scipy), so its p-value needs no distributional assumption. Tied scores within a
    block share their average rank; the exact null assumes no ties, so with ties the p-value is approximate.
    """
    _check_confidence(confidence)
    if isinstance(scores, Mapping):
        if order is None:
            raise ValueError("pass order=(lowest, ..., highest) predicted, naming the models in scores.")
        missing = [m for m in order if m not in scores]
        if missing:
            raise ValueError(f"order names models with no scores: {missing}.")
        columns = [_finite_array(scores[m], f"scores[{m!r}]").ravel() for m in order]
        if len({c.size for c in columns}) != 1:
            raise ValueError("every model needs one score per block (the same blocks, paired).")
        data = np.stack(columns, axis=1)
    else:
        data = _finite_array(scores, "scores")
        if order is None:
            order = tuple(f"model{j}" for j in range(data.shape[-1]))
    order = tuple(order)
    if data.ndim != 2 or data.shape[1] < 3 or data.shape[0] < 1:
        raise ValueError(f"a trend test needs (blocks >= 1, models >= 3) scores, got shape {data.shape}.")
    if data.shape[1] != len(order):
        raise ValueError(f"order has {len(order)} models but scores have {data.shape[1]} columns.")
    n, k = data.shape
    increasing = _sps.page_trend_test(data)
    decreasing = _sps.page_trend_test(data[:, ::-1])
    ranks = _sps.rankdata(data, axis=1)  # ties share their average rank, as in Page's test
    positions = np.arange(1, k + 1)
    # Per block: L_i = sum_j j * r_ij; with no ties rho_i = 12 L_i / (k (k^2 - 1)) - 3 (k + 1) / (k - 1).
    block_rho = 12 * (ranks @ positions) / (k * (k * k - 1)) - 3 * (k + 1) / (k - 1)
    rho = float(block_rho.mean())
    rng = _seed_rng(seed)
    draws = rng.integers(0, n, size=(int(n_resamples), n))
    boot = block_rho[draws].mean(axis=1)
    low, high = _percentile_interval(boot, confidence)
    return TrendResult(
        order=order,
        statistic=float(increasing.statistic),
        rho=rho,
        low=low,
        high=high,
        se=float(boot.std(ddof=1)),
        p_value=float(min(1.0, 2 * min(increasing.pvalue, decreasing.pvalue))),
        p_increasing=float(increasing.pvalue),
        p_decreasing=float(decreasing.pvalue),
        n_blocks=n,
        confidence=confidence,
        method=f"Page's L test ({increasing.method}), {n} blocks x {k} models; interval: bootstrap over blocks",
    )


def spread_scores(scores) -> np.ndarray:
    """Brown-Forsythe transform: |score - the model's median over blocks|, per (block, model).

    Feed it to `trend_test` to test a predicted order of run-to-run *variability* (Abnar et al.'s A3) with
    the blocked design; with few blocks this has little power, which the interval will show.
    """
    data = _finite_array(scores, "scores")
    if data.ndim != 2:
        raise ValueError(f"scores must be (blocks, models), got {data.shape}.")
    return np.abs(data - np.median(data, axis=0, keepdims=True))


# ---------------------------------------------------------------------------------------------------------
# Calibration


def _class_probabilities(probabilities, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim == 1:
        p = np.stack([1 - p, p], axis=1)  # binary: the probability of class 1
    if p.ndim != 2 or p.shape[0] != y.shape[0] or y.ndim != 1:
        raise ValueError(
            f"probabilities must be (examples,) for binary or (examples, classes), with one label per example; "
            f"got {np.shape(probabilities)} and {y.shape}."
        )
    if np.all(np.isfinite(p)):
        if np.any(p < -1e-6) or np.any(np.abs(p.sum(axis=1) - 1) > 1e-4):
            raise ValueError(
                "probabilities must be in [0, 1] and sum to 1 per example: pass softmax outputs, not logits."
            )
        if np.any((y < 0) | (y >= p.shape[1])):
            raise ValueError(f"labels must be class ids in [0, {p.shape[1]}).")
    return p, y.astype(np.int64)


def expected_calibration_error(probabilities, labels, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE over equal-width confidence bins (Guo et al. 2017), as in recurrent_mlm.glue.ece_metric.

    Confidence is the highest class probability; bins (0, 1/B], ..., ((B-1)/B, 1]; ECE = sum over bins of
    (bin size / N) * |accuracy - mean confidence|. Binary input (examples,) is the probability of class 1.
    NaN for non-finite probabilities (a collapsed model has no calibration) or no examples.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    p, y = _class_probabilities(probabilities, labels)
    if y.size == 0 or not np.all(np.isfinite(p)):
        return math.nan
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    # Per bin, |sum of correctness - sum of confidence| / N is (bin size / N) * |accuracy - mean confidence|.
    gap = np.abs(np.bincount(index, correct, n_bins) - np.bincount(index, confidence, n_bins))
    return float(gap.sum() / y.size)


def brier_score(probabilities, labels) -> float:
    """Brier (1950) score, lower is better. Binary (examples,): mean (p1 - y)^2, in [0, 1].

    Multi-class (examples, classes): mean over examples of sum_c (p_c - [y = c])^2, in [0, 2] (for two
    classes, twice the binary form: report which one you use).
    """
    binary = np.ndim(probabilities) == 1
    p, y = _class_probabilities(probabilities, labels)
    if y.size == 0 or not np.all(np.isfinite(p)):
        return math.nan
    if binary:
        return float(np.mean((p[:, 1] - y) ** 2))
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(((p - onehot) ** 2).sum(axis=1)))


# ---------------------------------------------------------------------------------------------------------
# Divergence


@dataclass(frozen=True)
class Divergence:
    """Two definitions of a failed run, reported side by side.

    collapsed: the training loss became NaN/inf, the score is undefined, or every evaluation example got the
    same prediction. trivial: the final score is no better than the trivial predictor's (Dodge et al. 2020,
    Mosbach et al. 2021: a run at or below the majority-class score failed).
    """

    collapsed: bool
    trivial: bool
    reasons: tuple[str, ...]

    @property
    def diverged(self) -> bool:
        return self.collapsed or self.trivial

    def to_dict(self) -> dict:
        return {
            "collapsed": self.collapsed,
            "trivial": self.trivial,
            "diverged": self.diverged,
            "reasons": list(self.reasons),
        }


def classify_divergence(
    *,
    score: float,
    trivial_score: float,
    losses=None,
    predictions=None,
    higher_is_better: bool = True,
    tolerance: float = 1e-9,
) -> Divergence:
    """Classify one run's failure under both definitions (see `Divergence`).

    losses: the training losses (or only the last); predictions: the final evaluation predictions (class ids,
    or values for regression). A run with an undefined score should be scored at `trivial_score` in the
    statistics: it failed, and it stays in.
    """
    reasons = []
    collapsed = False
    if losses is not None:
        losses = np.asarray(losses, dtype=np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            collapsed = True
            reasons.append(f"non-finite training loss (first at loss #{int(bad[0])})")
    score = float(score)
    if not math.isfinite(score):
        collapsed = True
        reasons.append("undefined score")
    if predictions is not None:
        predictions = np.asarray(predictions).ravel()
        if predictions.size > 1 and np.all(predictions == predictions[0]):
            collapsed = True
            reasons.append(f"the same prediction ({predictions[0]!r}) for all {predictions.size} examples")
    trivial = not math.isfinite(score) or (
        score <= trivial_score + tolerance if higher_is_better else score >= trivial_score - tolerance
    )
    if trivial and math.isfinite(score):
        reasons.append(f"score {score:.4f} no better than the trivial predictor's {trivial_score:.4f}")
    return Divergence(collapsed=collapsed, trivial=trivial, reasons=tuple(reasons))


def failure_rate(flags, confidence: float = 0.95) -> dict:
    """Failed runs out of all runs, with a Wilson interval (the failed-run rate of Dodge et al. 2020)."""
    flags = np.asarray(flags, dtype=bool).ravel()
    failed = int(flags.sum())
    low, high = wilson_interval(failed, flags.size, confidence)
    return {
        "failed": failed,
        "runs": int(flags.size),
        "rate": failed / flags.size if flags.size else math.nan,
        "low": low,
        "high": high,
    }


__all__ = [
    "ALTERNATIVES",
    "ECE_BINS",
    "LEVELS",
    "METRICS",
    "BootstrapResult",
    "Divergence",
    "HierarchicalBootstrap",
    "ItemMetric",
    "McNemarResult",
    "SignFlipResult",
    "TaskResults",
    "TrendResult",
    "brier_score",
    "classify_divergence",
    "describe",
    "expected_calibration_error",
    "failure_rate",
    "hierarchical_bootstrap",
    "holm",
    "item_metric",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_item_bootstrap",
    "paired_seed_bootstrap",
    "sign_flip_test",
    "spread_scores",
    "trend_test",
    "variance_components",
    "wilson_interval",
]
