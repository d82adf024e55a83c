"""Encoder variants: causality of the sequential stacks, weight sharing, the LSTM, hybrids, size presets."""

import pytest
import torch
from safetensors import safe_open

from recurrent_mlm import RecurrentMLMForMaskedLM, RecurrentMLMModel
from recurrent_mlm.models.modeling_recurrent_mlm import RecurrentMLMLayer, SequenceContext
from recurrent_mlm.presets import PARAMETER_TOLERANCE, SIZES, VARIANTS, count_parameters, preset_config
from tests.variants import variant_config


def _params(module):
    return sum(p.numel() for p in module.parameters())


def _directional(model, ids, mask=None):
    embeddings = model.embeddings(input_ids=ids)
    context = SequenceContext(mask, embeddings.dtype, model.config._attn_implementation)
    l2r, r2l = model.encoder.directional_outputs(embeddings, context)
    return l2r.last_hidden_state, r2l.last_hidden_state


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(
    "variant", ["sequential_transformer", "sequential_recurrent_concat", "sequential_universal_transformer"]
)
def test_sequential_stacks_never_see_the_other_side(variant, attn):
    model = RecurrentMLMModel(variant_config(variant)).eval()
    model.set_attn_implementation(attn)
    length = 12
    ids = torch.randint(5, 100, (1, length))
    with torch.no_grad():
        l2r, r2l = _directional(model, ids)
        for t in range(length):
            changed = ids.clone()
            changed[0, t + 1 :] = torch.randint(5, 100, (length - t - 1,))  # everything after t
            l2r_changed, _ = _directional(model, changed)
            torch.testing.assert_close(l2r_changed[0, : t + 1], l2r[0, : t + 1], atol=1e-6, rtol=1e-6)
            changed = ids.clone()
            changed[0, :t] = torch.randint(5, 100, (t,))  # everything before t
            _, r2l_changed = _directional(model, changed)
            torch.testing.assert_close(r2l_changed[0, t:], r2l[0, t:], atol=1e-6, rtol=1e-6)
        # ...while the combined output at a position does see both sides.
        full = model(ids).last_hidden_state
        left, right = ids.clone(), ids.clone()
        left[0, 2] = (ids[0, 2] + 1) % 100
        right[0, 9] = (ids[0, 9] + 1) % 100
        assert not torch.allclose(model(left).last_hidden_state[0, 5], full[0, 5])
        assert not torch.allclose(model(right).last_hidden_state[0, 5], full[0, 5])


def test_sequential_pooling_reads_the_last_real_token_left_to_right():
    model = RecurrentMLMModel(variant_config("sequential_transformer")).eval()
    ids = torch.randint(5, 100, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        pooled = model(ids, attention_mask=mask).pooler_output
        l2r, _ = _directional(model, ids, mask)
        expected = model.pooler.activation(model.pooler.dense(torch.stack([l2r[0, 9], l2r[1, 5]])))
    torch.testing.assert_close(pooled, expected)


@pytest.mark.parametrize(
    "variant, layers",
    [("universal_transformer", 1), ("sequential_universal_tied", 1), ("sequential_universal_transformer", 2), ("hybrid_recurrent", None)],
)
def test_shared_layers_are_one_module_applied_many_times(variant, layers, tmp_path):
    config = variant_config(variant, share_layers=True)
    model = RecurrentMLMForMaskedLM(config)
    encoder = model.model.encoder
    one_layer = _params(RecurrentMLMLayer(config, layer_idx=0, **(
        dict(has_attention=False, use_recurrence=True) if config.encoder_type == "recurrent" else
        dict(is_causal=config.encoder_type == "sequential_transformer"))))
    if layers is not None:
        assert _params(encoder) == one_layer * layers  # "sum" combine has no parameters
    else:  # the recurrent stack shares; the attention layer on top is its own
        assert _params(encoder.layer_stack) == one_layer
    model.save_pretrained(tmp_path)  # safetensors refuses aliased tensors: one stored copy per weight
    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        keys = list(saved.keys())
    assert not any(".layer.1." in k for k in keys if "attention_stack" not in k)
    # Applied num_hidden_layers times: hidden states come from the same module at every depth.
    out = model.model(torch.randint(5, 100, (1, 8)), output_hidden_states=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1 + config.num_attention_layers


def test_sequential_untied_has_one_shared_layer_per_direction():
    config = variant_config("sequential_transformer", share_layers=True)
    encoder = RecurrentMLMModel(config).encoder
    assert len(encoder.forward_stack.layer) == 1 and len(encoder.backward_stack.layer) == 1


def test_lstm_sees_left_through_forward_and_right_through_backward():
    # One layer: in a stacked bidirectional LSTM (PyTorch's) each layer's forward direction reads both
    # directions of the layer below, so the one-sidedness holds per layer.
    model = RecurrentMLMModel(variant_config("lstm", num_hidden_layers=1)).eval()
    embeddings = torch.randn(1, 9, 32, requires_grad=True)
    context = SequenceContext(None, embeddings.dtype, "sdpa")
    lstm = model.encoder.lstm
    states, _ = lstm(embeddings)
    half = lstm.hidden_size
    t = 4
    (g_fwd,) = torch.autograd.grad(states[0, t, :half].sum(), embeddings, retain_graph=True)
    (g_bwd,) = torch.autograd.grad(states[0, t, half:].sum(), embeddings)
    per_position = lambda g: g.abs().sum(-1)[0]  # noqa: E731
    assert torch.all(per_position(g_fwd)[t + 1 :] == 0) and torch.all(per_position(g_fwd)[: t + 1] > 0)
    assert torch.all(per_position(g_bwd)[:t] == 0) and torch.all(per_position(g_bwd)[t:] > 0)
    assert model.encoder(embeddings, context).last_hidden_state.shape == (1, 9, 32)


@pytest.mark.parametrize("padded", [False, True])
def test_forward_only_lstm_is_causal(padded):
    """`lstm_bidirectional=False`: no position sees a later token (every layer, MLM logits included)."""
    model = RecurrentMLMForMaskedLM(variant_config("lstm", lstm_bidirectional=False)).eval()
    assert not model.model.encoder.lstm.bidirectional
    length = 10
    ids = torch.randint(5, 100, (1, length))
    mask = torch.ones_like(ids)
    if padded:  # left padding: the real tokens are packed, so padding must not leak into them either
        ids, mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1), torch.cat([torch.zeros(1, 3, dtype=torch.long), mask], 1)
    offset = ids.shape[1] - length
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        for t in range(length - 1):
            changed = ids.clone()
            changed[0, offset + t + 1 :] = torch.randint(5, 100, (length - t - 1,))
            after = model(changed, attention_mask=mask).logits
            torch.testing.assert_close(after[0, offset : offset + t + 1], logits[0, offset : offset + t + 1])
            assert not torch.allclose(after[0, -1], logits[0, -1])  # ... while the future itself does change
    with pytest.raises(ValueError, match="lstm_bidirectional"):
        variant_config("bert", lstm_bidirectional=False)
    config = preset_config("mini", encoder_type="lstm", lstm_bidirectional=False)
    bert = count_parameters(preset_config("mini", "bert"), include_embeddings=False)
    assert abs(count_parameters(config, include_embeddings=False) - bert) / bert <= PARAMETER_TOLERANCE
    assert config.lstm_hidden_size > preset_config("mini", "lstm").lstm_hidden_size  # one direction, wider


@pytest.mark.parametrize("pooling", ["final", "mean", "cls", "last"])
def test_lstm_pooling_options(pooling):
    model = RecurrentMLMModel(variant_config("lstm", pooling=pooling)).double().eval()  # float64: no rounding noise
    ids = torch.randint(5, 100, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).pooler_output
        alone = model(ids[1:, :4]).pooler_output
    torch.testing.assert_close(batched[1], alone[0])


def test_lstm_stability_projection_bounds_every_gate():
    bound = 0.9
    model = RecurrentMLMForMaskedLM(variant_config("lstm", lstm_max_singular_value=bound))
    lstm = model.model.encoder.lstm
    with torch.no_grad():
        for name, weight in lstm.named_parameters():
            if name.startswith("weight_hh"):
                weight.add_(torch.randn_like(weight) * 10)  # a large, destabilising update
    before = {n: w.clone() for n, w in lstm.named_parameters() if not n.startswith("weight_hh")}
    model.project_recurrent_weights()
    for name, weight in lstm.named_parameters():
        if name.startswith("weight_hh"):
            for gate in weight.chunk(4, dim=0):
                assert torch.linalg.matrix_norm(gate, ord=2) <= bound * (1 + 1e-5)
        else:
            assert torch.equal(weight, before[name])  # only recurrent matrices are projected
    # Without the option it is a no-op.
    plain = RecurrentMLMForMaskedLM(variant_config("lstm"))
    snapshot = {k: v.clone() for k, v in plain.state_dict().items()}
    plain.project_recurrent_weights()
    assert all(torch.equal(v, snapshot[k]) for k, v in plain.state_dict().items())


def test_hybrid_adds_bidirectional_attention_on_top():
    for variant in ("hybrid_lstm", "hybrid_recurrent"):
        config = variant_config(variant, num_attention_layers=2)
        encoder = RecurrentMLMModel(config).encoder
        stack = encoder.attention_stack
        assert len(stack.layer) == 2 and all(not layer.attention.self.is_causal for layer in stack.layer)
        assert all(hasattr(layer, "intermediate") for layer in stack.layer)  # plain FFN in attention layers
    recurrent = RecurrentMLMModel(variant_config("recurrent")).encoder
    assert all(layer.attention is None and hasattr(layer, "recurrence") for layer in recurrent.layer_stack.layer)


@pytest.mark.parametrize("size", list(SIZES))
def test_presets_match_bert_parameter_count(size):
    bert = count_parameters(preset_config(size, "bert"), include_embeddings=False)
    for name in VARIANTS:
        config = preset_config(size, name)
        count = count_parameters(config, include_embeddings=False)
        assert abs(count - bert) / bert <= PARAMETER_TOLERANCE, (size, name, count, bert)
        assert config.hidden_size == SIZES[size].hidden_size


def test_preset_errors_and_overrides():
    with pytest.raises(ValueError, match="unknown size"):
        preset_config("huge")
    with pytest.raises(ValueError, match="unknown variant"):
        preset_config("mini", "gru")
    config = preset_config("mini", "recurrent_bert", vocab_size=8000, recurrence_chunk_size=4)
    assert config.vocab_size == 8000 and config.recurrence_chunk_size == 4 and config.recurrence == "simple"
    assert preset_config("mini", encoder_type="lstm", num_attention_layers=1).num_attention_layers == 1
