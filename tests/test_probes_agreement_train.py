"""Trained agreement probe: the split (stratified, fixed, readable by run_glue's file loader), the random copy
of a model, and the analysis of finished runs from their eval_predictions.jsonl (sweep and single-run layouts)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from recurrent_mlm.glue.ece_metric import expected_calibration_error
from recurrent_mlm.probes.agreement_train import (
    AgreementTrainArgs,
    analyse_runs,
    make_random_init,
    run_agreement_train,
    write_split,
)
from tests.conftest import FIXTURES, tiny_config_kwargs


def _linzen(folder, per_stratum=(30, 20, 10)):
    """A Linzen-layout set of our own: singular and plural subjects with 0-2 attractors, plus one broken item."""
    folder.mkdir(parents=True, exist_ok=True)
    text, gold = [], []
    for number, (verb, other) in (("singular", ("is", "are")), ("plural", ("are", "is"))):
        noun = "dog" if number == "singular" else "dogs"
        for attractors, count in enumerate(per_stratum):
            attractor = ["near the cats", "near the cats and the birds"][: attractors][-1:] if attractors else []
            for i in range(count):
                words = ["the", noun, *(" ".join(attractor).split()), verb, f"happy{i}", ".", "<eos>"]
                text.append(" ".join(words))
                gold.append(f"{words.index(verb)}\t{verb}\t{other}\t{attractors}")
    text.append("the men lie down . <eos>")
    gold.append("2\tlie\tlie\t0")
    (folder / "subj_agr_filtered.text").write_text("\n".join(text) + "\n")
    (folder / "subj_agr_filtered.gold").write_text("\n".join(gold) + "\n")
    return folder


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_split_is_stratified_fixed_and_readable_by_run_glue(tmp_path):
    from recurrent_mlm.glue.data import load_custom_files

    linzen = _linzen(tmp_path / "linzen")
    info = write_split(linzen, tmp_path / "a", test_fraction=0.2, seed=0)
    assert info["left_out"] == 1 and info["train"] + info["test"] == 120
    train, test = _read(tmp_path / "a" / "train.csv"), _read(tmp_path / "a" / "test.csv")
    assert not {r["item"] for r in train} & {r["item"] for r in test}
    for label in ("singular", "plural"):
        for attractors, size in zip("012", (30, 20, 10)):
            in_test = sum(r["label"] == label and r["attractors"] == attractors for r in test)
            assert in_test == round(0.2 * size)  # every stratum split in the same proportion
    first = next(r for r in train if r["attractors"] == "2")
    assert first["sentence"].endswith("near the cats and the birds") and first["label"] in ("singular", "plural")
    # Fixed: the same seed gives the same files; another seed another test set.
    write_split(linzen, tmp_path / "b", test_fraction=0.2, seed=0)
    assert (tmp_path / "a" / "test.csv").read_text() == (tmp_path / "b" / "test.csv").read_text()
    write_split(linzen, tmp_path / "c", test_fraction=0.2, seed=1)
    assert (tmp_path / "a" / "test.csv").read_text() != (tmp_path / "c" / "test.csv").read_text()
    # run_glue.py's own reader takes the files with the flags the probe passes.
    data = load_custom_files(train_file=str(tmp_path / "a" / "train.csv"), validation_file=str(tmp_path / "a" / "test.csv"),
                             text_columns=["sentence"], label_column="label")
    assert data.label_names == ["plural", "singular"] and len(data.splits["validation"]) == len(test)


def _fake_run(folder, test, correct_share, seed, confidence):
    """An eval_predictions.jsonl in run_glue's format: the first `correct_share` of the items right."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    right = rng.random(len(test)) < correct_share
    lines = []
    for i, (row, ok) in enumerate(zip(test, right)):
        label = ["plural", "singular"].index(row["label"])
        prediction = label if ok else 1 - label
        probabilities = [confidence, 1 - confidence] if prediction == 0 else [1 - confidence, confidence]
        lines.append(json.dumps({"split": "validation", "index": i, "id": str(i), "label": label, "prediction": prediction,
                                 "probabilities": probabilities, "correct": bool(ok)}))
    (folder / "eval_predictions.jsonl").write_text("\n".join(lines) + "\n")
    return right


def test_analysis_of_finished_runs(tmp_path):
    write_split(_linzen(tmp_path / "linzen"), tmp_path / "split", seed=0)
    test = _read(tmp_path / "split" / "test.csv")
    attractors = np.array([int(r["attractors"]) for r in test])
    runs = tmp_path / "sweep" / "runs"
    truth = {}
    for model, share in (("pretrained", 0.9), ("pretrained-random-init", 0.5)):
        for seed in (1, 2):
            truth[(model, seed)] = _fake_run(runs / model / f"lr_5e-05_seed_{seed}", test, share, seed, 0.8)
    analysis = analyse_runs(tmp_path / "sweep", tmp_path / "split")
    assert analysis["test_items"] == len(test) and len(analysis["runs"]) == 4
    model = next(m for m in analysis["models"] if m["model"] == "pretrained")
    accuracies = [truth[("pretrained", s)].mean() for s in (1, 2)]
    assert model["learning_rate"] == 5e-05 and sorted(model["seeds"]) == [1, 2]
    assert model["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert model["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    by_two = [truth[("pretrained", s)][attractors == 2].mean() for s in (1, 2)]
    assert model["by_attractors"]["2"]["mean"] == pytest.approx(np.mean(by_two))
    run = next(r for r in analysis["runs"] if r["model"] == "pretrained" and r["seed"] == 1)
    rows = [json.loads(line) for line in (runs / "pretrained" / "lr_5e-05_seed_1" / "eval_predictions.jsonl").read_text().splitlines()]
    expected = expected_calibration_error([r["probabilities"] for r in rows], [r["label"] for r in rows])["ece"]
    assert run["ece"] == pytest.approx(expected)
    # A single run's folder (eval_predictions.jsonl at its top, metadata in all_results.json) reads too.
    single = tmp_path / "single"
    _fake_run(single, test, 1.0, 0, 0.99)
    (single / "all_results.json").write_text(json.dumps({"model_label": "solo", "learning_rate": 1e-4, "seed": 7}))
    result = run_agreement_train(AgreementTrainArgs(runs_dir=str(single), split_dir=str(tmp_path / "split"),
                                                    output_dir=str(tmp_path / "report")))
    (solo,) = result.summary["models"]
    assert (solo["model"], solo["learning_rate"], solo["seeds"], solo["accuracy"]["mean"]) == ("solo", 1e-4, [7], 1.0)
    assert "| solo | 0.0001 | 1 | 1.000 ± 0.000" in (tmp_path / "report" / "agreement_train.md").read_text()
    assert (tmp_path / "report" / "agreement_train.png").stat().st_size > 0


def test_random_init_copy(tmp_path):
    from transformers import AutoModelForMaskedLM

    from transformers import BertTokenizer

    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM

    torch.manual_seed(0)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])})
    source = tmp_path / "pretrained"
    model = RecurrentMLMForMaskedLM(RecurrentMLMConfig(**tiny_config_kwargs(vocab_size=7), recurrence="simple"))
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    copy = make_random_init(source, tmp_path / "copy", seed=3)
    fresh = AutoModelForMaskedLM.from_pretrained(copy)
    assert type(fresh) is RecurrentMLMForMaskedLM and fresh.config.recurrence == "simple"
    assert not torch.equal(fresh.model.embeddings.word_embeddings.weight, model.model.embeddings.word_embeddings.weight)
    assert (copy / "tokenizer.json").exists() or (copy / "vocab.txt").exists()
    assert json.loads((copy / "random_init.json").read_text())["seed"] == 3
    with pytest.raises(Exception, match="--model"):
        AgreementTrainArgs(linzen=str(FIXTURES / "agreement" / "linzen")).check()


@pytest.mark.slow
def test_end_to_end_through_the_fine_tuning_engine(tmp_path):
    """Split, random copy, a one-epoch sweep with recurrent_mlm.glue.run_glue in-process, analysis."""
    from transformers import BertTokenizer

    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM

    linzen = _linzen(tmp_path / "linzen", per_stratum=(8, 6, 4))
    words = set((linzen / "subj_agr_filtered.text").read_text().split())
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    source = tmp_path / "pretrained"
    RecurrentMLMForMaskedLM(RecurrentMLMConfig(**tiny_config_kwargs(vocab_size=len(vocab)))).save_pretrained(source)
    tokenizer.save_pretrained(source)
    result = run_agreement_train(AgreementTrainArgs(
        model=[str(source)], linzen=str(linzen), output_dir=str(tmp_path / "out"), learning_rates=[1e-3], seeds=[1],
        num_train_epochs=1, per_device_train_batch_size=8, max_seq_length=16,
    ))  # fmt: skip
    models = {m["model"]: m for m in result.summary["models"]}
    assert set(models) == {"pretrained", "pretrained-random-init"}
    assert all(m["accuracy"]["n"] == 1 and 0 <= m["accuracy"]["mean"] <= 1 for m in models.values())
    assert (tmp_path / "out" / "finetune" / "runs" / "pretrained" / "lr_0.001_seed_1" / "eval_predictions.jsonl").is_file()
    assert (tmp_path / "out" / "random_init" / "pretrained" / "random_init.json").is_file()
    assert result.summary["split"]["test"] == 2 * round(0.2 * 8) + 2 * round(0.2 * 6) + 2 * round(0.2 * 4)
