"""Tokenizers for pretraining: train a BERT WordPiece vocabulary on the corpus, or check an existing one.

A trained tokenizer is a transformers `BertTokenizer` (backed by the `tokenizers` library): BERT's normaliser
and pre-tokeniser, a WordPiece model with `##` continuations, `[CLS] A [SEP] B [SEP]` templates, and the
special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` at ids 0-4. It saves with the model and loads back with
`AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np

from ..cli import UsageError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    *,
    lowercase: bool = True,
    min_frequency: int = 2,
    model_max_length: int = 512,
    length: int | None = None,
):
    """Train a BERT-style WordPiece tokenizer on `texts` and wrap it as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    # strip_accents=None follows `lowercase`, as in BERT's uncased/cased models.
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer, length=length)
    # The trainer numbers tokens of equal frequency in hash-map order, which changes from run to run. WordPiece
    # tokenization depends only on which tokens exist (greedy longest match), so renumbering them in a fixed
    # order changes no tokenization and makes the same corpus give the same ids every time.
    vocab = backend.get_vocab()
    ordered = SPECIAL_TOKENS + sorted(token for token in vocab if token not in SPECIAL_TOKENS)
    backend.model = models.WordPiece(
        {token: index for index, token in enumerate(ordered)}, unk_token="[UNK]", continuing_subword_prefix="##"
    )
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    return tokenizer_from_json(backend.to_str(), lowercase=lowercase, model_max_length=model_max_length)


def tokenizer_from_json(serialized: str, *, lowercase: bool, model_max_length: int):
    """Rebuild a trained tokenizer from its `tokenizer.json` text (how other processes receive it)."""
    from tokenizers import Tokenizer
    from transformers import BertTokenizer

    return BertTokenizer(
        tokenizer_object=Tokenizer.from_str(serialized),
        do_lower_case=lowercase,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def check_tokenizer(tokenizer, source: str) -> None:
    """The special tokens MLM pretraining needs; raises `UsageError` naming the missing one."""
    for role in ("mask_token", "cls_token", "sep_token", "pad_token"):
        if getattr(tokenizer, role, None) is None or getattr(tokenizer, f"{role}_id", None) is None:
            raise UsageError(
                f"tokenizer {source} has no {role} (MLM pretraining needs mask, cls, sep and pad tokens); "
                "use a BERT-style tokenizer, or omit --tokenizer_name to train one on the corpus."
            )


def word_start_table(tokenizer) -> np.ndarray:
    """Boolean array over the vocabulary: does this token begin a word? Supports WordPiece (`##` marks a
    continuation), SentencePiece/Metaspace (`▁` marks a start) and byte-level BPE (`Ġ` marks a start) vocabularies.
    Raises `UsageError` for other tokenizers (whole-word masking cannot know their word boundaries)."""
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1 if vocab else 0
    table = np.ones(size, dtype=bool)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    model = spec.get("model", {}) or {}
    pre = json.dumps(spec.get("pre_tokenizer") or {})
    prefix = model.get("continuing_subword_prefix")
    if model.get("type") == "WordPiece" or (prefix and model.get("type") in ("BPE", None)):
        prefix = prefix or "##"
        for token, index in vocab.items():
            table[index] = not token.startswith(prefix)
        return table
    for marker, name in (("\u2581", "Metaspace"), ("\u0120", "ByteLevel")):
        if name in pre or any(token.startswith(marker) for token in list(vocab)[:1000]):
            special = set(tokenizer.all_special_tokens)
            for token, index in vocab.items():
                table[index] = token.startswith(marker) or token in special
            return table
    raise UsageError(
        "--whole_word_masking needs to know where words start, which this tokenizer's vocabulary does not show "
        "(supported: WordPiece '##', SentencePiece '\u2581', byte-level BPE '\u0120'); drop --whole_word_masking."
    )


__all__ = ["SPECIAL_TOKENS", "train_wordpiece_tokenizer", "tokenizer_from_json", "check_tokenizer", "word_start_table"]
