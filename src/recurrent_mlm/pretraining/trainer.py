"""The pretraining loop and a whole run: `pretrain(args)` resumes, trains with periodic evaluation and
checkpoints, stops cleanly on preemption signals, and writes the final model, tokenizer, results, plot and
card (and pushes them) — what `run_pretraining.py` does, callable from Python.

What differs from transformers' `run_mlm_no_trainer.py`, and why:

* The loss of an optimizer step is the mean over every masked token of the global batch (all processes, all
  accumulation steps), not a mean of per-batch means: 2 processes x batch B give exactly the gradient of
  1 process x batch 2B.
* The LR scheduler is not passed through `accelerator.prepare` (which would step it once per process per call);
  it is stepped once per optimizer step, so the schedule is the same for any number of processes.
* Checkpoints are written without pickle (safetensors + JSON), atomically, and restore the RNG and the exact
  data position; a resumed run reproduces the uninterrupted loss curve, and refuses to continue when a
  setting that changes the numbers differs from the checkpoint's.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..cli import UsageError, portable_path, reset_accelerate_state, to_jsonable
from ..files import JsonlLogger, atomic_write_json, atomic_write_text, move_into
from .arguments import PretrainingArguments
from .setup import TRACKER_DIR, Setup, flatten_recurrent_weights, make_accelerator, prepare

logger = logging.getLogger("recurrent_mlm.pretraining")

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "all_results.json"
PLOT_FILE = "training_curves.png"
ARGS_FILE = "training_args.json"
# Artifacts of an earlier run that --overwrite_output_dir removes, so that stale checkpoints, metrics and logs
# never mix with the new run's.
RUN_ARTIFACTS = (METRICS_FILE, RESULTS_FILE, PLOT_FILE, ARGS_FILE, TRACKER_DIR)


def masked_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Correct top-1 predictions at labelled positions. `logits` is `(num_labelled, vocab)` (sparse head) or
    `(batch, seq, vocab)`."""
    selected = labels != -100
    if logits.dim() == 3:
        logits = logits[selected]
    return (logits.argmax(dim=-1) == labels[selected]).sum()


def train_step(window, *, accelerator, model, optimizer, scheduler, max_grad_norm: float):
    """One optimizer step over `window` (the micro-batches of one accumulation cycle).

    The loss is the sum of per-token losses over the window's masked tokens on all processes, divided by their
    total count. Accelerate divides each micro-batch loss by the accumulation steps and DDP averages gradients
    over processes; multiplying by both makes the gradient exactly that of the global token mean, independent
    of how the global batch is split. Returns device tensors (no host synchronisation)."""
    counts = torch.stack([(batch["labels"] != -100).sum() for batch in window])  # (micro_batches,)
    global_count = accelerator.reduce(counts.sum(), reduction="sum")
    scale = accelerator.num_processes * accelerator.gradient_accumulation_steps / global_count.clamp(min=1).float()
    loss_sum = torch.zeros((), device=counts.device)
    correct = torch.zeros((), dtype=torch.long, device=counts.device)
    grad_norm = None
    for index, batch in enumerate(window):
        with accelerator.accumulate(model):
            outputs = model(input_ids=batch["input_ids"], labels=batch["labels"])
            # mean -> sum over this micro-batch's masked tokens (a micro-batch with none has a NaN mean: 0)
            micro_sum = torch.nan_to_num(outputs.loss.float(), nan=0.0) * counts[index]
            accelerator.backward(micro_sum * scale)
            if accelerator.sync_gradients and max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += micro_sum.detach()
        with torch.no_grad():
            correct += masked_correct(outputs.logits.detach(), batch["labels"])
    learning_rate = optimizer.param_groups[0]["lr"]  # the rate this step used
    if not optimizer.step_was_skipped:  # fp16 overflow: the optimizer did not step, neither does the schedule
        scheduler.step()
    accelerator.unwrap_model(model, keep_torch_compile=False).project_recurrent_weights()
    return {"loss_sum": loss_sum, "correct": correct, "count": global_count, "grad_norm": grad_norm, "learning_rate": learning_rate}


@torch.no_grad()
def evaluate(model, dataloader, accelerator) -> dict[str, float]:
    """Token-weighted MLM loss and accuracy over the held-out blocks (each example counted once, however the
    blocks were spread over processes)."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    for batch in dataloader:
        labels = batch["labels"]
        outputs = model(input_ids=batch["input_ids"], labels=labels, sparse_logits=True)
        selected = labels != -100
        target = labels[selected]
        token_loss = torch.nn.functional.cross_entropy(outputs.logits.float(), target, reduction="none")  # (num_labelled,)
        hits = (outputs.logits.argmax(dim=-1) == target).float()
        rows = selected.nonzero()[:, 0]  # example of each labelled token
        per_example = torch.zeros(labels.shape[0], 3, device=labels.device)  # (batch, [loss sum, count, correct])
        per_example.index_add_(0, rows, torch.stack([token_loss, torch.ones_like(token_loss), hits], dim=1))
        totals += accelerator.gather_for_metrics(per_example).sum(dim=0).double()
    model.train()
    loss_sum, count, correct = totals.tolist()
    count = max(count, 1.0)
    loss = loss_sum / count
    return {
        "eval_loss": loss,
        "eval_mlm_accuracy": correct / count,
        "eval_perplexity": math.exp(min(loss, 50.0)),
        "eval_masked_tokens": int(totals[1].item()),
    }


def _tracker_config(args: PretrainingArguments, extra: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters as the scalar types TensorBoard's hparams accept."""
    out = {}
    for key, value in {**vars(args), **extra}.items():
        if key.startswith("_") or key == "hub_token":
            continue
        out[key] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


class Trainer:
    """The training loop and its bookkeeping: position, metrics, evaluation, checkpoints, final outputs."""

    def __init__(self, args: PretrainingArguments, accelerator, setup: Setup, command: str | None = None):
        from .checkpointing import CheckpointManager

        self.args = args
        self.accelerator = accelerator
        self.setup = setup
        self.command = command  # how the run was started, for the model card
        self.output_dir = Path(args.output_dir)
        self.checkpoints = CheckpointManager(accelerator, self.output_dir, args.save_total_limit)
        self.metrics = JsonlLogger(self.output_dir / METRICS_FILE)
        self.global_step = self.epoch = self.batches_in_epoch = self.tokens_seen = 0
        self.last_eval: dict[str, float] | None = None
        self.last_eval_step = -1
        self.last_logged_loss = float("nan")
        self.train_runtime = 0.0
        self.best_eval_loss = math.inf  # early stopping: the best held-out loss and evaluations since it
        self.evals_without_improvement = 0
        self.stopped_early = False
        self._train_started: float | None = None
        self.settings = run_settings(args, setup, accelerator)
        self.accumulation = args.gradient_accumulation_steps
        self.tokens_per_step = args.per_device_train_batch_size * accelerator.num_processes * self.accumulation * args.max_seq_length
        self.num_parameters = sum(p.numel() for p in accelerator.unwrap_model(setup.model).parameters())

    # -- start ---------------------------------------------------------------------------------------------
    def resume(self) -> None:
        from .checkpointing import read_trainer_state

        setup, args = self.setup, self.args
        if setup.resume_path is None:
            return
        saved = read_trainer_state(setup.resume_path)
        check_same_settings(saved, self.settings, setup.resume_path, allow=args.resume_with_changed_settings)
        step = int(saved["global_step"])
        if step > setup.max_train_steps or (step == setup.max_train_steps and (self.output_dir / RESULTS_FILE).exists()):
            raise UsageError(
                f"{setup.resume_path.name} is at step {step} and this run ends at step {setup.max_train_steps}: "
                f"there is nothing left to train (the finished model is in {self.output_dir}). To train longer, "
                "start a new run from it with --model_name_or_path."
            )
        state = self.checkpoints.load(setup.resume_path, model=setup.model, optimizer=setup.optimizer, scheduler=setup.scheduler)
        flatten_recurrent_weights(setup.model)
        self.global_step, self.epoch = int(state["global_step"]), int(state["epoch"])
        self.tokens_seen = int(state.get("tokens_seen", 0))
        self.batches_in_epoch = _resumed_position(state, args, self.accelerator.num_processes)
        self.last_logged_loss = float(state.get("last_logged_loss") if state.get("last_logged_loss") is not None else "nan")
        self.train_runtime = float(state.get("train_runtime_seconds", 0.0))
        self.best_eval_loss = float(state.get("best_eval_loss") if state.get("best_eval_loss") is not None else "inf")
        self.evals_without_improvement = int(state.get("evals_without_improvement", 0))
        logger.info(
            "resumed from %s at step %d (epoch %d, %d batches into it)",
            setup.resume_path,
            self.global_step,
            self.epoch,
            self.batches_in_epoch,
        )

    def begin(self) -> None:
        """From here on the run writes to the output folder."""
        acc, args, setup = self.accelerator, self.args, self.setup
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if setup.resume_path is None:
                _remove_run_artifacts(self.output_dir)
            else:  # the steps after the checkpoint are trained again: drop their records
                kept = [r for r in self.metrics.read() if r.get("step", 0) <= self.global_step]
                atomic_write_text(self.metrics.path, "".join(json.dumps(r) + "\n" for r in kept))
            atomic_write_json(self.output_dir / ARGS_FILE, {k: portable_path(v) for k, v in to_jsonable(args).items()})
        acc.wait_for_everyone()
        acc.init_trackers(
            "run_pretraining",
            config=_tracker_config(args, {"num_parameters": self.num_parameters, "max_train_steps_resolved": setup.max_train_steps}),
        )
        global_batch = args.per_device_train_batch_size * acc.num_processes * self.accumulation
        logger.info(
            "***** pretraining %s (%s parameters) *****\n  processes %d, global batch %d blocks (%d per process x %d "
            "accumulation), %d tokens per step\n  %d optimizer steps%s, warmup %d, peak lr %g (%s)",
            _describe_model(acc.unwrap_model(setup.model).config),
            f"{self.num_parameters:,}",
            acc.num_processes,
            global_batch,
            args.per_device_train_batch_size,
            self.accumulation,
            self.tokens_per_step,
            setup.max_train_steps,
            f" ({setup.steps_per_epoch} per epoch, {setup.num_epochs} epoch(s))" if setup.steps_per_epoch else "",
            setup.warmup_steps,
            args.learning_rate,
            args.lr_scheduler_type,
        )

    # -- loop ----------------------------------------------------------------------------------------------
    def train(self, signals: PreemptionSignals | None = None) -> None:
        """Train to the end, or up to the step at which `signals` reports a preemption signal (on any process)."""
        from tqdm.auto import tqdm

        from .checkpointing import fault_point

        acc, args, setup = self.accelerator, self.args, self.setup
        progress = tqdm(
            total=setup.max_train_steps,
            initial=self.global_step,
            desc="pretraining",
            disable=args.disable_tqdm or not acc.is_local_main_process,
            dynamic_ncols=True,
        )
        stats = _zero_stats(acc.device)
        start = interval_start = self._train_started = time.perf_counter()
        interval_steps = 0
        setup.model.train()
        while self.global_step < setup.max_train_steps:
            if setup.num_epochs is not None and self.epoch >= setup.num_epochs:
                break
            steps_this_epoch = 0
            signalled = False  # every process agreed to stop inside the epoch
            for window in self._windows():
                result = train_step(
                    window,
                    accelerator=acc,
                    model=setup.model,
                    optimizer=setup.optimizer,
                    scheduler=setup.scheduler,
                    max_grad_norm=args.max_grad_norm,
                )
                self.batches_in_epoch += self.accumulation
                self.global_step += 1
                self.tokens_seen += self.tokens_per_step
                steps_this_epoch += 1
                interval_steps += 1
                progress.update(1)
                for key in ("loss_sum", "correct", "count"):
                    stats[key] += result[key]
                stats["learning_rate"] = result["learning_rate"]
                if result["grad_norm"] is not None:
                    stats["grad_norm"] = result["grad_norm"]

                if self.global_step % args.logging_steps == 0 or self.global_step == setup.max_train_steps:
                    record = _log_record(acc, stats, self.global_step, self.epoch, self.tokens_seen)
                    record["tokens_per_second"] = interval_steps * self.tokens_per_step / max(time.perf_counter() - interval_start, 1e-9)
                    self.last_logged_loss = record["loss"]
                    if acc.is_main_process:
                        self.metrics.log(record)
                    acc.log({k: v for k, v in record.items() if k != "step"}, step=self.global_step)
                    progress.set_postfix(
                        loss=f"{record['loss']:.3f}", lr=f"{record['learning_rate']:.2e}", tok_s=f"{record['tokens_per_second']:.0f}"
                    )
                    stats = _zero_stats(acc.device)
                    interval_start, interval_steps = time.perf_counter(), 0
                if args.eval_steps and self.global_step % args.eval_steps == 0:
                    self._early_stopping_update(self.evaluate())
                    interval_start = time.perf_counter()  # tokens/s measures training only
                if args.checkpointing_steps and self.global_step % args.checkpointing_steps == 0:
                    self.save_checkpoint()
                    interval_start = time.perf_counter()
                fault_point("step_end", step=self.global_step)
                if self.global_step >= setup.max_train_steps or self.stopped_early:
                    break
                if signals is not None and signals.agreed(acc):
                    signalled = True
                    break
            if self.global_step >= setup.max_train_steps or self.stopped_early:
                break
            # A signal that arrived after the epoch's last agreement is known to one process only: agree
            # again (every process gets here together) instead of reading the local flag, which would let that
            # process leave while the others wait in the next epoch's first collective.
            if signals is not None and (signalled or signals.agreed(acc)):
                break
            if steps_this_epoch == 0 and self.batches_in_epoch == 0:  # only a stream can be this short
                raise UsageError(
                    "the training data yields less than one optimizer step per epoch; give more text or lower "
                    "--per_device_train_batch_size / --gradient_accumulation_steps."
                )
            self.epoch += 1
            self.batches_in_epoch = 0
        progress.close()
        self.train_runtime += time.perf_counter() - start
        self._train_started = None

    def _early_stopping_update(self, results: dict[str, float] | None) -> None:
        """Count evaluations without a better held-out loss; stop after --early_stopping_patience of them (the
        same decision on every process: the loss is already reduced over them)."""
        patience = self.args.early_stopping_patience
        if patience is None or results is None:
            return
        if results["eval_loss"] < self.best_eval_loss:
            self.best_eval_loss, self.evals_without_improvement = results["eval_loss"], 0
            return
        self.evals_without_improvement += 1
        if self.evals_without_improvement >= patience:
            self.stopped_early = True
            logger.info(
                "early stopping at step %d: the held-out loss has not improved on %.4f for %d evaluations",
                self.global_step,
                self.best_eval_loss,
                patience,
            )

    def _windows(self):
        """The rest of the current epoch as windows of `gradient_accumulation_steps` micro-batches; an
        incomplete last window is dropped (like `drop_last`), so every step sees the same global batch."""
        acc, loader = self.accelerator, self.setup.train_dataloader
        loader.set_epoch(self.epoch)
        if self.batches_in_epoch:  # resuming inside an epoch: the same order, minus what was trained on
            loader = acc.skip_first_batches(loader, self.batches_in_epoch)
            loader.set_epoch(self.epoch)
        batches = iter(loader)
        while True:
            window = [batch for _, batch in zip(range(self.accumulation), batches)]
            if len(window) < self.accumulation:
                return
            yield window

    def evaluate(self) -> dict[str, float] | None:
        acc = self.accelerator
        if self.setup.eval_dataloader is None:
            return None
        results = evaluate(self.setup.model, self.setup.eval_dataloader, acc)
        if acc.is_main_process:
            self.metrics.log({"step": self.global_step, "epoch": self.epoch, **results})
        acc.log({k: v for k, v in results.items() if k != "eval_masked_tokens"}, step=self.global_step)
        logger.info(
            "step %d: held-out loss %.4f, MLM accuracy %.4f, perplexity %.2f",
            self.global_step,
            results["eval_loss"],
            results["eval_mlm_accuracy"],
            results["eval_perplexity"],
        )
        self.last_eval, self.last_eval_step = results, self.global_step
        return results

    def trainer_state(self) -> dict[str, Any]:
        args = self.args
        return {
            "global_step": self.global_step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "tokens_seen": self.tokens_seen,
            "max_train_steps": self.setup.max_train_steps,
            "per_device_train_batch_size": args.per_device_train_batch_size,
            "gradient_accumulation_steps": self.accumulation,
            "max_seq_length": args.max_seq_length,
            "seed": args.seed,
            "mlm_probability": args.mlm_probability,
            "last_logged_loss": self.last_logged_loss if math.isfinite(self.last_logged_loss) else None,
            "train_runtime_seconds": self.train_runtime + (time.perf_counter() - self._train_started if self._train_started else 0.0),
            "best_eval_loss": self.best_eval_loss if math.isfinite(self.best_eval_loss) else None,
            "evals_without_improvement": self.evals_without_improvement,
            "settings": self.settings,
        }

    def stop_on_signal(self, signum: int) -> int:
        """Preempted: save the full training state (unless this step was just saved) and return 128 + signum."""
        import signal

        name = signal.Signals(signum).name
        acc, args = self.accelerator, self.args
        if args.checkpointing_steps and self.global_step % args.checkpointing_steps == 0 and self.global_step > 0:
            path = self.checkpoints.output_dir / f"checkpoint-{self.global_step}"
        else:
            path = self.save_checkpoint()
        acc.end_training()
        if acc.is_main_process:
            print(
                f"{name} received: stopped after step {self.global_step} of {self.setup.max_train_steps} and saved the "
                f"training state to {path.resolve()}; run the same command with --resume_from_checkpoint latest to "
                "continue.",
                file=sys.stderr,
                flush=True,
            )
        return 128 + signum

    def save_checkpoint(self) -> Path:
        setup = self.setup
        return self.checkpoints.save(
            self.global_step,
            model=setup.model,
            optimizer=setup.optimizer,
            scheduler=setup.scheduler,
            tokenizer=setup.tokenizer,
            trainer_state=self.trainer_state(),
        )

    # -- end -----------------------------------------------------------------------------------------------
    def finish(self) -> int:
        """Final evaluation, model + tokenizer + results + plot + card, optional push. Returns the exit status."""
        from accelerate.utils import DistributedType

        from .checkpointing import apply_umask

        acc, args, setup, output_dir = self.accelerator, self.args, self.setup, self.output_dir
        if self.last_eval_step != self.global_step:
            self.evaluate()
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(setup.model, keep_torch_compile=False)
        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        state_dict = acc.get_state_dict(setup.model) if sharded else None  # a collective under FSDP/DeepSpeed
        # Written to a staging folder first: a full disk or a kill while saving never leaves a config.json
        # without its weights in the output folder.
        staging = output_dir / ".final-model.tmp"
        if acc.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
        acc.wait_for_everyone()
        unwrapped.save_pretrained(
            staging, is_main_process=acc.is_main_process, save_function=acc.save, state_dict=state_dict, safe_serialization=True
        )
        if acc.is_main_process:
            setup.tokenizer.save_pretrained(staging)
            move_into(staging, output_dir)
        results: dict[str, Any] = {
            **(self.last_eval or {}),
            "train_loss": self.last_logged_loss,
            "train_steps": self.global_step,
            "train_tokens": self.tokens_seen,
            "train_runtime_seconds": self.train_runtime,
            "num_parameters": self.num_parameters,
            "num_processes": acc.num_processes,
            "mixed_precision": str(acc.mixed_precision),
            "corpus": setup.data.info,
            "lines_decoded_with_replacement": setup.source.replaced_lines(),
            "stopped_early": self.stopped_early,
            "settings": self.settings,
        }
        if acc.is_main_process:
            atomic_write_json(output_dir / RESULTS_FILE, results)
            _write_plot(output_dir, self.metrics.read(), _describe_model(unwrapped.config))
            _write_card(output_dir, unwrapped.config, args, results, setup.source, setup.trained_tokenizer, self.command)
            apply_umask(output_dir, recursive=False)
        acc.wait_for_everyone()
        acc.end_training()  # also tears down the process group: no collective after this line
        if not acc.is_main_process:
            return 0
        status = self._push() if args.push_to_hub else 0
        summary = ""
        if self.last_eval:
            summary = (
                f" (held-out loss {self.last_eval['eval_loss']:.4f}, MLM accuracy "
                f"{self.last_eval['eval_mlm_accuracy']:.4f}, perplexity {self.last_eval['eval_perplexity']:.2f})"
            )
        print(f"Saved the pretrained model to {output_dir.resolve()}{summary}", flush=True)
        return status

    def _push(self) -> int:
        from ..hub import HubPushError, push_output_dir

        args = self.args
        try:
            url = push_output_dir(
                self.output_dir,
                args.hub_model_id,
                token=args.hub_token,
                revision=args.hub_revision,
                private=True if args.hub_private else None,
                commit_message=f"Pretrained with run_pretraining.py ({self.global_step} steps)",
            )
        except HubPushError as err:  # the model is safe on disk: say so and how to retry, do not lose the run
            print(
                f"error: {err} The model is saved in {self.output_dir}: push it later with "
                f"`python -m recurrent_mlm.hub push {self.output_dir} --hub_model_id {args.hub_model_id}`.",
                file=sys.stderr,
            )
            return 1
        logger.info("pushed to %s", url)
        return 0


class PreemptionSignals:
    """SIGTERM / SIGUSR1 (what SLURM, Kubernetes and torchrun send before killing a job) set a flag instead of
    killing the run; the loop checks it after each optimizer step. Processes agree through a max-reduce, so a
    signal that reaches one process stops them all at the same step. The first signal restores the previous
    handlers, so a second one acts as it normally would. Only the main thread can install handlers; elsewhere
    (or with `enabled=False`) this does nothing."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionSignals:
        import signal
        import threading

        if self.enabled and threading.current_thread() is threading.main_thread():
            for name in ("SIGTERM", "SIGUSR1"):
                if hasattr(signal, name):
                    signum = getattr(signal, name)
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.received = signum
        self._restore()

    def _restore(self) -> None:
        import signal

        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()

    def agreed(self, accelerator) -> bool:
        """True on every process once any process has received a signal (a collective when there are several)."""
        if not self.enabled:
            return False
        if accelerator.num_processes > 1:
            flag = torch.tensor([0 if self.received is None else self.received], device=accelerator.device)
            agreed = int(accelerator.reduce(flag, reduction="max").item())
            if agreed and self.received is None:
                self.received = agreed
                self._restore()
        return self.received is not None


def _zero_stats(device) -> dict[str, Any]:
    return {
        "loss_sum": torch.zeros((), device=device),
        "correct": torch.zeros((), dtype=torch.long, device=device),
        "count": torch.zeros((), dtype=torch.long, device=device),
        "grad_norm": None,
        "learning_rate": float("nan"),
    }


def _log_record(accelerator, stats, step: int, epoch: int, tokens_seen: int) -> dict[str, Any]:
    """Token-weighted loss and accuracy over the logging interval, summed over processes."""
    local = torch.stack([stats["loss_sum"].double(), stats["correct"].double()])
    loss_sum, correct = accelerator.reduce(local, reduction="sum").tolist()
    count = max(float(stats["count"].item()), 1.0)  # already global
    record = {
        "step": step,
        "epoch": epoch,
        "loss": loss_sum / count,
        "mlm_accuracy": correct / count,
        "learning_rate": stats["learning_rate"],
        "tokens_seen": tokens_seen,
    }
    if stats["grad_norm"] is not None:
        record["grad_norm"] = float(stats["grad_norm"])
    return record


def _resumed_position(state: dict[str, Any], args: PretrainingArguments, num_processes: int) -> int:
    """Batches (per process) to skip in the resumed epoch. The position is kept in samples, so a run resumed
    with another process count (the same global batch) continues from the same sample."""
    samples = int(state["batches_in_epoch"]) * int(state["per_device_train_batch_size"]) * int(state["world_size"])
    per_batch = args.per_device_train_batch_size * num_processes
    if samples % per_batch:
        logger.warning(
            "the resumed epoch position (%d samples) is not a whole number of this run's batches (%d): %d samples "
            "of the epoch are skipped twice or not at all.",
            samples,
            per_batch,
            samples % per_batch,
        )
    return samples // per_batch


def _remove_run_artifacts(output_dir: Path) -> None:
    from .checkpointing import CHECKPOINT_PREFIX

    for path in output_dir.iterdir():
        if path.name in RUN_ARTIFACTS or path.name.startswith(CHECKPOINT_PREFIX) or path.name.startswith("." + CHECKPOINT_PREFIX):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _describe_model(config) -> str:
    parts = [f"encoder={config.encoder_type}"]
    if config.recurrence:
        parts.append(f"recurrence={config.recurrence}")
    if getattr(config, "share_layers", False):
        parts.append("shared layers")
    parts.append(f"{config.num_hidden_layers}x{config.hidden_size}")
    parts.append(f"vocab {config.vocab_size}")
    return ", ".join(parts)


def _write_plot(output_dir: Path, records: list[dict[str, Any]], title: str) -> None:
    from .plotting import plot_training_curves

    try:
        plot_training_curves(records, output_dir / PLOT_FILE, title=title)
    except Exception as err:  # a figure must never cost the trained model
        logger.warning("could not draw %s: %s", PLOT_FILE, err)


def _write_card(output_dir, config, args, results, source, trained_tokenizer, command: str | None) -> None:
    from ..model_card import write_model_card

    metrics = {k: results[k] for k in ("eval_loss", "eval_mlm_accuracy", "eval_perplexity") if k in results}
    training = {
        "objective": f"masked language modelling, {args.mlm_probability:.0%} of tokens predicted "
        f"({args.mask_replace_prob:.0%} [MASK] / {args.random_replace_prob:.0%} random / rest unchanged)"
        + (", whole words" if args.whole_word_masking else ""),
        "optimizer steps": results["train_steps"],
        "tokens seen": f"{results['train_tokens']:,}",
        "sequence length": args.max_seq_length,
        "global batch (blocks)": args.per_device_train_batch_size * results["num_processes"] * args.gradient_accumulation_steps,
        "learning rate": f"{args.learning_rate:g} ({args.lr_scheduler_type}, AdamW, weight decay {args.weight_decay:g})",
        "mixed precision": results.get("mixed_precision", "no"),
        "tokenizer": "WordPiece trained on the corpus" if trained_tokenizer else portable_path(args.tokenizer_name or args.model_name_or_path),
        "parameters trained (base model without pooler, with the MLM head)": f"{results['num_parameters']:,}",
    }
    extra = {
        "Evaluation": "Held-out blocks are scored with a fixed 15% masking (80/10/10) and a fixed seed, so these "
        "numbers compare across runs and model variants trained on the same data, tokenizer and sequence length.",
        "Command": f"```\n{command or describe_call(args)}\n```",
    }
    files = source.describe_files()
    try:
        write_model_card(
            output_dir,
            config=config,
            pipeline_tag="fill-mask",
            metrics=metrics,
            dataset=source.label if args.dataset_name else None,
            base_model=portable_path(args.model_name_or_path) if args.model_name_or_path else None,
            training=training,
            extra_sections=extra,
            training_data=f"Pretrained on {files}" if files else None,
        )
    except Exception as err:  # the card is documentation: never fail a finished run on it
        logger.warning("could not write the model card: %s", err)


def describe_call(args: PretrainingArguments) -> str:
    """The Python call that ran this pretraining (non-default arguments only, no secrets, portable paths)."""
    fields = {k: portable_path(v) for k, v in to_jsonable(args).items() if args.was_given(k)}
    inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"recurrent_mlm.pretraining.pretrain(PretrainingArguments({inner}))"


# ----------------------------------------------------------------------------------------------------------
# What a resumed run must share with its checkpoint
# ----------------------------------------------------------------------------------------------------------
_VOLATILE_CONFIG_KEYS = {"transformers_version", "architectures", "auto_map", "_name_or_path", "dtype", "torch_dtype", "_attn_implementation_autoset"}


def run_settings(args: PretrainingArguments, setup: Setup, accelerator) -> dict[str, Any]:
    """Every setting that changes the numbers of a run (the data, the model, the masks, the batches, the
    optimisation). A resumed run must have the same, or it would not continue its checkpoint's run. The process
    count and the split of the global batch into processes and accumulation steps may change: they give the same
    numbers."""
    import hashlib

    config = accelerator.unwrap_model(setup.model).config.to_dict()
    config = {k: v for k, v in sorted(config.items()) if k not in _VOLATILE_CONFIG_KEYS}
    model_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {
        "training data": setup.source.content_fingerprint("train"),
        "held-out data": setup.source.content_fingerprint("validation"),
        "model config": model_hash,
        "max_seq_length": args.max_seq_length,
        "seed": args.seed,
        "mlm_probability": args.mlm_probability,
        "mask_replace_prob": args.mask_replace_prob,
        "random_replace_prob": args.random_replace_prob,
        "whole_word_masking": args.whole_word_masking,
        "validation_split_percentage": args.validation_split_percentage,
        "max_eval_samples": args.max_eval_samples,
        "global batch size": args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "adam_beta1": args.adam_beta1,
        "adam_beta2": args.adam_beta2,
        "adam_epsilon": args.adam_epsilon,
        "max_grad_norm": args.max_grad_norm,
        "lr_scheduler_type": args.lr_scheduler_type,
        "warmup steps": setup.warmup_steps,
        "max_train_steps (resolved)": setup.max_train_steps,
        "mixed_precision": str(accelerator.mixed_precision),
        "early_stopping_patience": args.early_stopping_patience,
        "eval_steps": args.eval_steps if args.early_stopping_patience else None,
    }


def check_same_settings(saved: dict[str, Any], now: dict[str, Any], path: Path, *, allow: bool) -> None:
    """Refuse (or with `allow`, warn about) a resume whose settings differ from the checkpoint's."""
    before = saved.get("settings")
    if before is None:  # a checkpoint of an older version: compare what it recorded
        legacy = {"max_seq_length": "max_seq_length", "seed": "seed", "mlm_probability": "mlm_probability"}
        before = {ours: saved[theirs] for ours, theirs in legacy.items() if theirs in saved}
        now = {k: now[k] for k in before}
    changed = [k for k in now if k in before and before[k] != now[k]]
    if not changed:
        return
    details = "; ".join(
        f"{k}: changed" if k in ("training data", "held-out data", "model config") else f"{k}: {before[k]!r} -> {now[k]!r}"
        for k in changed[:4]
    ) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
    if allow:
        logger.warning("resuming %s with changed settings (%s): the run differs from an uninterrupted one.", path, details)
        return
    raise UsageError(
        f"{path} was trained with other settings ({details}); resuming would mix two different runs. Use the "
        "checkpoint's settings, start afresh in a new --output_dir, or pass --resume_with_changed_settings to "
        "continue anyway."
    )


# ----------------------------------------------------------------------------------------------------------
# A whole run
# ----------------------------------------------------------------------------------------------------------
@dataclass
class PretrainingResult:
    """What `pretrain` returns. `exit_code` is the command line's: 0 finished, 1 the push failed (the model is
    saved), 128 + signal number when a preemption signal stopped the run (`checkpoint` holds its state)."""

    output_dir: Path
    exit_code: int
    results: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None

    @property
    def finished(self) -> bool:
        return self.exit_code in (0, 1)


def pretrain(args: PretrainingArguments, *, command: str | None = None) -> PretrainingResult:
    """Run a whole pretraining (or continue one: `args.resume_from_checkpoint`). Raises `UsageError` for bad
    input before anything is written. `command` is how the run was started, for the model card (default: this
    Python call)."""
    from ..cpu import tune_cpu_allocator

    args.validate()
    tune_cpu_allocator()  # large CPU temporaries are reused, not page-faulted in every step (RMLM_MALLOC_TUNING=0 to skip)
    accelerator = make_accelerator(args)
    try:
        trainer = Trainer(args, accelerator, prepare(args, accelerator), command)
        trainer.resume()
        trainer.begin()
        with PreemptionSignals(enabled=not args.no_checkpoint_on_signal) as signals:
            trainer.train(signals)
        output_dir = Path(args.output_dir)
        if signals.received is not None:
            code = trainer.stop_on_signal(signals.received)
            return PretrainingResult(output_dir, code, checkpoint=trainer.checkpoints.output_dir / f"checkpoint-{trainer.global_step}")
        code = trainer.finish()
        results_path = output_dir / RESULTS_FILE
        results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.exists() else {}
        return PretrainingResult(output_dir, code, results=results)
    finally:
        reset_accelerate_state()  # the next run of this process may use other Accelerate settings


__all__ = [
    "METRICS_FILE",
    "RESULTS_FILE",
    "PLOT_FILE",
    "ARGS_FILE",
    "PretrainingResult",
    "PreemptionSignals",
    "Trainer",
    "evaluate",
    "masked_correct",
    "pretrain",
    "train_step",
]
