"""Wen, Dang, Lyu (2024): (W1) recurrent models cannot do in-context retrieval where attention can; (W3) one
attention layer on top fixes it.

Protocol: multi-query associative recall built for masked LMs (the probes' `recall`: `[CLS] k1 v1 ... kN vN
[SEP] q1 [MASK] ... [SEP]`, Q = N/2 queries), every model trained from scratch at BERT's parameter count with
the same data, steps and learning-rate grid (the learning rate chosen on a validation set), scored on a fixed
test set per N. The gate, fixed before the runs: a comparison is made at the largest N at which BERT reaches 95%
test accuracy; a recurrent model "fails" only where BERT passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .decision import Comparison, Evidence, Plan, decide, not_tested, write_plan
from .report import make_summary, write_claim_report, write_summary
from .stages import StudyContext
from .stats import TaskResults, hierarchical_bootstrap

GATE = 0.95


def _protocol(ctx: StudyContext) -> str:
    spec = ctx.tier.recall
    settings = ", ".join(f"{k} {v}" for k, v in sorted(spec.settings.items()))
    return (
        f"Models {', '.join(spec.models)} at BERT-{ctx.tier.pretrain.size}'s parameter count, trained from scratch on "
        f"MQAR with seeds {', '.join(map(str, spec.seeds))} ({settings or 'the probe defaults'}); each model's "
        f"learning rate chosen on the validation sets. Comparisons at N* = the largest N where BERT's test accuracy "
        f"is at least {GATE:.0%}; per-query correctness on the test set, paired bootstrap over seeds and queries."
    )


def plans(ctx: StudyContext) -> dict[str, Plan]:
    common = dict(paper="Wen et al. 2024", protocol=_protocol(ctx), metric="test accuracy per query at N*",
                  predicted_direction="greater", combine="all")  # fmt: skip
    return {
        "W1": Plan(claim_id="W1", statement="Recurrent encoders fail in-context retrieval where attention succeeds.",
                   paper_numbers="RNNs need a hidden state growing with N to solve associative recall; Transformers solve it "
                   "with a constant size (their theorems; their experiments show RNNs failing as N grows).",
                   comparisons=(Comparison("BERT - recurrent stack at N*", ("bert", "recurrent")),
                                Comparison("BERT - LSTM at N*", ("bert", "lstm"))), **common),
        "W3": Plan(claim_id="W3", statement="One attention layer on top of a recurrent encoder fixes in-context retrieval.",
                   paper_numbers="A single Transformer layer added to an RNN closes the gap (their hybrid results).",
                   comparisons=(Comparison("hybrid - recurrent stack at N*", ("hybrid_recurrent", "recurrent")),
                                Comparison("hybrid - LSTM at N*", ("hybrid_lstm", "lstm"))), **common),
    }  # fmt: skip


def run_wen(ctx: StudyContext, command: str) -> list[Path]:
    import json

    from ..probes.recall import RecallArgs, run_recall

    dirs = {c: ctx.claim_dir(c) for c in ("W1", "W3")}
    plan = plans(ctx)
    for claim in dirs:
        write_plan(plan[claim], dirs[claim] / "plan.json")
    spec = ctx.tier.recall
    out = ctx.output_dir / "recall"
    cache = out / "per_query.npz"
    summary_path = out / "recall.json"
    if not (cache.exists() and summary_path.exists()):
        settings = {**spec.settings}
        if ctx.tier.pretrain.shape and "hidden_size" not in settings:
            settings["hidden_size"] = ctx.tier.pretrain.shape.get("hidden_size")
        result = run_recall(RecallArgs(models=list(spec.models), seeds=list(spec.seeds), output_dir=str(out),
                                       size=ctx.tier.pretrain.size, **settings), progress=None if ctx.quiet else ctx.log)  # fmt: skip
        arrays = {f"{r.model}|{r.seed}|{n}": r.test_correct[n] for r in result.runs
                  if r.learning_rate == result.summary["models"][r.model]["best_learning_rate"] for n in r.test_correct}  # fmt: skip
        np.savez_compressed(cache, **arrays)
        summary = result.summary
    else:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    per_query = dict(np.load(cache))
    pairs = sorted(int(n) for n in summary["gate_passes"])
    gate_ns = [n for n in pairs if summary["models"]["bert"]["test"][str(n)]["accuracy"] >= GATE]
    table = _table(summary, pairs)
    plots = []
    png = out / "recall.png"
    if png.exists():
        import shutil

        for claim in dirs:
            shutil.copy2(png, dirs[claim] / "recall.png")
        plots = [{"path": "recall.png", "caption": "Test accuracy against N per model (the learning rate chosen on validation)."}]
    runs = {"total": len(summary.get("runs", [])), "diverged": sum(bool(r.get("diverged")) for r in summary.get("runs", [])),
            "collapsed": 0, "trivial": 0}  # fmt: skip
    differences = (
        "Wen et al. prove bounds for autoregressive RNNs and test decoder models; here the models are masked LMs (our "
        "bidirectional recurrent stack and LSTM, with Q = N/2 queries so a two-pass recurrence cannot carry one queried "
        f"key backwards), trained from scratch at BERT-{ctx.tier.pretrain.size}'s parameter count on a synthetic "
        "alphabet, with a gate that BERT must pass first."
    )
    for claim in dirs:
        if not gate_ns:
            decision = not_tested(plan[claim], f"BERT reached {GATE:.0%} at no N ({', '.join(map(str, pairs))}): the gate was not met")
        else:
            n_star = max(gate_ns)
            evidence = []
            for comparison in plan[claim].comparisons:
                a, b = comparison.models
                seeds = list(spec.seeds)
                try:
                    scores = paired_scores(per_query, (a, b), seeds, n_star)
                except KeyError:
                    continue
                result = hierarchical_bootstrap(TaskResults(scores=scores, metric="mean", name=f"N={n_star}"),
                                                n_resamples=ctx.tier.bootstrap_resamples, seed=8).difference(a, b)  # fmt: skip
                evidence.append(Evidence.from_bootstrap(comparison.name, result))
            decision = decide(plan[claim], evidence) if evidence else not_tested(plan[claim], "a model of the comparison did not run")
        notes = [f"N* = {max(gate_ns)} (BERT passed the gate at N = {', '.join(map(str, gate_ns))})."] if gate_ns else []
        summary_claim = make_summary(plan[claim], decision, tables=[table], plots=plots, runs=runs,
                                     run_info=ctx.run_info(command), differences=differences, notes=notes,
                                     null_meaning="A recurrent model that passes here has a state large enough for this "
                                     "alphabet and N; the paper's bound is about N growing with the state fixed.")  # fmt: skip
        write_summary(dirs[claim], summary_claim)
        write_claim_report(dirs[claim])
    return list(dirs.values())


def paired_scores(per_query: dict[str, np.ndarray], models, seeds, n: int) -> dict[str, np.ndarray]:
    """Per-query correctness of each model at N = n as (seeds, 1, items): a run's (examples, queries) array is
    flattened to one item per (example, query), the same items for every model (the test sets are shared)."""
    return {m: np.array([np.asarray(per_query[f"{m}|{s}|{n}"], dtype=float).reshape(-1) for s in seeds])[:, None, :]
            for m in models}  # fmt: skip


def _table(summary: dict[str, Any], pairs: list[int]) -> dict[str, Any]:
    rows = []
    for model, info in summary["models"].items():
        rows.append([model, f"{info['parameters']:,}", f"{info['best_learning_rate']:g}",
                     *(f"{info['test'][str(n)]['accuracy']:.3f} ({info['verdict'][str(n)]})" for n in pairs)])  # fmt: skip
    return {"title": "Test accuracy per query against N (the learning rate chosen on validation; verdict against the gate)",
            "columns": ["model", "parameters", "learning rate", *(f"N={n}" for n in pairs)], "rows": rows}  # fmt: skip


__all__ = ["plans", "run_wen", "GATE", "paired_scores"]
