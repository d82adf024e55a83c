"""Planted data: two models' paired per-item results with a known effect, and the error rates of the methods.

The generative model is the study's design, with every source of variation the bootstrap resamples:

    latent[m, p, f, i] = base + effect * [m = a] + item_i + g[m, i] + u[m, p] + v[m, p, f] + e[m, p, f, i]

item_i: an item's difficulty, shared by both models (the pairing); g: a model's own item preferences (the
model x item interaction, crossed with runs: only resampling items sees it); u: the pretraining seed's effect
on one model; v: the fine-tuning seed's within it; e: run x item noise. All are independent normals with
mean 0, so for `kind="normal"` (per-item scores are the latent values) the true effect on the expected
score is exactly `effect`. For `kind="binary"` an item is correct when latent > 0 (a probit model), so
`effect=0` is an exact null and a positive `effect` a positive accuracy difference.

`python -m recurrent_mlm.study.planted` prints the false-positive rate and interval coverage of the paired
hierarchical bootstrap across variance regimes (the table in docs/statistics.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from .stats import paired_bootstrap


@dataclass(frozen=True)
class Design:
    n_pretrain: int = 3
    n_finetune: int = 3
    n_items: int = 500
    sd_pretrain: float = 0.02
    sd_finetune: float = 0.02
    sd_item: float = 1.0
    sd_model_item: float = 0.3
    sd_noise: float = 0.3
    base: float = 0.8


def planted_pair(
    rng: np.random.Generator, design: Design = Design(), effect: float = 0.0, kind: str = "normal"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-item results (pretrain, finetune, items) of models a and b; a is better by `effect` (latent scale)."""
    if kind not in ("normal", "binary"):
        raise ValueError(f"kind must be 'normal' or 'binary', got {kind!r}.")
    d = design
    shape = (d.n_pretrain, d.n_finetune, d.n_items)
    item = rng.normal(0, d.sd_item, d.n_items)
    out = []
    for shift in (effect, 0.0):
        latent = (
            d.base
            + shift
            + item
            + rng.normal(0, d.sd_model_item, d.n_items)
            + rng.normal(0, d.sd_pretrain, (d.n_pretrain, 1, 1))
            + rng.normal(0, d.sd_finetune, (d.n_pretrain, d.n_finetune, 1))
            + rng.normal(0, d.sd_noise, shape)
        )
        out.append(latent if kind == "normal" else (latent > 0).astype(np.float64))
    return out[0], out[1]


def error_rates(
    design: Design = Design(),
    *,
    effect: float = 0.0,
    trials: int = 200,
    n_resamples: int = 1000,
    seed: int = 0,
    kind: str = "normal",
    confidence: float = 0.95,
) -> dict:
    """Over `trials` planted pairs: how often the interval excludes 0 above / below, and covers the effect.

    Coverage is of the true effect, so it is meaningful for kind="normal" (for "binary" only at effect 0).
    """
    rng = np.random.default_rng(seed)
    above = below = covered = 0
    for trial in range(trials):
        a, b = planted_pair(rng, design, effect, kind)
        result = paired_bootstrap(
            a, b, n_resamples=n_resamples, confidence=confidence, seed=seed * 100_003 + trial
        )
        above += result.low > 0
        below += result.high < 0
        covered += result.low <= effect <= result.high
    return {"trials": trials, "above": above / trials, "below": below / trials, "coverage": covered / trials}


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=400, help="planted pairs per regime")
    parser.add_argument("--n_resamples", type=int, default=1000, help="bootstrap resamples per pair")
    parser.add_argument("--seed", type=int, default=0, help="seed of the planted data and the bootstrap")
    args = parser.parse_args(argv)
    regimes = [
        ("items dominate", Design(sd_pretrain=0.0, sd_finetune=0.0)),
        ("realistic small (default)", Design()),
        ("fine-tuning seeds large", Design(sd_pretrain=0.0, sd_finetune=0.1)),
        ("pretraining seeds large, 3 seeds", Design(sd_pretrain=0.1, sd_finetune=0.02)),
        ("pretraining seeds large, 10 seeds", Design(n_pretrain=10, sd_pretrain=0.1, sd_finetune=0.02)),
    ]
    print(
        "| regime | P x F x items | sd pretrain / finetune | kind | false positives (null) | coverage (normal, effect 0.05) |"
    )
    print("|---|---|---|---|---:|---:|")
    started = time.perf_counter()
    for label, design in regimes:
        for kind in ("normal", "binary"):
            null = error_rates(
                design, trials=args.trials, n_resamples=args.n_resamples, seed=args.seed, kind=kind
            )
            cover = ""
            if kind == "normal":
                planted = error_rates(
                    design, effect=0.05, trials=args.trials, n_resamples=args.n_resamples, seed=args.seed + 1
                )
                cover = f"{planted['coverage']:.3f}"
            print(
                f"| {label} | {design.n_pretrain} x {design.n_finetune} x {design.n_items} | "
                f"{design.sd_pretrain} / {design.sd_finetune} | {kind} | {null['above'] + null['below']:.3f} | {cover} |"
            )
    print(
        f"\n{args.trials} trials per cell, {args.n_resamples} resamples each, seed {args.seed}; "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    _main()
