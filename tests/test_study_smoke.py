"""The study end to end at the smoke tier (tiny models, a few steps): plans before runs, summaries, reports,
RESULTS.md blocks, resumption without recomputation, and refusal of another tier in the same folder."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES
from tests.test_pretraining_script import _fresh_accelerate_state  # noqa: F401  (fixture)

CORPUS = FIXTURES / "pretraining" / "text"
GLUE = FIXTURES / "glue"


@pytest.mark.slow
def test_smoke_tier_end_to_end(tmp_path, capsys):
    from recurrent_mlm.cli import UsageError
    from recurrent_mlm.study.__main__ import main
    from recurrent_mlm.study.report import check_results_doc

    out, doc = tmp_path / "study", tmp_path / "RESULTS.md"
    args = ["lei", "stable-lstm", "--tier", "smoke", "--output_dir", str(out), "--glue_dir", str(GLUE),
            "--corpus", str(CORPUS), "--results_doc", str(doc)]  # fmt: skip
    assert main(args) == 0
    for claim in ("L1", "L2", "M1", "M2"):
        folder = out / "claims" / claim
        plan = json.loads((folder / "plan.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["plan_hash"] == plan["hash"]  # the summary was judged by the plan written before the runs
        assert summary["decision"]["verdict"] in ("reproduced", "contradicted", "inconclusive", "not tested")
        assert (folder / "report.md").read_text().startswith(f"# {claim}")
        assert summary["run_info"]["tier"] == "smoke"
    assert (out / "claims" / "L1" / "score_vs_lr_sst2.png").exists()
    # The equal-compute arm (smoke and gpu tiers): BERT with recurrent BERT's compute, measured once, beside L1.
    pilot = json.loads((out / "pretraining" / "equal_compute.json").read_text())
    assert pilot["bert_steps"] >= pilot["steps"] == 2 and pilot["ratio"] > 0
    arm = json.loads((out / "pretraining" / "bert_equal_compute-s0" / "all_results.json").read_text())
    assert arm["train_steps"] == pilot["bert_steps"]
    l1 = json.loads((out / "claims" / "L1" / "summary.json").read_text())
    assert any(t["title"].startswith("Equal compute") for t in l1["tables"])
    assert [c["comparison"] for c in l1["decision"]["comparisons"]] == ["average over tasks"]  # not in the verdict
    assert check_results_doc(doc, sorted((out / "claims").glob("*"))) == []
    text = doc.read_text()
    assert "<!-- results:verdicts:start -->" in text and "L1" in text and "M2" in text
    # Everything is cached: a second run recomputes no pretraining or fine-tuning run.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("pretraining/*/model.safetensors")}
    stamps.update({p: p.stat().st_mtime_ns for p in out.glob("finetune/*/*/runs/*/*/result.json")})
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # Another tier in the same folder is refused.
    with pytest.raises(SystemExit):
        main(["lei", "--tier", "demo", "--output_dir", str(out)])
    assert "another tier" in capsys.readouterr().err
    with pytest.raises(UsageError):
        from recurrent_mlm.study.tiers import get_tier

        get_tier("huge")


@pytest.mark.slow
def test_main_job_at_the_smoke_tier(tmp_path):
    """scripts/demo.py's stages and closing table, at the smoke tier (the real job runs the demo tier)."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT, subprocess_env

    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "demo.py"), "--tier", "smoke", "--skip_variants",
         "--output_dir", str(out), "--corpus", str(CORPUS)],  # fmt: skip
        env=subprocess_env(), capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = (out / "comparison.md").read_text()
    for row in ("held-out MLM loss", "zero-shot agreement", "SST-2 dev accuracy", "seed std", "failed runs"):
        assert row in table
    assert "Lei et al.'s claim L1 at this scale" in table


def test_a_tier_setting_added_later_at_its_default_is_not_a_change(tmp_path):
    """A study folder recorded before a tier field existed continues when the field keeps its default (the old
    behaviour), and is refused when it does not."""
    import dataclasses

    from recurrent_mlm.cli import UsageError
    from recurrent_mlm.study.stages import StudyContext
    from recurrent_mlm.study.tiers import get_tier

    tier = get_tier("cpu")
    ctx = StudyContext(output_dir=tmp_path, tier=tier)
    ctx.check_or_record()
    record = json.loads((tmp_path / "study.json").read_text())
    del record["tier_settings"]["lei_equal_compute"]  # as written before the field was added
    (tmp_path / "study.json").write_text(json.dumps(record))
    StudyContext(output_dir=tmp_path, tier=tier).check_or_record()
    with pytest.raises(UsageError, match="another tier_settings"):
        StudyContext(output_dir=tmp_path, tier=dataclasses.replace(tier, lei_equal_compute=True)).check_or_record()
