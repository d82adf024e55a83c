#!/usr/bin/env python
"""Fine-tune any sequence-classification model on GLUE or your own data, and study how stable fine-tuning is
across learning rates and seeds.

One run (the model, tokenizer, metrics, model card and, with --do_predict, the GLUE submission files land in
--output_dir):

    accelerate launch run_glue.py --model_name_or_path outputs/pretrain --task_name mrpc \
        --glue_dir ../shared/data/glue --do_predict --output_dir outputs/mrpc

The stability study (Lei et al. 2022, Abnar et al. 2020): every model x learning rate x seed, one after the
other in this process, each from the same weights on disk; resumable; writes runs.json/.csv and the
stability table, summary and plot:

    python run_glue.py --model_name_or_path bert-folder recurrent-folder --task_name rte --glue_dir glue \
        --learning_rates 1e-5 2e-5 5e-5 1e-4 --seeds 1 2 3 4 5 --output_dir outputs/rte-stability

The data come from a folder in the official GLUE layout (--glue_dir), from the `nyu-mll/glue` dataset on the
Hub (--task_name alone), or from your CSV/JSON files (--train_file/--validation_file). Models: folders or
Hub ids of our models (any head, e.g. a pretrained MLM), plain BERT checkpoints, or any model with
--trust_remote_code. Weights are fine-tuned in float32 unless --dtype says otherwise; --mixed_precision
(or `accelerate config`) sets autocast. See docs/glue.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if (ROOT / "src" / "recurrent_mlm").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a clone without installing the package

from recurrent_mlm.glue.data import HUB_DATASET, TaskData, load_custom_files, load_glue_dir, load_glue_hub  # noqa: E402
from recurrent_mlm.glue.finetune import (  # noqa: E402
    DTYPES,
    EVAL_PREDICTIONS_FILE,
    FinetuneConfig,
    ModelInfo,
    RunOutcome,
    inspect_model,
    run_finetuning,
    tokenize,
    write_eval_predictions,
)
from recurrent_mlm.glue.metrics import task_baseline  # noqa: E402
from recurrent_mlm.glue.report import write_report  # noqa: E402
from recurrent_mlm.glue.sweep import RunKey, Sweep, lr_tag, model_labels  # noqa: E402
from recurrent_mlm.glue.tasks import SCORE_DEFINITIONS, TASKS, get_task  # noqa: E402
from recurrent_mlm.training_utils import (  # noqa: E402
    UsageError,
    atomic_write_json,
    check_output_dir,
    relaunch_cpu_processes,
    run_cli,
)

logger = logging.getLogger("run_glue")

SCHEDULERS = ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"]


class _Parser(argparse.ArgumentParser):
    """argparse's own errors as our one-line usage errors (exit code 2, no usage dump)."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog="See docs/glue.md.")
    data = p.add_argument_group("data")
    data.add_argument("--task_name", help=f"GLUE task: {', '.join(TASKS)} (SST-2, STS-B ... spellings work too).")
    data.add_argument("--glue_dir", help="Folder in the official GLUE TSV layout (holding e.g. SST-2/train.tsv), or the task's own folder.")
    data.add_argument("--dataset_name", default=HUB_DATASET, help="Hub dataset to load --task_name from when no --glue_dir is given.")
    data.add_argument("--cache_dir", help="Where datasets, models and tokenizers downloaded from the Hub are cached (default: the Hugging Face caches).")
    data.add_argument("--train_file", help="Your own training data (.csv, .tsv, .json or .jsonl) instead of a GLUE task.")
    data.add_argument("--validation_file", help="Your own validation data (same formats); required with --train_file.")
    data.add_argument("--test_file", help="Your own unlabelled test data, predicted with --do_predict.")
    data.add_argument("--text_columns", nargs="+", metavar="COLUMN", help="One or two text column names of your files (default: sentence1 sentence2, sentence, or text).")
    data.add_argument("--label_column", default="label", help="Label column name of your files.")
    data.add_argument("--label_type", choices=["auto", "classification", "regression"], default="auto", help="Treat your labels as classes or as numbers (auto: numbers if any is fractional).")
    data.add_argument("--max_seq_length", type=int, default=128, help="Tokens per example after tokenization; longer inputs are truncated and counted.")
    data.add_argument("--drop_empty_texts", action="store_true", help="Skip labelled rows with an empty text instead of stopping.")
    data.add_argument("--max_train_samples", type=int, help="Keep only the first N training examples (quick runs).")
    data.add_argument("--max_eval_samples", type=int, help="Keep only the first N examples of each validation split.")
    data.add_argument("--max_predict_samples", type=int, help="Keep only the first N examples of each test split.")

    model = p.add_argument_group("model")
    model.add_argument("--model_name_or_path", nargs="+", required=True, metavar="MODEL", help="Model folder(s) or Hub id(s); several make a sweep over models.")
    model.add_argument("--model_labels", nargs="+", metavar="NAME", help="Short names for the models in the report (default: the folder names).")
    model.add_argument("--tokenizer_name", help="Tokenizer folder or Hub id, if the model folder has none.")
    model.add_argument("--trust_remote_code", action="store_true", help="Allow model code from the checkpoint (Hub models with custom code).")
    model.add_argument("--ignore_mismatched_sizes", action="store_true", help="Replace a classification head whose size does not fit the task with a fresh one.")
    model.add_argument("--dtype", choices=list(DTYPES), default="float32", help="Weight dtype to fine-tune in (float32 unless you have a reason; 'auto' keeps the checkpoint's).")

    train = p.add_argument_group("training")
    train.add_argument("--learning_rate", "--learning_rates", dest="learning_rates", type=float, nargs="+", default=[2e-5], metavar="LR", help="Peak learning rate(s); several make a sweep.")
    train.add_argument("--seed", "--seeds", dest="seeds", type=int, nargs="+", default=[42], metavar="SEED", help="Seed(s) for the head's initialisation, data order and dropout; several make a sweep.")
    train.add_argument("--per_device_train_batch_size", type=int, default=32, help="Training batch size per process.")
    train.add_argument("--per_device_eval_batch_size", type=int, default=64, help="Evaluation batch size per process.")
    train.add_argument("--num_train_epochs", type=int, default=3, help="Passes over the training data.")
    train.add_argument("--max_train_steps", type=int, help="Optimizer steps in all; overrides --num_train_epochs (0: evaluate only).")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1, help="Batches per optimizer step.")
    train.add_argument("--weight_decay", type=float, default=0.01, help="Decoupled AdamW weight decay (not on biases and norms).")
    train.add_argument("--warmup_ratio", type=float, default=0.1, help="Fraction of the steps spent warming the learning rate up from 0.")
    train.add_argument("--num_warmup_steps", type=int, help="Warmup steps; overrides --warmup_ratio.")
    train.add_argument("--lr_scheduler_type", choices=SCHEDULERS, default="linear", help="Learning-rate schedule after warmup.")
    train.add_argument("--max_grad_norm", type=float, default=1.0, help="Gradient clipping norm (0 turns clipping off).")
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="Autocast precision (default: from `accelerate config`, else no).")
    train.add_argument("--eval_steps", type=int, help="Also evaluate every N optimizer steps (always after each epoch and at the end).")
    train.add_argument("--logging_steps", type=int, default=10, help="Record the training loss every N optimizer steps (the loss curve).")
    train.add_argument("--load_best_model_at_end", action="store_true", help="Save and predict with the best evaluated weights instead of the last.")
    train.add_argument("--ece_bins", type=int, default=15, help="Equal-width confidence bins of the expected calibration error.")

    out = p.add_argument_group("output")
    out.add_argument("--output_dir", required=True, help="Where the model, metrics and predictions (one run) or the sweep (several) go.")
    out.add_argument("--overwrite_output_dir", action="store_true", help="Replace what --output_dir holds (a sweep otherwise resumes there).")
    out.add_argument("--do_predict", action="store_true", help="Predict the test split(s) and write GLUE submission files (predictions/).")
    out.add_argument("--sweep", action="store_true", help="Use the sweep layout and report even for a single model, learning rate and seed.")
    out.add_argument("--save_models", choices=["none", "best", "all"], default="none", help="Sweeps: keep no model, each model's best run (best/<model>/), or every run's model.")
    out.add_argument("--max_runs", type=int, help="Sweeps: stop after N unfinished runs (e.g. one chunk per batch job); rerun to continue.")
    out.add_argument("--report_to", default="none", help="Trackers for Accelerate (tensorboard, wandb, all, or none).")
    from recurrent_mlm.hub import add_hub_arguments

    hub = p.add_argument_group("Hub (--push_to_hub uploads one run's model, or a sweep's best run with --save_models best)")
    add_hub_arguments(hub, with_token_flag=True)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)

    custom = bool(args.train_file or args.validation_file or args.test_file)
    if custom and args.task_name:
        raise UsageError("give either --task_name (a GLUE task) or --train_file/--validation_file (your data), not both.")
    if custom and not args.validation_file:
        raise UsageError("--validation_file is required with your own data (the runs are evaluated on it).")
    if not custom and not args.task_name:
        raise UsageError("nothing to train on: give --task_name (with --glue_dir for local files) or --train_file and --validation_file.")
    if args.glue_dir and not args.task_name:
        raise UsageError("--glue_dir needs --task_name to know which task folder to read.")
    if args.task_name:
        try:
            args.task_name = get_task(args.task_name).name
        except KeyError:
            raise UsageError(f"unknown task {args.task_name!r}; choose one of {', '.join(TASKS)} (or use --train_file for your own data).") from None
    if args.do_predict and custom and not args.test_file:
        raise UsageError("--do_predict with your own data needs --test_file.")
    if (args.text_columns or args.label_column != "label" or args.label_type != "auto") and not custom:
        raise UsageError("--text_columns, --label_column and --label_type describe your own files; GLUE tasks have fixed columns.")

    for name in ("learning_rates", "seeds", "model_name_or_path"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            raise UsageError(f"--{name} lists a value twice: {' '.join(str(v) for v in values)}.")
    if any(not (lr > 0 and math.isfinite(lr)) for lr in args.learning_rates):
        raise UsageError("learning rates must be positive numbers.")
    positive = ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "logging_steps", "ece_bins", "max_seq_length"]
    positive += [n for n in ("eval_steps", "max_runs", "max_train_samples", "max_eval_samples", "max_predict_samples") if getattr(args, n) is not None]
    for name in positive:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    if args.num_train_epochs < 0 or (args.max_train_steps is not None and args.max_train_steps < 0):
        raise UsageError("--num_train_epochs and --max_train_steps cannot be negative.")
    if not 0 <= args.warmup_ratio < 1:
        raise UsageError(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}.")
    if args.num_warmup_steps is not None and args.num_warmup_steps < 0:
        raise UsageError("--num_warmup_steps cannot be negative.")
    if args.max_seq_length < 8:
        raise UsageError(f"--max_seq_length {args.max_seq_length} leaves no room for text; use at least 8.")

    args.sweep = args.sweep or len(args.model_name_or_path) * len(args.learning_rates) * len(args.seeds) > 1
    if not args.sweep:
        for flag, default in (("save_models", "none"), ("max_runs", None)):
            if getattr(args, flag) != default:
                raise UsageError(f"--{flag} applies to sweeps (several models, learning rates or seeds, or --sweep).")
    if args.push_to_hub and args.sweep and (args.save_models != "best" or len(args.model_name_or_path) != 1):
        raise UsageError("--push_to_hub in a sweep uploads the best run of one model: give one --model_name_or_path and --save_models best.")
    args.model_labels = model_labels(args.model_name_or_path, args.model_labels)
    if args.push_to_hub:  # a typo in the repo id or a bad token fails now, not after training
        from recurrent_mlm.hub import HubPushError, check_push_access

        try:
            args.hub_model_id = check_push_access(args.hub_model_id or Path(args.output_dir).resolve().name,
                                                  token=args.hub_token)
        except HubPushError as err:
            raise UsageError(str(err)) from None
    return args


def finetune_config(args) -> FinetuneConfig:
    return FinetuneConfig(
        per_device_train_batch_size=args.per_device_train_batch_size,
        per_device_eval_batch_size=args.per_device_eval_batch_size,
        num_train_epochs=args.num_train_epochs,
        max_train_steps=args.max_train_steps,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        num_warmup_steps=args.num_warmup_steps,
        lr_scheduler_type=args.lr_scheduler_type,
        max_grad_norm=args.max_grad_norm,
        max_seq_length=args.max_seq_length,
        eval_steps=args.eval_steps,
        logging_steps=args.logging_steps,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        ignore_mismatched_sizes=args.ignore_mismatched_sizes,
        tokenizer_name=args.tokenizer_name,
        ece_bins=args.ece_bins,
        load_best_model_at_end=args.load_best_model_at_end,
        cache_dir=args.cache_dir,
    )


def load_task_data(args) -> TaskData:
    need_train = args.max_train_steps != 0
    if args.train_file or args.validation_file:
        if need_train and not args.train_file:
            raise UsageError("--train_file is required unless --max_train_steps 0 (evaluation only).")
        data = load_custom_files(
            train_file=args.train_file,
            validation_file=args.validation_file,
            test_file=args.test_file if args.do_predict else None,
            text_columns=args.text_columns,
            label_column=args.label_column,
            label_type=args.label_type,
            drop_empty_texts=args.drop_empty_texts,
        )
    elif args.glue_dir:
        data = load_glue_dir(
            get_task(args.task_name), args.glue_dir, need_train=need_train, need_test=args.do_predict, drop_empty_texts=args.drop_empty_texts
        )
    else:
        data = load_glue_hub(
            get_task(args.task_name),
            dataset_name=args.dataset_name,
            need_train=need_train,
            need_test=args.do_predict,
            drop_empty_texts=args.drop_empty_texts,
            cache_dir=args.cache_dir,
        )
    data.limit("train", args.max_train_samples)
    data.limit("validation", args.max_eval_samples)
    data.limit("test", args.max_predict_samples)
    return data


# ----------------------------------------------------------------------------------------------------------
# Results, cards, saving
# ----------------------------------------------------------------------------------------------------------
def _json_safe(value):
    """NaN and infinities as null, so the files are valid JSON for every reader."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def run_result(key: RunKey, info: ModelInfo, data: TaskData, outcome: RunOutcome, notes: list[str]) -> dict:
    primary = data.validation_splits[0]
    return _json_safe(
        {
            "run_id": key.run_id,
            "model": key.model_path,
            "model_label": key.model_label,
            "model_type": info.model_type,
            "learning_rate": key.learning_rate,
            "seed": key.seed,
            "task": data.name,
            "data_source": data.source,
            "score_name": data.score,
            "primary_split": primary,
            "final": outcome.final,
            "best": outcome.best,
            "ece": outcome.final["splits"][primary].get("ece"),
            "baseline_score": outcome.baseline_score,
            "baseline": outcome.baseline,
            "diverged": outcome.diverged,
            "diverged_reason": outcome.diverged_reason,
            "loss_curve": outcome.loss_curve,
            "eval_curve": outcome.eval_curve,
            "train_steps": outcome.train_steps,
            "num_train_examples": outcome.num_train_examples,
            "wall_seconds": outcome.wall_seconds,
            "loading": outcome.loading,
            "predictions": outcome.predictions,
            "notes": notes,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )


def card_metrics(result: dict) -> dict[str, float]:
    splits = result["final"]["splits"]
    out = {}
    for split, metrics in splits.items():
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and name not in ("loss", "score"):
                out[name if len(splits) == 1 else f"{name} ({split})"] = value
    return out


def write_card(folder: Path, model_config, result: dict, data: TaskData, args, extra: dict[str, str] | None = None) -> None:
    from recurrent_mlm.model_card import write_model_card

    path = result["model"]
    is_hub_id = not Path(path).exists() and path.count("/") <= 1
    training = {
        "task": f"{data.name} ({data.source})",
        "learning rate": lr_tag(result["learning_rate"]),
        "seed": result["seed"],
        "length": f"{args.num_train_epochs} epochs" if args.max_train_steps is None else f"{args.max_train_steps} steps",
        "batch size per device": args.per_device_train_batch_size,
        "warmup": args.num_warmup_steps if args.num_warmup_steps is not None else f"{args.warmup_ratio:g} of the steps",
        "weight decay": args.weight_decay,
        "max sequence length": args.max_seq_length,
        "optimizer steps": result["train_steps"],
        "trivial-predictor score": _num(result["baseline_score"]),
    }
    sections = {
        "Fine-tuning": (
            f"Fine-tuned from `{path}` with `run_glue.py` (recurrent-mlm) on {data.source}. Metrics are on the "
            f"validation data after the last step; the best evaluated {SCORE_DEFINITIONS[data.score]} was "
            f"{_num(result['best']['score'])} at step {result['best']['step']}."
        )
    }
    sections.update(extra or {})
    write_model_card(
        folder,
        config=model_config,
        pipeline_tag="text-classification",
        metrics=card_metrics(result),
        dataset=HUB_DATASET if data.task is not None else None,
        task_name=data.name,
        base_model=path if is_hub_id else None,
        training=training,
        extra_sections=sections,
    )


def save_model(accelerator, outcome: RunOutcome, info: ModelInfo, folder: Path) -> None:
    accelerator.wait_for_everyone()
    outcome.model.save_pretrained(folder, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        info.tokenizer.save_pretrained(folder)


def push(folder: Path, args, accelerator) -> None:
    if not accelerator.is_main_process:
        return
    from recurrent_mlm.hub import HubPushError, push_output_dir

    try:
        url = push_output_dir(folder, args.hub_model_id, token=args.hub_token, revision=args.hub_revision,
                              private=True if args.hub_private else None)
    except HubPushError as err:  # network, auth, permissions: the model is safe on disk either way
        raise UsageError(f"{err} The model is saved in {folder}: push it later with "
                         f"`python -m recurrent_mlm.hub push {folder} --hub_model_id {args.hub_model_id}`.") from None
    logger.info(f"uploaded {folder} to {url}")


# ----------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------
def _describe(key: RunKey, index: int, total: int) -> str:
    return f"[{index}/{total}] {key.model_label} lr={lr_tag(key.learning_rate)} seed={key.seed}"


def _run_line(result: dict, data: TaskData) -> str:
    score_name = SCORE_DEFINITIONS[data.score]
    final, best = result["final"], result["best"]
    text = f"final {score_name} {_num(final['score'])} (best {_num(best['score'])} at step {best['step']})"
    if result.get("ece") is not None:
        text += f", ECE {result['ece']:.4f}"
    text += f", {result['train_steps']} steps, {result['wall_seconds']:.1f} s"
    if result["diverged"]:
        text += f"  DIVERGED: {result['diverged_reason']}"
    return text


def _num(value) -> str:
    return "nan" if value is None else f"{value:.4f}"


@run_cli
def main(argv: list[str] | None = None) -> int:
    if (code := relaunch_cpu_processes(__file__, argv)) is not None:  # `accelerate launch --cpu` started 1 of N
        return code
    args = parse_args(argv)
    from recurrent_mlm.cpu import tune_cpu_allocator

    tune_cpu_allocator()  # large CPU temporaries are reused, not page-faulted in every step (RMLM_MALLOC_TUNING=0 to skip)

    import datasets
    import transformers
    from accelerate import Accelerator, DistributedDataParallelKwargs

    accelerator = Accelerator(
        # Some models leave parameters out of a classification loss (the sequential Transformer's
        # right-to-left stack under Abnar et al.'s last-token pooling); one Accelerator serves a whole sweep,
        # so DDP must expect that. It costs nothing in single-process runs.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_dir=args.output_dir,
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logger.setLevel(logging.INFO if accelerator.is_local_main_process else logging.ERROR)
    level = logging.WARNING if accelerator.is_local_main_process else logging.ERROR  # one process speaks
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    # In-memory maps, weight loading and saving take a moment each and repeat for every run of a sweep.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    # Everything that can be wrong with the input is found here, before anything is written.
    data = load_task_data(args)
    cfg = finetune_config(args)
    infos = [inspect_model(path, label, data, cfg) for path, label in zip(args.model_name_or_path, args.model_labels)]
    output_dir = Path(args.output_dir)
    models = dict(zip(args.model_labels, args.model_name_or_path))
    # What the runs of one sweep must share for their numbers to compare (the data by content, not by path).
    spec = {
        "task": data.name,
        "data_fingerprint": data.fingerprint(),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "do_predict": args.do_predict,
        **cfg.to_dict(),
    }
    if args.sweep:
        Sweep.check(output_dir, spec, models, args.overwrite_output_dir)
    else:
        check_output_dir(output_dir, args.overwrite_output_dir)
    accelerator.wait_for_everyone()

    for note in data.notes:
        logger.warning(note)
    logger.info(
        f"{data.source}: "
        + ", ".join(f"{split} {len(ds)}" for split, ds in data.splits.items())
        + f"; {accelerator.num_processes} process(es), mixed precision {accelerator.mixed_precision}"
    )
    if args.report_to != "none":
        accelerator.init_trackers("run_glue", config={k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in spec.items()})

    keys = [
        RunKey(info.label, info.path, lr, seed) for info in infos for lr in args.learning_rates for seed in args.seeds
    ]
    if not args.sweep:
        result = single_run(accelerator, args, keys[0], infos[0], data, cfg, output_dir)
    else:
        result = run_sweep(accelerator, args, keys, infos, data, cfg, output_dir, spec, models)
    accelerator.end_training()
    return result


def single_run(accelerator, args, key: RunKey, info: ModelInfo, data: TaskData, cfg: FinetuneConfig, output_dir: Path) -> int:
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    for note in info.notes:
        logger.warning(note)
    tokenized, notes = tokenize(data, info, accelerator)
    for note in notes:
        logger.warning(note)
    predictions_dir = output_dir / "predictions" if args.do_predict else None
    outcome = run_finetuning(
        accelerator,
        info=info,
        data=data,
        tokenized=tokenized,
        cfg=cfg,
        learning_rate=key.learning_rate,
        seed=key.seed,
        description=key.run_id,
        tracking=args.report_to != "none",
        predict_into=predictions_dir,
    )
    logger.info(f"{info.path}: {outcome.loading}")
    result = run_result(key, info, data, outcome, [*data.notes, *info.notes, *notes])
    save_model(accelerator, outcome, info, output_dir)
    if accelerator.is_main_process:
        eval_results = {
            f"eval_{split}_{name}": value
            for split, metrics in result["final"]["splits"].items()
            for name, value in metrics.items()
            if not isinstance(value, (list, dict))
        }
        atomic_write_json(output_dir / "eval_results.json", eval_results)
        atomic_write_json(output_dir / "all_results.json", result)
        write_eval_predictions(output_dir / EVAL_PREDICTIONS_FILE, data, outcome.eval_per_example)
        write_card(output_dir, outcome.model.config, result, data, args)
        accelerator.print(f"{key.run_id}: {_run_line(result, data)}")
        for split, metrics in result["final"]["splits"].items():
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            accelerator.print(f"  {split}: {shown}")
        if outcome.predictions:
            accelerator.print(f"  predictions: {', '.join(outcome.predictions)}")
        accelerator.print(f"  model, metrics and card: {output_dir}")
    if args.push_to_hub:
        push(output_dir, args, accelerator)
    return 0


def run_sweep(accelerator, args, keys, infos, data, cfg, output_dir: Path, spec: dict, models: dict) -> int:
    sweep = Sweep(output_dir, keys)
    meta = _report_meta(data, args)
    if accelerator.is_main_process:
        grid = {"learning_rates": args.learning_rates, "seeds": args.seeds}
        Sweep.start(output_dir, spec, models, grid, args.overwrite_output_dir, report_meta=meta)
    accelerator.wait_for_everyone()
    pending = sweep.pending()
    done_before = len(keys) - len(pending)
    if args.max_runs is not None:
        pending = pending[: args.max_runs]
    logger.info(
        f"sweep of {len(keys)} runs ({len(infos)} models x {len(args.learning_rates)} learning rates x "
        f"{len(args.seeds)} seeds): {done_before} already finished, {len(pending)} to run now"
    )
    by_label = {info.label: info for info in infos}
    index = done_before
    tokenized_label = logged_loading = None
    for key in pending:
        info = by_label[key.model_label]
        if key.model_label != tokenized_label:  # the grid runs model by model: tokenize once per model
            for note in info.notes:
                logger.warning(note)
            tokenized, notes = tokenize(data, info, accelerator)
            for note in notes:
                logger.warning(note)
            tokenized_label = key.model_label
        index += 1
        folder = sweep.begin_run(key) if accelerator.is_main_process else sweep.run_dir(key)
        accelerator.wait_for_everyone()
        outcome = run_finetuning(
            accelerator,
            info=info,
            data=data,
            tokenized=tokenized,
            cfg=cfg,
            learning_rate=key.learning_rate,
            seed=key.seed,
            description=_describe(key, index, len(keys)),
            log_prefix=key.run_id + "/",
            tracking=args.report_to != "none",
            predict_into=folder / "predictions" if args.do_predict else None,
        )
        if key.model_label != logged_loading:
            logger.info(f"{info.path}: {outcome.loading}")
            logged_loading = key.model_label
        result = run_result(key, info, data, outcome, [*data.notes, *info.notes, *notes])
        if args.save_models == "all":
            save_model(accelerator, outcome, info, folder / "model")
        elif args.save_models == "best":
            _keep_if_best(accelerator, sweep, key, outcome, info, result)
        if accelerator.is_main_process:
            write_eval_predictions(folder / EVAL_PREDICTIONS_FILE, data, outcome.eval_per_example)
            sweep.finish_run(key, result)
            accelerator.print(f"{_describe(key, index, len(keys))}: {_run_line(result, data)}")
            write_report(output_dir, meta, sweep.results(), with_plot=False)
        outcome.model = None
        accelerator.wait_for_everyone()

    if accelerator.is_main_process:
        results = sweep.results()
        report = write_report(output_dir, meta, results, with_plot=True)
        accelerator.print("")
        accelerator.print((output_dir / "stability.md").read_text(encoding="utf-8"))
        remaining = len(sweep.pending())
        if remaining:
            accelerator.print(f"{remaining} runs of this sweep are unfinished; run the same command again to continue.")
        accelerator.print(f"report: {output_dir / 'stability.md'}, {output_dir / 'stability.png'}, runs.json, runs.csv")
        if args.save_models != "none":
            _write_sweep_cards(output_dir, sweep, data, args, report)
    accelerator.wait_for_everyone()
    if args.push_to_hub:
        push(output_dir / "best" / args.model_labels[0], args, accelerator)
    return 0


def _report_meta(data: TaskData, args) -> dict:
    baseline_score, baseline = task_baseline(data)
    return {
        "task": data.name,
        "score": data.score,
        "primary_split": data.validation_splits[0],
        "seeds": list(args.seeds),
        "learning_rates": list(args.learning_rates),
        "baseline_score": baseline_score,
        "baseline": baseline,
    }


def _keep_if_best(accelerator, sweep: Sweep, key: RunKey, outcome: RunOutcome, info: ModelInfo, result: dict) -> None:
    """Keep the model of the best non-diverged run of each model under best/<model>/ (replaced atomically)."""
    if result["diverged"] or result["final"]["score"] is None:
        return
    folder = sweep.output_dir / "best" / key.model_label
    record_path = folder / "best_run.json"
    if record_path.exists():
        previous = json.loads(record_path.read_text(encoding="utf-8"))
        if previous["score"] is not None and previous["score"] >= result["final"]["score"]:
            return
    staging = folder.with_name(f".{key.model_label}.incoming")
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    save_model(accelerator, outcome, info, staging)
    if accelerator.is_main_process:
        atomic_write_json(staging / "best_run.json", {"run_id": key.run_id, "score": result["final"]["score"]})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    accelerator.wait_for_everyone()


def _write_sweep_cards(output_dir: Path, sweep: Sweep, data: TaskData, args, report: dict) -> None:
    """Cards for the models a sweep kept, each with its model's stability summary."""
    from transformers import AutoConfig

    summaries = {s["model"]: s["line"] for s in report["summary"]}
    folders = []
    if args.save_models == "best":
        for label in args.model_labels:
            folder = output_dir / "best" / label
            if (folder / "best_run.json").exists():
                run_id = json.loads((folder / "best_run.json").read_text(encoding="utf-8"))["run_id"]
                folders.append((folder, run_id))
    else:
        folders = [(sweep.run_dir(k) / "model", k.run_id) for k in sweep.keys if (sweep.run_dir(k) / "model").is_dir()]
    results = {r["run_id"]: r for r in sweep.results()}
    for folder, run_id in folders:
        if run_id not in results:
            continue
        result = results[run_id]
        config = AutoConfig.from_pretrained(folder, trust_remote_code=args.trust_remote_code)
        extra = {
            "Stability across learning rates and seeds": (
                f"{summaries.get(result['model_label'], '')}\n\nFull table: `stability.md` of the sweep "
                f"({len(results)} runs)."
            )
        }
        write_card(folder, config, result, data, args, extra)


if __name__ == "__main__":
    sys.exit(main())
