"""MLM pretraining: `pretrain(PretrainingArguments(...))` runs a whole pretraining (what `run_pretraining.py`
does), built from reading and packing text, tokenizer training, MLM masking, pickle-free checkpoints and the
training-curve plot.

Modules: `arguments` (the run's arguments), `setup` (model, tokenizer, data, optimizer), `trainer` (the loop and
a whole run), `corpus` (a data source to packed blocks), `readers` (text files to records), `packing`,
`masking`, `tokenizer`, `checkpointing`, `plotting`.
"""

from .arguments import PretrainingArguments
from .checkpointing import CheckpointManager, latest_checkpoint, list_checkpoints, resolve_checkpoint
from .readers import DecodeStats, file_records, resolve_data_files, scan_files
from .masking import EVAL_MASK_SEED, EVAL_MLM_PROBABILITY, IGNORE_INDEX, MLMCollator, MLMMasker
from .packing import EpochSampler, PackedBlocks, StreamingBlocks, TokenStream, tokenize_dataset
from .plotting import plot_training_curves
from .tokenizer import train_wordpiece_tokenizer, word_start_table
from .trainer import PretrainingResult, pretrain

__all__ = [
    "PretrainingArguments",
    "PretrainingResult",
    "pretrain",
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
