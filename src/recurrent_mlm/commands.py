"""The `recurrent-mlm` command: every pipeline of the package, installed with it (no clone needed).

    recurrent-mlm pretrain ...     the same as `python run_pretraining.py ...` (the same code)
    recurrent-mlm glue ...         the same as `python run_glue.py ...`
    recurrent-mlm tokenizer ...    train one WordPiece vocabulary for many runs (a shared tokenizer)
    recurrent-mlm probes ...       python -m recurrent_mlm.probes
    recurrent-mlm study ...        python -m recurrent_mlm.study
    recurrent-mlm hub push ...     python -m recurrent_mlm.hub
    recurrent-mlm convert-bert ... convert (and upcycle) a BERT checkpoint

`accelerate launch $(which recurrent-mlm) pretrain ...` launches it like the script.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .cli import (
    DataclassArgumentParser,
    UsageError,
    arg,
    check_finite,
    check_output_dir,
    portable_path,
    quote_command,
    relaunch_cpu_processes,
    run_cli,
)

EPILOG = (
    "A first argument ending in .yaml/.yml/.json is a recipe of these arguments (keys: the flag names without "
    "dashes); flags after it override its values."
)


def pretraining_parser(prog: str = "run_pretraining.py") -> DataclassArgumentParser:
    from .pretraining.arguments import PretrainingArguments

    return DataclassArgumentParser(
        PretrainingArguments,
        prog=prog,
        description="Pretrain a recurrent-mlm masked language model with Accelerate (one CPU, one or many GPUs, "
        "many machines).",
        epilog=EPILOG + " See docs/pretraining.md.",
    )


def glue_parser(prog: str = "run_glue.py") -> DataclassArgumentParser:
    from .glue.arguments import GlueArguments

    return DataclassArgumentParser(
        GlueArguments,
        prog=prog,
        description="Fine-tune any sequence-classification model on GLUE or your own data, and study how stable "
        "fine-tuning is across learning rates and seeds.",
        epilog=EPILOG + " See docs/glue.md.",
    )


@run_cli
def pretrain_command(argv: list[str] | None = None, *, script: str | None = None, prog: str = "run_pretraining.py") -> int:
    """`run_pretraining.py` / `recurrent-mlm pretrain`: parse, run `pretrain`, return its exit code."""
    if (code := relaunch_cpu_processes(script or sys.argv[0], argv)) is not None:  # `accelerate launch --cpu`: 1 of N
        return code
    raw = list(sys.argv[1:] if argv is None else argv)
    args = pretraining_parser(prog).parse(raw)
    from .pretraining import pretrain

    return pretrain(args, command=f"python {prog} " + quote_command(portable_path(a) for a in raw)).exit_code


@run_cli
def glue_command(argv: list[str] | None = None, *, script: str | None = None, prog: str = "run_glue.py") -> int:
    """`run_glue.py` / `recurrent-mlm glue`: parse, run `run_glue`, return its exit code."""
    if (code := relaunch_cpu_processes(script or sys.argv[0], argv)) is not None:
        return code
    raw = list(sys.argv[1:] if argv is None else argv)
    args = glue_parser(prog).parse(raw)
    from .glue.runner import run_glue

    return run_glue(args, command=f"python {prog} " + quote_command(portable_path(a) for a in raw)).exit_code


# ----------------------------------------------------------------------------------------------------------
# A shared tokenizer
# ----------------------------------------------------------------------------------------------------------
@dataclass
class TokenizerArguments:
    """Train one WordPiece vocabulary on a corpus, for many pretraining runs (`--tokenizer_name` then points at
    it, so every model of a comparison tokenizes the same way)."""

    train_file: list[str] | None = arg(None, "Corpus files or folders (the formats of run_pretraining.py).")
    dataset_name: str | None = arg(None, "A `datasets` dataset instead of files.")
    dataset_config_name: str | None = arg(None, "Configuration of --dataset_name.")
    dataset_split: str = arg("train", "Split of --dataset_name.")
    text_column: str = arg("text", "Column holding the text in JSON/CSV files and datasets.")
    vocab_size: int = arg(8192, "Vocabulary size, special tokens included.")
    lowercase: bool = arg(True, "Lowercase (and strip accents), like bert-base-uncased.")
    min_frequency: int = arg(2, "Minimum count of a merge.")
    train_records: int | None = arg(None, "Train on the first N records only (default: all).")
    model_max_length: int = arg(512, "The tokenizer's model_max_length.")
    max_replaced_line_fraction: float = arg(0.05, "Refuse a corpus with more than this fraction of non-UTF-8 lines.")
    output_dir: str | None = arg(None, "Where the tokenizer files go.", required=True)
    overwrite_output_dir: bool = arg(False, "Replace the contents of a non-empty --output_dir.")


def train_shared_tokenizer(args: TokenizerArguments) -> Path:
    """Train and save the tokenizer; returns its folder. Raises `UsageError` for bad input (nothing written)."""
    import time

    from .pretraining.corpus import resolve_source, tokenizer_training_texts
    from .pretraining.setup import check_decoding
    from .pretraining.tokenizer import train_wordpiece_tokenizer

    if bool(args.train_file) == bool(args.dataset_name):
        raise UsageError("give the text with exactly one of --train_file or --dataset_name.")
    if args.vocab_size < 16:
        raise UsageError(f"--vocab_size must be at least 16, got {args.vocab_size}.")
    if args.min_frequency < 1 or (args.train_records is not None and args.train_records < 1):
        raise UsageError("--min_frequency and --train_records must be at least 1.")
    check_finite("max_replaced_line_fraction", args.max_replaced_line_fraction, low=0, high=1)
    output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)
    source = resolve_source(
        train_files=args.train_file,
        validation_files=None,
        dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name,
        dataset_split=args.dataset_split,
        text_column=args.text_column,
    )
    check_decoding(source, args.max_replaced_line_fraction)
    start = time.perf_counter()
    tokenizer = train_wordpiece_tokenizer(
        tokenizer_training_texts(source, args.train_records),
        args.vocab_size,
        lowercase=args.lowercase,
        min_frequency=args.min_frequency,
        model_max_length=args.model_max_length,
    )
    tokenizer.save_pretrained(output_dir)
    print(
        f"Saved a WordPiece tokenizer of {len(tokenizer)} tokens (asked for {args.vocab_size}) to {output_dir} "
        f"in {time.perf_counter() - start:.1f} s; pass --tokenizer_name {output_dir} to every run that shares it."
    )
    return output_dir


@run_cli
def tokenizer_command(argv: list[str] | None = None, *, prog: str = "recurrent-mlm tokenizer") -> int:
    parser = DataclassArgumentParser(TokenizerArguments, prog=prog, description=TokenizerArguments.__doc__.split("\n\n")[0])
    train_shared_tokenizer(parser.parse(argv))
    return 0


# ----------------------------------------------------------------------------------------------------------
# recurrent-mlm
# ----------------------------------------------------------------------------------------------------------
def _module_main(module: str):
    def run(argv: list[str]) -> int:
        import importlib

        return importlib.import_module(module).main(argv)

    return run


def _convert(argv: list[str]) -> int:
    from .convert import main as convert_main

    convert_main(argv)
    return 0


SUBCOMMANDS = {
    "pretrain": ("pretrain a masked LM (run_pretraining.py)", lambda argv: pretrain_command(argv, prog="recurrent-mlm pretrain", script=sys.argv[0])),
    "glue": ("fine-tune, or sweep learning rates x seeds (run_glue.py)", lambda argv: glue_command(argv, prog="recurrent-mlm glue", script=sys.argv[0])),
    "tokenizer": ("train a shared WordPiece tokenizer", lambda argv: tokenizer_command(argv)),
    "probes": ("agreement, recall and memory probes", _module_main("recurrent_mlm.probes.__main__")),
    "study": ("re-test the papers' claims", _module_main("recurrent_mlm.study.__main__")),
    "hub": ("push an output folder to the Hub", _module_main("recurrent_mlm.hub")),
    "convert-bert": ("convert (and upcycle) a BERT checkpoint", _convert),
}


def main(argv: list[str] | None = None) -> int:
    explicit = argv is not None  # called from Python: no relaunch of `accelerate launch --cpu` processes
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        width = max(len(name) for name in SUBCOMMANDS)
        print("usage: recurrent-mlm COMMAND [ARGS ...]   (recurrent-mlm COMMAND --help for its arguments)\n")
        for name, (text, _) in SUBCOMMANDS.items():
            print(f"  {name:<{width}}  {text}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(SUBCOMMANDS)}.", file=sys.stderr)
        return 2
    if name in ("pretrain", "glue") and not explicit:  # the relaunch (accelerate launch --cpu) reads sys.argv
        sys.argv = [sys.argv[0], *rest]
        rest = None
    return SUBCOMMANDS[name][1](rest)


__all__ = [
    "main",
    "pretrain_command",
    "glue_command",
    "tokenizer_command",
    "pretraining_parser",
    "glue_parser",
    "TokenizerArguments",
    "train_shared_tokenizer",
]
