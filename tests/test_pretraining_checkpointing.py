"""Checkpoints: pickle-free state round trips, atomic saves, rotation, and finding the checkpoint to resume."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from recurrent_mlm.pretraining import checkpointing
from recurrent_mlm.pretraining.checkpointing import (
    CheckpointManager,
    capture_rng_state,
    join_tensors,
    latest_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
    restore_rng_state,
    split_tensors,
)
from recurrent_mlm.cli import UsageError
from recurrent_mlm.optim import build_optimizer


class SimulatedCrash(BaseException):
    """Stands for the process being killed (not an Exception: nothing may catch and 'handle' it)."""


@pytest.fixture
def accelerator():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    acc = Accelerator(cpu=True)
    yield acc
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def trained(tiny_config, steps: int = 2):
    from transformers import get_scheduler

    from recurrent_mlm import RecurrentMLMForMaskedLM

    model = RecurrentMLMForMaskedLM(tiny_config(recurrence="simple")).train()
    optimizer = build_optimizer(model, 1e-3)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=1, num_training_steps=10)
    ids = torch.randint(5, 100, (2, 16))
    for _ in range(steps):
        labels = torch.where(torch.rand(2, 16) < 0.3, ids, -100)
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return model, optimizer, scheduler


def test_optimizer_scheduler_and_rng_round_trip_without_pickle(tiny_config):
    _, optimizer, scheduler = trained(tiny_config)
    for state in (optimizer.state_dict(), scheduler.state_dict()):
        tree, tensors = split_tensors(state)
        restored = join_tensors(json.loads(json.dumps(tree)), tensors)
        assert restored.keys() == state.keys()
    tree, tensors = split_tensors(optimizer.state_dict())
    restored = join_tensors(tree, tensors)
    assert list(restored["state"]) == list(optimizer.state_dict()["state"])  # int keys survive JSON
    assert restored["param_groups"][0]["betas"] == optimizer.param_groups[0]["betas"]  # tuples too

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    tree, tensors = split_tensors(capture_rng_state())
    saved = join_tensors(json.loads(json.dumps(tree)), tensors)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_split_tensors_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match="without pickle"):
        split_tensors({"fn": object()})


def test_save_load_rotate(accelerator, tiny_config, tmp_path):
    from transformers import get_scheduler

    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.pretraining.tokenizer import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(["some words for a tiny vocabulary"] * 10, 60, min_frequency=1)
    model, optimizer, scheduler = trained(tiny_config)
    model, optimizer = accelerator.prepare(model, optimizer)
    manager = CheckpointManager(accelerator, tmp_path, total_limit=2)
    for step in (1, 2, 3):
        manager.save(step, model=model, optimizer=optimizer, scheduler=scheduler, tokenizer=tokenizer, trainer_state={"global_step": step, "epoch": 0, "batches_in_epoch": step, "per_device_train_batch_size": 2})
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    files = {p.name for p in (tmp_path / "checkpoint-3").iterdir()}
    assert {"model.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_state_0.json", "trainer_state.json", "tokenizer.json", "config.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)

    fresh = RecurrentMLMForMaskedLM(tiny_config(recurrence="simple"))
    fresh_optimizer = build_optimizer(fresh, 1e-3)
    fresh_scheduler = get_scheduler("linear", fresh_optimizer, num_warmup_steps=1, num_training_steps=10)
    fresh, fresh_optimizer = accelerator.prepare(fresh, fresh_optimizer)
    state = manager.load(tmp_path / "checkpoint-3", model=fresh, optimizer=fresh_optimizer, scheduler=fresh_scheduler)
    assert state["global_step"] == 3 and state["world_size"] == 1
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    assert fresh.cls.predictions.decoder.weight is fresh.model.embeddings.word_embeddings.weight  # still tied
    for a, b in zip(optimizer.state_dict()["state"].values(), fresh_optimizer.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()


def test_a_save_killed_midway_leaves_the_previous_checkpoint_latest(accelerator, tiny_config, tmp_path, monkeypatch):
    from recurrent_mlm.pretraining.tokenizer import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(["a tiny vocabulary"] * 10, 40, min_frequency=1)
    model, optimizer, scheduler = trained(tiny_config)
    manager = CheckpointManager(accelerator, tmp_path, total_limit=3)
    kwargs = dict(model=model, optimizer=optimizer, scheduler=scheduler, tokenizer=tokenizer, trainer_state={})
    manager.save(5, **kwargs)
    for event in ("checkpoint_partial", "checkpoint_before_rename"):

        def crash(name, **info):
            if name == event:
                raise SimulatedCrash(name)

        monkeypatch.setattr(checkpointing, "fault_point", crash)
        with pytest.raises(SimulatedCrash):
            manager.save(10, **kwargs)
        assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-5"
        assert (tmp_path / ".checkpoint-10.tmp").is_dir()  # the half-written one, ignored
        assert resolve_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-5"
    monkeypatch.setattr(checkpointing, "fault_point", lambda *a, **k: None)
    manager.save(10, **kwargs)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10]
    assert not (tmp_path / ".checkpoint-10.tmp").exists()
    manager.save(10, **kwargs)  # re-saving a step replaces it
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10]


def test_resolve_checkpoint_errors(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint in"):
        resolve_checkpoint("latest", tmp_path)
    (tmp_path / "checkpoint-7").mkdir()  # no trainer_state.json: incomplete
    with pytest.raises(UsageError, match="no checkpoint in"):
        resolve_checkpoint("latest", tmp_path)
    with pytest.raises(UsageError, match="not a complete checkpoint"):
        resolve_checkpoint(str(tmp_path / "checkpoint-7"), tmp_path)
