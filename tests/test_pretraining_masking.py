"""MLM masking: the 80/10/10 split, special tokens, whole words, and masks that depend only on (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recurrent_mlm.pretraining.masking import IGNORE_INDEX, MLMCollator, MLMMasker

VOCAB = 1000
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]


def make_masker(**kwargs) -> MLMMasker:
    return MLMMasker(vocab_size=VOCAB, mask_token_id=MASK, special_ids=SPECIAL, **kwargs)


def block(rng: np.random.Generator, length: int = 128) -> np.ndarray:
    ids = rng.integers(5, VOCAB, size=length)
    ids[0], ids[-1] = CLS, SEP
    ids[length // 2] = SEP  # a document boundary inside the block
    return ids


@pytest.mark.parametrize("probability", [0.15, 0.3])
def test_80_10_10_split_at_the_requested_rate(probability):
    masker = make_masker(mlm_probability=probability)
    rng = np.random.default_rng(0)
    chosen = masked = randomised = kept = eligible = 0
    for _ in range(400):
        ids = block(rng)
        corrupted, labels = masker.mask(ids, rng)
        predicted = labels != IGNORE_INDEX
        assert np.array_equal(labels[predicted], ids[predicted])  # labels are the original tokens
        assert np.array_equal(corrupted[~predicted], ids[~predicted])  # nothing else is touched
        eligible += int((~np.isin(ids, SPECIAL)).sum())
        chosen += int(predicted.sum())
        masked += int((corrupted[predicted] == MASK).sum())
        changed = predicted & (corrupted != MASK) & (corrupted != ids)
        randomised += int(changed.sum())
        kept += int((predicted & (corrupted == ids)).sum())
    n = chosen
    # ~50k eligible tokens: the binomial standard errors are well below these tolerances.
    assert chosen / eligible == pytest.approx(probability, abs=0.006)
    assert masked / n == pytest.approx(0.8, abs=0.01)
    # A random replacement equals the original with probability 1/995: "kept" absorbs those.
    assert randomised / n == pytest.approx(0.1 * (1 - 1 / 995), abs=0.008)
    assert kept / n == pytest.approx(0.1 + 0.1 / 995, abs=0.008)


def test_custom_replacement_probabilities():
    masker = make_masker(mlm_probability=0.3, mask_replace_prob=1.0, random_replace_prob=0.0)
    rng = np.random.default_rng(1)
    corrupted, labels = masker.mask(block(rng, 4096), rng)
    predicted = labels != IGNORE_INDEX
    assert (corrupted[predicted] == MASK).all()


def test_special_tokens_are_never_chosen_nor_inserted():
    masker = make_masker(mlm_probability=0.9)
    rng = np.random.default_rng(2)
    for _ in range(50):
        ids = block(rng, 64)
        corrupted, labels = masker.mask(ids, rng)
        special = np.isin(ids, SPECIAL)
        assert (labels[special] == IGNORE_INDEX).all()
        assert np.array_equal(corrupted[special], ids[special])
        random_positions = (labels != IGNORE_INDEX) & (corrupted != MASK)
        assert not np.isin(corrupted[random_positions], SPECIAL).any()


def test_whole_word_masking_masks_every_piece_of_a_chosen_word():
    # Tokens 5..499 start words, 500..999 are continuations ("##...").
    word_start = np.arange(VOCAB) < 500
    masker = make_masker(mlm_probability=0.2, whole_word_masking=True, word_start=word_start)
    rng = np.random.default_rng(3)
    fractions = []
    for _ in range(200):
        ids = block(rng)
        _, labels = masker.mask(ids, rng)
        predicted = labels != IGNORE_INDEX
        special = np.isin(ids, SPECIAL)
        starts = word_start[ids] | special
        starts[1:] |= special[:-1]
        words = np.cumsum(starts)
        for word in np.unique(words):
            members = (words == word) & ~special
            if members.any():
                assert predicted[members].all() or not predicted[members].any()
        fractions.append(predicted.sum() / (~special).sum())
    assert np.mean(fractions) == pytest.approx(0.2, abs=0.015)


def test_masker_rejects_bad_settings():
    with pytest.raises(ValueError):
        make_masker(mlm_probability=0.0)
    with pytest.raises(ValueError):
        make_masker(mask_replace_prob=0.8, random_replace_prob=0.3)
    with pytest.raises(ValueError):
        make_masker(whole_word_masking=True)


def examples(n: int, epoch: int = 0, length: int = 32):
    rng = np.random.default_rng(7)
    return [{"input_ids": block(rng, length), "index": i, "epoch": epoch} for i in range(n)]


def test_masks_depend_only_on_seed_epoch_and_index():
    collator = MLMCollator(make_masker(), seed=11)
    full = collator(examples(8))
    # Any split of the batch (processes, micro-batches, workers) gives the same masks.
    halves = [collator(examples(8)[:3]), collator(examples(8)[3:])]
    for key in ("input_ids", "labels"):
        assert torch.equal(full[key], torch.cat([h[key] for h in halves]))
        assert full[key].dtype == torch.int64 and full[key].shape == (8, 32)
    # Another epoch re-masks (dynamic masking); another seed too.
    assert not torch.equal(collator(examples(8, epoch=1))["labels"], full["labels"])
    assert not torch.equal(MLMCollator(make_masker(), seed=12)(examples(8))["labels"], full["labels"])


def test_fixed_epoch_gives_the_same_masks_every_epoch():
    collator = MLMCollator(make_masker(), seed=5, fixed_epoch=0)
    assert torch.equal(collator(examples(4, epoch=0))["labels"], collator(examples(4, epoch=3))["labels"])
