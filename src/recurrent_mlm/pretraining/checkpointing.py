"""Training checkpoints: atomic, rotated, resumable to the same loss curve, and free of pickle.

A checkpoint `checkpoint-<step>/` holds

* the model as `save_pretrained` writes it (safetensors + config + code: a checkpoint is also a model folder)
  and the tokenizer;
* `optimizer.safetensors` + `optimizer.json`, `scheduler.json`, `scaler.json` (fp16): state dicts split into
  tensors (safetensors) and everything else (JSON);
* `rng_state_<rank>.safetensors` + `.json`: each process's Python, NumPy, torch and CUDA generators (dropout);
* `trainer_state.json`: step, epoch, position in the epoch, counters, and the settings that fix the data order.
  Written last.

Nothing is pickled and nothing is read with `torch.load`. Under FSDP or DeepSpeed, whose optimizer states are
sharded, the model/optimizer/scheduler/RNG part is written by `accelerator.save_state` instead (model in
safetensors; Accelerate pickles the optimizer, scheduler and RNG states there).

Atomicity: everything is written into `.checkpoint-<step>.tmp/`, flushed to disk, and renamed to
`checkpoint-<step>/` in one `os.replace`. A run killed at any moment leaves either the complete new checkpoint
or only the temporary folder, which is ignored (and cleaned up by the next save): `latest` is then the
previous checkpoint. Old checkpoints are first renamed away, then deleted, so a half-deleted folder never
carries a checkpoint name.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..cli import UsageError
from ..files import atomic_write_json, fsync_dir, fsync_tree

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
STATE_FILE = "trainer_state.json"
FORMAT_SAFETENSORS = "safetensors"
FORMAT_ACCELERATE = "accelerate"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def fault_point(event: str, **info: Any) -> None:
    """Seam for crash tests: does nothing. Tests replace it to simulate a process killed at `event`."""


# --------------------------------------------------------------------------------------------------------
# State dicts as JSON + safetensors
# --------------------------------------------------------------------------------------------------------
def split_tensors(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor / numpy array in a nested structure by a reference; return (JSON-able tree, tensors).
    Dicts with non-string keys and tuples are tagged so `join_tensors` restores them exactly."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = value.detach().to("cpu").contiguous()
            return {"__tensor__": key}
        if isinstance(value, np.ndarray):
            key = f"t{len(tensors)}"
            dtype = str(value.dtype)
            # safetensors has no unsigned 32-bit type everywhere: widen, and narrow back on load.
            array = value.astype(np.int64) if value.dtype.kind == "u" else value
            tensors[key] = torch.from_numpy(np.ascontiguousarray(array)).clone()
            return {"__ndarray__": key, "dtype": dtype}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                if any(k.startswith("__") and k.endswith("__") for k in value):
                    return {"__items__": [[k, walk(v)] for k, v in value.items()]}
                return {k: walk(v) for k, v in value.items()}
            return {"__items__": [[k, walk(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint without pickle: {value!r}")

    return walk(obj), tensors


def join_tensors(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if "__tensor__" in value:
                return tensors[value["__tensor__"]]
            if "__ndarray__" in value:
                return tensors[value["__ndarray__"]].numpy().astype(value["dtype"])
            if "__items__" in value:
                return {k: walk(v) for k, v in value["__items__"]}
            if "__tuple__" in value:
                return tuple(walk(v) for v in value["__tuple__"])
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(tree)


def save_tree(obj: Any, folder: Path, name: str) -> None:
    """`name.json` (+ `name.safetensors` if there are tensors)."""
    tree, tensors = split_tensors(obj)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(tree), encoding="utf-8")


def load_tree(folder: Path, name: str) -> Any:
    tree = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    tensor_file = folder / f"{name}.safetensors"
    tensors = load_file(str(tensor_file)) if tensor_file.exists() else {}
    return join_tensors(tree, tensors)


# --------------------------------------------------------------------------------------------------------
# Random number generators
# --------------------------------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------------------
# Finding checkpoints
# --------------------------------------------------------------------------------------------------------
def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints in `output_dir`, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.iterdir():
        match = _CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(value: str, output_dir: str | os.PathLike) -> Path:
    """`--resume_from_checkpoint latest|PATH` -> a checkpoint folder, or `UsageError`."""
    if value == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise UsageError(
                f"--resume_from_checkpoint latest: there is no checkpoint in {output_dir}; start a fresh run "
                "(without --resume_from_checkpoint) or give the path of a checkpoint folder."
            )
        return path
    path = Path(value)
    if not (path / STATE_FILE).is_file():
        raise UsageError(
            f"--resume_from_checkpoint {path} is not a complete checkpoint (no {STATE_FILE}); give a checkpoint-N "
            "folder written by run_pretraining.py, or 'latest'."
        )
    return path


def read_trainer_state(path: Path) -> dict[str, Any]:
    """The checkpoint's trainer state, checked: one clear line for a damaged file instead of a traceback."""
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        for key in ("global_step", "epoch", "batches_in_epoch", "per_device_train_batch_size"):
            int(state[key])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise UsageError(f"checkpoint {path} is damaged ({STATE_FILE}: {_first_line(err)}); {_EARLIER}") from None
    return state


_EARLIER = (
    "resume from an earlier checkpoint (--resume_from_checkpoint path/to/checkpoint-N) or start afresh with "
    "--overwrite_output_dir."
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]


def check_checkpoint_files(folder: Path, *, sharded: bool, process_index: int = 0) -> None:
    """Refuse a checkpoint with missing, empty or truncated files before anything is loaded from it."""
    from ..files import safetensors_problem

    if sharded:
        return  # Accelerate's own layout; it reports its own errors
    needed = ["config.json", "optimizer.json", "scheduler.json"]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"checkpoint {folder} is damaged: {', '.join(missing)} missing; {_EARLIER}")
    weights = _model_weight_files(folder)
    for path in [*weights, *(p for p in (folder / "optimizer.safetensors",) if p.exists())]:
        problem = safetensors_problem(path)
        if problem:
            raise UsageError(f"checkpoint {folder} is damaged: {problem}; {_EARLIER}")
    for name in ("optimizer.json", "scheduler.json"):
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise UsageError(f"checkpoint {folder} is damaged ({name}: {_first_line(err)}); {_EARLIER}") from None


def apply_umask(folder: Path, recursive: bool = True) -> None:
    """Give files written through a temporary file (safetensors, atomic JSON writes: created 0600 by
    `mkstemp`) the permissions of an ordinary new file, so collaborators on a shared cluster can read them."""
    umask = os.umask(0)
    os.umask(umask)
    wanted = 0o666 & ~umask
    for path in folder.rglob("*") if recursive else folder.iterdir():
        if path.is_file() and not path.is_symlink() and (path.stat().st_mode & 0o777) == 0o600 and wanted != 0o600:
            os.chmod(path, wanted)


def _remove(path: Path) -> None:
    """Delete a folder so that no partially deleted folder keeps a checkpoint name."""
    if not path.exists():
        return
    doomed = path.with_name(f".{path.name.lstrip('.')}.deleting")
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------------------
def _model_weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [folder / name for name in sorted(set(weight_map.values()))]
    single = folder / "model.safetensors"
    if not single.exists():
        raise UsageError(f"{folder} has no model.safetensors; it is not a checkpoint written by run_pretraining.py.")
    return [single]


def load_model_weights(model: torch.nn.Module, folder: Path) -> None:
    """Load safetensors weights into `model` in place (its parameters stay the same objects, so a prepared
    optimizer and DDP wrapper keep pointing at them). Tensors left out because they are tied to a loaded one are
    fine; anything else missing or unexpected is an error."""
    state: dict[str, torch.Tensor] = {}
    for file in _model_weight_files(folder):
        state.update(load_file(str(file)))
    result = model.load_state_dict(state, strict=False)
    named = dict(model.named_parameters(remove_duplicate=False))
    loaded = {id(named[k]) for k in state if k in named}
    missing = [k for k in result.missing_keys if not (k in named and id(named[k]) in loaded)]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {folder} does not match the model: missing {missing[:5]}, unexpected "
            f"{list(result.unexpected_keys)[:5]}."
        )


class CheckpointManager:
    """Saves and restores the full training state for `run_pretraining.py` (see the module docstring)."""

    def __init__(self, accelerator, output_dir: str | os.PathLike, total_limit: int | None = None):
        from accelerate.utils import DistributedType

        self.accelerator = accelerator
        self.output_dir = Path(output_dir)
        self.total_limit = total_limit
        self.sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        self.format = FORMAT_ACCELERATE if self.sharded else FORMAT_SAFETENSORS

    # -- save ----------------------------------------------------------------------------------------------
    def save(self, step: int, *, model, optimizer, scheduler, tokenizer, trainer_state: dict[str, Any]) -> Path:
        acc = self.accelerator
        name = f"{CHECKPOINT_PREFIX}{step}"
        final = self.output_dir / name
        tmp = self.output_dir / f".{name}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        if self.sharded:
            acc.save_state(str(tmp), safe_serialization=True)
        elif acc.is_main_process:
            unwrapped = acc.unwrap_model(model, keep_torch_compile=False)
            unwrapped.save_pretrained(tmp, safe_serialization=True)
            save_tree(optimizer.state_dict(), tmp, "optimizer")
            save_tree(scheduler.state_dict(), tmp, "scheduler")
            if acc.scaler is not None:
                save_tree(acc.scaler.state_dict(), tmp, "scaler")
        fault_point("checkpoint_partial", step=step, folder=tmp)
        save_tree(capture_rng_state(), tmp, f"rng_state_{acc.process_index}")
        acc.wait_for_everyone()
        if acc.is_main_process:
            tokenizer.save_pretrained(tmp)
            state = {**trainer_state, "format": self.format, "world_size": acc.num_processes}
            atomic_write_json(tmp / STATE_FILE, state)
            apply_umask(tmp)
            fsync_tree(tmp)
            fault_point("checkpoint_before_rename", step=step, folder=tmp)
            if final.exists():  # re-saving a step (a run resumed from an earlier checkpoint)
                _remove(final)
            os.replace(tmp, final)
            fsync_dir(self.output_dir)
            self._rotate(keep=final)
        acc.wait_for_everyone()
        return final

    def _rotate(self, keep: Path) -> None:
        for leftover in self.output_dir.glob(f".{CHECKPOINT_PREFIX}*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
        if not self.total_limit:
            return
        checkpoints = [path for _, path in list_checkpoints(self.output_dir)]
        excess = len(checkpoints) - self.total_limit
        for path in checkpoints:
            if excess <= 0:
                break
            if path != keep:
                _remove(path)
                excess -= 1

    # -- load ----------------------------------------------------------------------------------------------
    def load(self, folder: Path, *, model, optimizer, scheduler) -> dict[str, Any]:
        acc = self.accelerator
        state = read_trainer_state(folder)
        saved_format = state.get("format", FORMAT_SAFETENSORS)
        if saved_format != self.format:
            raise UsageError(
                f"checkpoint {folder} was written in the {saved_format!r} layout and this run uses {self.format!r} "
                "(FSDP/DeepSpeed write sharded states); resume with the same distributed setup."
            )
        check_checkpoint_files(folder, sharded=self.sharded)
        if self.sharded:
            acc.load_state(str(folder))
        else:
            try:
                load_model_weights(acc.unwrap_model(model, keep_torch_compile=False), folder)
                optimizer.load_state_dict(load_tree(folder, "optimizer"))
                scheduler.load_state_dict(load_tree(folder, "scheduler"))
                if acc.scaler is not None and (folder / "scaler.json").exists():
                    acc.scaler.load_state_dict(load_tree(folder, "scaler"))
            except (RuntimeError, ValueError, KeyError, TypeError, IndexError, OSError) as err:
                raise UsageError(
                    f"checkpoint {folder} does not fit this run ({_first_line(err)}): it is damaged or belongs to "
                    f"another model; {_EARLIER}"
                ) from None
        rng_name = f"rng_state_{acc.process_index}"
        if state.get("world_size") == acc.num_processes and (folder / f"{rng_name}.json").exists():
            restore_rng_state(load_tree(folder, rng_name))
        else:
            logger.warning(
                "checkpoint %s was written by %s process(es) and this run has %s: random generators (dropout) "
                "start fresh, so the loss curve will differ slightly from an uninterrupted run.",
                folder,
                state.get("world_size"),
                acc.num_processes,
            )
        return state


__all__ = [
    "CHECKPOINT_PREFIX",
    "STATE_FILE",
    "CheckpointManager",
    "apply_umask",
    "capture_rng_state",
    "fault_point",
    "join_tensors",
    "latest_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "load_tree",
    "read_trainer_state",
    "resolve_checkpoint",
    "restore_rng_state",
    "check_checkpoint_files",
    "save_tree",
    "split_tensors",
]
