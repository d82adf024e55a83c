"""Bookkeeping of a models x learning rates x seeds sweep: one folder per run, resumable run by run.

Layout of a sweep's `--output_dir`:

    sweep.json                                   what the runs share (task, data fingerprint, hyperparameters)
    runs/<model>/lr_<lr>_seed_<seed>/result.json one finished run (written atomically, last)
    runs.json, runs.csv, stability.*             the report (see `report.py`)

A run counts as finished exactly when its `result.json` exists, and that file is written in one atomic rename
after everything else of the run. A sweep killed at any moment therefore restarts cleanly: finished runs are
kept as they are, an interrupted run starts again from scratch (its folder is emptied first), and the
results of earlier invocations are never rewritten. Adding learning rates, seeds or models to a finished
sweep runs only the new cells; changing anything else that affects the numbers is refused.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cli import UsageError
from ..files import atomic_write_json

SPEC_FILE = "sweep.json"
RUNS_DIR = "runs"
RESULT_FILE = "result.json"
# Settings that do not change a run's numbers; they may differ between invocations of one sweep.
NOT_COMPARED = ("logging_steps", "trust_remote_code", "per_device_eval_batch_size", "report_to", "cache_dir", "disable_tqdm", "dataloader_num_workers")


def lr_tag(learning_rate: float) -> str:
    """The learning rate as run folders and reports name it: `%g` (`0.0001`, `1e+06`) when that reads back as
    the same float, else the shortest exact text, so two different rates never share a folder (`1e-4` and
    `1.0000001e-4` are `0.0001` and `0.00010000001`)."""
    short = f"{learning_rate:g}"
    return short if float(short) == float(learning_rate) else repr(float(learning_rate))


def model_labels(paths: list[str], labels: list[str] | None = None) -> list[str]:
    """Short, file-system-safe names for the models (the last path component unless given)."""
    if labels is not None:
        if len(labels) != len(paths):
            raise UsageError(f"--model_labels has {len(labels)} names for {len(paths)} models; give one per model.")
        raw = labels
    else:
        raw = [Path(p.rstrip("/")).name or p for p in paths]
    cleaned = [re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "model" for name in raw]
    if labels is not None and len(set(cleaned)) != len(cleaned):
        raise UsageError(f"--model_labels must be distinct, got {', '.join(labels)}.")
    out, seen = [], {}
    for name in cleaned:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


@dataclass(frozen=True)
class RunKey:
    model_label: str
    model_path: str
    learning_rate: float
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.model_label}/lr_{lr_tag(self.learning_rate)}_seed_{self.seed}"


class Sweep:
    def __init__(self, output_dir: str | Path, keys: list[RunKey]):
        self.output_dir = Path(output_dir)
        self.keys = keys

    # -- set-up --------------------------------------------------------------------------------------------
    @staticmethod
    def check(
        output_dir: str | Path,
        spec: dict[str, Any],
        models: dict[str, str],
        overwrite: bool,
        weights: dict[str, str | None] | None = None,
    ) -> None:
        """Refuse to mix runs of different sweeps in one folder. Reads only; call before any output."""
        output_dir = Path(output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            raise UsageError(f"--output_dir {output_dir} is a file; give a folder path.")
        if overwrite or not output_dir.is_dir():
            return
        spec_path = output_dir / SPEC_FILE
        if not spec_path.exists():
            if any(output_dir.iterdir()):
                raise UsageError(
                    f"--output_dir {output_dir} is not empty and holds no sweep; choose another folder, or pass "
                    "--overwrite_output_dir to replace its contents."
                )
            return
        try:
            previous = json.loads(spec_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise UsageError(f"{spec_path} is unreadable ({err}); pass --overwrite_output_dir to start the sweep afresh.") from None
        before, now = _compared(previous.get("settings", {})), _compared(spec)
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if changed:
            details = "; ".join(f"{k}: {_show(before.get(k))} -> {_show(now.get(k))}" for k in changed[:4])
            raise UsageError(
                f"--output_dir {output_dir} holds a sweep with other settings ({details}); its results would not "
                "compare. Use a new --output_dir, or pass --overwrite_output_dir to discard them."
            )
        for label, path in models.items():
            old = previous.get("models", {}).get(label)
            if old is not None and old != path:
                raise UsageError(
                    f"model name {label!r} stands for {old} in {output_dir} but for {path} now; give this model "
                    "another name with --model_labels, or use a new --output_dir."
                )
        for label, fingerprint in (weights or {}).items():
            old = previous.get("weights", {}).get(label)
            if old is not None and fingerprint is not None and old != fingerprint:
                raise UsageError(
                    f"the weights of {models.get(label, label)} changed since {output_dir} started its runs of "
                    f"{label!r}; their results would not compare. Use a new --output_dir (or name the new weights "
                    "differently with --model_labels), or pass --overwrite_output_dir to discard the old runs."
                )

    @staticmethod
    def start(
        output_dir: str | Path,
        spec: dict[str, Any],
        models: dict[str, str],
        grid: dict,
        overwrite: bool,
        report_meta: dict | None = None,
        weights: dict[str, str | None] | None = None,
    ) -> None:
        """Create (or, with `overwrite`, clear) the folder and record the sweep's settings (and what the report
        needs to be rebuilt from the folder alone). Main process only."""
        output_dir = Path(output_dir)
        if overwrite and output_dir.is_dir():
            # Only what a sweep writes: a mistyped --output_dir must not cost the user other files.
            shutil.rmtree(output_dir / RUNS_DIR, ignore_errors=True)
            for name in (SPEC_FILE, *REPORT_FILES):
                (output_dir / name).unlink(missing_ok=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        spec_path = output_dir / SPEC_FILE
        record = {"settings": spec, "models": {}, "learning_rates": [], "seeds": []}
        if spec_path.exists():
            record = json.loads(spec_path.read_text(encoding="utf-8"))
        record["models"] = {**record.get("models", {}), **models}
        record["weights"] = {**record.get("weights", {}), **{k: v for k, v in (weights or {}).items() if v is not None}}
        record["learning_rates"] = sorted(set(record.get("learning_rates", [])) | set(grid["learning_rates"]))
        record["seeds"] = sorted(set(record.get("seeds", [])) | set(grid["seeds"]))
        if report_meta is not None:
            record["report"] = {k: v for k, v in report_meta.items() if k not in ("seeds", "learning_rates")}
        atomic_write_json(spec_path, record)

    # -- runs ----------------------------------------------------------------------------------------------
    def run_dir(self, key: RunKey) -> Path:
        return self.output_dir / RUNS_DIR / key.model_label / f"lr_{lr_tag(key.learning_rate)}_seed_{key.seed}"

    def result(self, key: RunKey) -> dict | None:
        path = self.run_dir(key) / RESULT_FILE
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def pending(self) -> list[RunKey]:
        return [k for k in self.keys if not (self.run_dir(k) / RESULT_FILE).exists()]

    def results(self) -> list[dict]:
        """Finished runs of this grid, in grid order."""
        return [r for r in (self.result(k) for k in self.keys) if r is not None]

    def all_results(self) -> list[dict]:
        """Every finished run in the folder: this invocation's grid and what earlier invocations (other
        learning rates, seeds or models of the same sweep) finished, in the order of the recorded grid."""
        record = read_record(self.output_dir)
        models = {**record.get("models", {}), **{k.model_label: k.model_path for k in self.keys}}
        rates = sorted(set(record.get("learning_rates", [])) | {k.learning_rate for k in self.keys})
        seeds = sorted(set(record.get("seeds", [])) | {k.seed for k in self.keys})
        keys = [RunKey(label, path, lr, seed) for label, path in models.items() for lr in rates for seed in seeds]
        return [r for r in (self.result(k) for k in keys) if r is not None]

    def begin_run(self, key: RunKey) -> Path:
        """An empty folder for `key` (what an interrupted earlier attempt left there is removed)."""
        folder = self.run_dir(key)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def finish_run(self, key: RunKey, result: dict) -> None:
        atomic_write_json(self.run_dir(key) / RESULT_FILE, result)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def read_record(output_dir: str | Path) -> dict[str, Any]:
    """The sweep's `sweep.json` (settings, models, weights, the grid so far); empty when there is none."""
    path = Path(output_dir) / SPEC_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _compared(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in NOT_COMPARED}


REPORT_FILES = ("runs.json", "runs.csv", "stability.json", "stability.md", "stability.png", "README.md")

__all__ = ["SPEC_FILE", "RUNS_DIR", "RESULT_FILE", "REPORT_FILES", "RunKey", "Sweep", "lr_tag", "model_labels"]
