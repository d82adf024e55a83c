"""Pieces shared by `run_pretraining.py` and `run_glue.py`: clean CLI errors, the optimizer, atomic writes."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch


class UsageError(Exception):
    """Bad input from the user: printed as one line (the problem and the fix), exit code 2, no traceback."""


def run_cli(main: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a script's `main` so a `UsageError` ends the process with one line on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


def check_output_dir(path: str | os.PathLike, overwrite: bool, allowed: Iterable[str] = ()) -> Path:
    """Refuse to write into an existing non-empty folder unless asked to (names in `allowed` do not count)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {path} is a file; give a folder path.")
    if path.is_dir() and not overwrite:
        contents = [p.name for p in path.iterdir() if p.name not in set(allowed)]
        if contents:
            raise UsageError(
                f"--output_dir {path} exists and is not empty; pass --overwrite_output_dir to replace its "
                "contents, or choose another folder."
            )
    return path


def no_decay_parameter_names(model: torch.nn.Module) -> set[str]:
    """Biases and normalisation weights: excluded from weight decay (BERT's recipe)."""
    names = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) or "norm" in type(module).__name__.lower()
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if is_norm or param_name.endswith("bias") or param_name.startswith("bias"):
                names.add(full)
    return names


def build_optimizer(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """Decoupled AdamW with no decay on biases and norms (tied parameters appear once)."""
    no_decay = no_decay_parameter_names(model)
    decay, plain = [], []
    for name, param in model.named_parameters():  # named_parameters() yields each tied tensor once
        if param.requires_grad:
            (plain if name in no_decay else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate, betas=betas, eps=eps)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be readable like any file
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class JsonlLogger:
    """Appends one JSON object per line (metrics over time); safe to reopen when a run resumes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


__all__ = [
    "UsageError",
    "run_cli",
    "check_output_dir",
    "no_decay_parameter_names",
    "build_optimizer",
    "atomic_write_text",
    "atomic_write_json",
    "JsonlLogger",
]
