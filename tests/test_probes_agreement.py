"""Zero-shot agreement probe: readers of the three layouts, inputs, a rigged model whose answers are known,
calibration and baselines by hand, the masked-position logits, and the refusal of a model with no MLM head."""

from __future__ import annotations

import json
import math

import pytest
import torch

from recurrent_mlm import RecurrentMLMForMaskedLM, RecurrentMLMModel
from recurrent_mlm.probes.agreement import AgreementArgs, _InputBuilder, form_token_ids, score_agreement
from recurrent_mlm.probes.agreement_data import (
    cap_per_condition,
    load_agreement_sets,
    read_gulordava,
    read_linzen,
    read_marvin_linzen,
    verb_number,
)
from recurrent_mlm.probes.common import masked_log_probs, wilson_interval
from recurrent_mlm.cli import UsageError
from tests.conftest import FIXTURES, tiny_config_kwargs

DATA = FIXTURES / "agreement"
SINGULAR = ["is", "has", "laughs", "likes", "himself"]


def _words():
    words = set()
    for path in DATA.rglob("*"):
        if path.suffix in (".text", ".tab", ".tsv"):
            words.update(path.read_text().replace("\t", " ").lower().split())
    for line in (DATA / "linzen" / "subj_agr_filtered.gold").read_text().splitlines():
        words.update(line.split("\t")[1:3])
    return sorted(words - {"zorbles", "zorble", "<eos>"})


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_words()]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})


def _rigged_folder(tokenizer, folder, preferred):
    """An MLM whose head ignores its input: logits are the decoder bias, +1 on the `preferred` words."""
    config_kwargs = tiny_config_kwargs(vocab_size=len(tokenizer))
    from recurrent_mlm import RecurrentMLMConfig

    model = RecurrentMLMForMaskedLM(RecurrentMLMConfig(**config_kwargs, recurrence="simple")).eval()
    head = model.cls.predictions
    with torch.no_grad():
        head.transform.LayerNorm.weight.zero_()
        head.transform.LayerNorm.bias.zero_()
        head.decoder.bias.zero_()
        head.decoder.bias[tokenizer.convert_tokens_to_ids(preferred)] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_readers_parse_the_official_layouts():
    linzen = read_linzen(DATA / "linzen")
    assert [i.target for i in linzen] == [5, 6, 2, 2, 2, 2, 5]
    assert linzen[0].words[-1] == "." and linzen[0].correct == "are" and linzen[0].attractors == 1
    assert [i.broken for i in linzen] == [False] * 5 + [True, False]
    assert [i.number for i in linzen] == ["plural", "singular", "singular", "plural", "singular", None, "singular"]

    gulordava = read_gulordava(DATA / "gulordava" / "generated.tab")
    assert [(i.correct, i.wrong, i.nonce, i.number, i.attractors) for i in gulordava] == [
        ("is", "are", False, "singular", 0), ("is", "are", True, "singular", 0), ("like", "likes", False, "plural", 1)
    ]
    assert gulordava[1].words[gulordava[1].target] == "laughs"  # the slot's own word is never shown

    unscorable = []
    ml = read_marvin_linzen(DATA / "marvin_linzen", unscorable=unscorable)
    assert unscorable == [(5, "prep_anim", "sing_MS_MV_sing_ES")]  # two words differ: no single mask
    agreement = [i for i in ml if i.category == "agreement"]
    assert [(i.correct, i.wrong, i.number) for i in agreement] == [
        ("laughs", "laugh", "singular"), ("laugh", "laughs", "plural"), ("likes", "like", "singular")
    ]
    npi = [i for i in ml if i.category == "npi"]
    assert [i.condition for i in npi] == ["past/intrusive", "past/ungrammatical"]
    assert all(i.words[i.target] == "ever" and i.contrast[i.target] == "ever" and not i.broken for i in npi)
    assert npi[1].contrast[0] == "most"


def test_verb_number_and_cap():
    assert verb_number("is", "are") == "singular" and verb_number("Are", "Is") == "plural"
    assert verb_number("carries", "carry") == "singular" and verb_number("go", "goes") == "plural"
    assert verb_number("lie", "lie") is None
    items = read_marvin_linzen(DATA / "marvin_linzen")
    assert cap_per_condition(items, 1) == items  # one item per condition already
    doubled = items + items
    capped = cap_per_condition(doubled, 1)
    assert len(capped) == len(items) and cap_per_condition(doubled, 1) == capped  # fixed choice


def test_inputs_prefix_whole_and_truncation(tokenizer):
    builder = _InputBuilder(tokenizer, max_length=8)
    words = "the author that the guard likes laughs".split()
    prefix, whole, again = builder.add_many([(words, 5, False), (words, 5, True), (words, 5, False)])
    decode = lambda row: tokenizer.convert_ids_to_tokens(builder.rows[row])  # noqa: E731
    assert decode(prefix) == ["[CLS]", "the", "author", "that", "the", "guard", "[MASK]", "[SEP]"]
    assert again == prefix and len(builder.rows) == 2  # identical inputs are scored once
    # 9 tokens do not fit in 8: the context is cut around the mask, which always stays.
    assert decode(whole) == ["[CLS]", "author", "that", "the", "guard", "[MASK]", "laughs", "[SEP]"]
    assert builder.truncated == 1 and builder.positions[whole] == 5
    ids = form_token_ids(tokenizer, ["is", "zorbles", "laughs"])
    assert ids["zorbles"] is None and ids["is"] == tokenizer.convert_tokens_to_ids("is")


def test_rigged_model_scores_exactly_its_preference(tokenizer, tmp_path):
    """The head always prefers the singular forms by one logit: accuracy is the singular share of the
    covered items, every two-way probability is sigmoid(+-1), and ECE / Brier follow by hand."""
    folder = _rigged_folder(tokenizer, tmp_path / "rigged", SINGULAR)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("is is is are. Has have have laughs laugh laugh like likes likes likes\n")
    args = AgreementArgs(
        model=str(folder), output_dir=str(tmp_path / "out"), data_dir=str(DATA), corpus=[str(corpus)], batch_size=3
    )
    result = score_agreement(args)
    data = result.summary["datasets"]
    assert data["linzen"]["items"] == 7 and data["linzen"]["broken"] == 1
    assert data["linzen"]["covered"] == 5 and data["linzen"]["coverage"] == pytest.approx(5 / 6)
    assert data["marvin_linzen"]["unscorable_pairs"] == 1
    assert data["marvin_linzen"]["coverage_by_category"] == {"agreement": 1.0, "npi": 1.0, "reflexive": 1.0}
    p = 1 / (1 + math.exp(-1))
    expected = {"linzen": 3 / 5, "gulordava": 2 / 3}
    for mode in ("prefix", "whole"):
        for name, share in expected.items():
            block = data[name]["modes"][mode]["overall"]
            assert block["accuracy"] == pytest.approx(share)
            assert block["ece"] == pytest.approx(abs(share - p), abs=1e-6)
            assert block["brier"] == pytest.approx(share * (1 - p) ** 2 + (1 - share) * p**2, abs=1e-6)
            assert block["baseline_no_context"]["accuracy"] == pytest.approx(share)
            assert (block["ci_low"], block["ci_high"]) == pytest.approx(wilson_interval(block["correct"], block["n"]))
        ml = data["marvin_linzen"]["modes"][mode]["by_category"]
        assert ml["agreement"]["accuracy"] == pytest.approx(2 / 3) and ml["reflexive"]["accuracy"] == 0
        assert ml["npi"]["n"] == 2 and ml["npi"]["ties"] == 2 and ml["npi"]["correct"] == 0  # ties are errors
        assert "ece" not in ml["npi"] and "baseline_frequency" not in ml["npi"]
    # Corpus counts (lower-cased like the tokenizer): is 3 > are 1, have 2 > has 1, laugh 2 > laughs 1.
    linzen = data["linzen"]["modes"]["prefix"]["overall"]["baseline_frequency"]
    assert linzen["correct"] == 2 and linzen["n"] == 5
    by_attractors = data["linzen"]["modes"]["prefix"]["by_attractors"]
    assert {k: v["n"] for k, v in by_attractors.items()} == {"0": 2, "1": 3}
    assert data["gulordava"]["modes"]["prefix"]["by_type"]["nonce"]["n"] == 1
    # Files: JSON, Markdown, per-item records (both modes), PNG.
    out = tmp_path / "out"
    summary = json.loads((out / "agreement.json").read_text())
    assert summary["datasets"]["linzen"]["covered"] == 5
    items = [json.loads(line) for line in (out / "agreement_items.jsonl").read_text().splitlines()]
    assert len(items) == 2 * (5 + 3 + 6) and {i["mode"] for i in items} == {"prefix", "whole"}
    assert (out / "agreement.png").stat().st_size > 0
    assert "| linzen | 5 | 1 | 0.833 | 0.600 [" in (out / "agreement.md").read_text()


def test_masked_log_probs_match_full_logits_with_padding():
    """The head applied at the masked rows only equals the model's full logits there (our model and a plain
    transformers BERT), also for padded rows."""
    from transformers import BertConfig, BertForMaskedLM

    from recurrent_mlm import RecurrentMLMConfig

    kwargs = tiny_config_kwargs()
    models = [RecurrentMLMForMaskedLM(RecurrentMLMConfig(**kwargs, recurrence="simple")), BertForMaskedLM(BertConfig(**kwargs))]
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    positions = torch.tensor([8, 3, 0])
    for model in models:
        model.eval()
        with torch.no_grad():
            full = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.double(), dim=-1)
            ours = masked_log_probs(model, ids, mask, positions)
        torch.testing.assert_close(ours.double(), full[torch.arange(3), positions], atol=1e-5, rtol=1e-5)


def test_refuses_a_model_without_mlm_head(tokenizer, tmp_path, capsys):
    from recurrent_mlm import RecurrentMLMConfig
    from recurrent_mlm.probes.__main__ import main

    folder = tmp_path / "encoder"
    RecurrentMLMModel(RecurrentMLMConfig(**tiny_config_kwargs(vocab_size=len(tokenizer)))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(UsageError, match="no trained masked-LM head"):
        score_agreement(AgreementArgs(model=str(folder), data_dir=str(DATA), corpus=None))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["agreement", "--model", str(folder), "--data_dir", str(DATA), "--corpus", "none"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "cls.predictions" in err[0]


def test_cli_prints_the_table(tokenizer, tmp_path, capsys):
    from recurrent_mlm.probes.__main__ import main

    folder = _rigged_folder(tokenizer, tmp_path / "rigged", SINGULAR)
    assert main(["agreement", "--model", str(folder), "--linzen", str(DATA / "linzen"), "--modes", "prefix",
                 "--corpus", "none", "--output_dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| linzen | 5 | 1 | 0.833 | 0.600 [" in printed and "whole" not in printed.split("\n")[2]
    sets = load_agreement_sets()  # nothing given: the bundled MIT sample
    assert set(sets.items) == {"marvin_linzen"} and len(sets.items["marvin_linzen"]) == 1600
