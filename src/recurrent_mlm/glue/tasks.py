"""The nine GLUE tasks: where their text and labels sit in each source, their metrics and submission format.

Three sources describe the same tasks differently, and this table is where they are reconciled:

* the official TSV layout written by `download_glue_data.py` (folder names such as `SST-2`, a header on every
  file except CoLA's train/dev, label strings such as `entailment`, MRPC files with a byte-order mark);
* the `nyu-mll/glue` dataset on the Hub (config names such as `sst2`, integer labels, column names such as
  `premise`/`hypothesis`);
* the GLUE leaderboard's submission files (`MNLI-m.tsv` ... with `index<TAB>prediction`).

Label ids follow `nyu-mll/glue`, so a model fine-tuned from the TSV files and one fine-tuned from the Hub
dataset agree on what label 0 means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# How the study scores a run: one number per task (the GLUE leaderboard's per-task average of its metrics).
SCORE_DEFINITIONS = {
    "matthews_correlation": "Matthews correlation",
    "accuracy": "accuracy",
    "accuracy_f1": "mean of accuracy and F1",
    "pearson_spearman": "mean of Pearson and Spearman correlation",
}


@dataclass(frozen=True)
class TsvLayout:
    """Columns of one kind of TSV file: names for files with a header, indices for CoLA's header-less files."""

    text_columns: tuple[str | int, ...]
    label_column: str | int | None = None  # None: unlabelled (test files)
    index_column: str | int | None = None  # the id the leaderboard expects back (test files)
    header: bool = True


@dataclass(frozen=True)
class GlueTask:
    name: str  # the nyu-mll/glue config name
    folder: str  # the download_glue_data.py folder name
    hub_text_columns: tuple[str, ...]
    labelled: TsvLayout  # train and dev files
    test: TsvLayout
    # Label strings as written in the TSV files, in label-id order; None for regression (STS-B).
    tsv_labels: tuple[str, ...] | None
    label_names: tuple[str, ...] | None  # the nyu-mll/glue ClassLabel names, same order
    metric_config: str  # config of our offline evaluate module (glue_metric.py)
    score: str  # key of SCORE_DEFINITIONS
    split_files: dict[str, str] = field(default_factory=dict)  # split name -> TSV file name
    validation_splits: tuple[str, ...] = ("validation",)
    test_splits: tuple[str, ...] = ("test",)
    submission_files: dict[str, str] = field(default_factory=dict)  # test split -> leaderboard file name
    encoding: str = "utf-8"
    # QQP's official train file has a few rows with missing fields; the reference processors skip them.
    skip_malformed_rows: bool = False
    regression_range: tuple[float, float] | None = None

    @property
    def is_regression(self) -> bool:
        return self.tsv_labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.tsv_labels)


def _pair(a: str, b: str, label: str, index: str = "index", test_a: str | None = None, test_b: str | None = None):
    return (
        TsvLayout(text_columns=(a, b), label_column=label),
        TsvLayout(text_columns=(test_a or a, test_b or b), index_column=index),
    )


_STANDARD_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}

TASKS: dict[str, GlueTask] = {}


def _add(task: GlueTask) -> None:
    TASKS[task.name] = task


_add(
    GlueTask(
        name="cola",
        folder="CoLA",
        hub_text_columns=("sentence",),
        # source, label, original mark ('*'), sentence; no header
        labelled=TsvLayout(text_columns=(3,), label_column=1, header=False),
        test=TsvLayout(text_columns=("sentence",), index_column="index"),
        tsv_labels=("0", "1"),
        label_names=("unacceptable", "acceptable"),
        metric_config="cola",
        score="matthews_correlation",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "CoLA.tsv"},
    )
)
_add(
    GlueTask(
        name="sst2",
        folder="SST-2",
        hub_text_columns=("sentence",),
        labelled=TsvLayout(text_columns=("sentence",), label_column="label"),
        test=TsvLayout(text_columns=("sentence",), index_column="index"),
        tsv_labels=("0", "1"),
        label_names=("negative", "positive"),
        metric_config="sst2",
        score="accuracy",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "SST-2.tsv"},
    )
)
_mrpc_labelled, _mrpc_test = _pair("#1 String", "#2 String", "Quality")
_add(
    GlueTask(
        name="mrpc",
        folder="MRPC",
        hub_text_columns=("sentence1", "sentence2"),
        labelled=_mrpc_labelled,
        test=_mrpc_test,
        tsv_labels=("0", "1"),
        label_names=("not_equivalent", "equivalent"),
        metric_config="mrpc",
        score="accuracy_f1",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "MRPC.tsv"},
        encoding="utf-8-sig",
    )
)
_stsb_labelled, _stsb_test = _pair("sentence1", "sentence2", "score")
_add(
    GlueTask(
        name="stsb",
        folder="STS-B",
        hub_text_columns=("sentence1", "sentence2"),
        labelled=_stsb_labelled,
        test=_stsb_test,
        tsv_labels=None,
        label_names=None,
        metric_config="stsb",
        score="pearson_spearman",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "STS-B.tsv"},
        regression_range=(0.0, 5.0),
    )
)
_qqp_labelled, _qqp_test = _pair("question1", "question2", "is_duplicate", index="id")
_add(
    GlueTask(
        name="qqp",
        folder="QQP",
        hub_text_columns=("question1", "question2"),
        labelled=_qqp_labelled,
        test=_qqp_test,
        tsv_labels=("0", "1"),
        label_names=("not_duplicate", "duplicate"),
        metric_config="qqp",
        score="accuracy_f1",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "QQP.tsv"},
        skip_malformed_rows=True,
    )
)
_mnli_labelled, _mnli_test = _pair("sentence1", "sentence2", "gold_label")
_add(
    GlueTask(
        name="mnli",
        folder="MNLI",
        hub_text_columns=("premise", "hypothesis"),
        labelled=_mnli_labelled,
        test=_mnli_test,
        tsv_labels=("entailment", "neutral", "contradiction"),
        label_names=("entailment", "neutral", "contradiction"),
        metric_config="mnli",
        score="accuracy",
        split_files={
            "train": "train.tsv",
            "validation_matched": "dev_matched.tsv",
            "validation_mismatched": "dev_mismatched.tsv",
            "test_matched": "test_matched.tsv",
            "test_mismatched": "test_mismatched.tsv",
        },
        validation_splits=("validation_matched", "validation_mismatched"),
        test_splits=("test_matched", "test_mismatched"),
        submission_files={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    )
)
_qnli_labelled, _qnli_test = _pair("question", "sentence", "label")
_add(
    GlueTask(
        name="qnli",
        folder="QNLI",
        hub_text_columns=("question", "sentence"),
        labelled=_qnli_labelled,
        test=_qnli_test,
        tsv_labels=("entailment", "not_entailment"),
        label_names=("entailment", "not_entailment"),
        metric_config="qnli",
        score="accuracy",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "QNLI.tsv"},
    )
)
_rte_labelled, _rte_test = _pair("sentence1", "sentence2", "label")
_add(
    GlueTask(
        name="rte",
        folder="RTE",
        hub_text_columns=("sentence1", "sentence2"),
        labelled=_rte_labelled,
        test=_rte_test,
        tsv_labels=("entailment", "not_entailment"),
        label_names=("entailment", "not_entailment"),
        metric_config="rte",
        score="accuracy",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "RTE.tsv"},
    )
)
_add(
    GlueTask(
        name="wnli",
        folder="WNLI",
        hub_text_columns=("sentence1", "sentence2"),
        labelled=_rte_labelled,
        test=_rte_test,
        tsv_labels=("0", "1"),
        label_names=("not_entailment", "entailment"),
        metric_config="wnli",
        score="accuracy",
        split_files=dict(_STANDARD_FILES),
        submission_files={"test": "WNLI.tsv"},
    )
)

# The GLUE diagnostic set (AX) is predicted with the MNLI model and submitted as AX.tsv.
DIAGNOSTIC_FOLDER = "diagnostic"
DIAGNOSTIC_FILE = "diagnostic.tsv"
DIAGNOSTIC_LAYOUT = TsvLayout(text_columns=("sentence1", "sentence2"), index_column="index")
DIAGNOSTIC_SPLIT = "test_ax"
DIAGNOSTIC_SUBMISSION = "AX.tsv"


def normalise_task_name(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


_ALIASES = {normalise_task_name(t.name): t.name for t in TASKS.values()} | {
    normalise_task_name(t.folder): t.name for t in TASKS.values()
}


def get_task(name: str) -> GlueTask:
    """The task called `name` (`sst2`, `SST-2`, `sst-2`, ... all work); KeyError if there is none."""
    key = _ALIASES.get(normalise_task_name(name))
    if key is None:
        raise KeyError(name)
    return TASKS[key]


def score_of(score: str, metrics: dict[str, float]) -> float:
    """The study's single number for a run from the task's official metrics (see SCORE_DEFINITIONS)."""
    if score == "matthews_correlation":
        return float(metrics["matthews_correlation"])
    if score == "accuracy":
        return float(metrics["accuracy"])
    if score == "accuracy_f1":
        return (float(metrics["accuracy"]) + float(metrics["f1"])) / 2
    if score == "pearson_spearman":
        return (float(metrics["pearson"]) + float(metrics["spearmanr"])) / 2
    raise KeyError(score)


__all__ = [
    "GlueTask",
    "TsvLayout",
    "TASKS",
    "SCORE_DEFINITIONS",
    "DIAGNOSTIC_FOLDER",
    "DIAGNOSTIC_FILE",
    "DIAGNOSTIC_LAYOUT",
    "DIAGNOSTIC_SPLIT",
    "DIAGNOSTIC_SUBMISSION",
    "get_task",
    "normalise_task_name",
    "score_of",
]
