"""Publish a finished study folder into the docs: every claim's summary, report and plots are copied to
`docs/results/<tier>/<claim>/`, and the generated parts of `docs/RESULTS.md` (verdict table, one block per
claim) and of the README (the verdict table) are regenerated from those copies. Text outside the markers is
kept as written. `tests/test_results_doc.py` checks that both documents match the copied summaries.

    python scripts/publish_results.py --study_dir outputs/study-cpu --tier cpu
    python scripts/publish_results.py --demo_dir outputs/demo       # the main job's closing table, into the README
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

COPIED = ("summary.json", "report.md", "*.png")
DEMO_START, DEMO_END = "<!-- demo:comparison:start -->", "<!-- demo:comparison:end -->"
RECALL_START, RECALL_END = "<!-- recall:table:start -->", "<!-- recall:table:end -->"
SPEED_START, SPEED_END = "<!-- speed:training:start -->", "<!-- speed:training:end -->"
SPEED_FILES = {size: ROOT / "benchmarks" / "results" / f"pretraining_throughput_{size}_cpu_1thread_cputime.json" for size in ("tiny", "mini")}
SPEED_MODELS = ("bert", "recurrent_bert", "recurrent_bert (unfused)", "gated_bert", "gated_bert (unfused)")


def speed_table() -> str:
    """The README's training-step table, from the throughput benchmark's result files."""
    import json

    results = {size: {r["model"] + (f" ({r['note']})" if r.get("note") else ""): r for r in json.loads(path.read_text())["results"]}
               for size, path in SPEED_FILES.items()}  # fmt: skip
    lines = ["| model | " + " | ".join(f"{size}: step vs our BERT | {size}: tokens/s vs BertForMaskedLM" for size in results) + " |",
             "|---|" + "---:|---:|" * len(results)]  # fmt: skip
    for model in SPEED_MODELS:
        cells = []
        for size in results:
            r = results[size].get(model)
            cells += [f"{r['step_time_vs_baseline']:.2f}x", f"{r['speed_vs_reference']:.2f}x"] if r else ["n/a", "n/a"]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recall_table(claim_dir: Path) -> str:
    """The README's recall table: the first table of the published W1 summary."""
    from recurrent_mlm.study.report import _table, load_summary

    table = load_summary(claim_dir / "summary.json")["tables"][0]
    return _table(table["columns"], table["rows"])


def publish_recall(readme: Path, claim_dir: Path) -> bool:
    from recurrent_mlm.study.report import update_between

    return update_between(readme, RECALL_START, RECALL_END, recall_table(claim_dir))


def publish_speed(readme: Path) -> bool:
    from recurrent_mlm.study.report import update_between

    return update_between(readme, SPEED_START, SPEED_END, speed_table())


def publish_demo(demo_dir: Path, readme: Path) -> bool:
    """The demo's closing table (comparison.md) to docs/results/demo/ and between the README's demo markers."""
    from recurrent_mlm.files import atomic_write_text
    from recurrent_mlm.study.report import update_between

    text = (demo_dir / "comparison.md").read_text(encoding="utf-8")
    dest = ROOT / "docs" / "results" / "demo"
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "comparison.md", text)
    return update_between(readme, DEMO_START, DEMO_END, text)


def copy_claims(study_dir: Path, dest: Path) -> list[Path]:
    """Each finished claim of `study_dir` (it has a summary.json) into `dest/<claim>/`, replacing an older copy."""
    folders = []
    for claim in sorted((study_dir / "claims").iterdir()):
        if not (claim / "summary.json").exists():
            print(f"{claim.name}: no summary.json yet (not finished); skipped", file=sys.stderr)
            continue
        target = dest / claim.name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for pattern in COPIED:
            for path in claim.glob(pattern):
                shutil.copy2(path, target / path.name)
        folders.append(target)
    return folders


def main(argv: list[str] | None = None) -> int:
    from recurrent_mlm.study.report import update_readme_verdicts, update_results_doc

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study_dir", help="A study folder (python -m recurrent_mlm.study ... --output_dir).")
    p.add_argument("--tier", help="Its tier: the copies go to docs/results/<tier>/.")
    p.add_argument("--demo_dir", help="A finished demo folder (python3 tasks.py demo): its comparison.md.")
    p.add_argument("--speed", action="store_true", help="Regenerate the README's training-step table from benchmarks/results.")
    p.add_argument("--results_doc", default=str(ROOT / "docs" / "RESULTS.md"))
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    args = p.parse_args(argv)
    if args.speed:
        missing = [str(path.relative_to(ROOT)) for path in SPEED_FILES.values() if not path.exists()]
        if missing:
            print(f"{', '.join(missing)} missing; run benchmarks/pretraining_throughput.py --size tiny|mini first.", file=sys.stderr)
            return 2
        print(f"{args.readme}: {'updated' if publish_speed(Path(args.readme)) else 'unchanged'} (speed table)")
        if not (args.demo_dir or args.study_dir):
            return 0
    if args.demo_dir:
        if not (Path(args.demo_dir) / "comparison.md").exists():
            print(f"{args.demo_dir} has no comparison.md; run python3 tasks.py demo to the end first.", file=sys.stderr)
            return 2
        changed = publish_demo(Path(args.demo_dir), Path(args.readme))
        print(f"{args.readme}: {'updated' if changed else 'unchanged'} (demo table)")
        if not args.study_dir:
            return 0
    if not (args.study_dir and args.tier):
        print("pass --study_dir and --tier (or --demo_dir).", file=sys.stderr)
        return 2
    study_dir = Path(args.study_dir)
    if not (study_dir / "claims").is_dir():
        print(f"{study_dir} holds no claims/ folder; pass the --output_dir of a study run.", file=sys.stderr)
        return 2
    folders = copy_claims(study_dir, ROOT / "docs" / "results" / args.tier)
    if not folders:
        print(f"no finished claim in {study_dir}; nothing published.", file=sys.stderr)
        return 1
    # The documents show one tier (claim ids are the same in every tier): the one published last.
    print(f"{args.results_doc}: {'updated' if update_results_doc(args.results_doc, folders) else 'unchanged'}")
    print(f"{args.readme}: {'updated' if update_readme_verdicts(args.readme, folders) else 'unchanged'}")
    recall = ROOT / "docs" / "results" / args.tier / "W1"
    if (recall / "summary.json").exists():
        print(f"{args.readme}: {'updated' if publish_recall(Path(args.readme), recall) else 'unchanged'} (recall table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
