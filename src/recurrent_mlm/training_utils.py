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


def cpu_launch_processes() -> int:
    """How many processes `accelerate launch --cpu --num_processes N` asked for when it started only this one.

    Accelerate 1.x starts CPU processes itself only through MPI (`--mpirun_hostfile`); without it, `--cpu
    --num_processes N` runs one process (it sets MASTER_ADDR for N but no WORLD_SIZE). The request is read
    back from the launcher's command line. Returns 1 when there is nothing to make up for (any other
    launcher, one process asked for, several machines, or the launcher's arguments cannot be read).
    """
    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true") or "MASTER_ADDR" not in env:
        return 1
    if any(name in env for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")):
        return 1
    try:
        import psutil
        from accelerate.commands.config.config_args import default_config_file, load_config_from_file
        from accelerate.commands.launch import launch_command_parser

        tokens = psutil.Process(os.getppid()).cmdline()
        start = next(
            i + 1 for i, token in enumerate(tokens) if token == "launch" or token.endswith("accelerate.commands.launch")
        )
        args, _ = launch_command_parser().parse_known_args(tokens[start:])
        num_processes, num_machines = args.num_processes, args.num_machines
        config_file = args.config_file or (default_config_file if os.path.isfile(default_config_file) else None)
        if config_file and (num_processes is None or num_machines is None):
            config = load_config_from_file(config_file)
            num_processes = config.num_processes if num_processes is None else num_processes
            num_machines = config.num_machines if num_machines is None else num_machines
    except Exception:  # not launched by `accelerate launch`, or a launcher we do not know how to read
        return 1
    if not num_processes or num_processes < 2 or (num_machines or 1) > 1:
        return 1
    return int(num_processes)


def relaunch_cpu_processes(script: str | os.PathLike, argv: list[str] | None) -> int | None:
    """For a script's `main(argv)`: start the N CPU processes that `accelerate launch --cpu --num_processes N`
    asked for (see `cpu_launch_processes`) through `torch.distributed.run` on this machine with the command
    line's arguments, wait, and return the exit code. Returns None (and starts nothing) when `main` was called
    with explicit `argv` (from Python, not a command line) or the launcher already started the right number of
    processes. Each process then sets up Accelerate on CPU with gloo, as `--multi_gpu --num_processes N` would.
    """
    import subprocess

    if argv is not None:
        return None
    argv = sys.argv[1:]
    processes = cpu_launch_processes()
    if processes < 2:
        return None
    print(
        f"accelerate launch --cpu started 1 process of the {processes} asked for (Accelerate needs MPI for more); "
        f"starting {processes} data-parallel CPU processes with torch.distributed.run.",
        file=sys.stderr,
        flush=True,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    return subprocess.run([*command, str(script), *argv], env=env).returncode


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
    "cpu_launch_processes",
    "relaunch_cpu_processes",
    "JsonlLogger",
]
