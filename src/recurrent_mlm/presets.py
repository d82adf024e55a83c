"""Size presets: every encoder variant at the parameter count of the BERT of the same size.

`preset_config("mini", "lstm")` returns a config whose non-embedding parameter count (encoder + pooler) is
within 2% of BERT-mini's, solving for the one free width of the variant:

| variant family                         | solved for                                   |
|----------------------------------------|----------------------------------------------|
| BERT + simple/gated recurrence         | `recurrence_hidden_size` (closed form)        |
| attention-free recurrent stack (+attn) | `recurrence_hidden_size`                      |
| LSTM (+ attention layers)              | `lstm_hidden_size` (per direction)            |
| universal (shared-layer) Transformers  | `intermediate_size` of the one shared layer   |
| sequential Transformer                 | `num_hidden_layers` per direction = half      |

Embeddings are identical across variants (same vocabulary and width), so total counts match too. Sizes are
the BERT miniatures of Turc et al. (2019) plus BERT-base and -large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .models.configuration_recurrent_mlm import RecurrentMLMConfig


@dataclass(frozen=True)
class Size:
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int

    @property
    def intermediate_size(self) -> int:
        return 4 * self.hidden_size


SIZES: dict[str, Size] = {
    "tiny": Size(2, 128, 2),
    "mini": Size(4, 256, 4),
    "small": Size(4, 512, 8),
    "medium": Size(8, 512, 8),
    "base": Size(12, 768, 12),
    "large": Size(24, 1024, 16),
}

# Named variants: the encoder fields each sets. `preset_config` accepts these names or the fields directly.
VARIANTS: dict[str, dict[str, Any]] = {
    "bert": dict(encoder_type="transformer"),
    "recurrent_bert": dict(encoder_type="transformer", recurrence="simple"),
    "gated_bert": dict(encoder_type="transformer", recurrence="gated"),
    "universal_transformer": dict(encoder_type="transformer", share_layers=True),
    "sequential_transformer": dict(encoder_type="sequential_transformer"),
    "sequential_universal_transformer": dict(encoder_type="sequential_transformer", share_layers=True),
    "lstm": dict(encoder_type="lstm"),
    "hybrid_lstm": dict(encoder_type="lstm", num_attention_layers=1),
    "recurrent": dict(encoder_type="recurrent", recurrence="simple"),
    "hybrid_recurrent": dict(encoder_type="recurrent", recurrence="simple", num_attention_layers=1),
}

PARAMETER_TOLERANCE = 0.02


def count_parameters(config: RecurrentMLMConfig, include_embeddings: bool = True) -> int:
    """Parameters of `RecurrentMLMModel(config)` (with pooler), built on the meta device (no memory, fast)."""
    from .models.modeling_recurrent_mlm import RecurrentMLMModel

    with torch.device("meta"):
        model = RecurrentMLMModel(config)
    total = sum(p.numel() for p in model.parameters())
    if not include_embeddings:
        total -= sum(p.numel() for p in model.embeddings.parameters())
    return total


def _base_fields(size: Size, vocab_size: int) -> dict[str, Any]:
    return dict(
        vocab_size=vocab_size,
        hidden_size=size.hidden_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        intermediate_size=size.intermediate_size,
    )


def _solve_integer(make: callable, target: int, low: int, high: int, step: int = 1) -> RecurrentMLMConfig:
    """Smallest-error integer `x` in [low, high] (multiples of `step`) for count(make(x)) ~ target; counts
    grow with `x`, so bisect and compare the two neighbours."""
    lo, hi = low // step, high // step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count_parameters(make(mid * step), include_embeddings=False) < target:
            lo = mid
        else:
            hi = mid
    candidates = [make(v * step) for v in (lo, hi)]
    return min(candidates, key=lambda c: abs(count_parameters(c, include_embeddings=False) - target))


def preset_config(
    size: str = "mini",
    variant: str | None = None,
    *,
    vocab_size: int = 30522,
    match_parameters: bool = True,
    **fields: Any,
) -> RecurrentMLMConfig:
    """Config for a named `size` and encoder `variant` (a name in `VARIANTS`, or pass encoder fields such as
    `encoder_type="lstm", num_attention_layers=1`). With `match_parameters` the variant's free width is solved
    so its non-embedding parameter count is within 2% of BERT's at that size. Other config fields (dropout,
    `recurrence_chunk_size`, ...) pass through."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}.")
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
        fields = {**VARIANTS[variant], **fields}
    shape = SIZES[size]
    base = {**_base_fields(shape, vocab_size), **{k: v for k, v in fields.items() if k in _base_fields(shape, 1)}}
    extra = {k: v for k, v in fields.items() if k not in base}
    config = RecurrentMLMConfig(**base, **extra)
    if not match_parameters:
        return config
    bert = RecurrentMLMConfig(**base, **{k: v for k, v in extra.items() if k not in _ENCODER_FIELDS})
    target = count_parameters(bert, include_embeddings=False)

    def make(**changes):
        return RecurrentMLMConfig(**{**base, **extra, **changes})

    encoder_type = config.encoder_type
    H, N = config.hidden_size, config.num_hidden_layers
    if encoder_type == "lstm" and "lstm_hidden_size" not in fields:
        config = _solve_integer(lambda h: make(lstm_hidden_size=h), target, 1, 8 * H)
    elif encoder_type == "recurrent" and "recurrence_hidden_size" not in fields:
        config = _solve_integer(lambda d: make(recurrence_hidden_size=d), target, 2, 64 * H, step=2)
    elif config.share_layers and "intermediate_size" not in fields:
        config = _solve_integer(lambda i: make(intermediate_size=i), target, 1, 64 * N * H)
    elif encoder_type == "sequential_transformer" and not config.share_layers and "num_hidden_layers" not in fields:
        if not getattr(config, "sequential_tie_directions", False):
            config = make(num_hidden_layers=max(1, N // 2))
    return config


_ENCODER_FIELDS = {
    "encoder_type",
    "share_layers",
    "num_attention_layers",
    "sequential_combine",
    "sequential_tie_directions",
    "lstm_hidden_size",
    "lstm_bidirectional",
    "lstm_max_singular_value",
    "pooling",
    "recurrence",
    "recurrence_layers",
    "recurrence_hidden_size",
    "recurrence_direction",
    "recurrence_chunk_size",
    "recurrence_forget_bias",
    "recurrence_implementation",
}


__all__ = ["SIZES", "VARIANTS", "PARAMETER_TOLERANCE", "count_parameters", "preset_config"]
