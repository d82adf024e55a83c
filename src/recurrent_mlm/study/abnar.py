"""Abnar, Dehghani, Zuidema (2020): on subject-verb agreement, (A1) accuracy rises Transformer < Sequential
Transformer < Sequential Universal Transformer < LSTM; (A2) calibration error falls in that order; (A3) so does
the variance across runs.

Protocol (Abnar's setting): each model is trained from a random initialisation to predict the number of the
verb from the words before it, on a fixed stratified split of Linzen et al.'s items, with one initialisation
and data-order seed per block (every model gets the same seeds: a blocked design); the orders are tested with
Page's trend test over the blocks. Beside it, each pretrained model's zero-shot masked scoring of the same
items (a table, not part of the verdict).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .decision import Comparison, Evidence, Plan, decide, not_tested, write_plan
from .report import make_summary, write_claim_report, write_summary
from .stages import StudyContext, read_sweep_runs
from .stats import expected_calibration_error, paired_bootstrap, spread_scores, trend_test
from .tiers import MODELS as STUDY_MODELS

ORDER = ("bert", "sequential_transformer", "sequential_universal_transformer", "lstm")
NAMES = {"bert": "Transformer", "sequential_transformer": "Sequential Transformer",
         "sequential_universal_transformer": "Sequential Universal Transformer", "lstm": "LSTM"}  # fmt: skip
ORDER_TEXT = " < ".join(NAMES[m] for m in ORDER)


def _protocol(ctx: StudyContext) -> str:
    spec = ctx.tier.agreement
    return (
        f"Linzen et al.'s filtered agreement items, a fixed split stratified by number and attractors (at most "
        f"{spec.train_items} training items, {spec.test_items} or fewer test items); each model at BERT-"
        f"{ctx.tier.pretrain.size}'s parameter count, randomly initialised with seed s and trained with data order s "
        f"(s = {', '.join(map(str, spec.seeds))}: the blocks), learning rate {spec.learning_rate:g}, "
        f"{spec.epochs:g} epochs, predicting singular/plural from the words before the verb (the shared corpus "
        "WordPiece tokenizer). Page's L trend test over the blocks, in the predicted order."
    )


def plans(ctx: StudyContext) -> dict[str, Plan]:
    comparison = lambda name: (Comparison(name, ORDER),)  # noqa: E731
    common = dict(paper="Abnar et al. 2020", protocol=_protocol(ctx))
    return {
        "A1": Plan(claim_id="A1", statement=f"Subject-verb agreement accuracy rises {ORDER_TEXT}.",
                   paper_numbers="Their Table 1 (agreement, trained from scratch): LSTM highest, then the Sequential "
                   "Universal Transformer, Sequential Transformer and Transformer.",
                   metric="test accuracy (per block: one trained model per architecture)", predicted_direction="greater",
                   comparisons=comparison(f"accuracy: {ORDER_TEXT}"), **common),
        "A2": Plan(claim_id="A2", statement=f"Expected calibration error falls along {ORDER_TEXT}.",
                   paper_numbers="Their Table 1: ECE lowest for the LSTM, highest for the Transformer.",
                   metric="expected calibration error of the singular/plural probabilities (15 bins)", predicted_direction="less",
                   comparisons=comparison(f"ECE: {ORDER_TEXT}"), **common),
        "A3": Plan(claim_id="A3", statement=f"The variance across runs falls along {ORDER_TEXT}.",
                   paper_numbers="Their Table 1: the standard deviation over runs is smallest for the LSTM.",
                   metric="run-to-run spread of test accuracy: |accuracy - the model's median over blocks| (Brown-Forsythe)",
                   predicted_direction="less", comparisons=comparison(f"spread: {ORDER_TEXT}"), **common),
    }  # fmt: skip


def _linzen(ctx: StudyContext) -> Path | None:
    if not ctx.agreement_dir:
        return None
    root = Path(ctx.agreement_dir)
    found = next(root.rglob("subj_agr_filtered.gold"), None) if root.is_dir() else None
    return found.parent if found is not None else None


def random_init(ctx: StudyContext, model: str, seed: int) -> Path:
    """A randomly initialised masked LM of `model` at the tier's size (seed `seed`), with the shared tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from .. import RecurrentMLMForMaskedLM
    from ..presets import preset_config

    folder = ctx.output_dir / "agreement" / "init" / f"{model}-s{seed}"
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(ctx.tokenizer())
    variant, extra = STUDY_MODELS[model]
    spec = ctx.tier.pretrain
    config = preset_config(spec.size, variant, vocab_size=len(tokenizer), **{**spec.shape, **extra})
    torch.manual_seed(seed)
    RecurrentMLMForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_abnar(ctx: StudyContext, command: str) -> list[Path]:
    from ..glue import GlueArguments, run_glue
    from ..probes.agreement_train import read_split, write_split

    dirs = {c: ctx.claim_dir(c) for c in ("A1", "A2", "A3")}
    plan = plans(ctx)
    for claim in dirs:
        write_plan(plan[claim], dirs[claim] / "plan.json")
    linzen = _linzen(ctx)
    if linzen is None:
        reason = ("Linzen et al.'s agreement set is CC BY-NC and not shipped with the project; pass --agreement_dir with "
                  "its official layout (subj_agr_filtered.gold/.text) to test this claim")  # fmt: skip
        for claim in dirs:
            summary = make_summary(plan[claim], not_tested(plan[claim], reason), run_info=ctx.run_info(command))
            write_summary(dirs[claim], summary)
            write_claim_report(dirs[claim])
        return list(dirs.values())
    spec = ctx.tier.agreement
    split_dir = ctx.output_dir / "agreement" / "split"
    if not (split_dir / "test.csv").exists():
        total = sum(1 for line in (linzen / "subj_agr_filtered.gold").read_text().splitlines() if line.strip())
        fraction = min(0.5, max(spec.test_items / max(total, 1), 2 / max(total, 1)))
        write_split(linzen, split_dir, test_fraction=fraction, seed=0, max_train_items=spec.train_items)
    test = read_split(split_dir, "test")
    labels = None
    per_seed: dict[int, dict[str, dict]] = {}
    for seed in spec.seeds:
        models = {m: random_init(ctx, m, seed) for m in ORDER}
        out = ctx.output_dir / "agreement" / "runs" / f"s{seed}"
        run_glue(GlueArguments(
            model_name_or_path=[str(models[m]) for m in ORDER], model_labels=list(ORDER),
            train_file=str(split_dir / "train.csv"), validation_file=str(split_dir / "test.csv"),
            text_columns=["sentence"], label_column="label", learning_rates=[spec.learning_rate], seeds=[seed],
            num_train_epochs=spec.epochs, per_device_train_batch_size=spec.batch_size, max_seq_length=spec.max_seq_length,
            output_dir=str(out), sweep=True, disable_tqdm=ctx.quiet,
        ))  # fmt: skip
        per_seed[seed] = {}
        for run in read_sweep_runs(out):
            rows = [r for r in run["items"] if r["split"] == "validation"]
            probabilities = np.array([r["probabilities"] for r in rows])
            gold = np.array([r["label"] for r in rows])
            labels = gold
            per_seed[seed][run["model_label"]] = {
                "correct": np.array([r["correct"] for r in rows], dtype=float),
                "ece": expected_calibration_error(probabilities, gold),
                "diverged": run["diverged"],
                "divergence": run.get("divergence") or {},
                "wall_seconds": run["wall_seconds"],
            }
    seeds = list(spec.seeds)
    accuracy = np.array([[per_seed[s][m]["correct"].mean() for m in ORDER] for s in seeds])  # (blocks, models)
    ece = np.array([[per_seed[s][m]["ece"] for m in ORDER] for s in seeds])
    resamples = ctx.tier.bootstrap_resamples
    evidence = {
        "A1": Evidence.from_trend(plan["A1"].comparisons[0].name, trend_test(accuracy, n_resamples=resamples, seed=4)),
        "A2": Evidence.from_trend(plan["A2"].comparisons[0].name, trend_test(ece, n_resamples=resamples, seed=5)),
        "A3": Evidence.from_trend(plan["A3"].comparisons[0].name, trend_test(spread_scores(accuracy), n_resamples=resamples, seed=6)),
    }
    # Item-level pairs beside the trend: LSTM vs Transformer (paired bootstrap over blocks and test items).
    correct = {m: np.array([per_seed[s][m]["correct"] for s in seeds])[:, None, :] for m in ORDER}
    pair = paired_bootstrap(correct["lstm"], correct["bert"], names=("lstm", "bert"), n_resamples=resamples, seed=7)
    attractors = np.array([t["attractors"] for t in test])
    table_rows, plot_rows = [], []
    for i, m in enumerate(ORDER):
        by_att = []
        for k in sorted(set(attractors.tolist())):
            hits = sum(per_seed[s][m]["correct"][attractors == k].sum() for s in seeds)
            total = len(seeds) * int((attractors == k).sum())
            plot_rows.append({"model": NAMES[m], "attractors": k, "correct": int(hits), "total": total})
            by_att.append(f"{k}: {hits / max(total, 1):.3f}")
        table_rows.append([NAMES[m], f"{accuracy[:, i].mean():.4f} ± {accuracy[:, i].std(ddof=1) if len(seeds) > 1 else 0:.4f}",
                           f"{ece[:, i].mean():.4f}", "; ".join(by_att)])  # fmt: skip
    plots = []
    try:
        from .plots import plot_accuracy_vs_attractors

        plot_accuracy_vs_attractors(dirs["A1"] / "accuracy_vs_attractors.png", plot_rows,
                                    title="Trained agreement probe from random initialisation (pooled over seeds)")  # fmt: skip
        plots.append({"path": "accuracy_vs_attractors.png", "caption": "Accuracy against the number of attractors (Wilson 95% intervals over items, pooled over seeds)."})
    except (ValueError, KeyError):
        pass
    zero_shot = zero_shot_table(ctx, linzen, test)
    runs_info = {"total": len(seeds) * len(ORDER),
                 "diverged": sum(bool(per_seed[s][m]["diverged"]) for s in seeds for m in ORDER),
                 "collapsed": sum(bool(per_seed[s][m]["divergence"].get("collapsed")) for s in seeds for m in ORDER),
                 "trivial": sum(bool(per_seed[s][m]["divergence"].get("trivial")) for s in seeds for m in ORDER)}  # fmt: skip
    main_table = {"title": "Trained probe: test accuracy and ECE per model (mean ± std over seeds), accuracy by attractors",
                  "columns": ["model", "accuracy", "ECE", "accuracy by number of attractors"], "rows": table_rows,
                  "note": f"LSTM minus Transformer accuracy, paired over seeds and items: {pair.estimate:+.4f} "
                  f"[{pair.low:+.4f}, {pair.high:+.4f}]. {len(test)} test items."}  # fmt: skip
    differences = (
        "Abnar et al. train each model on the full Linzen training data (over 120k items) with larger models; here "
        f"the models have BERT-{ctx.tier.pretrain.size}'s parameter count and train on at most {spec.train_items} items "
        "of the filtered test set (split in two), with a WordPiece tokenizer trained on our corpus instead of a word "
        "vocabulary, and our sequential Transformers are two-sided (a masked LM's left-to-right and right-to-left "
        "stacks, pooled at the last token of the left-to-right stack)."
    )
    for claim in ("A1", "A2", "A3"):
        decision = decide(plan[claim], [evidence[claim]])
        summary = make_summary(plan[claim], decision, tables=[main_table, zero_shot] if zero_shot else [main_table],
                               plots=plots if claim == "A1" else [{"path": f"../A1/{p['path']}", "caption": p["caption"]} for p in plots],
                               runs=runs_info, run_info=ctx.run_info(command), differences=differences,
                               null_meaning="With three blocks Page's test can only reach p = 1/13824 for a perfect order "
                               "in every block; an inconclusive verdict means the order was not consistent across seeds, "
                               "not that the architectures are equal.")  # fmt: skip
        write_summary(dirs[claim], summary)
        write_claim_report(dirs[claim])
    return list(dirs.values())


def zero_shot_table(ctx: StudyContext, linzen: Path, test: list[dict]) -> dict[str, Any] | None:
    """Each pretrained model's zero-shot masked scoring of the Linzen test items (prefix mode)."""
    from ..probes.agreement import AgreementArgs, score_agreement
    from ..probes.agreement_data import AgreementSets, read_linzen

    wanted = {t["item"] for t in test}
    items = [i for i in read_linzen(linzen) if i.index in wanted][: ctx.tier.agreement.zero_shot_items]
    sets = AgreementSets(items={"linzen": items}, sources={"linzen": linzen.name}, unscorable={})
    rows = []
    for model in ("bert", "recurrent_bert", "sequential_transformer", "sequential_universal_transformer", "lstm"):
        seeds = ctx.tier.lei_seeds if model in ("bert", "recurrent_bert") else ctx.tier.lstm_seeds if model == "lstm" else ctx.tier.abnar_seeds
        folder = ctx.pretrained(model, seeds[0])
        result = score_agreement(AgreementArgs(model=str(folder), modes=["prefix"], corpus=list(ctx.corpus)), sets=sets)
        overall = result.summary["datasets"]["linzen"]["modes"]["prefix"]["overall"]
        acc, low, high = overall["accuracy"], overall["ci_low"], overall["ci_high"]
        rows.append([model, f"{acc:.3f}", f"[{low:.3f}, {high:.3f}]", str(overall["n"]),
                     f"{overall.get('ece', float('nan')):.3f}"])  # fmt: skip
    (ctx.output_dir / "agreement" / "zero_shot.json").write_text(json.dumps(rows))
    return {"title": "Zero-shot masked scoring of the same test items by each pretrained model (pretraining seed 0; not part of the verdict)",
            "columns": ["pretrained model", "accuracy", "95% Wilson interval", "items", "ECE"], "rows": rows}  # fmt: skip


__all__ = ["plans", "run_abnar", "random_init", "ORDER"]
