"""The engines behind the scripts: pretraining and fine-tuning as Python calls, recipes, and the argument parser
(one source of defaults, no abbreviations, readable help)."""

from __future__ import annotations

import json

import pytest
import yaml

import run_glue
import run_pretraining
from recurrent_mlm.cli import DataclassArgumentParser, UsageError
from recurrent_mlm.glue import GlueArguments, run_glue as glue_engine
from recurrent_mlm.pretraining import PretrainingArguments, pretrain
from tests.test_glue_data import GLUE
from tests.test_pretraining_script import (  # noqa: F401  (fixtures)
    TINY,
    WASHINGTON,
    _fresh_accelerate_state,
    base_args,
    metrics,
    tokenizer_dir,
    weights,
)


def test_pretrain_then_finetune_in_one_process(tmp_path, tokenizer_dir):
    """The study's use: several pipelines one after the other in one Python process, with other settings."""
    pretrained = pretrain(
        PretrainingArguments(
            train_file=[str(WASHINGTON)], output_dir=str(tmp_path / "mlm"), tokenizer_name=str(tokenizer_dir),
            variant="recurrent_bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, max_seq_length=32, per_device_train_batch_size=4,
            max_train_steps=3, max_eval_samples=4, disable_tqdm=True,
        )
    )  # fmt: skip
    assert pretrained.exit_code == 0 and pretrained.finished
    assert pretrained.results["train_steps"] == 3 and "eval_loss" in pretrained.results
    # A different Accelerate setting in the same process (gradient accumulation) works after the first run.
    tuned = glue_engine(
        GlueArguments(
            model_name_or_path=[str(pretrained.output_dir)], task_name="sst2", glue_dir=str(GLUE),
            learning_rates=[1e-3, 3e-3], seeds=[1], max_train_steps=2, per_device_train_batch_size=8,
            gradient_accumulation_steps=2, output_dir=str(tmp_path / "sst2"), disable_tqdm=True,
        )
    )  # fmt: skip
    assert tuned.exit_code == 0 and tuned.pending == 0
    assert [r["learning_rate"] for r in tuned.results] == [1e-3, 3e-3]
    assert all(r["train_steps"] == 2 for r in tuned.results)
    assert (tmp_path / "sst2" / "runs" / pretrained.output_dir.name / "lr_0.001_seed_1" / "eval_predictions.jsonl").exists()


def test_a_recipe_file_equals_the_same_flags(tmp_path, tokenizer_dir):
    flags = base_args(tmp_path / "flags", tokenizer_dir, "--train_file", str(WASHINGTON), "--max_train_steps", "2",
                      "--max_eval_samples", "4", "--variant", "gated_bert")  # fmt: skip
    assert run_pretraining.main(flags) == 0
    recipe = run_pretraining.build_parser().parse(flags)
    values = {k: getattr(recipe, k) for k in sorted(recipe.given_fields)}
    values["output_dir"] = str(tmp_path / "recipe")
    values["learning_rate"] = 1.0  # overridden by the flag after the file
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(values))
    assert run_pretraining.main([str(path), "--learning_rate", "3e-3"]) == 0
    loss = lambda out: [r["loss"] for r in metrics(out) if "loss" in r]  # noqa: E731
    assert loss(tmp_path / "flags") == loss(tmp_path / "recipe")
    a, b = weights(tmp_path / "flags"), weights(tmp_path / "recipe")
    assert all((a[k] == b[k]).all() for k in a)


def test_recipe_errors_are_one_line(tmp_path, capsys):
    parser = run_pretraining.build_parser()
    path = tmp_path / "recipe.yaml"
    path.write_text("train_file: [x]\noutput_dir: out\nlearning_rte: 1e-3\n")
    with pytest.raises(UsageError, match="'learning_rte', which is not an argument; did you mean 'learning_rate'"):
        parser.parse([str(path)])
    path.write_text("- a list\n")
    with pytest.raises(UsageError, match="must map argument names to values"):
        parser.parse([str(path)])
    path.write_text("max_train_steps: many\n")
    with pytest.raises(UsageError, match="max_train_steps"):
        parser.parse([str(path)])
    with pytest.raises(UsageError, match="does not exist"):
        parser.parse([str(tmp_path / "missing.yaml")])
    # run_glue takes the same recipes; an alias (learning_rate for learning_rates) works as a key too.
    path.write_text(json.dumps({"model_name_or_path": ["m"], "task_name": "sst2", "learning_rate": [1e-3, 2e-3],
                                "output_dir": "o"}))  # fmt: skip
    glue = run_glue.build_parser().parse([str(path), "--seeds", "1", "2"])
    assert glue.learning_rates == [1e-3, 2e-3] and glue.seeds == [1, 2]


@pytest.mark.parametrize("script", [run_pretraining, run_glue])
def test_help_is_grouped_shows_real_defaults_and_refuses_abbreviations(script):
    parser = script.build_parser()
    text = parser.format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 42)" in text or "(default: 42 )" in text or "SEED [SEED ...]" in text
    with pytest.raises(UsageError, match="unrecognized arguments"):
        parser.parse(["--output_dir", "x", "--learning_r", "1e-3"])


def test_defaults_live_once():
    """The fine-tuning config has no defaults of its own: it is built from the arguments."""
    import dataclasses

    from recurrent_mlm.glue.finetune import FinetuneConfig

    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(FinetuneConfig))
    cfg = FinetuneConfig.from_arguments(GlueArguments())
    assert cfg.per_device_train_batch_size == GlueArguments().per_device_train_batch_size


def test_dataclass_parser_round_trip():
    from dataclasses import dataclass

    from recurrent_mlm.cli import arg

    @dataclass
    class Args:
        name: str = arg("x", "a name")
        flag: bool = arg(False, "a switch")
        tri: bool | None = arg(None, "on, off or unset")
        on: bool = arg(True, "default on")
        many: list[int] = arg([1], "numbers", flags=("--many", "--manies"))

    parser = DataclassArgumentParser(Args, prog="t")
    parsed = parser.parse(["--flag", "--no-tri", "--no-on", "--manies", "3", "4"])
    assert (parsed.name, parsed.flag, parsed.tri, parsed.on, parsed.many) == ("x", True, False, False, [3, 4])
    assert parsed.given_fields == {"flag", "tri", "on", "many"}
    assert parser.parse([]).tri is None


def test_the_installed_command_runs_the_same_pipelines(tmp_path, tokenizer_dir, capsys, caplog):
    from recurrent_mlm.commands import main

    assert main(["--help"]) == 0 and "tokenizer" in capsys.readouterr().out
    assert main(["nonsense"]) == 2
    shared = tmp_path / "tokenizer"
    assert main(["tokenizer", "--train_file", str(WASHINGTON), "--vocab_size", "300", "--output_dir", str(shared)]) == 0
    assert (shared / "tokenizer.json").exists()
    with pytest.raises(SystemExit):  # the same one-line refusal as the script
        main(["tokenizer", "--train_file", str(WASHINGTON), "--output_dir", str(shared)])
    caplog.set_level("INFO")
    out = tmp_path / "mlm"
    argv = ["--train_file", str(WASHINGTON), "--tokenizer_name", str(shared), "--output_dir", str(out), *TINY,
            "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_train_steps", "1", "--disable_tqdm"]
    assert main(["pretrain", *argv]) == 0
    assert "building a new model: variant bert (BERT (baseline)) at size mini" in caplog.text  # no --variant: said
    assert json.loads((out / "all_results.json").read_text())["train_steps"] == 1
