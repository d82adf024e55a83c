"""The stability report of a sweep: every run (JSON, CSV), a table per model x learning rate, a plot, a summary.

Statistics are over seeds. A run whose score is undefined (NaN: non-finite outputs, or constant predictions
on a regression task) counts at the trivial predictor's score, which is what such a model amounts to, so the
worst runs stay in the mean and the spread instead of silently dropping out.

Regenerate a report from a sweep folder with `python -m recurrent_mlm.glue.report OUTPUT_DIR`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from ..files import atomic_write_json, atomic_write_text
from .sweep import RESULT_FILE, RUNS_DIR, SPEC_FILE, lr_tag
from .tasks import SCORE_DEFINITIONS


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _mean(values) -> float:
    values = _finite(values)
    return float(np.mean(values)) if values else math.nan


def stats_score(run: dict) -> float:
    score = run["final"]["score"]
    return float(run["baseline_score"]) if score is None or math.isnan(score) else float(score)


def _collapsed(run: dict) -> bool:
    """The strict divergence definition: NaN/inf training loss, or one class predicted for every example."""
    divergence = run.get("divergence") or {}
    return bool(divergence.get("nonfinite") or divergence.get("collapsed"))


def aggregate(runs: list[dict]) -> list[dict]:
    """One row per model x learning rate, in first-seen model order and increasing learning rate."""
    models = list(dict.fromkeys(r["model_label"] for r in runs))
    rows = []
    for model in models:
        mine = [r for r in runs if r["model_label"] == model]
        for lr in sorted({r["learning_rate"] for r in mine}):
            cell = [r for r in mine if r["learning_rate"] == lr]
            scores = np.array([stats_score(r) for r in cell])
            rows.append(
                {
                    "model": model,
                    "learning_rate": lr,
                    "runs": len(cell),
                    "seeds": sorted(r["seed"] for r in cell),
                    "mean": float(scores.mean()),
                    "std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
                    "min": float(scores.min()),
                    "max": float(scores.max()),
                    "diverged": sum(bool(r["diverged"]) for r in cell),
                    "collapsed": sum(_collapsed(r) for r in cell),
                    "mean_best": _mean(r["best"]["score"] for r in cell),
                    "mean_ece": _mean(r.get("ece") for r in cell),
                }
            )
    return rows


def _range_text(lrs: list[float], grid: list[float]) -> str:
    if not lrs:
        return "none"
    positions = [grid.index(lr) for lr in lrs]
    if positions == list(range(positions[0], positions[0] + len(positions))):
        return lr_tag(lrs[0]) if len(lrs) == 1 else f"{lr_tag(lrs[0])} to {lr_tag(lrs[-1])}"
    return ", ".join(lr_tag(lr) for lr in lrs)


def summarise(rows: list[dict]) -> list[dict]:
    """Per model: mean over learning rates of the std across seeds, the learning rates where no seed diverged,
    the best learning rate, mean ECE, and one line saying all that."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        grid = [r["learning_rate"] for r in mine]
        stds = _finite(r["std"] for r in mine)
        stable = [r["learning_rate"] for r in mine if r["diverged"] == 0]
        best = max(mine, key=lambda r: r["mean"])
        runs = sum(r["runs"] for r in mine)
        diverged = sum(r["diverged"] for r in mine)
        mean_ece = _mean(r["mean_ece"] for r in mine)
        summary = {
            "model": model,
            "mean_seed_std": float(np.mean(stds)) if stds else math.nan,
            "stable_learning_rates": stable,
            "stable_range": _range_text(stable, grid),
            "diverged": diverged,
            "runs": runs,
            "best_learning_rate": best["learning_rate"],
            "best_mean": best["mean"],
            "mean_ece": mean_ece,
        }
        std_text = f"{summary['mean_seed_std']:.4f}" if stds else "n/a (one seed)"
        ece_text = f"; mean ECE {mean_ece:.4f}" if not math.isnan(mean_ece) else ""
        summary["line"] = (
            f"{model}: mean std across seeds {std_text} over {len(mine)} learning rates; no seed diverged at "
            f"lr {summary['stable_range']}; {diverged}/{runs} runs diverged; best mean {best['mean']:.4f} at "
            f"lr {lr_tag(best['learning_rate'])}{ece_text}"
        )
        out.append(summary)
    return out


def _fmt(value, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(meta: dict, rows: list[dict], summaries: list[dict]) -> str:
    score = SCORE_DEFINITIONS.get(meta.get("score"), meta.get("score"))
    lines = [
        f"# Stability study: {meta.get('task', '?')}",
        "",
        f"Score: {score} on `{meta.get('primary_split', 'validation')}` after the last step, over seeds "
        f"{', '.join(str(s) for s in meta.get('seeds', []))}. Trivial predictor: "
        f"{_fmt(meta.get('baseline_score'))} ({meta.get('baseline', '')}). A run *diverged* if its training loss "
        "became NaN/inf or grew tenfold, it predicted one class for every example, or its final score did not "
        "beat the trivial predictor; *collapsed* counts only the first and third (the strict definition). "
        "Undefined scores count as the trivial predictor's. `mean best` is the best evaluation during training, "
        "chosen on the reported split: an optimistic number, shown for reference only.",
        "",
        "| model | learning rate | runs | mean | std | min | max | diverged | collapsed | mean best | mean ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {lr_tag(r['learning_rate'])} | {r['runs']} | {_fmt(r['mean'])} | {_fmt(r['std'])} | "
            f"{_fmt(r['min'])} | {_fmt(r['max'])} | {r['diverged']} | {r.get('collapsed', 0)} | {_fmt(r['mean_best'])} | "
            f"{_fmt(r['mean_ece'])} |"
        )
    lines += ["", "## Summary", "", *[f"- {s['line']}" for s in summaries], ""]
    return "\n".join(lines)


def _csv(runs: list[dict]) -> str:
    metric_columns = []
    for run in runs:
        for split, metrics in run["final"]["splits"].items():
            for name, value in metrics.items():
                column = f"{split}_{name}"
                if isinstance(value, (int, float)) and column not in metric_columns:
                    metric_columns.append(column)
    columns = [
        "model", "model_path", "learning_rate", "seed", "final_score", "best_score", "best_step", "ece", "diverged",
        "diverged_reason", "baseline_score", "final_train_loss", "train_steps", "wall_seconds", *metric_columns,
    ]  # fmt: skip
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        row = {
            "model": run["model_label"],
            "model_path": run["model"],
            "learning_rate": run["learning_rate"],
            "seed": run["seed"],
            "final_score": run["final"]["score"],
            "best_score": run["best"]["score"],
            "best_step": run["best"]["step"],
            "ece": run.get("ece"),
            "diverged": run["diverged"],
            "diverged_reason": run.get("diverged_reason") or "",
            "baseline_score": run["baseline_score"],
            "final_train_loss": run["loss_curve"][-1][1] if run.get("loss_curve") else "",
            "train_steps": run["train_steps"],
            "wall_seconds": round(run["wall_seconds"], 2),
        }
        for split, metrics in run["final"]["splits"].items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    row[f"{split}_{name}"] = value
        writer.writerow(row)
    return buffer.getvalue()


def plot(path: Path, meta: dict, runs: list[dict], rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a cluster node
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
        color = f"C{i}"
        mine = [r for r in rows if r["model"] == model]
        lrs = [r["learning_rate"] for r in mine]
        ax.plot(lrs, [r["mean"] for r in mine], "o-", color=color, label=model)
        ax.fill_between(lrs, [r["min"] for r in mine], [r["max"] for r in mine], color=color, alpha=0.18, linewidth=0)
        seeds = [r for r in runs if r["model_label"] == model]
        ok = [r for r in seeds if not r["diverged"]]
        bad = [r for r in seeds if r["diverged"]]
        ax.scatter([r["learning_rate"] for r in ok], [stats_score(r) for r in ok], s=12, color=color, alpha=0.5)
        if bad:
            ax.scatter([r["learning_rate"] for r in bad], [stats_score(r) for r in bad], s=40, marker="x", color=color)
    baseline = meta.get("baseline_score")
    if baseline is not None and not math.isnan(baseline):
        ax.axhline(baseline, color="0.5", linestyle="--", linewidth=1, label="trivial predictor")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(SCORE_DEFINITIONS.get(meta.get("score"), "score"))
    ax.set_title(f"{meta.get('task', '')}: mean over seeds, band = min to max, x = diverged run", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(output_dir: str | Path, meta: dict, runs: list[dict], with_plot: bool = True) -> dict:
    """Write runs.json, runs.csv, stability.json, stability.md (and stability.png). Returns the summary."""
    output_dir = Path(output_dir)
    meta = {**meta, "seeds": sorted({r["seed"] for r in runs})}
    rows = aggregate(runs)
    summaries = summarise(rows)
    atomic_write_json(output_dir / "runs.json", {"meta": meta, "runs": runs})
    atomic_write_text(output_dir / "runs.csv", _csv(runs))
    atomic_write_json(output_dir / "stability.json", {"meta": meta, "table": rows, "summary": summaries})
    atomic_write_text(output_dir / "stability.md", markdown(meta, rows, summaries))
    if with_plot and rows:
        plot(output_dir / "stability.png", meta, runs, rows)
    return {"table": rows, "summary": summaries}


def load_sweep(output_dir: str | Path) -> tuple[dict, list[dict]]:
    """Every finished run under a sweep folder, and the report metadata the sweep recorded."""
    output_dir = Path(output_dir)
    spec = json.loads((output_dir / SPEC_FILE).read_text(encoding="utf-8"))
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((output_dir / RUNS_DIR).glob(f"*/*/{RESULT_FILE}"))]
    order = {label: i for i, label in enumerate(spec.get("models", {}))}
    runs.sort(key=lambda r: (order.get(r["model_label"], len(order)), r["learning_rate"], r["seed"]))
    meta = dict(spec.get("report", {}))
    meta["seeds"] = sorted({r["seed"] for r in runs})
    return meta, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the stability report of a run_glue.py sweep folder.")
    parser.add_argument("output_dir", help="The --output_dir of a sweep (it holds sweep.json and runs/).")
    parser.add_argument("--no_plot", action="store_true", help="Skip stability.png (no matplotlib needed).")
    args = parser.parse_args(argv)
    if not (Path(args.output_dir) / SPEC_FILE).exists():
        print(f"error: {args.output_dir} holds no {SPEC_FILE}; give the --output_dir of a sweep.", file=sys.stderr)
        return 2
    meta, runs = load_sweep(args.output_dir)
    write_report(args.output_dir, meta, runs, with_plot=not args.no_plot)
    print((Path(args.output_dir) / "stability.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["aggregate", "summarise", "markdown", "plot", "write_report", "load_sweep", "stats_score"]
