"""In-context associative recall for masked LMs (MQAR: Arora et al. 2023's Zoology task, read as Wen et al.
2024 read it for bidirectional encoders).

An example is ``[CLS] k_1 v_1 ... k_N v_N [SEP] q_1 [MASK] ... q_Q [MASK] [SEP]``: N distinct keys, each
followed by a random value, then Q = N/2 of those keys (distinct, in random order) each followed by a mask
whose label is the value paired with that key in the context. Several queries are what makes this a test of
memory for a bidirectional recurrence: with one query, a backward pass could carry the queried key to the
context and look for it there; with Q = N/2 it has to hold many pairs at once. Token ids are used directly:
the vocabulary is 4 specials + the keys + the values, and labels sit only at the masks.

Everything is a function of seeds: the training stream (a batch per step from `(seed, step)`), and fixed
validation and test sets per N (from `(data_seed, split, N)`, the same for every model). `train_recall`
trains one model from scratch (our variants built from the size presets at BERT's parameter count, their
causal controls, or a plain transformers BERT) with a curriculum over N; `run_recall` sweeps a small
learning-rate grid per model, picks each model's learning rate on the validation sets (never the test
sets) and reports test accuracy against N. A model *fails* at an N only where the gate model (BERT by
default) reaches the gate accuracy (95%) at that N in the same setting: below the gate the setting is too hard
or too short for this budget, and says nothing about the architecture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import UsageError
from ..optim import build_optimizer
from .common import arg, markdown_table, pyplot, resolve_device, write_result

PAD, CLS, SEP, MASK = 0, 1, 2, 3
NUM_SPECIALS = 4
IGNORE_INDEX = -100
SPLIT_CODES = {"validation": 1, "test": 2}

# Causal controls beside the presets' named variants: the attention-free recurrent stack read left to right
# only, and an LSTM with its forward direction only.
CONTROL_VARIANTS: dict[str, dict[str, Any]] = {
    "recurrent_forward": dict(encoder_type="recurrent", recurrence="simple", recurrence_direction="forward"),
    "lstm_forward": dict(encoder_type="lstm", lstm_bidirectional=False),
}
HF_BERT = "hf_bert"  # transformers' own BertForMaskedLM at the same shape as our "bert"


def num_queries(n_pairs: int) -> int:
    return max(1, n_pairs // 2)


def sequence_length(n_pairs: int) -> int:
    return 2 * n_pairs + 2 * num_queries(n_pairs) + 3


@dataclass(frozen=True)
class RecallTask:
    """The alphabet: `num_keys` key tokens and `num_values` value tokens after the 4 specials."""

    num_keys: int = 32
    num_values: int = 32

    @property
    def vocab_size(self) -> int:
        return NUM_SPECIALS + self.num_keys + self.num_values

    def key_id(self, k):
        return NUM_SPECIALS + k

    def value_id(self, v):
        return NUM_SPECIALS + self.num_keys + v


def generate_recall(task: RecallTask, n_pairs: int, n_examples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """`n_examples` MQAR examples with `n_pairs` pairs: `(input_ids, labels)`, both `(n_examples, length)`
    int64, labels `-100` except at the masks. The same `seed` (an int or a sequence of ints) gives the same
    arrays."""
    if not 1 <= n_pairs <= task.num_keys:
        raise UsageError(f"N = {n_pairs} pairs needs 1 <= N <= num_keys ({task.num_keys}): keys are distinct.")
    rng = np.random.default_rng(seed)
    q = num_queries(n_pairs)
    keys = np.argsort(rng.random((n_examples, task.num_keys)), axis=1)[:, :n_pairs]  # distinct keys per row
    values = rng.integers(0, task.num_values, size=(n_examples, n_pairs))
    asked = np.argsort(rng.random((n_examples, n_pairs)), axis=1)[:, :q]  # which pairs are queried, in order
    length = sequence_length(n_pairs)
    ids = np.full((n_examples, length), PAD, dtype=np.int64)
    labels = np.full((n_examples, length), IGNORE_INDEX, dtype=np.int64)
    ids[:, 0] = CLS
    ids[:, 1 : 2 * n_pairs + 1 : 2] = task.key_id(keys)
    ids[:, 2 : 2 * n_pairs + 2 : 2] = task.value_id(values)
    ids[:, 2 * n_pairs + 1] = SEP
    start = 2 * n_pairs + 2
    ids[:, start : start + 2 * q : 2] = np.take_along_axis(task.key_id(keys), asked, axis=1)
    ids[:, start + 1 : start + 2 * q : 2] = MASK
    labels[:, start + 1 : start + 2 * q : 2] = np.take_along_axis(task.value_id(values), asked, axis=1)
    ids[:, -1] = SEP
    return ids, labels


def eval_set(task: RecallTask, n_pairs: int, split: str, size: int, data_seed: int):
    """The fixed validation or test set for N pairs (the same for every model and learning rate)."""
    return generate_recall(task, n_pairs, size, [data_seed, SPLIT_CODES[split], n_pairs])


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------
def model_names() -> list[str]:
    from ..presets import VARIANTS

    return [*VARIANTS, *CONTROL_VARIANTS, HF_BERT]


def build_recall_model(name: str, task: RecallTask, max_length: int, size: str = "tiny", **shape: Any):
    """A fresh masked LM for the task: a preset variant (or causal control) at `size`, solved to BERT's
    parameter count at that shape; `hf_bert` (transformers' BertForMaskedLM at our BERT's shape); or a
    config file/folder (its encoder, with the task's vocabulary and length). `shape` overrides the size's
    `hidden_size`, `num_hidden_layers`, `num_attention_heads`, `intermediate_size` and sets
    `initializer_range`. No dropout."""
    from ..models.configuration_recurrent_mlm import RecurrentMLMConfig
    from ..models.modeling_recurrent_mlm import RecurrentMLMForMaskedLM
    from ..presets import VARIANTS, preset_config

    common = dict(
        vocab_size=task.vocab_size,
        max_position_embeddings=max_length,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **{k: v for k, v in shape.items() if v is not None},
    )
    if name == HF_BERT:
        from transformers import BertConfig, BertForMaskedLM

        ours = preset_config(size, "bert", **common)
        fields = {k: getattr(ours, k) for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                  "intermediate_size", "max_position_embeddings", "hidden_dropout_prob",
                                                  "attention_probs_dropout_prob", "initializer_range")}
        return BertForMaskedLM(BertConfig(**fields, pad_token_id=PAD))
    if name in VARIANTS:
        return RecurrentMLMForMaskedLM(preset_config(size, name, **common))
    if name in CONTROL_VARIANTS:
        return RecurrentMLMForMaskedLM(preset_config(size, **CONTROL_VARIANTS[name], **common))
    if Path(name).exists():
        return RecurrentMLMForMaskedLM(RecurrentMLMConfig.from_pretrained(name, **common))
    raise UsageError(f"unknown model {name!r}: use one of {', '.join(model_names())} or a config folder/file.")


# ----------------------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RecallArgs:
    """Arguments of `run_recall` (and `python -m recurrent_mlm.probes recall`)."""

    models: list[str] = arg(["bert", "recurrent_bert", "lstm", "recurrent", "hybrid_recurrent"],
                            help="Models to train: preset variants, causal controls (recurrent_forward, lstm_forward), "
                                 "hf_bert (transformers' BertForMaskedLM), or config folders.")
    output_dir: str | None = arg(help="Where recall.json/.md/.png go (none: nothing written).")
    size: str = arg("tiny", help="Size preset whose shape the models take (parameters matched to BERT's).")
    hidden_size: int | None = arg(help="Override the size's hidden width.")
    num_hidden_layers: int | None = arg(help="Override the size's depth.")
    num_attention_heads: int | None = arg(help="Override the size's attention heads.")
    intermediate_size: int | None = arg(help="Override the size's FFN width (default 4 x hidden).")
    initializer_range: float = arg(0.02, help="Std of the initial weights of every model (BERT's 0.02 by default).")
    num_keys: int = arg(32, help="Key tokens in the alphabet (N <= num_keys: keys are distinct).")
    num_values: int = arg(32, help="Value tokens in the alphabet.")
    pairs: list[int] = arg([4, 8, 16], help="Numbers of key-value pairs N to train and test on (Q = N/2 queries).")
    curriculum: bool = arg(True, help="Unlock the N's one by one over training (else sample every N from the start).")
    learning_rates: list[float] = arg([1e-3, 3e-3], help="Learning-rate grid; each model's best on the validation sets.")
    seeds: list[int] = arg([0], help="Training seeds (initialisation and data order) per learning rate.")
    steps: int = arg(2000, help="Optimizer steps per run.")
    batch_size: int = arg(64, help="Examples per step.")
    warmup_ratio: float = arg(0.1, help="Share of the steps with a linear warmup (then linear decay to 0).")
    weight_decay: float = arg(0.1, help="AdamW weight decay (not on biases and norms).")
    max_grad_norm: float = arg(1.0, help="Gradient clipping norm.")
    eval_every: int = arg(250, help="Steps between validation points of the learning curves.")
    eval_examples: int = arg(256, help="Examples per N in each validation and test set.")
    data_seed: int = arg(1234, help="Seed of the fixed validation and test sets.")
    gate: float = arg(0.95, help="Accuracy the gate model must reach at an N before another model can fail there.")
    gate_model: str = arg("bert", help="The model that sets the gate (attention with full context).")
    device: str | None = arg(help="cpu, cuda, ... (default: a GPU when there is one).")
    threads: int | None = arg(help="torch CPU threads (default: torch's).")

    def check(self) -> None:
        if not self.models:
            raise UsageError("--models: give at least one model.")
        if any(n < 1 or n > self.num_keys for n in self.pairs) or not self.pairs:
            raise UsageError(f"--pairs {self.pairs}: every N must be between 1 and --num_keys ({self.num_keys}).")
        if self.steps < 1 or self.batch_size < 1 or self.eval_examples < 1 or self.eval_every < 1:
            raise UsageError("--steps, --batch_size, --eval_examples and --eval_every must be >= 1.")
        if not self.learning_rates or any(lr <= 0 for lr in self.learning_rates):
            raise UsageError("--learning_rates: give positive learning rates.")

    @property
    def task(self) -> RecallTask:
        return RecallTask(self.num_keys, self.num_values)

    @property
    def shape(self) -> dict[str, int | None]:
        return dict(hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                    num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
                    initializer_range=self.initializer_range)


def curriculum_pairs(pairs: Sequence[int], step: int, steps: int, curriculum: bool) -> list[int]:
    """The N's a training step may draw from: with the curriculum, stage i of len(pairs) equal stages
    unlocks the i smallest; without, all of them."""
    ordered = sorted(pairs)
    if not curriculum:
        return ordered
    stage = min(len(ordered) - 1, step * len(ordered) // max(1, steps))
    return ordered[: stage + 1]


@torch.inference_mode()
def query_correctness(model, input_ids: np.ndarray, labels: np.ndarray, device, batch_size: int = 256) -> np.ndarray:
    """Whether each query is answered right (argmax over the whole vocabulary at its mask): a boolean
    `(examples, queries)` array, examples in set order and queries in sequence order (for paired statistics)."""
    was_training = model.training
    model.eval()
    rows = []
    for start in range(0, len(input_ids), batch_size):
        ids = torch.from_numpy(input_ids[start : start + batch_size]).to(device)
        gold = torch.from_numpy(labels[start : start + batch_size]).to(device)
        logits = model(input_ids=ids).logits  # (batch, seq, vocab): eval mode gives full logits
        at = gold != IGNORE_INDEX  # the same number of masks in every row of one N
        right = logits.argmax(-1) == gold
        rows.append(right[at].view(ids.shape[0], -1).cpu().numpy())
    model.train(was_training)
    return np.concatenate(rows)


def recall_accuracy(model, input_ids: np.ndarray, labels: np.ndarray, device, batch_size: int = 256) -> dict[str, float]:
    """Per-query accuracy and the share of examples with every query right."""
    correct = query_correctness(model, input_ids, labels, device, batch_size)
    return {"accuracy": float(correct.mean()), "exact": float(correct.all(axis=1).mean())}


@dataclass
class RecallRun:
    model: str
    learning_rate: float
    seed: int
    parameters: int
    validation: dict[int, dict[str, float]]
    test: dict[int, dict[str, float]]
    curve: list[dict[str, Any]]  # step, train_loss, validation accuracy per N and mean
    seconds: float
    diverged: bool
    test_correct: dict[int, np.ndarray] = field(default_factory=dict)  # N -> (examples x queries) right or not

    @property
    def validation_mean(self) -> float:
        return float(np.mean([v["accuracy"] for v in self.validation.values()]))


def train_recall(
    name: str, args: RecallArgs, learning_rate: float, seed: int, progress: Callable[[str], None] | None = None
) -> RecallRun:
    """Train one model on MQAR from scratch and evaluate it on the fixed validation and test sets."""
    say = progress or (lambda message: None)
    device = resolve_device(args.device)
    task = args.task
    max_length = sequence_length(max(args.pairs))
    torch.manual_seed(seed)
    model = build_recall_model(name, task, max_length, args.size, **args.shape).to(device).train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = build_optimizer(model, learning_rate, weight_decay=args.weight_decay)
    warmup = int(args.warmup_ratio * args.steps)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (args.steps - step) / max(1, args.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    validation_sets = {n: eval_set(task, n, "validation", args.eval_examples, args.data_seed) for n in args.pairs}
    project = getattr(model, "project_recurrent_weights", None)
    started = time.perf_counter()
    curve: list[dict[str, Any]] = []
    window: list[float] = []
    diverged = False
    start_accuracy = {n: recall_accuracy(model, *validation_sets[n], device)["accuracy"] for n in args.pairs}
    curve.append({"step": 0, "train_loss": None, "validation": {str(k): v for k, v in start_accuracy.items()},
                  "validation_mean": float(np.mean(list(start_accuracy.values())))})
    for step in range(args.steps):
        rng = np.random.default_rng([seed, step, 7])
        n = int(rng.choice(curriculum_pairs(args.pairs, step, args.steps, args.curriculum)))
        ids, labels = generate_recall(task, n, args.batch_size, [seed, step])
        loss = model(input_ids=torch.from_numpy(ids).to(device), labels=torch.from_numpy(labels).to(device)).loss
        if not torch.isfinite(loss):
            diverged = True
            say(f"{name} lr={learning_rate:g} seed={seed}: non-finite loss at step {step}; stopping this run")
            break
        loss.backward()
        if args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if project is not None:
            project()
        window.append(loss.item())
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            point: dict[str, Any] = {"step": step + 1, "train_loss": float(np.mean(window))}
            window = []
            accuracies = {n_: recall_accuracy(model, *validation_sets[n_], device)["accuracy"] for n_ in args.pairs}
            point["validation"] = {str(k): v for k, v in accuracies.items()}
            point["validation_mean"] = float(np.mean(list(accuracies.values())))
            curve.append(point)
            say(f"{name} lr={learning_rate:g} seed={seed} step {step + 1}: loss {point['train_loss']:.3f}, "
                f"validation accuracy " + ", ".join(f"N={k}: {v:.3f}" for k, v in accuracies.items()))
    validation = {n: recall_accuracy(model, *validation_sets[n], device) for n in args.pairs}
    test_correct = {n: query_correctness(model, *eval_set(task, n, "test", args.eval_examples, args.data_seed), device)
                    for n in args.pairs}
    test = {n: {"accuracy": float(c.mean()), "exact": float(c.all(axis=1).mean())} for n, c in test_correct.items()}
    return RecallRun(
        model=name,
        learning_rate=learning_rate,
        seed=seed,
        parameters=parameters,
        validation=validation,
        test=test,
        curve=curve,
        seconds=time.perf_counter() - started,
        diverged=diverged,
        test_correct=test_correct,
    )


@dataclass
class RecallResult:
    summary: dict[str, Any]
    runs: list[RecallRun]
    files: dict[str, str]

    def markdown(self) -> str:
        return recall_markdown(self.summary)


def run_recall(args: RecallArgs, progress: Callable[[str], None] | None = None) -> RecallResult:
    """Every model x learning rate x seed; per model the learning rate with the best mean validation accuracy
    (over N and seeds); its test accuracy against N; the gate."""
    args.check()
    for name in args.models:
        if name not in model_names() and not Path(name).exists():
            raise UsageError(f"unknown model {name!r}: use one of {', '.join(model_names())} or a config folder/file.")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs = [train_recall(name, args, lr, seed, progress) for name in args.models for lr in args.learning_rates for seed in args.seeds]
    per_model: dict[str, Any] = {}
    for name in args.models:
        mine = [r for r in runs if r.model == name]
        by_lr = {lr: [r for r in mine if r.learning_rate == lr] for lr in args.learning_rates}
        best_lr = max(args.learning_rates, key=lambda lr: np.mean([r.validation_mean for r in by_lr[lr]]))
        chosen = by_lr[best_lr]
        per_model[name] = {
            "parameters": chosen[0].parameters,
            "best_learning_rate": best_lr,
            "validation_mean_by_lr": {str(lr): float(np.mean([r.validation_mean for r in by_lr[lr]])) for lr in args.learning_rates},
            "test": {str(n): {"accuracy": float(np.mean([r.test[n]["accuracy"] for r in chosen])),
                              "accuracy_per_seed": [r.test[n]["accuracy"] for r in chosen],
                              "exact": float(np.mean([r.test[n]["exact"] for r in chosen]))} for n in args.pairs},
            "seconds_per_run": float(np.mean([r.seconds for r in mine])),
            "diverged_runs": sum(r.diverged for r in mine),
        }
    gate = per_model.get(args.gate_model)
    gate_passes = {str(n): (gate is not None and gate["test"][str(n)]["accuracy"] >= args.gate) for n in args.pairs}
    for info in per_model.values():
        info["verdict"] = {}
        for n in args.pairs:
            acc = info["test"][str(n)]["accuracy"]
            if acc >= args.gate:
                verdict = "pass"
            elif gate_passes[str(n)]:
                verdict = "fail"
            else:
                verdict = "gate not met"
            info["verdict"][str(n)] = verdict
    summary = {
        "setting": {k: v for k, v in asdict(args).items() if k not in ("output_dir", "device", "threads")},
        "vocab_size": args.task.vocab_size,
        "sequence_length": {str(n): sequence_length(n) for n in args.pairs},
        "queries": {str(n): num_queries(n) for n in args.pairs},
        "gate_model": args.gate_model,
        "gate": args.gate,
        "gate_passes": gate_passes,
        "models": per_model,
        "runs": [_run_record(r) for r in runs],
        "device": str(resolve_device(args.device)),
        "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - started,
    }
    result = RecallResult(summary=summary, runs=runs, files={})
    if args.output_dir:
        paths = write_result(args.output_dir, "recall", summary, result.markdown())
        png = plot_recall(summary, Path(args.output_dir) / "recall.png")
        if png is not None:
            paths["png"] = png
        result.files = {k: str(v) for k, v in paths.items()}
    return result


def _run_record(run: RecallRun) -> dict[str, Any]:
    record = asdict(run)
    record.pop("test_correct")  # per-query arrays stay on the run object (RecallResult.runs)
    record["validation"] = {str(k): v for k, v in run.validation.items()}
    record["test"] = {str(k): v for k, v in run.test.items()}
    record["validation_mean"] = run.validation_mean
    return record


def recall_markdown(summary: dict) -> str:
    setting = summary["setting"]
    pairs = [str(n) for n in setting["pairs"]]
    lines = ["# In-context associative recall (MQAR, masked)\n"]
    lines.append(
        f"Alphabet {setting['num_keys']} keys x {setting['num_values']} values (vocabulary {summary['vocab_size']}); "
        f"N = {', '.join(pairs)} pairs with Q = N/2 queries; size `{setting['size']}`"
        + "".join(f", {k} {setting[k]}" for k in ("hidden_size", "num_hidden_layers", "num_attention_heads") if setting[k])
        + f", initializer_range {setting['initializer_range']:g}"
        + f"; {setting['steps']} steps of {setting['batch_size']}, curriculum {'on' if setting['curriculum'] else 'off'}; "
        f"learning rates {', '.join(f'{lr:g}' for lr in setting['learning_rates'])} (best on validation); seeds "
        f"{', '.join(map(str, setting['seeds']))}; {setting['eval_examples']} test examples per N.\n"
    )
    headers = ["model", "parameters", "best lr", *[f"N={n}" for n in pairs]]
    rows = []
    for name, info in summary["models"].items():
        cells = []
        for n in pairs:
            acc = info["test"][n]["accuracy"]
            mark = {"pass": "", "fail": " (fail)", "gate not met": ""}[info["verdict"][n]]
            cells.append(f"{acc:.3f}{mark}")
        rows.append([name, f"{info['parameters'] / 1e6:.2f}M", f"{info['best_learning_rate']:g}", *cells])
    lines.append(markdown_table(headers, rows))
    passes = [n for n in pairs if summary["gate_passes"][n]]
    gate_text = (
        f"Gate: `{summary['gate_model']}` reaches {summary['gate']:.0%} at N = {', '.join(passes)}; a model is marked "
        "(fail) only there." if passes else
        f"Gate: `{summary['gate_model']}` reaches {summary['gate']:.0%} at no N in this setting, so no model can be said "
        "to fail here (the setting is too hard or too short for this budget)."
    )
    lines.append(f"Test accuracy per query (argmax over the vocabulary) at each model's best learning rate. {gate_text} "
                 f"Wall time {summary['seconds']:.0f} s on {summary['device']} ({summary['threads']} threads).\n")
    return "\n".join(lines)


def plot_recall(summary: dict, path: str | os.PathLike) -> Path | None:
    plt = pyplot()
    pairs = summary["setting"]["pairs"]
    fig, (ax_n, ax_curve) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for name, info in summary["models"].items():
        acc = [info["test"][str(n)]["accuracy"] for n in pairs]
        ax_n.plot(pairs, acc, "o-", label=name)
        best = [r for r in summary["runs"] if r["model"] == name and r["learning_rate"] == info["best_learning_rate"]]
        if best and best[0]["curve"]:
            ax_curve.plot([p["step"] for p in best[0]["curve"]], [p["validation_mean"] for p in best[0]["curve"]], label=name)
    ax_n.axhline(summary["gate"], color="gray", linestyle=":", linewidth=1, label=f"gate {summary['gate']:.0%}")
    ax_n.set(xscale="log", xlabel="key-value pairs N (Q = N/2 queries)", ylabel="test accuracy per query",
             title="recall against N (best learning rate)", ylim=(0, 1.02))
    ax_n.set_xticks(pairs, [str(n) for n in pairs])
    ax_curve.set(xlabel="optimizer step", ylabel="validation accuracy (mean over N)", title="learning curves", ylim=(0, 1.02))
    for ax in (ax_n, ax_curve):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "CONTROL_VARIANTS",
    "HF_BERT",
    "RecallArgs",
    "RecallResult",
    "RecallRun",
    "RecallTask",
    "build_recall_model",
    "curriculum_pairs",
    "eval_set",
    "generate_recall",
    "num_queries",
    "recall_accuracy",
    "run_recall",
    "sequence_length",
    "train_recall",
]
