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
