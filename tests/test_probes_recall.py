"""Associative-recall probe: the generator's invariants, the models it builds (causal controls included), the
learning-rate choice on validation data, and a short run that learns the easiest setting."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recurrent_mlm.probes.recall import (
    CLS,
    MASK,
    NUM_SPECIALS,
    SEP,
    RecallArgs,
    RecallTask,
    build_recall_model,
    curriculum_pairs,
    eval_set,
    generate_recall,
    num_queries,
    run_recall,
    sequence_length,
)
from recurrent_mlm.cli import UsageError


@pytest.mark.parametrize("n_pairs", [1, 2, 7, 16])
def test_generator_invariants(n_pairs):
    task = RecallTask(num_keys=16, num_values=5)
    ids, labels = generate_recall(task, n_pairs, 200, seed=[3, n_pairs])
    q = num_queries(n_pairs)
    assert q == max(1, n_pairs // 2) and ids.shape == labels.shape == (200, sequence_length(n_pairs))
    keys, values = ids[:, 1 : 2 * n_pairs + 1 : 2], ids[:, 2 : 2 * n_pairs + 2 : 2]
    queries = ids[:, 2 * n_pairs + 2 : -1 : 2]
    assert (ids[:, 0] == CLS).all() and (ids[:, 2 * n_pairs + 1] == SEP).all() and (ids[:, -1] == SEP).all()
    assert ((keys >= NUM_SPECIALS) & (keys < NUM_SPECIALS + 16)).all()
    assert ((values >= NUM_SPECIALS + 16) & (values < task.vocab_size)).all()
    assert (ids[:, 2 * n_pairs + 3 :: 2] == MASK).all() and queries.shape[1] == q
    # Labels exactly at the masks, each the value paired with its query's key in the context.
    assert ((labels != -100) == (ids == MASK)).all()
    for row in range(200):
        assert len(set(keys[row])) == n_pairs  # distinct keys
        assert len(set(queries[row])) == q and set(queries[row]) <= set(keys[row])  # distinct, from the context
        pairs = dict(zip(keys[row], values[row]))
        assert list(labels[row][labels[row] != -100]) == [pairs[k] for k in queries[row]]


def test_generator_is_a_function_of_its_seed():
    task = RecallTask(8, 8)
    a, b = generate_recall(task, 4, 50, [1, 2]), generate_recall(task, 4, 50, [1, 2])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], generate_recall(task, 4, 50, [1, 3])[0])
    validation, test = eval_set(task, 4, "validation", 50, 0), eval_set(task, 4, "test", 50, 0)
    assert not np.array_equal(validation[0], test[0])  # fixed, and distinct, evaluation sets
    assert np.array_equal(eval_set(task, 4, "test", 50, 0)[0], test[0])
    with pytest.raises(UsageError, match="distinct"):
        generate_recall(task, 9, 1, 0)


def test_curriculum_unlocks_pairs_in_stages():
    assert [curriculum_pairs([8, 2, 4], step, 30, True) for step in (0, 9, 10, 29)] == [[2], [2], [2, 4], [2, 4, 8]]
    assert curriculum_pairs([8, 2, 4], 0, 30, False) == [2, 4, 8]


def test_models_and_causal_controls():
    from transformers import BertForMaskedLM

    from recurrent_mlm.presets import count_parameters

    task = RecallTask(8, 8)
    shape = dict(hidden_size=32, num_attention_heads=2, num_hidden_layers=2)
    bert = build_recall_model("bert", task, 32, **shape)
    hf = build_recall_model("hf_bert", task, 32, **shape)
    assert isinstance(hf, BertForMaskedLM) and sum(p.numel() for p in hf.parameters()) == sum(p.numel() for p in bert.parameters())
    target = count_parameters(bert.config, include_embeddings=False)
    for name in ("lstm_forward", "recurrent_forward", "hybrid_recurrent"):
        model = build_recall_model(name, task, 32, **shape)
        assert abs(count_parameters(model.config, include_embeddings=False) - target) / target < 0.05
        assert model.config.vocab_size == task.vocab_size and model.config.hidden_dropout_prob == 0
    assert build_recall_model("lstm_forward", task, 32, **shape).config.lstm_bidirectional is False
    assert build_recall_model("recurrent_forward", task, 32, **shape).config.recurrence_direction == "forward"
    # A forward-only model cannot see the value that follows a key: at the mask it sees only the query side.
    model = build_recall_model("recurrent_forward", task, 32, **shape).eval()
    ids, _ = generate_recall(task, 2, 1, 0)
    changed = ids.copy()
    changed[0, -1] = CLS  # after the last mask
    with torch.no_grad():
        a = model(torch.from_numpy(ids)).logits[0, -2]
        b = model(torch.from_numpy(changed)).logits[0, -2]
    torch.testing.assert_close(a, b)
    with pytest.raises(UsageError, match="unknown model"):
        build_recall_model("gru", task, 32)


@pytest.mark.slow
def test_a_short_run_learns_the_easiest_setting(tmp_path):
    """N = 1 (one pair, one query) with 4 values: chance at the start, solved after 60 steps; the learning rate
    is chosen on the validation sets; files and the gate are written."""
    args = RecallArgs(
        models=["bert", "lstm_forward"], num_keys=4, num_values=4, pairs=[1], hidden_size=32, num_attention_heads=2,
        num_hidden_layers=1, steps=60, batch_size=32, eval_every=30, eval_examples=64, learning_rates=[3e-3, 1e-5],
        weight_decay=0.0, output_dir=str(tmp_path), threads=1,
    )
    result = run_recall(args)
    bert = result.summary["models"]["bert"]
    assert bert["best_learning_rate"] == 3e-3  # 1e-5 learns nothing in 60 steps: the validation sets pick 3e-3
    best = next(r for r in result.runs if r.model == "bert" and r.learning_rate == 3e-3)
    assert best.test_correct[1].shape == (64, 1) and best.test_correct[1].mean() == bert["test"]["1"]["accuracy"]
    assert best.curve[0]["step"] == 0 and best.curve[0]["validation_mean"] < 0.6
    assert bert["test"]["1"]["accuracy"] >= 0.9 and result.summary["gate_passes"]["1"]
    assert bert["verdict"]["1"] == "pass"
    assert result.summary["models"]["lstm_forward"]["verdict"]["1"] in ("pass", "fail")
    saved = json.loads((tmp_path / "recall.json").read_text())
    assert saved["models"]["bert"]["test"]["1"]["accuracy"] == bert["test"]["1"]["accuracy"]
    assert (tmp_path / "recall.png").stat().st_size > 0 and "| bert |" in (tmp_path / "recall.md").read_text()
