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
from typing import Any, NamedTuple

import torch

from .models.configuration_recurrent_mlm import RecurrentMLMConfig
from .variants import VARIANTS as _VARIANT_TABLE


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

# The encoder fields of each named variant (a view of `recurrent_mlm.variants.VARIANTS`, the one table).
# `preset_config` accepts these names or the fields directly.
VARIANTS: dict[str, dict[str, Any]] = {name: dict(v.fields) for name, v in _VARIANT_TABLE.items()}

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

    solved = free_width(config, fields)
    if solved is None or solved.field == "recurrence_hidden_size" and config.encoder_type == "transformer":
        return config  # BERT, or the recurrent sublayer already sized by the config's closed form
    if solved.field == "num_hidden_layers":  # closed form: half of BERT's layers go to each direction
        return make(num_hidden_layers=max(1, config.num_hidden_layers // 2))
    H, N = config.hidden_size, config.num_hidden_layers
    limits = {
        "lstm_hidden_size": dict(low=1, high=8 * H),
        "recurrence_hidden_size": dict(low=2, high=64 * H, step=2),
        "intermediate_size": dict(low=1, high=64 * N * H),
    }[solved.field]
    return _solve_integer(lambda x: make(**{solved.field: x}), target, **limits)


class FreeWidth(NamedTuple):
    field: str  # the config field solved for BERT's parameter count
    label: str  # how the README's parameter table names it


def free_width(config: RecurrentMLMConfig, given: dict[str, Any] | None = None) -> FreeWidth | None:
    """The field `preset_config` solves to match BERT's parameter count for this encoder; None when nothing
    needs solving (BERT, tied sequential stacks) or the field was `given`. For Transformer layers with the
    recurrent sublayer the config's own default (`solve_recurrence_hidden_size`, a closed form) is the solution."""
    given = given or {}
    if config.encoder_type == "lstm":
        choice = FreeWidth("lstm_hidden_size", "LSTM width")
    elif config.encoder_type == "recurrent":
        choice = FreeWidth("recurrence_hidden_size", "recurrence width")
    elif config.share_layers:
        plural = "s" if config.encoder_type == "sequential_transformer" else ""
        choice = FreeWidth("intermediate_size", f"FFN width of the shared layer{plural}")
    elif config.encoder_type == "sequential_transformer" and not config.sequential_tie_directions:
        choice = FreeWidth("num_hidden_layers", "layers per direction")
    elif config.recurrence:
        choice = FreeWidth("recurrence_hidden_size", "recurrence width")
    else:
        return None
    return None if choice.field in given else choice


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


__all__ = ["SIZES", "VARIANTS", "PARAMETER_TOLERANCE", "FreeWidth", "count_parameters", "free_width", "preset_config"]
