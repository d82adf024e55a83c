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

from recurrent_mlm.commands import pretrain_command, pretraining_parser  # noqa: E402


def build_parser():
    return pretraining_parser("run_pretraining.py")


def main(argv: list[str] | None = None) -> int:
    """The command line (the same code as `recurrent-mlm pretrain`)."""
    return pretrain_command(argv, script=__file__, prog="run_pretraining.py")


if __name__ == "__main__":
    sys.exit(main())
