"""From a data source (local files, or a `datasets` dataset by name) to packed train and held-out blocks.

`resolve_source` checks everything that can be checked before a run writes anything (paths, file formats,
the text column, an empty corpus, the dataset's existence) and counts lines that are not UTF-8.
`build_datasets` tokenizes (cached by `datasets`, keyed by the files and the tokenizer) and packs.

Held-out data, in order of preference: `--validation_file`, the dataset's `--dataset_validation_split`, or a
fixed random `--validation_split_percentage` of the packed blocks (the same blocks for every run with the same
data, tokenizer and sequence length, whatever `--seed`). With `--streaming` and no validation source, the first
`--streaming_validation_records` records are held out instead.
"""

from __future__ import annotations

import itertools
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import UsageError
from .readers import CorpusReport, file_records, files_fingerprint, generate_records, resolve_data_files, scan_files
from .packing import PackedBlocks, StreamingBlocks, TokenStream, tokenize_dataset, tokenize_function

logger = logging.getLogger(__name__)


@dataclass
class CorpusSource:
    """Where the text comes from, resolved and checked."""

    text_column: str = "text"
    streaming: bool = False
    cache_dir: str | None = None
    train_files: list[Path] | None = None
    validation_files: list[Path] | None = None
    dataset_name: str | None = None
    dataset_config_name: str | None = None
    dataset_split: str = "train"
    dataset_validation_split: str | None = None
    train_report: CorpusReport | None = None
    validation_report: CorpusReport | None = None
    _hub: dict[str, Any] = field(default_factory=dict, repr=False)  # loaded `datasets` splits

    @property
    def label(self) -> str:
        """How the model card and logs name the data."""
        if self.dataset_name:
            return self.dataset_name + (f"/{self.dataset_config_name}" if self.dataset_config_name else "")
        roots = sorted({str(p.parent) for p in self.train_files or []})
        return "local text: " + ", ".join(roots[:3]) + (" ..." if len(roots) > 3 else "")

    @property
    def has_validation_source(self) -> bool:
        return bool(self.validation_files) or self.dataset_validation_split is not None

    def decode_summary(self) -> str | None:
        stats = None
        for report in (self.train_report, self.validation_report):
            if report is None:
                continue
            if stats is None:
                stats = type(report.decode)()
            stats.merge(report.decode)
        return stats.summary() if stats is not None else None

    def content_fingerprint(self, split: str = "train") -> str | None:
        """A hash of the text itself (file contents, or the dataset's identity and `datasets` fingerprint), so a
        resumed run notices a changed corpus however the files were copied or touched. None when there is no such
        split."""
        import hashlib

        from ..files import content_digest

        files = self.train_files if split == "train" else self.validation_files
        if files:
            digest = hashlib.sha256()
            for path in files:
                digest.update(content_digest(path).encode())
            return digest.hexdigest()[:16]
        name = self.dataset_split if split == "train" else self.dataset_validation_split
        if not self.dataset_name or name is None:
            return None
        loaded = self._hub.get(split)
        identity = [self.dataset_name, self.dataset_config_name, name, getattr(loaded, "_fingerprint", None)]
        return hashlib.sha256(repr(identity).encode()).hexdigest()[:16]

    def describe_files(self, max_files: int = 20) -> str | None:
        """A model-card paragraph naming the training files, their sizes and checksums (no machine-local paths)."""
        from ..files import sha256_file

        if not self.train_files:
            return None
        rows = ["| file | bytes | sha256 |", "|---|---:|---|"]
        for path in self.train_files[:max_files]:
            rows.append(f"| `{path.name}` | {path.stat().st_size:,} | `{sha256_file(path)[:16]}` |")
        total = sum(p.stat().st_size for p in self.train_files)
        more = f" (the first {max_files} listed)" if len(self.train_files) > max_files else ""
        return f"{len(self.train_files)} local file(s), {total:,} bytes in all{more}:\n\n" + "\n".join(rows)

    def replaced_lines(self) -> int:
        return sum(r.decode.replaced_lines for r in (self.train_report, self.validation_report) if r is not None)


def resolve_source(
    *,
    train_files: list[str] | None,
    validation_files: list[str] | None,
    dataset_name: str | None,
    dataset_config_name: str | None = None,
    dataset_split: str = "train",
    dataset_validation_split: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    cache_dir: str | None = None,
) -> CorpusSource:
    source = CorpusSource(
        text_column=text_column,
        streaming=streaming,
        cache_dir=cache_dir,
        dataset_name=dataset_name,
        dataset_config_name=dataset_config_name,
        dataset_split=dataset_split,
        dataset_validation_split=dataset_validation_split,
    )
    if train_files:
        source.train_files = resolve_data_files(train_files, "--train_file")
        source.train_report = scan_files(source.train_files, text_column, "--train_file", full=not streaming)
    if validation_files:
        source.validation_files = resolve_data_files(validation_files, "--validation_file")
        source.validation_report = scan_files(source.validation_files, text_column, "--validation_file")
    if dataset_name:
        source._hub["train"] = _load_hub_split(source, dataset_split, streaming)
        if dataset_validation_split is not None:
            source._hub["validation"] = _load_hub_split(source, dataset_validation_split, False)
    return source


def load_dataset_split(name: str, config: str | None, split: str, *, streaming: bool = False, cache_dir: str | None = None):
    """A split of a Hub dataset, a local dataset folder `load_dataset` reads, or a folder written by
    `Dataset.save_to_disk` (its one split is `train`) or `DatasetDict.save_to_disk`."""
    from datasets import load_dataset, load_from_disk

    folder = Path(name)
    if folder.is_dir() and ((folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()):
        saved = load_from_disk(str(folder))
        if (folder / "dataset_dict.json").is_file():
            if split not in saved:
                raise ValueError(f"the saved DatasetDict has no split {split!r} (it has {', '.join(saved)})")
            saved = saved[split]
        elif split != "train":
            raise ValueError(f"a folder written by Dataset.save_to_disk holds one split, 'train', not {split!r}")
        return saved.to_iterable_dataset() if streaming else saved
    return load_dataset(name, config, split=split, streaming=streaming, cache_dir=cache_dir)


def _load_hub_split(source: CorpusSource, split: str, streaming: bool):
    name = source.dataset_name
    try:
        dataset = load_dataset_split(name, source.dataset_config_name, split, streaming=streaming, cache_dir=source.cache_dir)
    except Exception as err:  # datasets raises many types (missing, offline, bad config): all are bad input here
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"--dataset_name {name}: cannot load split {split!r} ({reason}); check the name, --dataset_config_name "
            "and --dataset_split, and that the dataset is cached if HF_HUB_OFFLINE=1."
        ) from None
    columns = dataset.column_names
    if columns is None:  # a streaming dataset without declared features: look at one row
        first = next(iter(dataset), None)
        columns = list(first) if first else []
    if source.text_column not in columns:
        raise UsageError(
            f"--dataset_name {name} split {split!r} has no column {source.text_column!r} (it has: "
            f"{', '.join(columns) or 'none'}); pass --text_column with the right name."
        )
    features = getattr(dataset, "features", None)
    if features is not None and source.text_column in features:
        dtype = getattr(features[source.text_column], "dtype", None)
        if dtype not in ("string", "large_string"):
            raise UsageError(
                f"--dataset_name {name}: column {source.text_column!r} is not text ({features[source.text_column]}); "
                "choose a text column with --text_column."
            )
    return dataset


def _hub_records(dataset, text_column: str):
    """Rows -> records (one document per row), empty rows dropped."""

    def to_records(batch):
        texts = [t for t in batch[text_column] if t and t.strip()]
        return {"text": texts, "doc_end": [True] * len(texts)}

    columns = dataset.column_names
    if columns is None:  # streaming without declared features
        first = next(iter(dataset), None)
        columns = list(first) if first else [text_column]
    return dataset.map(to_records, batched=True, remove_columns=columns)


def open_records(source: CorpusSource, split: str, streaming: bool):
    """The records of `split` ("train" or "validation") as a `datasets.Dataset` (or `IterableDataset`)."""
    from datasets import Dataset, Features, IterableDataset, Value

    if (split == "train" and source.train_files is not None) or (split == "validation" and source.validation_files):
        files = source.train_files if split == "train" else source.validation_files
        features = Features({"text": Value("string"), "doc_end": Value("bool")})
        gen_kwargs = {
            "files": [str(p) for p in files],
            "text_column": source.text_column,
            "fingerprint": files_fingerprint(files),
        }
        if streaming:
            return IterableDataset.from_generator(generate_records, features=features, gen_kwargs=gen_kwargs)
        return Dataset.from_generator(generate_records, features=features, gen_kwargs=gen_kwargs, cache_dir=source.cache_dir)
    return _hub_records(source._hub[split], source.text_column)


def tokenizer_training_texts(source: CorpusSource, limit: int | None = None):
    """Texts of the training split, for training a tokenizer (at most `limit` records)."""

    def texts():
        if source.train_files is not None:
            for path in source.train_files:
                for record in file_records(path, source.text_column):
                    yield record["text"]
        else:
            for batch in source._hub["train"].iter(batch_size=1000):
                yield from (text for text in batch[source.text_column] if text and text.strip())

    return itertools.islice(texts(), limit) if limit else texts()


@dataclass
class BuiltData:
    train: Any  # PackedBlocks or StreamingBlocks
    validation: PackedBlocks | None
    info: dict[str, Any]


def _materialise(records, tokenizer, max_seq_length: int) -> PackedBlocks:
    """Pack a small iterable of records in memory (held-out data of a streaming run)."""
    tokenize = tokenize_function(tokenizer, tokenizer.sep_token_id)
    arrays = []
    batch = {"text": [], "doc_end": []}
    for record in itertools.chain(records, [None]):
        if record is not None:
            batch["text"].append(record["text"])
            batch["doc_end"].append(bool(record["doc_end"]))
        if batch["text"] and (record is None or len(batch["text"]) == 256):
            arrays.extend(np.asarray(ids, dtype=np.int64) for ids in tokenize(batch)["input_ids"])
            batch = {"text": [], "doc_end": []}
    return PackedBlocks(TokenStream.from_arrays(arrays), max_seq_length, tokenizer.cls_token_id, tokenizer.sep_token_id)


def build_datasets(
    source: CorpusSource,
    tokenizer,
    *,
    max_seq_length: int,
    validation_split_percentage: float = 5.0,
    max_eval_samples: int | None = None,
    num_proc: int | None = None,
    overwrite_cache: bool = False,
    seed: int = 42,
    shuffle_buffer_size: int = 10_000,
    streaming_validation_records: int = 1000,
    main_process_first: AbstractContextManager | None = None,
) -> BuiltData:
    """Tokenize and pack. Raises `UsageError` when the corpus is too small for one block."""
    guard = main_process_first if main_process_first is not None else nullcontext()
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    info: dict[str, Any] = {"source": source.label, "max_seq_length": max_seq_length}
    validation = None
    if source.streaming:
        records = open_records(source, "train", streaming=True)
        if source.has_validation_source:
            with guard:
                held_out = open_records(source, "validation", streaming=False)
            validation = _materialise(held_out, tokenizer, max_seq_length)
        elif streaming_validation_records > 0:
            validation = _materialise(records.take(streaming_validation_records), tokenizer, max_seq_length)
            records = records.skip(streaming_validation_records)
        train = StreamingBlocks(records.shuffle(seed=seed, buffer_size=shuffle_buffer_size), tokenizer, max_seq_length)
        info["train_blocks"] = None
    else:
        with guard:
            tokens = tokenize_dataset(
                open_records(source, "train", streaming=False),
                tokenizer,
                num_proc=num_proc,
                load_from_cache_file=not overwrite_cache,
                desc="Tokenizing the training text",
            )
            held_out_tokens = None
            if source.has_validation_source:
                held_out_tokens = tokenize_dataset(
                    open_records(source, "validation", streaming=False),
                    tokenizer,
                    num_proc=num_proc,
                    load_from_cache_file=not overwrite_cache,
                    desc="Tokenizing the validation text",
                )
        stream = TokenStream(tokens)
        blocks = PackedBlocks(stream, max_seq_length, cls_id, sep_id)
        info["train_tokens"] = len(stream)
        if len(blocks) == 0:
            raise UsageError(
                f"the training corpus has {len(stream):,} tokens, fewer than one block of --max_seq_length "
                f"{max_seq_length}; give more text or lower --max_seq_length."
            )
        if held_out_tokens is not None:
            train = blocks
            validation = PackedBlocks(TokenStream(held_out_tokens), max_seq_length, cls_id, sep_id)
        else:
            train, validation = blocks.split(validation_split_percentage / 100.0)
            if validation is None and validation_split_percentage > 0:
                logger.warning(
                    "the corpus makes only %d block(s): nothing held out for evaluation. Give more text, a "
                    "--validation_file, or lower --max_seq_length.",
                    len(blocks),
                )
        info["train_blocks"] = len(train)
    if validation is not None:
        if len(validation) == 0:
            logger.warning("the held-out text makes no full block of %d tokens: no evaluation.", max_seq_length)
            validation = None
        else:
            validation = validation.limit(max_eval_samples)
    info["validation_blocks"] = len(validation) if validation is not None else 0
    return BuiltData(train=train, validation=validation, info=info)


__all__ = ["CorpusSource", "BuiltData", "resolve_source", "open_records", "tokenizer_training_texts", "build_datasets"]
