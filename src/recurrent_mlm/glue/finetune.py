"""One fine-tuning run under Accelerate: load, tokenize, train with evaluations, predict.

The skeleton is transformers' `run_glue_no_trainer.py`; what differs is that a process may run many of these
one after the other (the stability study), so a run owns everything it creates: it reloads the weights from
disk, re-seeds every generator, builds a fresh optimizer and scheduler, restores the mixed-precision scaler
to its initial state, and hands everything back to the `Accelerator` (`free_memory`) when it ends.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import UsageError
from ..files import atomic_write_text
from ..optim import build_optimizer, build_scheduler, warmup_steps
from .data import TaskData
from .metrics import compute_metrics, task_baseline

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


@dataclass(kw_only=True)
class FinetuneConfig:
    """Hyperparameters shared by every run of a sweep (the learning rate and seed vary per run). Built from the
    run's `GlueArguments` (`from_arguments`), where the defaults live."""

    per_device_train_batch_size: int
    per_device_eval_batch_size: int
    num_train_epochs: float
    max_train_steps: int | None
    gradient_accumulation_steps: int
    weight_decay: float
    warmup_ratio: float
    num_warmup_steps: int | None
    lr_scheduler_type: str
    max_grad_norm: float
    max_seq_length: int
    eval_steps: int | None
    early_stopping_patience: int | None
    logging_steps: int
    dtype: str
    trust_remote_code: bool
    ignore_mismatched_sizes: bool
    tokenizer_name: str | None
    ece_bins: int
    load_best_model_at_end: bool
    gradient_checkpointing: bool
    dataloader_num_workers: int
    disable_tqdm: bool
    cache_dir: str | None  # where models and tokenizers downloaded from the Hub are cached

    @classmethod
    def from_arguments(cls, args) -> FinetuneConfig:
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelInfo:
    """What we learnt about a checkpoint before training (so bad input fails before any run starts)."""

    path: str
    label: str
    model_type: str
    tokenizer: Any
    max_seq_length: int
    # task label id -> model label id, when a fine-tuned checkpoint names the task's labels in another order
    label_permutation: list[int] | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# Models and tokenizers
# ----------------------------------------------------------------------------------------------------------
def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _load_error(path: str, err: Exception, what: str) -> UsageError:
    text = _first_line(err)
    if "trust_remote_code" in str(err):
        return UsageError(f"{path}: its {what} needs custom code ({text}); pass --trust_remote_code if you trust it.")
    return UsageError(f"could not load the {what} of --model_name_or_path {path}: {text}; check the path or Hub id.")


def inspect_model(path: str, label: str, data: TaskData, cfg: FinetuneConfig) -> ModelInfo:
    """Load the config and tokenizer of `path` and check that its head fits the task."""
    from transformers import AutoConfig, AutoTokenizer

    import recurrent_mlm  # noqa: F401  (registers our model type with the Auto classes)

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code, cache_dir=cfg.cache_dir)
    except (OSError, ValueError, KeyError) as err:
        raise _load_error(path, err, "config") from None
    tokenizer_source = cfg.tokenizer_name or path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=cfg.trust_remote_code, cache_dir=cfg.cache_dir)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(
            f"could not load a tokenizer from {tokenizer_source} ({_first_line(err)}); save one next to the model "
            "(tokenizer.save_pretrained) or pass --tokenizer_name."
        ) from None
    if tokenizer.pad_token is None:
        raise UsageError(f"the tokenizer of {tokenizer_source} has no padding token; set one and save it, or pass --tokenizer_name.")
    info = ModelInfo(path=path, label=label, model_type=config.model_type, tokenizer=tokenizer, max_seq_length=cfg.max_seq_length)

    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and cfg.max_seq_length > limit:
        info.max_seq_length = int(limit)
        info.notes.append(f"--max_seq_length {cfg.max_seq_length} exceeds the model's {limit} positions; using {limit}")
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise UsageError(
            f"the tokenizer of {tokenizer_source} has {len(tokenizer)} tokens but {path} embeds only {vocab}; "
            "use the tokenizer the model was trained with (--tokenizer_name)."
        )

    if cfg.gradient_checkpointing:  # refused now, not when the first run starts
        from transformers import AutoModelForSequenceClassification

        with torch.device("meta"):
            probe = AutoModelForSequenceClassification.from_config(config, trust_remote_code=cfg.trust_remote_code)
        enable_gradient_checkpointing(probe, path)

    architectures = config.architectures or []
    has_head = any(a.endswith("ForSequenceClassification") for a in architectures)
    if has_head and config.num_labels != data.num_labels:
        if not cfg.ignore_mismatched_sizes:
            kind = "a regression head (1 output)" if config.num_labels == 1 else f"a {config.num_labels}-way classification head"
            need = "1 output (regression)" if data.is_regression else f"{data.num_labels} labels"
            raise UsageError(
                f"{path} has {kind} but {data.name} needs {need}; pass --ignore_mismatched_sizes to replace the "
                "head with a freshly initialised one."
            )
        info.notes.append(f"classification head of {path} replaced ({config.num_labels} -> {data.num_labels} outputs)")
    elif has_head and not data.is_regression:
        names = [str(config.id2label[i]).lower() for i in range(config.num_labels)]
        wanted = [n.lower() for n in data.label_names]
        if sorted(names) == sorted(wanted) and names != wanted:
            info.label_permutation = [names.index(n) for n in wanted]
            info.notes.append(f"using the label order of {path}: {config.id2label}")
    return info


def load_model(info: ModelInfo, data: TaskData, cfg: FinetuneConfig):
    """A fresh sequence-classification model from disk, in float32 unless --dtype says otherwise."""
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(
        info.path,
        trust_remote_code=cfg.trust_remote_code,
        num_labels=data.num_labels,
        finetuning_task=data.name,
        cache_dir=cfg.cache_dir,
    )
    if info.label_permutation is None:
        if data.is_regression:
            config.id2label, config.label2id = {0: "score"}, {"score": 0}
        else:
            config.id2label = dict(enumerate(data.label_names))
            config.label2id = {name: i for i, name in enumerate(data.label_names)}
    config.problem_type = "regression" if data.is_regression else "single_label_classification"
    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # the per-run load report would repeat for every run
    try:
        model, loading = AutoModelForSequenceClassification.from_pretrained(
            info.path,
            config=config,
            dtype=DTYPES[cfg.dtype],
            trust_remote_code=cfg.trust_remote_code,
            ignore_mismatched_sizes=cfg.ignore_mismatched_sizes,
            output_loading_info=True,
            cache_dir=cfg.cache_dir,
        )
    except RuntimeError as err:
        if "ignore_mismatched_sizes" in str(err):
            raise UsageError(
                f"{info.path}: some weights do not fit the {data.name} head ({data.num_labels} outputs); pass "
                "--ignore_mismatched_sizes to initialise them afresh."
            ) from None
        raise
    except (OSError, ValueError) as err:
        raise _load_error(info.path, err, "weights") from None
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
    return model, loading


def describe_loading(loading: dict) -> str:
    """One line for the log: which tensors were new (the head) and which were left out (e.g. the MLM head)."""

    def prefixes(keys):
        return sorted({".".join(k.split(".")[:2]) if not isinstance(k, tuple) else k[0] for k in keys})

    parts = []
    if loading.get("missing_keys"):
        parts.append("initialised afresh: " + ", ".join(prefixes(loading["missing_keys"])))
    if loading.get("mismatched_keys"):
        parts.append("replaced (size mismatch): " + ", ".join(prefixes(loading["mismatched_keys"])))
    if loading.get("unexpected_keys"):
        parts.append("unused from the checkpoint: " + ", ".join(prefixes(loading["unexpected_keys"])))
    return "; ".join(parts) or "every tensor loaded from the checkpoint"


# ----------------------------------------------------------------------------------------------------------
# Tokenization
# ----------------------------------------------------------------------------------------------------------
def tokenize(data: TaskData, info: ModelInfo, accelerator=None) -> tuple[dict[str, Any], list[str]]:
    """Tokenize every split, truncating to the model's maximum length and counting what was cut."""
    tokenizer = info.tokenizer
    max_length = info.max_seq_length
    text_columns = data.text_columns
    permutation = info.label_permutation

    def encode(batch):
        texts = [batch[c] for c in text_columns]
        # Untruncated first, to count overlong inputs; only those are encoded again with truncation.
        encoded = tokenizer(*texts, truncation=False, verbose=False)
        long_rows = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_length]
        if long_rows:
            cut = tokenizer(*[[t[i] for i in long_rows] for t in texts], truncation=True, max_length=max_length)
            for key in encoded:
                for j, i in enumerate(long_rows):
                    encoded[key][i] = cut[key][j]
        encoded = dict(encoded)
        long_set = set(long_rows)
        encoded["truncated"] = [i in long_set for i in range(len(encoded["input_ids"]))]
        if "label" in batch:
            labels = batch["label"]
            encoded["labels"] = [permutation[label] for label in labels] if permutation else labels
        return encoded

    tokenized, notes = {}, []
    context = accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()
    with context:
        for split, dataset in data.splits.items():
            out = dataset.map(
                encode,
                batched=True,
                remove_columns=dataset.column_names,
                desc=f"Tokenizing {split}",
                load_from_cache_file=False,
            )
            truncated = int(sum(out["truncated"]))
            if truncated:
                notes.append(
                    f"{split}: {truncated} of {len(out)} inputs were longer than {max_length} tokens and were "
                    "truncated (raise --max_seq_length to keep them)"
                )
            tokenized[split] = out.remove_columns("truncated")
    return tokenized, notes


# ----------------------------------------------------------------------------------------------------------
# Evaluation and prediction
# ----------------------------------------------------------------------------------------------------------
def _model_inputs(batch) -> dict:
    return {k: v for k, v in batch.items() if k != "labels"}


@torch.no_grad()
def gather_logits(accelerator, model, loader) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (and labels) of a whole split, from every process, in dataset order, without padding duplicates."""
    was_training = model.training
    model.eval()
    logits_parts, label_parts = [], []
    for batch in loader:
        logits = model(**_model_inputs(batch)).logits.float()
        if "labels" in batch:
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            label_parts.append(labels.cpu())
        else:
            logits = accelerator.gather_for_metrics(logits)
        logits_parts.append(logits.cpu())
    model.train(was_training)
    logits = torch.cat(logits_parts).numpy() if logits_parts else np.zeros((0, 1), dtype=np.float32)
    labels = torch.cat(label_parts).numpy() if label_parts else None
    return logits, labels


def logits_to_predictions(logits: np.ndarray, data: TaskData, permutation: list[int] | None):
    """Task-order predictions and class probabilities from model-order logits."""
    if data.is_regression:
        return logits[:, 0], None
    if permutation:
        logits = logits[:, permutation]  # column j becomes the task's label j
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return logits.argmax(axis=1), probabilities


def evaluate_splits(
    accelerator, model, loaders: dict, data: TaskData, info: ModelInfo, cfg: FinetuneConfig, per_example: dict | None = None
) -> dict:
    """Metrics of every split in `loaders`. With `per_example` (a dict), also fills it with each split's
    labels, predictions and class probabilities in dataset order (what paired statistics need)."""
    results = {}
    for split, loader in loaders.items():
        logits, labels = gather_logits(accelerator, model, loader)
        if info.label_permutation:
            inverse = np.argsort(info.label_permutation)  # model id -> task id
            labels = inverse[labels]
        predictions, probabilities = logits_to_predictions(logits, data, info.label_permutation)
        if per_example is not None:
            per_example[split] = {"labels": labels, "predictions": predictions, "probabilities": probabilities}
        results[split] = compute_metrics(
            data.metric_config, data.score, predictions, labels, probabilities, n_bins=cfg.ece_bins
        )
        if data.is_regression:
            results[split]["loss"] = float(np.mean((predictions - labels) ** 2))
        else:
            picked = probabilities[np.arange(len(labels)), labels]
            results[split]["loss"] = float(-np.mean(np.log(np.clip(picked, 1e-12, None))))
    return results


EVAL_PREDICTIONS_FILE = "eval_predictions.jsonl"


def write_eval_predictions(path: Path, data: TaskData, per_example: dict) -> Path:
    """Per-example results of the final evaluation, one JSON object per line and example, in dataset order:
    `split`, `index` (row number in the split), `id` (the dataset's idx), `label`, `prediction` and, for
    classification, `probabilities` (task label order) and `correct`."""
    import json

    lines = []
    for split, values in per_example.items():
        ids = data.splits[split]["idx"] if "idx" in data.splits[split].column_names else None
        probabilities = values["probabilities"]
        for i, (label, prediction) in enumerate(zip(values["labels"].tolist(), values["predictions"].tolist())):
            row = {"split": split, "index": i, "id": None if ids is None else ids[i], "label": label, "prediction": prediction}
            if probabilities is not None:
                row["probabilities"] = [round(float(p), 7) for p in probabilities[i]]
                row["correct"] = bool(label == prediction)
            lines.append(json.dumps(row))
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def format_prediction(value, data: TaskData) -> str:
    if data.is_regression:
        low, high = data.regression_range or (-math.inf, math.inf)
        return f"{float(np.clip(value, low, high)):.3f}"
    return str(data.label_values[int(value)])


def write_predictions(folder: Path, data: TaskData, split: str, predictions, ids) -> Path:
    """A GLUE submission file (`index<TAB>prediction`, labels as the task's TSV files write them)."""
    lines = ["index\tprediction", *(f"{i}\t{format_prediction(p, data)}" for i, p in zip(ids, predictions))]
    path = Path(folder) / data.submission_files[split]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    final: dict  # {"step", "score", "splits": {split: metrics}}
    best: dict
    loss_curve: list  # [[optimizer step, mean training loss since the previous point, learning rate], ...]
    eval_curve: list  # [[optimizer step, score], ...]
    baseline_score: float
    baseline: str
    diverged: bool
    diverged_reason: str | None
    divergence: dict  # each definition's verdict (see `classify_divergence`)
    stopped_early: bool
    mixed_precision: str
    train_steps: int
    num_train_examples: int
    wall_seconds: float
    loading: str
    predictions: list = field(default_factory=list)  # submission files written
    # the final evaluation per example: {split: {"labels", "predictions", "probabilities"}} (numpy arrays)
    eval_per_example: dict = field(default_factory=dict)
    model: Any = None  # the unwrapped model after training (for saving / predicting), dropped by the caller


def _collator(tokenizer, accelerator):
    from transformers import DataCollatorWithPadding

    # Multiples of 8 let tensor cores engage under mixed precision; pointless in float32.
    multiple = 8 if accelerator.mixed_precision in ("fp16", "bf16") else None
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)


def make_loader(
    dataset, tokenizer, accelerator, batch_size: int, shuffle: bool = False, seed: int | None = None, num_workers: int = 0
):
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=_collator(tokenizer, accelerator),
        num_workers=num_workers,
    )


def run_finetuning(
    accelerator,
    *,
    info: ModelInfo,
    data: TaskData,
    tokenized: dict,
    cfg: FinetuneConfig,
    learning_rate: float,
    seed: int,
    description: str = "",
    log_prefix: str = "",
    tracking: bool = False,
    predict_into: Path | None = None,
) -> RunOutcome:
    """Fine-tune `info.path` on `data` once, evaluating every `eval_steps`, at each epoch end and at the end."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    started = time.perf_counter()
    set_seed(seed)
    if accelerator.scaler is not None:
        # A GradScaler's loss scale adapts during a run; the next run must start from the same scale.
        accelerator.scaler.load_state_dict(_initial_scaler_state(accelerator))
    model, loading = load_model(info, data, cfg)
    loading_text = describe_loading(loading)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model, info.path)
    raw_optimizer = build_optimizer(model, learning_rate, weight_decay=cfg.weight_decay)

    train_dataset = tokenized.get("train")
    model, optimizer = accelerator.prepare(model, raw_optimizer)
    workers = cfg.dataloader_num_workers
    train_loader = None
    if train_dataset is not None:
        train_loader = accelerator.prepare(
            make_loader(
                train_dataset, info.tokenizer, accelerator, cfg.per_device_train_batch_size, shuffle=True, seed=seed, num_workers=workers
            )
        )
    eval_loaders = {
        s: accelerator.prepare(make_loader(tokenized[s], info.tokenizer, accelerator, cfg.per_device_eval_batch_size, num_workers=workers))
        for s in data.validation_splits
    }

    # After prepare: each process sees 1/num_processes of the batches.
    steps_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps) if train_loader is not None else 0
    if train_loader is None:
        max_steps = 0
    elif cfg.max_train_steps is not None:
        max_steps = cfg.max_train_steps
    else:
        max_steps = math.ceil(cfg.num_train_epochs * steps_per_epoch)
    num_epochs = math.ceil(max_steps / steps_per_epoch) if steps_per_epoch else 0
    warmup = warmup_steps(max_steps, cfg.warmup_ratio, cfg.num_warmup_steps)
    # Built on the raw optimizer and stepped once per optimizer step (see recurrent_mlm.optim).
    scheduler = build_scheduler(raw_optimizer, cfg.lr_scheduler_type, warmup=warmup, total_steps=max_steps)
    unwrapped = accelerator.unwrap_model(model)
    project = getattr(unwrapped, "project_recurrent_weights", None)

    primary = data.validation_splits[0]
    baseline_score, baseline_text = task_baseline(data)

    loss_curve, eval_curve = [], []
    best = {"score": -math.inf, "step": None, "splits": None}
    best_state = None
    final = None
    nonfinite_step = None
    completed = 0
    window_loss = torch.zeros((), device=accelerator.device)
    window_batches = 0

    per_example: dict = {}
    evals_since_best = 0
    stopped_early = False

    def evaluate_now():
        nonlocal best, best_state, evals_since_best, stopped_early
        per_example.clear()
        splits = evaluate_splits(accelerator, model, eval_loaders, data, info, cfg, per_example=per_example)
        score = splits[primary]["score"]
        record = {"step": completed, "score": score, "splits": splits}
        eval_curve.append([completed, score])
        if tracking:
            accelerator.log(_flatten(f"{log_prefix}eval", splits), step=completed)
        if not math.isnan(score) and score > best["score"]:
            best = record
            evals_since_best = 0
            if cfg.load_best_model_at_end:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in accelerator.unwrap_model(model).state_dict().items()}
        else:
            evals_since_best += 1
            if cfg.early_stopping_patience is not None and evals_since_best >= cfg.early_stopping_patience:
                stopped_early = True
        return record

    progress = tqdm(
        total=max_steps,
        desc=description or "fine-tuning",
        disable=cfg.disable_tqdm or not accelerator.is_local_main_process,
        leave=False,
    )
    model.train()
    last_eval_step = -1
    for epoch in range(num_epochs):
        for batch in train_loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            window_loss += loss.detach().float()
            window_batches += 1
            if not accelerator.sync_gradients:
                continue
            if not optimizer.step_was_skipped:  # fp16 overflow: no optimizer step, no schedule step
                scheduler.step()
            completed += 1
            if project is not None:
                project()
            progress.update(1)
            if completed % cfg.logging_steps == 0 or completed == max_steps:
                mean_loss = accelerator.reduce(window_loss / max(1, window_batches), reduction="mean").item()
                lr = scheduler.get_last_lr()[0]
                loss_curve.append([completed, mean_loss, lr])
                progress.set_postfix(loss=f"{mean_loss:.4g}")
                if tracking:
                    accelerator.log({f"{log_prefix}train_loss": mean_loss, f"{log_prefix}learning_rate": lr}, step=completed)
                window_loss.zero_()
                window_batches = 0
                if not math.isfinite(mean_loss):
                    nonfinite_step = completed
                    break
            if cfg.eval_steps and completed % cfg.eval_steps == 0 and completed < max_steps:
                final = evaluate_now()
                last_eval_step = completed
            if completed >= max_steps or stopped_early:
                break
        if nonfinite_step is not None or completed >= max_steps or stopped_early:
            break
        if last_eval_step != completed:
            final = evaluate_now()
            last_eval_step = completed
            if stopped_early:
                break
    progress.close()
    if last_eval_step != completed or final is None:
        final = evaluate_now()

    if best["step"] is None:  # every evaluation was NaN
        best = final
    primary_predictions = per_example.get(primary, {}).get("predictions")
    divergence = classify_divergence(
        trained=completed > 0,
        nonfinite_step=nonfinite_step,
        score=final["score"],
        baseline=baseline_score,
        baseline_text=baseline_text,
        predictions=None if data.is_regression else primary_predictions,
        losses=[point[1] for point in loss_curve],
    )

    unwrapped = accelerator.unwrap_model(model)
    if cfg.load_best_model_at_end and best_state is not None:
        unwrapped.load_state_dict(best_state)
    written = []
    if predict_into is not None:
        for split in data.test_splits:
            loader = accelerator.prepare(make_loader(tokenized[split], info.tokenizer, accelerator, cfg.per_device_eval_batch_size))
            logits, _ = gather_logits(accelerator, model, loader)
            predictions, _ = logits_to_predictions(logits, data, info.label_permutation)
            if accelerator.is_main_process:
                written.append(str(write_predictions(predict_into, data, split, predictions, data.splits[split]["idx"])))
    outcome = RunOutcome(
        final=final,
        best=best,
        loss_curve=loss_curve,
        eval_curve=eval_curve,
        baseline_score=baseline_score,
        baseline=baseline_text,
        diverged=divergence["diverged"],
        diverged_reason=divergence["reason"],
        divergence=divergence,
        stopped_early=stopped_early,
        mixed_precision=str(accelerator.mixed_precision),
        train_steps=completed,
        num_train_examples=len(train_dataset) if train_dataset is not None else 0,
        wall_seconds=time.perf_counter() - started,
        loading=loading_text,
        predictions=written,
        eval_per_example=dict(per_example),
        model=unwrapped,
    )
    # The accelerator keeps references to everything it prepared; drop them so the next run starts clean.
    accelerator.free_memory()
    del model, optimizer, scheduler, train_loader, eval_loaders, best_state
    gc.collect()
    return outcome


EXPLODED_LOSS_FACTOR = 10.0


def classify_divergence(
    *,
    trained: bool,
    nonfinite_step: int | None,
    score: float,
    baseline: float,
    baseline_text: str,
    predictions=None,
    losses: list[float] | None = None,
) -> dict[str, Any]:
    """Whether a run diverged, by each definition the stability literature uses (Mosbach et al. 2021; Dodge et
    al. 2020), and one line saying why:

    - `nonfinite`: the training loss became NaN or infinite;
    - `exploded`: the last logged training loss is more than 10x the first (the optimisation blew up even if
      the predictions still beat the trivial predictor by a few examples);
    - `collapsed`: one class predicted for every evaluation example (classification);
    - `trivial`: a final score no better than the trivial predictor's (majority class / constant prediction).

    `diverged` is any of them. A run that trained no step (evaluation only) is not judged: all False."""
    verdict = {"nonfinite": False, "exploded": False, "collapsed": False, "trivial": False}
    reasons = []
    if trained:
        if nonfinite_step is not None:
            verdict["nonfinite"] = True
            reasons.append(f"non-finite training loss at step {nonfinite_step}")
        finite = [v for v in (losses or []) if v is not None and math.isfinite(v)]
        if len(finite) >= 2 and finite[-1] > EXPLODED_LOSS_FACTOR * max(finite[0], 1e-12):
            verdict["exploded"] = True
            reasons.append(f"training loss exploded ({finite[0]:.4g} -> {finite[-1]:.4g})")
        if predictions is not None and len(predictions) > 1 and len(np.unique(predictions)) == 1:
            verdict["collapsed"] = True
            reasons.append("one class predicted for every example")
        if score is None or math.isnan(score):
            verdict["trivial"] = True
            reasons.append("final score undefined (non-finite or constant predictions)")
        elif score <= baseline + 1e-9:
            verdict["trivial"] = True
            reasons.append(f"final score {score:.4f} not better than the trivial predictor's {baseline:.4f} ({baseline_text})")
    diverged = any(verdict.values())
    return {**verdict, "diverged": diverged, "reason": "; ".join(reasons) if reasons else None}


def enable_gradient_checkpointing(model, path: str) -> None:
    """Turn on activation checkpointing, or refuse with one line when the model cannot."""
    try:
        enable = getattr(model, "activation_checkpointing_enable", None)  # the name since transformers 5.x
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    except (ValueError, NotImplementedError) as err:
        raise UsageError(f"--gradient_checkpointing: {path} cannot use it ({_first_line(err)}); drop the flag.") from None


_SCALER_STATES: dict[int, dict] = {}


def _initial_scaler_state(accelerator) -> dict:
    key = id(accelerator.scaler)
    if key not in _SCALER_STATES:
        _SCALER_STATES[key] = copy.deepcopy(accelerator.scaler.state_dict())
    return _SCALER_STATES[key]


def _flatten(prefix: str, splits: dict) -> dict:
    return {
        f"{prefix}/{split}/{name}": value
        for split, metrics in splits.items()
        for name, value in metrics.items()
        if isinstance(value, (int, float))
    }


__all__ = [
    "DTYPES",
    "FinetuneConfig",
    "ModelInfo",
    "RunOutcome",
    "inspect_model",
    "load_model",
    "describe_loading",
    "tokenize",
    "evaluate_splits",
    "write_predictions",
    "write_eval_predictions",
    "EVAL_PREDICTIONS_FILE",
    "format_prediction",
    "run_finetuning",
]
