"""The trained agreement probe (Abnar et al.'s setting, after Linzen et al. 2016's number prediction task).

A classifier reads the words before the verb of each of Linzen's items and predicts whether the verb is
singular or plural. Fine-tuned from a pretrained model and from a randomly initialised copy of it (same
architecture and tokenizer), it asks what pretraining contributes, and across architectures, which inductive
bias learns agreement best; accuracy by number of attractors, calibration (ECE) and the spread over seeds
are what Abnar et al. compare.

The pieces:

* `write_split`: a fixed, stratified train/test split of Linzen's items (stratified by label x attractors,
  one seed), written as `train.csv` and `test.csv` with columns `sentence` (the prefix), `label`
  (`singular`/`plural`), `attractors` and `item` (the line in Linzen's files), which `run_glue.py` reads
  with `--train_file train.csv --validation_file test.csv --text_columns sentence --label_column label`.
  The test file is the evaluation split; no model selection uses it (`run_glue.py` reports final scores).
* `make_random_init`: the randomly initialised copy of a checkpoint.
* `finetune`: the fine-tuning, a `recurrent_mlm.glue.run_glue` sweep (what `run_glue.py` runs) in-process.
* `analyse_runs`: reads each run's `eval_predictions.jsonl` (single run or sweep layout), joins it with the
  test split, and reports accuracy by attractors, ECE, and mean / standard deviation / range over seeds.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import UsageError
from ..files import atomic_write_json, atomic_write_text
from .agreement_data import AgreementItem, read_linzen
from .common import accuracy_summary, arg, binary_calibration, fmt, markdown_table, pyplot, write_result

LABELS = ("plural", "singular")  # run_glue.py numbers classification labels in sorted order
PREDICTIONS_FILE = "eval_predictions.jsonl"
COLUMNS = ["item", "sentence", "label", "attractors"]


@dataclass
class AgreementTrainArgs:
    """Arguments of `run_agreement_train` (and `python -m recurrent_mlm.probes agreement-train`)."""

    model: list[str] | None = arg(help="Pretrained checkpoint folder(s) to fine-tune (each also from a random "
                                       "initialisation unless --no-random_init). Not needed with --runs_dir.")
    output_dir: str | None = arg(help="Where split/, random_init/, finetune/ (the run_glue.py sweep) and agreement_train.json/.md/.png go.")
    linzen: str | None = arg(help="Linzen et al.'s subj_agr_filtered.gold (with its .text) or their folder.")
    test_fraction: float = arg(0.2, help="Share of each label x attractors stratum in the test split.")
    split_seed: int = arg(0, help="Seed of the split (fixed: the same seed gives the same split).")
    max_train_items: int | None = arg(help="Keep at most N training items (a stratified subset; quick runs).")
    random_init: bool = arg(True, help="Also fine-tune a randomly initialised copy of each model.")
    learning_rates: list[float] = arg([5e-5], help="Fine-tuning learning rates.")
    seeds: list[int] = arg([1, 2, 3], help="Fine-tuning seeds (head initialisation, data order, dropout).")
    num_train_epochs: float = arg(3.0, help="Passes over the training split (fractions allowed).")
    per_device_train_batch_size: int = arg(32, help="Training batch size.")
    max_seq_length: int = arg(128, help="Tokens per prefix (longer ones are truncated by run_glue.py).")
    runs_dir: str | None = arg(help="Analyse the runs already in this folder (single run or sweep layout) "
                                    "instead of fine-tuning.")
    split_dir: str | None = arg(help="Use the split already written in this folder (train.csv, test.csv).")
    n_bins: int = arg(15, help="Confidence bins of the expected calibration error.")

    def check(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise UsageError(f"--test_fraction must be between 0 and 1, got {self.test_fraction}.")
        if self.runs_dir is None and not self.model:
            raise UsageError("give --model (to fine-tune) or --runs_dir (to analyse finished runs).")
        if self.runs_dir is None and self.output_dir is None:
            raise UsageError("--output_dir is needed to fine-tune (the runs go there).")
        if self.split_dir is None and self.linzen is None:
            raise UsageError("give --linzen (to make the split) or --split_dir (a split written before).")


# ----------------------------------------------------------------------------------------------------------
# The split
# ----------------------------------------------------------------------------------------------------------
def split_items(items: list[AgreementItem], test_fraction: float, seed: int) -> tuple[list[AgreementItem], list[AgreementItem], dict]:
    """Stratified by (label, attractors): in each stratum a seeded shuffle, then the first
    round(fraction x size) items go to test. Items without a known number (or broken) are left out."""
    usable = [i for i in items if i.number in LABELS and not i.broken]
    strata: dict[tuple[str, int], list[AgreementItem]] = {}
    for item in usable:
        strata.setdefault((item.number, item.attractors), []).append(item)
    train, test = [], []
    for key in sorted(strata):
        members = strata[key]
        order = np.random.default_rng([seed, LABELS.index(key[0]), key[1]]).permutation(len(members))
        cut = int(round(test_fraction * len(members)))
        test += [members[i] for i in order[:cut]]
        train += [members[i] for i in order[cut:]]
    train.sort(key=lambda i: i.index)
    test.sort(key=lambda i: i.index)
    info = {"items": len(items), "left_out": len(items) - len(usable), "train": len(train), "test": len(test),
            "test_fraction": test_fraction, "seed": seed,
            "strata": {f"{label}/{att}": len(m) for (label, att), m in sorted(strata.items())}}
    return train, test, info


def _subsample(items: list[AgreementItem], limit: int | None, seed: int) -> list[AgreementItem]:
    """A stratified subset of at most `limit` items (the same share of every stratum), in file order."""
    if limit is None or limit >= len(items):
        return items
    strata: dict[tuple, list[AgreementItem]] = {}
    for item in items:
        strata.setdefault((item.number, item.attractors), []).append(item)
    kept = []
    for key in sorted(strata):
        members = strata[key]
        order = np.random.default_rng([seed, 99, LABELS.index(key[0]), key[1]]).permutation(len(members))
        kept += [members[i] for i in order[: max(1, round(limit * len(members) / len(items)))]]
    return sorted(kept, key=lambda i: i.index)[:limit]


def _csv(items: list[AgreementItem]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in items:
        writer.writerow([item.index, " ".join(item.words[: item.target]), item.number, item.attractors])
    return buffer.getvalue()


def write_split(linzen: str | os.PathLike, folder: str | os.PathLike, test_fraction: float = 0.2, seed: int = 0,
                max_train_items: int | None = None) -> dict[str, Any]:
    """Write `train.csv`, `test.csv` and `split.json` into `folder`; returns the split's description."""
    train, test, info = split_items(read_linzen(linzen), test_fraction, seed)
    train = _subsample(train, max_train_items, seed)
    info["train"] = len(train)
    info["max_train_items"] = max_train_items
    folder = Path(folder)
    atomic_write_text(folder / "train.csv", _csv(train))
    atomic_write_text(folder / "test.csv", _csv(test))
    atomic_write_json(folder / "split.json", info)
    return info


def read_split(folder: str | os.PathLike, name: str = "test") -> list[dict[str, Any]]:
    import csv

    path = Path(folder) / f"{name}.csv"
    if not path.is_file():
        raise UsageError(f"{path} does not exist; write the split first (--linzen) or point --split_dir at it.")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["attractors"] = int(row["attractors"])
        row["item"] = int(row["item"])
    return rows


# ----------------------------------------------------------------------------------------------------------
# Models and fine-tuning
# ----------------------------------------------------------------------------------------------------------
def make_random_init(model_path: str | os.PathLike, folder: str | os.PathLike, seed: int = 0) -> Path:
    """A copy of `model_path`'s architecture and tokenizer with fresh random weights (its own init scheme),
    saved to `folder`. With an MLM checkpoint the copy has an MLM head too, so both start from the same kind
    of checkpoint."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    import recurrent_mlm  # noqa: F401
    from .common import load_tokenizer

    config = AutoConfig.from_pretrained(model_path)
    architectures = getattr(config, "architectures", None) or []
    masked = any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures)
    torch.manual_seed(seed)
    model = (AutoModelForMaskedLM if masked else AutoModel).from_config(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    load_tokenizer(model_path).save_pretrained(folder)
    atomic_write_json(folder / "random_init.json", {"copied_from": str(model_path), "seed": seed})
    return folder


def model_label(path: str | os.PathLike) -> str:
    """A short name for a model folder: its name, or its parent's when the name says nothing (`model`)."""
    folder = Path(str(path).rstrip("/"))
    if folder.name.lower() in ("model", "models", "checkpoint", "final", "") and folder.parent.name:
        return folder.parent.name
    return folder.name or "model"


def finetune(models: dict[str, str], split_dir: str | os.PathLike, runs_dir: str | os.PathLike, args: AgreementTrainArgs,
             **overrides: Any) -> Path:
    """Fine-tune every model x learning rate x seed on the split: a resumable `run_glue` sweep in `runs_dir`
    (`runs/<label>/lr_<lr>_seed_<seed>/`, each with its `eval_predictions.jsonl`). `overrides` are further
    `GlueArguments` fields."""
    from ..glue import GlueArguments, run_glue

    run_glue(GlueArguments(
        model_name_or_path=list(models.values()),
        model_labels=list(models.keys()),
        train_file=str(Path(split_dir) / "train.csv"),
        validation_file=str(Path(split_dir) / "test.csv"),
        text_columns=["sentence"],
        label_column="label",
        learning_rates=list(args.learning_rates),
        seeds=list(args.seeds),
        num_train_epochs=args.num_train_epochs,
        per_device_train_batch_size=args.per_device_train_batch_size,
        max_seq_length=args.max_seq_length,
        sweep=True,
        output_dir=str(runs_dir),
        **overrides,
    ))  # fmt: skip
    return Path(runs_dir)


# ----------------------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RunPredictions:
    model: str
    learning_rate: float | None
    seed: int | None
    folder: str
    rows: list[dict[str, Any]]


def find_runs(runs_dir: str | os.PathLike) -> list[RunPredictions]:
    """Every run under `runs_dir` that has an `eval_predictions.jsonl`: a single run's folder, or a sweep's
    `runs/<model>/lr_<lr>_seed_<seed>/`. Model, learning rate and seed come from the run's result file, else
    from the folder names."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise UsageError(f"--runs_dir {root} is not a folder.")
    runs = []
    for path in sorted(root.rglob(PREDICTIONS_FILE)):
        folder = path.parent
        meta: dict[str, Any] = {}
        for name in ("result.json", "all_results.json"):
            if (folder / name).is_file():
                meta = json.loads((folder / name).read_text(encoding="utf-8"))
                break
        match = re.fullmatch(r"lr_([^_]+)_seed_(-?\d+)", folder.name)
        model = meta.get("model_label") or (folder.parent.name if match else folder.name)
        lr = meta.get("learning_rate", float(match.group(1)) if match else None)
        seed = meta.get("seed", int(match.group(2)) if match else None)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        runs.append(RunPredictions(model=model, learning_rate=lr, seed=seed, folder=str(folder), rows=rows))
    if not runs:
        raise UsageError(f"no {PREDICTIONS_FILE} under {root}; run_glue.py writes one per finished run.")
    return runs


def analyse_run(run: RunPredictions, test: list[dict[str, Any]], n_bins: int = 15) -> dict[str, Any]:
    rows = [r for r in run.rows if r.get("split", "validation") == "validation"]
    if len(rows) != len(test):
        raise UsageError(f"{run.folder}: {len(rows)} evaluation predictions but the test split has {len(test)} rows; "
                         "analyse runs against the split they were trained on (--split_dir).")
    correct = np.array([bool(r["correct"]) for r in rows])
    attractors = np.array([t["attractors"] for t in test])
    probabilities = np.array([r["probabilities"] for r in rows], dtype=np.float64)
    labels = np.array([r["label"] for r in rows])
    from ..glue.ece_metric import expected_calibration_error

    ece = expected_calibration_error(probabilities, labels, n_bins=n_bins)["ece"]
    p_gold = probabilities[np.arange(len(labels)), labels]
    return {
        "model": run.model,
        "learning_rate": run.learning_rate,
        "seed": run.seed,
        "folder": run.folder,
        "overall": accuracy_summary(correct),
        "ece": float(ece),
        "brier": binary_calibration(p_gold, n_bins)["brier"],
        "by_attractors": {str(a): accuracy_summary(correct[attractors == a]) for a in sorted(set(attractors.tolist()))},
    }


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()) if array.size else math.nan,
        "std": float(array.std(ddof=1)) if array.size > 1 else (0.0 if array.size else math.nan),
        "min": float(array.min()) if array.size else math.nan,
        "max": float(array.max()) if array.size else math.nan,
        "n": int(array.size),
    }


def analyse_runs(runs_dir: str | os.PathLike, split_dir: str | os.PathLike, n_bins: int = 15) -> dict[str, Any]:
    """Per run, and per model x learning rate over seeds: accuracy (overall and by attractors), ECE, Brier."""
    test = read_split(split_dir, "test")
    runs = [analyse_run(r, test, n_bins) for r in find_runs(runs_dir)]
    groups: dict[tuple[str, float | None], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["model"], run["learning_rate"]), []).append(run)
    summary = []
    for (model, lr), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        attractors = sorted({a for m in members for a in m["by_attractors"]}, key=int)
        summary.append({
            "model": model,
            "learning_rate": lr,
            "seeds": [m["seed"] for m in members],
            "accuracy": _spread([m["overall"]["accuracy"] for m in members]),
            "ece": _spread([m["ece"] for m in members]),
            "brier": _spread([m["brier"] for m in members]),
            "by_attractors": {a: _spread([m["by_attractors"][a]["accuracy"] for m in members if a in m["by_attractors"]])
                              for a in attractors},
        })
    test_attractors = {str(a): sum(t["attractors"] == a for t in test) for a in sorted({t["attractors"] for t in test})}
    return {"runs": runs, "models": summary, "test_items": len(test), "test_by_attractors": test_attractors,
            "majority_baseline": majority_baseline(split_dir, test)}


def majority_baseline(split_dir: str | os.PathLike, test: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of always answering the most frequent training label, overall and by attractors (what a
    classifier that learned nothing scores; the label mix changes with the number of attractors)."""
    train_path = Path(split_dir) / "train.csv"
    source = read_split(split_dir, "train") if train_path.is_file() else test
    counts = {label: sum(r["label"] == label for r in source) for label in LABELS}
    label = max(LABELS, key=lambda name: (counts[name], name == LABELS[0]))
    right = np.array([r["label"] == label for r in test])
    attractors = np.array([r["attractors"] for r in test])
    return {"label": label, "overall": accuracy_summary(right),
            "by_attractors": {str(a): accuracy_summary(right[attractors == a]) for a in sorted(set(attractors.tolist()))}}


@dataclass
class AgreementTrainResult:
    summary: dict[str, Any]
    files: dict[str, str]

    def markdown(self) -> str:
        return agreement_train_markdown(self.summary)


def run_agreement_train(args: AgreementTrainArgs, progress: Callable[[str], None] | None = None) -> AgreementTrainResult:
    """Split, (random copies,) fine-tuning, analysis; or only the analysis of finished runs (`runs_dir`)."""
    args.check()
    say = progress or (lambda message: None)
    started = time.perf_counter()
    out = Path(args.output_dir) if args.output_dir else None
    split_dir = Path(args.split_dir) if args.split_dir else (out / "split" if out else None)
    split_info = None
    if args.split_dir is None:
        if split_dir is None:
            raise UsageError("give --output_dir (where the split is written) or --split_dir.")
        say(f"writing the split to {split_dir}")
        split_info = write_split(args.linzen, split_dir, args.test_fraction, args.split_seed, args.max_train_items)
    runs_dir = Path(args.runs_dir) if args.runs_dir else out / "finetune"
    if args.runs_dir is None:
        models: dict[str, str] = {}
        for path in args.model:
            label = model_label(path)
            models[label] = path
            if args.random_init:
                copy = out / "random_init" / label
                if not (copy / "random_init.json").is_file():
                    say(f"randomly initialised copy of {path} in {copy}")
                    make_random_init(path, copy)
                models[f"{label}-random-init"] = str(copy)
        say(f"fine-tuning {', '.join(models)} ({len(args.learning_rates)} learning rates x {len(args.seeds)} seeds)")
        finetune(models, split_dir, runs_dir, args)
    analysis = analyse_runs(runs_dir, split_dir, args.n_bins)
    if split_info is None and (split_dir / "split.json").is_file():
        split_info = json.loads((split_dir / "split.json").read_text(encoding="utf-8"))
    summary = {"split": split_info, "split_dir": str(split_dir), "runs_dir": str(runs_dir), **analysis,
               "seconds": time.perf_counter() - started}
    result = AgreementTrainResult(summary=summary, files={})
    if out is not None:
        paths = write_result(out, "agreement_train", summary, result.markdown())
        png = plot_agreement_train(summary, out / "agreement_train.png")
        if png is not None:
            paths["png"] = png
        result.files = {k: str(v) for k, v in paths.items()}
    return result


def agreement_train_markdown(summary: dict) -> str:
    lines = ["# Trained agreement probe (Linzen's number prediction, Abnar et al.'s setting)\n"]
    split = summary.get("split") or {}
    if split:
        lines.append(f"Split: {split.get('train')} training and {split.get('test')} test items (stratified by label x "
                     f"attractors, seed {split.get('seed')}; {split.get('left_out')} items without a known number left out).\n")
    attractors = sorted({a for m in summary["models"] for a in m["by_attractors"]}, key=int)
    headers = ["model", "lr", "seeds", "accuracy mean ± std [min, max]", "ECE mean ± std", *[f"{a} attr." for a in attractors]]
    rows = []
    for m in summary["models"]:
        acc, ece = m["accuracy"], m["ece"]
        rows.append([
            m["model"], f"{m['learning_rate']:g}" if m["learning_rate"] is not None else "-", acc["n"],
            f"{acc['mean']:.3f} ± {acc['std']:.3f} [{acc['min']:.3f}, {acc['max']:.3f}]",
            f"{ece['mean']:.3f} ± {ece['std']:.3f}",
            *[fmt(m["by_attractors"][a]["mean"]) if a in m["by_attractors"] else "-" for a in attractors],
        ])
    base = summary.get("majority_baseline")
    if base:
        rows.append([f"always '{base['label']}' (majority)", "-", "-", f"{base['overall']['accuracy']:.3f}", "-",
                     *[fmt(base["by_attractors"][a]["accuracy"]) if a in base["by_attractors"] else "-" for a in attractors]])
    lines.append(markdown_table(headers, rows))
    counts = ", ".join(f"{a}: {n}" for a, n in summary["test_by_attractors"].items())
    lines.append(f"Test items by number of attractors: {counts}. Accuracy and ECE are the final evaluation of each run "
                 "(no checkpoint chosen on the test split).\n")
    return "\n".join(lines)


def plot_agreement_train(summary: dict, path: str | os.PathLike) -> Path | None:
    if not summary["models"]:
        return None
    plt = pyplot()
    fig, (ax_att, ax_ece) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for m in summary["models"]:
        keys = sorted(m["by_attractors"], key=int)
        label = m["model"] + (f" (lr {m['learning_rate']:g})" if m["learning_rate"] is not None else "")
        means = [m["by_attractors"][k]["mean"] for k in keys]
        stds = [m["by_attractors"][k]["std"] for k in keys]
        ax_att.errorbar([int(k) for k in keys], means, yerr=stds, marker="o", capsize=3, label=label)
    labels = [m["model"] for m in summary["models"]]
    for x, m in enumerate(summary["models"]):
        values = [r["ece"] for r in summary["runs"] if r["model"] == m["model"] and r["learning_rate"] == m["learning_rate"]]
        ax_ece.scatter([x] * len(values), values, alpha=0.7)
    ax_ece.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax_att.set(xlabel="attractors", ylabel="test accuracy (mean ± std over seeds)", title="accuracy by attractors", ylim=(0, 1.02))
    ax_ece.set(ylabel="ECE (each seed)", title="calibration")
    for ax in (ax_att, ax_ece):
        ax.grid(alpha=0.3)
    ax_att.legend(fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["AgreementTrainArgs", "AgreementTrainResult", "analyse_run", "analyse_runs", "find_runs", "finetune",
           "make_random_init", "read_split", "run_agreement_train", "split_items", "write_split"]
