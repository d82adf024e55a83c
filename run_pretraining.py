#!/usr/bin/env python
"""Pretrain a recurrent-mlm masked language model with Accelerate (one CPU, one or many GPUs, many machines).

    python run_pretraining.py --train_file data/corpus --output_dir outputs/mlm --size mini --variant recurrent_bert
    python run_pretraining.py recipe.yaml --seed 2                        # a recipe file; flags override it
    accelerate launch --num_processes 2 run_pretraining.py ...            # data-parallel (add --cpu for gloo on CPU)
    accelerate launch --config_file configs/accelerate/fsdp.yaml ...     # an Accelerate config file

The engine is `recurrent_mlm.pretraining.pretrain(PretrainingArguments(...))`; this script parses the flags (or
a YAML/JSON recipe), calls it, and exits with its code: 0 done, 1 the Hub push failed (the model is saved),
2 bad input (one line on stderr, nothing written), 128 + N stopped by signal N after saving a checkpoint.
See docs/pretraining.md for every flag, data formats, resuming, and multi-node launches.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parent / "src"
if (_SRC / "recurrent_mlm").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # a checkout runs its own code, installed or not

from recurrent_mlm.cli import DataclassArgumentParser, portable_path, quote_command, relaunch_cpu_processes, run_cli  # noqa: E402
from recurrent_mlm.pretraining.arguments import PretrainingArguments  # noqa: E402


def build_parser() -> DataclassArgumentParser:
    return DataclassArgumentParser(
        PretrainingArguments,
        prog="run_pretraining.py",
        description=__doc__.split("\n\n")[0],
        epilog="A first argument ending in .yaml/.yml/.json is a recipe of these arguments (keys: the flag names "
        "without dashes); flags after it override its values. See docs/pretraining.md.",
    )


@run_cli
def main(argv: list[str] | None = None) -> int:
    if (code := relaunch_cpu_processes(__file__, argv)) is not None:  # `accelerate launch --cpu` started 1 of N
        return code
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse(raw_argv)
    from recurrent_mlm.pretraining import pretrain

    command = "python run_pretraining.py " + quote_command(portable_path(a) for a in raw_argv)
    return pretrain(args, command=command).exit_code


if __name__ == "__main__":
    sys.exit(main())
