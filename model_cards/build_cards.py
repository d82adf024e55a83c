#!/usr/bin/env python3
"""Write model_cards/: the card template and one card per encoder variant, from recurrent_mlm.model_card.

    python model_cards/build_cards.py          # rewrite the cards
    python model_cards/build_cards.py --check  # exit 1 if a card is out of date (the tests run this check)

Every card comes from the template the training scripts also use, so the per-variant cards and the cards
of trained models say the same things the same way. Each architecture table is for the BERT-base size
(`preset_config("base", variant)`), at which every variant has BERT-base's parameter count. No card reports
results: none are published yet, and the cards say so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # the checkout's package, when run from a clone

from recurrent_mlm.model_card import CARD_TEMPLATE, render_card  # noqa: E402
from recurrent_mlm.presets import preset_config  # noqa: E402
from recurrent_mlm.variants import VARIANTS  # noqa: E402

SIZE = "base"


def variant_config(variant: str):
    try:
        return preset_config(SIZE, variant), None
    except ValueError as err:
        if "not implemented" not in str(err):
            raise
        # The encoder is not built yet in this version: describe it without the solved width and count.
        return preset_config(SIZE, variant, match_parameters=False), str(err)


def cards() -> dict[str, str]:
    """File name -> content of everything build_cards writes."""
    out = {"template.md": CARD_TEMPLATE}
    for variant in VARIANTS:
        config, missing = variant_config(variant)
        caption = f'At the BERT-base size (`preset_config("{SIZE}", "{variant}")`)'
        caption += (
            ":"
            if missing is None
            else "; the width that matches BERT-base's parameter count is not solved yet because this encoder is not implemented in this version:"
        )
        card = render_card(
            config=config,
            title=f"recurrent-mlm: {VARIANTS[variant].title}",
            architecture_caption=caption,
        )
        out[f"{variant}.md"] = str(card).rstrip("\n") + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="Report out-of-date cards instead of writing them."
    )
    args = parser.parse_args(argv)
    stale = []
    for name, content in cards().items():
        path = HERE / name
        if path.exists() and path.read_text() == content:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(content)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python model_cards/build_cards.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
