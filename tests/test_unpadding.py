"""`encode_unpadded` (rows regrouped by length, each group trimmed) gives the padded call's hidden states at
every real token, for every encoder variant and transformers' BERT; `length_groups` is optimal."""

from __future__ import annotations

import itertools

import pytest
import torch

from tests.variants import VARIANTS, variant_config


def _padded_batch(vocab_size: int = 100):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (6, 14), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0  # right padding
    mask[1, :4] = 0  # left padding
    mask[2, 3:] = 0  # short
    mask[4, 5:] = 0  # same length as row 5: a group without padding
    mask[5, 5:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask


@pytest.mark.parametrize("name", list(VARIANTS))
def test_unpadded_equals_padded(name):
    from recurrent_mlm import RecurrentMLMModel
    from recurrent_mlm.unpadding import encode_unpadded

    model = RecurrentMLMModel(variant_config(name)).eval()
    ids, mask = _padded_batch()
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask)
        unpadded = encode_unpadded(model, ids, mask, overhead_tokens=0.0)  # many small groups
        one_group = encode_unpadded(model, ids, mask, overhead_tokens=1e9)
    real = mask.bool()[..., None]
    for result in (unpadded, one_group):
        torch.testing.assert_close(result.last_hidden_state, padded.last_hidden_state * real, rtol=1e-5, atol=1e-5)
        assert (result.last_hidden_state[~mask.bool()] == 0).all()
    rows = [0, 2, 3, 4, 5] if model.config.pooling == "cls" else list(range(6))  # cls reads position 0
    torch.testing.assert_close(unpadded.pooler_output[rows], padded.pooler_output[rows], rtol=1e-5, atol=1e-5)


def test_unpadded_bert_and_gradients():
    from transformers import BertConfig, BertModel

    from recurrent_mlm.unpadding import encode_unpadded

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    ids, mask = _padded_batch()
    types = (torch.arange(14) >= 7).long().expand(6, 14)
    cotangent = torch.randn(6, 14, 32) * mask[..., None]
    grads = []
    for run in (lambda: model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state,
                lambda: encode_unpadded(model, ids, mask, types).last_hidden_state):
        model.zero_grad()
        out = run()
        out.backward(cotangent)
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        if len(grads) == 1:
            expected = out.detach() * mask[..., None]
        else:
            torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_length_groups_is_optimal():
    from recurrent_mlm.unpadding import length_groups

    def cost(groups, lengths, overhead):
        return sum(len(g) * max(lengths[i] for i in g) + overhead for g in groups)

    g = torch.Generator().manual_seed(0)
    for trial in range(20):
        lengths = torch.randint(1, 30, (7,), generator=g).tolist()
        overhead = float(trial)
        got = length_groups(lengths, overhead)
        assert sorted(i for group in got for i in group) == list(range(7))
        # brute force over the cuts of the sorted order (optimal partitions are contiguous runs in it)
        order = sorted(range(7), key=lambda i: lengths[i])
        best = min(
            cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, 7))], lengths, overhead)
            for r in range(7) for cuts in itertools.combinations(range(1, 7), r)
        )
        assert cost(got, lengths, overhead) == pytest.approx(best)
    assert length_groups([3, 0, 5], 0.0) == [[0], [2]]  # empty rows run nowhere
    assert all(len(group) * 10 <= 20 for group in length_groups([10] * 6, 1e9, max_group_tokens=20))


def test_encode_unpadded_rejects_mismatched_shapes():
    from recurrent_mlm.unpadding import encode_unpadded

    with pytest.raises(ValueError, match="same"):
        encode_unpadded(torch.nn.Identity(), torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4))
