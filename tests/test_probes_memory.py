"""Memory probe: windows, the windowed loss against the model's own loss, models whose answers are known (no
context at all; no mixing between positions), LSTM gate norms and the projection, and a bare encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM, RecurrentMLMModel
from recurrent_mlm.probes.common import load_model
from recurrent_mlm.probes.memory import (
    MemoryArgs,
    lstm_recurrent_norms,
    prefix_decay,
    probe_memory,
    window_sequences,
    windowed_loss,
)
from tests.conftest import FIXTURES, tiny_config_kwargs

TEXT = FIXTURES / "pretraining" / "text"


@pytest.fixture(scope="module")
def tokenizer():
    from recurrent_mlm.pretraining.readers import file_records, resolve_data_files
    from recurrent_mlm.pretraining.tokenizer import train_wordpiece_tokenizer

    texts = [r["text"] for path in resolve_data_files([TEXT], "--train_file") for r in file_records(path)]
    return train_wordpiece_tokenizer(texts, 120, min_frequency=1)


def _save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _config(tokenizer, **overrides):
    return RecurrentMLMConfig(**tiny_config_kwargs(vocab_size=len(tokenizer), **overrides))


def test_window_sequences():
    masked = np.arange(20).reshape(2, 10)
    labels = np.where(masked % 3 == 0, masked, -100)
    sequences, targets = window_sequences(masked, labels, 3, cls_id=100, sep_id=101)
    assert [s.tolist() for s in sequences[:3]] == [[100, 1, 2, 3, 101], [100, 4, 5, 6, 101], [100, 7, 8, 101]]
    assert len(sequences) == 6 and all(len(s) == len(t) for s, t in zip(sequences, targets))
    assert [t.tolist() for t in targets[:3]] == [[-100, -100, -100, 3, -100], [-100, -100, -100, 6, -100], [-100, -100, -100, -100]]
    assert sum(int((t != -100).sum()) for t in targets) == int((labels[:, 1:-1] != -100).sum())  # same masked tokens


def test_windowed_loss_whole_block_is_the_model_loss_and_no_context_model_is_flat(tokenizer, tmp_path):
    torch.manual_seed(0)
    model = RecurrentMLMForMaskedLM(_config(tokenizer, recurrence="simple"))
    loaded = load_model(_save(model, tokenizer, tmp_path / "m"), need_mlm_head=True, device="cpu")
    masked = torch.randint(5, len(tokenizer), (3, 18))
    masked[:, 0], masked[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    labels = torch.full_like(masked, -100)
    labels[:, 2:-1:3] = torch.randint(5, len(tokenizer), (3, 5))
    result = windowed_loss(loaded, masked.numpy(), labels.numpy(), [2, 4, 8, 64], 0.05, batch_size=4)
    assert [r["window"] for r in result["rows"]] == [2, 4, 8, 16] and result["rows"][-1]["full"]
    with torch.no_grad():
        expected = loaded.model(input_ids=masked, labels=labels).loss.item()
    assert result["full_context_loss"] == pytest.approx(expected, rel=1e-5)
    # A head that ignores its input (logits = decoder bias): the same loss whatever the context.
    head = loaded.model.cls.predictions.transform.LayerNorm
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    flat = windowed_loss(loaded, masked.numpy(), labels.numpy(), [2, 4, 8], 0.05, batch_size=4)
    losses = [r["loss"] for r in flat["rows"]]
    assert max(losses) - min(losses) < 1e-5 and flat["smallest_window_within_tolerance"] == 2


@pytest.mark.parametrize("mode", ["replace", "remove"])
def test_prefix_decay_is_zero_without_mixing_and_positive_with_it(tokenizer, tmp_path, mode):
    torch.manual_seed(0)
    model = RecurrentMLMModel(_config(tokenizer))
    loaded = load_model(_save(model, tokenizer, tmp_path / "m"), need_mlm_head=False, device="cpu")
    ids = torch.randint(5, len(tokenizer), (4, 20)).numpy()
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    mixing = prefix_decay(loaded, ids, prefix=6, mode=mode, batch_size=3)
    assert mixing["distances"] == list(range(1, 13)) and mixing["effect_at_1"] > 1e-3
    # No information between positions (attention values zeroed) and, for removal, no position embeddings:
    # every state depends on its own token only, so nothing after the cut changes.
    with torch.no_grad():
        for layer in loaded.model.encoder.layer:
            layer.attention.self.value.weight.zero_()
            layer.attention.self.value.bias.zero_()
        loaded.model.embeddings.position_embeddings.weight.zero_()
    isolated = prefix_decay(loaded, ids, prefix=6, mode=mode, batch_size=3)
    assert max(max(curve) for curve in isolated["layers"]) < 1e-6 and isolated["distance_below_1_percent"] == 1


def test_lstm_norms_and_projection(tokenizer):
    model = RecurrentMLMForMaskedLM(_config(tokenizer, encoder_type="lstm", lstm_max_singular_value=0.5))
    with torch.no_grad():
        model.model.encoder.lstm.weight_hh_l0.mul_(50)
    before = lstm_recurrent_norms(model)
    assert before["applies"] and before["projection_configured"] and before["projection_holds"] is False
    assert {(r["layer"], r["direction"]) for r in before["rows"]} == {(0, "forward"), (0, "backward"), (1, "forward"), (1, "backward")}
    model.project_recurrent_weights()
    after = lstm_recurrent_norms(model)
    assert after["projection_holds"] and after["max"] <= 0.5 * (1 + 1e-5) and after["all_below_one"]
    gate = model.model.encoder.lstm.weight_hh_l1_reverse.detach().chunk(4)[1].double()  # forget gate, layer 1, backward
    row = next(r for r in after["rows"] if r["layer"] == 1 and r["direction"] == "backward" and r["gate"] == "forget")
    assert row["spectral_norm"] == pytest.approx(float(torch.linalg.matrix_norm(gate, ord=2)))
    plain = lstm_recurrent_norms(RecurrentMLMForMaskedLM(_config(tokenizer, recurrence="gated")))
    assert not plain["applies"] and "bounded by construction" in plain["note"]


@pytest.mark.slow
def test_probe_end_to_end_with_and_without_mlm_head(tokenizer, tmp_path):
    torch.manual_seed(0)
    with_head = _save(RecurrentMLMForMaskedLM(_config(tokenizer, encoder_type="lstm")), tokenizer, tmp_path / "mlm")
    args = MemoryArgs(model=with_head, train_file=[str(TEXT)], max_seq_length=34, windows=[4, 8, 16], max_blocks=16,
                      validation_split_percentage=10, output_dir=str(tmp_path / "out"), device="cpu")
    result = probe_memory(args)
    rows = result.summary["windowed_loss"]["rows"]
    assert [r["window"] for r in rows] == [4, 8, 16, 32] and result.summary["data"]["blocks"] == 16
    assert len({r["masked_tokens"] for r in rows}) == 1  # the same masked tokens for every window
    assert result.summary["lstm_norms"]["applies"] and not result.summary["lstm_norms"]["projection_configured"]
    assert json.loads((tmp_path / "out" / "memory.json").read_text())["prefix_decay"]["prefix_tokens"] == 16
    assert (tmp_path / "out" / "memory.png").stat().st_size > 0
    # A bare encoder (no MLM head, like all-MiniLM-L6-v2): the hidden-state parts only, and it says so.
    bare = _save(RecurrentMLMModel(_config(tokenizer)), tokenizer, tmp_path / "bare")
    result = probe_memory(MemoryArgs(model=bare, train_file=[str(TEXT)], max_seq_length=34, max_blocks=8,
                                     validation_split_percentage=10, device="cpu"))
    assert result.summary["windowed_loss"] is None and "no trained masked-LM head" in result.summary["windowed_loss_note"]
    assert result.summary["prefix_decay"]["effect_at_1"] > 0 and "no trained masked-LM head" in result.markdown()
