"""`python -m recurrent_mlm.study {lei,stability,agreement,recall,stable-lstm,all} --tier cpu --output_dir DIR`

Re-tests the papers' claims at a size tier; each claim's plan is written before its runs, every stage is
resumable (run the same command again after an interruption), and the summaries update docs/RESULTS.md with
`--results_doc`. See docs/RESULTS.md and docs/statistics.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..cli import DataclassArgumentParser, UsageError, arg, portable_path, quote_command, run_cli
from .tiers import TIERS

CLAIM_GROUPS = {
    "lei": ("L1", "L2"),
    "stability": ("L2",),
    "agreement": ("A1", "A2", "A3"),
    "recall": ("W1", "W3"),
    "stable-lstm": ("M1", "M2"),
}


@dataclass
class StudyArguments:
    """Re-test the claims of Lei et al. 2022, Abnar et al. 2020, Wen et al. 2024 and Miller & Hardt 2019."""

    claims: list[str] = arg(["all"], "Claim groups: lei (L1, L2), stability (L2), agreement (A1-A3), recall (W1, W3), stable-lstm (M1, M2), or all.", flags=("claims",), nargs="*", metavar="CLAIMS")
    tier: str = arg("cpu", "Size tier: smoke (tests, seconds), demo (~13 min), cpu (about an hour of 2 cores), gpu (one accelerator).", choices=list(TIERS))
    output_dir: str = arg("outputs/study", "The study folder (resumable: run the same command again to continue).")
    glue_dir: str | None = arg(None, "GLUE tasks in the official layout (e.g. ../shared/data/glue); default: the bundled SST-2 sample.")
    agreement_dir: str | None = arg(None, "Subject-verb agreement sets (Linzen, Gulordava, Marvin & Linzen) in their official layouts; CC BY-NC sets are read from here, never copied.")
    corpus: list[str] | None = arg(None, "Pretraining text (files or folders); default: data/corpus.")
    results_doc: str | None = arg(None, "Update this RESULTS.md between its markers with every finished claim of the study folder.")
    verbose: bool = arg(False, "Show every run's progress bars and logs.")


def run_study(args: StudyArguments, command: str) -> list[Path]:
    from .report import update_results_doc
    from .stages import DEFAULT_CORPUS, StudyContext
    from .tiers import get_tier

    groups = list(CLAIM_GROUPS) if not args.claims or "all" in args.claims else args.claims
    unknown = [g for g in groups if g not in CLAIM_GROUPS]
    if unknown:
        raise UsageError(f"unknown claim group {unknown[0]!r}; choose from {', '.join(CLAIM_GROUPS)} or all.")
    ctx = StudyContext(
        output_dir=Path(args.output_dir),
        tier=get_tier(args.tier),
        corpus=list(args.corpus or [str(DEFAULT_CORPUS)]),
        glue_dir=args.glue_dir,
        agreement_dir=args.agreement_dir,
        quiet=not args.verbose,
    )
    ctx.check_or_record()
    done: list[Path] = []
    for group in dict.fromkeys("lei" if g == "stability" else g for g in groups):
        runner = _runner(group)
        ctx.log(f"claims {', '.join(CLAIM_GROUPS[group])}")
        done += runner(ctx, command)
    if args.results_doc:
        folders = sorted({p for p in (ctx.output_dir / "claims").glob("*") if (p / "summary.json").exists()})
        changed = update_results_doc(args.results_doc, folders)
        ctx.log(f"{args.results_doc} {'updated' if changed else 'unchanged'}")
    for folder in done:
        ctx.log(f"{folder.name}: {folder / 'report.md'}")
    return done


def _runner(group: str):
    if group == "lei":
        from .lei import run_lei

        return run_lei
    if group == "agreement":
        from .abnar import run_abnar

        return run_abnar
    if group == "recall":
        from .wen import run_wen

        return run_wen
    if group == "stable-lstm":
        from .miller import run_miller

        return run_miller
    raise KeyError(group)


@run_cli
def main(argv: list[str] | None = None) -> int:
    import logging

    raw = list(sys.argv[1:] if argv is None else argv)
    parser = DataclassArgumentParser(StudyArguments, prog="python -m recurrent_mlm.study", description=StudyArguments.__doc__)
    args = parser.parse(raw)
    if not args.verbose:
        logging.getLogger("recurrent_mlm").setLevel(logging.WARNING)
    run_study(args, "python -m recurrent_mlm.study " + quote_command(portable_path(a) for a in raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
