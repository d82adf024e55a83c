"""RecurrentMLMConfig: defaults, solved widths, and impossible combinations named in the error."""

import pytest

from recurrent_mlm import RecurrentMLMConfig, solve_recurrence_hidden_size
from recurrent_mlm.presets import count_parameters


def test_defaults_are_bert_base():
    config = RecurrentMLMConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert config.intermediate_size == 3072 and config.vocab_size == 30522
    assert config.recurrence is None and config.encoder_type == "transformer" and config.pooling == "cls"
    assert config.model_type == "recurrent_mlm"


def test_solved_width_is_2048_at_bert_base():
    assert solve_recurrence_hidden_size(768, 3072) == 2048
    assert RecurrentMLMConfig(recurrence="simple").recurrence_hidden_size == 2048


@pytest.mark.parametrize(
    "shape",
    [dict(), dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)],
    ids=["bert-base", "4x256"],
)
@pytest.mark.parametrize("recurrence", ["simple", "gated"])
def test_recurrent_parameter_count_equals_bert(shape, recurrence):
    bert = count_parameters(RecurrentMLMConfig(**shape))
    ours = count_parameters(RecurrentMLMConfig(recurrence=recurrence, **shape))
    assert abs(ours - bert) / bert <= 0.005


def test_round_trip_keeps_resolved_fields(tmp_path):
    config = RecurrentMLMConfig(
        hidden_size=32, num_attention_heads=4, intermediate_size=64, recurrence="gated", recurrence_layers=[1]
    )
    config.save_pretrained(tmp_path)
    loaded = RecurrentMLMConfig.from_pretrained(tmp_path)
    for field in ("recurrence", "recurrence_layers", "recurrence_hidden_size", "recurrence_direction", "pooling"):
        assert getattr(loaded, field) == getattr(config, field)


def test_layer_selection():
    config = RecurrentMLMConfig(num_hidden_layers=4, recurrence="simple", recurrence_layers=[0, 3])
    assert [config.layer_uses_recurrence(i) for i in range(4)] == [True, False, False, True]
    assert not RecurrentMLMConfig().layer_uses_recurrence(0)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(encoder_type="gru"), "encoder_type"),
        (dict(recurrence="lstm"), "recurrence"),
        (dict(recurrence="simple", recurrence_direction="sideways"), "recurrence_direction"),
        (dict(recurrence="simple", recurrence_chunk_size=0), "recurrence_chunk_size"),
        (dict(recurrence="simple", recurrence_layers=[0, 12]), "recurrence_layers"),
        (dict(recurrence="simple", recurrence_layers=[1, 1]), "recurrence_layers"),
        (dict(recurrence_layers=[0]), "recurrence_layers"),
        (dict(recurrence="simple", recurrence_hidden_size=7), "recurrence_hidden_size"),
        (dict(hidden_size=100, num_attention_heads=12), "num_attention_heads"),
        (dict(encoder_type="lstm", recurrence="simple"), "recurrence"),
        (dict(encoder_type="recurrent"), "recurrence"),
        (dict(num_attention_layers=1), "num_attention_layers"),
        (dict(encoder_type="sequential_transformer", recurrence="simple", recurrence_direction="bidirectional"),
         "recurrence_direction"),
        (dict(pooling="final"), "pooling"),
        (dict(pooling="max"), "pooling"),
        (dict(encoder_type="lstm", share_layers=True), "share_layers"),
        (dict(lstm_max_singular_value=1.0), "lstm_max_singular_value"),
        (dict(sequential_tie_directions=True), "sequential_tie_directions"),
        (dict(recurrence="simple", recurrence_implementation="cuda"), "recurrence_implementation"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_impossible_combinations_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"RecurrentMLMConfig.{field}:"):
        RecurrentMLMConfig(**kwargs)


def test_bert_config_keys_are_accepted():
    # Keys that BERT configs carry must not break conversion or loading.
    config = RecurrentMLMConfig(position_embedding_type="absolute", use_cache=True, gradient_checkpointing=False)
    assert not hasattr(config, "position_embedding_type")
