"""The arguments of fine-tuning: one run, or a sweep of models x learning rates x seeds. One dataclass, the flags
of `run_glue.py`, and the keys of a recipe file.

    from recurrent_mlm.glue import GlueArguments, run_glue
    result = run_glue(GlueArguments(model_name_or_path=["out/mlm"], task_name="sst2", glue_dir="glue",
                                    learning_rates=[1e-4, 3e-4], seeds=[1, 2], output_dir="out/sst2"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..cli import UsageError, arg, check_finite, check_hub_arguments, check_trackers
from ..optim import SCHEDULERS
from .data import HUB_DATASET
from .tasks import TASKS, get_task

DTYPE_CHOICES = ("float32", "bfloat16", "float16", "auto")

_DATA = "data"
_MODEL = "model"
_TRAIN = "training"
_OUT = "output"
_HUB = "Hub (--push_to_hub uploads one run's model, or a sweep's best run with --save_models best)"


@dataclass
class GlueArguments:
    """Everything `run_glue.py` takes. Several models, learning rates or seeds make a sweep."""

    # -- data ----------------------------------------------------------------------------------------------
    task_name: str | None = arg(None, f"GLUE task: {', '.join(TASKS)} (SST-2, STS-B ... spellings work too).", group=_DATA)
    glue_dir: str | None = arg(None, "Folder in the official GLUE TSV layout (holding e.g. SST-2/train.tsv), or the task's own folder.", group=_DATA)
    dataset_name: str = arg(HUB_DATASET, "Hub dataset to load --task_name from when no --glue_dir is given.", group=_DATA)
    cache_dir: str | None = arg(None, "Where datasets, models and tokenizers downloaded from the Hub are cached (default: the Hugging Face caches).", group=_DATA)
    train_file: str | None = arg(None, "Your own training data (.csv, .tsv, .json or .jsonl) instead of a GLUE task.", group=_DATA)
    validation_file: str | None = arg(None, "Your own validation data (same formats); required with --train_file.", group=_DATA)
    test_file: str | None = arg(None, "Your own unlabelled test data, predicted with --do_predict.", group=_DATA)
    text_columns: list[str] | None = arg(None, "One or two text column names of your files (default: sentence1 sentence2, sentence, or text).", group=_DATA, metavar="COLUMN")
    label_column: str = arg("label", "Label column name of your files.", group=_DATA)
    label_type: str = arg("auto", "Treat your labels as classes or as numbers (auto: numbers if any is fractional).", group=_DATA, choices=["auto", "classification", "regression"])
    max_seq_length: int = arg(128, "Tokens per example after tokenization; longer inputs are truncated and counted.", group=_DATA)
    drop_empty_texts: bool = arg(False, "Skip labelled rows with an empty text instead of stopping.", group=_DATA)
    max_train_samples: int | None = arg(None, "Keep only the first N training examples (quick runs).", group=_DATA)
    max_eval_samples: int | None = arg(None, "Keep only the first N examples of each validation split.", group=_DATA)
    max_predict_samples: int | None = arg(None, "Keep only the first N examples of each test split.", group=_DATA)
    dataloader_num_workers: int = arg(0, "Data-loader worker processes.", group=_DATA)

    # -- model ---------------------------------------------------------------------------------------------
    model_name_or_path: list[str] = arg([], "Model folder(s) or Hub id(s); several make a sweep over models.", group=_MODEL, metavar="MODEL", required=True)
    model_labels: list[str] | None = arg(None, "Short names for the models in the report (default: the folder names).", group=_MODEL, metavar="NAME")
    tokenizer_name: str | None = arg(None, "Tokenizer folder or Hub id, if the model folder has none.", group=_MODEL)
    trust_remote_code: bool = arg(False, "Allow model code from the checkpoint (Hub models with custom code).", group=_MODEL)
    ignore_mismatched_sizes: bool = arg(False, "Replace a classification head whose size does not fit the task with a fresh one.", group=_MODEL)
    dtype: str = arg("float32", "Weight dtype to fine-tune in (float32 unless you have a reason; 'auto' keeps the checkpoint's).", group=_MODEL, choices=list(DTYPE_CHOICES))

    # -- training ------------------------------------------------------------------------------------------
    learning_rates: list[float] = arg([2e-5], "Peak learning rate(s); several make a sweep.", group=_TRAIN, flags=("--learning_rate", "--learning_rates"), metavar="LR")
    seeds: list[int] = arg([42], "Seed(s) for the head's initialisation, data order and dropout; several make a sweep.", group=_TRAIN, flags=("--seed", "--seeds"), metavar="SEED")
    per_device_train_batch_size: int = arg(32, "Training batch size per process.", group=_TRAIN)
    per_device_eval_batch_size: int = arg(64, "Evaluation batch size per process.", group=_TRAIN)
    num_train_epochs: float = arg(3.0, "Passes over the training data (fractions allowed: 0.5 is half an epoch).", group=_TRAIN)
    max_train_steps: int | None = arg(None, "Optimizer steps in all; overrides --num_train_epochs (0: evaluate only).", group=_TRAIN)
    gradient_accumulation_steps: int = arg(1, "Batches per optimizer step.", group=_TRAIN)
    weight_decay: float = arg(0.01, "Decoupled AdamW weight decay (not on biases and norms).", group=_TRAIN)
    warmup_ratio: float = arg(0.1, "Fraction of the steps spent warming the learning rate up from 0.", group=_TRAIN)
    num_warmup_steps: int | None = arg(None, "Warmup steps; overrides --warmup_ratio.", group=_TRAIN)
    lr_scheduler_type: str = arg("linear", "Learning-rate schedule after warmup.", group=_TRAIN, choices=list(SCHEDULERS))
    max_grad_norm: float = arg(1.0, "Gradient clipping norm (0 turns clipping off).", group=_TRAIN)
    mixed_precision: str | None = arg(None, "Autocast precision (default: from `accelerate config`, else no).", group=_TRAIN, choices=["no", "fp16", "bf16"])
    gradient_checkpointing: bool = arg(False, "Recompute activations in the backward pass (less memory, slower).", group=_TRAIN)
    torch_compile: bool = arg(False, "Compile the model with torch.compile (through Accelerate).", group=_TRAIN)
    eval_steps: int | None = arg(None, "Also evaluate every N optimizer steps (always after each epoch and at the end).", group=_TRAIN)
    early_stopping_patience: int | None = arg(None, "Stop a run when the validation score has not improved for N evaluations in a row (the run's final score is then the last evaluation's; with a sweep, choose the patience before looking at the scores).", group=_TRAIN)
    logging_steps: int = arg(10, "Record the training loss every N optimizer steps (the loss curve).", group=_TRAIN)
    load_best_model_at_end: bool = arg(False, "Save and predict with the best evaluated weights instead of the last (the reported final score stays the last evaluation's).", group=_TRAIN)
    ece_bins: int = arg(15, "Equal-width confidence bins of the expected calibration error.", group=_TRAIN)

    # -- output --------------------------------------------------------------------------------------------
    output_dir: str | None = arg(None, "Where the model, metrics and predictions (one run) or the sweep (several) go.", group=_OUT, required=True)
    overwrite_output_dir: bool = arg(False, "Replace what --output_dir holds (a sweep otherwise resumes there).", group=_OUT)
    do_predict: bool = arg(False, "Predict the test split(s) and write GLUE submission files (predictions/).", group=_OUT)
    sweep: bool = arg(False, "Use the sweep layout and report even for a single model, learning rate and seed.", group=_OUT)
    save_models: str = arg("none", "Sweeps: keep no model, each model's best run (best/<model>/), or every run's model.", group=_OUT, choices=["none", "best", "all"])
    max_runs: int | None = arg(None, "Sweeps: stop after N unfinished runs (e.g. one chunk per batch job); rerun to continue.", group=_OUT)
    report_to: str = arg("none", "Trackers for Accelerate (tensorboard, wandb, all, or none).", group=_OUT)
    disable_tqdm: bool = arg(False, "No progress bars.", group=_OUT)

    # -- hub -----------------------------------------------------------------------------------------------
    push_to_hub: bool = arg(False, "Push the output folder to the Hub at the end.", group=_HUB)
    hub_model_id: str | None = arg(None, "Repo to push to: 'user-or-org/model-name'.", group=_HUB)
    hub_revision: str | None = arg(None, "Branch to push to (created from main if missing; default main).", group=_HUB)
    hub_private: bool = arg(False, "Create the repo private (or make an existing public repo private).", group=_HUB, flags=("--hub_private", "--hub_private_repo"))
    hub_token: str | None = arg(None, "Hub token with write access. Prefer the HF_TOKEN variable or `hf auth login`: a token on the command line ends up in shell histories and process listings.", group=_HUB)

    @property
    def is_custom(self) -> bool:
        return bool(self.train_file or self.validation_file or self.test_file)

    def validate(self) -> GlueArguments:
        """Check the arguments (no data or model is read); resolves the task name, the sweep layout, the model
        labels, the trackers and the Hub repo. Returns self."""
        from .sweep import lr_tag, model_labels

        if not self.model_name_or_path:
            raise UsageError("the following arguments are required: --model_name_or_path (see --help)")
        if not self.output_dir:
            raise UsageError("the following arguments are required: --output_dir (see --help)")
        custom = self.is_custom
        if custom and self.task_name:
            raise UsageError("give either --task_name (a GLUE task) or --train_file/--validation_file (your data), not both.")
        if custom and not self.validation_file:
            raise UsageError("--validation_file is required with your own data (the runs are evaluated on it).")
        if not custom and not self.task_name:
            raise UsageError("nothing to train on: give --task_name (with --glue_dir for local files) or --train_file and --validation_file.")
        if self.glue_dir and not self.task_name:
            raise UsageError("--glue_dir needs --task_name to know which task folder to read.")
        if self.task_name:
            try:
                self.task_name = get_task(self.task_name).name
            except KeyError:
                raise UsageError(f"unknown task {self.task_name!r}; choose one of {', '.join(TASKS)} (or use --train_file for your own data).") from None
        if self.do_predict and custom and not self.test_file:
            raise UsageError("--do_predict with your own data needs --test_file.")
        if (self.text_columns or self.label_column != "label" or self.label_type != "auto") and not custom:
            raise UsageError("--text_columns, --label_column and --label_type describe your own files; GLUE tasks have fixed columns.")

        for name in ("learning_rates", "seeds", "model_name_or_path"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise UsageError(f"--{name} lists a value twice: {' '.join(str(v) for v in values)}.")
        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.learning_rates):
            raise UsageError("learning rates must be positive numbers.")
        tags = [lr_tag(lr) for lr in self.learning_rates]
        if len(set(tags)) != len(tags):
            raise UsageError(
                f"--learning_rates {' '.join(map(repr, self.learning_rates))} name the same run folder twice; give "
                "learning rates that differ."
            )
        if any(not 0 <= seed < 2**32 for seed in self.seeds):
            raise UsageError(f"seeds must be in [0, 2**32), got {' '.join(map(str, self.seeds))}.")
        positive = ["per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "logging_steps", "ece_bins", "max_seq_length"]
        positive += [n for n in ("eval_steps", "max_runs", "max_train_samples", "max_eval_samples", "max_predict_samples", "early_stopping_patience") if getattr(self, n) is not None]
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        if self.dataloader_num_workers < 0:
            raise UsageError(f"--dataloader_num_workers cannot be negative, got {self.dataloader_num_workers}.")
        if not math.isfinite(self.num_train_epochs) or self.num_train_epochs < 0 or (self.max_train_steps is not None and self.max_train_steps < 0):
            raise UsageError("--num_train_epochs and --max_train_steps cannot be negative.")
        check_finite("warmup_ratio", self.warmup_ratio, low=0, high=1, high_open=True)
        if self.num_warmup_steps is not None and self.num_warmup_steps < 0:
            raise UsageError("--num_warmup_steps cannot be negative.")
        check_finite("weight_decay", self.weight_decay, low=0)
        check_finite("max_grad_norm", self.max_grad_norm, low=0)
        if self.max_seq_length < 8:
            raise UsageError(f"--max_seq_length {self.max_seq_length} leaves no room for text; use at least 8.")

        from .sweep import SPEC_FILE

        grid = len(self.model_name_or_path) * len(self.learning_rates) * len(self.seeds)
        continuing = (Path(self.output_dir) / SPEC_FILE).is_file() and not self.overwrite_output_dir
        self.sweep = self.sweep or grid > 1 or continuing  # a sweep's folder goes on as a sweep, even for one cell
        if not self.sweep:
            for flag, default in (("save_models", "none"), ("max_runs", None)):
                if getattr(self, flag) != default:
                    raise UsageError(f"--{flag} applies to sweeps (several models, learning rates or seeds, or --sweep).")
        if self.push_to_hub and self.sweep and (self.save_models != "best" or len(self.model_name_or_path) != 1):
            raise UsageError("--push_to_hub in a sweep uploads the best run of one model: give one --model_name_or_path and --save_models best.")
        output = Path(self.output_dir).resolve()
        for path in self.model_name_or_path:
            if Path(path).exists() and Path(path).resolve() in (output, *output.parents):
                raise UsageError(
                    f"--output_dir {self.output_dir} is (or is inside) the model folder {path}: writing there would "
                    "replace the model being fine-tuned. Choose another --output_dir."
                )
        self.model_labels = model_labels(self.model_name_or_path, self.model_labels)
        self.report_to = ",".join(check_trackers(self.report_to.split(","))) or "none"
        check_hub_arguments(self, default_repo=Path(self.output_dir).resolve().name)
        return self


__all__ = ["GlueArguments", "DTYPE_CHOICES"]
