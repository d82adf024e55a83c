#!/usr/bin/env python
"""Training throughput of every encoder variant against `transformers.BertForMaskedLM`, in one run.

One training step = forward with MLM labels (15% of tokens, as the pretraining script masks them), backward,
AdamW step (no decay on biases/norms), exactly what `run_pretraining.py` does per micro-batch. Every model gets
the same size preset, vocabulary, batch, sequence length, dropout and attention kernel. Rounds are interleaved
(every model is timed once per round) so that drifting machine load affects all models alike. Ratios use
the fastest round of each model by default (`--statistic min`: on a shared machine the least disturbed
measurement is the closest to the model's own cost); the table shows the median and the range too.

    python benchmarks/pretraining_throughput.py                      # CPU, "mini", vocab 30522, seq 128
    python benchmarks/pretraining_throughput.py --device cuda --dtype bf16 --batch_size 128
    python benchmarks/pretraining_throughput.py --profile recurrent_bert   # where a variant spends its time

Writes a Markdown table and the raw numbers (JSON) next to this file, under `results/`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_utils  # noqa: E402  (puts this checkout's src/ first on the path)
import torch  # noqa: E402

BASELINE = "bert"  # ours: BERT layers + the sparse MLM head
REFERENCE = "transformers.BertForMaskedLM"
DENSE = "bert (dense MLM head)"  # ours with sparse_prediction=False: isolates what the sparse head buys


def unfused(model):
    """The same model with the fused recurrent sublayers switched off (the general path: flips, concatenated
    directions, autograd through the gate), to measure what the fusion buys in the same run."""
    for module in model.modules():
        if hasattr(module, "fused_forward"):
            module.fused_forward = lambda *args, **kwargs: None
    return model


def build_models(size: str, vocab_size: int, attn: str, variants: list[str], reference: bool = True,
                 with_unfused: bool = False):
    """(name, model or None, note) for each model, in table order."""
    from transformers import BertConfig, BertForMaskedLM

    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.presets import SIZES, preset_config

    shape = SIZES[size]
    rows = []
    bert_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        attn_implementation=attn,
    )
    if reference:
        rows.append((REFERENCE, BertForMaskedLM(bert_config), ""))
    for name in variants:
        try:
            config = preset_config(size, name, vocab_size=vocab_size)
            config._attn_implementation = attn
            rows.append((name, RecurrentMLMForMaskedLM(config), ""))
            if with_unfused and config.recurrence is not None:
                torch.manual_seed(0)
                rows.append((f"{name} (unfused)", unfused(RecurrentMLMForMaskedLM(config)), ""))
        except (ValueError, NotImplementedError) as err:
            rows.append((name, None, f"not built: {str(err).splitlines()[0]}"))
        if name == BASELINE and reference:
            config = preset_config(size, name, vocab_size=vocab_size, sparse_prediction=False)
            config._attn_implementation = attn
            rows.append((DENSE, RecurrentMLMForMaskedLM(config), ""))
    return rows


def make_batches(n: int, batch_size: int, seq_len: int, vocab_size: int, device, seed: int = 0):
    """Token ids with [CLS]/[SEP]-like ends and 15% labelled positions (BERT's rate)."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=g)
        labelled = torch.rand(batch_size, seq_len, generator=g) < 0.15
        labelled[:, 0] = labelled[:, -1] = False
        labels = torch.where(labelled, ids, torch.full_like(ids, -100))
        batches.append((ids.to(device), labels.to(device)))
    return batches


class Trainer(bench_utils.Trainer):
    def timed(self, batches, clock: str = "wall") -> float:
        """Seconds per step over `batches`."""

        def run():
            for ids, labels in batches:
                self.step(ids, labels)

        return bench_utils.time_call(run, self.device, clock=clock) / len(batches)


def profile(trainer: Trainer, batches, top: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for ids, labels in batches:
            trainer.step(ids, labels)
    key = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top)


def main(argv=None) -> int:
    from recurrent_mlm.presets import SIZES, VARIANTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="mini", choices=list(SIZES), help="Size preset for every model.")
    p.add_argument("--vocab_size", type=int, default=30522, help="Vocabulary (BERT's by default).")
    p.add_argument("--seq_len", type=int, default=128, help="Tokens per sequence.")
    p.add_argument("--batch_size", type=int, default=32, help="Sequences per step.")
    p.add_argument("--rounds", type=int, default=5, help="Interleaved timing rounds (median reported).")
    p.add_argument("--steps", type=int, default=3, help="Timed steps per model per round.")
    p.add_argument("--warmup", type=int, default=2, help="Untimed steps per model before the first round.")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads on CPU.")
    p.add_argument("--device", default="cpu", help="cpu or cuda.")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="Autocast dtype.")
    p.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"], help="Attention kernel for all models.")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="Variants to time (default: all).")
    p.add_argument("--statistic", default="min", choices=["min", "median"], help="Which round's step time the ratios use.")
    p.add_argument("--no_reference", action="store_true",
                   help="Leave out transformers.BertForMaskedLM and the dense-head row (ratios to our bert only).")
    p.add_argument("--clock", default="wall", choices=list(bench_utils.CLOCKS),
                   help="wall: elapsed time; cpu: this process's CPU time (a busy machine's queueing left out).")
    p.add_argument("--with_unfused", action="store_true",
                   help="Also time each recurrent variant with its fused sublayers switched off.")
    p.add_argument("--note", default="", help="A sentence for the results file (e.g. how busy the machine was).")
    p.add_argument("--profile", metavar="MODEL", help="Instead of the table, profile one model (a variant name or 'reference').")
    p.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "pretraining_throughput"), help="Output path prefix (.md and .json are added).")
    args = p.parse_args(argv)
    if BASELINE not in args.variants:
        p.error(f"--variants must include {BASELINE!r} (the baseline of the ratios).")

    from recurrent_mlm.cpu import tune_cpu_allocator

    tuned = tune_cpu_allocator()  # every model in this run alike (RMLM_MALLOC_TUNING=0 to compare without)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    torch.manual_seed(0)
    rows = build_models(args.size, args.vocab_size, args.attn_implementation, args.variants, not args.no_reference,
                        args.with_unfused)
    batches = make_batches(args.steps, args.batch_size, args.seq_len, args.vocab_size, device)

    if args.profile:
        wanted = REFERENCE if args.profile == "reference" else args.profile
        model = next((m for name, m, _ in rows if name == wanted and m is not None), None)
        if model is None:
            p.error(f"no model {args.profile!r} to profile")
        trainer = Trainer(model, device, dtype)
        for ids, labels in batches[: args.warmup]:
            trainer.step(ids, labels)
        print(profile(trainer, batches))
        return 0

    trainers = {name: Trainer(model, device, dtype) for name, model, _ in rows if model is not None}
    for trainer in trainers.values():
        for ids, labels in (batches * args.warmup)[: max(args.warmup, 1)]:
            trainer.step(ids, labels)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for round_index in range(args.rounds):
        for name, trainer in trainers.items():
            times[name].append(trainer.timed(batches, args.clock))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    tokens = args.batch_size * args.seq_len
    median = {name: statistics.median(values) for name, values in times.items()}
    spread = {name: (min(values), max(values)) for name, values in times.items()}
    chosen = {name: (min(values) if args.statistic == "min" else statistics.median(values)) for name, values in times.items()}
    base, ref = chosen[BASELINE], chosen.get(REFERENCE)
    records = []
    for name, model, note in rows:
        record = {"model": name, "note": note}
        if model is not None:
            record.update(
                parameters=sum(p.numel() for p in model.parameters()),
                step_ms=1000 * chosen[name],
                step_ms_median=1000 * median[name],
                step_ms_min=1000 * spread[name][0],
                step_ms_max=1000 * spread[name][1],
                tokens_per_second=tokens / chosen[name],
                speed_vs_reference=None if ref is None else ref / chosen[name],
                step_time_vs_baseline=chosen[name] / base,
                step_seconds_per_round=times[name],
            )
        records.append(record)

    setup = {
        "size": args.size,
        "vocab_size": args.vocab_size,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "malloc_tuning": tuned,
        "attn_implementation": args.attn_implementation,
        "rounds": args.rounds,
        "statistic": args.statistic,
        "clock": args.clock,
        "steps_per_round": args.steps,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/pretraining_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "note": args.note,
    }
    table = render(records, setup)
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"setup": setup, "results": records}, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {out.with_suffix('.md')} and .json", file=sys.stderr)
    return 0


def render(records, setup) -> str:
    head = (
        f"Training throughput, `{setup['size']}` size, vocab {setup['vocab_size']}, batch {setup['batch_size']} x "
        f"seq {setup['seq_len']}, {setup['device']} {setup['dtype']}"
        + (f", {setup['threads']} threads" if setup["threads"] else "")
        + (", glibc allocator tuning on" if setup.get("malloc_tuning") else "")
        + f", attention {setup['attn_implementation']}; {setup['rounds']} interleaved rounds of "
        f"{setup['steps_per_round']} steps, ratios from the {setup['statistic']} step time of each model"
        + (" (CPU time of the process)" if setup.get("clock") == "cpu" else " (wall clock)") + " "
        f"(torch {setup['torch']}, {setup['date']})."
        + (f" Command: `{setup['command']}`." if setup.get("command") else "")
        + (f" {setup['note']}" if setup.get("note") else "")
    )
    lines = [
        head,
        "",
        f"| model | parameters | step ms ({setup['statistic']}) | median [min-max] ms | tokens/s | speed vs BertForMaskedLM | step time vs our `bert` |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        if "step_ms" not in r:
            lines.append(f"| {r['model']} | - | - | {r['note']} | - | - | - |")
            continue
        lines.append(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['step_ms']:.0f} "
            f"| {r['step_ms_median']:.0f} [{r['step_ms_min']:.0f}-{r['step_ms_max']:.0f}] "
            f"| {r['tokens_per_second']:,.0f} | "
            + ("-" if r["speed_vs_reference"] is None else f"{r['speed_vs_reference']:.2f}x")
            + f" | {r['step_time_vs_baseline']:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
