"""Ready-made `run_pretraining.py` command lines (the demo's, kept here so the demo, the docs and the tests use
one definition)."""

from __future__ import annotations

import os

# A small recurrent BERT (Lei et al. 2022's simple recurrence in every layer) at the "tiny" size (2 layers,
# hidden 128), a 4096-token WordPiece vocabulary trained on the bundled corpus, 128-token blocks, 800 steps
# of 32 blocks (~5.7 epochs of the corpus). About 3 minutes on 2 CPU cores; evaluates every 200 steps on 256 held-out blocks.
DEMO_STEPS = 800


def demo_args(
    output_dir: str | os.PathLike,
    *,
    train_file: str | os.PathLike = "data/corpus",
    max_train_steps: int = DEMO_STEPS,
    eval_steps: int = 200,
    max_eval_samples: int = 256,
    extra: list[str] | None = None,
) -> list[str]:
    """Arguments of `run_pretraining.py` for the demo pretraining run (without the program name)."""
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


__all__ = ["DEMO_STEPS", "demo_args"]
