"""FSDP2 (`recurrent_mlm.sharding`) over two gloo processes on CPU, every variant: the losses of one process,
a sharded checkpoint that resumes exactly, a consolidated folder that `from_pretrained` loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, subprocess_env
from tests.fsdp_worker import (
    ACCELERATE_VARIANTS,
    CHECKPOINT_AFTER,
    LEARNING_RATE,
    batches,
    build,
    probe_input,
    summed_loss,
)
from tests.variants import VARIANTS

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason="needs gloo"
)


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """One spawned job (two processes) runs every variant; each test reads its part."""
    out = tmp_path_factory.mktemp("fsdp")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "fsdp_worker.py"), str(out)],
        env=subprocess_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "results.json").read_text())


def single_process_losses(name: str) -> tuple[list[float], torch.nn.Module]:
    model = build(name, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    losses = []
    for ids, mask, labels in batches(model.config.vocab_size):
        loss = summed_loss(model, ids, mask, labels) / (labels != -100).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, model


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_sharded_training_matches_one_process(sharded_run, name):
    out, results = sharded_run
    result = results[name]
    expected, _ = single_process_losses(name)
    assert result["losses"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # Resumed from the sharded checkpoint after step 2: the same steps 3 and 4 as the uninterrupted run.
    assert result["resumed_losses"] == pytest.approx(result["losses"][CHECKPOINT_AFTER:], rel=1e-6, abs=1e-6)
    # Tied embeddings stay one tensor; the encoder layers (one for a shared-layer stack) are the units.
    assert result["tied"]
    assert all(".embeddings" not in unit for unit in result["units"])
    config = build(name, seed=0).config
    if config.encoder_type not in ("lstm", "recurrent") or config.num_attention_layers:
        assert any(".layer." in unit for unit in result["units"])
    if config.share_layers:
        assert not any(unit.endswith(".layer.1") for unit in result["units"])

    # The consolidated folder is an ordinary checkpoint: one process, no sharding, same outputs.
    from transformers import AutoModelForMaskedLM

    loaded = AutoModelForMaskedLM.from_pretrained(out / name).eval()
    ids, mask = probe_input(config.vocab_size)
    with torch.no_grad():
        logits = loaded(input_ids=ids, attention_mask=mask).logits
    # Same weights in another process: equal up to float32 summation order (thread counts may differ).
    expected_logits = torch.tensor(result["probe_logits"])
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5 * expected_logits.abs().max().item())
    assert loaded.cls.predictions.decoder.weight is loaded.model.embeddings.word_embeddings.weight


@pytest.mark.slow
@pytest.mark.parametrize("name", ACCELERATE_VARIANTS)
def test_accelerate_fsdp_config_matches_one_process(sharded_run, name):
    """configs/accelerate/fsdp.yaml through Accelerate's own FSDP2 wrapping: the losses of one process."""
    _, results = sharded_run
    expected, _ = single_process_losses(name)
    assert results["accelerate"][name]["losses"] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_sharding_units_skip_tied_embeddings(tiny_config):
    from recurrent_mlm import RecurrentMLMForMaskedLM, RecurrentMLMModel
    from recurrent_mlm.sharding import sharding_units

    tied = [name for name, _ in sharding_units(RecurrentMLMForMaskedLM(tiny_config()))]
    assert tied == ["model.encoder.layer.1", "model.encoder.layer.0"]  # innermost first; embeddings in the root
    untied = [name for name, _ in sharding_units(RecurrentMLMForMaskedLM(tiny_config(tie_word_embeddings=False)))]
    assert untied == ["model.encoder.layer.1", "model.encoder.layer.0", "model.embeddings"]
    base = [name for name, _ in sharding_units(RecurrentMLMModel(tiny_config(share_layers=True)))]
    assert base == ["encoder.layer.0", "embeddings"]
