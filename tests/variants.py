"""Tiny configurations of every named variant (read from `recurrent_mlm.variants`, the one table) and a few
option combinations, for parametrized tests."""

from recurrent_mlm.variants import VARIANTS as _TABLE
from tests.conftest import tiny_config_kwargs

# Combinations the named variants do not cover.
EXTRA = {
    "recurrent_k3_forward_layer1": dict(
        recurrence="simple", recurrence_chunk_size=3, recurrence_direction="forward", recurrence_layers=[1]
    ),
    "gated_backward": dict(recurrence="gated", recurrence_direction="backward", recurrence_chunk_size=2),
    "sequential_recurrent_concat": dict(
        encoder_type="sequential_transformer", recurrence="simple", sequential_combine="concat", pooling="mean"
    ),
    "sequential_universal_tied": dict(
        encoder_type="sequential_transformer", share_layers=True, sequential_tie_directions=True
    ),
    "lstm_mean_stable": dict(encoder_type="lstm", pooling="mean", lstm_max_singular_value=0.9),
    "recurrent_gated_last": dict(encoder_type="recurrent", recurrence="gated", pooling="last"),
    "lstm_forward": dict(encoder_type="lstm", lstm_bidirectional=False),
}

VARIANTS = {**{name: dict(v.fields) for name, v in _TABLE.items()}, **EXTRA}

HAS_ATTENTION = {name for name, kw in VARIANTS.items() if kw.get("encoder_type", "transformer") != "lstm"
                 and kw.get("encoder_type") != "recurrent" or kw.get("num_attention_layers")}


def variant_config(name, **overrides):
    from recurrent_mlm import RecurrentMLMConfig

    return RecurrentMLMConfig(**tiny_config_kwargs(**{**VARIANTS[name], **overrides}))
