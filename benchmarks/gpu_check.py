#!/usr/bin/env python
"""The GPU check: one command, under 5 minutes on one GPU, that answers what a CPU cannot.

    python benchmarks/gpu_check.py OUTPUT_DIR            # on a machine with a CUDA GPU and Triton
    python benchmarks/gpu_check.py OUTPUT_DIR --dry-run  # anywhere: everything but the kernels, tiny, on CPU

1. **Kernels against the reference.** The Triton recurrence kernels (`recurrence_triton.py`) against the
   plain loops of `recurrence_naive.py` computed in float64 on the same device: outputs and gradients (random
   cotangent), float32 and bf16 inputs, chunk sizes 1 and 3, every direction split, lengths and widths that
   are not multiples of the kernels' blocks; then whole models (recurrent BERT, gated BERT, the attention-free
   stack) with ragged left/right padding, Triton against the reference implementation, float32 and bf16
   autocast: hidden states at real tokens and parameter gradients.
2. **Training steps.** bert and recurrent_bert (and gated_bert) at mini and base, bf16 autocast, against
   `transformers.BertForMaskedLM` with SDPA: interleaved rounds, ratios of the per-model minima.
3. **Memory bandwidth.** Each recurrence kernel (forward and backward, float32 and bf16 inputs) on a tensor
   far larger than the L2 cache: bytes it must move over its time, as a share of a device-to-device copy's
   bandwidth measured in the same run and of the card's datasheet bandwidth where known.

Writes `gpu_check.json` and `gpu_check.md` to OUTPUT_DIR and exits 1 if a comparison failed. Imports neither
`datasets` nor `evaluate` (the GPU machines have neither), only torch, transformers, Triton and this package.
`--dry-run` runs the same harness on CPU with the PyTorch fast path in place of the kernels, tiny models and
tensors, so that the script itself is tested without a GPU (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_utils  # noqa: E402  (puts this checkout's src/ first on the path)
import torch  # noqa: E402

# Datasheet memory bandwidth (bytes/s) by device name, for the share of nominal peak; the measured copy
# bandwidth of the same run is the other (achievable) reference.
NOMINAL_BANDWIDTH = {
    "H200": 4.8e12,
    "H100 SXM": 3.35e12,
    "H100 PCIe": 2.0e12,
    "H100 NVL": 3.9e12,
    "A100-SXM4-80GB": 2.039e12,
    "A100-SXM4-40GB": 1.555e12,
    "A100-PCIE-40GB": 1.555e12,
    "A100 80GB PCIe": 1.935e12,
    "L4": 0.3e12,
    "A10G": 0.6e12,
}
# float32 state and arithmetic: the kernels must match a float64 reference to float32 rounding.
TOLERANCE = {"fp32": 2e-4, "bf16": 2e-4}  # outputs are float32 in both cases
GRAD_TOLERANCE = {"fp32": 2e-4, "bf16": 1.6e-2}  # bf16 gradients are rounded to bf16 (8 bits of mantissa)


def nominal_bandwidth(name: str) -> float | None:
    for key, value in NOMINAL_BANDWIDTH.items():
        if key.lower() in name.lower().replace("nvidia ", ""):
            return value
    return None


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max(1, max |want|): float32 rounding shows as ~1e-7 per op."""
    got, want = got.double(), want.double()
    return float((got - want).abs().max() / want.abs().max().clamp(min=1.0)) if want.numel() else 0.0


# ---------------------------------------------------------------------------------------------------------
# 1. kernels against the reference
# ---------------------------------------------------------------------------------------------------------
def check_kernels(device: torch.device, implementation: str, quick: bool) -> list[dict]:
    from recurrent_mlm.models.recurrence import gated_recurrence, simple_recurrence
    from recurrent_mlm.models.recurrence_naive import gated_recurrence_naive, simple_recurrence_naive

    shapes = [(3, 37, 130)] if quick else [(3, 37, 130), (2, 300, 520), (1, 1, 7)]
    rows = []
    g = torch.Generator(device="cpu").manual_seed(0)
    for recurrence in ("simple", "gated"):
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            for chunk in (1, 3):
                # The PyTorch path (dry run) reads one direction; split directions are the kernels' own.
                splits = ("all-forward", "all-backward", "half") if implementation == "triton" else ("all-forward",)
                for split_name in splits:
                    for shape in shapes:
                        channels = shape[-1]
                        split = {"all-forward": channels, "all-backward": 0, "half": channels // 2}[split_name]
                        if implementation != "triton":
                            split = None
                        x = torch.randn(*shape, generator=g).to(device, dtype)
                        f = torch.rand(*shape, generator=g).to(device, dtype)
                        inputs = [x] if recurrence == "simple" else [x, f]
                        row = {"what": "kernel", "recurrence": recurrence, "dtype": dtype_name, "chunk": chunk,
                               "split": split_name if split is not None else "all-forward", "shape": list(shape)}
                        try:
                            row.update(_compare_scan(recurrence, inputs, chunk, split, implementation, dtype_name,
                                                     simple_recurrence, gated_recurrence,
                                                     simple_recurrence_naive, gated_recurrence_naive))
                        except Exception as err:  # record and go on: one broken case must not hide the others
                            row.update(ok=False, error=f"{type(err).__name__}: {err}")
                        rows.append(row)
    return rows


def _reference_both_ways(fn, inputs, chunk, split):
    """The reference with channels `[:split]` left to right and the rest right to left."""
    if split is None:
        return fn(*inputs, chunk)
    forward = fn(*[t[..., :split] for t in inputs], chunk)
    backward = fn(*[t[..., split:].flip(1) for t in inputs], chunk).flip(1)
    return torch.cat([forward, backward], dim=-1)


def _compare_scan(recurrence, inputs, chunk, split, implementation, dtype_name,
                  simple_fast, gated_fast, simple_ref, gated_ref) -> dict:
    fast_fn = simple_fast if recurrence == "simple" else gated_fast
    ref_fn = simple_ref if recurrence == "simple" else gated_ref
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    # The kernels take bf16 and keep a float32 state; the PyTorch path (dry run) expects the caller to upcast.
    args = leaves if implementation == "triton" else [t.float() for t in leaves]
    out = fast_fn(*args, chunk, implementation, split)
    cotangent = torch.randn(out.shape, device=out.device, dtype=torch.float32)
    grads = torch.autograd.grad(out, leaves, cotangent.to(out.dtype))
    ref_leaves = [t.detach().double().requires_grad_() for t in inputs]
    ref = _reference_both_ways(ref_fn, ref_leaves, chunk, split)
    ref_grads = torch.autograd.grad(ref, ref_leaves, cotangent.double())
    out_err = relative_error(out, ref)
    grad_err = max(relative_error(a, b) for a, b in zip(grads, ref_grads))
    ok = out_err <= TOLERANCE[dtype_name] and grad_err <= GRAD_TOLERANCE[dtype_name] and bool(torch.isfinite(out).all())
    return {"output_error": out_err, "gradient_error": grad_err, "ok": ok}


def check_models(device: torch.device, implementation: str, quick: bool = False) -> list[dict]:
    """Whole tiny models with ragged padding: the kernels against the reference implementation."""
    from recurrent_mlm import RecurrentMLMConfig, RecurrentMLMModel

    variants = {
        "recurrent_bert": dict(recurrence="simple"),
        "recurrent_bert_k3": dict(recurrence="simple", recurrence_chunk_size=3),
        "gated_bert": dict(recurrence="gated"),
        "recurrent": dict(encoder_type="recurrent", recurrence="simple", num_attention_layers=1),
    }
    if quick:
        variants = {name: variants[name] for name in ("recurrent_bert_k3", "gated_bert")}
    g = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(5, 200, (4, 29), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 20:] = 0  # right padding
    mask[1, :6] = 0  # left padding
    mask[2, 3:] = 0  # short row
    ids, mask = ids.to(device), mask.to(device)
    rows = []
    for name, fields in variants.items():
        for dtype_name in ("fp32", "bf16"):
            row = {"what": "model", "variant": name, "dtype": dtype_name, "padding": "ragged (left, right, short)"}
            try:
                fields_all = dict(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=256, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0, **fields)
                torch.manual_seed(0)
                reference = RecurrentMLMModel(RecurrentMLMConfig(**fields_all, recurrence_implementation="naive"))
                candidate = RecurrentMLMModel(RecurrentMLMConfig(**fields_all, recurrence_implementation=implementation))
                candidate.load_state_dict(reference.state_dict())
                results = []
                for model in (candidate.to(device), reference.to(device)):
                    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype_name == "bf16")
                    with autocast:
                        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                    cotangent = torch.randn(hidden.shape, generator=torch.Generator().manual_seed(2)).to(device)
                    params = [p for p in model.parameters() if p.requires_grad]
                    grads = torch.autograd.grad(hidden, params, cotangent * mask[..., None], allow_unused=True)
                    results.append((hidden * mask[..., None], grads))
                (h_fast, g_fast), (h_ref, g_ref) = results
                out_err = relative_error(h_fast, h_ref)
                grad_err = max(relative_error(a, b) for a, b in zip(g_fast, g_ref) if a is not None and b is not None)
                tol = 2e-4 if dtype_name == "fp32" else 5e-2  # bf16 autocast: the matmuls round to bf16
                row.update(output_error=out_err, gradient_error=grad_err, ok=out_err <= tol and grad_err <= tol)
            except Exception as err:
                row.update(ok=False, error=f"{type(err).__name__}: {err}")
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------------
# 2. training steps
# ---------------------------------------------------------------------------------------------------------
def time_training(device: torch.device, sizes: list[str], batch: dict[str, int], seq_len: int, rounds: int,
                  steps: int, dtype: torch.dtype, vocab: int = 30522) -> list[dict]:
    from transformers import BertConfig, BertForMaskedLM

    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.presets import SIZES, preset_config

    out = []
    for size in sizes:
        shape = SIZES[size]
        torch.manual_seed(0)
        models = {
            "transformers.BertForMaskedLM": BertForMaskedLM(BertConfig(
                vocab_size=vocab, hidden_size=shape.hidden_size, num_hidden_layers=shape.num_hidden_layers,
                num_attention_heads=shape.num_attention_heads, intermediate_size=shape.intermediate_size,
                attn_implementation="sdpa")),
        }
        for variant in ("bert", "recurrent_bert", "gated_bert"):
            config = preset_config(size, variant, vocab_size=vocab)
            config._attn_implementation = "sdpa"
            models[variant] = RecurrentMLMForMaskedLM(config)
        trainers = {name: bench_utils.Trainer(model, device, dtype) for name, model in models.items()}
        batches = bench_utils.mlm_batches(steps, batch[size], seq_len, vocab, device)

        def run(trainer):
            def steps_():
                for ids, labels in batches:
                    trainer.step(ids, labels)
            return steps_

        for trainer in trainers.values():  # warm-up: kernel compilation, allocator, autotuning
            run(trainer)()
        samples = bench_utils.interleaved({n: run(t) for n, t in trainers.items()}, rounds, device,
                                          progress=f"training {size}")
        best = {name: min(values) / steps for name, values in samples.items()}
        tokens = batch[size] * seq_len
        for name, seconds in best.items():
            out.append({
                "size": size, "model": name, "batch": batch[size], "seq_len": seq_len,
                "step_ms": 1000 * seconds, "tokens_per_second": tokens / seconds,
                "vs_bert": seconds / best["bert"],
                "speed_vs_BertForMaskedLM": best["transformers.BertForMaskedLM"] / seconds,
                "parameters": sum(p.numel() for p in models[name].parameters()),
            })
        del trainers, models
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


# ---------------------------------------------------------------------------------------------------------
# 3. memory bandwidth
# ---------------------------------------------------------------------------------------------------------
def measure_bandwidth(device: torch.device, implementation: str, shape: tuple[int, int, int], repeat: int) -> dict:
    from recurrent_mlm.models.recurrence import gated_recurrence, simple_recurrence

    copy_n = math.prod(shape) * 2  # a copy of twice the recurrence's input: far past any cache
    src = torch.empty(copy_n, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    copy_seconds = min(bench_utils.time_call(lambda: dst.copy_(src), device) for _ in range(repeat))
    copy_bandwidth = 2 * src.numel() * 4 / copy_seconds  # read + write
    del src, dst
    rows = []
    numel = math.prod(shape)
    for recurrence in ("simple", "gated"):
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            size = torch.finfo(dtype).bits // 8
            x = torch.randn(shape, device=device, dtype=dtype).requires_grad_()
            f = torch.rand(shape, device=device, dtype=dtype).requires_grad_()
            split = shape[-1] // 2 if implementation == "triton" else None
            if recurrence == "simple":
                def forward():
                    return simple_recurrence(x, 1, implementation, split)
                inputs = (x,)
                # forward: read x, write c (float32); backward: read x, c, grad_c, write grad_x
                fwd_bytes = numel * (size + 4)
                bwd_bytes = numel * (size + 4 + 4 + size)
            else:
                def forward():
                    return gated_recurrence(x, f, 1, implementation, split)
                inputs = (x, f)
                # forward: read z, f, write c; backward: read z, f, c, grad_c, write grad_z, grad_f
                fwd_bytes = numel * (2 * size + 4)
                bwd_bytes = numel * (2 * size + 4 + 4 + 2 * size)
            with torch.no_grad():
                forward()
            fwd = min(bench_utils.time_call(lambda: _no_grad(forward), device) for _ in range(repeat))
            c = forward()
            grad = torch.randn_like(c)
            torch.autograd.grad(c, inputs, grad, retain_graph=True)
            bwd = min(bench_utils.time_call(lambda: torch.autograd.grad(c, inputs, grad, retain_graph=True), device)
                      for _ in range(repeat))
            for direction, seconds, nbytes in (("forward", fwd, fwd_bytes), ("backward", bwd, bwd_bytes)):
                rows.append({"recurrence": recurrence, "dtype": dtype_name, "pass": direction, "shape": list(shape),
                             "ms": 1000 * seconds, "bytes": nbytes, "bandwidth": nbytes / seconds,
                             "share_of_copy": nbytes / seconds / copy_bandwidth})
            del x, f, c, grad
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    nominal = nominal_bandwidth(name) if device.type == "cuda" else None
    for row in rows:
        row["share_of_nominal"] = None if nominal is None else row["bandwidth"] / nominal
    return {"copy_bandwidth": copy_bandwidth, "nominal_bandwidth": nominal, "device": name, "kernels": rows}


def _no_grad(fn):
    with torch.no_grad():
        return fn()


# ---------------------------------------------------------------------------------------------------------
def render(record: dict) -> str:
    s = record["setup"]
    lines = [
        f"# GPU check{' (DRY RUN on CPU: the PyTorch fast path stands in for the kernels; no GPU numbers)' if s['dry_run'] else ''}",
        "",
        f"{s.get('gpu', s['device'])}, torch {s['torch']}, Triton {s['triton']}, transformers {s['transformers']}, "
        f"{s['date']}; {s['seconds']:.0f} s. Command: `{s['command']}`.",
        "",
        f"## 1. Recurrences ({s['implementation']}) against the float64 reference",
        "",
    ]
    kernels = [r for r in record["kernels"] if r["what"] == "kernel"]
    failed = [r for r in record["kernels"] if not r["ok"]]
    lines.append(f"{len(kernels)} scan cases and {len(record['kernels']) - len(kernels)} model cases; "
                 f"{len(failed)} failed. Worst relative errors (max |diff| / max(1, max |ref|)):")
    lines += ["", "| recurrence | dtype | cases | worst output error | worst gradient error | all ok |", "|---|---|---:|---:|---:|---|"]
    for recurrence in ("simple", "gated"):
        for dtype in ("fp32", "bf16"):
            group = [r for r in kernels if r["recurrence"] == recurrence and r["dtype"] == dtype]
            if group:
                lines.append(_error_row(f"{recurrence} | {dtype}", group))
    lines += ["", "| model (ragged padding) | dtype | output error | gradient error | ok |", "|---|---|---:|---:|---|"]
    for r in record["kernels"]:
        if r["what"] == "model":
            lines.append(f"| {r['variant']} | {r['dtype']} | {r.get('output_error', float('nan')):.2e} | "
                         f"{r.get('gradient_error', float('nan')):.2e} | {'yes' if r['ok'] else 'NO: ' + r.get('error', '')} |")
    for r in failed:
        if r["what"] == "kernel":
            lines.append(f"\nFAILED: {r}")
    lines += ["", f"## 2. Training steps ({s['train_dtype']} autocast, SDPA, vocab {s['vocab_size']}, seq {s['seq_len']}; "
              f"{s['rounds']} interleaved rounds of {s['steps']} steps, minimum per model)", "",
              "| size | model | batch | step ms | tokens/s | step vs our bert | speed vs BertForMaskedLM |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in record["training"]:
        lines.append(f"| {r['size']} | {r['model']} | {r['batch']} | {r['step_ms']:.1f} | {r['tokens_per_second']:,.0f} | "
                     f"{r['vs_bert']:.2f}x | {r['speed_vs_BertForMaskedLM']:.2f}x |")
    bw = record["bandwidth"]
    nominal = f"{bw['nominal_bandwidth'] / 1e12:.2f} TB/s datasheet" if bw["nominal_bandwidth"] else "no datasheet figure"
    lines += ["", f"## 3. Memory bandwidth of the recurrences (copy: {bw['copy_bandwidth'] / 1e12:.3f} TB/s measured, {nominal})",
              "", "| recurrence | inputs | pass | shape | ms | bytes moved | TB/s | share of copy | share of datasheet |",
              "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in bw["kernels"]:
        nominal_share = "-" if r["share_of_nominal"] is None else f"{100 * r['share_of_nominal']:.0f}%"
        lines.append(f"| {r['recurrence']} | {r['dtype']} | {r['pass']} | {'x'.join(map(str, r['shape']))} | {r['ms']:.2f} | "
                     f"{r['bytes'] / 1e9:.2f} GB | {r['bandwidth'] / 1e12:.3f} | {100 * r['share_of_copy']:.0f}% | {nominal_share} |")
    if record.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {e}" for e in record["errors"]]
    return "\n".join(lines)


def _error_row(label: str, group: list[dict]) -> str:
    out = max((r.get("output_error", float("inf")) for r in group), default=0.0)
    grad = max((r.get("gradient_error", float("inf")) for r in group), default=0.0)
    return f"| {label} | {len(group)} | {out:.2e} | {grad:.2e} | {'yes' if all(r['ok'] for r in group) else 'NO'} |"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output_dir", help="Folder for gpu_check.json and gpu_check.md (created).")
    p.add_argument("--dry-run", "--cpu", dest="dry_run", action="store_true",
                   help="Run the harness on CPU with the PyTorch path instead of the kernels, tiny sizes.")
    p.add_argument("--quick", action="store_true", help="Fewer kernel cases and rounds (a smoke test on a GPU).")
    p.add_argument("--sizes", nargs="+", default=None, help="Training-step sizes (default: mini base; dry run: tiny).")
    args = p.parse_args(argv)
    start = time.time()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA GPU here: run with --dry-run to test the harness on CPU")
    from recurrent_mlm.models.recurrence import triton_available

    if args.dry_run:
        device, implementation = torch.device("cpu"), "fast"
        sizes = args.sizes or ["tiny"]
        batch, seq_len, rounds, steps, vocab = {size: 2 for size in sizes}, 32, 1, 1, 512
        bandwidth_shape, repeat = (2, 64, 128), 1
    else:
        if not triton_available():
            p.error("Triton is not installed: the check is about the Triton kernels (pip install triton)")
        device, implementation = torch.device("cuda"), "triton"
        sizes = args.sizes or ["mini", "base"]
        batch = {"tiny": 256, "mini": 256, "small": 128, "medium": 128, "base": 64, "large": 32}
        seq_len, rounds, steps, vocab = 128, (3 if args.quick else 5), 5, 30522
        # 64 x 2048 x 2048 float32 = 1 GiB per tensor: far past the 50-60 MB L2 of Hopper cards.
        bandwidth_shape, repeat = (64, 2048, 2048), (3 if args.quick else 5)
        torch.backends.cuda.matmul.allow_tf32 = True

    import transformers

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    setup = {"dry_run": args.dry_run, "device": str(device), "implementation": implementation,
             "triton": triton_version, "transformers": transformers.__version__, "train_dtype": "bf16",
             "seq_len": seq_len, "vocab_size": vocab, "rounds": rounds, "steps": steps,
             "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
             **bench_utils.machine(device)}
    record = {"setup": setup, "kernels": [], "training": [], "bandwidth": None, "errors": []}
    print(f"[gpu_check] {setup.get('gpu', 'cpu')}: kernels", file=sys.stderr, flush=True)
    record["kernels"] = check_kernels(device, implementation, quick=args.quick or args.dry_run)
    print(f"[gpu_check] models ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    record["kernels"] += check_models(device, implementation, quick=args.dry_run)
    for name, section in (("training", lambda: time_training(device, sizes, batch, seq_len, rounds, steps, torch.bfloat16, vocab)),
                          ("bandwidth", lambda: measure_bandwidth(device, implementation, bandwidth_shape, repeat))):
        print(f"[gpu_check] {name} ({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
        try:
            record[name] = section()
        except Exception:  # keep what was measured; the error goes into the results
            record["errors"].append(f"{name}: {traceback.format_exc(limit=3)}")
    if record["bandwidth"] is None:
        record["bandwidth"] = {"copy_bandwidth": float("nan"), "nominal_bandwidth": None, "device": "", "kernels": []}
    setup["seconds"] = time.time() - start
    markdown = render(record)
    print(markdown)
    bench_utils.write_results(out_dir / "gpu_check", markdown, record)
    failed = [r for r in record["kernels"] if not r["ok"]]
    return 1 if failed or record["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
