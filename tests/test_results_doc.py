"""docs/RESULTS.md and the README's verdict table are generated from the published study summaries
(docs/results/<tier>/<claim>/summary.json, written by scripts/publish_results.py): they must match them."""

from __future__ import annotations

from pathlib import Path

import pytest

from recurrent_mlm.study.report import check_readme_verdicts, check_results_doc, load_summary

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*/*/summary.json"))


@pytest.mark.skipif(not PUBLISHED, reason="no study published under docs/results yet")
def test_results_doc_matches_the_published_summaries():
    assert not check_results_doc(ROOT / "docs" / "RESULTS.md", PUBLISHED)


@pytest.mark.skipif(not PUBLISHED, reason="no study published under docs/results yet")
def test_readme_verdicts_match_the_published_summaries():
    assert not check_readme_verdicts(ROOT / "README.md", PUBLISHED)


@pytest.mark.skipif(not PUBLISHED, reason="no study published under docs/results yet")
def test_published_plots_exist_and_one_tier_is_shown():
    tiers = {p.parent.name for p in PUBLISHED}
    assert len(tiers) == 1, f"the documents show one tier; docs/results holds {sorted(tiers)}"
    for folder in PUBLISHED:
        for plot in load_summary(folder / "summary.json").get("plots") or []:
            assert (folder / plot["path"]).exists(), f"{folder.name}: {plot['path']} missing"


DEMO = ROOT / "docs" / "results" / "demo" / "comparison.md"


@pytest.mark.skipif(not DEMO.exists(), reason="no demo run published yet")
def test_readme_demo_table_is_the_published_run():
    from scripts.publish_results import DEMO_END, DEMO_START

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(DEMO_START) + len(DEMO_START) : readme.index(DEMO_END)]
    assert block.strip() == DEMO.read_text(encoding="utf-8").strip()


def test_readme_speed_table_is_generated_from_the_benchmark_results():
    from scripts.publish_results import SPEED_END, SPEED_FILES, SPEED_START, speed_table

    if not all(path.exists() for path in SPEED_FILES.values()):
        pytest.skip("no throughput results committed")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme[readme.index(SPEED_START) + len(SPEED_START) : readme.index(SPEED_END)].strip() == speed_table()


@pytest.mark.skipif(not PUBLISHED, reason="no study published under docs/results yet")
def test_readme_recall_table_is_the_published_one():
    from scripts.publish_results import RECALL_END, RECALL_START, recall_table

    folder = next(p for p in PUBLISHED if p.name == "W1")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme[readme.index(RECALL_START) + len(RECALL_START) : readme.index(RECALL_END)].strip() == recall_table(folder)
