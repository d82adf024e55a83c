"""Zero-shot subject-verb agreement of a masked LM (Linzen et al. 2016; Gulordava et al. 2018; Marvin & Linzen
2018; the masked-LM reading of Goldberg 2019).

The verb is replaced by the mask token and the model's log-probabilities of the correct and the wrong form at
that position are compared; one forward pass per distinct input, batched, the vocabulary projection computed
only at the mask. Two inputs per item:

* `prefix` (primary): ``[CLS] w_1 ... w_{t-1} [MASK] [SEP]``, the left context only, the setting of Linzen's
  number prediction and of Abnar et al.;
* `whole`: the sentence with the verb masked, ``[CLS] w_1 ... [MASK] ... w_n [SEP]``.

Only items whose two forms are each a single token of the model's vocabulary (not the unknown token) are
scored; the others are counted (`coverage`). Broken items (the same form twice) are counted and dropped.
NPIs compare the log-probability of `ever` in the licensed context against the intrusive and the
unlicensed ones; they are reported apart and left out of calibration (two contexts give no two-way
distribution) and of the baselines (the target word is the same).

Accuracy comes with a 95% Wilson interval, by number of attractors, per Marvin & Linzen template and
condition, and original vs nonce for Gulordava. ``p = sigmoid(log p(correct) - log p(wrong))`` is the
two-way probability of the correct form; its ECE and Brier score measure calibration. Two baselines use no
syntax: the form more frequent in a corpus (the pretraining text), and the model's own choice with no
context at all (``[CLS] [MASK] [SEP]``). Ties count as errors (as in colorlessgreenRNNs' `correct > wrong`)
and are counted.
"""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import UsageError
from .agreement_data import DATASETS, AgreementItem, AgreementSets, load_agreement_sets
from .common import (
    LoadedModel,
    arg,
    accuracy_summary,
    binary_calibration,
    fmt,
    fmt_accuracy,
    load_model,
    markdown_table,
    masked_log_probs,
    pyplot,
    write_jsonl,
    write_result,
)

MODES = ("prefix", "whole")
DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "data" / "corpus"


@dataclass
class AgreementArgs:
    """Arguments of `score_agreement` (and of `python -m recurrent_mlm.probes agreement`)."""

    model: str = arg(help="Checkpoint folder (ours or a transformers BERT-family MLM) or Hub id.")
    output_dir: str | None = arg(help="Where agreement.json/.md/.png and agreement_items.jsonl go (none: nothing written).")
    linzen: str | None = arg(help="Linzen et al.'s subj_agr_filtered.gold (with its .text) or their folder.")
    gulordava: str | None = arg(help="Gulordava et al.'s English generated.tab or its folder.")
    marvin_linzen: str | None = arg(help="Marvin & Linzen pairs TSV (.tsv or .tsv.gz) or its folder.")
    data_dir: str | None = arg(help="Find any of the three sets below this folder by their file names. With no set "
                                    "given: the bundled sample data/agreement_demo (Marvin & Linzen, MIT).")
    modes: list[str] = arg(list(MODES), help="Inputs: 'prefix' (words before the verb) and/or 'whole' (the sentence).")
    corpus: list[str] | None = arg([str(DEFAULT_CORPUS)], help="Text whose word counts give the frequency baseline "
                                   "(files/folders, e.g. the pretraining corpus); 'none' turns the baseline off.")
    max_pairs_per_condition: int | None = arg(help="Score at most N Marvin & Linzen pairs per template x condition "
                                                   "(a fixed random choice, the same for every model).")
    batch_size: int = arg(128, help="Inputs per forward pass.")
    max_seq_length: int = arg(128, help="Longest input in tokens; longer contexts are cut around the verb and counted.")
    tokenizer_name: str | None = arg(help="Tokenizer folder or Hub id, if the model folder has none.")
    device: str | None = arg(help="cpu, cuda, ... (default: a GPU when there is one).")
    trust_remote_code: bool = arg(False, help="Allow model code from the checkpoint.")
    n_bins: int = arg(15, help="Confidence bins of the expected calibration error.")

    def check(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise UsageError(f"--modes {' '.join(self.modes)}: choose from {', '.join(MODES)}.")
        if self.batch_size < 1 or self.max_seq_length < 4:
            raise UsageError("--batch_size must be >= 1 and --max_seq_length >= 4.")
        if self.max_pairs_per_condition is not None and self.max_pairs_per_condition < 1:
            raise UsageError("--max_pairs_per_condition must be >= 1.")


@dataclass
class AgreementResult:
    """`summary`: the numbers (JSON-ready); `items`: one record per scored item and mode (what paired
    statistics need); `files`: what was written."""

    summary: dict[str, Any]
    items: list[dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        return agreement_markdown(self.summary)


# ----------------------------------------------------------------------------------------------------------
# Corpus frequencies (baseline)
# ----------------------------------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@functools.lru_cache(maxsize=8)
def corpus_word_counts(paths: tuple[str, ...], lowercase: bool) -> Counter:
    """Word counts of the text under `paths` (files or folders, read as the pretraining script reads them).
    Cached: a study scores many models against the same corpus."""
    from ..pretraining.readers import file_records, resolve_data_files

    counts: Counter = Counter()
    for path in resolve_data_files(paths, "--corpus"):
        for record in file_records(path):
            text = record["text"].lower() if lowercase else record["text"]
            counts.update(_WORD.findall(text))
    return counts


def _lowercases(tokenizer) -> bool:
    if getattr(tokenizer, "do_lower_case", None) is not None:
        return bool(tokenizer.do_lower_case)
    return tokenizer("Is", add_special_tokens=False)["input_ids"] == tokenizer("is", add_special_tokens=False)["input_ids"]


# ----------------------------------------------------------------------------------------------------------
# Inputs and forward passes
# ----------------------------------------------------------------------------------------------------------
def form_token_ids(tokenizer, forms: Iterable[str]) -> dict[str, int | None]:
    """Each form's token id when it is one known token of the vocabulary (as a word on its own), else None."""
    forms = sorted(set(forms))
    if not forms:
        return {}
    encoded = tokenizer(forms, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    return {f: (ids[0] if len(ids) == 1 and ids[0] != unk else None) for f, ids in zip(forms, encoded)}


def special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one sequence (`[CLS]`, `[SEP]` for BERT)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise UsageError("cannot tell which special tokens this tokenizer adds around a sentence.")


class _InputBuilder:
    """Token ids of masked inputs, deduplicated: identical inputs (items sharing a prefix) run once."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mask_id = tokenizer.mask_token_id
        self.head, self.tail = special_wrapping(tokenizer)
        self.overhead = len(self.head) + len(self.tail)
        self.rows: list[tuple[int, ...]] = []
        self.positions: list[int] = []
        self.index: dict[tuple[int, ...], int] = {}
        self.truncated = 0

    def _text(self, words: Sequence[str]) -> str:
        unk = self.tokenizer.unk_token or "<unk>"
        return " ".join(unk if w == "<unk>" else w for w in words)

    def add_many(self, contexts: list[tuple[Sequence[str], int, bool]]) -> list[int]:
        """`(words, target, whole)` -> row ids; the word at `target` is replaced by the mask token."""
        lefts = [self._text(w[:t]) for w, t, _ in contexts]
        rights = [self._text(w[t + 1 :]) if whole else "" for w, t, whole in contexts]
        encode = functools.partial(self.tokenizer, add_special_tokens=False, verbose=False)
        left_ids = encode(lefts)["input_ids"] if lefts else []
        right_ids = encode(rights)["input_ids"] if any(rights) else [[] for _ in rights]
        budget = self.max_length - self.overhead - 1
        rows = []
        for left, right in zip(left_ids, right_ids):
            if len(left) + len(right) > budget:
                self.truncated += 1
                keep_left = min(len(left), max(budget // 2, budget - len(right)))
                left, right = left[len(left) - keep_left :], right[: budget - keep_left]
            ids = (*self.head, *left, self.mask_id, *right, *self.tail)
            row = self.index.get(ids)
            if row is None:
                row = self.index[ids] = len(self.rows)
                self.rows.append(ids)
                self.positions.append(ids.index(self.mask_id))
            rows.append(row)
        return rows


@torch.inference_mode()
def _row_log_probs(
    loaded: LoadedModel, rows: list[tuple[int, ...]], positions: list[int], needed: list[set[int]], batch_size: int
) -> list[dict[int, float]]:
    """Log-probabilities of the `needed` token ids at each row's mask position. Rows are batched by exact
    length where a length has enough rows (no padding: the recurrences then need no reordering), and the rest
    by similar length."""
    model, device = loaded.model, loaded.device
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    out: list[dict[int, float]] = [{} for _ in rows]
    by_length: dict[int, list[int]] = {}
    for r in range(len(rows)):
        by_length.setdefault(len(rows[r]), []).append(r)
    chunks, leftover = [], []
    for length in sorted(by_length):
        members = by_length[length]
        if len(members) >= max(1, batch_size // 4):
            chunks += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
        else:
            leftover += members
    chunks += [leftover[i : i + batch_size] for i in range(0, len(leftover), batch_size)]
    for chunk in chunks:
        length = max(len(rows[r]) for r in chunk)
        ids = torch.full((len(chunk), length), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), length), dtype=torch.long)
        for i, r in enumerate(chunk):
            ids[i, : len(rows[r])] = torch.tensor(rows[r])
            mask[i, : len(rows[r])] = 1
        where = torch.tensor([positions[r] for r in chunk])
        lp = masked_log_probs(model, ids.to(device), mask.to(device), where.to(device))  # (batch, vocab)
        wanted = [sorted(needed[r]) for r in chunk]
        width = max(len(w) for w in wanted)
        index = torch.tensor([w + [w[0]] * (width - len(w)) for w in wanted], device=device)
        values = lp.gather(1, index).cpu().numpy()
        for i, r in enumerate(chunk):
            out[r] = dict(zip(wanted[i], values[i, : len(wanted[i])].tolist()))
    return out


# ----------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def score_agreement(
    args: AgreementArgs,
    *,
    loaded: LoadedModel | None = None,
    sets: AgreementSets | None = None,
    progress: Callable[[str], None] | None = None,
) -> AgreementResult:
    """Score `args.model` (or an already `loaded` one) on the agreement sets (or pre-read `sets`)."""
    args.check()
    started = time.perf_counter()
    say = progress or (lambda message: None)
    if loaded is None:
        loaded = load_model(
            args.model,
            need_mlm_head=True,
            tokenizer_name=args.tokenizer_name,
            device=args.device,
            trust_remote_code=args.trust_remote_code,
            probe="the zero-shot agreement probe",
        )
    elif not loaded.has_mlm_head:
        raise UsageError(f"{loaded.path} has no trained masked-LM head; the zero-shot agreement probe cannot score it.")
    if sets is None:
        sets = load_agreement_sets(
            linzen=args.linzen,
            gulordava=args.gulordava,
            marvin_linzen=args.marvin_linzen,
            data_dir=args.data_dir,
            max_pairs_per_condition=args.max_pairs_per_condition,
        )
    tokenizer = loaded.tokenizer
    items = [item for name in DATASETS for item in sets.items.get(name, [])]
    ids = form_token_ids(tokenizer, [f for item in items for f in (item.correct, item.wrong)])
    covered = [i for i, item in enumerate(items) if not item.broken and ids[item.correct] is not None and ids[item.wrong] is not None]

    # Baselines without syntax, on the same items (not NPIs: their target word is the same on both sides).
    builder = _InputBuilder(tokenizer, loaded.max_length(args.max_seq_length))
    (empty_row,) = builder.add_many([((), 0, False)])
    counts = None
    lowercase = _lowercases(tokenizer)
    normalise = str.lower if lowercase else str
    if args.corpus:
        paths = tuple(str(p) for p in args.corpus)
        say(f"counting words in {', '.join(paths)}")
        counts = corpus_word_counts(paths, lowercase)

    rows_of: dict[str, list[tuple[int, int | None]]] = {}
    for mode in args.modes:
        contexts, owners = [], []
        for i in covered:
            item = items[i]
            contexts.append((item.words, item.target, mode == "whole"))
            owners.append((i, 0))
            if item.contrast is not None:
                contexts.append((item.contrast, item.target, mode == "whole"))
                owners.append((i, 1))
        rows = builder.add_many(contexts)
        pairs: dict[int, list] = {}
        for (i, side), row in zip(owners, rows):
            pairs.setdefault(i, [None, None])[side] = row
        rows_of[mode] = [tuple(pairs[i]) for i in covered]
    truncated = builder.truncated
    needed: list[set[int]] = [set() for _ in builder.rows]
    form_ids = {ids[item.correct] for item in items if ids[item.correct] is not None} | {
        ids[item.wrong] for item in items if ids[item.wrong] is not None
    }
    needed[empty_row] |= form_ids or {0}
    for mode in args.modes:
        for i, (row, other) in zip(covered, rows_of[mode]):
            item = items[i]
            needed[row] |= {ids[item.correct], ids[item.wrong]}
            if other is not None:
                needed[other].add(ids[item.correct])
    say(f"{len(covered)} items covered; {len(builder.rows)} distinct inputs to score")
    log_probs = _row_log_probs(loaded, builder.rows, builder.positions, needed, args.batch_size)
    no_context = log_probs[empty_row]

    records: list[dict[str, Any]] = []
    for mode in args.modes:
        for i, (row, other) in zip(covered, rows_of[mode]):
            item = items[i]
            c, w = ids[item.correct], ids[item.wrong]
            if other is None:
                lp_c, lp_w = log_probs[row][c], log_probs[row][w]
            else:
                lp_c, lp_w = log_probs[row][c], log_probs[other][c]
            record = {
                "mode": mode,
                "key": item.key,
                "dataset": item.dataset,
                "index": item.index,
                "category": item.category,
                "group": item.group,
                "condition": item.condition,
                "attractors": item.attractors,
                "nonce": item.nonce,
                "number": item.number,
                "correct_form": item.correct,
                "wrong_form": item.wrong,
                "logp_correct": lp_c,
                "logp_wrong": lp_w,
                "correct": bool(lp_c > lp_w),
                "tie": bool(lp_c == lp_w),
            }
            if other is None:
                record["p_correct"] = _sigmoid(lp_c - lp_w)
                record["no_context_correct"] = bool(no_context[c] > no_context[w])
                if counts is not None:
                    n_c, n_w = counts.get(normalise(item.correct), 0), counts.get(normalise(item.wrong), 0)
                    record["corpus_count_correct"], record["corpus_count_wrong"] = n_c, n_w
                    record["frequency_correct"] = bool(n_c > n_w)
            records.append(record)

    summary = {
        "model": loaded.path,
        "model_type": loaded.model_type,
        "modes": list(args.modes),
        "sources": sets.sources,
        "corpus": list(args.corpus) if args.corpus else None,
        "max_seq_length": builder.max_length,
        "max_pairs_per_condition": args.max_pairs_per_condition,
        "truncated_inputs": truncated,
        "distinct_inputs": len(builder.rows),
        "datasets": _summarise(items, covered, records, sets, args),
        "seconds": time.perf_counter() - started,
    }
    result = AgreementResult(summary=summary, items=records)
    if args.output_dir:
        result.files = write_agreement_outputs(result, args.output_dir)
    return result


def _group_accuracy(records: list[dict], key: Callable[[dict], Any]) -> dict[str, Any]:
    groups: dict[Any, list[bool]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r["correct"])
    return {str(k): accuracy_summary(v) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _block(records: list[dict], n_bins: int) -> dict[str, Any]:
    """Accuracy, ties, calibration and baselines of a set of records (one mode)."""
    out = accuracy_summary([r["correct"] for r in records])
    out["ties"] = sum(r["tie"] for r in records)
    two_way = [r["p_correct"] for r in records if "p_correct" in r]
    if two_way:
        out.update(binary_calibration(two_way, n_bins=n_bins))
    same_context = [r for r in records if "no_context_correct" in r]
    if same_context:
        out["baseline_no_context"] = accuracy_summary([r["no_context_correct"] for r in same_context])
        if "frequency_correct" in same_context[0]:
            base = accuracy_summary([r["frequency_correct"] for r in same_context])
            base["ties"] = sum(r["corpus_count_correct"] == r["corpus_count_wrong"] for r in same_context)
            out["baseline_frequency"] = base
    return out


def _summarise(items: list[AgreementItem], covered: list[int], records: list[dict], sets: AgreementSets, args) -> dict:
    by_dataset: dict[str, Any] = {}
    covered_set = set(covered)
    for name in DATASETS:
        if name not in sets.items:
            continue
        members = [i for i, item in enumerate(items) if item.dataset == name]
        broken = sum(items[i].broken for i in members)
        n_covered = sum(i in covered_set for i in members)
        info: dict[str, Any] = {
            "items": len(members),
            "broken": broken,
            "not_single_token": len(members) - broken - n_covered,
            "covered": n_covered,
            "coverage": n_covered / (len(members) - broken) if len(members) > broken else math.nan,
            "unscorable_pairs": sets.unscorable.get(name, 0),
            "modes": {},
        }
        categories_here = sorted({items[i].category for i in members})
        if len(categories_here) > 1:
            info["coverage_by_category"] = {}
            for c in categories_here:
                mine = [i for i in members if items[i].category == c and not items[i].broken]
                info["coverage_by_category"][c] = sum(i in covered_set for i in mine) / len(mine) if mine else math.nan
        for mode in args.modes:
            mine = [r for r in records if r["dataset"] == name and r["mode"] == mode]
            block: dict[str, Any] = {"overall": _block(mine, args.n_bins)}
            categories = sorted({r["category"] for r in mine})
            if name == "marvin_linzen" or len(categories) > 1:
                block["by_category"] = {c: _block([r for r in mine if r["category"] == c], args.n_bins) for c in categories}
            if any(r["attractors"] is not None for r in mine):
                block["by_attractors"] = _group_accuracy(mine, lambda r: r["attractors"])
            if any(r["nonce"] is not None for r in mine):
                block["by_type"] = _group_accuracy(mine, lambda r: "nonce" if r["nonce"] else "original")
            if any(r["group"] is not None for r in mine):
                block["by_group"] = _group_accuracy(mine, lambda r: r["group"])
            if any(r["condition"] is not None for r in mine):
                block["by_condition"] = _group_accuracy(mine, lambda r: f"{r['group']}/{r['condition']}")
            if any(r["number"] is not None for r in mine):
                block["by_number"] = _group_accuracy(mine, lambda r: r["number"])
            info["modes"][mode] = block
        by_dataset[name] = info
    return by_dataset


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------
def _rows_of_sets(summary: dict) -> list[tuple[str, str, dict, dict]]:
    """(label, dataset, dataset info, per-mode blocks) for the headline rows: Linzen, Gulordava and one row per
    Marvin & Linzen category."""
    rows = []
    for name, info in summary["datasets"].items():
        modes = info["modes"]
        if name == "marvin_linzen":
            categories = sorted({c for block in modes.values() for c in block.get("by_category", {})},
                                key=["agreement", "reflexive", "npi"].index)
            for c in categories:
                rows.append((f"marvin_linzen {c}", name, info, {m: b["by_category"].get(c) for m, b in modes.items()}))
        else:
            rows.append((name, name, info, {m: b["overall"] for m, b in modes.items()}))
    return rows


def agreement_markdown(summary: dict) -> str:
    modes = summary["modes"]
    lines = [f"# Zero-shot agreement: `{summary['model']}`\n"]
    headers = ["set", "items", "broken", "coverage"]
    for m in modes:
        headers += [f"{m} accuracy [95% CI]", f"{m} ECE", f"{m} Brier"]
    headers += ["frequency baseline", "no-context baseline"]
    table = []
    for label, _, info, blocks in _rows_of_sets(summary):
        coverage = info.get("coverage_by_category", {}).get(label.split(" ")[-1], info["coverage"])
        row = [label, blocks[modes[0]]["n"] if blocks[modes[0]] else 0, info["broken"], fmt(coverage)]
        for m in modes:
            b = blocks[m] or {}
            row += [fmt_accuracy(b), fmt(b.get("ece")), fmt(b.get("brier"))]
        first = blocks[modes[0]] or {}
        row += [fmt_accuracy(first.get("baseline_frequency")), fmt_accuracy(first.get("baseline_no_context"))]
        table.append(row)
    lines.append(markdown_table(headers, table))
    lines.append(
        "`items`: scored items (both forms single known tokens; `coverage` is their share of the non-broken "
        "items). Marvin & Linzen rows count pairs; NPI rows compare `ever` across contexts (no two-way "
        "calibration or baselines).\n"
    )
    attractor_rows = []
    for name, info in summary["datasets"].items():
        for m in modes:
            by = info["modes"][m].get("by_attractors")
            if by:
                attractor_rows.append((name, m, by))
    if attractor_rows:
        keys = sorted({int(k) for _, _, by in attractor_rows for k in by})
        lines.append("## Accuracy by number of attractors\n")
        lines.append(markdown_table(["set", "mode", *[str(k) for k in keys]],
                                    [[n, m, *[fmt_accuracy(by.get(str(k))) for k in keys]] for n, m, by in attractor_rows]))
    gul = summary["datasets"].get("gulordava")
    if gul:
        lines.append("## Gulordava et al.: original vs nonce sentences\n")
        lines.append(markdown_table(["mode", "original", "nonce"], [
            [m, fmt_accuracy(gul["modes"][m]["by_type"].get("original")), fmt_accuracy(gul["modes"][m]["by_type"].get("nonce"))]
            for m in modes
        ]))
    ml = summary["datasets"].get("marvin_linzen")
    if ml:
        lines.append("## Marvin & Linzen: accuracy per template\n")
        templates = sorted(ml["modes"][modes[0]].get("by_group", {}))
        lines.append(markdown_table(["template", "pairs", *modes], [
            [t, ml["modes"][modes[0]]["by_group"][t]["n"], *[fmt_accuracy(ml["modes"][m]["by_group"].get(t)) for m in modes]]
            for t in templates
        ]))
    lines.append(
        f"Inputs truncated to {summary['max_seq_length']} tokens: {summary['truncated_inputs']}. "
        f"Distinct inputs scored: {summary['distinct_inputs']}. Time: {summary['seconds']:.1f} s.\n"
    )
    return "\n".join(lines)


def plot_agreement(summary: dict, path: str | os.PathLike) -> Path | None:
    """Accuracy against the number of attractors (Linzen, Gulordava) and per Marvin & Linzen template, with
    95% Wilson intervals; dotted lines: the baselines."""
    plt = pyplot()
    modes = summary["modes"]
    datasets = summary["datasets"]
    panels = [n for n in ("linzen", "gulordava") if n in datasets] + (["marvin_linzen"] if "marvin_linzen" in datasets else [])
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), constrained_layout=True, squeeze=False)
    for ax, name in zip(axes[0], panels):
        info = datasets[name]
        if name == "marvin_linzen":
            templates = sorted(info["modes"][modes[0]].get("by_group", {}))
            x = np.arange(len(templates))
            width = 0.8 / len(modes)
            for k, m in enumerate(modes):
                by = info["modes"][m].get("by_group", {})
                acc = np.array([by[t]["accuracy"] for t in templates])
                err = np.array([[by[t]["accuracy"] - by[t]["ci_low"], by[t]["ci_high"] - by[t]["accuracy"]] for t in templates]).T
                ax.bar(x + (k - (len(modes) - 1) / 2) * width, acc, width, yerr=err if len(templates) else None, label=m, capsize=2)
            ax.set_xticks(x, templates, rotation=75, ha="right", fontsize=7)
            ax.set(ylabel="accuracy", title="Marvin & Linzen templates", ylim=(0, 1.02))
        else:
            for m in modes:
                by = info["modes"][m].get("by_attractors", {})
                keys = sorted(by, key=int)
                if not keys:
                    continue
                acc = [by[k]["accuracy"] for k in keys]
                err = np.array([[by[k]["accuracy"] - by[k]["ci_low"], by[k]["ci_high"] - by[k]["accuracy"]] for k in keys]).T
                ax.errorbar([int(k) for k in keys], acc, yerr=err, marker="o", capsize=3, label=m)
            first = info["modes"][modes[0]]["overall"]
            for key, style, label in (("baseline_frequency", ":", "frequency"), ("baseline_no_context", "--", "no context")):
                if first.get(key) and first[key]["n"]:
                    ax.axhline(first[key]["accuracy"], linestyle=style, color="gray", linewidth=1, label=f"{label} baseline")
            ax.set(xlabel="attractors", ylabel="accuracy", title=name.capitalize(), ylim=(0, 1.02))
        ax.axhline(0.5, color="black", linewidth=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"zero-shot agreement: {Path(summary['model']).name}", fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_agreement_outputs(result: AgreementResult, output_dir: str | os.PathLike) -> dict[str, str]:
    paths = write_result(output_dir, "agreement", result.summary, result.markdown())
    paths["items"] = write_jsonl(Path(output_dir) / "agreement_items.jsonl", result.items)
    png = plot_agreement(result.summary, Path(output_dir) / "agreement.png")
    if png is not None:
        paths["png"] = png
    return {k: str(v) for k, v in paths.items()}


__all__ = ["AgreementArgs", "AgreementResult", "MODES", "corpus_word_counts", "form_token_ids", "score_agreement",
           "agreement_markdown", "plot_agreement", "write_agreement_outputs"]
