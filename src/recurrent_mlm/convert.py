"""Convert a transformers BERT checkpoint into a recurrent-mlm model (exactly, or upcycled with recurrence).

    recurrent-mlm-convert-bert --bert google-bert/bert-base-uncased --output_dir bert-base-rmlm
    recurrent-mlm-convert-bert --bert ./my-bert --output_dir my-bert-recurrent --recurrence simple

With no `--recurrence` the converted model computes what the BERT checkpoint computes. With `simple` or
`gated`, embeddings, attention, LayerNorms, pooler and MLM head transform are reused and the recurrent
sublayers that replace the feed-forward sublayers start fresh (they need pretraining). The tokenizer is
copied alongside, so the output folder is ready for `run_pretraining.py`/`run_glue.py`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli import UsageError, check_output_dir, run_cli

HEADS = {
    "base": "RecurrentMLMModel",
    "mlm": "RecurrentMLMForMaskedLM",
    "sequence-classification": "RecurrentMLMForSequenceClassification",
    "token-classification": "RecurrentMLMForTokenClassification",
    "question-answering": "RecurrentMLMForQuestionAnswering",
    "multiple-choice": "RecurrentMLMForMultipleChoice",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bert", required=True, help="BERT checkpoint: a local folder or a Hub model id.")
    parser.add_argument("--output_dir", required=True, help="Where to write the converted model and tokenizer.")
    parser.add_argument(
        "--recurrence",
        choices=["none", "simple", "gated"],
        default="none",
        help="'none' converts exactly; 'simple'/'gated' upcycle: FFN sublayers are replaced by fresh recurrences.",
    )
    parser.add_argument(
        "--recurrence_layers",
        type=int,
        nargs="+",
        default=None,
        help="Only replace the feed-forward sublayer of these layers (default: all).",
    )
    parser.add_argument("--head", choices=sorted(HEADS), default="mlm", help="Which model class to write.")
    parser.add_argument("--num_labels", type=int, default=None, help="Number of labels for classification heads.")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of --bert.")
    parser.add_argument(
        "--ignore_mismatched_sizes",
        action="store_true",
        help="Initialise afresh the BERT tensors whose shapes differ from the converted model's (e.g. a classifier "
        "with another --num_labels); without it such a conversion is refused, listing them.",
    )
    parser.add_argument("--overwrite_output_dir", action="store_true", help="Replace an existing output folder.")
    args = parser.parse_args(argv)
    if args.num_labels is not None and args.num_labels < 1:
        parser.error("--num_labels must be >= 1")
    return args


@run_cli
def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    output_dir = check_output_dir(args.output_dir, args.overwrite_output_dir)
    import recurrent_mlm
    from transformers import AutoTokenizer, BertConfig

    source = args.bert
    looks_local = source.startswith((".", "~")) or Path(source).is_absolute() or source.count("/") > 1
    if looks_local and not Path(source).expanduser().is_dir():
        raise UsageError(f"--bert {source}: no such folder; give a BERT checkpoint folder or a Hub model id.")
    try:
        BertConfig.from_pretrained(source, revision=args.revision)
    except (OSError, ValueError) as err:
        raise UsageError(f"--bert {source}: cannot read a BERT config there ({str(err).splitlines()[0]})") from err
    overrides = {}
    if args.recurrence_layers is not None:
        overrides["recurrence_layers"] = args.recurrence_layers
    if args.num_labels is not None:
        overrides["num_labels"] = args.num_labels
    model_class = getattr(recurrent_mlm, HEADS[args.head])
    recurrence = None if args.recurrence == "none" else args.recurrence
    if args.revision is not None:
        from huggingface_hub import snapshot_download

        source = snapshot_download(args.bert, revision=args.revision)
    try:
        model = model_class.from_bert(
            source, recurrence=recurrence, ignore_mismatched_sizes=args.ignore_mismatched_sizes, **overrides
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    model.save_pretrained(output_dir)
    try:
        AutoTokenizer.from_pretrained(source).save_pretrained(output_dir)
    except (OSError, ValueError):
        print(f"note: no tokenizer found at {source}; only the model was written.")
    (output_dir / "conversion.json").write_text(
        json.dumps({"source": args.bert, "revision": args.revision, "recurrence": recurrence, "head": args.head}, indent=2)
        + "\n"
    )
    print(f"converted {args.bert} -> {output_dir} ({HEADS[args.head]}, recurrence={recurrence})")
    return output_dir


if __name__ == "__main__":
    main()
