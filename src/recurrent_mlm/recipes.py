"""Ready-made command lines: a small recurrent BERT pretrained on the bundled corpus, and a small stability
study of it on the bundled SST-2 sample. The docs show them and the tests run them, so the commands a reader
copies are the commands that are tested. (The main job, scripts/demo.py, runs the study's `demo` tier.)"""

from __future__ import annotations

import os

# A small recurrent BERT (Lei et al. 2022's simple recurrence in every layer) at the "tiny" size (2 layers,
# hidden 128), a 4096-token WordPiece vocabulary trained on the bundled corpus, 128-token blocks, 800 steps
# of 32 blocks (~5.7 epochs of the corpus). About 3 minutes on 2 CPU cores; evaluates every 200 steps on 256 held-out blocks.
STEPS = 800


def pretraining_argv(
    output_dir: str | os.PathLike,
    *,
    train_file: str | os.PathLike = "data/corpus",
    max_train_steps: int = STEPS,
    eval_steps: int = 200,
    max_eval_samples: int = 256,
    extra: list[str] | None = None,
) -> list[str]:
    """Arguments of `run_pretraining.py` for a small recurrent BERT on the bundled corpus (the docs' example;
    without the program name)."""
    return [
        "--train_file", str(train_file),
        "--output_dir", str(output_dir),
        "--size", "tiny",
        "--variant", "recurrent_bert",
        "--vocab_size", "4096",
        "--max_seq_length", "128",
        "--per_device_train_batch_size", "32",
        "--learning_rate", "2e-3",
        "--max_train_steps", str(max_train_steps),
        "--logging_steps", "10",
        "--eval_steps", str(eval_steps),
        "--max_eval_samples", str(max_eval_samples),
        "--seed", "0",
        *(extra or []),
    ]  # fmt: skip



# A model pretrained for a minute on a CPU is far from BERT: it needs larger learning rates than the usual
# 2e-5, and the grid brackets the range where such small models learn without diverging.
LEARNING_RATES = ("3e-4", "1e-3", "3e-3")
SEEDS = ("1", "2")


def glue_argv(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    glue_dir: str | os.PathLike = "data/glue_demo",
    label: str | None = None,
) -> list[str]:
    """Arguments of run_glue.py for the demo: SST-2 (2,000 training rows, the full 872-row dev set), 3
    learning rates x 2 seeds, 2 epochs each, resumable in `output_dir`. `label` names the model in the report
    (default: its folder name)."""
    return [
        "--model_name_or_path", str(model_dir),
        *(["--model_labels", label] if label else []),
        "--task_name", "sst2",
        "--glue_dir", str(glue_dir),
        "--learning_rates", *LEARNING_RATES,
        "--seeds", *SEEDS,
        "--num_train_epochs", "2",
        "--per_device_train_batch_size", "32",
        "--max_seq_length", "64",
        "--output_dir", str(output_dir),
    ]  # fmt: skip



__all__ = ["STEPS", "LEARNING_RATES", "SEEDS", "pretraining_argv", "glue_argv"]
