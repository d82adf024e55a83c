"""run_pretraining.py end to end: outputs, resuming, multi-process equivalence, bad input, options.

Most runs call `run_pretraining.main` in this process (no interpreter start-up); the command-line and
`accelerate launch` tests start real processes. Models are tiny (hidden 32, 2 layers, vocabulary 300).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import run_pretraining
from recurrent_mlm.pretraining import checkpointing
from recurrent_mlm.pretraining.readers import file_records, resolve_data_files
from recurrent_mlm.recipes import pretraining_argv
from recurrent_mlm.pretraining.tokenizer import train_wordpiece_tokenizer
from recurrent_mlm.presets import VARIANTS
from tests.conftest import FIXTURES, REPO_ROOT, subprocess_env

TEXT = FIXTURES / "pretraining" / "text"
WASHINGTON = TEXT / "1789-Washington.txt"
JSONL = FIXTURES / "pretraining" / "blake.jsonl"
CSV = FIXTURES / "pretraining" / "blake.csv"
TINY = [
    "--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4", "--intermediate_size", "64",
    "--max_position_embeddings", "128",
]  # fmt: skip
NO_DROPOUT = ["--hidden_dropout_prob", "0", "--attention_probs_dropout_prob", "0"]
ALL_VARIANTS = list(VARIANTS)


class SimulatedKill(BaseException):
    """The process dying at a given point (a BaseException: no `except Exception` may swallow it)."""


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process run starts from a clean Accelerate singleton and one thread (tiny models run fastest so)."""
    from accelerate.state import AcceleratorState, GradientState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _reset_accelerate():
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tokenizer")
    texts = (r["text"] for path in resolve_data_files([TEXT], "--train_file") for r in file_records(path))
    train_wordpiece_tokenizer(texts, 300, model_max_length=128).save_pretrained(folder)
    return folder


def base_args(output_dir: Path, tokenizer_dir: Path | None, *extra: str) -> list[str]:
    args = ["--output_dir", str(output_dir), *TINY, "--max_seq_length", "32", "--per_device_train_batch_size", "4"]
    args += ["--logging_steps", "1", "--disable_tqdm", "--learning_rate", "3e-3", "--report_to", "none"]
    if tokenizer_dir is not None:
        args += ["--tokenizer_name", str(tokenizer_dir)]
    return args + list(extra)


def run(argv: list[str]) -> int:
    try:
        return run_pretraining.main(argv)
    finally:
        _reset_accelerate()


def metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(output_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in metrics(output_dir) if "loss" in r}


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "model.safetensors"))


def max_weight_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


def assert_same_updates(a: Path, b: Path, learning_rate: float = 3e-3) -> None:
    """Two runs that computed the same gradients up to float32 summation order made the same AdamW updates. Adam
    moves every weight by about the learning rate whatever the gradient's size, so a gradient component that is
    zero up to round-off may take either sign on another CPU: allow a few such weights (each at most two steps
    apart), and require every other weight to agree to 1e-6."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    differences = torch.cat([(wa[k] - wb[k]).abs().flatten() for k in wa])
    assert (differences > 1e-6).float().mean().item() < 1e-3, f"{int((differences > 1e-6).sum())} weights differ"
    assert differences.max().item() <= 4 * learning_rate + 1e-6


# ------------------------------------------------------------------------------------------------------------
def test_end_to_end_outputs(tmp_path, caplog):
    """A recurrent BERT with a tokenizer trained on the corpus: every promised output, loadable."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = tmp_path / "run"
    caplog.set_level("WARNING")
    args = base_args(out, None, "--train_file", str(TEXT), "--variant", "recurrent_bert", "--vocab_size", "300")
    args += ["--max_train_steps", "6", "--eval_steps", "3", "--checkpointing_steps", "2", "--save_total_limit", "2"]
    args += ["--report_to", "tensorboard"]
    assert run(args) == 0

    names = {p.name for p in out.iterdir()}
    expected = {
        "config.json", "model.safetensors", "modeling_recurrent_mlm.py", "configuration_recurrent_mlm.py",
        "tokenizer.json", "tokenizer_config.json", "metrics.jsonl", "all_results.json", "training_curves.png",
        "README.md", "training_args.json", "runs", "checkpoint-4", "checkpoint-6",
    }  # fmt: skip
    assert expected <= names and "checkpoint-2" not in names  # the last 2 checkpoints kept
    config = json.loads((out / "config.json").read_text())
    assert config["recurrence"] == "simple" and config["vocab_size"] == 300
    assert config["auto_map"]["AutoModelForMaskedLM"].endswith("RecurrentMLMForMaskedLM")
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    assert (out / "training_curves.png").stat().st_size > 10_000
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "all_results.json", "checkpoint-6/optimizer.safetensors"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name  # not 0600 from temp-file writes

    records = metrics(out)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in records if "eval_loss" in r] == [3, 6]
    first = records[0]
    assert {"loss", "mlm_accuracy", "learning_rate", "grad_norm", "tokens_per_second", "tokens_seen"} <= first.keys()
    results = json.loads((out / "all_results.json").read_text())
    assert results["lines_decoded_with_replacement"] == 15  # the Latin-1 fixture
    assert results["train_steps"] == 6 and results["eval_loss"] == records[-1]["eval_loss"]
    assert any("15 of" in r.message and "1973-Nixon.txt" in r.message for r in caplog.records)
    card = (out / "README.md").read_text()
    assert "pipeline_tag: fill-mask" in card and "type: mlm_accuracy" in card and "recurrence-simple" in card

    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer("the people of the united states", return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (1, batch["input_ids"].shape[1], 300)
    checkpoint_model = AutoModelForMaskedLM.from_pretrained(out / "checkpoint-6")  # a checkpoint is a model too
    assert torch.equal(checkpoint_model.state_dict()["cls.predictions.decoder.bias"], model.state_dict()["cls.predictions.decoder.bias"])


# ------------------------------------------------------------------------------------------------------------
# Resuming: 12 steps over 3 epochs (4 steps each, 2 micro-batches per step, dropout on), checkpoints every 3.
RESUME_ARGS = [
    "--train_file", str(WASHINGTON), "--max_seq_length", "64", "--gradient_accumulation_steps", "2",
    "--max_train_steps", "12", "--checkpointing_steps", "3", "--save_total_limit", "3", "--eval_steps", "6",
    "--hidden_dropout_prob", "0.1", "--num_warmup_steps", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tokenizer_dir) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS)) == 0
    _reset_accelerate()
    return out


@pytest.mark.parametrize(
    "event, step",
    [("step_end", 7), ("checkpoint_before_rename", 9), ("checkpoint_partial", 6)],
    ids=["killed-between-checkpoints", "killed-while-renaming", "killed-while-writing"],
)
def test_resumed_run_reproduces_the_uninterrupted_loss_curve(tmp_path, tokenizer_dir, uninterrupted, monkeypatch, event, step):
    out = tmp_path / "run"

    def kill(name, **info):
        if name == event and info["step"] == step:
            raise SimulatedKill(f"{name} at step {step}")

    monkeypatch.setattr(checkpointing, "fault_point", kill)
    with pytest.raises(SimulatedKill):
        run(base_args(out, tokenizer_dir, *RESUME_ARGS))
    monkeypatch.undo()
    _reset_accelerate()
    resumed_from = checkpointing.latest_checkpoint(out)
    assert resumed_from.name == {"step_end": "checkpoint-6", "checkpoint_before_rename": "checkpoint-6", "checkpoint_partial": "checkpoint-3"}[event]
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS, "--resume_from_checkpoint", "latest")) == 0

    expected, got = train_losses(uninterrupted), train_losses(out)
    assert sorted(got) == list(range(1, 13))  # no step lost or logged twice
    for s in expected:
        assert got[s] == pytest.approx(expected[s], abs=1e-6), f"step {s}"
    evals = [r for r in metrics(out) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert evals[-1]["eval_loss"] == pytest.approx(metrics(uninterrupted)[-1]["eval_loss"], abs=1e-6)
    assert max_weight_difference(out, uninterrupted) < 1e-6


@pytest.mark.parametrize("signame, step", [("SIGTERM", 7), ("SIGUSR1", 6)], ids=["between-checkpoints", "at-a-checkpoint"])
def test_a_preempted_run_saves_its_state_and_resumes_exactly(tmp_path, tokenizer_dir, uninterrupted, monkeypatch, capsys, signame, step):
    """A real signal to this process after step `step` (as SLURM or Kubernetes send before a kill): the run saves
    checkpoint-`step`, exits with 128 + signum, and the resumed run equals the uninterrupted one."""
    import signal

    if not hasattr(signal, signame):
        pytest.skip(f"no {signame} here")
    signum = getattr(signal, signame)
    before = signal.getsignal(signum)
    out = tmp_path / "run"

    def preempt(name, **info):
        if name == "step_end" and info["step"] == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(checkpointing, "fault_point", preempt)
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS)) == 128 + signum
    monkeypatch.undo()
    assert signal.getsignal(signum) == before  # the run's handler is gone
    assert f"{signame} received: stopped after step {step} of 12" in capsys.readouterr().err
    assert checkpointing.latest_checkpoint(out).name == f"checkpoint-{step}"
    assert not (out / "model.safetensors").exists()  # no final model from an unfinished run
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS, "--resume_from_checkpoint", "latest")) == 0
    got, expected = train_losses(out), train_losses(uninterrupted)
    assert sorted(got) == list(range(1, 13))
    assert all(got[s] == pytest.approx(expected[s], abs=1e-6) for s in expected)
    assert max_weight_difference(out, uninterrupted) < 1e-6


def test_resume_from_an_explicit_checkpoint_path(tmp_path, tokenizer_dir, uninterrupted):
    out = tmp_path / "run"
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS, "--max_train_steps", "4")) == 0
    with pytest.raises(SystemExit):  # the folder is not empty now: a fresh run must not reuse it silently
        run(base_args(out, tokenizer_dir, *RESUME_ARGS))
    # Continuing with the original 12-step schedule from checkpoint-3 (a 4-step run has another schedule, so
    # only the steps up to the checkpoint are comparable to the uninterrupted run).
    ckpt = out / "checkpoint-3"
    with pytest.raises(SystemExit):  # another schedule length changes the numbers: refused unless asked for
        run(base_args(out, tokenizer_dir, *RESUME_ARGS, "--resume_from_checkpoint", str(ckpt)))
    resume = ["--resume_from_checkpoint", str(ckpt), "--resume_with_changed_settings"]
    assert run(base_args(out, tokenizer_dir, *RESUME_ARGS, *resume)) == 0
    losses = train_losses(out)
    assert sorted(losses) == list(range(1, 13))
    assert losses[1] == pytest.approx(train_losses(uninterrupted)[1], abs=1e-6)


@pytest.mark.parametrize("variant", ALL_VARIANTS)
def test_every_variant_pretrains_saves_and_resumes(tmp_path, tokenizer_dir, variant):
    """No variant is special-cased: each trains, checkpoints (tied, shared or LSTM weights), resumes exactly."""
    out = tmp_path / "run"
    extra = ["--lstm_max_singular_value", "1.0"] if variant == "lstm" else []  # exercises the projection
    args = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--variant", variant, *extra)
    args += ["--max_train_steps", "2", "--checkpointing_steps", "1", "--max_eval_samples", "4", "--num_warmup_steps", "0"]
    assert run(args) == 0
    straight = train_losses(out)[2]
    final = weights(out)
    assert run([*args, "--resume_from_checkpoint", str(out / "checkpoint-1")]) == 0
    assert train_losses(out)[2] == pytest.approx(straight, abs=1e-6)
    assert all(torch.allclose(final[k], v, atol=1e-6) for k, v in weights(out).items())


# ------------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


EQUIVALENCE_ARGS = ["--train_file", str(TEXT), "--max_train_steps", "2", "--num_warmup_steps", "0", *NO_DROPOUT]


@pytest.mark.parametrize("launcher_flag", ["--cpu", "--multi_gpu"])
def test_two_processes_match_one_process_with_twice_the_batch(tmp_path, tokenizer_dir, launcher_flag):
    """`accelerate launch` with 2 CPU processes (gloo DDP) x batch 4 == 1 process x batch 8. With `--cpu`,
    Accelerate itself starts one process (it needs MPI for more) and the script starts the two asked for."""
    two, one = tmp_path / "two", tmp_path / "one"
    launch = [sys.executable, "-m", "accelerate.commands.launch", launcher_flag, "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    args = base_args(two, None, *EQUIVALENCE_ARGS, "--vocab_size", "300")  # the tokenizer is trained and broadcast
    done = subprocess.run(
        [*launch, str(REPO_ROOT / "run_pretraining.py"), *args, "--per_device_train_batch_size", "4"],
        # CPU processes even on a GPU machine (the comparison is on CPU, with gloo).
        env=subprocess_env(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES=""),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes 2, global batch 8" in done.stderr
    assert ("starting 2 data-parallel CPU processes" in done.stderr) == (launcher_flag == "--cpu")
    # The 2-process run trained its tokenizer on process 0 and sent it to process 1; the 1-process run uses that
    # tokenizer (the trainer breaks frequency ties in hash order, so a second training may differ slightly).
    assert run(base_args(one, two, *EQUIVALENCE_ARGS, "--per_device_train_batch_size", "8")) == 0
    two_losses, one_losses = train_losses(two), train_losses(one)
    assert two_losses[1] == pytest.approx(one_losses[1], rel=1e-6)
    assert two_losses[2] == pytest.approx(one_losses[2], rel=1e-5)
    assert_same_updates(two, one)
    two_eval = [r for r in metrics(two) if "eval_loss" in r][-1]
    one_eval = [r for r in metrics(one) if "eval_loss" in r][-1]
    assert two_eval["eval_masked_tokens"] == one_eval["eval_masked_tokens"]  # each held-out block counted once
    assert two_eval["eval_loss"] == pytest.approx(one_eval["eval_loss"], abs=1e-5)


def test_a_signal_to_one_of_two_processes_stops_both_at_the_same_step(tmp_path, tokenizer_dir):
    """SIGTERM reaches only rank 1 of a two-process run: both agree on the step, checkpoint it together
    (one RNG file per rank) and exit; nothing hangs in a collective."""
    import signal
    import time

    import psutil

    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--train_file", str(TEXT), "--max_train_steps", "100000", "--num_warmup_steps", "0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), str(REPO_ROOT / "run_pretraining.py"), *args],
        env=subprocess_env(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1", CUDA_VISIBLE_DEVICES=""),
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().count("\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        workers = [c for c in psutil.Process(proc.pid).children(recursive=True) if "run_pretraining.py" in " ".join(c.cmdline())]
        rank1 = next(w for w in workers if w.environ().get("RANK") == "1")
        rank1.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "SIGTERM received: stopped after step" in stderr, stderr[-3000:]
    checkpoint = checkpointing.latest_checkpoint(out)
    assert checkpoint is not None and sorted(p.name for p in checkpoint.glob("rng_state_*")) == ["rng_state_0.json", "rng_state_0.safetensors", "rng_state_1.json", "rng_state_1.safetensors"]
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert checkpoint.name == f"checkpoint-{state['global_step']}" and state["world_size"] == 2


def test_gradient_accumulation_matches_a_larger_batch(tmp_path, tokenizer_dir):
    accumulated, large = tmp_path / "accumulated", tmp_path / "large"
    assert run(base_args(accumulated, tokenizer_dir, *EQUIVALENCE_ARGS, "--gradient_accumulation_steps", "2")) == 0
    assert run(base_args(large, tokenizer_dir, *EQUIVALENCE_ARGS, "--per_device_train_batch_size", "8")) == 0
    # Same arithmetic up to float32 summation order: equal to ~1 ulp of the loss.
    assert train_losses(accumulated)[1] == pytest.approx(train_losses(large)[1], rel=1e-6)
    assert_same_updates(accumulated, large)


def test_gradient_checkpointing_changes_nothing_but_memory(tmp_path, tokenizer_dir):
    plain, checkpointed = tmp_path / "plain", tmp_path / "checkpointed"
    args = ["--variant", "recurrent_bert", *EQUIVALENCE_ARGS, "--validation_split_percentage", "0"]
    assert run(base_args(plain, tokenizer_dir, *args)) == 0
    assert run(base_args(checkpointed, tokenizer_dir, *args, "--gradient_checkpointing")) == 0
    assert train_losses(plain) == pytest.approx(train_losses(checkpointed), abs=1e-6)
    assert max_weight_difference(plain, checkpointed) < 1e-6


# ------------------------------------------------------------------------------------------------------------
def _bad_inputs(tmp: Path, tokenizer_dir: Path):
    empty = tmp / "empty.txt"
    empty.write_text("\n\n")
    small_model = tmp / "small-model"
    if not small_model.exists():
        from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMForMaskedLM
        from tests.conftest import tiny_config_kwargs

        RecurrentMLMForMaskedLM(RecurrentMLMConfig(**tiny_config_kwargs())).save_pretrained(small_model)  # vocab 100
    occupied = tmp / "occupied"
    occupied.mkdir(exist_ok=True)
    (occupied / "notes.txt").write_text("someone's results")
    text = ["--train_file", str(TEXT)]
    return {
        "missing corpus": (["--train_file", str(tmp / "nowhere")], "does not exist"),
        "empty corpus": (["--train_file", str(empty)], "the corpus is empty"),
        "wrong column": (["--train_file", str(JSONL), "--text_column", "body"], "has no column 'body' (it has: id, source, text)"),
        "vocabulary mismatch": ([*text, "--model_name_or_path", str(small_model)], "has 300 tokens but the model's vocabulary has 100"),
        "sequence too long": ([*text, "--max_position_embeddings", "64", "--max_seq_length", "128"], "exceeds the model's 64 positions"),
        "unknown encoder": ([*text, "--encoder_type", "mamba"], "--encoder_type 'mamba' is unknown"),
        "impossible combination": ([*text, "--encoder_type", "transformer", "--num_attention_layers", "1"], "invalid model configuration"),
        "architecture of a pretrained model": ([*text, "--model_name_or_path", str(small_model), "--recurrence", "simple"], "cannot change the pretrained"),
        "non-empty output dir": ([*text, "--output_dir", str(occupied)], "exists and is not empty; pass --overwrite_output_dir"),
        "no checkpoint to resume": ([*text, "--resume_from_checkpoint", "latest", "--output_dir", str(occupied)], "no checkpoint in"),
        "streaming without steps": ([*text, "--streaming"], "--streaming has no epoch length"),
        "push without repository": ([*text, "--push_to_hub"], "--push_to_hub needs --hub_model_id"),
        "bad flag value": ([*text, "--mlm_probability", "1.5"], "--mlm_probability must be between 0 and 1"),
        "unknown flag": ([*text, "--learning_rte", "1e-3"], "unrecognized arguments: --learning_rte"),
        "no data": ([], "exactly one of --train_file or --dataset_name"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing corpus", "empty corpus", "wrong column", "vocabulary mismatch", "sequence too long", "unknown encoder",
        "impossible combination", "architecture of a pretrained model", "non-empty output dir", "no checkpoint to resume",
        "streaming without steps", "push without repository", "bad flag value", "unknown flag", "no data",
    ],
)  # fmt: skip
def test_bad_input_stops_before_training_with_one_line(tmp_path, tokenizer_dir, capsys, case):
    extra, message = _bad_inputs(tmp_path, tokenizer_dir)[case]
    out = tmp_path / "out"
    args = ["--tokenizer_name", str(tokenizer_dir), "--max_seq_length", "32", "--disable_tqdm"]
    if "--output_dir" not in extra:
        args += ["--output_dir", str(out)]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    with pytest.raises(SystemExit) as exit_info:
        run(args + extra)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing written or overwritten


def test_command_line_bad_input_exit_code(tmp_path):
    """The real command line: exit status 2 and the last stderr line is the one error line."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run_pretraining.py"), "--train_file", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == f"error: --train_file {tmp_path / 'nope'} does not exist; check the path."
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------------
def test_continue_pretraining_a_bert_checkpoint_with_recurrence(tmp_path, tokenizer_dir):
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    bert_dir = tmp_path / "bert"
    bert = BertForMaskedLM(BertConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(bert_dir)
    out = tmp_path / "upcycled"
    args = ["--output_dir", str(out), "--train_file", str(TEXT), "--model_name_or_path", str(bert_dir), "--tokenizer_name", str(tokenizer_dir)]
    args += ["--recurrence", "simple", "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_train_steps", "2", "--disable_tqdm"]
    assert run(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "recurrent_mlm" and config["recurrence"] == "simple"
    upcycled = weights(out)
    # Positions past --max_seq_length get no gradient, only weight decay: still BERT's (a fresh init would not be).
    assert torch.allclose(upcycled["model.embeddings.position_embeddings.weight"][40:], bert.state_dict()["bert.embeddings.position_embeddings.weight"][40:], rtol=1e-4)

    again = tmp_path / "continued"  # our own checkpoint, with the tokenizer saved beside it
    assert run(["--output_dir", str(again), "--train_file", str(JSONL), "--model_name_or_path", str(out), "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--max_train_steps", "2", "--disable_tqdm"]) == 0
    assert AutoModelForMaskedLM.from_pretrained(again).config.recurrence == "simple"


def test_config_file_streaming_whole_words_and_masking_rate(tmp_path, tokenizer_dir):
    """A JSON config for a new model, the streaming reader, whole-word masking at 30%, CSV validation."""
    from recurrent_mlm import RecurrentMLMConfig
    from tests.conftest import tiny_config_kwargs

    config_file = tmp_path / "gated.json"
    config_file.write_text(RecurrentMLMConfig(**tiny_config_kwargs(vocab_size=300, recurrence="gated")).to_json_string())
    out = tmp_path / "run"
    args = ["--output_dir", str(out), "--config_name", str(config_file), "--tokenizer_name", str(tokenizer_dir), "--max_seq_length", "32"]
    args += ["--train_file", str(TEXT), str(JSONL), "--validation_file", str(CSV), "--streaming", "--max_train_steps", "3"]
    args += ["--whole_word_masking", "--mlm_probability", "0.3", "--per_device_train_batch_size", "4", "--disable_tqdm", "--logging_steps", "1"]
    assert run(args) == 0
    assert json.loads((out / "config.json").read_text())["recurrence"] == "gated"
    evals = [r for r in metrics(out) if "eval_loss" in r]
    assert len(evals) == 1 and evals[0]["eval_masked_tokens"] > 0
    assert sorted(train_losses(out)) == [1, 2, 3]


def test_bf16_autocast_and_torch_compile_paths(tmp_path, tokenizer_dir):
    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--max_train_steps", "2", "--mixed_precision", "bf16")
    args += ["--torch_compile", "--torch_compile_backend", "eager", "--max_eval_samples", "4"]
    assert run(args) == 0
    assert all(torch.isfinite(torch.tensor(v)) for v in train_losses(out).values())
    assert all(t.dtype == torch.float32 for t in weights(out).values())  # autocast keeps float32 master weights


def test_push_to_hub_uploads_the_final_folder_to_a_branch(tmp_path, tokenizer_dir, monkeypatch):
    """Through the real huggingface_hub client and the local Hub server of tests/hub_server.py."""
    from huggingface_hub import HfApi

    from tests.hub_server import shared_hub, use_hub

    hub = shared_hub()
    token = hub.state.add_user("pretrainer")
    use_hub(monkeypatch, hub)  # no HF_TOKEN: the token comes from --hub_token
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    api = HfApi(token=token)
    api.create_repo("pretrainer/tiny-recurrent")
    main_before = api.model_info("pretrainer/tiny-recurrent").sha
    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--max_train_steps", "2", "--checkpointing_steps", "1")
    args += ["--push_to_hub", "--hub_model_id", "tiny-recurrent", "--hub_token", token, "--hub_private_repo",
             "--hub_revision", "exp"]
    assert run(args) == 0
    files = set(api.list_repo_files("pretrainer/tiny-recurrent", revision="exp"))
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "modeling_recurrent_mlm.py"} <= files
    assert not any(f.startswith(("checkpoint", "runs/", "logs/")) for f in files)  # no training state or tracker logs
    assert api.model_info("pretrainer/tiny-recurrent").sha == main_before  # main untouched
    assert api.model_info("pretrainer/tiny-recurrent").private
    card = api.hf_hub_download("pretrainer/tiny-recurrent", "README.md", revision="exp")
    assert "pipeline_tag: fill-mask" in Path(card).read_text()
    assert token not in (out / "README.md").read_text() and token not in (out / "training_args.json").read_text()


def test_wrong_token_fails_before_training(tmp_path, tokenizer_dir, monkeypatch, capsys):
    from tests.hub_server import shared_hub, use_hub

    use_hub(monkeypatch, shared_hub(), "hf_not_a_real_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--train_file", str(WASHINGTON), "--max_train_steps", "2")
    with pytest.raises(SystemExit) as exit_info:
        run([*args, "--push_to_hub", "--hub_model_id", "someone/tiny"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "token" in err.lower()
    assert not out.exists()


def test_demo_command_runs(tmp_path):
    """The example command line (recipes.pretraining_argv) on the bundled corpus, shortened to a few steps."""
    out = tmp_path / "demo"
    args = pretraining_argv(out, train_file=REPO_ROOT / "data" / "corpus", max_train_steps=2, eval_steps=2, max_eval_samples=8)
    assert run([*args, "--disable_tqdm"]) == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["lines_decoded_with_replacement"] > 0  # the corpus' Latin-1 files were read, not fatal
    assert results["corpus"]["train_blocks"] > 3000 and json.loads((out / "config.json").read_text())["recurrence"] == "simple"


def test_accelerate_config_files_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    files = sorted((REPO_ROOT / "configs" / "accelerate").glob("*.yaml"))
    kinds = {load_config_from_file(str(f)).distributed_type.value for f in files}
    assert {"MULTI_GPU", "FSDP", "DEEPSPEED"} <= kinds
