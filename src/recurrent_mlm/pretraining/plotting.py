"""The loss / MLM-accuracy figure written at the end of pretraining (from `metrics.jsonl`, so a resumed run
plots its whole history)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def plot_training_curves(records: list[dict[str, Any]], path: str | os.PathLike, title: str | None = None) -> Path | None:
    """Two panels: training and held-out loss, and masked-token accuracy, against the optimizer step.
    Returns the PNG's path, or None when there is nothing to plot."""
    train = [r for r in records if "loss" in r and "step" in r]
    evals = [r for r in records if "eval_loss" in r and "step" in r]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", linewidth=1)
        with_acc = [r for r in train if "mlm_accuracy" in r]
        ax_acc.plot([r["step"] for r in with_acc], [r["mlm_accuracy"] for r in with_acc], label="train", linewidth=1)
    if evals:
        ax_loss.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="held-out (15% masked)")
        ax_acc.plot(
            [r["step"] for r in evals], [r["eval_mlm_accuracy"] for r in evals], "o-", label="held-out (15% masked)"
        )
    ax_loss.set(xlabel="optimizer step", ylabel="MLM loss (nats / masked token)", title="loss")
    ax_acc.set(xlabel="optimizer step", ylabel="accuracy on masked tokens", title="MLM accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_training_curves"]
