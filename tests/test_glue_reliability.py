"""run_glue.py never mixes incomparable runs and meets damaged input with one line (issue: reliability).

Each test here failed before its fix: a data fingerprint that hashed a printed summary of a column, sweeps
that did not notice new weights at the same path, learning rates sharing a run folder, a report rewritten
with part of a grid, an output folder equal to the model, tracebacks on bad values, a run "diverged" by one
example, and an evaluation-only run labelled DIVERGED.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from recurrent_mlm.glue.data import load_glue_dir
from recurrent_mlm.glue.finetune import classify_divergence
from recurrent_mlm.glue.sweep import lr_tag
from recurrent_mlm.glue.tasks import get_task
from tests.test_glue_data import GLUE
from tests.test_glue_run import _memorisable_sst2, models, run, usage_error  # noqa: F401  (fixture)

QUICK = ["--max_train_steps", "2", "--per_device_train_batch_size", "8", "--logging_steps", "1"]


def test_data_fingerprint_hashes_every_value():
    data = load_glue_dir(get_task("sst2"), GLUE)
    full = data.fingerprint()
    seen = {full}
    for rows in (20, 10, 6):
        limited = load_glue_dir(get_task("sst2"), GLUE)
        limited.limit("validation", rows)
        seen.add(limited.fingerprint())
    assert len(seen) == 4  # the printed form of a column shows 5 values: every limit used to hash the same


def test_learning_rates_never_share_a_run_folder(models, tmp_path, capsys):
    assert lr_tag(1e-4) == "0.0001" and lr_tag(1e6) == "1e+06" and lr_tag(3e-3) == "0.003"
    assert lr_tag(1.0000001e-4) != lr_tag(1e-4)
    assert float(lr_tag(1.0000001e-4)) == 1.0000001e-4


def test_a_sweep_refuses_changed_weights_and_reports_every_finished_run(models, tmp_path, capsys):
    glue_dir = _memorisable_sst2(tmp_path / "glue")
    model = tmp_path / "model"
    shutil.copytree(models["rec"], model)
    out = tmp_path / "sweep"
    common = ["--model_name_or_path", model, "--task_name", "sst2", "--glue_dir", glue_dir, *QUICK, "--output_dir", out]
    assert run(*common, "--learning_rates", "1e-3", "3e-3", "--seeds", "1") == 0
    # Part of the grid again, plus a new seed: the report still covers every finished run of the folder.
    assert run(*common, "--learning_rates", "1e-3", "--seeds", "2") == 0
    report = json.loads((out / "runs.json").read_text())
    assert sorted((r["learning_rate"], r["seed"]) for r in report["runs"]) == [(1e-3, 1), (1e-3, 2), (3e-3, 1)]
    assert "over seeds 1, 2" in (out / "stability.md").read_text()
    # New weights at the same path: refused, naming the model.
    from safetensors.torch import load_file, save_file

    weights = load_file(str(model / "model.safetensors"))
    weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    message = usage_error(capsys, *common, "--learning_rates", "1e-3", "--seeds", "3")
    assert "weights" in message and "changed" in message


def test_output_folder_equal_to_the_model_is_refused(models, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(models["rec"], model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    for out in (model, model / "finetuned"):
        message = usage_error(capsys, "--model_name_or_path", model, "--task_name", "sst2", "--glue_dir", GLUE, *QUICK,
                              "--output_dir", out, "--overwrite_output_dir")  # fmt: skip
        assert "replace the model" in message
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--seed", "-1"], "seeds must be in [0, 2**32)"),
        (["--learning_rate", "nan"], "learning rates must be positive numbers"),
        (["--weight_decay", "-1"], "--weight_decay must be >= 0"),
        (["--max_grad_norm", "-1"], "--max_grad_norm must be >= 0"),
        (["--num_warmup_steps", "1000"], "longer than a run"),
        (["--report_to", "wandb"], "needs the wandb package"),
        (["--lr", "1e-3"], "unrecognized arguments: --lr"),
    ],
)
def test_bad_values_are_one_line(models, tmp_path, capsys, flags, expected):
    import importlib.util

    if "wandb" in flags and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    message = usage_error(capsys, "--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", GLUE,
                          "--output_dir", tmp_path / "out", *flags)  # fmt: skip
    assert expected in message
    assert not (tmp_path / "out").exists()


def test_a_latin1_byte_in_a_tsv_is_one_line(models, tmp_path, capsys):
    folder = tmp_path / "glue" / "SST-2"
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        data = (GLUE / "SST-2" / f"{split}.tsv").read_bytes()
        (folder / f"{split}.tsv").write_bytes(data.replace(b"the ", b"caf\xe9 ", 1))
    message = usage_error(capsys, "--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir",
                          tmp_path / "glue", *QUICK, "--output_dir", tmp_path / "out")  # fmt: skip
    assert "not valid utf-8" in message.lower() and "iconv" in message


def test_divergence_definitions():
    ok = dict(trained=True, nonfinite_step=None, baseline=0.5, baseline_text="majority class")
    # A run with training loss 3257 that beats the trivial predictor by one example has diverged.
    verdict = classify_divergence(**ok, score=0.51, predictions=[0, 1, 1], losses=[0.69, 40.0, 3257.0])
    assert verdict["diverged"] and verdict["exploded"] and not verdict["trivial"]
    verdict = classify_divergence(**ok, score=0.5, predictions=[1, 1, 1], losses=[0.7, 0.7])
    assert verdict["collapsed"] and verdict["trivial"] and "one class" in verdict["reason"]
    assert not classify_divergence(**ok, score=0.8, predictions=[0, 1, 1], losses=[0.7, 0.3])["diverged"]
    # An evaluation-only run (0 steps) is not judged: it did not train, so it cannot have diverged.
    verdict = classify_divergence(**{**ok, "trained": False}, score=0.4, predictions=[1, 1], losses=[])
    assert not verdict["diverged"] and verdict["reason"] is None


def test_evaluation_only_run_is_not_diverged(models, tmp_path, capsys):
    out = tmp_path / "eval"
    assert run("--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", GLUE, "--max_train_steps", "0",
               "--output_dir", out) == 0  # fmt: skip
    result = json.loads((out / "all_results.json").read_text())
    assert result["train_steps"] == 0 and not result["diverged"]
    assert "DIVERGED" not in capsys.readouterr().out


def test_fractional_epochs_and_early_stopping(models, tmp_path):
    out = tmp_path / "half"
    assert run("--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", GLUE, "--num_train_epochs",
               "0.5", "--per_device_train_batch_size", "8", "--output_dir", out) == 0  # fmt: skip
    result = json.loads((out / "all_results.json").read_text())
    assert result["train_steps"] == 3  # 40 rows / 8 = 5 batches per epoch; half an epoch rounds up to 3 steps
    out = tmp_path / "early"
    assert run("--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", GLUE, "--num_train_epochs",
               "20", "--per_device_train_batch_size", "8", "--learning_rate", "1e-9", "--eval_steps", "1",
               "--early_stopping_patience", "2", "--output_dir", out) == 0  # fmt: skip
    result = json.loads((out / "all_results.json").read_text())
    assert result["stopped_early"] and result["train_steps"] < 100


def test_gradient_checkpointing_flag(models, tmp_path):
    out = tmp_path / "ckpt"
    assert run("--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", GLUE, *QUICK,
               "--gradient_checkpointing", "--output_dir", out) == 0  # fmt: skip
    assert torch.isfinite(torch.tensor(json.loads((out / "all_results.json").read_text())["loss_curve"][-1][1]))
