#!/usr/bin/env python
"""Fine-tune any sequence-classification model on GLUE or your own data, and study how stable fine-tuning is
across learning rates and seeds.

One run (the model, tokenizer, metrics, per-example results, model card and, with --do_predict, the GLUE
submission files land in --output_dir):

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
(or `accelerate config`) sets autocast. A YAML/JSON recipe of these arguments may come first (flags after it
override it). The engine is `recurrent_mlm.glue.run_glue(GlueArguments(...))`; exit codes: 0 done, 2 bad input
(one line, nothing written), 130 interrupted (finished sweep runs are kept). See docs/glue.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if (ROOT / "src" / "recurrent_mlm").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a clone without installing the package

from recurrent_mlm.commands import glue_command, glue_parser  # noqa: E402


def build_parser():
    return glue_parser("run_glue.py")


def main(argv: list[str] | None = None) -> int:
    """The command line (the same code as `recurrent-mlm glue`)."""
    return glue_command(argv, script=__file__, prog="run_glue.py")


if __name__ == "__main__":
    sys.exit(main())
