"""The arguments of a pretraining run: one dataclass, the flags of `run_pretraining.py`, a recipe file's keys.

    from recurrent_mlm.pretraining import PretrainingArguments, pretrain
    result = pretrain(PretrainingArguments(train_file=["data/corpus"], output_dir="out", size="tiny",
                                           variant="recurrent_bert", max_train_steps=100))

`validate()` checks everything that can be checked without reading data (ranges, combinations, trackers,
Hub access) and raises `UsageError` with one line naming the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..cli import UsageError, arg, check_finite, check_hub_arguments, check_trackers, given
from ..models.configuration_recurrent_mlm import (
    ENCODER_TYPES,
    POOLING_TYPES,
    RECURRENCE_DIRECTIONS,
    SEQUENTIAL_COMBINE,
)
from ..presets import SIZES
from ..variants import VARIANTS

DEFAULT_VOCAB_SIZE = 8192
SCHEDULERS = ("linear", "cosine", "constant_with_warmup")
MIXED_PRECISION = ("no", "fp16", "bf16")
RECURRENCE_CHOICES = ("none", "simple", "gated")

# Fields that shape a new model; None means "not given" (the preset or variant decides).
ARCHITECTURE_FIELDS = (
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
    "sequential_tie_directions",
    "pooling",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)
# Of those, what a BERT checkpoint conversion accepts (the layout stays BERT's).
BERT_CONVERSION_FIELDS = (
    "recurrence",
    "recurrence_layers",
    "recurrence_hidden_size",
    "recurrence_chunk_size",
    "recurrence_direction",
)
DROPOUT_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")

_DATA = "data"
_TOKENIZER = "tokenizer"
_MASKING = "masking"
_MODEL = "model (a new one from --size/--variant/--config_name, or --model_name_or_path)"
_OPTIM = "optimisation"
_LOGGING = "logging, evaluation, checkpoints"
_HUB = "hub (--push_to_hub uploads the final folder; no checkpoints or logs)"


@dataclass
class PretrainingArguments:
    """Everything a pretraining run takes. Each field is also a flag of `run_pretraining.py` and a key of a
    recipe file (see `DataclassArgumentParser`)."""

    # -- data ----------------------------------------------------------------------------------------------
    train_file: list[str] | None = arg(None, "Training text: files or folders of .txt, .jsonl/.json or .csv (optionally .gz). A .txt file is one document; each JSON/CSV row is one.", group=_DATA)
    validation_file: list[str] | None = arg(None, "Held-out text (same formats). Default: hold out --validation_split_percentage of the training blocks.", group=_DATA)
    dataset_name: str | None = arg(None, "A `datasets` dataset instead of files: a Hub id or a local dataset folder.", group=_DATA)
    dataset_config_name: str | None = arg(None, "Configuration of --dataset_name.", group=_DATA)
    dataset_split: str = arg("train", "Split of --dataset_name to train on.", group=_DATA)
    dataset_validation_split: str | None = arg(None, "Split of --dataset_name to evaluate on (e.g. 'validation').", group=_DATA)
    text_column: str = arg("text", "Column holding the text in JSON/CSV files and datasets.", group=_DATA)
    validation_split_percentage: float = arg(5.0, "Percent of the training blocks held out for evaluation when there is no validation file/split (0: none). The held-out blocks do not depend on --seed.", group=_DATA)
    max_eval_samples: int | None = arg(None, "Evaluate on at most this many held-out blocks.", group=_DATA)
    streaming: bool = arg(False, "Read the corpus as a stream (for corpora larger than memory or disk cache). Needs --max_train_steps.", group=_DATA)
    shuffle_buffer_size: int = arg(10_000, "With --streaming: records shuffled in a buffer of this size.", group=_DATA)
    streaming_validation_records: int = arg(1000, "With --streaming and no validation file/split: hold out the first N records.", group=_DATA)
    max_seq_length: int = arg(128, "Tokens per packed block, [CLS] and [SEP] included. At most the model's max_position_embeddings.", group=_DATA)
    max_replaced_line_fraction: float = arg(0.05, "Refuse a corpus in which more than this fraction of the lines is not valid UTF-8 (read with replacement characters): such text is usually binary or mis-encoded. 1 accepts anything.", group=_DATA)
    preprocessing_num_workers: int | None = arg(None, "Processes for tokenizing the corpus.", group=_DATA)
    dataloader_num_workers: int = arg(0, "Data-loader worker processes (masking happens there).", group=_DATA)
    cache_dir: str | None = arg(None, "Where `datasets` caches the read and tokenized corpus (default: its own cache).", group=_DATA)
    overwrite_cache: bool = arg(False, "Re-tokenize even if a cached result exists.", group=_DATA)

    # -- tokenizer -----------------------------------------------------------------------------------------
    tokenizer_name: str | None = arg(None, "An existing tokenizer (folder or Hub id). Default: the model's, or a WordPiece tokenizer trained on the corpus.", group=_TOKENIZER)
    vocab_size: int | None = arg(None, f"Vocabulary size of a tokenizer trained on the corpus (default: the model config's, else {DEFAULT_VOCAB_SIZE}).", group=_TOKENIZER)
    lowercase: bool = arg(True, "Lowercase (and strip accents) in a trained tokenizer, like bert-base-uncased.", group=_TOKENIZER)
    tokenizer_min_frequency: int = arg(2, "Minimum count of a merge in a trained tokenizer.", group=_TOKENIZER)
    tokenizer_train_records: int | None = arg(None, "Train the tokenizer on the first N records only (default: all; 100000 with --streaming).", group=_TOKENIZER)

    # -- masking -------------------------------------------------------------------------------------------
    mlm_probability: float = arg(0.15, "Fraction of tokens to predict (0.15 as BERT; 0.3 as MosaicBERT/ModernBERT).", group=_MASKING)
    mask_replace_prob: float = arg(0.8, "Of the predicted tokens, the fraction replaced by [MASK].", group=_MASKING)
    random_replace_prob: float = arg(0.1, "Of the predicted tokens, the fraction replaced by a random token (the rest stay unchanged).", group=_MASKING)
    whole_word_masking: bool = arg(False, "Predict whole words: all pieces of a chosen word.", group=_MASKING)

    # -- model ---------------------------------------------------------------------------------------------
    model_name_or_path: str | None = arg(None, "Continue pretraining from a recurrent-mlm checkpoint, or from a BERT checkpoint (converted; --recurrence upcycles it).", group=_MODEL)
    config_name: str | None = arg(None, "A JSON config file for a new model (flags below override its fields).", group=_MODEL)
    size: str = arg("mini", "Size preset of a new model (BERT miniatures of Turc et al., base, large).", group=_MODEL, choices=list(SIZES))
    variant: str | None = arg(None, "Named encoder variant of a new model; without it (and without --encoder_type/--recurrence) the model is the plain BERT baseline (variant bert). See README's variant table.", group=_MODEL, choices=list(VARIANTS))
    no_match_parameters: bool = arg(False, "Do not solve the variant's free width to BERT's parameter count at this size.", group=_MODEL)
    encoder_type: str | None = arg(None, f"Encoder of a new model: {', '.join(ENCODER_TYPES)}.", group=_MODEL)
    recurrence: str | None = arg(None, "Recurrent sublayer: none, simple (Lei et al. 2022) or gated (overrides the variant's).", group=_MODEL, type=str.lower, choices=list(RECURRENCE_CHOICES))
    share_layers: bool | None = arg(None, "One layer applied at every depth (Universal Transformer).", group=_MODEL)
    num_attention_layers: int | None = arg(None, "Attention layers on top of an lstm/recurrent encoder.", group=_MODEL)
    recurrence_layers: list[int] | None = arg(None, "Indices of the layers that get the recurrent sublayer (default: all).", group=_MODEL)
    recurrence_hidden_size: int | None = arg(None, "Inner width of the recurrent sublayer (default: BERT's FFN parameter count).", group=_MODEL)
    recurrence_chunk_size: int | None = arg(None, "The lag k of the recurrence c_t = f(c_{t-k}, x_t): k interleaved chains, L/k sequential steps (default 1).", group=_MODEL)
    recurrence_direction: str | None = arg(None, "Direction of the recurrence.", group=_MODEL, choices=list(RECURRENCE_DIRECTIONS))
    lstm_hidden_size: int | None = arg(None, "LSTM width per direction.", group=_MODEL)
    lstm_max_singular_value: float | None = arg(None, "Project LSTM recurrent matrices to this spectral norm after each step.", group=_MODEL)
    sequential_combine: str | None = arg(None, "How a sequential Transformer combines its directions.", group=_MODEL, choices=list(SEQUENTIAL_COMBINE))
    sequential_tie_directions: bool | None = arg(None, "A sequential Transformer uses one stack for both directions (each then has the full depth).", group=_MODEL)
    pooling: str | None = arg(None, "Pooler summary.", group=_MODEL, choices=list(POOLING_TYPES))
    hidden_size: int | None = arg(None, "Override the preset's hidden size.", group=_MODEL)
    num_hidden_layers: int | None = arg(None, "Override the preset's depth.", group=_MODEL)
    num_attention_heads: int | None = arg(None, "Override the preset's attention heads.", group=_MODEL)
    intermediate_size: int | None = arg(None, "Override the preset's feed-forward width.", group=_MODEL)
    max_position_embeddings: int | None = arg(None, "Positions of a new model (default 512).", group=_MODEL)
    hidden_dropout_prob: float | None = arg(None, "Dropout on hidden states (default: the config's, 0.1).", group=_MODEL)
    attention_probs_dropout_prob: float | None = arg(None, "Dropout on attention probabilities (default: the config's, 0.1).", group=_MODEL)
    attn_implementation: str | None = arg(None, "Attention kernel (default: transformers' choice).", group=_MODEL, choices=["eager", "sdpa"])

    # -- optimisation --------------------------------------------------------------------------------------
    output_dir: str | None = arg(None, "Where the model, tokenizer, metrics, plots and checkpoints go.", group=_OPTIM, required=True)
    overwrite_output_dir: bool = arg(False, "Allow a non-empty --output_dir (an earlier run's checkpoints, metrics and logs there are removed).", group=_OPTIM)
    seed: int = arg(42, "Seed of initialisation, data order, masking and dropout.", group=_OPTIM)
    per_device_train_batch_size: int = arg(32, "Blocks per process per micro-batch.", group=_OPTIM)
    per_device_eval_batch_size: int = arg(64, "Blocks per process per evaluation batch.", group=_OPTIM)
    gradient_accumulation_steps: int = arg(1, "Micro-batches per optimizer step.", group=_OPTIM)
    learning_rate: float = arg(5e-4, "Peak learning rate (AdamW).", group=_OPTIM)
    weight_decay: float = arg(0.01, "Decoupled weight decay (not on biases and norms).", group=_OPTIM)
    adam_beta1: float = arg(0.9, "AdamW beta1.", group=_OPTIM)
    adam_beta2: float = arg(0.98, "AdamW beta2 (RoBERTa's 0.98).", group=_OPTIM)
    adam_epsilon: float = arg(1e-6, "AdamW epsilon.", group=_OPTIM)
    max_grad_norm: float = arg(1.0, "Clip the global gradient norm (0: no clipping).", group=_OPTIM)
    lr_scheduler_type: str = arg("linear", "Decay after warmup.", group=_OPTIM, choices=list(SCHEDULERS))
    num_warmup_steps: int | None = arg(None, "Warmup optimizer steps (overrides --warmup_ratio).", group=_OPTIM)
    warmup_ratio: float = arg(0.06, "Warmup as a fraction of the optimizer steps.", group=_OPTIM)
    num_train_epochs: float = arg(1.0, "Epochs over the training blocks (ignored with --max_train_steps).", group=_OPTIM)
    max_train_steps: int | None = arg(None, "Optimizer steps to train for (overrides --num_train_epochs).", group=_OPTIM)
    mixed_precision: str | None = arg(None, "Autocast precision (default: the Accelerate config's).", group=_OPTIM, choices=list(MIXED_PRECISION))
    gradient_checkpointing: bool = arg(False, "Recompute activations in the backward pass (less memory, ~30% slower).", group=_OPTIM)
    torch_compile: bool = arg(False, "Compile the model with torch.compile (through Accelerate).", group=_OPTIM)
    torch_compile_backend: str = arg("inductor", "torch.compile backend with --torch_compile.", group=_OPTIM)

    # -- logging, evaluation, checkpoints ------------------------------------------------------------------
    logging_steps: int = arg(10, "Log training metrics every N optimizer steps.", group=_LOGGING)
    eval_steps: int | None = arg(None, "Evaluate every N optimizer steps (always at the end).", group=_LOGGING)
    early_stopping_patience: int | None = arg(None, "Stop when the held-out loss has not improved for N evaluations in a row (needs --eval_steps and held-out data; the final model is the last one, not the best).", group=_LOGGING)
    checkpointing_steps: int | None = arg(None, "Save the full training state every N optimizer steps.", group=_LOGGING)
    save_total_limit: int = arg(2, "Keep only the newest N checkpoints.", group=_LOGGING)
    resume_from_checkpoint: str | None = arg(None, "'latest' (newest checkpoint in --output_dir) or a checkpoint folder.", group=_LOGGING)
    resume_with_changed_settings: bool = arg(False, "Resume although settings that change the numbers differ from the checkpoint's (warns instead of refusing; the run then differs from an uninterrupted one).", group=_LOGGING)
    no_checkpoint_on_signal: bool = arg(False, "Do not save a checkpoint when SIGTERM or SIGUSR1 arrives (by default the run finishes its step, saves the full state, and exits with 128 + the signal number; a second signal stops it at once).", group=_LOGGING)
    report_to: list[str] = arg(["none"], "Accelerate trackers: tensorboard, wandb, ..., all, or none. Metrics always go to metrics.jsonl.", group=_LOGGING)
    disable_tqdm: bool = arg(False, "No progress bar.", group=_LOGGING)

    # -- hub -----------------------------------------------------------------------------------------------
    push_to_hub: bool = arg(False, "Push the output folder to the Hub at the end.", group=_HUB)
    hub_model_id: str | None = arg(None, "Repo to push to: 'user-or-org/model-name'.", group=_HUB)
    hub_revision: str | None = arg(None, "Branch to push to (created from main if missing; default main).", group=_HUB)
    hub_private: bool = arg(False, "Create the repo private (or make an existing public repo private).", group=_HUB, flags=("--hub_private", "--hub_private_repo"))
    hub_token: str | None = arg(None, "Hub token with write access. Prefer the HF_TOKEN variable or `hf auth login`: a token on the command line ends up in shell histories and process listings.", group=_HUB)

    # -- derived -------------------------------------------------------------------------------------------
    def architecture_fields(self) -> dict[str, Any]:
        """The architecture fields that were given, as config values (`recurrence="none"` -> None)."""
        fields = {}
        for name in ARCHITECTURE_FIELDS:
            value = getattr(self, name)
            if name == "recurrence":
                if value is not None:
                    fields[name] = None if value == "none" else value
            elif value is not None:
                fields[name] = value
        return fields

    def dropout_fields(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in DROPOUT_FIELDS if getattr(self, name) is not None}

    def validate(self) -> PretrainingArguments:
        """Check the arguments (no data is read); normalises `report_to` and `hub_model_id`. Returns self."""
        if bool(self.train_file) == bool(self.dataset_name):
            raise UsageError("give the training text with exactly one of --train_file or --dataset_name.")
        if not self.output_dir:
            raise UsageError("--output_dir is required: the folder where the model, metrics and checkpoints go.")
        if self.validation_file and self.dataset_validation_split:
            raise UsageError("give held-out text with only one of --validation_file or --dataset_validation_split.")
        if self.model_name_or_path and self.config_name:
            raise UsageError("--model_name_or_path continues a pretrained model; --config_name starts a new one: give one.")
        if self.size not in SIZES:
            raise UsageError(f"--size {self.size!r} is unknown; choose one of {', '.join(SIZES)}.")
        if self.variant is not None and self.variant not in VARIANTS:
            raise UsageError(f"--variant {self.variant!r} is unknown; choose one of {', '.join(VARIANTS)}.")
        if self.encoder_type is not None and self.encoder_type not in ENCODER_TYPES:
            raise UsageError(f"--encoder_type {self.encoder_type!r} is unknown; choose one of {', '.join(ENCODER_TYPES)}.")
        if self.recurrence is not None and self.recurrence not in RECURRENCE_CHOICES:
            raise UsageError(f"--recurrence {self.recurrence!r} is unknown; choose none, simple or gated.")
        if not 0.0 < self.mlm_probability < 1.0:  # also catches NaN
            raise UsageError(f"--mlm_probability must be between 0 and 1 (exclusive), got {self.mlm_probability}.")
        for name in ("mask_replace_prob", "random_replace_prob"):
            check_finite(name, getattr(self, name), low=0, high=1)
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise UsageError("--mask_replace_prob and --random_replace_prob must be >= 0 and add up to at most 1.")
        if self.max_seq_length < 8:
            raise UsageError(f"--max_seq_length must be at least 8, got {self.max_seq_length}.")
        check_finite("validation_split_percentage", self.validation_split_percentage, low=0, high=100, high_open=True)
        check_finite("max_replaced_line_fraction", self.max_replaced_line_fraction, low=0, high=1)
        positive = (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_total_limit",
            "shuffle_buffer_size",
            "tokenizer_min_frequency",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1, got {getattr(self, name)}.")
        optional_positive = (
            "max_train_steps",
            "eval_steps",
            "checkpointing_steps",
            "max_eval_samples",
            "vocab_size",
            "tokenizer_train_records",
            "early_stopping_patience",
            "preprocessing_num_workers",
        )
        for name in optional_positive:
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name} must be at least 1, got {value}.")
        for name in ("dataloader_num_workers", "streaming_validation_records"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} cannot be negative, got {getattr(self, name)}.")
        if not 0 <= self.seed < 2**32:
            raise UsageError(f"--seed must be in [0, 2**32), got {self.seed}.")
        if self.vocab_size is not None and self.vocab_size < 16:
            raise UsageError(f"--vocab_size must be at least 16, got {self.vocab_size}.")
        if self.max_train_steps is None:
            check_finite("num_train_epochs", self.num_train_epochs, low=0, low_open=True)
        if self.streaming and self.max_train_steps is None:
            raise UsageError("--streaming has no epoch length: give --max_train_steps.")
        check_finite("learning_rate", self.learning_rate, low=0, low_open=True)
        check_finite("weight_decay", self.weight_decay, low=0)
        check_finite("adam_beta1", self.adam_beta1, low=0, high=1, high_open=True)
        check_finite("adam_beta2", self.adam_beta2, low=0, high=1, high_open=True)
        check_finite("adam_epsilon", self.adam_epsilon, low=0, low_open=True)
        check_finite("max_grad_norm", self.max_grad_norm, low=0)
        check_finite("warmup_ratio", self.warmup_ratio, low=0, high=1, high_open=True)
        if self.num_warmup_steps is not None and self.num_warmup_steps < 0:
            raise UsageError(f"--num_warmup_steps must be >= 0, got {self.num_warmup_steps}.")
        if self.max_train_steps is not None and self.num_warmup_steps is not None and self.num_warmup_steps > self.max_train_steps:
            raise UsageError(
                f"--num_warmup_steps {self.num_warmup_steps} is longer than the run ({self.max_train_steps} steps): the "
                "learning rate would never reach its peak. Lower it or use --warmup_ratio."
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            check_finite(name, getattr(self, name), low=0, high=1, high_open=True)
        check_finite("lstm_max_singular_value", self.lstm_max_singular_value, low=0, low_open=True)
        if self.early_stopping_patience is not None and not self.eval_steps:
            raise UsageError("--early_stopping_patience counts evaluations: give --eval_steps too.")
        if self.resume_from_checkpoint and self.overwrite_output_dir:
            raise UsageError("--overwrite_output_dir would delete the run that --resume_from_checkpoint continues; drop one.")
        self.report_to = check_trackers(self.report_to)
        check_hub_arguments(self)
        return self

    def new_model_description(self) -> str:
        """How the log names a new model built from the preset flags."""
        variant = self.variant or ("bert" if not (self.encoder_type or self.recurrence) else None)
        if variant is not None:
            return f"variant {variant} ({VARIANTS[variant].title}) at size {self.size}"
        return f"a custom encoder at size {self.size}"

    def was_given(self, name: str) -> bool:
        return given(self, name)


__all__ = [
    "PretrainingArguments",
    "DEFAULT_VOCAB_SIZE",
    "SCHEDULERS",
    "MIXED_PRECISION",
    "ARCHITECTURE_FIELDS",
    "BERT_CONVERSION_FIELDS",
    "DROPOUT_FIELDS",
]
