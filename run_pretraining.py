#!/usr/bin/env python
"""Pretrain a recurrent-mlm masked language model with Accelerate (one CPU, one or many GPUs, many machines).

    python run_pretraining.py --train_file data/corpus --output_dir outputs/mlm --size mini --variant recurrent_bert
    accelerate launch --num_processes 2 run_pretraining.py ...            # data-parallel (add --cpu for gloo on CPU)
    accelerate launch --config_file configs/accelerate/fsdp.yaml ...     # an Accelerate config file

The structure follows transformers' `run_mlm_no_trainer.py`. What differs, and why:

* Text is packed into full `[CLS] ... [SEP]` blocks (documents separated by `[SEP]`); no padding is computed.
* Masks are seeded per example from (seed, epoch, index), so they do not depend on batch size, process count or
  resumption; the held-out split is always scored at 15% with a fixed seed, comparable across runs and variants.
* The loss of an optimizer step is the mean over every masked token of the global batch (all processes, all
  accumulation steps), not a mean of per-batch means: 2 processes x batch B give exactly the gradient of
  1 process x batch 2B.
* The LR scheduler is not passed through `accelerator.prepare` (which would step it once per process per call);
  it is stepped once per optimizer step, so the schedule is the same for any number of processes.
* Checkpoints are written without pickle (safetensors + JSON), atomically, and restore the RNG and the exact
  data position; a resumed run reproduces the uninterrupted loss curve.

See docs/pretraining.md for every flag, data formats, resuming, and multi-node launches.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "recurrent_mlm").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # a checkout runs its own code, installed or not

import torch  # noqa: E402

from recurrent_mlm.training_utils import (  # noqa: E402
    JsonlLogger,
    UsageError,
    atomic_write_json,
    atomic_write_text,
    build_optimizer,
    check_output_dir,
    relaunch_cpu_processes,
    run_cli,
)

logger = logging.getLogger("run_pretraining")

DEFAULT_VOCAB_SIZE = 8192
SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
MIXED_PRECISION = ("no", "fp16", "bf16")
METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "all_results.json"
PLOT_FILE = "training_curves.png"
ARGS_FILE = "training_args.json"
TRACKER_DIR = "runs"
# Artifacts of an earlier run that --overwrite_output_dir removes, so that stale checkpoints, metrics and logs
# never mix with the new run's.
RUN_ARTIFACTS = (METRICS_FILE, RESULTS_FILE, PLOT_FILE, ARGS_FILE, TRACKER_DIR)

# Flags that shape a new model; None means "not given" (the preset or variant decides).
ARCHITECTURE_FLAGS = (
    "encoder_type",
    "recurrence",
    "share_layers",
    "num_attention_layers",
    "recurrence_layers",
    "recurrence_hidden_size",
    "recurrence_chunk_size",
    "recurrence_direction",
    "lstm_hidden_size",
    "lstm_max_singular_value",
    "sequential_combine",
    "pooling",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)
# Of those, what a BERT checkpoint conversion accepts (the layout stays BERT's).
BERT_CONVERSION_FLAGS = ("recurrence", "recurrence_layers", "recurrence_hidden_size", "recurrence_chunk_size", "recurrence_direction")
DROPOUT_FLAGS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


# ==========================================================================================================
# Arguments
# ==========================================================================================================
class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags through `UsageError` (one line, exit code 2, nothing written)."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def _none_or_str(value: str) -> str | None:
    return None if value.lower() in ("none", "null", "") else value


def build_parser() -> argparse.ArgumentParser:
    from recurrent_mlm.presets import SIZES, VARIANTS

    p = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    g = p.add_argument_group("data")
    g.add_argument("--train_file", nargs="+", help="Training text: files or folders of .txt, .jsonl/.json or .csv (optionally .gz). A .txt file is one document; each JSON/CSV row is one.")
    g.add_argument("--validation_file", nargs="+", help="Held-out text (same formats). Default: hold out --validation_split_percentage of the training blocks.")
    g.add_argument("--dataset_name", help="A `datasets` dataset instead of files: a Hub id or a local dataset folder.")
    g.add_argument("--dataset_config_name", help="Configuration of --dataset_name.")
    g.add_argument("--dataset_split", default="train", help="Split of --dataset_name to train on.")
    g.add_argument("--dataset_validation_split", help="Split of --dataset_name to evaluate on (e.g. 'validation').")
    g.add_argument("--text_column", default="text", help="Column holding the text in JSON/CSV files and datasets.")
    g.add_argument("--validation_split_percentage", type=float, default=5.0, help="Percent of the training blocks held out for evaluation when there is no validation file/split (0: none). The held-out blocks do not depend on --seed.")
    g.add_argument("--max_eval_samples", type=int, help="Evaluate on at most this many held-out blocks.")
    g.add_argument("--streaming", action="store_true", help="Read the corpus as a stream (for corpora larger than memory or disk cache). Needs --max_train_steps.")
    g.add_argument("--shuffle_buffer_size", type=int, default=10_000, help="With --streaming: records shuffled in a buffer of this size.")
    g.add_argument("--streaming_validation_records", type=int, default=1000, help="With --streaming and no validation file/split: hold out the first N records.")
    g.add_argument("--max_seq_length", type=int, default=128, help="Tokens per packed block, [CLS] and [SEP] included. At most the model's max_position_embeddings.")
    g.add_argument("--preprocessing_num_workers", type=int, help="Processes for tokenizing the corpus.")
    g.add_argument("--dataloader_num_workers", type=int, default=0, help="Data-loader worker processes (masking happens there).")
    g.add_argument("--cache_dir", help="Where `datasets` caches the read and tokenized corpus (default: its own cache).")
    g.add_argument("--overwrite_cache", action="store_true", help="Re-tokenize even if a cached result exists.")

    g = p.add_argument_group("tokenizer")
    g.add_argument("--tokenizer_name", help="An existing tokenizer (folder or Hub id). Default: the model's, or a WordPiece tokenizer trained on the corpus.")
    g.add_argument("--vocab_size", type=int, help=f"Vocabulary size of a tokenizer trained on the corpus (default: the model config's, else {DEFAULT_VOCAB_SIZE}).")
    g.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True, help="Lowercase (and strip accents) in a trained tokenizer, like bert-base-uncased.")
    g.add_argument("--tokenizer_min_frequency", type=int, default=2, help="Minimum count of a merge in a trained tokenizer.")
    g.add_argument("--tokenizer_train_records", type=int, help="Train the tokenizer on the first N records only (default: all; 100000 with --streaming).")

    g = p.add_argument_group("masking")
    g.add_argument("--mlm_probability", type=float, default=0.15, help="Fraction of tokens to predict (0.15 as BERT; 0.3 as MosaicBERT/ModernBERT).")
    g.add_argument("--mask_replace_prob", type=float, default=0.8, help="Of the predicted tokens, the fraction replaced by [MASK].")
    g.add_argument("--random_replace_prob", type=float, default=0.1, help="Of the predicted tokens, the fraction replaced by a random token (the rest stay unchanged).")
    g.add_argument("--whole_word_masking", action="store_true", help="Predict whole words: all pieces of a chosen word.")

    g = p.add_argument_group("model")
    g.add_argument("--model_name_or_path", help="Continue pretraining from a recurrent-mlm checkpoint, or from a BERT checkpoint (converted; --recurrence upcycles it).")
    g.add_argument("--config_name", help="A JSON config file for a new model (flags below override its fields).")
    g.add_argument("--size", default="mini", choices=list(SIZES), help="Size preset of a new model (BERT miniatures of Turc et al., base, large).")
    g.add_argument("--variant", choices=list(VARIANTS), help="Named encoder variant of a new model (its fields can be overridden by the flags below).")
    g.add_argument("--no_match_parameters", action="store_true", help="Do not solve the variant's free width to BERT's parameter count at this size.")
    g.add_argument("--encoder_type", help="Encoder of a new model: transformer, sequential_transformer, lstm or recurrent.")
    g.add_argument("--recurrence", type=_none_or_str, help="Recurrent sublayer: none, simple (Lei et al. 2022) or gated.")
    g.add_argument("--share_layers", action=argparse.BooleanOptionalAction, default=None, help="One layer applied at every depth (Universal Transformer).")
    g.add_argument("--num_attention_layers", type=int, help="Attention layers on top of an lstm/recurrent encoder.")
    g.add_argument("--recurrence_layers", type=int, nargs="+", help="Indices of the layers that get the recurrent sublayer (default: all).")
    g.add_argument("--recurrence_hidden_size", type=int, help="Inner width of the recurrent sublayer (default: BERT's FFN parameter count).")
    g.add_argument("--recurrence_chunk_size", type=int, help="k in c_t = f(c_{t-k}, x_t).")
    g.add_argument("--recurrence_direction", help="forward, backward or bidirectional.")
    g.add_argument("--lstm_hidden_size", type=int, help="LSTM width per direction.")
    g.add_argument("--lstm_max_singular_value", type=float, help="Project LSTM recurrent matrices to this spectral norm after each step.")
    g.add_argument("--sequential_combine", help="How a sequential Transformer combines its directions: sum or concat.")
    g.add_argument("--pooling", help="Pooler summary: cls, mean, last or final.")
    g.add_argument("--hidden_size", type=int, help="Override the preset's hidden size.")
    g.add_argument("--num_hidden_layers", type=int, help="Override the preset's depth.")
    g.add_argument("--num_attention_heads", type=int, help="Override the preset's attention heads.")
    g.add_argument("--intermediate_size", type=int, help="Override the preset's feed-forward width.")
    g.add_argument("--max_position_embeddings", type=int, help="Positions of a new model (default 512).")
    g.add_argument("--hidden_dropout_prob", type=float, help="Dropout on hidden states (default: the config's, 0.1).")
    g.add_argument("--attention_probs_dropout_prob", type=float, help="Dropout on attention probabilities (default: the config's, 0.1).")
    g.add_argument("--attn_implementation", choices=["eager", "sdpa"], help="Attention kernel (default: transformers' choice).")

    g = p.add_argument_group("optimisation")
    g.add_argument("--output_dir", required=True, help="Where the model, tokenizer, metrics, plots and checkpoints go.")
    g.add_argument("--overwrite_output_dir", action="store_true", help="Allow a non-empty --output_dir (an earlier run's checkpoints, metrics and logs there are removed).")
    g.add_argument("--seed", type=int, default=42, help="Seed of initialisation, data order, masking and dropout.")
    g.add_argument("--per_device_train_batch_size", type=int, default=32, help="Blocks per process per micro-batch.")
    g.add_argument("--per_device_eval_batch_size", type=int, default=64, help="Blocks per process per evaluation batch.")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1, help="Micro-batches per optimizer step.")
    g.add_argument("--learning_rate", type=float, default=5e-4, help="Peak learning rate (AdamW).")
    g.add_argument("--weight_decay", type=float, default=0.01, help="Decoupled weight decay (not on biases and norms).")
    g.add_argument("--adam_beta1", type=float, default=0.9, help="AdamW beta1.")
    g.add_argument("--adam_beta2", type=float, default=0.98, help="AdamW beta2 (RoBERTa's 0.98).")
    g.add_argument("--adam_epsilon", type=float, default=1e-6, help="AdamW epsilon.")
    g.add_argument("--max_grad_norm", type=float, default=1.0, help="Clip the global gradient norm (0: no clipping).")
    g.add_argument("--lr_scheduler_type", default="linear", choices=SCHEDULERS, help="Decay after warmup.")
    g.add_argument("--num_warmup_steps", type=int, help="Warmup optimizer steps (overrides --warmup_ratio).")
    g.add_argument("--warmup_ratio", type=float, default=0.06, help="Warmup as a fraction of the optimizer steps.")
    g.add_argument("--num_train_epochs", type=float, default=1.0, help="Epochs over the training blocks (ignored with --max_train_steps).")
    g.add_argument("--max_train_steps", type=int, help="Optimizer steps to train for (overrides --num_train_epochs).")
    g.add_argument("--mixed_precision", choices=MIXED_PRECISION, help="Autocast precision (default: the Accelerate config's).")
    g.add_argument("--gradient_checkpointing", action="store_true", help="Recompute activations in the backward pass (less memory, ~30%% slower).")
    g.add_argument("--torch_compile", action="store_true", help="Compile the model with torch.compile (through Accelerate).")
    g.add_argument("--torch_compile_backend", default="inductor", help="torch.compile backend with --torch_compile.")

    g = p.add_argument_group("logging, evaluation, checkpoints")
    g.add_argument("--logging_steps", type=int, default=10, help="Log training metrics every N optimizer steps.")
    g.add_argument("--eval_steps", type=int, help="Evaluate every N optimizer steps (always at the end).")
    g.add_argument("--checkpointing_steps", type=int, help="Save the full training state every N optimizer steps.")
    g.add_argument("--save_total_limit", type=int, default=2, help="Keep only the newest N checkpoints.")
    g.add_argument("--resume_from_checkpoint", help="'latest' (newest checkpoint in --output_dir) or a checkpoint folder.")
    g.add_argument(
        "--no_checkpoint_on_signal",
        action="store_true",
        help="Do not save a checkpoint when SIGTERM or SIGUSR1 arrives (by default the run finishes its step, saves "
        "the full state, and exits with 128 + the signal number; a second signal stops it at once).",
    )
    g.add_argument("--report_to", nargs="+", default=["none"], help="Accelerate trackers: tensorboard, wandb, ..., all, or none. Metrics always go to metrics.jsonl.")
    g.add_argument("--disable_tqdm", action="store_true", help="No progress bar.")

    from recurrent_mlm.hub import add_hub_arguments

    add_hub_arguments(p.add_argument_group("hub (--push_to_hub uploads the final folder; no checkpoints or logs)"),
                      with_token_flag=True)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    # `--recurrence none` must override a variant's recurrence, but argparse stores None as for "not given".
    args._recurrence_given = any(a == "--recurrence" or a.startswith("--recurrence=") for a in argv)
    _check_args(args)
    return args


def _check_args(args: argparse.Namespace) -> None:
    from recurrent_mlm.models.configuration_recurrent_mlm import ENCODER_TYPES, RECURRENCE_TYPES

    if bool(args.train_file) == bool(args.dataset_name):
        raise UsageError("give the training text with exactly one of --train_file or --dataset_name.")
    if args.validation_file and args.dataset_validation_split:
        raise UsageError("give held-out text with only one of --validation_file or --dataset_validation_split.")
    if args.model_name_or_path and args.config_name:
        raise UsageError("--model_name_or_path continues a pretrained model; --config_name starts a new one: give one.")
    if args.encoder_type is not None and args.encoder_type not in ENCODER_TYPES:
        raise UsageError(f"--encoder_type {args.encoder_type!r} is unknown; choose one of {', '.join(ENCODER_TYPES)}.")
    if args.recurrence not in RECURRENCE_TYPES:
        raise UsageError(f"--recurrence {args.recurrence!r} is unknown; choose none, simple or gated.")
    if not 0.0 < args.mlm_probability < 1.0:
        raise UsageError(f"--mlm_probability must be between 0 and 1 (exclusive), got {args.mlm_probability}.")
    if min(args.mask_replace_prob, args.random_replace_prob) < 0 or args.mask_replace_prob + args.random_replace_prob > 1:
        raise UsageError("--mask_replace_prob and --random_replace_prob must be >= 0 and add up to at most 1.")
    if args.max_seq_length < 8:
        raise UsageError(f"--max_seq_length must be at least 8, got {args.max_seq_length}.")
    if not 0 <= args.validation_split_percentage < 100:
        raise UsageError(f"--validation_split_percentage must be in [0, 100), got {args.validation_split_percentage}.")
    positive = (
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
        "logging_steps",
        "save_total_limit",
        "shuffle_buffer_size",
    )
    for name in positive:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    for name in ("max_train_steps", "eval_steps", "checkpointing_steps", "max_eval_samples", "vocab_size", "tokenizer_train_records"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}.")
    if args.vocab_size is not None and args.vocab_size < 16:
        raise UsageError(f"--vocab_size must be at least 16, got {args.vocab_size}.")
    if args.max_train_steps is None and not args.num_train_epochs > 0:
        raise UsageError(f"--num_train_epochs must be > 0, got {args.num_train_epochs}.")
    if args.streaming and args.max_train_steps is None:
        raise UsageError("--streaming has no epoch length: give --max_train_steps.")
    if args.learning_rate <= 0:
        raise UsageError(f"--learning_rate must be > 0, got {args.learning_rate}.")
    if not 0 <= args.warmup_ratio < 1:
        raise UsageError(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}.")
    if args.num_warmup_steps is not None and args.num_warmup_steps < 0:
        raise UsageError(f"--num_warmup_steps must be >= 0, got {args.num_warmup_steps}.")
    if args.resume_from_checkpoint and args.overwrite_output_dir:
        raise UsageError("--overwrite_output_dir would delete the run that --resume_from_checkpoint continues; drop one.")
    if args.push_to_hub:
        if not args.hub_model_id:
            raise UsageError("--push_to_hub needs --hub_model_id (e.g. your-name/recurrent-bert-mini).")
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
            raise UsageError("--push_to_hub with HF_HUB_OFFLINE set would fail after training; unset it or drop --push_to_hub.")
        from recurrent_mlm.hub import HubPushError, check_push_access

        try:  # a typo in the repo id or a bad token fails now, not after training
            args.hub_model_id = check_push_access(args.hub_model_id, token=args.hub_token)
        except HubPushError as err:
            raise UsageError(str(err)) from None
    args.report_to = _check_trackers(args.report_to)


def _check_trackers(report_to: list[str]) -> list[str]:
    names = [name.lower() for name in report_to]
    if names in (["none"], []):
        return []
    if "none" in names:
        raise UsageError("--report_to none cannot be combined with other trackers.")
    if names == ["all"]:
        return ["all"]
    from accelerate.utils import LoggerType

    known = {t.value for t in LoggerType}
    for name in names:
        if name not in known:
            raise UsageError(f"--report_to {name!r} is not an Accelerate tracker; choose from {', '.join(sorted(known))}.")
    if "tensorboard" in names:
        from accelerate.utils import is_tensorboard_available

        if not is_tensorboard_available():
            raise UsageError("--report_to tensorboard needs the tensorboard package: pip install 'recurrent-mlm[tensorboard]'.")
    return names


# ==========================================================================================================
# Model and tokenizer
# ==========================================================================================================
def _architecture_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = {name: getattr(args, name) for name in ARCHITECTURE_FLAGS if getattr(args, name) is not None}
    if args.recurrence is None and getattr(args, "_recurrence_given", False):
        fields["recurrence"] = None
    return fields


class ModelPlan:
    """Where the model comes from: 'pretrained' (our checkpoint), 'bert' (converted), 'config' or 'preset'."""

    def __init__(self, args: argparse.Namespace):
        from transformers import AutoConfig

        import recurrent_mlm  # noqa: F401  (registers the config with AutoConfig)

        self.args = args
        self.fields = _architecture_fields(args)
        self.dropout = {name: getattr(args, name) for name in DROPOUT_FLAGS if getattr(args, name) is not None}
        self.fixed_config = None  # a config whose vocabulary the tokenizer must fit
        if args.model_name_or_path:
            try:
                config = AutoConfig.from_pretrained(args.model_name_or_path)
            except (OSError, ValueError) as err:
                raise UsageError(
                    f"--model_name_or_path {args.model_name_or_path}: cannot read its config ({str(err).splitlines()[0]}); "
                    "give a folder written by save_pretrained (or a cached Hub id)."
                ) from None
            if config.model_type == "recurrent_mlm":
                if self.fields:
                    raise UsageError(
                        f"{', '.join('--' + k for k in self.fields)} shape a new model and cannot change the pretrained "
                        f"{args.model_name_or_path}; drop them, or start a new model with --config_name/--size."
                    )
                self.kind = "pretrained"
            elif config.model_type == "bert":
                extra = sorted(set(self.fields) - set(BERT_CONVERSION_FLAGS))
                if extra:
                    raise UsageError(
                        f"{', '.join('--' + k for k in extra)} cannot change a BERT checkpoint's layout; a conversion "
                        f"accepts only {', '.join('--' + k for k in BERT_CONVERSION_FLAGS)}."
                    )
                self.kind = "bert"
            else:
                raise UsageError(
                    f"--model_name_or_path {args.model_name_or_path} is a {config.model_type!r} model; give a "
                    "recurrent_mlm or BERT checkpoint."
                )
            self.fixed_config = config
        elif args.config_name:
            self.kind = "config"
            self.fixed_config = self._config_from_file()
        else:
            self.kind = "preset"

    def _config_from_file(self):
        from recurrent_mlm import RecurrentMLMConfig

        path = Path(self.args.config_name)
        if not path.exists():
            raise UsageError(f"--config_name {path} does not exist; give a JSON config file or a model folder.")
        try:
            base = RecurrentMLMConfig.get_config_dict(str(path))[0]
        except (OSError, ValueError) as err:
            raise UsageError(f"--config_name {path} is not a valid JSON config ({str(err).splitlines()[0]}).") from None
        base = {k: v for k, v in base.items() if k not in ("model_type", "architectures", "auto_map", "transformers_version")}
        return self._make_config(lambda **f: RecurrentMLMConfig(**{**base, **f}), {**self.fields, **self.dropout})

    @staticmethod
    def _make_config(factory, fields):
        try:
            return factory(**fields)
        except (ValueError, TypeError) as err:
            raise UsageError(f"invalid model configuration: {err}") from None

    def new_config(self, vocab_size: int):
        """The config of a new model with `vocab_size` (preset or file), checked by building it on 'meta'."""
        from recurrent_mlm.presets import preset_config

        args = self.args
        if self.kind == "config":
            config = self._config_from_file()
        else:
            fields = {**self.fields, **self.dropout}
            fields.setdefault("max_position_embeddings", 512)
            config = self._make_config(
                lambda **f: preset_config(
                    args.size, args.variant, vocab_size=vocab_size, match_parameters=not args.no_match_parameters, **f
                ),
                fields,
            )
        check_constructible(config)
        return config

    def max_positions(self) -> int:
        if self.fixed_config is not None:
            return int(self.fixed_config.max_position_embeddings)
        return int(self.fields.get("max_position_embeddings") or 512)

    def vocab_size(self) -> int | None:
        return int(self.fixed_config.vocab_size) if self.fixed_config is not None else None


def check_constructible(config) -> None:
    """Build the model on the meta device (no memory): an encoder that cannot be built fails here, before
    anything is written or trained."""
    from recurrent_mlm import RecurrentMLMForMaskedLM

    try:
        with torch.device("meta"):
            RecurrentMLMForMaskedLM(config)
    except (ValueError, NotImplementedError) as err:
        raise UsageError(f"cannot build this model: {err}") from None


def build_model(plan: ModelPlan, tokenizer, args: argparse.Namespace):
    """The model (float32, training mode) with a vocabulary that fits the tokenizer."""
    from recurrent_mlm import RecurrentMLMForMaskedLM

    extra = {"attn_implementation": args.attn_implementation} if args.attn_implementation else {}
    if plan.kind == "pretrained":
        model = RecurrentMLMForMaskedLM.from_pretrained(
            args.model_name_or_path, dtype=torch.float32, **plan.dropout, **extra
        )
    elif plan.kind == "bert":
        recurrence = plan.fields.get("recurrence")
        overrides = {k: v for k, v in plan.fields.items() if k != "recurrence"}
        model = RecurrentMLMForMaskedLM.from_bert(args.model_name_or_path, recurrence=recurrence, **overrides, **plan.dropout)
        if args.attn_implementation:
            model.set_attn_implementation(args.attn_implementation)
    else:
        config = plan.new_config(len(tokenizer)) if plan.kind == "preset" else plan.fixed_config
        if args.attn_implementation:
            config._attn_implementation = args.attn_implementation
        model = RecurrentMLMForMaskedLM(config)
    check_vocabulary(tokenizer, model.config.vocab_size, args.tokenizer_name or args.model_name_or_path or "trained on the corpus")
    return model.train()


def check_vocabulary(tokenizer, model_vocab: int, source: str) -> None:
    size = len(tokenizer)
    if size > model_vocab:
        raise UsageError(
            f"the tokenizer ({source}) has {size} tokens but the model's vocabulary has {model_vocab}: token ids "
            "would index past the embeddings. Use the tokenizer the model was trained with, or a new model "
            "(--config_name/--size) sized to this tokenizer."
        )
    if size < model_vocab:
        logger.warning(
            "the tokenizer has %d tokens and the model %d embedding rows; the last %d rows stay unused (fine for "
            "a padded vocabulary, a mistake otherwise).",
            size,
            model_vocab,
            model_vocab - size,
        )


def obtain_tokenizer(args, accelerator, source, plan: ModelPlan, resume_path: Path | None):
    """The run's tokenizer: from the checkpoint when resuming, an existing one, or trained on the corpus (by
    the main process, then sent to the others so every process has exactly the same vocabulary)."""
    from transformers import AutoTokenizer

    from recurrent_mlm.pretraining.corpus import tokenizer_training_texts
    from recurrent_mlm.pretraining.tokenizer import check_tokenizer, tokenizer_from_json, train_wordpiece_tokenizer

    name = None
    if resume_path is not None:
        name = str(resume_path)
    elif args.tokenizer_name:
        name = args.tokenizer_name
    elif args.model_name_or_path and _has_tokenizer(args.model_name_or_path):
        name = args.model_name_or_path
    elif args.model_name_or_path:
        raise UsageError(
            f"--model_name_or_path {args.model_name_or_path} has no tokenizer files; pass the tokenizer it was "
            "trained with as --tokenizer_name."
        )
    if name is not None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot load the tokenizer {name} ({str(err).splitlines()[0]}).") from None
        check_tokenizer(tokenizer, name)
        _check_same_everywhere(accelerator, tokenizer, name)
        return tokenizer, False

    vocab_size = args.vocab_size or plan.vocab_size() or DEFAULT_VOCAB_SIZE
    if plan.vocab_size() is not None and vocab_size > plan.vocab_size():
        raise UsageError(
            f"--vocab_size {vocab_size} is larger than the model's vocabulary ({plan.vocab_size()}); lower it."
        )
    limit = args.tokenizer_train_records or (100_000 if args.streaming else None)
    payload = [None]
    if accelerator.is_main_process:
        start = time.perf_counter()
        trained = train_wordpiece_tokenizer(
            tokenizer_training_texts(source, limit),
            vocab_size,
            lowercase=args.lowercase,
            min_frequency=args.tokenizer_min_frequency,
            model_max_length=args.max_seq_length,
        )
        logger.info(
            "trained a WordPiece tokenizer: %d tokens (asked for %d) in %.1f s", len(trained), vocab_size, time.perf_counter() - start
        )
        payload = [trained.backend_tokenizer.to_str()]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(payload, from_process=0)
    tokenizer = tokenizer_from_json(payload[0], lowercase=args.lowercase, model_max_length=args.max_seq_length)
    return tokenizer, True


def _check_same_everywhere(accelerator, tokenizer, name: str) -> None:
    """Every process must tokenize identically (machines may hold different copies of a tokenizer folder)."""
    if accelerator.num_processes == 1:
        return
    import hashlib

    from accelerate.utils import gather_object

    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    digests = gather_object([hashlib.sha256(vocab.encode()).hexdigest()])
    if len(set(digests)) > 1:
        raise UsageError(
            f"the processes loaded different tokenizers from {name}; give every machine the same tokenizer files."
        )


def _has_tokenizer(path: str) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"))


# ==========================================================================================================
# Training pieces
# ==========================================================================================================
def masked_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Correct top-1 predictions at labelled positions. `logits` is `(num_labelled, vocab)` (sparse head) or
    `(batch, seq, vocab)`."""
    selected = labels != -100
    if logits.dim() == 3:
        logits = logits[selected]
    return (logits.argmax(dim=-1) == labels[selected]).sum()


def train_step(window, *, accelerator, model, optimizer, scheduler, max_grad_norm: float):
    """One optimizer step over `window` (the micro-batches of one accumulation cycle).

    The loss is the sum of per-token losses over the window's masked tokens on all processes, divided by their
    total count. Accelerate divides each micro-batch loss by the accumulation steps and DDP averages gradients
    over processes; multiplying by both makes the gradient exactly that of the global token mean, independent
    of how the global batch is split. Returns device tensors (no host synchronisation)."""
    counts = torch.stack([(batch["labels"] != -100).sum() for batch in window])  # (micro_batches,)
    global_count = accelerator.reduce(counts.sum(), reduction="sum")
    scale = accelerator.num_processes * accelerator.gradient_accumulation_steps / global_count.clamp(min=1).float()
    loss_sum = torch.zeros((), device=counts.device)
    correct = torch.zeros((), dtype=torch.long, device=counts.device)
    grad_norm = None
    for index, batch in enumerate(window):
        with accelerator.accumulate(model):
            outputs = model(input_ids=batch["input_ids"], labels=batch["labels"])
            # mean -> sum over this micro-batch's masked tokens (a micro-batch with none has a NaN mean: 0)
            micro_sum = torch.nan_to_num(outputs.loss.float(), nan=0.0) * counts[index]
            accelerator.backward(micro_sum * scale)
            if accelerator.sync_gradients and max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += micro_sum.detach()
        with torch.no_grad():
            correct += masked_correct(outputs.logits.detach(), batch["labels"])
    learning_rate = optimizer.param_groups[0]["lr"]  # the rate this step used
    if not optimizer.step_was_skipped:  # fp16 overflow: the optimizer did not step, neither does the schedule
        scheduler.step()
    accelerator.unwrap_model(model, keep_torch_compile=False).project_recurrent_weights()
    return {"loss_sum": loss_sum, "correct": correct, "count": global_count, "grad_norm": grad_norm, "learning_rate": learning_rate}


@torch.no_grad()
def evaluate(model, dataloader, accelerator) -> dict[str, float]:
    """Token-weighted MLM loss and accuracy over the held-out blocks (each example counted once, however the
    blocks were spread over processes)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    for batch in dataloader:
        labels = batch["labels"]
        outputs = model(input_ids=batch["input_ids"], labels=labels, sparse_logits=True)
        selected = labels != -100
        target = labels[selected]
        token_loss = torch.nn.functional.cross_entropy(outputs.logits.float(), target, reduction="none")  # (num_labelled,)
        hits = (outputs.logits.argmax(dim=-1) == target).float()
        rows = selected.nonzero()[:, 0]  # example of each labelled token
        per_example = torch.zeros(labels.shape[0], 3, device=labels.device)  # (batch, [loss sum, count, correct])
        per_example.index_add_(0, rows, torch.stack([token_loss, torch.ones_like(token_loss), hits], dim=1))
        totals += accelerator.gather_for_metrics(per_example).sum(dim=0).double()
    model.train()
    loss_sum, count, correct = totals.tolist()
    count = max(count, 1.0)
    loss = loss_sum / count
    return {
        "eval_loss": loss,
        "eval_mlm_accuracy": correct / count,
        "eval_perplexity": math.exp(min(loss, 50.0)),
        "eval_masked_tokens": int(totals[1].item()),
    }


def flatten_recurrent_weights(model: torch.nn.Module) -> None:
    """cuDNN wants each LSTM's weights in one contiguous buffer; moving or wrapping a model breaks that."""
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.flatten_parameters()


def _tracker_config(args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as the scalar types TensorBoard's hparams accept."""
    out = {}
    for key, value in {**vars(args), **extra}.items():
        if key.startswith("_") or key == "hub_token":
            continue
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def _jsonable_args(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "hub_token"}


# ==========================================================================================================
# Main
# ==========================================================================================================
@dataclass
class Setup:
    """Everything a run needs, built and checked before anything is written."""

    source: Any
    data: Any
    tokenizer: Any
    trained_tokenizer: bool
    model: Any
    optimizer: Any
    scheduler: Any
    train_dataloader: Any
    eval_dataloader: Any
    resume_path: Path | None
    max_train_steps: int
    steps_per_epoch: int | None
    warmup_steps: int

    @property
    def num_epochs(self) -> int | None:
        return None if self.steps_per_epoch is None else math.ceil(self.max_train_steps / self.steps_per_epoch)


def make_accelerator(args: argparse.Namespace):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration, TorchDynamoPlugin

    output_dir = Path(args.output_dir)
    launched = _launched_world_size()
    accelerator = Accelerator(
        # Accumulation is counted in whole windows that `train_step` receives, so the plugin must not force a
        # sync at the end of the data loader.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=args.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        mixed_precision=args.mixed_precision,
        log_with=args.report_to or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / TRACKER_DIR)),
        dataloader_config=DataLoaderConfiguration(even_batches=True),
        step_scheduler_with_optimizer=False,
        dynamo_plugin=TorchDynamoPlugin(backend=args.torch_compile_backend) if args.torch_compile else None,
        # Several processes on a machine without GPUs: data-parallel on CPU (gloo) rather than N unrelated runs.
        cpu=launched > 1 and not _has_accelerator_device(),
    )
    _setup_logging(accelerator)
    if launched > 1 and accelerator.num_processes != launched:
        raise UsageError(
            f"{launched} processes were launched but Accelerate set up {accelerator.num_processes}; they would "
            "overwrite each other's output. Check the launcher's --num_processes and the Accelerate config."
        )
    if launched == 1 and _single_process_from_cpu_launch():
        logger.warning(
            "`accelerate launch --cpu` asked for several processes but only this one runs (Accelerate needs an MPI "
            "hostfile for more, and the launcher's arguments could not be read); for N data-parallel CPU processes "
            "use `accelerate launch --multi_gpu --num_processes N` (gloo on CPU) or `torchrun --nproc_per_node N`."
        )
    return accelerator


def prepare(args: argparse.Namespace, accelerator) -> Setup:
    """Check the input, then build tokenizer, model, data, optimizer and schedule. Raises `UsageError` for bad
    input; writes nothing (the `datasets` cache aside)."""
    from accelerate.utils import set_seed
    from transformers import get_scheduler

    from recurrent_mlm.pretraining.checkpointing import resolve_checkpoint
    from recurrent_mlm.pretraining.corpus import build_datasets, resolve_source

    output_dir = Path(args.output_dir)
    resume_path = None
    if args.resume_from_checkpoint:
        resume_path = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
    else:
        check_output_dir(output_dir, args.overwrite_output_dir)
    source = resolve_source(
        train_files=args.train_file,
        validation_files=args.validation_file,
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        dataset_split=args.dataset_split,
        dataset_validation_split=args.dataset_validation_split,
        text_column=args.text_column,
        streaming=args.streaming,
        cache_dir=args.cache_dir,
    )
    if source.train_report is not None:
        logger.info("training text: %s", source.train_report.describe())
    decode_note = source.decode_summary()
    if decode_note:
        logger.warning(decode_note)
    plan = ModelPlan(args)
    if args.max_seq_length > plan.max_positions():
        raise UsageError(
            f"--max_seq_length {args.max_seq_length} exceeds the model's {plan.max_positions()} positions "
            "(max_position_embeddings); lower --max_seq_length"
            + (" or raise --max_position_embeddings." if plan.kind == "preset" else " or use a model with more positions.")
        )
    if plan.kind in ("preset", "config"):
        plan.new_config(args.vocab_size or plan.vocab_size() or DEFAULT_VOCAB_SIZE)  # fail before training a tokenizer
    tokenizer, trained_tokenizer = obtain_tokenizer(args, accelerator, source, plan, resume_path)

    set_seed(args.seed)  # identical initialisation on every process
    model = build_model(plan, tokenizer, args)
    if args.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)  # the name since transformers 5.x
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    data = build_datasets(
        source,
        tokenizer,
        max_seq_length=args.max_seq_length,
        validation_split_percentage=args.validation_split_percentage,
        max_eval_samples=args.max_eval_samples,
        num_proc=args.preprocessing_num_workers,
        overwrite_cache=args.overwrite_cache,
        seed=args.seed,
        shuffle_buffer_size=args.shuffle_buffer_size,
        streaming_validation_records=args.streaming_validation_records,
        main_process_first=accelerator.main_process_first(),
    )
    logger.info(
        "blocks of %d tokens: %s for training, %d held out",
        args.max_seq_length,
        "streamed" if args.streaming else f"{len(data.train):,}",
        data.info["validation_blocks"],
    )
    train_dataloader, eval_dataloader = build_dataloaders(args, data, tokenizer, model.config.vocab_size)

    raw_optimizer = build_optimizer(
        model, args.learning_rate, weight_decay=args.weight_decay, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
    )
    if eval_dataloader is not None:
        model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
            model, raw_optimizer, train_dataloader, eval_dataloader
        )
    else:
        model, optimizer, train_dataloader = accelerator.prepare(model, raw_optimizer, train_dataloader)
    flatten_recurrent_weights(model)
    if accelerator.gradient_accumulation_steps != args.gradient_accumulation_steps:
        raise UsageError(
            f"the Accelerate/DeepSpeed config sets gradient_accumulation_steps={accelerator.gradient_accumulation_steps} "
            f"but --gradient_accumulation_steps is {args.gradient_accumulation_steps}; remove it from the config or "
            "make them equal."
        )

    accumulation = args.gradient_accumulation_steps
    steps_per_epoch = None if args.streaming else len(train_dataloader) // accumulation
    if steps_per_epoch == 0:
        raise UsageError(
            f"the training set has {len(data.train)} blocks, fewer than one optimizer step needs "
            f"({args.per_device_train_batch_size} per process x {accelerator.num_processes} processes x "
            f"{accumulation} accumulation steps); lower the batch size or give more text."
        )
    max_train_steps = args.max_train_steps or math.ceil(args.num_train_epochs * steps_per_epoch)
    warmup_steps = args.num_warmup_steps if args.num_warmup_steps is not None else math.ceil(args.warmup_ratio * max_train_steps)
    # Built on the raw optimizer and stepped by `train_step` once per optimizer step: the same schedule for any
    # number of processes (a prepared scheduler steps once per process per call).
    scheduler = get_scheduler(args.lr_scheduler_type, raw_optimizer, num_warmup_steps=warmup_steps, num_training_steps=max_train_steps)
    return Setup(
        source=source,
        data=data,
        tokenizer=tokenizer,
        trained_tokenizer=trained_tokenizer,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataloader=train_dataloader,
        eval_dataloader=eval_dataloader,
        resume_path=resume_path,
        max_train_steps=max_train_steps,
        steps_per_epoch=steps_per_epoch,
        warmup_steps=warmup_steps,
    )


def build_dataloaders(args: argparse.Namespace, data, tokenizer, model_vocab_size: int):
    """Training loader (masking at --mlm_probability, new masks every epoch) and held-out loader (fixed 15%)."""
    from torch.utils.data import DataLoader

    from recurrent_mlm.pretraining.masking import EVAL_MASK_SEED, EVAL_MLM_PROBABILITY, MLMCollator, MLMMasker
    from recurrent_mlm.pretraining.packing import EpochSampler
    from recurrent_mlm.pretraining.tokenizer import word_start_table

    common = dict(
        vocab_size=min(model_vocab_size, len(tokenizer)),
        mask_token_id=tokenizer.mask_token_id,
        special_ids=tokenizer.all_special_ids,
    )
    train_masker = MLMMasker(
        **common,
        mlm_probability=args.mlm_probability,
        mask_replace_prob=args.mask_replace_prob,
        random_replace_prob=args.random_replace_prob,
        whole_word_masking=args.whole_word_masking,
        word_start=word_start_table(tokenizer) if args.whole_word_masking else None,
    )
    eval_masker = MLMMasker(**common, mlm_probability=EVAL_MLM_PROBABILITY)
    loader_kwargs = dict(num_workers=args.dataloader_num_workers, pin_memory=torch.cuda.is_available())
    if args.streaming:
        train = DataLoader(
            data.train, batch_size=args.per_device_train_batch_size, drop_last=True, collate_fn=MLMCollator(train_masker, args.seed)
        )
    else:
        # The loaders get their own generators so that creating an iterator never draws from the global RNG
        # (which dropout uses): a resumed run must see the random stream of an uninterrupted one.
        train = DataLoader(
            data.train,
            batch_size=args.per_device_train_batch_size,
            sampler=EpochSampler(len(data.train), args.seed),
            drop_last=True,
            collate_fn=MLMCollator(train_masker, args.seed),
            generator=torch.Generator().manual_seed(args.seed),
            **loader_kwargs,
        )
    held_out = None
    if data.validation is not None:
        held_out = DataLoader(
            data.validation,
            batch_size=args.per_device_eval_batch_size,
            shuffle=False,
            collate_fn=MLMCollator(eval_masker, EVAL_MASK_SEED, fixed_epoch=0),
            generator=torch.Generator().manual_seed(EVAL_MASK_SEED),
            **loader_kwargs,
        )
    return train, held_out


class Trainer:
    """The training loop and its bookkeeping: position, metrics, evaluation, checkpoints, final outputs."""

    def __init__(self, args: argparse.Namespace, accelerator, setup: Setup, raw_argv: list[str]):
        from recurrent_mlm.pretraining.checkpointing import CheckpointManager

        self.args = args
        self.accelerator = accelerator
        self.setup = setup
        self.raw_argv = raw_argv
        self.output_dir = Path(args.output_dir)
        self.checkpoints = CheckpointManager(accelerator, self.output_dir, args.save_total_limit)
        self.metrics = JsonlLogger(self.output_dir / METRICS_FILE)
        self.global_step = self.epoch = self.batches_in_epoch = self.tokens_seen = 0
        self.last_eval: dict[str, float] | None = None
        self.last_eval_step = -1
        self.last_logged_loss = float("nan")
        self.train_runtime = 0.0
        self.accumulation = args.gradient_accumulation_steps
        self.tokens_per_step = args.per_device_train_batch_size * accelerator.num_processes * self.accumulation * args.max_seq_length
        self.num_parameters = sum(p.numel() for p in accelerator.unwrap_model(setup.model).parameters())

    # -- start ---------------------------------------------------------------------------------------------
    def resume(self) -> None:
        setup = self.setup
        if setup.resume_path is None:
            return
        state = self.checkpoints.load(setup.resume_path, model=setup.model, optimizer=setup.optimizer, scheduler=setup.scheduler)
        flatten_recurrent_weights(setup.model)
        self.global_step, self.epoch = int(state["global_step"]), int(state["epoch"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.batches_in_epoch = _resumed_position(state, self.args, self.accelerator.num_processes)
        if state.get("max_train_steps") != setup.max_train_steps:
            logger.warning(
                "the checkpoint's schedule had %s steps and this run has %d: the learning-rate schedule is "
                "recomputed for the new length.",
                state.get("max_train_steps"),
                setup.max_train_steps,
            )
        logger.info(
            "resumed from %s at step %d (epoch %d, %d batches into it)",
            setup.resume_path,
            self.global_step,
            self.epoch,
            self.batches_in_epoch,
        )

    def begin(self) -> None:
        """From here on the run writes to the output folder."""
        acc, args, setup = self.accelerator, self.args, self.setup
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if setup.resume_path is None:
                _remove_run_artifacts(self.output_dir)
            else:  # the steps after the checkpoint are trained again: drop their records
                kept = [r for r in self.metrics.read() if r.get("step", 0) <= self.global_step]
                atomic_write_text(self.metrics.path, "".join(json.dumps(r) + "\n" for r in kept))
            atomic_write_json(self.output_dir / ARGS_FILE, _jsonable_args(args))
        acc.wait_for_everyone()
        acc.init_trackers(
            "run_pretraining",
            config=_tracker_config(args, {"num_parameters": self.num_parameters, "max_train_steps_resolved": setup.max_train_steps}),
        )
        global_batch = args.per_device_train_batch_size * acc.num_processes * self.accumulation
        logger.info(
            "***** pretraining %s (%s parameters) *****\n  processes %d, global batch %d blocks (%d per process x %d "
            "accumulation), %d tokens per step\n  %d optimizer steps%s, warmup %d, peak lr %g (%s)",
            _describe_model(acc.unwrap_model(setup.model).config),
            f"{self.num_parameters:,}",
            acc.num_processes,
            global_batch,
            args.per_device_train_batch_size,
            self.accumulation,
            self.tokens_per_step,
            setup.max_train_steps,
            f" ({setup.steps_per_epoch} per epoch, {setup.num_epochs} epoch(s))" if setup.steps_per_epoch else "",
            setup.warmup_steps,
            args.learning_rate,
            args.lr_scheduler_type,
        )

    # -- loop ----------------------------------------------------------------------------------------------
    def train(self, signals: PreemptionSignals | None = None) -> None:
        """Train to the end, or up to the step at which `signals` reports a preemption signal (on any process)."""
        from tqdm.auto import tqdm

        from recurrent_mlm.pretraining.checkpointing import fault_point

        acc, args, setup = self.accelerator, self.args, self.setup
        progress = tqdm(
            total=setup.max_train_steps,
            initial=self.global_step,
            desc="pretraining",
            disable=args.disable_tqdm or not acc.is_local_main_process,
            dynamic_ncols=True,
        )
        stats = _zero_stats(acc.device)
        start = interval_start = time.perf_counter()
        interval_steps = 0
        setup.model.train()
        while self.global_step < setup.max_train_steps:
            if setup.num_epochs is not None and self.epoch >= setup.num_epochs:
                break
            steps_this_epoch = 0
            for window in self._windows():
                result = train_step(
                    window,
                    accelerator=acc,
                    model=setup.model,
                    optimizer=setup.optimizer,
                    scheduler=setup.scheduler,
                    max_grad_norm=args.max_grad_norm,
                )
                self.batches_in_epoch += self.accumulation
                self.global_step += 1
                self.tokens_seen += self.tokens_per_step
                steps_this_epoch += 1
                interval_steps += 1
                progress.update(1)
                for key in ("loss_sum", "correct", "count"):
                    stats[key] += result[key]
                stats["learning_rate"] = result["learning_rate"]
                if result["grad_norm"] is not None:
                    stats["grad_norm"] = result["grad_norm"]

                if self.global_step % args.logging_steps == 0 or self.global_step == setup.max_train_steps:
                    record = _log_record(acc, stats, self.global_step, self.epoch, self.tokens_seen)
                    record["tokens_per_second"] = interval_steps * self.tokens_per_step / max(time.perf_counter() - interval_start, 1e-9)
                    self.last_logged_loss = record["loss"]
                    if acc.is_main_process:
                        self.metrics.log(record)
                    acc.log({k: v for k, v in record.items() if k != "step"}, step=self.global_step)
                    progress.set_postfix(
                        loss=f"{record['loss']:.3f}", lr=f"{record['learning_rate']:.2e}", tok_s=f"{record['tokens_per_second']:.0f}"
                    )
                    stats = _zero_stats(acc.device)
                    interval_start, interval_steps = time.perf_counter(), 0
                if args.eval_steps and self.global_step % args.eval_steps == 0:
                    self.evaluate()
                    interval_start = time.perf_counter()  # tokens/s measures training only
                if args.checkpointing_steps and self.global_step % args.checkpointing_steps == 0:
                    self.save_checkpoint()
                    interval_start = time.perf_counter()
                fault_point("step_end", step=self.global_step)
                if self.global_step >= setup.max_train_steps:
                    break
                if signals is not None and signals.agreed(acc):
                    break
            if self.global_step >= setup.max_train_steps or (signals is not None and signals.received is not None):
                break
            if steps_this_epoch == 0 and self.batches_in_epoch == 0:  # only a stream can be this short
                raise UsageError(
                    "the training data yields less than one optimizer step per epoch; give more text or lower "
                    "--per_device_train_batch_size / --gradient_accumulation_steps."
                )
            self.epoch += 1
            self.batches_in_epoch = 0
        progress.close()
        self.train_runtime = time.perf_counter() - start

    def _windows(self):
        """The rest of the current epoch as windows of `gradient_accumulation_steps` micro-batches; an
        incomplete last window is dropped (like `drop_last`), so every step sees the same global batch."""
        acc, loader = self.accelerator, self.setup.train_dataloader
        loader.set_epoch(self.epoch)
        if self.batches_in_epoch:  # resuming inside an epoch: the same order, minus what was trained on
            loader = acc.skip_first_batches(loader, self.batches_in_epoch)
            loader.set_epoch(self.epoch)
        batches = iter(loader)
        while True:
            window = [batch for _, batch in zip(range(self.accumulation), batches)]
            if len(window) < self.accumulation:
                return
            yield window

    def evaluate(self) -> dict[str, float] | None:
        acc = self.accelerator
        if self.setup.eval_dataloader is None:
            return None
        results = evaluate(self.setup.model, self.setup.eval_dataloader, acc)
        if acc.is_main_process:
            self.metrics.log({"step": self.global_step, "epoch": self.epoch, **results})
        acc.log({k: v for k, v in results.items() if k != "eval_masked_tokens"}, step=self.global_step)
        logger.info(
            "step %d: held-out loss %.4f, MLM accuracy %.4f, perplexity %.2f",
            self.global_step,
            results["eval_loss"],
            results["eval_mlm_accuracy"],
            results["eval_perplexity"],
        )
        self.last_eval, self.last_eval_step = results, self.global_step
        return results

    def trainer_state(self) -> dict[str, Any]:
        args = self.args
        return {
            "global_step": self.global_step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "tokens_seen": self.tokens_seen,
            "max_train_steps": self.setup.max_train_steps,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": self.accumulation,
            "max_seq_length": args.max_seq_length,
            "seed": args.seed,
            "mlm_probability": args.mlm_probability,
        }

    def stop_on_signal(self, signum: int) -> int:
        """Preempted: save the full training state (unless this step was just saved) and return 128 + signum."""
        import signal

        name = signal.Signals(signum).name
        acc, args = self.accelerator, self.args
        if args.checkpointing_steps and self.global_step % args.checkpointing_steps == 0 and self.global_step > 0:
            path = self.checkpoints.output_dir / f"checkpoint-{self.global_step}"
        else:
            path = self.save_checkpoint()
        acc.end_training()
        if acc.is_main_process:
            print(
                f"{name} received: stopped after step {self.global_step} of {self.setup.max_train_steps} and saved the "
                f"training state to {path.resolve()}; run the same command with --resume_from_checkpoint latest to "
                "continue.",
                file=sys.stderr,
                flush=True,
            )
        return 128 + signum

    def save_checkpoint(self) -> Path:
        setup = self.setup
        return self.checkpoints.save(
            self.global_step,
            model=setup.model,
            optimizer=setup.optimizer,
            scheduler=setup.scheduler,
            tokenizer=setup.tokenizer,
            trainer_state=self.trainer_state(),
        )

    # -- end -----------------------------------------------------------------------------------------------
    def finish(self) -> int:
        """Final evaluation, model + tokenizer + results + plot + card, optional push. Returns the exit status."""
        from accelerate.utils import DistributedType

        from recurrent_mlm.pretraining.checkpointing import apply_umask

        acc, args, setup, output_dir = self.accelerator, self.args, self.setup, self.output_dir
        if self.last_eval_step != self.global_step:
            self.evaluate()
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(setup.model, keep_torch_compile=False)
        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        state_dict = acc.get_state_dict(setup.model) if sharded else None  # a collective under FSDP/DeepSpeed
        unwrapped.save_pretrained(
            output_dir, is_main_process=acc.is_main_process, save_function=acc.save, state_dict=state_dict, safe_serialization=True
        )
        results: dict[str, Any] = {
            **(self.last_eval or {}),
            "train_loss": self.last_logged_loss,
            "train_steps": self.global_step,
            "train_tokens": self.tokens_seen,
            "train_runtime_seconds": self.train_runtime,
            "num_parameters": self.num_parameters,
            "num_processes": acc.num_processes,
            "corpus": setup.data.info,
            "lines_decoded_with_replacement": setup.source.replaced_lines(),
        }
        if acc.is_main_process:
            setup.tokenizer.save_pretrained(output_dir)
            atomic_write_json(output_dir / RESULTS_FILE, results)
            _write_plot(output_dir, self.metrics.read(), _describe_model(unwrapped.config))
            _write_card(output_dir, unwrapped.config, args, results, setup.source.label, setup.trained_tokenizer, self.raw_argv)
            apply_umask(output_dir, recursive=False)
        acc.wait_for_everyone()
        acc.end_training()  # also tears down the process group: no collective after this line
        if not acc.is_main_process:
            return 0
        status = self._push() if args.push_to_hub else 0
        summary = ""
        if self.last_eval:
            summary = (
                f" (held-out loss {self.last_eval['eval_loss']:.4f}, MLM accuracy "
                f"{self.last_eval['eval_mlm_accuracy']:.4f}, perplexity {self.last_eval['eval_perplexity']:.2f})"
            )
        print(f"Saved the pretrained model to {output_dir.resolve()}{summary}", flush=True)
        return status

    def _push(self) -> int:
        from recurrent_mlm.hub import HubPushError, push_output_dir

        args = self.args
        try:
            url = push_output_dir(
                self.output_dir,
                args.hub_model_id,
                token=args.hub_token,
                revision=args.hub_revision,
                private=True if args.hub_private else None,
                commit_message=f"Pretrained with run_pretraining.py ({self.global_step} steps)",
            )
        except HubPushError as err:  # the model is safe on disk: say so and how to retry, do not lose the run
            print(
                f"error: {err} The model is saved in {self.output_dir}: push it later with "
                f"`python -m recurrent_mlm.hub push {self.output_dir} --hub_model_id {args.hub_model_id}`.",
                file=sys.stderr,
            )
            return 1
        logger.info("pushed to %s", url)
        return 0


@run_cli
def main(argv: list[str] | None = None) -> int:
    if (code := relaunch_cpu_processes(__file__, argv)) is not None:  # `accelerate launch --cpu` started 1 of N
        return code
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    from recurrent_mlm.cpu import tune_cpu_allocator

    tune_cpu_allocator()  # large CPU temporaries are reused, not page-faulted in every step (RMLM_MALLOC_TUNING=0 to skip)
    accelerator = make_accelerator(args)
    trainer = Trainer(args, accelerator, prepare(args, accelerator), raw_argv)
    trainer.resume()
    trainer.begin()
    with PreemptionSignals(enabled=not args.no_checkpoint_on_signal) as signals:
        trainer.train(signals)
    if signals.received is not None:
        return trainer.stop_on_signal(signals.received)
    return trainer.finish()


class PreemptionSignals:
    """SIGTERM / SIGUSR1 (what SLURM, Kubernetes and torchrun send before killing a job) set a flag instead of
    killing the run; the loop checks it after each optimizer step. Processes agree through a max-reduce, so a
    signal that reaches one process stops them all at the same step. The first signal restores the previous
    handlers, so a second one acts as it normally would. Only the main thread can install handlers; elsewhere
    (or with `enabled=False`) this does nothing."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionSignals:
        import signal
        import threading

        if self.enabled and threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGUSR1"):
                if hasattr(signal, name):
                    signum = getattr(signal, name)
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()

    def agreed(self, accelerator) -> bool:
        """True on every process once any process has received a signal (a collective when there are several)."""
        if not self.enabled:
            return False
        if accelerator.num_processes > 1:
            flag = torch.tensor([0 if self.received is None else self.received], device=accelerator.device)
            agreed = int(accelerator.reduce(flag, reduction="max").item())
            if agreed and self.received is None:
                self.received = agreed
                self._restore()
        return self.received is not None


def _launched_world_size() -> int:
    """Processes started by the launcher (torchrun / accelerate launch / MPI), before Accelerate looks."""
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def _has_accelerator_device() -> bool:
    accelerator_api = getattr(torch, "accelerator", None)
    if accelerator_api is not None and hasattr(accelerator_api, "is_available"):
        return bool(accelerator_api.is_available())
    return torch.cuda.is_available()


def _single_process_from_cpu_launch() -> bool:
    """`accelerate launch --cpu --num_processes N>1` without MPI sets MASTER_ADDR but starts one process."""
    env = os.environ
    return env.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and "MASTER_ADDR" in env and "WORLD_SIZE" not in env


def _setup_logging(accelerator) -> None:
    import datasets
    import transformers

    # Other libraries stay at WARNING; our loggers say what the run does.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    level = logging.INFO if accelerator.is_main_process else logging.ERROR
    logger.setLevel(level)
    logging.getLogger("recurrent_mlm").setLevel(level)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        transformers.utils.logging.set_verbosity_warning()
    else:
        datasets.utils.logging.set_verbosity_error()
        datasets.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()


def _zero_stats(device) -> dict[str, Any]:
    return {
        "loss_sum": torch.zeros((), device=device),
        "correct": torch.zeros((), dtype=torch.long, device=device),
        "count": torch.zeros((), dtype=torch.long, device=device),
        "grad_norm": None,
        "learning_rate": float("nan"),
    }


def _log_record(accelerator, stats, step: int, epoch: int, tokens_seen: int) -> dict[str, Any]:
    """Token-weighted loss and accuracy over the logging interval, summed over processes."""
    local = torch.stack([stats["loss_sum"].double(), stats["correct"].double()])
    loss_sum, correct = accelerator.reduce(local, reduction="sum").tolist()
    count = max(float(stats["count"].item()), 1.0)  # already global
    record = {
        "step": step,
        "epoch": epoch,
        "loss": loss_sum / count,
        "mlm_accuracy": correct / count,
        "learning_rate": stats["learning_rate"],
        "tokens_seen": tokens_seen,
    }
    if stats["grad_norm"] is not None:
        record["grad_norm"] = float(stats["grad_norm"])
    return record


def _resumed_position(state: dict[str, Any], args: argparse.Namespace, num_processes: int) -> int:
    """Batches (per process) to skip in the resumed epoch. The position is kept in samples, so a run resumed
    with another process count or batch size continues from the same sample when the numbers divide."""
    for key in ("max_seq_length", "seed"):
        if state.get(key) != getattr(args, key):
            logger.warning(
                "the checkpoint was trained with --%s %s and this run uses %s: the data order and blocks differ "
                "from an uninterrupted run.",
                key,
                state.get(key),
                getattr(args, key),
            )
    samples = int(state["batches_in_epoch"]) * int(state["per_device_train_batch_size"]) * int(state["world_size"])
    per_batch = args.per_device_train_batch_size * num_processes
    if samples % per_batch:
        logger.warning(
            "the resumed epoch position (%d samples) is not a whole number of this run's batches (%d): %d samples "
            "of the epoch are skipped twice or not at all.",
            samples,
            per_batch,
            samples % per_batch,
        )
    return samples // per_batch


def _remove_run_artifacts(output_dir: Path) -> None:
    import shutil

    from recurrent_mlm.pretraining.checkpointing import CHECKPOINT_PREFIX

    for path in output_dir.iterdir():
        if path.name in RUN_ARTIFACTS or path.name.startswith(CHECKPOINT_PREFIX) or path.name.startswith("." + CHECKPOINT_PREFIX):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _describe_model(config) -> str:
    parts = [f"encoder={config.encoder_type}"]
    if config.recurrence:
        parts.append(f"recurrence={config.recurrence}")
    if getattr(config, "share_layers", False):
        parts.append("shared layers")
    parts.append(f"{config.num_hidden_layers}x{config.hidden_size}")
    parts.append(f"vocab {config.vocab_size}")
    return ", ".join(parts)


def _write_plot(output_dir: Path, records: list[dict[str, Any]], title: str) -> None:
    from recurrent_mlm.pretraining.plotting import plot_training_curves

    try:
        plot_training_curves(records, output_dir / PLOT_FILE, title=title)
    except Exception as err:  # a figure must never cost the trained model
        logger.warning("could not draw %s: %s", PLOT_FILE, err)


def _write_card(output_dir, config, args, results, dataset_label, trained_tokenizer, raw_argv) -> None:
    from recurrent_mlm.model_card import write_model_card

    metrics = {k: results[k] for k in ("eval_loss", "eval_mlm_accuracy", "eval_perplexity") if k in results}
    training = {
        "objective": f"masked language modelling, {args.mlm_probability:.0%} of tokens predicted "
        f"({args.mask_replace_prob:.0%} [MASK] / {args.random_replace_prob:.0%} random / rest unchanged)"
        + (", whole words" if args.whole_word_masking else ""),
        "optimizer steps": results["train_steps"],
        "tokens seen": f"{results['train_tokens']:,}",
        "sequence length": args.max_seq_length,
        "global batch (blocks)": args.per_device_train_batch_size * results["num_processes"] * args.gradient_accumulation_steps,
        "learning rate": f"{args.learning_rate:g} ({args.lr_scheduler_type}, AdamW, weight decay {args.weight_decay:g})",
        "tokenizer": "WordPiece trained on the corpus" if trained_tokenizer else (args.tokenizer_name or args.model_name_or_path),
        "parameters": f"{results['num_parameters']:,}",
    }
    command = "python run_pretraining.py " + " ".join(_quote(a) for a in _redact(raw_argv))
    extra = {
        "Evaluation": "Held-out blocks are scored with a fixed 15% masking (80/10/10) and a fixed seed, so these "
        "numbers compare across runs and model variants trained on the same data, tokenizer and sequence length.",
        "Command": f"```\n{command}\n```",
    }
    try:
        write_model_card(
            output_dir,
            config=config,
            pipeline_tag="fill-mask",
            metrics=metrics,
            dataset=dataset_label if args.dataset_name else None,
            base_model=args.model_name_or_path,
            training=training,
            extra_sections=extra,
        )
    except Exception as err:  # the card is documentation: never fail a finished run on it
        logger.warning("could not write the model card: %s", err)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _redact(argv: list[str]) -> list[str]:
    """The command line without the value of --hub_token (the card is public)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            out.append("***")
            skip = False
        elif arg == "--hub_token":
            out.append(arg)
            skip = True
        elif arg.startswith("--hub_token="):
            out.append("--hub_token=***")
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
