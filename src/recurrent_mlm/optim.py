"""The optimizer and learning-rate schedule of both pipelines (pretraining and fine-tuning).

AdamW with BERT's recipe: no weight decay on biases and normalisation weights. The schedule is built on the
raw optimizer and stepped once per optimizer step by the training loop (never passed through
`accelerator.prepare`, whose scheduler wrapper steps once per process per call): warmup and decay are then
counted in optimizer steps, the same for any number of processes or accumulation steps.
"""

from __future__ import annotations

import math

import torch

SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")


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


def warmup_steps(total_steps: int, warmup_ratio: float, num_warmup_steps: int | None = None) -> int:
    """Warmup optimizer steps: `num_warmup_steps` if given, else `ceil(warmup_ratio * total_steps)`."""
    return num_warmup_steps if num_warmup_steps is not None else math.ceil(warmup_ratio * total_steps)


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, *, warmup: int, total_steps: int):
    """transformers' schedule `name` over `total_steps` optimizer steps with `warmup` steps of warmup. Step it
    once per optimizer step (not per micro-batch, not per process)."""
    from transformers import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=max(1, total_steps))


__all__ = ["SCHEDULERS", "no_decay_parameter_names", "build_optimizer", "warmup_steps", "build_scheduler"]
