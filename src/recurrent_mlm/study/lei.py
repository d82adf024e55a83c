"""Lei, Tian, Bastings, Parikh (2022): (L1) the simple recurrent sublayer in place of BERT's feed-forward
sublayer improves fine-tuned scores at the same parameter count; (L2) fine-tuning is more stable across
learning rates.

Protocol: BERT and recurrent BERT are pretrained on the same corpus with the same tokenizer, steps, batch and
data order (paired by pretraining seed), then fine-tuned on each task over a learning-rate grid and
fine-tuning seeds. L1 reports each model at the learning rate it scores best at on a *selection split* (rows
of the training file never trained on), on the official dev set; the final score of each run, never a
checkpoint chosen on the dev set. L2 compares the spread over fine-tuning seeds (mean over the grid) and the
rate of failed runs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .decision import Comparison, Evidence, Plan, decide, not_tested, write_plan
from .report import make_summary, write_claim_report, write_summary
from .stages import StudyContext, read_sweep_runs
from .stats import TaskResults, hierarchical_bootstrap, paired_seed_bootstrap

MODELS = ("bert", "recurrent_bert")
EQUAL_COMPUTE = "bert_equal_compute"


def lei_models(tier) -> tuple[str, ...]:
    """The pretrained models of Lei's claims: BERT and recurrent BERT, and BERT at equal compute where the tier
    asks for it (reported beside L1, not part of its verdict)."""
    return MODELS + ((EQUAL_COMPUTE,) if tier.lei_equal_compute else ())
TASK_METRIC = {"sst2": "accuracy", "cola": "mcc", "stsb": "pearson", "mrpc": "accuracy", "rte": "accuracy", "qnli": "accuracy", "wnli": "accuracy"}
METRIC_TEXT = {"accuracy": "accuracy", "mcc": "Matthews correlation", "pearson": "Pearson r"}


def plan_l1(ctx: StudyContext) -> Plan:
    tier, glue = ctx.tier, ctx.tier.glue
    return Plan(
        claim_id="L1",
        paper="Lei et al. 2022",
        statement="Replacing BERT's feed-forward sublayers with the simple recurrent sublayer (same parameter count) "
        "improves fine-tuned task scores.",
        paper_numbers="+2.1 points averaged over 10 tasks at BERT-base size (GLUE, SQuAD and others).",
        protocol=(
            f"{len(tier.lei_seeds)} pretraining seed(s) per model at size {tier.pretrain.size} "
            f"({_shape_text(tier)}), {tier.pretrain.steps} steps of {tier.pretrain.batch_size} x "
            f"{tier.pretrain.max_seq_length} tokens on the same corpus, tokenizer and data order; fine-tuning on "
            f"{', '.join(glue.tasks)} ({glue.train_rows} training rows each) at learning rates "
            f"{', '.join(f'{lr:g}' for lr in glue.learning_rates)} x seeds {', '.join(map(str, glue.seeds))}, "
            f"{glue.epochs:g} epochs. Each model's learning rate is chosen per task and pretraining seed on "
            f"{glue.selection_rows} held-back training rows; the score is the final one on the official dev set."
            + (
                " Beside the verdict, BERT is also pretrained with recurrent BERT's compute (more steps, from a "
                "timing pilot recorded in pretraining/equal_compute.json) and compared the same way."
                if tier.lei_equal_compute
                else ""
            )
        ),
        metric="mean over tasks of the dev score (accuracy for SST-2, MCC for CoLA, Pearson r for STS-B), in [-1, 1]",
        predicted_direction="greater",
        comparisons=(Comparison("average over tasks", ("recurrent_bert", "bert")),),
    )


def plan_l2(ctx: StudyContext) -> Plan:
    glue = ctx.tier.glue
    return Plan(
        claim_id="L2",
        paper="Lei et al. 2022",
        statement="Fine-tuning recurrent BERT is more stable across learning rates than fine-tuning BERT.",
        paper_numbers="Recurrent models keep their score over a wider range of learning rates (their figures); no "
        "single number.",
        protocol=(
            f"The fine-tuning runs of L1: every learning rate ({', '.join(f'{lr:g}' for lr in glue.learning_rates)}) "
            f"x fine-tuning seed x pretraining seed x task. Effects are BERT minus recurrent BERT (positive: "
            "recurrent BERT more stable): the standard deviation of the dev score over fine-tuning seeds, averaged "
            "over learning rates and tasks; and the rate of failed runs (final score no better than the trivial "
            "predictor, Mosbach et al. 2021), over all runs. Intervals resample pretraining seeds."
        ),
        metric="seed standard deviation of the dev score (points in [-1, 1] units); failed-run rate (fraction)",
        predicted_direction="greater",
        comparisons=(
            Comparison("seed spread (BERT - recurrent)", ("bert", "recurrent_bert")),
            Comparison("failed-run rate (BERT - recurrent)", ("bert", "recurrent_bert")),
        ),
        combine="any",
    )


def _shape_text(tier) -> str:
    shape = tier.pretrain.shape
    if shape:
        return f"{shape.get('num_hidden_layers')} layers x {shape.get('hidden_size')}"
    from ..presets import SIZES

    size = SIZES[tier.pretrain.size]
    return f"{size.num_hidden_layers} layers x {size.hidden_size}"


# ----------------------------------------------------------------------------------------------------------
# Metrics on subsets of the dev rows
# ----------------------------------------------------------------------------------------------------------
def subset_score(metric: str, predictions: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return math.nan
    if metric == "accuracy":
        return float(np.mean(predictions == labels))
    if metric == "mcc":
        from sklearn.metrics import matthews_corrcoef

        return float(matthews_corrcoef(labels, predictions)) if len(np.unique(predictions)) > 1 else 0.0
    if metric == "pearson":
        if np.ptp(predictions) == 0:
            return 0.0
        return float(np.corrcoef(predictions, labels)[0, 1])
    raise ValueError(metric)


def load_task_runs(ctx: StudyContext, task: str) -> tuple[dict, dict]:
    """{(model, pretraining seed, lr, ft seed): run} with prediction arrays, and the task's row split."""
    _, entry = ctx.glue_task_folder(task)
    runs = {}
    for p in ctx.tier.lei_seeds:
        models = {m: ctx.pretrained(m, p) for m in lei_models(ctx.tier)}
        folder = ctx.finetune(task, p, models)
        for run in read_sweep_runs(folder):
            items = [r for r in run["items"] if r["split"] == "validation"]
            predictions = np.array([r["prediction"] for r in items], dtype=float)
            labels = np.array([r["label"] for r in items], dtype=float)
            runs[(run["model_label"], p, run["learning_rate"], run["seed"])] = {
                "predictions": predictions,
                "labels": labels,
                "divergence": run.get("divergence") or {},
                "diverged": run["diverged"],
                "wall_seconds": run["wall_seconds"],
                "baseline_score": run["baseline_score"],
            }
    return runs, entry


def _split(run: dict, entry: dict) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    n = entry["dev_rows"]
    pred, lab = run["predictions"], run["labels"]
    return (pred[:n], lab[:n]), (pred[n:], lab[n:])


# ----------------------------------------------------------------------------------------------------------
# The claims
# ----------------------------------------------------------------------------------------------------------
def run_lei(ctx: StudyContext, command: str) -> list[Path]:
    """Plans first, then the runs, then L1 and L2's summaries and reports. Returns the claim folders."""
    dirs = {"L1": ctx.claim_dir("L1"), "L2": ctx.claim_dir("L2")}
    plans = {"L1": plan_l1(ctx), "L2": plan_l2(ctx)}
    for claim, plan in plans.items():
        write_plan(plan, dirs[claim] / "plan.json")
    tier, glue = ctx.tier, ctx.tier.glue
    models = lei_models(tier)
    pretraining = [ctx.pretraining_record(m, p) for p in tier.lei_seeds for m in models]
    per_task = {task: load_task_runs(ctx, task) for task in glue.tasks}
    seeds, lrs, fts = list(tier.lei_seeds), list(glue.learning_rates), list(glue.seeds)

    # -- L1: each model at the learning rate chosen on the selection rows, scored on the dev rows ----------
    tasks, chosen, task_rows, lr_runs = [], {}, [], []
    for task, (runs, entry) in per_task.items():
        metric = TASK_METRIC[task]
        arrays = {}
        for model in models:
            per_seed = []
            for p in seeds:
                selection = {lr: np.mean([subset_score(metric, *_split(runs[(model, p, lr, f)], entry)[1]) for f in fts]) for lr in lrs}
                best_lr = max(lrs, key=lambda lr: (np.nan_to_num(selection[lr], nan=-np.inf), -lr))
                chosen[(task, model, p)] = best_lr
                per_seed.append([_split(runs[(model, p, best_lr, f)], entry)[0][0] for f in fts])
            arrays[model] = np.array(per_seed)  # (pretraining seeds, fine-tuning seeds, dev items)
        labels = _split(runs[(MODELS[0], seeds[0], lrs[0], fts[0])], entry)[0][1]
        if metric in ("accuracy", "mcc"):
            arrays = {m: a.astype(int) for m, a in arrays.items()}
            labels = labels.astype(int)
        tasks.append(TaskResults(scores=arrays, labels=labels, metric=metric, name=task))
        for (model, p, lr, f), run in runs.items():
            dev = _split(run, entry)[0]
            lr_runs.append({"task": task, "model": model, "pretraining_seed": p, "learning_rate": lr, "seed": f,
                            "score": subset_score(metric, *dev), "collapsed": bool(run["divergence"].get("collapsed") or run["divergence"].get("nonfinite")),
                            "trivial": bool(run["divergence"].get("trivial")), "baseline": run["baseline_score"]})  # fmt: skip
    boot = hierarchical_bootstrap(tasks, n_resamples=tier.bootstrap_resamples, seed=0)
    overall = boot.difference("recurrent_bert", "bert")
    decision = decide(plans["L1"], [Evidence.from_bootstrap("average over tasks", overall)])
    for t in tasks:
        d = boot.difference("recurrent_bert", "bert", task=t.name)
        a, b = boot.score("bert", task=t.name), boot.score("recurrent_bert", task=t.name)
        task_rows.append([
            t.name, METRIC_TEXT[t.metric], f"{100 * a.estimate:.1f}", f"{100 * b.estimate:.1f}",
            f"{100 * d.estimate:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]", f"{d.p_value:.3g}",
            ", ".join(f"{chosen[(t.name, 'bert', p)]:g}" for p in seeds), ", ".join(f"{chosen[(t.name, 'recurrent_bert', p)]:g}" for p in seeds),
        ])  # fmt: skip
    task_rows.append(["average", "", f"{100 * boot.score('bert').estimate:.1f}", f"{100 * boot.score('recurrent_bert').estimate:.1f}",
                      f"{100 * overall.estimate:+.1f} [{100 * overall.low:+.1f}, {100 * overall.high:+.1f}]", f"{overall.p_value:.3g}", "", ""])  # fmt: skip
    plots = []
    for task in glue.tasks:
        from .plots import plot_score_vs_learning_rate

        mine = [r for r in lr_runs if r["task"] == task]
        name = f"score_vs_lr_{task}.png"
        plot_score_vs_learning_rate(dirs["L1"] / name, mine, metric=METRIC_TEXT[TASK_METRIC[task]],
                                    trivial_score=mine[0]["baseline"] if TASK_METRIC[task] == "accuracy" else 0.0,
                                    title=f"{task}: dev score after fine-tuning, per pretraining x fine-tuning seed")  # fmt: skip
        plots.append({"path": name, "caption": f"{task}: dev score against learning rate (every run a dot)."})
    cost = _cost_table(pretraining, models)
    extra_tables = [_equal_compute_table(ctx, boot, tasks)] if EQUAL_COMPUTE in models else []
    counts = _run_counts(lr_runs)
    summary_l1 = make_summary(
        plans["L1"],
        decision,
        tables=[
            {"title": "Dev scores (x100) at each model's selected learning rate", "columns": ["task", "metric", "BERT", "recurrent BERT", "difference [95% CI]", "p", "BERT lr per seed", "recurrent lr per seed"], "rows": task_rows,
             "note": "Means over pretraining and fine-tuning seeds; intervals from the paired hierarchical bootstrap (pretraining seeds, fine-tuning seeds, dev items); per-task p-values are not part of the decision (the claim is about the average)."},
            cost,
            *extra_tables,
        ],  # fmt: skip
        plots=plots,
        runs=counts,
        run_info=ctx.run_info(command),
        differences=_differences(tier),
        null_meaning="An interval that includes zero says this scale could not tell the models apart by more than "
        "the minimum detectable effect; it does not show that recurrence does not help at BERT-base size after full "
        "pretraining, where the paper measured.",
    )
    write_summary(dirs["L1"], summary_l1)
    write_claim_report(dirs["L1"])

    # -- L2: spread over fine-tuning seeds, failed-run rate -------------------------------------------------
    spread = defaultdict(list)  # model -> per pretraining seed, mean over tasks x learning rates of the seed std
    failed = defaultdict(list)
    for model in MODELS:
        for p in seeds:
            stds, fails = [], []
            for task, (runs, entry) in per_task.items():
                metric = TASK_METRIC[task]
                for lr in lrs:
                    scores = [subset_score(metric, *_split(runs[(model, p, lr, f)], entry)[0]) for f in fts]
                    stds.append(float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0)
                    fails += [bool(runs[(model, p, lr, f)]["divergence"].get("trivial") or runs[(model, p, lr, f)]["divergence"].get("nonfinite")) for f in fts]
            spread[model].append(float(np.mean(stds)))
            failed[model].append(float(np.mean(fails)))
    evidence = []
    rows = []
    for name, values in (("seed spread (BERT - recurrent)", spread), ("failed-run rate (BERT - recurrent)", failed)):
        if len(seeds) < 2:
            continue
        result = paired_seed_bootstrap(np.array(values["bert"]), np.array(values["recurrent_bert"]), names=("bert", "recurrent_bert"),
                                       n_resamples=tier.bootstrap_resamples, seed=1)  # fmt: skip
        evidence.append(Evidence.from_bootstrap(name, result))
        rows.append([name, f"{np.mean(values['bert']):.4f}", f"{np.mean(values['recurrent_bert']):.4f}",
                     f"{result.estimate:+.4f} [{result.low:+.4f}, {result.high:+.4f}]"])  # fmt: skip
    decision2 = decide(plans["L2"], evidence) if evidence else not_tested(plans["L2"], "one pretraining seed: no interval over seeds")
    if not evidence:
        rows = [[n, f"{np.mean(v['bert']):.4f}", f"{np.mean(v['recurrent_bert']):.4f}", "n/a"] for n, v in
                (("seed spread", spread), ("failed-run rate", failed))]  # fmt: skip
    per_lr = _per_lr_table(lr_runs)
    summary_l2 = make_summary(
        plans["L2"],
        decision2,
        tables=[
            {"title": "Stability", "columns": ["measure", "BERT", "recurrent BERT", "BERT - recurrent [95% CI]"], "rows": rows,
             "note": "Seed spread: standard deviation of the dev score over fine-tuning seeds (in [-1, 1] units), averaged over learning rates and tasks, per pretraining seed. Failed: final score no better than the trivial predictor, or a non-finite loss."},
            per_lr,
        ],  # fmt: skip
        plots=[{"path": f"../L1/{p['path']}", "caption": p["caption"]} for p in plots],
        runs=counts,
        run_info=ctx.run_info(command),
        differences=_differences(tier),
        null_meaning="With few pretraining seeds the interval is wide: an inconclusive verdict does not mean the "
        "two models are equally stable.",
    )
    write_summary(dirs["L2"], summary_l2)
    write_claim_report(dirs["L2"])
    return [dirs["L1"], dirs["L2"]]


def _differences(tier) -> str:
    return (
        f"The paper pretrains at BERT-base size for 1M steps on Wikipedia and books and fine-tunes on 10 tasks; here "
        f"the models are {_shape_text(tier)} ({tier.pretrain.size}), pretrained for {tier.pretrain.steps} steps on a "
        "2.4 MB public-domain corpus, fine-tuned on subsets of "
        f"{', '.join(tier.glue.tasks)} with {tier.glue.train_rows} training rows each. Both models get the same "
        "steps and batch, not the same compute (see the cost table)."
    )


def _equal_compute_table(ctx: StudyContext, boot, tasks) -> dict[str, Any]:
    """Recurrent BERT against BERT given its compute (not part of the verdict): per task and on average."""
    pilot = ctx.equal_compute()
    rows = []
    for name in [t.name for t in tasks] + [None]:
        d = boot.difference("recurrent_bert", EQUAL_COMPUTE, task=name) if name else boot.difference("recurrent_bert", EQUAL_COMPUTE)
        a = boot.score(EQUAL_COMPUTE, task=name) if name else boot.score(EQUAL_COMPUTE)
        rows.append([name or "average", f"{100 * a.estimate:.1f}", f"{100 * d.estimate:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]", f"{d.p_value:.3g}"])
    return {"title": f"Equal compute: BERT pretrained for {pilot['bert_steps']} steps instead of {pilot['steps']} (not part of the verdict)",
            "columns": ["task", "BERT at equal compute (x100)", "recurrent BERT - BERT at equal compute [95% CI]", "p"], "rows": rows,
            "note": f"The timing pilot measured recurrent BERT's training step at {pilot['ratio']:.2f}x BERT's on {pilot['machine']}; BERT got that many more steps (same batch, schedule stretched to them)."}  # fmt: skip


def _cost_table(records: list[dict[str, Any]], models: tuple[str, ...] = MODELS) -> dict[str, Any]:
    rows = []
    for model in models:
        mine = [r for r in records if r["model"] == model]
        rows.append([
            model, f"{mine[0]['parameters']:,}", f"{np.mean([r['eval_loss'] for r in mine]):.3f}",
            f"{np.mean([r['seconds_per_step'] for r in mine]):.3f}", f"{np.mean([r['tokens_per_second'] or 0 for r in mine]):,.0f}",
            f"{sum(r['wall_seconds'] or 0 for r in mine) / 60:.1f}",
        ])  # fmt: skip
    return {"title": "Pretraining: the same steps and tokens, not the same compute", "columns": ["model", "parameters", "held-out MLM loss (mean)", "s/step", "tokens/s (median)", "minutes (all seeds)"], "rows": rows,
            "note": "Measured on the machine in run_info, with the other stages of the study; wall time includes evaluation."}  # fmt: skip


def _run_counts(lr_runs: list[dict]) -> dict[str, int]:
    return {
        "total": len(lr_runs),
        "diverged": sum(r["collapsed"] or r["trivial"] for r in lr_runs),
        "collapsed": sum(r["collapsed"] for r in lr_runs),
        "trivial": sum(r["trivial"] for r in lr_runs),
    }


def _per_lr_table(lr_runs: list[dict]) -> dict[str, Any]:
    rows = []
    keys = sorted({(r["task"], r["learning_rate"]) for r in lr_runs})
    for task, lr in keys:
        cells = [task, f"{lr:g}"]
        for model in MODELS:
            mine = [r for r in lr_runs if r["task"] == task and r["learning_rate"] == lr and r["model"] == model]
            scores = [r["score"] for r in mine]
            cells += [f"{100 * np.mean(scores):.1f} ± {100 * np.std(scores, ddof=1) if len(scores) > 1 else 0:.1f}", f"{sum(r['trivial'] or r['collapsed'] for r in mine)}/{len(mine)}"]
        rows.append(cells)
    return {"title": "Every learning rate (dev score x100, mean ± std over all seeds; failed runs)", "columns": ["task", "lr", "BERT", "BERT failed", "recurrent BERT", "recurrent failed"], "rows": rows}


__all__ = ["plan_l1", "plan_l2", "run_lei", "subset_score", "lei_models"]
