"""Two gloo processes train every tiny variant under FSDP2 (`recurrent_mlm.sharding`); run by test_sharding.py.

    python tests/fsdp_worker.py OUTPUT_DIR [VARIANT ...]

For each variant, with the same initial weights and batches as the single-process run of the test: 4 steps
(the losses of the global batch), a sharded checkpoint after step 2, a fresh model resumed from it for steps
3-4, a consolidated `save_pretrained` folder after step 4 and the eval-mode logits of the sharded model on a
fixed input; for a few variants, the 4 steps again under Accelerate's FSDP2 wrapping with
`configs/accelerate/fsdp.yaml`. Writes `OUTPUT_DIR/results.json`; `OUTPUT_DIR/<variant>/` holds the
consolidated model.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
WORLD_SIZE = 2
STEPS = 4
CHECKPOINT_AFTER = 2
LEARNING_RATE = 1e-3


def batches(vocab_size: int, seed: int = 0):
    """`STEPS` global batches of 4 rows x 12 tokens, ragged right padding, about 30% labelled."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(5, vocab_size, (4, 12), generator=g)
        mask = torch.ones_like(ids)
        for row, length in enumerate((12, 9, 12, 7)):
            mask[row, length:] = 0
            ids[row, length:] = 0
        labels = torch.where((torch.rand(ids.shape, generator=g) < 0.3) & (mask == 1), ids, -100)
        labels[:, 1] = ids[:, 1]  # at least one labelled token per row
        out.append((ids, mask, labels))
    return out


def probe_input(vocab_size: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return ids, mask


def summed_loss(model, ids, mask, labels) -> torch.Tensor:
    """Sum of the token losses (dense logits, so the rows a process holds do not change the arithmetic)."""
    logits = model(input_ids=ids, attention_mask=mask, sparse_logits=False).logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum")


def build(name: str, seed: int):
    from recurrent_mlm import RecurrentMLMForMaskedLM
    from tests.variants import variant_config

    torch.manual_seed(seed)
    return RecurrentMLMForMaskedLM(variant_config(name)).train()


def train_steps(model, optimizer, steps, rank: int, world: int) -> list[float]:
    """The global batch's mean token loss per step; each process holds `rows[rank::world]`."""
    losses = []
    for ids, mask, labels in steps:
        count = (labels != -100).sum()  # over the global batch
        local = summed_loss(model, ids[rank::world], mask[rank::world], labels[rank::world])
        # FSDP averages gradients over processes: scale so the average is the gradient of the global mean.
        (local * world / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        total = local.detach().clone()
        dist.all_reduce(total)
        losses.append((total / count).item())
    return losses


def run_variant(name: str, out: Path, rank: int, world: int) -> dict:
    from recurrent_mlm.sharding import (
        load_sharded_checkpoint,
        save_consolidated,
        save_sharded_checkpoint,
        shard_model,
        sharding_units,
    )

    model = shard_model(build(name, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    data = batches(model.config.vocab_size)
    losses = train_steps(model, optimizer, data[:CHECKPOINT_AFTER], rank, world)
    checkpoint = out / "checkpoints" / name
    save_sharded_checkpoint(model, optimizer, checkpoint)
    losses += train_steps(model, optimizer, data[CHECKPOINT_AFTER:], rank, world)

    resumed = shard_model(build(name, seed=1))  # other weights: everything must come from the checkpoint
    resumed_optimizer = torch.optim.AdamW(resumed.parameters(), lr=LEARNING_RATE)
    load_sharded_checkpoint(resumed, resumed_optimizer, checkpoint)
    resumed_losses = train_steps(resumed, resumed_optimizer, data[CHECKPOINT_AFTER:], rank, world)

    save_consolidated(model, out / name)
    model.eval()
    ids, mask = probe_input(model.config.vocab_size)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    tied = model.cls.predictions.decoder.weight is model.model.embeddings.word_embeddings.weight
    return {
        "losses": losses,
        "resumed_losses": resumed_losses,
        "units": [unit for unit, _ in sharding_units(model)],
        "tied": tied,
        "probe_logits": logits.tolist(),
    }


# Variants also run through Accelerate's own FSDP2 preparation with configs/accelerate/fsdp.yaml.
ACCELERATE_VARIANTS = ["recurrent_bert", "universal_transformer"]


def accelerate_plugin_from_yaml(path: Path):
    """The FSDP plugin `accelerate launch --config_file path` builds (mixed precision left out: CPU)."""
    import yaml
    from accelerate.utils import FullyShardedDataParallelPlugin

    fsdp = yaml.safe_load(path.read_text())["fsdp_config"]
    return FullyShardedDataParallelPlugin(
        fsdp_version=fsdp["fsdp_version"],
        auto_wrap_policy=fsdp["fsdp_auto_wrap_policy"].lower(),
        transformer_cls_names_to_wrap=fsdp.get("fsdp_transformer_layer_cls_to_wrap"),
        reshard_after_forward=fsdp["fsdp_reshard_after_forward"],
        state_dict_type=fsdp["fsdp_state_dict_type"],
        cpu_ram_efficient_loading=fsdp["fsdp_cpu_ram_efficient_loading"],
    )


def run_accelerate_variant(name: str, rank: int, world: int) -> dict:
    """Accelerate's FSDP2 wrapping (`fsdp2_prepare_model`, what `accelerator.prepare` calls under FSDP) with our
    config. Accelerate runs FSDP only on GPUs, so its function is called directly with the few accelerator
    attributes it reads."""
    import types

    from accelerate.utils.fsdp_utils import fsdp2_prepare_model

    accelerator = types.SimpleNamespace(
        state=types.SimpleNamespace(fsdp_plugin=accelerate_plugin_from_yaml(ROOT / "configs" / "accelerate" / "fsdp.yaml")),
        torch_device_mesh=None, parallelism_config=None, mixed_precision="no", is_main_process=rank == 0,
        device=torch.device("cpu"),
    )
    model = fsdp2_prepare_model(accelerator, build(name, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    return {"losses": train_steps(model, optimizer, batches(model.config.vocab_size), rank, world)}


def worker(rank: int, world: int, port: int, out: str, names: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        results = {name: run_variant(name, Path(out), rank, world) for name in names}
        results["accelerate"] = {
            name: run_accelerate_variant(name, rank, world) for name in ACCELERATE_VARIANTS if name in names
        }
        if rank == 0:
            Path(out, "results.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str]) -> None:
    # Imported once here and inherited by the forked workers (spawned ones would import everything again,
    # seconds each). Nothing has run an intra-op thread pool yet, so forking is safe.
    import torch.distributed.checkpoint  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401

    import accelerate.utils.fsdp_utils  # noqa: F401

    import recurrent_mlm.sharding  # noqa: F401
    from recurrent_mlm import RecurrentMLMForMaskedLM  # noqa: F401
    from tests.variants import VARIANTS

    out, names = argv[0], argv[1:] or list(VARIANTS)
    mp.start_processes(
        worker, args=(WORLD_SIZE, free_port(), out, names), nprocs=WORLD_SIZE, start_method="fork"
    )


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    main(sys.argv[1:])
