#!/usr/bin/env python
"""Cost against sequence length: training step, inference forward pass and peak memory of BERT and the
recurrent variants at equal parameters, from 128 to 8,192 tokens per sequence, in one process.

The tokens per batch are held fixed (batch = tokens / length), so a model whose cost is linear in the
length keeps a flat time per token and attention's quadratic term shows as growth. Every model is the
`--size` preset of its variant (the same parameter count; `max_position_embeddings` raised to the longest
length for all of them alike), SDPA attention with attention dropout 0 (as long-context encoders such as
ModernBERT train; with dropout, PyTorch's CPU attention falls back to a path that materialises the
length x length scores), hidden dropout as in BERT. At each length the models are timed round-robin
(`--rounds`), ratios are to BERT's minimum at that length. Peak memory is measured on a separate first step
(see `bench_utils.peak_memory`).

    python benchmarks/length_scaling.py                     # CPU, tiny, 8192 tokens per batch, 128..8192
    python benchmarks/length_scaling.py --device cuda --dtype bf16 --size mini --tokens 65536

Writes `results/length_scaling_<device>.{md,json,png}` (time per token against length, log-log).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_utils  # noqa: E402
import torch  # noqa: E402

MODELS = ["bert", "recurrent_bert", "gated_bert", "recurrent", "hybrid_recurrent", "lstm"]
BASELINE = "bert"


def build(variant: str, size: str, vocab_size: int, max_length: int, attn: str):
    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.presets import preset_config

    config = preset_config(
        size, variant, vocab_size=vocab_size, max_position_embeddings=max_length, attention_probs_dropout_prob=0.0
    )
    config._attn_implementation = attn
    return RecurrentMLMForMaskedLM(config)


def crossover(records: list[dict], model: str, key: str) -> int | None:
    """Shortest measured length from which `model`'s time stays at or below BERT's (ratio <= 1)."""
    ratios = [(r["length"], r["models"][model][key]["vs_bert"]) for r in records if model in r["models"]]
    ratios.sort()
    for index, (length, _) in enumerate(ratios):
        if all(ratio <= 1.0 for _, ratio in ratios[index:]):
            return length
    return None


def growth(records: list[dict], model: str, key: str) -> float | None:
    """Slope of log(time per token) against log(length) between the two longest lengths (0: linear cost,
    1: each doubling of the length doubles the time per token, i.e. quadratic)."""
    points = sorted((r["length"], r["models"][model][key]["ms_per_1k_tokens"]) for r in records if model in r["models"])
    if len(points) < 2:
        return None
    (l1, t1), (l2, t2) = points[-2], points[-1]
    return math.log(t2 / t1) / math.log(l2 / l1)


def main(argv=None) -> int:
    from recurrent_mlm.presets import SIZES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=list(SIZES), help="Size preset of every model.")
    p.add_argument("--models", nargs="+", default=MODELS, help=f"Variants (must include {BASELINE!r}).")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096, 8192],
                   help="Sequence lengths; each must divide --tokens.")
    p.add_argument("--tokens", type=int, default=8192, help="Tokens per batch at every length.")
    p.add_argument("--vocab_size", type=int, default=4096, help="Vocabulary (the MLM head's cost is per token).")
    p.add_argument("--rounds", type=int, default=3, help="Interleaved timing rounds per length.")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU (default: torch's).")
    p.add_argument("--device", default="cpu", help="cpu or cuda.")
    p.add_argument("--dtype", default="fp32", choices=list(bench_utils.DTYPES), help="Autocast dtype.")
    p.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"], help="Attention kernel.")
    p.add_argument("--clock", default="wall", choices=list(bench_utils.CLOCKS),
                   help="wall: elapsed time; cpu: this process's CPU time (a busy machine's queueing left out).")
    p.add_argument("--no_plot", action="store_true", help="Skip the PNG (matplotlib not needed).")
    p.add_argument("--note", default="", help="A sentence for the results file (e.g. who else used the machine).")
    p.add_argument("--output", default=None,
                   help="Output prefix (default: benchmarks/results/length_scaling_<device>).")
    args = p.parse_args(argv)
    if BASELINE not in args.models:
        p.error(f"--models must include {BASELINE!r}: ratios are to it")
    bad = [length for length in args.lengths if args.tokens % length]
    if bad:
        p.error(f"--lengths {bad} do not divide --tokens {args.tokens}; choose powers of two or other --tokens")

    from recurrent_mlm.cpu import tune_cpu_allocator

    tuned = tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = bench_utils.DTYPES[args.dtype]
    lengths = sorted(args.lengths)
    torch.manual_seed(0)
    models = {name: build(name, args.size, args.vocab_size, lengths[-1], args.attn_implementation) for name in args.models}
    parameters = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    trainers = {name: bench_utils.Trainer(model, device, dtype) for name, model in models.items()}
    # One step each first, so that optimizer states exist before any memory is measured.
    ((ids, labels),) = bench_utils.mlm_batches(1, 2, lengths[0], args.vocab_size, device)
    for trainer in trainers.values():
        trainer.step(ids, labels)

    records = []
    for length in lengths:
        batch = args.tokens // length
        ((ids, labels),) = bench_utils.mlm_batches(1, batch, length, args.vocab_size, device, seed=length)
        autocast = (torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32
                    else torch.autocast(device_type=device.type, enabled=False))

        def train(name):
            return lambda: trainers[name].step(ids, labels)

        def infer(name):
            encoder = trainers[name].model.model

            def run():
                encoder.eval()
                with torch.no_grad(), autocast:
                    out = encoder(input_ids=ids).last_hidden_state
                encoder.train()
                return out

            return run

        memory = {}
        for name in models:  # the first step of each model at this length, its peak memory measured
            _, train_mib = bench_utils.peak_memory(train(name), device)
            _, infer_mib = bench_utils.peak_memory(infer(name), device)
            memory[name] = (train_mib, infer_mib)
        candidates = {}
        for name in models:
            candidates[(name, "train")] = train(name)
            candidates[(name, "inference")] = infer(name)
        samples = bench_utils.interleaved(candidates, args.rounds, device, progress=f"length {length}", clock=args.clock)
        record = {"length": length, "batch": batch, "models": {}}
        for name in models:
            entry = {}
            for index, key in enumerate(("train", "inference")):
                stats = bench_utils.summary(samples[(name, key)])
                base = min(samples[(BASELINE, key)])
                entry[key] = {
                    "ms": 1000 * stats["min"],
                    "ms_median": 1000 * stats["median"],
                    "ms_per_1k_tokens": 1000 * stats["min"] / args.tokens * 1000,
                    "vs_bert": stats["min"] / base,
                    "peak_mib": memory[name][index],
                    "seconds_per_round": samples[(name, key)],
                }
            record["models"][name] = entry
        records.append(record)
        line = "  ".join(f"{n} {record['models'][n]['train']['vs_bert']:.2f}x" for n in models)
        print(f"length {length:5d} batch {batch:3d} train vs bert: {line}", flush=True)

    summary = {
        name: {
            key: {"crossover_length": crossover(records, name, key), "growth_exponent": growth(records, name, key)}
            for key in ("train", "inference")
        }
        for name in models
    }
    setup = {
        "size": args.size,
        "tokens_per_batch": args.tokens,
        "vocab_size": args.vocab_size,
        "device": str(device),
        "dtype": args.dtype,
        "attn_implementation": args.attn_implementation,
        "attention_dropout": 0.0,
        "rounds": args.rounds,
        "clock": args.clock,
        "malloc_tuning": tuned,
        "parameters": parameters,
        "note": args.note,
        "command": "python benchmarks/length_scaling.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **bench_utils.machine(device),
    }
    prefix = Path(args.output) if args.output else bench_utils.RESULTS / f"length_scaling_{device.type}"
    markdown = render(records, summary, setup, list(models))
    print(markdown)
    bench_utils.write_results(prefix, markdown, {"setup": setup, "summary": summary, "results": records})
    if not args.no_plot:
        plot(records, list(models), setup, prefix.with_suffix(".png"))
    return 0


def render(records, summary, setup, names) -> str:
    head = (
        f"Cost against sequence length, `{setup['size']}` size (parameters: "
        + ", ".join(f"{n} {setup['parameters'][n] / 1e6:.2f}M" for n in names)
        + f"), {setup['tokens_per_batch']} tokens per batch, vocab {setup['vocab_size']}, {setup['device']} "
        f"{setup['dtype']}" + (f", {setup['threads']} threads" if setup["device"] == "cpu" else f", {setup.get('gpu')}")
        + f", attention {setup['attn_implementation']} (attention dropout 0); {setup['rounds']} interleaved rounds "
        f"per length, minimum per model ({'CPU time of the process' if setup['clock'] == 'cpu' else 'wall clock'}); torch {setup['torch']}, {setup['date']}. Command: `{setup['command']}`."
    )
    if setup.get("note"):
        head += f" {setup['note']}"
    lines = [head, ""]
    for key, title in (("train", "Training step (forward + backward + AdamW)"), ("inference", "Inference forward (encoder, no grad)")):
        lines += [f"### {title}: ms per 1,000 tokens, and ratio to BERT at the same length", "",
                  "| length | batch | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
        for r in records:
            cells = [f"{r['models'][n][key]['ms_per_1k_tokens']:.1f} ({r['models'][n][key]['vs_bert']:.2f}x)" for n in names]
            lines.append(f"| {r['length']} | {r['batch']} | " + " | ".join(cells) + " |")
        lines += ["", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines.append("| growth exponent (last doubling; 0 linear, 1 quadratic) | " + " | ".join(
            "-" if summary[n][key]["growth_exponent"] is None else f"{summary[n][key]['growth_exponent']:.2f}" for n in names) + " |")
        lines.append("| crossover: from this length on at or below BERT | " + " | ".join(
            "-" if n == BASELINE else (str(summary[n][key]["crossover_length"]) if summary[n][key]["crossover_length"] else "none measured")
            for n in names) + " |")
        lines.append("")
    lines += ["### Peak memory added by a step (MiB; CPU: resident-set high-water mark)", "",
              "| length | " + " | ".join(f"{n} train / infer" for n in names) + " |", "|---:|" + "---:|" * len(names)]
    for r in records:
        cells = []
        for n in names:
            t, i = r["models"][n]["train"]["peak_mib"], r["models"][n]["inference"]["peak_mib"]
            cells.append("-" if t is None else f"{t:.0f} / {i:.0f}")
        lines.append(f"| {r['length']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records, names, setup, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    lengths = [r["length"] for r in records]
    for ax, key, title in ((axes[0], "train", "training step"), (axes[1], "inference", "inference forward")):
        for name in names:
            ax.plot(lengths, [r["models"][name][key]["ms_per_1k_tokens"] for r in records], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (tokens per batch fixed)")
        ax.set_ylabel("ms per 1,000 tokens")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    where = f"{setup['device']}, {setup['threads']} threads" if setup["device"] == "cpu" else setup.get("gpu", "")
    fig.suptitle(f"Cost per token against length, {setup['size']} size, {setup['tokens_per_batch']} tokens per batch ({where})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"written: {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
