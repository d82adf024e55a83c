"""Pieces the benchmarks share: the training step they time, interleaved timing, peak memory, the record of
the machine, and writing results. Imports only the package's stable parts (models, presets, cpu).

Every benchmark times its candidates in one process, round-robin (each candidate once per round), so that a
drifting background load hits all of them alike, and reports ratios of per-candidate minima (the least
disturbed measurements) measured in that same run.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src" / "recurrent_mlm").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def build_optimizer(model: torch.nn.Module, learning_rate: float = 1e-4, weight_decay: float = 0.01):
    """The pipelines' own optimizer (AdamW, no decay on biases and norm weights); imports neither datasets nor evaluate."""
    from recurrent_mlm.optim import build_optimizer as build

    return build(model, learning_rate, weight_decay=weight_decay)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One MLM training step as the pretraining script takes it: forward with labels, backward, AdamW."""

    def __init__(self, model, device, dtype=torch.float32, learning_rate: float = 1e-4):
        self.model = model.to(device).train()
        self.optimizer = build_optimizer(self.model, learning_rate)
        self.device = torch.device(device)
        self.autocast = (
            torch.autocast(device_type=self.device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
        )

    def step(self, ids, labels, attention_mask=None) -> float:
        with self.autocast:
            loss = self.model(input_ids=ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss


def mlm_batches(n: int, batch_size: int, seq_len: int, vocab_size: int, device, seed: int = 0):
    """`n` batches of random token ids (ids >= 5, clear of special tokens) with 15% labelled positions."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=g)
        labelled = torch.rand(batch_size, seq_len, generator=g) < 0.15
        labelled[:, 0] = True  # at least one label per row
        labels = torch.where(labelled, ids, torch.full_like(ids, -100))
        out.append((ids.to(device), labels.to(device)))
    return out


# "wall": elapsed time. "cpu": CPU time of this process (all its threads): on a shared machine the time a
# process waits while other jobs hold the cores does not count, so it measures the work rather than the
# queue (with several threads, time a thread spends spinning at a barrier for a descheduled partner still
# counts). With one thread it is the clean measure of a model's cost on a busy machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_call(fn: Callable[[], object], device: torch.device, repeat: int = 1, clock: str = "wall") -> float:
    """Seconds per call of `fn` over `repeat` calls (synchronising a GPU before and after)."""
    now = CLOCKS[clock]
    synchronize(device)
    start = now()
    for _ in range(repeat):
        fn()
    synchronize(device)
    return (now() - start) / repeat


def interleaved(candidates: dict[str, Callable[[], object]], rounds: int, device, repeat: int = 1,
                progress: str | None = None, clock: str = "wall") -> dict[str, list[float]]:
    """Seconds per call of each candidate, one sample per candidate per round, candidates round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for index in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(time_call(fn, device, repeat, clock))
        if progress:
            print(f"{progress}: round {index + 1}/{rounds}", file=sys.stderr, flush=True)
    return samples


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


# -- peak memory ----------------------------------------------------------------------------------------
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory(fn: Callable[[], object], device: torch.device) -> tuple[object, float | None]:
    """Run `fn` once; return its result and the peak memory it added, in MiB (`None` where unmeasurable).

    CUDA: the allocator's peak. CPU (Linux/glibc): the rise of the resident set's high-water mark over the
    resident set before the call, with large blocks served by `mmap` during the call so that freed tensors
    leave the resident set (the allocator tuning of `recurrent_mlm.cpu` keeps them, which is right for speed
    and wrong for this measurement; it is restored afterwards). Parameters, gradients and optimizer states
    that exist before the call do not count; those created by it (the first step's) do.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        return result, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    libc = _libc()
    if libc is None or _status_kib("VmHWM") is None:
        return fn(), None
    libc.mallopt(_M_MMAP_THRESHOLD, 256 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 128 * 1024)
    try:
        gc.collect()
        libc.malloc_trim(0)
        before = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        except OSError:
            return fn(), None
        result = fn()
        peak = _status_kib("VmHWM")
    finally:
        from recurrent_mlm.cpu import tune_cpu_allocator

        if tune_cpu_allocator():  # back to the thresholds the timings run with
            libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
            libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    return result, (peak - before) / 1024


# -- the record of the run ------------------------------------------------------------------------------
def machine(device: torch.device) -> dict:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
    return info


def write_results(prefix: str | os.PathLike, markdown: str, record: dict) -> None:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    prefix.with_suffix(".md").write_text(markdown.rstrip() + "\n", encoding="utf-8")
    prefix.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"written: {prefix.with_suffix('.md')} and .json", file=sys.stderr)
