"""The model's entry: input shapes refused with one clear line, attention weights under SDPA, what padding
gives at model level, gradient checkpointing per encoder, and a pooler that loads the same every time."""

import pytest
import torch

from recurrent_mlm import (
    RecurrentMLMForMaskedLM,
    RecurrentMLMForMultipleChoice,
    RecurrentMLMForQuestionAnswering,
    RecurrentMLMForSequenceClassification,
    RecurrentMLMForTokenClassification,
    RecurrentMLMModel,
)
from tests.variants import VARIANTS, variant_config

HEADS = [
    RecurrentMLMModel,
    RecurrentMLMForMaskedLM,
    RecurrentMLMForSequenceClassification,
    RecurrentMLMForTokenClassification,
    RecurrentMLMForQuestionAnswering,
]
ENCODERS = ["bert", "sequential_transformer", "lstm", "recurrent"]

# (what is wrong, inputs as a function of good (2, 7) ids, expected message)
BAD_INPUTS = [
    ("mask-one-row", lambda ids: dict(input_ids=ids, attention_mask=torch.ones(1, 7, dtype=torch.long)),
     r"attention_mask has shape \(1, 7\) but input_ids is"),
    ("mask-too-short", lambda ids: dict(input_ids=ids, attention_mask=torch.ones(2, 5, dtype=torch.long)),
     r"attention_mask has shape \(2, 5\)"),
    ("mask-3d", lambda ids: dict(input_ids=ids, attention_mask=torch.ones(2, 1, 7, dtype=torch.long)),
     "attention_mask has shape"),
    ("empty-batch", lambda ids: dict(input_ids=ids[:0]), "empty batch"),
    ("zero-length", lambda ids: dict(input_ids=ids[:, :0]), "zero-length sequences"),
    ("1d-input", lambda ids: dict(input_ids=ids[0]), "add a batch dimension"),
    ("3d-input", lambda ids: dict(input_ids=ids[None]), r"input_ids must be \(batch, seq\)"),
    ("token-types", lambda ids: dict(input_ids=ids, token_type_ids=ids[:, :3]), "token_type_ids has shape"),
    ("positions", lambda ids: dict(input_ids=ids, position_ids=torch.arange(7)), "position_ids has shape"),
    ("embeds-width", lambda ids: dict(inputs_embeds=torch.zeros(2, 7, 5)), "hidden_size=32"),
    ("both", lambda ids: dict(input_ids=ids, inputs_embeds=torch.zeros(2, 7, 32)), "exactly one"),
]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("head", HEADS, ids=lambda h: h.__name__.replace("RecurrentMLM", ""))
def test_bad_input_shapes_are_one_clear_error(head, encoder):
    model = head(variant_config(encoder)).eval()
    ids = torch.randint(5, 100, (2, 7))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids))  # the good batch runs
        for case, make, message in BAD_INPUTS:
            with pytest.raises(ValueError, match=message):
                model(**make(ids))
                pytest.fail(f"{case}: accepted")


@pytest.mark.parametrize("encoder", ENCODERS)
def test_bad_multiple_choice_shapes_are_one_clear_error(encoder):
    model = RecurrentMLMForMultipleChoice(variant_config(encoder)).eval()
    ids = torch.randint(5, 100, (2, 3, 7))  # (batch, choices, seq)
    with torch.no_grad():
        assert model(ids, attention_mask=torch.ones_like(ids)).logits.shape == (2, 3)
        with pytest.raises(ValueError, match="input_ids must be \\(batch, num_choices, seq\\)"):
            model(ids[0])
        with pytest.raises(ValueError, match="attention_mask has shape \\(2, 7\\)"):
            model(ids, attention_mask=torch.ones(2, 7, dtype=torch.long))
        with pytest.raises(ValueError, match="empty batch"):
            model(ids[:0])
        with pytest.raises(ValueError, match="zero-length"):
            model(ids[:, :, :0])


@pytest.mark.parametrize("variant", ["bert", "sequential_transformer", "hybrid_lstm"])
def test_output_attentions_under_sdpa_warns_and_returns_eager_weights(variant):
    model = RecurrentMLMModel(variant_config(variant)).double().eval()
    ids = torch.randint(5, 100, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model(ids, attention_mask=mask, output_attentions=True)
    model.set_attn_implementation("sdpa")
    with torch.no_grad(), pytest.warns(UserWarning, match="run eager attention"):
        sdpa = model(ids, attention_mask=mask, output_attentions=True)
    assert model.config._attn_implementation == "sdpa"  # only that call ran eager
    layers = {"bert": 2, "sequential_transformer": 4, "hybrid_lstm": 1}[variant]
    assert len(sdpa.attentions) == layers and all(a.shape == (2, 4, 7, 7) for a in sdpa.attentions)
    for got, want in zip(sdpa.attentions, eager.attentions):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(sdpa.last_hidden_state, eager.last_hidden_state)


def test_output_attentions_of_an_encoder_without_attention_is_empty_and_quiet(recwarn):
    model = RecurrentMLMModel(variant_config("lstm")).eval()
    with torch.no_grad():
        out = model(torch.randint(5, 100, (2, 7)), output_attentions=True)
    assert out.attentions == ()
    assert not [w for w in recwarn if "attention" in str(w.message)]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_padding_at_model_level_needs_position_ids(variant):
    """The recurrences and attention never let padding reach a real token, but BERT's absolute positions count
    padding too: left or ragged padding gives the unpadded outputs when `position_ids` number the real tokens."""
    model = RecurrentMLMModel(variant_config(variant)).double().eval()
    tokens = torch.randint(5, 100, (1, 6))
    # Ragged: padding at the start, in the middle and at the end of one row.
    ids = torch.tensor([[0, 0, *tokens[0, :2].tolist(), 0, *tokens[0, 2:].tolist(), 0]])
    mask = (ids != 0).long()
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    with torch.no_grad():
        alone = model(tokens)
        ragged = model(ids, attention_mask=mask, position_ids=positions)
        shifted = model(ids, attention_mask=mask)  # positions 2, 3, 5, ... instead of 0, 1, 2, ...
    real = mask[0].bool()
    torch.testing.assert_close(ragged.last_hidden_state[0, real], alone.last_hidden_state[0])
    assert not torch.allclose(shifted.last_hidden_state[0, real], alone.last_hidden_state[0])
    if model.config.pooling != "cls":  # CLS pooling reads position 0, padding here
        torch.testing.assert_close(ragged.pooler_output, alone.pooler_output)


def test_lstm_refuses_gradient_checkpointing_with_one_clear_error():
    config = variant_config("lstm")
    with pytest.raises(ValueError, match="nothing to checkpoint in the LSTM encoder"):
        config.check_gradient_checkpointing()
    model = RecurrentMLMForMaskedLM(config)
    with pytest.raises(ValueError, match="nothing to checkpoint in the LSTM encoder"):
        model.activation_checkpointing_enable()
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())
    model.train()(torch.randint(5, 100, (2, 7)))  # still trains, without checkpointing
    variant_config("hybrid_lstm").check_gradient_checkpointing()  # its attention layers are checkpointed


def test_pooler_loads_the_same_every_time(tmp_path):
    """MLM checkpoints hold no pooler: a classification head loaded from one gets a fixed pooler, whatever the
    global RNG state; a pooler that is in the checkpoint is loaded as it is."""
    RecurrentMLMForMaskedLM(variant_config("recurrent_bert")).save_pretrained(tmp_path / "mlm")
    poolers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = RecurrentMLMForSequenceClassification.from_pretrained(tmp_path / "mlm", num_labels=2)
        poolers.append(model.model.pooler.dense.weight.detach().clone())
    assert torch.equal(poolers[0], poolers[1])
    assert 0.01 < poolers[0].std() < 0.03  # BERT's initial distribution, normal(0, initializer_range=0.02)
    with torch.no_grad():
        model.model.pooler.dense.weight.add_(1.0)
    model.save_pretrained(tmp_path / "clf")
    reloaded = RecurrentMLMForSequenceClassification.from_pretrained(tmp_path / "clf")
    assert torch.equal(reloaded.model.pooler.dense.weight, poolers[0] + 1.0)
