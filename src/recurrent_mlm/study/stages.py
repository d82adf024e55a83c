"""The study's shared stages: one tokenizer, a pretraining cache every claim reads, task data with a selection
split, and fine-tuning sweeps. Every stage is resumable: a finished stage is reused, an interrupted pretraining
resumes from its last checkpoint, an interrupted sweep keeps its finished runs.

Layout of a study folder:

    tokenizer/                          one WordPiece vocabulary for every model (trained on the corpus)
    pretraining/<model>-s<seed>/        run_pretraining outputs (model, metrics, checkpoints while running)
    data/glue/<Task>/{train,dev}.tsv    training rows; dev = the official dev rows, then the selection rows
    data/glue/manifest.json             which rows went where, and the source files' checksums
    finetune/<task>/p<seed>/            run_glue sweeps (every model x learning rate x fine-tuning seed)
    claims/<claim>/                     plan.json (written before any run), summary.json, report.md, plots
    study.json                          the tier and the data sources (a resumed study must match)
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..cli import UsageError
from ..files import atomic_write_json, atomic_write_text, sha256_file
from .tiers import MODELS, Tier

TIER_DEFAULTS = {f.name: f.default for f in fields(Tier) if f.default is not MISSING}
EQUAL_COMPUTE_FILE = "equal_compute.json"

logger = logging.getLogger("recurrent_mlm.study")

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_CORPUS = REPO_ROOT / "data" / "corpus"
DONE = "all_results.json"


def machine_description() -> str:
    import torch

    cores = os.cpu_count()
    threads = torch.get_num_threads()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()} {platform.processor() or ''} {cores} cores ({threads} torch threads), {gpu}; " \
        f"Python {platform.python_version()}, torch {torch.__version__}".replace("  ", " ")


def time_training_steps(tier: Tier, models: tuple[str, ...], rounds: int = 3, steps: int = 3) -> dict[str, float]:
    """Seconds per training step of each study model at the tier's shape, batch and sequence length on random
    tokens: two warm-up steps each, then `rounds` interleaved rounds of `steps` steps, the minimum round."""
    import torch

    from .. import RecurrentMLMForMaskedLM
    from ..optim import build_optimizer
    from ..presets import preset_config

    spec = tier.pretrain
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, spec.vocab_size, (spec.batch_size, spec.max_seq_length), generator=generator).to(device)
    labels = torch.where(torch.rand(ids.shape, generator=generator).to(device) < 0.15, ids, -100)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    trainers = {}
    for name in models:
        variant, extra = MODELS[name]
        torch.manual_seed(0)
        model = RecurrentMLMForMaskedLM(preset_config(spec.size, variant, vocab_size=spec.vocab_size, **{**spec.shape, **extra})).to(device)
        trainers[name] = (model, build_optimizer(model, 1e-4))

    def step(name: str) -> None:
        model, optimizer = trainers[name]
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for name in models:
        for _ in range(2):
            step(name)
    best = {name: math.inf for name in models}
    for _ in range(rounds):
        for name in models:
            synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                step(name)
            synchronize()
            best[name] = min(best[name], (time.perf_counter() - start) / steps)
    return best


@dataclass
class StudyContext:
    """Where a study writes and what it reads; every stage goes through it."""

    output_dir: Path
    tier: Tier
    corpus: list[str] = field(default_factory=lambda: [str(DEFAULT_CORPUS)])
    glue_dir: str | None = None
    agreement_dir: str | None = None
    quiet: bool = True
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        self.output_dir = Path(self.output_dir)

    # -- the study's identity ------------------------------------------------------------------------------
    def check_or_record(self) -> None:
        """Refuse to continue a study folder made with another tier or other data (its numbers would mix)."""
        record = {"tier": self.tier.name, "tier_settings": self.tier.to_dict(), "corpus": [Path(c).name for c in self.corpus]}
        path = self.output_dir / "study.json"
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8"))
            # A tier setting added after the folder was made, at its default (which is the old behaviour), is
            # not a change.
            settings = {k: v for k, v in record["tier_settings"].items()
                        if k in (old.get("tier_settings") or {}) or v != TIER_DEFAULTS.get(k, object())}  # fmt: skip
            record = {**record, "tier_settings": settings}
            changed = [k for k in ("tier", "tier_settings", "corpus") if json.dumps(old.get(k), sort_keys=True) != json.dumps(record[k], sort_keys=True)]
            if changed:
                raise UsageError(
                    f"{self.output_dir} holds a study with another {', '.join(changed)} (tier {old.get('tier')!r}); "
                    "its stages would not compare. Use another --output_dir."
                )
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {**record, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def claim_dir(self, claim: str) -> Path:
        folder = self.output_dir / "claims" / claim
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def log(self, message: str) -> None:
        print(f"[study {time.strftime('%H:%M:%S')}] {message}", flush=True)

    # -- the shared tokenizer ------------------------------------------------------------------------------
    def tokenizer(self) -> Path:
        from ..commands import TokenizerArguments, train_shared_tokenizer

        folder = self.output_dir / "tokenizer"
        if (folder / "tokenizer.json").exists():
            return folder
        self.log(f"training the shared WordPiece tokenizer ({self.tier.pretrain.vocab_size} tokens)")
        train_shared_tokenizer(
            TokenizerArguments(
                train_file=list(self.corpus),
                vocab_size=self.tier.pretrain.vocab_size,
                model_max_length=max(self.tier.pretrain.max_seq_length, 512),
                output_dir=str(folder),
                overwrite_output_dir=True,
            )
        )
        return folder

    # -- pretraining ---------------------------------------------------------------------------------------
    def pretrained(self, model: str, seed: int) -> Path:
        """The pretrained `model` (a name in tiers.MODELS) with `seed`: reused when finished, resumed when
        interrupted, trained otherwise. Every model of the study shares the tokenizer, the corpus, the number
        of steps, the batch and the data order (the same seed gives the same batches and masks)."""
        from ..pretraining import PretrainingArguments, pretrain
        from ..pretraining.checkpointing import latest_checkpoint

        variant, extra = MODELS[model]
        spec = self.tier.pretrain
        folder = self.output_dir / "pretraining" / f"{model}-s{seed}"
        if (folder / DONE).exists():
            return folder
        steps = self.equal_compute()["bert_steps"] if model == "bert_equal_compute" else spec.steps
        resume = latest_checkpoint(folder) is not None
        self.log(f"pretraining {model} (seed {seed}, {steps} steps){' - resuming' if resume else ''}")
        args = PretrainingArguments(
            train_file=list(self.corpus),
            output_dir=str(folder),
            overwrite_output_dir=folder.exists() and not resume,
            resume_from_checkpoint="latest" if resume else None,
            tokenizer_name=str(self.tokenizer()),
            size=spec.size,
            variant=variant,
            **{**spec.shape, **extra},
            max_seq_length=spec.max_seq_length,
            per_device_train_batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            warmup_ratio=spec.warmup_ratio,
            max_train_steps=steps,
            eval_steps=max(1, steps // 4),
            max_eval_samples=spec.eval_samples,
            checkpointing_steps=spec.checkpointing_steps,
            save_total_limit=1,
            logging_steps=max(1, min(10, spec.steps // 10)),
            seed=seed,
            disable_tqdm=self.quiet,
        )
        result = pretrain(args)
        if not result.finished:
            raise SystemExit(result.exit_code)  # a preemption signal: the checkpoint is saved, rerun to continue
        return folder

    def equal_compute(self) -> dict[str, Any]:
        """How many steps give BERT recurrent BERT's pretraining compute: measured once per study folder by a
        timing pilot (training steps of both models at the tier's shape and batch, interleaved, minimum of each
        over rounds, on the device the study runs on), written to pretraining/equal_compute.json before the
        arm trains, and read from there ever after (a resumed study never re-measures)."""
        path = self.output_dir / "pretraining" / EQUAL_COMPUTE_FILE
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        self.log("timing pilot: BERT and recurrent BERT training steps (for the equal-compute arm)")
        times = time_training_steps(self.tier, ("bert", "recurrent_bert"))
        ratio = times["recurrent_bert"] / times["bert"]
        record = {
            "bert_seconds_per_step": times["bert"],
            "recurrent_bert_seconds_per_step": times["recurrent_bert"],
            "ratio": ratio,
            "steps": self.tier.pretrain.steps,
            "bert_steps": max(self.tier.pretrain.steps, math.ceil(self.tier.pretrain.steps * ratio)),
            "machine": machine_description(),
            "rule": "bert_steps = ceil(steps x recurrent/BERT step time), never fewer than steps",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, record)
        return record

    def pretraining_record(self, model: str, seed: int) -> dict[str, Any]:
        folder = self.pretrained(model, seed)
        results = json.loads((folder / DONE).read_text(encoding="utf-8"))
        metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
        speeds = [r["tokens_per_second"] for r in metrics if "tokens_per_second" in r]
        return {
            "model": model,
            "seed": seed,
            "eval_loss": results.get("eval_loss"),
            "eval_mlm_accuracy": results.get("eval_mlm_accuracy"),
            "train_steps": results.get("train_steps"),
            "train_tokens": results.get("train_tokens"),
            "wall_seconds": results.get("train_runtime_seconds"),
            "seconds_per_step": (results.get("train_runtime_seconds") or 0) / max(1, results.get("train_steps") or 1),
            "tokens_per_second": float(np.median(speeds)) if speeds else None,
            "parameters": results.get("num_parameters"),
        }

    # -- GLUE data with a selection split --------------------------------------------------------------------
    def glue_task_folder(self, task_name: str) -> tuple[Path, dict[str, Any]]:
        """A GLUE-layout folder for `task_name`: `train.tsv` holds `train_rows` rows of the official training
        file; `dev.tsv` holds the official dev rows (the reported split) followed by `selection_rows` more rows
        of the training file that are never trained on (where learning rates are chosen). A fixed seed picks the
        rows, the same for every model."""
        from ..glue.tasks import get_task

        task = get_task(task_name)
        root = self.output_dir / "data" / "glue"
        folder = root / task.folder
        manifest_path = root / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        if task.name in manifest and (folder / "dev.tsv").exists():
            return root, manifest[task.name]
        source = self._glue_source(task)
        spec = self.tier.glue
        header, train_lines = _tsv_lines(source / "train.tsv", task)
        _, dev_lines = _tsv_lines(source / "dev.tsv", task)
        order = np.random.default_rng(12345).permutation(len(train_lines))
        needed = spec.train_rows + spec.selection_rows
        if len(train_lines) < needed:
            raise UsageError(
                f"{source / 'train.tsv'} has {len(train_lines)} rows; the {self.tier.name} tier needs {needed} "
                f"({spec.train_rows} to train on, {spec.selection_rows} to choose learning rates on)."
            )
        train_idx = sorted(order[: spec.train_rows].tolist())
        selection_idx = sorted(order[spec.train_rows : needed].tolist())
        dev_keep = dev_lines if spec.dev_rows is None else dev_lines[: spec.dev_rows]
        folder.mkdir(parents=True, exist_ok=True)
        prefix = [header] if header is not None else []
        atomic_write_text(folder / "train.tsv", "".join(prefix + [train_lines[i] for i in train_idx]))
        atomic_write_text(folder / "dev.tsv", "".join(prefix + dev_keep + [train_lines[i] for i in selection_idx]))
        entry = {
            "task": task.name,
            "source": str(source.name),
            "source_sha256": {n: sha256_file(source / n)[:16] for n in ("train.tsv", "dev.tsv")},
            "train_rows": len(train_idx),
            "dev_rows": len(dev_keep),
            "selection_rows": len(selection_idx),
            "train_indices_sha256": _hash_list(train_idx),
            "selection_indices_sha256": _hash_list(selection_idx),
        }
        manifest[task.name] = entry
        atomic_write_json(manifest_path, manifest)
        return root, entry

    def _glue_source(self, task) -> Path:
        candidates = []
        if self.glue_dir:
            candidates += [Path(self.glue_dir) / task.folder, Path(self.glue_dir)]
        candidates += [REPO_ROOT / "data" / "glue_demo" / task.folder]
        for folder in candidates:
            if (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file():
                return folder
        raise UsageError(
            f"no {task.folder} data: pass --glue_dir with a folder in the official GLUE layout (e.g. ../shared/data/glue)."
        )

    # -- fine-tuning ---------------------------------------------------------------------------------------
    def finetune(self, task_name: str, pretraining_seed: int, models: dict[str, Path]) -> Path:
        """The sweep of `models` (name -> folder) x learning rates x fine-tuning seeds on a task (resumable)."""
        from ..glue import GlueArguments, run_glue

        spec = self.tier.glue
        root, _ = self.glue_task_folder(task_name)
        out = self.output_dir / "finetune" / task_name / f"p{pretraining_seed}"
        names = list(models)
        result = run_glue(
            GlueArguments(
                model_name_or_path=[str(models[n]) for n in names],
                model_labels=names,
                task_name=task_name,
                glue_dir=str(root),
                learning_rates=list(spec.learning_rates),
                seeds=list(spec.seeds),
                num_train_epochs=spec.epochs,
                per_device_train_batch_size=spec.batch_size,
                max_seq_length=spec.max_seq_length,
                output_dir=str(out),
                sweep=True,
                disable_tqdm=self.quiet,
            )
        )
        if result.pending:
            raise SystemExit(f"the sweep in {out} has {result.pending} unfinished runs; run the study again.")
        return out

    def run_info(self, command: str) -> dict[str, Any]:
        return {
            "tier": self.tier.name,
            "command": command,
            "machine": machine_description(),
            "wall_seconds": round(time.time() - self.started, 1),
            "date": time.strftime("%Y-%m-%d"),
        }


def _tsv_lines(path: Path, task) -> tuple[str | None, list[str]]:
    """The header (None when the layout has none, as CoLA's) and the data lines of a GLUE TSV file, verbatim."""
    text = path.read_text(encoding=task.encoding)
    lines = [line + "\n" for line in text.split("\n") if line.strip()]
    if task.labelled.header:
        return lines[0], [line for line in lines[1:] if line.strip()]
    return None, [line for line in lines if line.strip()]


def _hash_list(values: list[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()[:16]


def read_sweep_runs(folder: Path) -> list[dict[str, Any]]:
    """Every finished run of a sweep folder: its result.json plus its per-example results (`items`)."""
    runs = []
    for path in sorted(Path(folder).glob("runs/*/*/result.json")):
        result = json.loads(path.read_text(encoding="utf-8"))
        items_path = path.parent / "eval_predictions.jsonl"
        result["items"] = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        runs.append(result)
    return runs


__all__ = ["StudyContext", "read_sweep_runs", "machine_description", "DEFAULT_CORPUS"]
