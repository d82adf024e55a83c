"""GLUE data loading: the official TSV layouts (real rows in tests/fixtures/glue), custom files, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recurrent_mlm.glue.data import load_custom_files, load_glue_dir, load_glue_hub
from recurrent_mlm.glue.tasks import TASKS, get_task
from recurrent_mlm.cli import UsageError

GLUE = Path(__file__).resolve().parent / "fixtures" / "glue"

# First labelled row of each fixture's dev file, as the official files have it.
FIRST_DEV_ROW = {
    "cola": ("The sailors rode the breeze clear of the rocks.", None, 1),
    "sst2": ("it 's a charming and often affecting journey .", None, 1),
    "mrpc": (
        "He said the foodservice pie business doesn 't fit the company 's long-term growth strategy .",
        '" The foodservice pie business does not fit our long-term growth strategy .',
        1,
    ),
    "stsb": ("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", 5.0),
    "rte": (
        "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the "
        "Christopher Reeve Foundation.",
        "Christopher Reeve had an accident.",
        1,  # not_entailment
    ),
    "wnli": ("The drain is clogged with hair. It has to be cleaned.", "The hair has to be cleaned.", 0),
}


@pytest.mark.parametrize("name", ["cola", "sst2", "mrpc", "stsb", "qnli", "rte", "wnli"])
def test_official_layouts_load(name):
    task = TASKS[name]
    has_test = name != "qnli"  # no QNLI test rows are available to us
    data = load_glue_dir(task, GLUE, need_test=has_test)
    assert set(data.splits) == {"train", "validation", *(["test"] if has_test else [])}
    assert data.validation_splits == ["validation"]
    for split in ("train", "validation"):
        labels = data.splits[split]["label"]
        if task.is_regression:
            assert all(0.0 <= v <= 5.0 for v in labels)
        else:
            assert set(labels) == set(range(task.num_labels))  # the fixtures hold every label
    if name in FIRST_DEV_ROW:
        a, b, label = FIRST_DEV_ROW[name]
        row = data.splits["validation"][0]
        assert row["text_a"] == a and row.get("text_b") == b and row["label"] == pytest.approx(label)
    if has_test:
        assert "label" not in data.splits["test"].column_names
        assert data.splits["test"]["idx"][:3] == ["0", "1", "2"]
        assert data.submission_files == {"test": task.submission_files["test"]}


def test_cola_has_no_header_and_mrpc_has_a_byte_order_mark():
    cola = load_glue_dir(TASKS["cola"], GLUE)
    assert cola.splits["train"][0]["text_a"] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert len(cola.splits["train"]) == 40  # every line is a row
    assert (GLUE / "MRPC" / "train.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert len(load_glue_dir(TASKS["mrpc"], GLUE).splits["train"]) == 32


def test_task_names_and_aliases():
    assert get_task("SST-2").name == "sst2"
    assert get_task("sts-b").name == "stsb"
    assert get_task("MNLI").name == "mnli"
    assert sorted(TASKS) == sorted(["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"])
    with pytest.raises(KeyError):
        get_task("squad")


def _rows(path: Path, encoding="utf-8") -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding=encoding).splitlines()]


def write_mnli_layout(folder: Path) -> Path:
    """MNLI's column layout filled with RTE rows (no MNLI rows are available to us: this tests the layout).
    RTE's not_entailment is written as MNLI's contradiction."""
    header = (
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
    )
    test_header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
    out = folder / "MNLI"
    out.mkdir(parents=True)
    gold = {"entailment": "entailment", "not_entailment": "contradiction"}
    for name, source, rows in (
        ("train.tsv", "train.tsv", slice(1, 33)),
        ("dev_matched.tsv", "dev.tsv", slice(1, 17)),
        ("dev_mismatched.tsv", "dev.tsv", slice(17, 33)),
    ):
        lines = [header]
        for row in _rows(GLUE / "RTE" / source)[rows]:
            label = gold[row[3]]
            lines.append("\t".join([row[0], row[0], row[0] + "e", "rte", "-", "-", "-", "-", row[1], row[2], label, label]))
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, rows in (("test_matched.tsv", slice(1, 9)), ("test_mismatched.tsv", slice(9, 17))):
        lines = [test_header]
        for row in _rows(GLUE / "RTE" / "test.tsv")[rows]:
            lines.append("\t".join([row[0], row[0], row[0], "rte", "-", "-", "-", "-", row[1], row[2]]))
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copytree(GLUE / "diagnostic", folder / "diagnostic")
    return folder


def write_qqp_layout(folder: Path, malformed_row: bool = True) -> Path:
    """QQP's column layout filled with MRPC rows (no QQP rows are available to us: this tests the layout), plus
    one row with a missing field, as the official QQP train file has."""
    out = folder / "QQP"
    out.mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        lines = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
        for i, row in enumerate(_rows(GLUE / "MRPC" / name, "utf-8-sig")[1:]):
            lines.append("\t".join([str(i), row[1], row[2], row[3], row[4], row[0]]))
        if malformed_row and name == "train.tsv":
            lines.append("999\t1\t2\ta question with no pair")
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["id\tquestion1\tquestion2"]
    for row in _rows(GLUE / "MRPC" / "test.tsv")[1:17]:
        lines.append("\t".join([row[0], row[3], row[4]]))
    (out / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_mnli_layout_has_matched_mismatched_and_diagnostic(tmp_path):
    data = load_glue_dir(TASKS["mnli"], write_mnli_layout(tmp_path), need_test=True)
    assert data.validation_splits == ["validation_matched", "validation_mismatched"]
    assert data.test_splits == ["test_matched", "test_mismatched", "test_ax"]
    assert data.submission_files == {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv", "test_ax": "AX.tsv"}
    assert data.label_names == ["entailment", "neutral", "contradiction"]
    assert set(data.splits["train"]["label"]) == {0, 2}
    assert len(data.splits["test_ax"]) == 16
    assert data.splits["test_ax"][0]["text_a"] == "The cat sat on the mat."


def test_qqp_layout_skips_malformed_rows_like_the_reference_code(tmp_path):
    data = load_glue_dir(TASKS["qqp"], write_qqp_layout(tmp_path), need_test=True)
    assert len(data.splits["train"]) == 32
    assert any("skipped 1 malformed" in note for note in data.notes)
    assert data.submission_files == {"test": "QQP.tsv"}


# -- bad input: one clear line naming the problem and the fix ------------------------------------------------
def _copy_task(tmp_path: Path, folder: str) -> Path:
    shutil.copytree(GLUE / folder, tmp_path / folder)
    return tmp_path / folder


def _edit(path: Path, line_no: int, new_line: str, encoding="utf-8") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[line_no - 1] = new_line
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def _error(func, *args, **kwargs) -> str:
    with pytest.raises(UsageError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    folder = _copy_task(tmp_path, "SST-2")
    (folder / "dev.tsv").unlink()
    message = _error(load_glue_dir, TASKS["sst2"], tmp_path)
    assert "dev.tsv" in message and "add the missing files" in message
    (folder / "test.tsv").unlink()
    (folder / "dev.tsv").write_text((GLUE / "SST-2" / "dev.tsv").read_text())
    assert "--do_predict" in _error(load_glue_dir, TASKS["sst2"], tmp_path, need_test=True)


def test_missing_task_folder(tmp_path):
    message = _error(load_glue_dir, TASKS["rte"], tmp_path)
    assert "RTE" in message and "--glue_dir" in message


def test_missing_column(tmp_path):
    folder = _copy_task(tmp_path, "SST-2")
    _edit(folder / "train.tsv", 1, "text\tlabel")
    message = _error(load_glue_dir, TASKS["sst2"], tmp_path)
    assert "no column 'sentence'" in message and "'text'" in message and "train.tsv" in message


def test_label_outside_the_label_set(tmp_path):
    folder = _copy_task(tmp_path, "SST-2")
    _edit(folder / "train.tsv", 5, "a fine film .\t2")
    message = _error(load_glue_dir, TASKS["sst2"], tmp_path)
    assert "line 5" in message and "'2'" in message and "'0', '1'" in message


def test_regression_label_out_of_range(tmp_path):
    folder = _copy_task(tmp_path, "STS-B")
    lines = (folder / "dev.tsv").read_text().splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t7.5"
    (folder / "dev.tsv").write_text("\n".join(lines) + "\n")
    message = _error(load_glue_dir, TASKS["stsb"], tmp_path)
    assert "line 4" in message and "'7.5'" in message and "[0, 5]" in message


def test_too_few_fields(tmp_path):
    folder = _copy_task(tmp_path, "CoLA")
    _edit(folder / "train.tsv", 7, "gj04\t1")
    message = _error(load_glue_dir, TASKS["cola"], tmp_path)
    assert "line 7" in message and "2 tab-separated fields" in message


def test_empty_texts_stop_or_are_dropped(tmp_path):
    folder = _copy_task(tmp_path, "RTE")
    lines = (folder / "train.tsv").read_text().splitlines()
    index, first, _, label = lines[3].split("\t")
    lines[3] = "\t".join([index, first, "  ", label])
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    message = _error(load_glue_dir, TASKS["rte"], tmp_path)
    assert "empty text" in message and "line 4" in message and "--drop_empty_texts" in message
    data = load_glue_dir(TASKS["rte"], tmp_path, drop_empty_texts=True)
    assert len(data.splits["train"]) == 31
    assert any("1 rows with an empty text dropped" in note for note in data.notes)


def test_hub_path_fails_cleanly_offline(tmp_path, monkeypatch):
    # The nyu-mll/glue code path cannot reach the Hub here; it must say so in one line and name the way out.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    message = _error(load_glue_hub, TASKS["rte"], cache_dir=str(tmp_path))
    assert "nyu-mll/glue" in message and "--glue_dir" in message


# -- custom files ----------------------------------------------------------------------------------------------
def _sst_rows(split: str) -> list[tuple[str, int]]:
    rows = _rows(GLUE / "SST-2" / f"{split}.tsv")[1:]
    return [(text.strip(), int(label)) for text, label in rows]


def test_custom_csv_and_json(tmp_path):
    import csv

    names = {0: "negative", 1: "positive"}
    for split in ("train", "dev"):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["review", "sentiment"])
            writer.writerows((text, names[label]) for text, label in _sst_rows(split))
    data = load_custom_files(
        train_file=str(tmp_path / "train.csv"),
        validation_file=str(tmp_path / "dev.csv"),
        text_columns=["review"],
        label_column="sentiment",
    )
    assert data.label_names == ["negative", "positive"] and data.metric_config == "classification"
    assert data.splits["validation"][0] == {"text_a": "it 's a charming and often affecting journey .", "idx": "0", "label": 1}

    sts = _rows(GLUE / "STS-B" / "train.tsv")[1:]
    with open(tmp_path / "sts.jsonl", "w", encoding="utf-8") as handle:
        for row in sts:
            handle.write(json.dumps({"sentence1": row[7], "sentence2": row[8], "label": float(row[9])}) + "\n")
    data = load_custom_files(train_file=str(tmp_path / "sts.jsonl"), validation_file=str(tmp_path / "sts.jsonl"))
    assert data.is_regression and data.num_text_fields == 2 and data.score == "pearson_spearman"


def test_custom_file_errors(tmp_path):
    (tmp_path / "train.csv").write_text("sentence,label\ngood film,pos\nbad film,neg\n")
    (tmp_path / "dev.csv").write_text("sentence,label\nfine film,neutral\n")
    message = _error(load_custom_files, train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "dev.csv"))
    assert "'neutral'" in message and "neg, pos" in message
    (tmp_path / "dev.csv").write_text("text,label\nfine film,pos\n")
    message = _error(load_custom_files, train_file=str(tmp_path / "train.csv"), validation_file=str(tmp_path / "dev.csv"))
    assert "no column 'sentence'" in message and "--text_columns" in message
    message = _error(load_custom_files, train_file=str(tmp_path / "nope.csv"), validation_file=str(tmp_path / "dev.csv"))
    assert "does not exist" in message


def test_fingerprint_follows_the_data(tmp_path):
    first = load_glue_dir(TASKS["sst2"], GLUE).fingerprint()
    assert load_glue_dir(TASKS["sst2"], GLUE).fingerprint() == first
    folder = _copy_task(tmp_path, "SST-2")
    _edit(folder / "train.tsv", 2, "hide new secretions from the parental units \t1")
    assert load_glue_dir(TASKS["sst2"], tmp_path).fingerprint() != first
