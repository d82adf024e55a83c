"""The main job's fine-tuning step: a small stability study of a freshly pretrained model on `data/glue_demo`.

`scripts/demo.py` runs `python run_glue.py *demo_arguments(model_dir, output_dir)`; the tests run the same
arguments on a tiny model, so the command the README shows is the command that is tested.
"""

from __future__ import annotations

import os

# A model pretrained for a minute on a CPU is far from BERT: it needs larger learning rates than the usual
# 2e-5, and the grid brackets the range where such small models learn without diverging.
DEMO_LEARNING_RATES = ("3e-4", "1e-3", "3e-3")
DEMO_SEEDS = ("1", "2")


def demo_arguments(
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
        "--learning_rates", *DEMO_LEARNING_RATES,
        "--seeds", *DEMO_SEEDS,
        "--num_train_epochs", "2",
        "--per_device_train_batch_size", "32",
        "--max_seq_length", "64",
        "--output_dir", str(output_dir),
    ]  # fmt: skip


__all__ = ["DEMO_LEARNING_RATES", "DEMO_SEEDS", "demo_arguments"]
