"""Sharded data parallelism with PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`), for any variant.

Accelerate's FSDP plugin (`configs/accelerate/fsdp.yaml`) is the usual way to shard on GPUs; this module is
the same recipe without Accelerate, and what our tests run on CPU (gloo) to check that every variant shards:

* **Units.** Each module whose class is named in the model's `_no_split_modules` (`RecurrentMLMEmbeddings`,
  `RecurrentMLMLayer`) becomes one FSDP unit: its parameters are all-gathered just before it runs and freed
  after. Everything else (the LSTM of the LSTM variants, the pooler, the heads) belongs to the root unit.
* **Tied embeddings.** The MLM decoder shares its weight with the word embeddings. A unit's parameters are
  freed after the unit runs, so a tensor used by two units would be freed while the other still needs it:
  an embeddings module holding a tensor that is also used outside it is left to the root unit (gathered for
  the whole step), and the two stay one tensor.
* **Shared layers** (`share_layers=True`, the Universal Transformers): the one layer is one unit applied at
  every depth; it is gathered at each application (or once, with `reshard_after_forward=False`), and its
  gradient is reduced once per application and accumulated.

Checkpoints: `save_sharded_checkpoint` / `load_sharded_checkpoint` write and read each process's shards with
`torch.distributed.checkpoint` (resume with any number of processes); `save_consolidated` gathers the full
weights on rank 0 and writes an ordinary `save_pretrained` folder (safetensors) that `from_pretrained` loads
without any of this.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn


def _tied_elsewhere(model: nn.Module, prefix: str, module: nn.Module) -> bool:
    """Whether a parameter of `module` (at `prefix`) is also reachable from outside it (tied weights)."""
    own = {id(p) for p in module.parameters()}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in own and not (name == prefix or name.startswith(prefix + ".")):
            return True
    return False


def sharding_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """`(name, module)` of the modules that become their own FSDP unit, innermost first (the order in which
    `fully_shard` must be applied). The model itself, the root unit, is not listed."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    units = []
    for name, module in model.named_modules():
        # By class name, also through the `FSDP<Class>` subclass that `fully_shard` swaps in.
        if not name or not any(cls.__name__ in names for cls in type(module).__mro__):
            continue
        if _tied_elsewhere(model, name, module):
            continue
        units.append((name, module))
    return units[::-1]


def shard_model(
    model: nn.Module,
    *,
    mesh=None,
    reshard_after_forward: bool = True,
    mp_policy=None,
    offload_policy=None,
) -> nn.Module:
    """Apply `fully_shard` to every unit of `sharding_units(model)`, then to the model (in place; returned).

    Call after `torch.distributed.init_process_group` and after moving the model to its device; build the
    optimizer afterwards, from the sharded parameters. `mesh` defaults to all processes (a 1-D mesh on the
    default device type); `mp_policy` is an `torch.distributed.fsdp.MixedPrecisionPolicy` (e.g. bf16 compute,
    float32 reduction), `offload_policy` an `OffloadPolicy`.
    """
    from torch.distributed.fsdp import fully_shard

    kwargs = {"mesh": mesh, "reshard_after_forward": reshard_after_forward}
    if mp_policy is not None:
        kwargs["mp_policy"] = mp_policy
    if offload_policy is not None:
        kwargs["offload_policy"] = offload_policy
    for _, module in sharding_units(model):
        fully_shard(module, **kwargs)
    fully_shard(model, **kwargs)
    return model


def _state_dict_options(full: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def save_sharded_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike) -> None:
    """Every process writes its own shards of the model (and optimizer) to the folder `path`
    (`torch.distributed.checkpoint`; collective: call on every process)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
    else:
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
    dcp.save(state, checkpoint_id=str(path))


def load_sharded_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None, path: str | os.PathLike) -> None:
    """Read a `save_sharded_checkpoint` folder into a model sharded with `shard_model` (and its optimizer),
    resharding to the current number of processes (collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_state_dict,
        set_model_state_dict,
        set_state_dict,
    )

    if optimizer is None:
        state = {"model": get_model_state_dict(model)}
        dcp.load(state, checkpoint_id=str(path))
        set_model_state_dict(model, state["model"])
    else:
        model_state, optim_state = get_state_dict(model, optimizer)
        state = {"model": model_state, "optimizer": optim_state}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def _unsharded_class(model: nn.Module) -> type:
    """The model's own class (`fully_shard` swaps in a subclass named `FSDP<Class>`)."""
    from torch.distributed.fsdp import FSDPModule

    return next(cls for cls in type(model).__mro__ if not issubclass(cls, FSDPModule))


def save_consolidated(model: nn.Module, save_directory: str | os.PathLike, **save_pretrained_kwargs) -> None:
    """Gather the full weights on rank 0 and write a `save_pretrained` folder there (safetensors, config and,
    for our models, the code); `from_pretrained` loads it on one process, sharded or not. Collective: call on
    every process. The gathered copy lives in CPU memory on rank 0 only."""
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(model, options=_state_dict_options(full=True))
    if dist.get_rank() == 0:
        cls = _unsharded_class(model)
        with torch.device("meta"):
            plain = cls(model.config)
        plain.load_state_dict(state, assign=True, strict=True)
        plain.tie_weights()
        plain.save_pretrained(Path(save_directory), **save_pretrained_kwargs)
    dist.barrier()


__all__ = [
    "sharding_units",
    "shard_model",
    "save_sharded_checkpoint",
    "load_sharded_checkpoint",
    "save_consolidated",
]
