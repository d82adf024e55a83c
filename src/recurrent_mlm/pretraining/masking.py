"""Masked-language-model masking: BERT's 80/10/10 rule at any masking rate, optionally by whole words.

Each example is masked by its own random generator, seeded from ``(seed, epoch, example index)``. Masks
therefore do not depend on the batch size, the number of processes, data-loader workers or prefetching: a
resumed run masks exactly as an uninterrupted one, 2 processes x batch B mask exactly as 1 process x batch 2B,
and with a fixed evaluation seed every run and every variant is scored on the same masked positions.
A new epoch gives new masks (RoBERTa's dynamic masking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = -100
# Seed of the held-out masks: fixed, and independent of --seed, so evaluation numbers compare across runs.
EVAL_MASK_SEED = 20220521
EVAL_MLM_PROBABILITY = 0.15


class MLMMasker:
    """Chooses positions to predict and corrupts them: of the chosen tokens, `mask_replace_prob` become the mask
    token, `random_replace_prob` a random non-special token, and the rest stay unchanged (BERT: 0.8 / 0.1 / 0.1).

    With `whole_word_masking`, words are chosen (each with probability `mlm_probability`) and all their tokens
    are predicted; the 80/10/10 choice is still made per token, as in BERT's release. `word_start` is a boolean
    array over the vocabulary telling which tokens begin a word (see `tokenizer.word_start_table`).
    Special tokens (`special_ids`) are never chosen and never used as random replacements.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        mask_token_id: int,
        special_ids: Sequence[int],
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        whole_word_masking: bool = False,
        word_start: np.ndarray | None = None,
    ):
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability}.")
        if mask_replace_prob < 0 or random_replace_prob < 0 or mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError(
                "mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1, got "
                f"{mask_replace_prob} and {random_replace_prob}."
            )
        if whole_word_masking and word_start is None:
            raise ValueError("whole_word_masking needs word_start (which tokens begin a word).")
        self.vocab_size = int(vocab_size)
        self.mask_token_id = int(mask_token_id)
        self.mlm_probability = float(mlm_probability)
        self.mask_replace_prob = float(mask_replace_prob)
        self.random_replace_prob = float(random_replace_prob)
        self.whole_word_masking = whole_word_masking
        # Lookup tables over the vocabulary; ids beyond the tables (never produced by the tokenizer) count as
        # ordinary word-starting tokens.
        self.is_special = np.zeros(self.vocab_size, dtype=bool)
        self.is_special[[i for i in special_ids if 0 <= i < self.vocab_size]] = True
        self.replacement_ids = np.flatnonzero(~self.is_special)
        if len(self.replacement_ids) == 0:
            raise ValueError("the vocabulary has no non-special token to use as a random replacement.")
        self.word_start = None
        if word_start is not None:
            table = np.ones(self.vocab_size, dtype=bool)
            n = min(len(word_start), self.vocab_size)
            table[:n] = np.asarray(word_start[:n], dtype=bool)
            self.word_start = table

    def mask(self, input_ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Mask one `(seq,)` example; returns `(corrupted ids, labels)` with `IGNORE_INDEX` where not predicted."""
        ids = np.asarray(input_ids, dtype=np.int64)
        special = self.is_special[ids]  # (seq,)
        if self.whole_word_masking:
            # A word starts at a word-initial token, or at any token right after a special one (a block or
            # document boundary may cut a word: its remainder is a word of its own).
            starts = self.word_start[ids] | special
            starts[1:] |= special[:-1]
            starts[0] = True
            word_index = np.cumsum(starts) - 1  # (seq,)
            chosen_words = rng.random(int(word_index[-1]) + 1) < self.mlm_probability
            chosen = chosen_words[word_index] & ~special
        else:
            chosen = (rng.random(ids.shape[0]) < self.mlm_probability) & ~special
        labels = np.where(chosen, ids, IGNORE_INDEX)
        action = rng.random(ids.shape[0])  # one draw per token decides mask / random / keep
        to_mask = chosen & (action < self.mask_replace_prob)
        to_random = chosen & (action >= self.mask_replace_prob) & (action < self.mask_replace_prob + self.random_replace_prob)
        corrupted = ids.copy()
        corrupted[to_mask] = self.mask_token_id
        random_ids = self.replacement_ids[rng.integers(0, len(self.replacement_ids), size=ids.shape[0])]
        corrupted[to_random] = random_ids[to_random]
        return corrupted, labels


class MLMCollator:
    """Stacks packed examples into a batch and masks each with a generator seeded by (seed, epoch, index).

    Examples are dicts with `input_ids` (a `(seq,)` integer array), `index` (the example's position in its
    dataset, stable across runs) and optionally `epoch`. `fixed_epoch` ignores the example's epoch (evaluation:
    the same masks every time). Returns `input_ids` and `labels`, both `(batch, seq)` int64; packed blocks have
    no padding, so there is no attention mask.
    """

    def __init__(self, masker: MLMMasker, seed: int, fixed_epoch: int | None = None):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}.")
        self.masker = masker
        self.seed = int(seed)
        self.fixed_epoch = fixed_epoch

    def example_rng(self, epoch: int, index: int) -> np.random.Generator:
        # SeedSequence mixes the three numbers properly: nearby indices give unrelated streams.
        return np.random.default_rng([self.seed, int(epoch), int(index)])

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        inputs, labels = [], []
        for example in examples:
            epoch = self.fixed_epoch if self.fixed_epoch is not None else int(example.get("epoch", 0))
            corrupted, target = self.masker.mask(example["input_ids"], self.example_rng(epoch, example["index"]))
            inputs.append(corrupted)
            labels.append(target)
        return {
            "input_ids": torch.from_numpy(np.stack(inputs)),  # (batch, seq)
            "labels": torch.from_numpy(np.stack(labels)),  # (batch, seq)
        }


__all__ = ["IGNORE_INDEX", "EVAL_MASK_SEED", "EVAL_MLM_PROBABILITY", "MLMMasker", "MLMCollator"]
