"""Building blocks of `run_pretraining.py`: reading and packing text, tokenizer training, MLM masking,
checkpoints, and the training-curve plot. The script wires them to Accelerate."""

from .checkpointing import CheckpointManager, latest_checkpoint, list_checkpoints, resolve_checkpoint
from .data import DecodeStats, file_records, resolve_data_files, scan_files
from .masking import EVAL_MASK_SEED, EVAL_MLM_PROBABILITY, IGNORE_INDEX, MLMCollator, MLMMasker
from .packing import EpochSampler, PackedBlocks, StreamingBlocks, TokenStream, tokenize_dataset
from .plotting import plot_training_curves
from .tokenizer import train_wordpiece_tokenizer, word_start_table

__all__ = [
    "CheckpointManager",
    "DecodeStats",
    "EVAL_MASK_SEED",
    "EVAL_MLM_PROBABILITY",
    "EpochSampler",
    "IGNORE_INDEX",
    "MLMCollator",
    "MLMMasker",
    "PackedBlocks",
    "StreamingBlocks",
    "TokenStream",
    "file_records",
    "latest_checkpoint",
    "list_checkpoints",
    "plot_training_curves",
    "resolve_checkpoint",
    "resolve_data_files",
    "scan_files",
    "tokenize_dataset",
    "train_wordpiece_tokenizer",
    "word_start_table",
]
