"""CPU cost of the recurrent sublayer relative to BERT's feed-forward sublayer, measured in one run.

Each sublayer is timed with its residual connection and LayerNorm, forward + backward, at BERT-base width
(hidden 768, FFN 3072, recurrence width 2048 = same parameters), at sequence lengths 128 and 512 with the same
number of tokens per batch. Also shown: a whole BERT-base layer (attention + FFN), the plain-loop reference
implementation, and the chunked form (k = 4). Ratios are against the FFN measured in the same run.

    python benchmarks/recurrence_cost.py [--tokens 4096] [--repeats 5] [--threads N] [--output FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from recurrent_mlm import RecurrentMLMConfig  # noqa: E402
from recurrent_mlm.cpu import tune_cpu_allocator  # noqa: E402
from recurrent_mlm.models.modeling_recurrent_mlm import RecurrentMLMLayer, SequenceContext  # noqa: E402


def fwd_bwd(module: torch.nn.Module, x: torch.Tensor, context) -> float:
    x.grad = None
    start = time.perf_counter()
    out = module(x, None, context=context)[0]
    out.sum().backward()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096, help="Tokens per batch (batch = tokens / length).")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="Sequence lengths to measure.")
    parser.add_argument("--repeats", type=int, default=7, help="Timed round-robin repetitions per candidate.")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "recurrence_cost.md"),
                        help="Markdown file for the table.")
    parser.add_argument("--no_malloc_tuning", action="store_true",
                        help="Keep glibc's default allocator thresholds (see recurrent_mlm/cpu.py).")
    args = parser.parse_args()
    tuned = False if args.no_malloc_tuning else tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def layer(**kwargs):
        config = RecurrentMLMConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **kwargs)
        config._attn_implementation = "sdpa"
        return config

    rows = []
    for length in args.lengths:
        batch = max(1, args.tokens // length)
        x = torch.randn(batch, length, 768, requires_grad=True)
        context = SequenceContext(None, x.dtype, "sdpa")
        candidates = {
            "BERT FFN sublayer (reference)": RecurrentMLMLayer(layer(), has_attention=False, use_recurrence=False),
            "simple recurrence (fast)": RecurrentMLMLayer(layer(recurrence="simple"), has_attention=False),
            "simple recurrence, k=4 (fast)": RecurrentMLMLayer(
                layer(recurrence="simple", recurrence_chunk_size=4), has_attention=False
            ),
            "simple recurrence (plain loop)": RecurrentMLMLayer(
                layer(recurrence="simple", recurrence_implementation="naive"), has_attention=False
            ),
            "gated recurrence (fast)": RecurrentMLMLayer(layer(recurrence="gated"), has_attention=False),
            "gated recurrence (plain loop)": RecurrentMLMLayer(
                layer(recurrence="gated", recurrence_implementation="naive"), has_attention=False
            ),
            "whole BERT layer (attention + FFN)": RecurrentMLMLayer(layer()),
        }
        for module in candidates.values():  # warm-up: allocations, kernel selection
            fwd_bwd(module, x, context)
        samples = {name: [] for name in candidates}
        for _ in range(args.repeats):  # round-robin, so background load hits every candidate alike
            for name, module in candidates.items():
                samples[name].append(fwd_bwd(module, x, context))
        base = min(samples["BERT FFN sublayer (reference)"])
        for name, times in samples.items():
            best, median = min(times), statistics.median(times)
            rows.append((length, batch, name, best, median, best / base))
            print(f"seq {length:4d} batch {batch:3d}  {name:36s} min {best * 1000:8.1f} ms  "
                  f"median {median * 1000:8.1f} ms  {best / base:5.2f}x", flush=True)

    lines = [
        f"Recurrent sublayer vs BERT FFN, forward + backward, BERT-base width, CPU, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, allocator tuning {'on' if tuned else 'off'}, {args.tokens} tokens "
        f"per batch; {args.repeats} round-robin "
        "repeats, ratio of the minima (the least disturbed samples).",
        "",
        "| seq | batch | sublayer | min ms | median ms | vs FFN |",
        "|---:|---:|---|---:|---:|---:|",
        *[f"| {L} | {B} | {name} | {s * 1000:.1f} | {m * 1000:.1f} | {r:.2f}x |" for L, B, name, s, m, r in rows],
        "",
    ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
