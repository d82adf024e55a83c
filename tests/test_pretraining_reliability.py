"""run_pretraining.py: a resumed run never mixes incomparable work, damaged input gets one line, the final save
is atomic (issue: reliability). Each test here failed before its fix."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from tests.test_pretraining_script import (  # noqa: F401  (fixtures)
    WASHINGTON,
    _fresh_accelerate_state,
    base_args,
    run,
    tokenizer_dir,
)

STEPS = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--max_eval_samples", "4", "--num_warmup_steps", "0"]


def one_error(capsys, argv) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.fixture
def interrupted(tmp_path, tokenizer_dir):
    """A finished 4-step run with checkpoints at steps 2 and 4, and its arguments."""
    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), *STEPS)
    assert run(args) == 0
    return out, args


def test_resume_refuses_other_data_batch_or_schedule(tmp_path, interrupted, capsys):
    out, args = interrupted
    checkpoint = ["--resume_from_checkpoint", str(out / "checkpoint-2")]
    other_text = tmp_path / "other.txt"
    other_text.write_text(WASHINGTON.read_text(encoding="utf-8").replace("the", "a"), encoding="utf-8")
    changed = [a if a != str(WASHINGTON) else str(other_text) for a in args]
    message = one_error(capsys, [*changed, *checkpoint])
    assert "training data: changed" in message and "--resume_with_changed_settings" in message
    message = one_error(capsys, [*args, *checkpoint, "--per_device_train_batch_size", "2"])
    assert "global batch size: 4 -> 2" in message
    message = one_error(capsys, [*args, *checkpoint, "--learning_rate", "1e-3"])
    assert "learning_rate: 0.003 -> 0.001" in message
    # The same data copied elsewhere (another path, a new modification time) is the same data.
    copy = tmp_path / "copy" / WASHINGTON.name
    copy.parent.mkdir()
    shutil.copy(WASHINGTON, copy)
    moved = [a if a != str(WASHINGTON) else str(copy) for a in args]
    assert run([*moved, *checkpoint]) == 0


def test_finished_run_is_not_trained_again_and_results_are_strict_json(interrupted, capsys):
    out, args = interrupted
    results = (out / "all_results.json").read_text()
    json.loads(results, parse_constant=lambda name: pytest.fail(f"invalid JSON constant {name}"))
    message = one_error(capsys, [*args, "--resume_from_checkpoint", "latest"])
    assert "nothing left to train" in message
    assert (out / "all_results.json").read_text() == results


def test_rerun_after_an_interruption_names_the_resume_flag(interrupted, capsys):
    out, args = interrupted
    message = one_error(capsys, args)
    assert "--resume_from_checkpoint latest" in message and "checkpoint-4" in message


def _damage(folder, kind):
    if kind == "truncated weights":
        path = folder / "model.safetensors"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "empty weights":
        (folder / "model.safetensors").write_bytes(b"")
    elif kind == "truncated optimizer state":
        path = folder / "optimizer.safetensors"
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "missing optimizer.json":
        (folder / "optimizer.json").unlink()
    elif kind == "non-numeric step":
        state = json.loads((folder / "trainer_state.json").read_text())
        state["global_step"] = "two"
        (folder / "trainer_state.json").write_text(json.dumps(state))


@pytest.mark.parametrize(
    "kind", ["truncated weights", "empty weights", "truncated optimizer state", "missing optimizer.json", "non-numeric step"]
)
def test_damaged_checkpoints_are_one_line(interrupted, capsys, kind):
    out, args = interrupted
    _damage(out / "checkpoint-2", kind)
    message = one_error(capsys, [*args, "--resume_from_checkpoint", str(out / "checkpoint-2")])
    assert "checkpoint" in message and "damaged" in message and "earlier checkpoint" in message


def test_checkpoint_of_another_model_is_one_line(tmp_path, interrupted, capsys, tokenizer_dir):
    out, _ = interrupted
    other = base_args(tmp_path / "other", tokenizer_dir, "--train_file", str(WASHINGTON), *STEPS)
    other = [a if a != "32" else "16" for a in other]  # hidden size 16 instead of 32 (with 4 heads)
    message = one_error(capsys, [*other, "--resume_from_checkpoint", str(out / "checkpoint-2")])
    assert "model config: changed" in message


def test_a_failed_final_save_leaves_no_config_without_weights(tmp_path, tokenizer_dir, monkeypatch):
    import transformers.modeling_utils as modeling_utils

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modeling_utils, "safe_save_file", full_disk)
    out = tmp_path / "run"
    with pytest.raises(OSError):
        run(base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--max_train_steps", "2", "--max_eval_samples", "4"))
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--learning_rate", "nan"], "--learning_rate must be a finite number"),
        (["--adam_beta1", "1.5"], "--adam_beta1 must be < 1"),
        (["--max_grad_norm", "-1"], "--max_grad_norm must be >= 0"),
        (["--weight_decay", "-1"], "--weight_decay must be >= 0"),
        (["--seed", "-1"], "--seed must be in [0, 2**32)"),
        (["--max_train_steps", "3", "--num_warmup_steps", "10"], "longer than the run"),
        (["--lr", "1e-3"], "unrecognized arguments: --lr"),
    ],
)
def test_bad_values_are_one_line(tmp_path, tokenizer_dir, capsys, flags, expected):
    out = tmp_path / "out"
    message = one_error(capsys, base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), *flags))
    assert expected in message
    assert not out.exists()


def test_uncreatable_output_dir_is_found_before_any_work(tmp_path, tokenizer_dir, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    message = one_error(capsys, base_args(blocker / "out", tokenizer_dir, "--train_file", str(WASHINGTON)))
    assert "cannot be created" in message


def test_damaged_or_binary_corpora(tmp_path, tokenizer_dir, capsys):
    text = WASHINGTON.read_bytes()
    truncated = tmp_path / "cut.txt.gz"
    truncated.write_bytes(gzip.compress(text)[:-40])
    message = one_error(capsys, base_args(tmp_path / "o1", tokenizer_dir, "--train_file", str(truncated)))
    assert "damaged gzip file" in message
    noise = tmp_path / "noise.txt"
    import random

    rng = random.Random(0)
    noise.write_bytes(b"\n".join(bytes(rng.randrange(128, 256) for _ in range(60)) for _ in range(400)))
    message = one_error(capsys, base_args(tmp_path / "o2", tokenizer_dir, "--train_file", str(noise)))
    assert "not valid UTF-8" in message and "--max_replaced_line_fraction" in message


def test_utf16_corpus_is_read_as_text(tmp_path):
    from recurrent_mlm.pretraining.readers import DecodeStats, decoded_lines

    path = tmp_path / "utf16.txt"
    path.write_bytes("Fellow-Citizens of the Senate\r\nand of the House\r\n".encode("utf-16"))
    stats = DecodeStats()
    assert "".join(decoded_lines(path, stats)) == "Fellow-Citizens of the Senate\nand of the House\n"
    assert stats.replaced_lines == 0


def test_config_file_keys_and_vocabulary(tmp_path, tokenizer_dir, caplog):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                                  "intermediate_size": 64, "max_position_embeddings": 64, "recurence": "simple"}))
    out = tmp_path / "run"
    caplog.set_level("WARNING")
    argv = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--config_name", str(config))
    assert run([*argv, "--max_train_steps", "1", "--max_eval_samples", "2"]) == 0
    assert "'recurence', which is not a field" in caplog.text and "did you mean 'recurrence'" in caplog.text
    saved = json.loads((out / "config.json").read_text())
    assert saved["vocab_size"] == 300  # the tokenizer's size, not BERT's 30522 default


def test_hub_dry_run_checks_the_weights(tmp_path, capsys):
    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM
    from recurrent_mlm.hub import main as hub_main
    from tests.conftest import tiny_config_kwargs

    folder = tmp_path / "model"
    RecurrentMLMForMaskedLM(RecurrentMLMConfig(**tiny_config_kwargs())).save_pretrained(folder)
    assert hub_main(["push", str(folder), "--dry_run"]) == 0
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    capsys.readouterr()
    assert hub_main(["push", str(folder), "--dry_run"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0]
