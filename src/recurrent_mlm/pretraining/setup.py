"""Building a pretraining run from its arguments: the model (new, continued, or converted from BERT), the
tokenizer (existing or trained on the corpus), the data loaders, the optimizer and schedule, the Accelerator.

Everything here checks its input before anything is written, and raises `UsageError` for bad input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..cli import UsageError, check_output_dir, check_process_count, check_writable, has_accelerator_device, launched_world_size, setup_logging
from ..optim import build_optimizer, build_scheduler, warmup_steps
from .arguments import BERT_CONVERSION_FIELDS, DEFAULT_VOCAB_SIZE, PretrainingArguments

logger = logging.getLogger("recurrent_mlm.pretraining")

TRACKER_DIR = "runs"


class ModelPlan:
    """Where the model comes from: 'pretrained' (our checkpoint), 'bert' (converted), 'config' or 'preset'."""

    def __init__(self, args: PretrainingArguments):
        from transformers import AutoConfig

        import recurrent_mlm  # noqa: F401  (registers the config with AutoConfig)

        self.args = args
        self.fields = args.architecture_fields()
        self.dropout = args.dropout_fields()
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
                extra = sorted(set(self.fields) - set(BERT_CONVERSION_FIELDS))
                if extra:
                    raise UsageError(
                        f"{', '.join('--' + k for k in extra)} cannot change a BERT checkpoint's layout; a conversion "
                        f"accepts only {', '.join('--' + k for k in BERT_CONVERSION_FIELDS)}."
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
        if not getattr(self, "_keys_checked", False):
            warn_unknown_config_keys(base, path)
            self._keys_checked = True
        # A file that leaves the vocabulary at the default gets the tokenizer's size (see `build_model`).
        self.config_sets_vocab = "vocab_size" in base
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
            if not self.config_sets_vocab:
                config.vocab_size = vocab_size
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
        """The vocabulary the model has already (a checkpoint, or a config file that sets it); None when the
        tokenizer decides."""
        if self.fixed_config is None or (self.kind == "config" and not self.config_sets_vocab):
            return None
        return int(self.fixed_config.vocab_size)


def warn_unknown_config_keys(values: dict[str, Any], path: Path) -> None:
    """A misspelled field in a config file would silently keep its default: name it and the nearest field."""
    import difflib

    from ..models.configuration_recurrent_mlm import RecurrentMLMConfig

    known = set(RecurrentMLMConfig().to_dict()) | {"id2label", "label2id", "num_labels", "dtype", "torch_dtype"}
    for key in sorted(set(values) - known):
        near = difflib.get_close_matches(key, sorted(known), n=1)
        logger.warning(
            "--config_name %s sets %r, which is not a field of RecurrentMLMConfig%s; it is ignored.",
            path,
            key,
            f" (did you mean {near[0]!r}?)" if near else "",
        )


def check_constructible(config) -> None:
    """Build the model on the meta device (no memory): an encoder that cannot be built fails here, before
    anything is written or trained."""
    from recurrent_mlm import RecurrentMLMForMaskedLM

    try:
        with torch.device("meta"):
            RecurrentMLMForMaskedLM(config)
    except (ValueError, NotImplementedError) as err:
        raise UsageError(f"cannot build this model: {err}") from None


def build_model(plan: ModelPlan, tokenizer, args: PretrainingArguments):
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
        config = plan.fixed_config
        if plan.kind == "preset" or not plan.config_sets_vocab:
            config = plan.new_config(len(tokenizer))  # sized to the tokenizer
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

    from .corpus import tokenizer_training_texts
    from .tokenizer import check_tokenizer, tokenizer_from_json, train_wordpiece_tokenizer

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


def make_accelerator(args: PretrainingArguments):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, ProjectConfiguration, TorchDynamoPlugin

    output_dir = Path(args.output_dir)
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
        cpu=launched_world_size() > 1 and not has_accelerator_device(),
    )
    setup_logging(accelerator, logger)
    check_process_count(accelerator, logger)
    return accelerator


def prepare(args: PretrainingArguments, accelerator) -> Setup:
    """Check the input, then build tokenizer, model, data, optimizer and schedule. Raises `UsageError` for bad
    input; writes nothing (the `datasets` cache aside)."""
    from accelerate.utils import set_seed

    from .checkpointing import latest_checkpoint, resolve_checkpoint
    from .corpus import build_datasets, resolve_source

    output_dir = Path(args.output_dir)
    resume_path = None
    if args.resume_from_checkpoint:
        resume_path = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
        check_writable(output_dir)
    else:
        newest = latest_checkpoint(output_dir) if not args.overwrite_output_dir else None
        if newest is not None:
            raise UsageError(
                f"--output_dir {output_dir} holds the checkpoints of an earlier run (newest: {newest.name}); pass "
                "--resume_from_checkpoint latest to continue it, or --overwrite_output_dir to start afresh (which "
                "deletes them)."
            )
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
    check_decoding(source, args.max_replaced_line_fraction)
    plan = ModelPlan(args)
    if plan.kind == "preset":
        logger.info("building a new model: %s", args.new_model_description())
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
    warmup = warmup_steps(max_train_steps, args.warmup_ratio, args.num_warmup_steps)
    if warmup > max_train_steps:
        raise UsageError(
            f"--num_warmup_steps {warmup} is longer than the run ({max_train_steps} optimizer steps): the learning "
            "rate would never reach its peak. Lower it or use --warmup_ratio."
        )
    # Built on the raw optimizer and stepped by `train_step` once per optimizer step: the same schedule for any
    # number of processes (a prepared scheduler steps once per process per call).
    scheduler = build_scheduler(raw_optimizer, args.lr_scheduler_type, warmup=warmup, total_steps=max_train_steps)
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
        warmup_steps=warmup,
    )


def check_decoding(source, max_fraction: float) -> None:
    """Refuse a corpus whose lines are mostly not UTF-8 (binary files, a wrong encoding): trained on, it would
    teach the model replacement characters."""
    for flag, report in (("--train_file", source.train_report), ("--validation_file", source.validation_report)):
        if report is None or not report.decode.lines:
            continue
        fraction = report.decode.replaced_lines / report.decode.lines
        if fraction > max_fraction:
            raise UsageError(
                f"{flag}: {report.decode.replaced_lines:,} of {report.decode.lines:,} lines ({fraction:.0%}) are not "
                f"valid UTF-8 (more than --max_replaced_line_fraction {max_fraction:g}); the files look binary or "
                "mis-encoded. Convert them to UTF-8, or raise --max_replaced_line_fraction to train on them anyway."
            )


def build_dataloaders(args: PretrainingArguments, data, tokenizer, model_vocab_size: int):
    """Training loader (masking at --mlm_probability, new masks every epoch) and held-out loader (fixed 15%)."""
    from torch.utils.data import DataLoader

    from .masking import EVAL_MASK_SEED, EVAL_MLM_PROBABILITY, MLMCollator, MLMMasker
    from .packing import EpochSampler
    from .tokenizer import word_start_table

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


def flatten_recurrent_weights(model: torch.nn.Module) -> None:
    """cuDNN wants each LSTM's weights in one contiguous buffer; moving or wrapping a model breaks that."""
    for module in model.modules():
        if isinstance(module, torch.nn.RNNBase):
            module.flatten_parameters()

