"""How much context a model uses (Miller & Hardt 2019, "Stable Recurrent Models").

Miller & Hardt prove that a *stable* recurrent model (its state update a contraction) is well approximated by
one that sees only the last k inputs, and find that trained language models behave that way. For any
checkpoint this probe measures:

(a) **windowed held-out MLM loss**: the held-out blocks of a corpus (the blocks `run_pretraining.py` holds out
    for the same text, tokenizer and length, masked at 15% with its fixed evaluation seed) are cut into
    independent windows of w content tokens, each read as its own ``[CLS] window [SEP]``; the loss is taken on
    the same masked tokens for every w. Windows are disjoint, so a token near a window's edge has less than w
    tokens of context. Reported: the loss for w = 4, 8, ... and for the whole block, and the smallest w
    whose loss is within 5% of the whole block's.
(b) **decay of a prefix change in the hidden states**: the first p content tokens of each block are replaced
    by those of another held-out block (`replace`: every position keeps its position embedding), or removed
    (`remove`: later tokens shift left, which by itself changes a model with absolute positions); the
    relative change ``|h - h'| / |h|`` of each layer's states is averaged over blocks at each distance
    d = 1, 2, ... after the cut.
(c) for LSTM encoders, the spectral norm of each gate's recurrent matrix, per layer and direction, and
    whether `lstm_max_singular_value` (the stability projection applied after every training step) was set
    and holds.

(a) needs a trained MLM head; a checkpoint without one (a sentence encoder such as all-MiniLM-L6-v2) gets (b)
and (c) only, and the result says so.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import UsageError
from .common import LoadedModel, arg, encoder_of, fmt, load_model, markdown_table, pyplot, write_result

DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "data" / "corpus"
GATES = ("input", "forget", "cell", "output")  # PyTorch's order of the four blocks of weight_hh


@dataclass
class MemoryArgs:
    """Arguments of `probe_memory` (and `python -m recurrent_mlm.probes memory`)."""

    model: str = arg(help="Checkpoint folder (ours, a transformers BERT, or a bare encoder such as all-MiniLM-L6-v2).")
    output_dir: str | None = arg(help="Where memory.json/.md/.png go (none: nothing written).")
    train_file: list[str] = arg([str(DEFAULT_CORPUS)], help="Text the held-out blocks come from (files or folders): "
                                "the pretraining corpus, split as run_pretraining.py splits it.")
    validation_file: list[str] | None = arg(help="Held-out text to use as it is instead (every block of it).")
    validation_split_percentage: float = arg(5.0, help="Share of the blocks held out (run_pretraining.py's default).")
    max_seq_length: int = arg(128, help="Block length in tokens, [CLS] and [SEP] included (as in pretraining).")
    max_blocks: int | None = arg(256, help="Use at most this many held-out blocks (run_pretraining.py's demo evaluates 256).")
    windows: list[int] = arg([4, 8, 16, 32, 64, 128], help="Window sizes w in content tokens (w >= the block is the "
                             "whole block).")
    tolerance: float = arg(0.05, help="'Within' tolerance: the smallest window whose loss is at most (1 + tolerance) "
                           "x the whole block's.")
    prefix_tokens: int | None = arg(help="Tokens changed at the start of each block (default: half its content).")
    prefix_mode: str = arg("replace", help="replace: the prefix becomes another block's; remove: it is cut off.",
                           choices=["replace", "remove"])
    batch_size: int = arg(32, help="Sequences per forward pass.")
    tokenizer_name: str | None = arg(help="Tokenizer folder or Hub id, if the model folder has none.")
    device: str | None = arg(help="cpu, cuda, ... (default: a GPU when there is one).")
    trust_remote_code: bool = arg(False, help="Allow model code from the checkpoint.")

    def check(self) -> None:
        if self.max_seq_length < 6:
            raise UsageError("--max_seq_length must be at least 6.")
        if not self.windows or min(self.windows) < 1:
            raise UsageError("--windows: give window sizes >= 1.")
        if self.prefix_tokens is not None and not 1 <= self.prefix_tokens <= self.max_seq_length - 4:
            raise UsageError(f"--prefix_tokens must be between 1 and {self.max_seq_length - 4} (the block minus 2).")


@dataclass
class MemoryResult:
    summary: dict[str, Any]
    files: dict[str, str]

    def markdown(self) -> str:
        return memory_markdown(self.summary)


# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------
def held_out_blocks(args: MemoryArgs, tokenizer, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """`(ids, masked ids, labels)`, each `(blocks, max_seq_length)`: the held-out blocks and their fixed
    evaluation masks, exactly as `run_pretraining.py` builds its held-out set for this text and tokenizer."""
    from ..pretraining.corpus import build_datasets, resolve_source
    from ..pretraining.masking import EVAL_MASK_SEED, EVAL_MLM_PROBABILITY, MLMCollator, MLMMasker

    import datasets

    source = resolve_source(
        train_files=list(args.train_file) if not args.validation_file else list(args.validation_file),
        validation_files=list(args.validation_file) if args.validation_file else None,
        dataset_name=None,
    )
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()  # a study calls this many times; its log stays readable
    try:
        data = build_datasets(
            source,
            tokenizer,
            max_seq_length=args.max_seq_length,
            validation_split_percentage=args.validation_split_percentage,
            max_eval_samples=args.max_blocks,
        )
    finally:
        if bars:
            datasets.utils.logging.enable_progress_bar()
    if data.validation is None or len(data.validation) < 2:
        raise UsageError(
            "the text makes fewer than 2 held-out blocks; give more text (--train_file / --validation_file), a larger "
            "--validation_split_percentage or a smaller --max_seq_length."
        )
    examples = [data.validation[i] for i in range(len(data.validation))]
    masker = MLMMasker(
        vocab_size=min(vocab_size, len(tokenizer)),
        mask_token_id=tokenizer.mask_token_id if tokenizer.mask_token_id is not None else 0,
        special_ids=tokenizer.all_special_ids,
        mlm_probability=EVAL_MLM_PROBABILITY,
    )
    batch = MLMCollator(masker, EVAL_MASK_SEED, fixed_epoch=0)(examples)
    ids = np.stack([e["input_ids"] for e in examples])
    return ids, batch["input_ids"].numpy(), batch["labels"].numpy(), {"blocks": len(examples), "source": source.label}


# ----------------------------------------------------------------------------------------------------------
# (a) windowed loss
# ----------------------------------------------------------------------------------------------------------
def _pad(rows: list[np.ndarray], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    out = np.full((len(rows), length), value, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)


def window_sequences(masked: np.ndarray, labels: np.ndarray, window: int, cls_id: int, sep_id: int):
    """Cut each block's content (between its [CLS] and [SEP]) into consecutive windows of `window` tokens, each
    wrapped as `[CLS] ... [SEP]`; labels follow their tokens (-100 on the specials)."""
    sequences, targets = [], []
    content = masked.shape[1] - 2
    for ids, lab in zip(masked, labels):
        for start in range(1, 1 + content, window):
            stop = min(start + window, 1 + content)
            sequences.append(np.concatenate([[cls_id], ids[start:stop], [sep_id]]))
            targets.append(np.concatenate([[-100], lab[start:stop], [-100]]))
    return sequences, targets


@torch.inference_mode()
def masked_token_losses(loaded: LoadedModel, sequences, targets, batch_size: int) -> tuple[float, float, int]:
    """Summed cross-entropy, correct predictions and count over the labelled tokens of the sequences."""
    model, device = loaded.model, loaded.device
    pad = loaded.tokenizer.pad_token_id or 0
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    loss_sum, correct, count = 0.0, 0, 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = _pad([sequences[i] for i in chunk], pad)
        labels, _ = _pad([targets[i] for i in chunk], -100)
        selected = labels != -100
        if not bool(selected.any()):
            continue
        ids, mask, labels, selected = ids.to(device), mask.to(device), labels.to(device), selected.to(device)
        if head is not None:
            hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = head(hidden[selected]).float()  # (labelled, vocab)
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits[selected].float()
        gold = labels[selected]
        loss_sum += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
        correct += int((logits.argmax(-1) == gold).sum())
        count += int(gold.numel())
    return loss_sum, correct, count


def windowed_loss(loaded: LoadedModel, masked, labels, windows, tolerance, batch_size) -> dict[str, Any]:
    tokenizer = loaded.tokenizer
    content = masked.shape[1] - 2
    sizes = sorted({w for w in windows if w < content}) + [content]
    rows = []
    for w in sizes:
        sequences, targets = window_sequences(masked, labels, w, tokenizer.cls_token_id, tokenizer.sep_token_id)
        loss_sum, correct, count = masked_token_losses(loaded, sequences, targets, batch_size)
        rows.append({"window": w, "full": w == content, "loss": loss_sum / count, "accuracy": correct / count,
                     "masked_tokens": count})
    full = rows[-1]["loss"]
    for row in rows:
        row["relative_to_full"] = row["loss"] / full - 1.0
        row["perplexity"] = math.exp(min(row["loss"], 50.0))
    within = next((r["window"] for r in rows if r["loss"] <= (1 + tolerance) * full), content)
    return {"rows": rows, "full_context_loss": full, "tolerance": tolerance, "smallest_window_within_tolerance": within,
            "content_tokens": content}


# ----------------------------------------------------------------------------------------------------------
# (b) prefix-change decay
# ----------------------------------------------------------------------------------------------------------
@torch.inference_mode()
def _hidden_states(loaded: LoadedModel, ids: np.ndarray, batch_size: int, lengths: np.ndarray | None = None) -> list[np.ndarray]:
    """Every layer's states `(blocks, seq, hidden)` (index 0: the embeddings), float64 on the CPU."""
    encoder = encoder_of(loaded.model)
    pad = loaded.tokenizer.pad_token_id or 0
    layers: list[list[np.ndarray]] = []
    for start in range(0, len(ids), batch_size):
        rows = [ids[i][: lengths[i]] if lengths is not None else ids[i] for i in range(start, min(start + batch_size, len(ids)))]
        batch, mask = _pad(rows, pad)
        out = encoder(input_ids=batch.to(loaded.device), attention_mask=mask.to(loaded.device), output_hidden_states=True)
        states = out.hidden_states
        if not layers:
            layers = [[] for _ in states]
        for k, h in enumerate(states):
            layers[k].append(h.double().cpu().numpy())
    width = ids.shape[1]
    return [np.concatenate([np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0))) for a in parts]) for parts in layers]


def prefix_decay(loaded: LoadedModel, ids: np.ndarray, prefix: int, mode: str, batch_size: int) -> dict[str, Any]:
    """Mean relative change of each layer's states at distance d after a changed (or removed) prefix."""
    blocks, length = ids.shape
    content_end = length - 1  # index of the final [SEP]
    changed = ids.copy()
    lengths = None
    if mode == "replace":
        donor = np.roll(ids, 1, axis=0)  # another held-out block (the previous one)
        changed[:, 1 : 1 + prefix] = donor[:, 1 : 1 + prefix]
    else:
        changed = np.concatenate([ids[:, :1], ids[:, 1 + prefix :], np.zeros((blocks, prefix), dtype=ids.dtype)], axis=1)
        lengths = np.full(blocks, length - prefix)
    original = _hidden_states(loaded, ids, batch_size)
    other = _hidden_states(loaded, changed, batch_size, lengths)
    positions = np.arange(1 + prefix, content_end)  # content tokens after the cut in the original block
    shifted = positions - (prefix if mode == "remove" else 0)
    distances = positions - prefix  # 1, 2, ...
    curves = []
    for h, g in zip(original, other):
        delta = np.linalg.norm(h[:, positions] - g[:, shifted], axis=-1)  # (blocks, distances)
        size = np.linalg.norm(h[:, positions], axis=-1)
        curves.append((delta / np.maximum(size, 1e-12)).mean(axis=0))
    last = curves[-1]

    def first_below(curve: np.ndarray, level: float) -> int | None:
        below = np.nonzero(curve <= level)[0]
        return int(distances[below[0]]) if below.size else None

    return {
        "mode": mode,
        "prefix_tokens": prefix,
        "distances": distances.tolist(),
        "layers": [c.tolist() for c in curves],  # index 0: embeddings
        "last_layer": last.tolist(),
        "effect_at_1": float(last[0]),
        "half_distance": first_below(last, last[0] / 2),
        "distance_below_1_percent": first_below(last, 0.01),
        "effect_at_end": float(last[-1]),
    }


# ----------------------------------------------------------------------------------------------------------
# (c) LSTM recurrent norms
# ----------------------------------------------------------------------------------------------------------
@torch.no_grad()
def lstm_recurrent_norms(model: torch.nn.Module) -> dict[str, Any]:
    """Spectral norm of each gate's recurrent matrix of every LSTM in the model, and the projection's state."""
    lstms = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.LSTM)]
    config = getattr(model, "config", None)
    bound = getattr(config, "lstm_max_singular_value", None)
    if not lstms:
        recurrence = getattr(config, "recurrence", None)
        note = "no LSTM in this model"
        if recurrence in ("simple", "gated"):
            note += f"; its {recurrence} recurrence is bounded by construction (no projection needed)"
        return {"applies": False, "note": note}
    rows = []
    for module_name, lstm in lstms:
        for name, weight in lstm.named_parameters():
            if not name.startswith("weight_hh"):
                continue
            layer = int(name.split("_l")[1].split("_")[0])
            direction = "backward" if name.endswith("_reverse") else "forward"
            for gate, block in zip(GATES, weight.chunk(4, dim=0)):
                rows.append({"module": module_name, "layer": layer, "direction": direction, "gate": gate,
                             "spectral_norm": float(torch.linalg.matrix_norm(block.double(), ord=2))})
    largest = max(r["spectral_norm"] for r in rows)
    by_gate = {g: max(r["spectral_norm"] for r in rows if r["gate"] == g) for g in GATES}
    return {
        "applies": True,
        "rows": rows,
        "max_by_gate": by_gate,
        "max": largest,
        "projection_bound": bound,
        "projection_configured": bound is not None,
        # Within float rounding of the bound: the projection ran after the last optimizer step.
        "projection_holds": (largest <= bound * (1 + 1e-4)) if bound is not None else None,
        "all_below_one": largest < 1.0,
    }


# ----------------------------------------------------------------------------------------------------------
# The probe
# ----------------------------------------------------------------------------------------------------------
def probe_memory(
    args: MemoryArgs, *, loaded: LoadedModel | None = None, progress: Callable[[str], None] | None = None
) -> MemoryResult:
    args.check()
    say = progress or (lambda message: None)
    started = time.perf_counter()
    if loaded is None:
        loaded = load_model(args.model, need_mlm_head=False, tokenizer_name=args.tokenizer_name, device=args.device,
                            trust_remote_code=args.trust_remote_code)
    tokenizer = loaded.tokenizer
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UsageError(f"the tokenizer of {loaded.path} has no [CLS]/[SEP] tokens; the memory probe packs BERT-style blocks.")
    length = min(args.max_seq_length, getattr(loaded.config, "max_position_embeddings", args.max_seq_length))
    if length != args.max_seq_length:
        say(f"--max_seq_length {args.max_seq_length} exceeds the model's {length} positions; using {length}")
        args.max_seq_length = length
    say("building the held-out blocks")
    vocab = getattr(loaded.config, "vocab_size", len(tokenizer))
    ids, masked, labels, data_info = held_out_blocks(args, tokenizer, vocab)
    summary: dict[str, Any] = {
        "model": loaded.path,
        "model_type": loaded.model_type,
        "encoder_type": getattr(loaded.config, "encoder_type", "transformer" if loaded.model_type == "bert" else None),
        "has_mlm_head": loaded.has_mlm_head,
        "data": data_info,
        "max_seq_length": args.max_seq_length,
    }
    if loaded.has_mlm_head:
        say(f"windowed MLM loss on {data_info['blocks']} blocks")
        summary["windowed_loss"] = windowed_loss(loaded, masked, labels, args.windows, args.tolerance, args.batch_size)
    else:
        summary["windowed_loss"] = None
        summary["windowed_loss_note"] = (
            f"not measured: {loaded.path} has no trained masked-LM head (missing "
            f"{', '.join(loaded.missing_keys[:2])}...), so it has no MLM loss; the hidden-state parts apply."
        )
    prefix = args.prefix_tokens or (args.max_seq_length - 2) // 2
    say(f"prefix-change decay ({args.prefix_mode}, {prefix} tokens)")
    summary["prefix_decay"] = prefix_decay(loaded, ids, prefix, args.prefix_mode, args.batch_size)
    summary["lstm_norms"] = lstm_recurrent_norms(loaded.model)
    summary["seconds"] = time.perf_counter() - started
    result = MemoryResult(summary=summary, files={})
    if args.output_dir:
        paths = write_result(args.output_dir, "memory", summary, result.markdown())
        png = plot_memory(summary, Path(args.output_dir) / "memory.png")
        if png is not None:
            paths["png"] = png
        result.files = {k: str(v) for k, v in paths.items()}
    return result


def memory_markdown(summary: dict) -> str:
    lines = [f"# Memory: `{summary['model']}`\n",
             f"{summary['data']['blocks']} held-out blocks of {summary['max_seq_length']} tokens from {summary['data']['source']}.\n"]
    windowed = summary.get("windowed_loss")
    if windowed:
        lines.append("## Held-out MLM loss with the context cut into windows\n")
        lines.append(markdown_table(
            ["window (tokens)", "loss", "vs whole block", "MLM accuracy"],
            [[("whole block (" + str(r["window"]) + ")") if r["full"] else r["window"], fmt(r["loss"]),
              f"{r['relative_to_full']:+.1%}", fmt(r["accuracy"])] for r in windowed["rows"]],
        ))
        lines.append(f"Smallest window within {windowed['tolerance']:.0%} of the whole block's loss: "
                     f"**{windowed['smallest_window_within_tolerance']} tokens** "
                     f"({windowed['rows'][-1]['masked_tokens']} masked tokens, the same for every window).\n")
    else:
        lines.append(f"Windowed MLM loss: {summary.get('windowed_loss_note')}\n")
    decay = summary["prefix_decay"]
    lines.append(f"## Effect of changing the first {decay['prefix_tokens']} tokens ({decay['mode']}) on the last layer\n")
    picks = [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= len(decay["distances"])]
    lines.append(markdown_table(["distance after the cut", *map(str, picks)],
                                [["mean relative change", *[fmt(decay["last_layer"][d - 1]) for d in picks]]]))
    half = (f"halves by distance {decay['half_distance']}" if decay["half_distance"] else "never halves in the block")
    below = (f"is below 1% from distance {decay['distance_below_1_percent']} on" if decay["distance_below_1_percent"]
             else f"never falls below 1% ({decay['effect_at_end']:.3f} at the block's end)")
    lines.append(f"The change at distance 1 {half} and {below}.\n")
    norms = summary["lstm_norms"]
    lines.append("## LSTM recurrent spectral norms\n")
    if norms["applies"]:
        lines.append(markdown_table(["layer", "direction", *GATES], [
            [layer, direction, *[fmt(next(r["spectral_norm"] for r in norms["rows"] if r["layer"] == layer
                                          and r["direction"] == direction and r["gate"] == g)) for g in GATES]]
            for layer, direction in sorted({(r["layer"], r["direction"]) for r in norms["rows"]})
        ]))
        if norms["projection_configured"]:
            state = "holds" if norms["projection_holds"] else "does NOT hold (the projection did not run after the last step)"
            lines.append(f"Stability projection configured (lstm_max_singular_value = {norms['projection_bound']}): {state}; "
                         f"largest gate norm {norms['max']:.3f}.\n")
        else:
            lines.append(f"No stability projection configured (lstm_max_singular_value unset); largest gate norm "
                         f"{norms['max']:.3f}.\n")
    else:
        lines.append(norms["note"] + ".\n")
    lines.append(f"Time: {summary['seconds']:.1f} s.\n")
    return "\n".join(lines)


def plot_memory(summary: dict, path: str | os.PathLike) -> Path | None:
    plt = pyplot()
    windowed = summary.get("windowed_loss")
    panels = 2 if windowed else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), constrained_layout=True, squeeze=False)
    axes = list(axes[0])
    if windowed:
        ax = axes.pop(0)
        rows = windowed["rows"]
        ax.plot([r["window"] for r in rows], [r["loss"] for r in rows], "o-")
        full = windowed["full_context_loss"]
        ax.axhline(full, color="gray", linestyle="--", linewidth=1, label="whole block")
        ax.axhline(full * (1 + windowed["tolerance"]), color="gray", linestyle=":", linewidth=1,
                   label=f"+{windowed['tolerance']:.0%}")
        ax.set(xscale="log", xlabel="window w (tokens)", ylabel="held-out MLM loss", title="loss with windowed context")
        ax.set_xticks([r["window"] for r in rows], [str(r["window"]) for r in rows])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[0]
    decay = summary["prefix_decay"]
    for k, curve in enumerate(decay["layers"][1:], start=1):
        last = k == len(decay["layers"]) - 1
        ax.plot(decay["distances"], np.maximum(curve, 1e-8), linewidth=2 if last else 0.8,
                label=f"layer {k}" + (" (last)" if last else ""))
    ax.set(yscale="log", xlabel="distance after the changed prefix (tokens)", ylabel="mean relative change of the states",
           title=f"prefix {decay['mode']}d ({decay['prefix_tokens']} tokens)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(f"memory: {Path(summary['model']).name}", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["MemoryArgs", "MemoryResult", "GATES", "held_out_blocks", "lstm_recurrent_norms", "prefix_decay",
           "probe_memory", "window_sequences", "windowed_loss"]
