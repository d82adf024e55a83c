"""Fine-tuning runs and sweeps from their arguments: what `run_glue.py` does, callable from Python.

    result = run_glue(GlueArguments(...))     # one run, or a sweep of models x learning rates x seeds

A run writes its model, tokenizer, metrics (`all_results.json`, `eval_results.json`), per-example results of the
final evaluation (`eval_predictions.jsonl`), submission files with --do_predict, and a model card. A sweep
writes each finished run atomically under `runs/`, resumes where it stopped, refuses to mix runs with other
settings, data or weights, and reports every finished run of the folder (`runs.json`, `runs.csv`,
`stability.md`/`.png`; see `report.py`).
"""

from __future__ import annotations

import json
import math
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import UsageError, check_output_dir, check_process_count, reset_accelerate_state
from ..files import atomic_write_json, json_safe, move_into, weights_fingerprint
from .arguments import GlueArguments
from .data import HUB_DATASET, TaskData, load_custom_files, load_glue_dir, load_glue_hub
from .finetune import (
    EVAL_PREDICTIONS_FILE,
    FinetuneConfig,
    ModelInfo,
    RunOutcome,
    inspect_model,
    run_finetuning,
    tokenize,
    write_eval_predictions,
)
from .metrics import task_baseline
from .report import write_report
from .sweep import RunKey, Sweep, lr_tag
from .tasks import SCORE_DEFINITIONS, get_task

logger = logging.getLogger("recurrent_mlm.glue")


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
def run_result(key: RunKey, info: ModelInfo, data: TaskData, outcome: RunOutcome, notes: list[str]) -> dict:
    primary = data.validation_splits[0]
    return json_safe(
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
            "divergence": {k: v for k, v in outcome.divergence.items() if k not in ("diverged", "reason")},
            "stopped_early": outcome.stopped_early,
            "loss_curve": outcome.loss_curve,
            "eval_curve": outcome.eval_curve,
            "train_steps": outcome.train_steps,
            "num_train_examples": outcome.num_train_examples,
            "mixed_precision": outcome.mixed_precision,
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
    from ..model_card import write_model_card

    path = result["model"]
    is_hub_id = not Path(path).exists() and path.count("/") <= 1
    base = path if is_hub_id else f"{Path(path).name} (a local folder)"
    training = {
        "task": data.name if data.task is not None else "your own data",
        "base model": base,
        "training examples": result.get("num_train_examples"),
        "learning rate": lr_tag(result["learning_rate"]),
        "seed": result["seed"],
        "length": f"{args.num_train_epochs:g} epochs" if args.max_train_steps is None else f"{args.max_train_steps} steps",
        "batch size per device": args.per_device_train_batch_size,
        "warmup": args.num_warmup_steps if args.num_warmup_steps is not None else f"{args.warmup_ratio:g} of the steps",
        "weight decay": args.weight_decay,
        "max sequence length": args.max_seq_length,
        "mixed precision": result.get("mixed_precision", "no"),
        "optimizer steps": result["train_steps"],
        "trivial-predictor score": _num(result["baseline_score"]),
    }
    sections = {
        "Fine-tuning": (
            f"Fine-tuned from `{base}` with `run_glue.py` (recurrent-mlm) on {describe_training_data(data, args)} "
            f"Metrics are on the validation data after the last step; the best evaluated "
            f"{SCORE_DEFINITIONS[data.score]} was {_num(result['best']['score'])} at step {result['best']['step']}."
        )
    }
    sections.update(extra or {})
    full_glue = data.task is not None and not args.max_train_samples and not args.max_eval_samples
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
        training_data=None if full_glue else describe_training_data(data, args),
    )


def describe_training_data(data: TaskData, args) -> str:
    """One sentence on what a run trained and was evaluated on: the task, subsets, local files (no paths)."""
    sizes = ", ".join(f"{split} {len(ds):,} rows" for split, ds in data.splits.items())
    limits = [f"--{name} {getattr(args, name)}" for name in ("max_train_samples", "max_eval_samples") if getattr(args, name)]
    subset = f"; a subset ({', '.join(limits)})" if limits else ""
    if data.task is None:
        files = [Path(p).name for p in (args.train_file, args.validation_file) if p]
        return f"the files {', '.join(f'`{f}`' for f in files)} ({sizes}{subset})."
    where = "the Hub dataset " + str(data.hub_dataset) if getattr(data, "hub_dataset", None) else "a local GLUE folder"
    return f"GLUE {data.name} from {where} ({sizes}{subset})."


def save_model(accelerator, outcome: RunOutcome, info: ModelInfo, folder: Path) -> None:
    """Model and tokenizer into `folder`, through a staging folder (never a config without its weights)."""
    accelerator.wait_for_everyone()
    staging = folder / ".model.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    outcome.model.save_pretrained(staging, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
    if accelerator.is_main_process:
        info.tokenizer.save_pretrained(staging)
        move_into(staging, folder)
    accelerator.wait_for_everyone()


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


@dataclass
class GlueResult:
    """What `run_glue` returns: the exit code of the command line (0 done), the output folder, and the
    finished runs' results (one for a single run; every finished run of the folder for a sweep)."""

    output_dir: Path
    exit_code: int
    results: list[dict] = field(default_factory=list)
    pending: int = 0  # sweep runs still to do (after --max_runs, or an interruption)


def run_glue(args: GlueArguments, *, command: str | None = None) -> GlueResult:
    """One fine-tuning run, or a sweep of models x learning rates x seeds (resumable), from `args`. Raises
    `UsageError` for bad input before anything is written."""
    from ..cpu import tune_cpu_allocator

    args.validate()
    tune_cpu_allocator()  # large CPU temporaries are reused, not page-faulted in every step (RMLM_MALLOC_TUNING=0 to skip)
    accelerator = make_accelerator(args)
    try:
        return _run(accelerator, args)
    finally:
        reset_accelerate_state()


def make_accelerator(args: GlueArguments):
    import datasets
    import transformers
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.utils import TorchDynamoPlugin

    accelerator = Accelerator(
        # Some models leave parameters out of a classification loss (the sequential Transformer's
        # right-to-left stack under Abnar et al.'s last-token pooling); one Accelerator serves a whole sweep,
        # so DDP must expect that. It costs nothing in single-process runs.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to.split(","),
        project_dir=args.output_dir,
        dynamo_plugin=TorchDynamoPlugin(backend="inductor") if args.torch_compile else None,
    )
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    for name in (logger, logging.getLogger("run_glue")):
        name.setLevel(logging.INFO if accelerator.is_local_main_process else logging.ERROR)
    level = logging.WARNING if accelerator.is_local_main_process else logging.ERROR  # one process speaks
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    # In-memory maps, weight loading and saving take a moment each and repeat for every run of a sweep.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    check_process_count(accelerator, logger)
    return accelerator


def check_warmup(args: GlueArguments, data: TaskData, num_processes: int) -> None:
    """Refuse --num_warmup_steps longer than a run (the learning rate would never reach its peak)."""
    if args.num_warmup_steps is None or "train" not in data.splits:
        return
    batches = math.ceil(len(data.splits["train"]) / (args.per_device_train_batch_size * num_processes))
    steps = args.max_train_steps
    if steps is None:
        steps = math.ceil(args.num_train_epochs * math.ceil(batches / args.gradient_accumulation_steps))
    if steps and args.num_warmup_steps > steps:
        raise UsageError(
            f"--num_warmup_steps {args.num_warmup_steps} is longer than a run ({steps} optimizer steps): the learning "
            "rate would never reach its peak. Lower it or use --warmup_ratio."
        )


def _run(accelerator, args: GlueArguments) -> GlueResult:
    # Everything that can be wrong with the input is found here, before anything is written.
    data = load_task_data(args)
    check_warmup(args, data, accelerator.num_processes)
    cfg = FinetuneConfig.from_arguments(args)
    infos = [inspect_model(path, label, data, cfg) for path, label in zip(args.model_name_or_path, args.model_labels)]
    output_dir = Path(args.output_dir)
    models = dict(zip(args.model_labels, args.model_name_or_path))
    # What the runs of one sweep must share for their numbers to compare: the data by content, the models by
    # their weights (not by path), and every setting that changes the numbers.
    spec = {
        "task": data.name,
        "data_fingerprint": data.fingerprint(),
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "do_predict": args.do_predict,
        **cfg.to_dict(),
    }
    weights = {label: weights_fingerprint(path) for label, path in models.items()}
    if args.sweep:
        Sweep.check(output_dir, spec, models, args.overwrite_output_dir, weights=weights)
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
        result = run_sweep(accelerator, args, keys, infos, data, cfg, output_dir, spec, models, weights)
    accelerator.end_training()
    return result


def single_run(accelerator, args, key: RunKey, info: ModelInfo, data: TaskData, cfg: FinetuneConfig, output_dir: Path) -> GlueResult:
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
    return GlueResult(output_dir, 0, results=[result])


def run_sweep(accelerator, args, keys, infos, data, cfg, output_dir: Path, spec: dict, models: dict, weights: dict) -> GlueResult:
    sweep = Sweep(output_dir, keys)
    meta = _report_meta(data, args)
    if accelerator.is_main_process:
        grid = {"learning_rates": args.learning_rates, "seeds": args.seeds}
        Sweep.start(output_dir, spec, models, grid, args.overwrite_output_dir, report_meta=meta, weights=weights)
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
    try:
        _sweep_runs(accelerator, args, sweep, pending, by_label, data, cfg, meta, done_before, len(keys))
    except KeyboardInterrupt:
        if accelerator.is_main_process:
            print(
                f"interrupted: {len(keys) - len(sweep.pending())} of {len(keys)} runs are finished and kept; run the "
                "same command to continue.",
                file=sys.stderr,
                flush=True,
            )
        raise

    results = sweep.all_results()
    if accelerator.is_main_process:
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
    return GlueResult(output_dir, 0, results=results, pending=len(sweep.pending()))


def _sweep_runs(accelerator, args, sweep: Sweep, pending, by_label, data, cfg, meta, index: int, total: int) -> None:
    output_dir = sweep.output_dir
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
            description=_describe(key, index, total),
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
            accelerator.print(f"{_describe(key, index, total)}: {_run_line(result, data)}")
            write_report(output_dir, meta, sweep.all_results(), with_plot=False)
        outcome.model = None
        accelerator.wait_for_everyone()


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
        for name in ("stability.md", "stability.png"):  # the card links them: they travel with the model
            if (output_dir / name).exists():
                shutil.copy2(output_dir / name, folder / name)
        extra = {
            "Stability across learning rates and seeds": (
                f"{summaries.get(result['model_label'], '')}\n\nFull table: [`stability.md`](stability.md) "
                f"(the sweep's {len(results)} runs; plot: `stability.png`)."
            )
        }
        write_card(folder, config, result, data, args, extra)


__all__ = ["GlueResult", "run_glue", "load_task_data", "run_result", "make_accelerator"]
