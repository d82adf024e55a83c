"""Tiny configurations of every encoder variant (and a few option combinations), for parametrized tests."""

from tests.conftest import tiny_config_kwargs

VARIANTS = {
    "bert": dict(),
    "recurrent_bert": dict(recurrence="simple"),
    "gated_bert": dict(recurrence="gated"),
    "recurrent_k3_forward_layer1": dict(
        recurrence="simple", recurrence_chunk_size=3, recurrence_direction="forward", recurrence_layers=[1]
    ),
    "gated_backward": dict(recurrence="gated", recurrence_direction="backward", recurrence_chunk_size=2),
    "universal_transformer": dict(share_layers=True),
    "sequential_transformer": dict(encoder_type="sequential_transformer"),
    "sequential_recurrent_concat": dict(
        encoder_type="sequential_transformer", recurrence="simple", sequential_combine="concat", pooling="mean"
    ),
    "sequential_universal_transformer": dict(
        encoder_type="sequential_transformer", share_layers=True, sequential_tie_directions=True
    ),
    "lstm": dict(encoder_type="lstm"),
    "lstm_mean_stable": dict(encoder_type="lstm", pooling="mean", lstm_max_singular_value=0.9),
    "lstm_forward": dict(encoder_type="lstm", lstm_bidirectional=False),
    "hybrid_lstm": dict(encoder_type="lstm", num_attention_layers=1),
    "recurrent": dict(encoder_type="recurrent", recurrence="gated", pooling="last"),
    "hybrid_recurrent": dict(encoder_type="recurrent", recurrence="simple", num_attention_layers=1),
}

HAS_ATTENTION = {name for name, kw in VARIANTS.items() if kw.get("encoder_type", "transformer") != "lstm"
                 and kw.get("encoder_type") != "recurrent" or kw.get("num_attention_layers")}


def variant_config(name, **overrides):
    from recurrent_mlm import RecurrentMLMConfig

    return RecurrentMLMConfig(**tiny_config_kwargs(**{**VARIANTS[name], **overrides}))
