"""Packing token streams into fixed-length blocks, deterministic epoch order, and the streaming packer.

Every record is tokenized without special tokens and a separator token is appended after the last record of
each document; the concatenation of all records is one token stream. Block `i` is
``[CLS] stream[i*C : (i+1)*C] [SEP]`` with ``C = max_seq_length - 2``: every block has BERT's input layout, no
padding, and documents run across blocks (RoBERTa's FULL-SENTENCES packing). Only the final partial block of
the stream is dropped.

For a map-style (`datasets.Dataset`) corpus, blocks are views into the memory-mapped Arrow column of token ids:
nothing is concatenated in memory, whatever the corpus size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

# Fixed, and independent of --seed, so that every run on the same data holds out the same blocks.
VALIDATION_SPLIT_SEED = 20220522
_TOKEN_DTYPE = "int32"


def tokenize_function(tokenizer, sep_id: int):
    """A `datasets.map(batched=True)` function: records -> token ids, separator after each document."""

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            batch["text"],
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # records may exceed model_max_length: we pack them ourselves
        )["input_ids"]
        return {"input_ids": [ids + [sep_id] if end else ids for ids, end in zip(encoded, batch["doc_end"])]}

    return tokenize


def tokenizer_fingerprint(tokenizer) -> str:
    """Identifies the tokenizer's behaviour (keys the `datasets` cache of tokenized data)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tokenize_dataset(records, tokenizer, *, num_proc: int | None = None, load_from_cache_file: bool = True, desc: str = "Tokenizing"):
    """Tokenize a `datasets.Dataset` of records into one `input_ids` column (int32 lists)."""
    from datasets import Features, List, Value

    sep_id = tokenizer.sep_token_id
    fingerprint = hashlib.sha256(
        f"{records._fingerprint}|{tokenizer_fingerprint(tokenizer)}|sep={sep_id}|v1".encode()
    ).hexdigest()[:16]
    return records.map(
        tokenize_function(tokenizer, sep_id),
        batched=True,
        batch_size=256,
        num_proc=num_proc,
        remove_columns=records.column_names,
        features=Features({"input_ids": List(Value(_TOKEN_DTYPE))}),
        load_from_cache_file=load_from_cache_file,
        new_fingerprint=fingerprint,
        desc=desc,
    )


class TokenStream:
    """The concatenated token ids of a tokenized `datasets.Dataset`, addressed without copying.

    Holds one flat numpy view per Arrow chunk and their offsets; `slice(start, stop)` gathers across chunks.
    Pickles as the dataset (which pickles as its cache files) and rebuilds the views on arrival, so data-loader
    workers memory-map the same files instead of receiving copies.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self._build()

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray]) -> TokenStream:
        """A stream over token arrays held in memory (a small materialised split)."""
        stream = cls.__new__(cls)
        stream.dataset = None
        stream._set_chunks([np.asarray(a, dtype=np.int64) for a in arrays])
        return stream

    def _set_chunks(self, chunks: list[np.ndarray]) -> None:
        self.chunks = [c for c in chunks if len(c)]
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in self.chunks], dtype=np.int64)]).astype(np.int64)

    def _build(self) -> None:
        dataset = self.dataset
        if getattr(dataset, "_indices", None) is not None:
            dataset = dataset.flatten_indices()
            self.dataset = dataset
        column = dataset.data.table.column("input_ids")
        # zero_copy_only=False only allows a copy where Arrow cannot hand out a view (never for int lists
        # without nulls, which is what we write).
        self._set_chunks([chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def slice(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pieces = []
        position = start
        chunk = first
        while position < stop:
            base = int(self.offsets[chunk])
            end = min(stop, int(self.offsets[chunk + 1]))
            pieces.append(self.chunks[chunk][position - base : end - base])
            position = end
            chunk += 1
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def __getstate__(self):
        if self.dataset is None:
            return {"dataset": None, "chunks": self.chunks}
        return {"dataset": self.dataset}

    def __setstate__(self, state):
        self.dataset = state["dataset"]
        if self.dataset is None:
            self._set_chunks(state["chunks"])
        else:
            self._build()


class PackedBlocks(torch.utils.data.Dataset):
    """Blocks of `max_seq_length` tokens (`[CLS] ... [SEP]`) cut from a `TokenStream`.

    `block_ids` selects which blocks this dataset serves (a train or validation split); item `i` is block
    `block_ids[i]`. Items are dicts with `input_ids` (an int64 `(seq,)` array), `index` (the position `i`,
    used to seed its mask) and `epoch`. Keys may be plain ints or `(epoch, i)` pairs from `EpochSampler`.
    """

    def __init__(self, stream: TokenStream, max_seq_length: int, cls_id: int, sep_id: int, block_ids: np.ndarray | None = None):
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length must be >= 3 (two special tokens and content), got {max_seq_length}.")
        self.stream = stream
        self.max_seq_length = max_seq_length
        self.content = max_seq_length - 2
        self.cls_id, self.sep_id = int(cls_id), int(sep_id)
        self.total_blocks = len(stream) // self.content
        self.block_ids = np.arange(self.total_blocks, dtype=np.int64) if block_ids is None else np.asarray(block_ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.block_ids)

    def __getitem__(self, key) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        block = int(self.block_ids[index])
        start = block * self.content
        ids = np.empty(self.max_seq_length, dtype=np.int64)
        ids[0], ids[-1] = self.cls_id, self.sep_id
        ids[1:-1] = self.stream.slice(start, start + self.content)
        return {"input_ids": ids, "index": int(index), "epoch": int(epoch)}

    def subset(self, block_ids: np.ndarray) -> PackedBlocks:
        return PackedBlocks(self.stream, self.max_seq_length, self.cls_id, self.sep_id, block_ids)

    def split(self, validation_fraction: float) -> tuple[PackedBlocks, PackedBlocks | None]:
        """Hold out a fixed random `validation_fraction` of the blocks (at least one; same blocks every run)."""
        if validation_fraction <= 0:
            return self, None
        n = len(self.block_ids)
        n_val = max(1, int(round(n * validation_fraction)))
        if n_val >= n:
            return self, None
        chosen = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(n)[:n_val]
        is_val = np.zeros(n, dtype=bool)
        is_val[chosen] = True
        return self.subset(self.block_ids[~is_val]), self.subset(self.block_ids[is_val])

    def limit(self, max_items: int | None) -> PackedBlocks:
        if max_items is None or max_items >= len(self):
            return self
        return self.subset(self.block_ids[:max_items])


class EpochSampler(torch.utils.data.Sampler):
    """A permutation of `range(n)` that depends only on `(seed, epoch)`; yields `(epoch, index)` pairs so that
    the epoch travels with each key to the dataset (and the masking seed), across workers and prefetching."""

    def __init__(self, num_items: int, seed: int, shuffle: bool = True):
        self.num_items = num_items
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        else:
            order = np.arange(self.num_items)
        epoch = self.epoch
        return iter([(epoch, int(i)) for i in order])


class StreamingBlocks(torch.utils.data.IterableDataset):
    """Packs a stream of records (a `datasets.IterableDataset` or any re-iterable of records) on the fly.

    Yields the same items as `PackedBlocks` (`index` counts blocks from the start of the epoch). `set_epoch`
    is passed on to the records (a shuffled `datasets.IterableDataset` reshuffles per epoch). Not sharded
    across data-loader workers: use `num_workers=0` (Accelerate dispatches batches to the processes).
    """

    def __init__(self, records, tokenizer, max_seq_length: int, tokenize_batch_size: int = 256):
        super().__init__()
        self.records = records
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.content = max_seq_length - 2
        self.cls_id, self.sep_id = int(tokenizer.cls_token_id), int(tokenizer.sep_token_id)
        self.tokenize = tokenize_function(tokenizer, self.sep_id)
        self.tokenize_batch_size = tokenize_batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.records, "set_epoch"):
            self.records.set_epoch(epoch)

    def _record_batches(self) -> Iterator[dict[str, list]]:
        batch = {"text": [], "doc_end": []}
        for record in self.records:
            batch["text"].append(record["text"])
            batch["doc_end"].append(bool(record["doc_end"]))
            if len(batch["text"]) == self.tokenize_batch_size:
                yield batch
                batch = {"text": [], "doc_end": []}
        if batch["text"]:
            yield batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise RuntimeError("StreamingBlocks is not sharded across data-loader workers; use num_workers=0 or 1.")
        epoch = self.epoch
        buffer = np.empty(0, dtype=np.int64)
        index = 0
        for batch in self._record_batches():
            ids = self.tokenize(batch)["input_ids"]
            buffer = np.concatenate([buffer, np.fromiter((t for seq in ids for t in seq), dtype=np.int64)])
            usable = (len(buffer) // self.content) * self.content
            for start in range(0, usable, self.content):
                block = np.empty(self.max_seq_length, dtype=np.int64)
                block[0], block[-1] = self.cls_id, self.sep_id
                block[1:-1] = buffer[start : start + self.content]
                yield {"input_ids": block, "index": index, "epoch": epoch}
                index += 1
            buffer = buffer[usable:]


__all__ = [
    "VALIDATION_SPLIT_SEED",
    "tokenize_function",
    "tokenizer_fingerprint",
    "tokenize_dataset",
    "TokenStream",
    "PackedBlocks",
    "EpochSampler",
    "StreamingBlocks",
]
