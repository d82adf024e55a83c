"""The study's figures (PNG, matplotlib's Agg backend: files only, no display).

Every run is drawn as a dot, so the spread is visible and nothing is hidden behind a mean; diverged runs
are marked (x: collapsed, triangle: no better than the trivial predictor) and stay in the mean.

Runs are dicts; the functions read the keys they are told (`x`, `y`, `group`) plus optional `collapsed`,
`trivial` or `diverged` flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .stats import wilson_interval


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    _pyplot().close(fig)
    tmp.replace(path)
    return path


def _flags(run: Mapping) -> tuple[bool, bool]:
    collapsed = bool(run.get("collapsed", False))
    trivial = bool(run.get("trivial", run.get("diverged", False))) and not collapsed
    return collapsed, trivial


def plot_runs(
    path: str | Path,
    runs: Sequence[Mapping],
    *,
    x: str,
    y: str = "score",
    group: str = "model",
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logx_base: float = 10,
    reference: float | None = None,
    reference_label: str = "trivial predictor",
) -> Path:
    """Mean over runs of `y` against `x`, one line per `group`, band = mean +- standard deviation over runs
    at each x, every run as a dot, diverged runs marked. A run with a non-finite `y` is drawn (and counted)
    at `reference` when one is given (an undefined score counts as the trivial predictor's); otherwise it is
    an error."""
    if not runs:
        raise ValueError(f"no runs to plot for {path}.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = list(dict.fromkeys(r[group] for r in runs))
    marked = set()
    for i, name in enumerate(groups):
        color = f"C{i}"
        mine = [r for r in runs if r[group] == name]
        values = []
        for r in mine:
            value = float(r[y])
            if not math.isfinite(value):
                if reference is None:
                    raise ValueError(
                        f"run {r} has a non-finite {y!r}; pass reference= (the trivial predictor's value)."
                    )
                value = reference
            values.append(value)
        xs = np.array([float(r[x]) for r in mine])
        values = np.array(values)
        grid = np.unique(xs)
        means = np.array([values[xs == g].mean() for g in grid])
        spread = np.array([values[xs == g].std(ddof=1) if (xs == g).sum() > 1 else 0.0 for g in grid])
        ax.plot(grid, means, "o-", color=color, label=str(name), markersize=4)
        ax.fill_between(grid, means - spread, means + spread, color=color, alpha=0.15, linewidth=0)
        for r, xv, v in zip(mine, xs, values):
            collapsed, trivial = _flags(r)
            if collapsed:
                ax.scatter(
                    [xv], [v], marker="x", s=45, color=color, label=None if "c" in marked else "collapsed run"
                )
                marked.add("c")
            elif trivial:
                ax.scatter(
                    [xv],
                    [v],
                    marker="v",
                    s=35,
                    facecolors="none",
                    edgecolors=color,
                    label=None if "t" in marked else "no better than trivial",
                )
                marked.add("t")
            else:
                ax.scatter([xv], [v], s=12, color=color, alpha=0.5)
    if reference is not None and math.isfinite(reference):
        ax.axhline(reference, color="0.5", linestyle="--", linewidth=1, label=reference_label)
    if logx:
        ax.set_xscale("log", base=logx_base)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_score_vs_learning_rate(
    path,
    runs,
    *,
    metric: str = "score",
    trivial_score: float | None = None,
    title: str = "",
    y: str = "score",
) -> Path:
    """Fine-tuning score against peak learning rate per model (log x). Runs: model, learning_rate, score."""
    return plot_runs(
        path,
        runs,
        x="learning_rate",
        y=y,
        xlabel="peak learning rate",
        ylabel=metric,
        title=title or "mean over seeds, band = +- 1 std, dots = runs",
        logx=True,
        reference=trivial_score,
    )


def plot_accuracy_vs_n(
    path,
    runs,
    *,
    x: str = "n",
    xlabel: str = "N (key-value pairs)",
    title: str = "",
    chance: float | None = None,
    y: str = "accuracy",
) -> Path:
    """Recall accuracy against N per model (log2 x). Runs: model, n, accuracy."""
    return plot_runs(
        path,
        runs,
        x=x,
        y=y,
        xlabel=xlabel,
        ylabel="accuracy",
        title=title,
        logx=True,
        logx_base=2,
        reference=chance,
        reference_label="chance",
    )


def plot_loss_vs_context(
    path, runs, *, x: str = "context", y: str = "loss", title: str = "", ylabel: str = "held-out MLM loss"
) -> Path:
    """Loss against the context window the model is given (log2 x), per model. Runs: model, context, loss."""
    return plot_runs(
        path,
        runs,
        x=x,
        y=y,
        xlabel="context window (tokens)",
        ylabel=ylabel,
        title=title,
        logx=True,
        logx_base=2,
    )


def plot_accuracy_vs_attractors(
    path, rows: Sequence[Mapping], *, title: str = "", confidence: float = 0.95
) -> Path:
    """Agreement accuracy against the number of attractors per model, with Wilson intervals.

    rows: {model, attractors, correct, total}; rows with the same model and attractor count are pooled, so
    the intervals are over items (pass one run per model, or read them as pooled over runs).
    """
    if not rows:
        raise ValueError(f"no rows to plot for {path}.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    models = list(dict.fromkeys(r["model"] for r in rows))
    width = 0.08 * (len(models) - 1)
    for i, model in enumerate(models):
        counts: dict[int, list[int]] = {}
        for r in rows:
            if r["model"] == model:
                cell = counts.setdefault(int(r["attractors"]), [0, 0])
                cell[0] += int(r["correct"])
                cell[1] += int(r["total"])
        ks = np.array(sorted(counts))
        correct = np.array([counts[k][0] for k in ks])
        total = np.array([counts[k][1] for k in ks])
        acc = np.where(total > 0, correct / np.maximum(total, 1), np.nan)
        low, high = wilson_interval(correct, total, confidence)
        offset = ks + (i * 0.08 - width / 2 if len(models) > 1 else 0.0)
        ax.errorbar(
            offset,
            acc,
            yerr=[acc - low, high - acc],
            fmt="o-",
            capsize=3,
            color=f"C{i}",
            label=str(model),
            markersize=4,
        )
    ax.set_xlabel("number of attractors")
    ax.set_ylabel("agreement accuracy")
    ax.set_xticks(sorted({int(r["attractors"]) for r in rows}))
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="0.5", linestyle="--", linewidth=1, label="chance")
    ax.set_title(title or f"{confidence:.0%} Wilson intervals over items", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


__all__ = [
    "plot_accuracy_vs_attractors",
    "plot_accuracy_vs_n",
    "plot_loss_vs_context",
    "plot_runs",
    "plot_score_vs_learning_rate",
]
