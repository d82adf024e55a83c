"""Reports and RESULTS.md generation from summaries (recurrent_mlm.study.report, recurrent_mlm.study.plots)."""

import json

import numpy as np
import pytest

from recurrent_mlm.study import plots
from recurrent_mlm.study import stats as S
from recurrent_mlm.study.decision import Comparison, Evidence, Plan, decide, not_tested
from recurrent_mlm.study.report import (
    SUMMARY_FILE,
    VERDICTS_START,
    check_results_doc,
    claim_markers,
    load_summary,
    make_summary,
    update_results_doc,
    validate_summary,
    write_claim_report,
    write_summary,
)

PNG = b"\x89PNG\r\n\x1a\n"


def plan(claim_id: str, statement: str) -> Plan:
    return Plan(
        claim_id=claim_id,
        paper="Lei et al. 2022",
        statement=statement,
        paper_numbers="+2.1 points",
        protocol="3 pretraining x 3 fine-tuning seeds",
        metric="SST-2 accuracy",
        predicted_direction="greater",
        comparisons=[Comparison("sst2", ("recurrent_bert", "bert"), "sst2")],
    )


def claim_folder(root, claim_id: str, effect: float):
    rng = np.random.default_rng(0)
    a = (rng.random((2, 2, 300)) < 0.75 + effect).astype(float)
    b = (rng.random((2, 2, 300)) < 0.75).astype(float)
    p = plan(claim_id, f"claim {claim_id} | with a pipe")
    result = S.paired_bootstrap(a, b, n_resamples=200, names=("recurrent_bert", "bert"))
    decision = decide(p, [Evidence.from_bootstrap("sst2", result)])
    folder = root / claim_id
    if claim_id == "L1":  # a stand-in figure: the links are what is tested here, the plots below
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "score_vs_lr.png").write_bytes(PNG)
    summary = make_summary(
        p,
        decision,
        tables=[
            {
                "title": "Scores",
                "columns": ["model", "mean"],
                "rows": [["bert", 0.75], ["recurrent_bert", 0.8]],
            }
        ],
        plots=[{"path": "score_vs_lr.png", "caption": "SST-2 accuracy against learning rate"}]
        if claim_id == "L1"
        else [],
        runs={"total": 8, "diverged": 1},
        run_info={
            "tier": "smoke",
            "command": "python -m recurrent_mlm.study lei --tier smoke",
            "machine": "test",
            "wall_seconds": 12.0,
        },
        differences="MLM on a 2.4 MB corpus, not BERT's.",
        null_meaning="A null here says little about base size.",
    )
    write_summary(folder, summary)
    return folder


def test_results_doc_is_generated_between_markers_and_checked(tmp_path):
    results = tmp_path / "results"
    folders = [claim_folder(results, "L1", 0.1), claim_folder(results, "L2", 0.0)]
    doc = tmp_path / "docs" / "RESULTS.md"
    assert update_results_doc(doc, folders)
    assert check_results_doc(doc, folders) == []
    text = doc.read_text()
    assert (
        text.index(VERDICTS_START) < text.index(claim_markers("L1")[0]) < text.index(claim_markers("L2")[0])
    )
    assert "| L1 (Lei et al. 2022) | claim L1 \\| with a pipe (+2.1 points) | **reproduced** |" in text
    assert "| L2 (Lei et al. 2022) |" in text and "](../results/L1/score_vs_lr.png)" in text

    # Hand-written text outside the markers survives regeneration byte for byte.
    hand = text.replace(
        "# Results\n", "# Results\n\nCommands: `python -m recurrent_mlm.study all --tier cpu`.\n"
    )
    hand = (
        hand.replace(claim_markers("L2")[0], "Between blocks.\n\n" + claim_markers("L2")[0]) + "\nThe end.\n"
    )
    doc.write_text(hand)
    assert check_results_doc(doc, folders) == []
    assert not update_results_doc(doc, folders)
    assert doc.read_text() == hand

    # A changed summary makes the check fail, naming the block; regeneration fixes it and keeps the hand text.
    summary = load_summary(folders[1])
    summary["decision"] = not_tested(plan("L2", "x"), "the smoke tier skips it")
    write_summary(folders[1], summary)
    problems = check_results_doc(doc, folders)
    assert any("claim L2 is out of date" in p for p in problems) and any(
        "verdict table" in p for p in problems
    )
    assert update_results_doc(doc, folders)
    new = doc.read_text()
    assert check_results_doc(doc, folders) == [] and "Between blocks." in new and new.endswith("The end.\n")
    assert "**not tested** | n/a | the smoke tier skips it |" in new

    # Claims must match the blocks: a stale block is an error, a new claim gets a block appended.
    assert "no summary" in check_results_doc(doc, folders[:1])[0]
    folders.append(claim_folder(results, "A1", 0.0))
    assert any("no block for claim A1" in p for p in check_results_doc(doc, folders))
    update_results_doc(doc, folders)
    assert doc.read_text().rstrip().endswith(claim_markers("A1")[1])


def test_missing_verdict_markers_and_bad_summaries(tmp_path):
    folder = claim_folder(tmp_path, "L1", 0.1)
    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n")
    with pytest.raises(ValueError, match="results:verdicts:start"):
        update_results_doc(doc, [folder])
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    del summary["decision"]
    with pytest.raises(ValueError, match=r"lacks \['decision'\]"):
        validate_summary(summary)
    summary = load_summary(folder)
    summary["tables"][0]["rows"].append(["one cell"])
    with pytest.raises(ValueError, match="not 2 cells wide"):
        validate_summary(summary)


@pytest.mark.slow  # four matplotlib figures: a few seconds
def test_claim_report_and_plots(tmp_path):
    folder = claim_folder(tmp_path, "L1", 0.1)
    report = write_claim_report(folder).read_text()
    for expected in (
        "# L1: Lei et al. 2022",
        "**Verdict: reproduced.**",
        "Decision rule (written before the runs)",
        "![SST-2 accuracy against learning rate](score_vs_lr.png)",
        "| sst2 | recurrent_bert: 0.85, bert: 0.7675 |",
        "Runs: total 8, diverged 1 (",
        "What differs from the paper",
        "0.2 min wall time",
    ):
        assert expected in report

    runs = [
        {"model": m, "learning_rate": lr, "score": s, "collapsed": s < 0.55, "trivial": s <= 0.55}
        for m, base in (("bert", 0.8), ("recurrent_bert", 0.82))
        for lr in (1e-4, 3e-4, 1e-3)
        for s in (base, base - 0.01, 0.5 if lr == 1e-3 else base + 0.01)
    ]
    lr_plot = plots.plot_score_vs_learning_rate(
        folder / "score_vs_lr.png", runs, metric="accuracy", trivial_score=0.51
    )
    assert lr_plot.read_bytes()[:8] == PNG and len(lr_plot.read_bytes()) > 1000

    rows = [
        {"model": m, "attractors": k, "correct": c, "total": 50}
        for m in ("lstm", "transformer")
        for k, c in zip(range(4), (45, 40, 35, 30))
    ]
    runs = [
        {
            "model": m,
            "n": n,
            "accuracy": 1.0 / n if m == "lstm" else 0.99,
            "context": n,
            "loss": 5.0 / n,
            "collapsed": n == 64 and m == "lstm",
        }
        for m in ("lstm", "hybrid")
        for n in (4, 16, 64)
        for _ in range(2)
    ]
    for path in (
        plots.plot_accuracy_vs_attractors(tmp_path / "a.png", rows),
        plots.plot_accuracy_vs_n(tmp_path / "n.png", runs, chance=0.1),
        plots.plot_loss_vs_context(tmp_path / "c.png", runs),
    ):
        assert path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="reference="):
        plots.plot_runs(
            tmp_path / "x.png", [{"model": "m", "x": 1, "score": float("nan")}], x="x", xlabel="x", ylabel="y"
        )
