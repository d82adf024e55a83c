"""Loading GLUE tasks (official TSV folders, the `nyu-mll/glue` Hub dataset) and custom CSV/JSON files.

Every source ends as the same `TaskData`: one `datasets.Dataset` per split with the columns `text_a`,
`text_b` (pair tasks), `label` (not in test splits) and `idx` (the id a submission file gives back), plus
what the rest of the script needs to know about the task. All validation happens here, before any model is
loaded or any output written, and every problem is a `UsageError`: one line naming the file, the line and the
fix.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cli import UsageError
from .tasks import (
    DIAGNOSTIC_FILE,
    DIAGNOSTIC_FOLDER,
    DIAGNOSTIC_LAYOUT,
    DIAGNOSTIC_SPLIT,
    DIAGNOSTIC_SUBMISSION,
    GlueTask,
    TsvLayout,
)

HUB_DATASET = "nyu-mll/glue"
TEXT_COLUMNS = ("text_a", "text_b")


@dataclass
class TaskData:
    name: str  # a GLUE config name, or "custom"
    task: GlueTask | None
    splits: dict[str, Any]  # split name -> datasets.Dataset
    num_text_fields: int
    label_names: list[str] | None  # None: regression
    label_values: list[str] | None  # labels as the source writes them (what a prediction file writes back)
    validation_splits: list[str]
    test_splits: list[str]
    submission_files: dict[str, str]
    metric_config: str
    score: str
    source: str  # for logs and model cards
    hub_dataset: str | None = None  # for model-card metadata
    regression_range: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    @property
    def text_columns(self) -> list[str]:
        return list(TEXT_COLUMNS[: self.num_text_fields])

    def limit(self, split_kind: str, max_samples: int | None) -> None:
        """Keep the first `max_samples` rows of the train, validation or test splits."""
        if max_samples is None:
            return
        names = {"train": ["train"], "validation": self.validation_splits, "test": self.test_splits}[split_kind]
        for name in names:
            if name in self.splits and len(self.splits[name]) > max_samples:
                self.splits[name] = self.splits[name].select(range(max_samples))

    def fingerprint(self) -> str:
        """A hash of every split's texts and labels: a sweep resumes only on the data it started with."""
        digest = hashlib.sha256()
        for name in sorted(self.splits):
            digest.update(name.encode())
            for column in [*self.text_columns, "label"]:
                if column in self.splits[name].column_names:
                    digest.update(f"\0{column}\0".encode())
                    for value in self.splits[name][column]:  # every value, not a printed summary of the column
                        digest.update(repr(value).encode() + b"\0")
        return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------
# Official GLUE TSV folders
# ----------------------------------------------------------------------------------------------------------
def find_task_folder(glue_dir: str | os.PathLike, task: GlueTask) -> Path:
    """`glue_dir/<Folder>` (the download_glue_data.py layout), or `glue_dir` itself if it holds the files."""
    root = Path(glue_dir)
    if not root.is_dir():
        raise UsageError(f"--glue_dir {root} is not a folder; give the folder that holds {task.folder}/.")
    for candidate in (root / task.folder, root):
        if (candidate / task.split_files["train"]).is_file() or any(
            (candidate / task.split_files[s]).is_file() for s in task.validation_splits
        ):
            return candidate
    raise UsageError(
        f"--glue_dir {root} has no {task.folder}/ folder with {task.name} files (looked for "
        f"{root / task.folder / task.split_files['train']}); point --glue_dir at the folder that holds "
        f"{task.folder}/ or at {task.folder}/ itself."
    )


def _column_index(path: Path, header: list[str] | None, column: str | int, task: GlueTask) -> int:
    if isinstance(column, int):
        return column
    assert header is not None
    if column not in header:
        raise UsageError(
            f"{path}: no column {column!r} (its header has {', '.join(repr(h) for h in header)}); "
            f"{task.name} files must be in the official GLUE {task.folder} layout."
        )
    return header.index(column)


def read_glue_tsv(
    path: Path,
    task: GlueTask,
    layout: TsvLayout,
    *,
    labelled: bool,
    drop_empty_texts: bool = False,
    notes: list[str] | None = None,
) -> dict[str, list]:
    """Read one GLUE TSV file into columns, validating every row. Quotes are plain characters in GLUE TSVs
    (QUOTE_NONE): SST-2 and MRPC texts contain unbalanced `"` that a CSV reader would join across lines."""
    notes = notes if notes is not None else []
    try:
        return _read_tsv_rows(path, task, layout, labelled=labelled, drop_empty_texts=drop_empty_texts, notes=notes)
    except UnicodeDecodeError as err:
        raise UsageError(
            f"{path} is not valid {task.encoding} text (byte {err.object[err.start:err.start + 1]!r} at offset "
            f"{err.start}); GLUE files are UTF-8: convert it (e.g. iconv -f latin1 -t utf-8) and run again."
        ) from None


def _read_tsv_rows(path, task, layout, *, labelled, drop_empty_texts, notes) -> dict[str, list]:
    texts: list[list[str]] = [[] for _ in layout.text_columns]
    labels: list = []
    ids: list[str] = []
    malformed = empty = 0
    first_empty_line = None
    bad_labels: list[tuple[int, str]] = []
    with open(path, encoding=task.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = None
        if layout.header:
            try:
                header = [h.strip().lstrip("\ufeff") for h in next(reader)]
            except StopIteration:
                raise UsageError(f"{path} is empty; it should hold the {task.name} header and rows.") from None
        text_idx = [_column_index(path, header, c, task) for c in layout.text_columns]
        label_idx = _column_index(path, header, layout.label_column, task) if labelled else None
        id_idx = _column_index(path, header, layout.index_column, task) if layout.index_column is not None else None
        needed = 1 + max(i for i in [*text_idx, label_idx, id_idx] if i is not None)
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line (trailing newline)
            if len(row) < needed:
                if task.skip_malformed_rows:
                    malformed += 1
                    continue
                raise UsageError(
                    f"{path}, line {line}: {len(row)} tab-separated fields where the {task.name} layout needs "
                    f"at least {needed}; fix or remove that line."
                )
            values = [row[i].strip() for i in text_idx]
            if labelled:
                raw = row[label_idx].strip()
                if task.is_regression:
                    try:
                        label = float(raw)
                    except ValueError:
                        label = math.nan
                    low, high = task.regression_range or (-math.inf, math.inf)
                    if not (math.isfinite(label) and low <= label <= high):
                        bad_labels.append((line, raw))
                        continue
                else:
                    if raw not in task.tsv_labels:
                        bad_labels.append((line, raw))
                        continue
                    label = task.tsv_labels.index(raw)
            if not all(values):
                empty += 1
                first_empty_line = first_empty_line or line
                if labelled and drop_empty_texts:
                    continue
            for column, value in zip(texts, values):
                column.append(value)
            if labelled:
                labels.append(label)
            ids.append(row[id_idx].strip() if id_idx is not None else str(len(ids)))
    if bad_labels:
        line, raw = bad_labels[0]
        allowed = (
            f"a number in [{task.regression_range[0]:g}, {task.regression_range[1]:g}]"
            if task.is_regression
            else "one of " + ", ".join(repr(v) for v in task.tsv_labels)
        )
        raise UsageError(
            f"{path}, line {line}: label {raw!r} is not {allowed} for {task.name} "
            f"({len(bad_labels)} such rows); fix the labels, or check --task_name."
        )
    if empty:
        if labelled and not drop_empty_texts:
            raise UsageError(
                f"{path}: {empty} rows have an empty text (first at line {first_empty_line}); remove them, or pass "
                "--drop_empty_texts to skip them."
            )
        verb = "dropped" if labelled else "kept (a submission needs every row)"
        notes.append(f"{path.name}: {empty} rows with an empty text {verb}")
    if malformed:
        notes.append(f"{path.name}: skipped {malformed} malformed rows (missing fields), as the GLUE reference code does")
    if not ids:
        raise UsageError(f"{path} has no usable rows; check that it is the {task.name} file.")
    columns: dict[str, list] = {name: column for name, column in zip(TEXT_COLUMNS, texts)}
    if labelled:
        columns["label"] = labels
    columns["idx"] = ids
    return columns


def _dataset_from_columns(columns: dict[str, list], regression: bool):
    import datasets

    features = {name: datasets.Value("string") for name in columns if name != "label"}
    if "label" in columns:
        features["label"] = datasets.Value("float32" if regression else "int64")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _glue_task_data(task: GlueTask, splits: dict, source: str, hub_dataset: str | None, notes: list[str]) -> TaskData:
    test_splits = [s for s in (*task.test_splits, DIAGNOSTIC_SPLIT) if s in splits]
    submission = dict(task.submission_files)
    submission[DIAGNOSTIC_SPLIT] = DIAGNOSTIC_SUBMISSION
    return TaskData(
        name=task.name,
        task=task,
        splits=splits,
        num_text_fields=len(task.hub_text_columns),
        label_names=list(task.label_names) if task.label_names else None,
        label_values=list(task.tsv_labels) if task.tsv_labels else None,
        validation_splits=list(task.validation_splits),
        test_splits=test_splits,
        submission_files={s: submission[s] for s in test_splits},
        metric_config=task.metric_config,
        score=task.score,
        source=source,
        hub_dataset=hub_dataset,
        regression_range=task.regression_range,
        notes=notes,
    )


def load_glue_dir(
    task: GlueTask,
    glue_dir: str | os.PathLike,
    *,
    need_train: bool = True,
    need_test: bool = False,
    drop_empty_texts: bool = False,
) -> TaskData:
    """Load `task` from a folder in the official GLUE layout. With `need_test`, MNLI also reads the diagnostic
    set (`<glue_dir>/diagnostic/diagnostic.tsv`) when it is there, for the AX submission file."""
    folder = find_task_folder(glue_dir, task)
    wanted = [*(["train"] if need_train else []), *task.validation_splits, *(task.test_splits if need_test else [])]
    missing = [task.split_files[s] for s in wanted if not (folder / task.split_files[s]).is_file()]
    if missing:
        raise UsageError(
            f"{folder} lacks {', '.join(missing)} (the {task.name} layout has "
            f"{', '.join(task.split_files[s] for s in wanted)}); add the missing files"
            + (", or leave out --do_predict." if any(f.startswith("test") for f in missing) else ".")
        )
    notes: list[str] = []
    splits = {}
    for split in wanted:
        labelled = split not in task.test_splits
        columns = read_glue_tsv(
            folder / task.split_files[split],
            task,
            task.labelled if labelled else task.test,
            labelled=labelled,
            drop_empty_texts=drop_empty_texts,
            notes=notes,
        )
        splits[split] = _dataset_from_columns(columns, task.is_regression)
    if need_test and task.name == "mnli":
        for candidate in (Path(glue_dir) / DIAGNOSTIC_FOLDER / DIAGNOSTIC_FILE, folder.parent / DIAGNOSTIC_FOLDER / DIAGNOSTIC_FILE):
            if candidate.is_file():
                columns = read_glue_tsv(candidate, task, DIAGNOSTIC_LAYOUT, labelled=False, notes=notes)
                splits[DIAGNOSTIC_SPLIT] = _dataset_from_columns(columns, False)
                break
    return _glue_task_data(task, splits, f"GLUE {task.folder} from {folder}", None, notes)


# ----------------------------------------------------------------------------------------------------------
# The nyu-mll/glue dataset through `datasets`
# ----------------------------------------------------------------------------------------------------------
def load_glue_hub(
    task: GlueTask,
    *,
    dataset_name: str = HUB_DATASET,
    need_train: bool = True,
    need_test: bool = False,
    drop_empty_texts: bool = False,
    cache_dir: str | None = None,
) -> TaskData:
    """Load `task` from the Hub (`nyu-mll/glue`, config = task name). Needs the network or a warm cache."""
    import datasets

    def fetch(config: str):
        folder = Path(dataset_name)
        if folder.is_dir() and (folder / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
            return datasets.load_from_disk(str(folder))
        if folder.is_dir() and (folder / "state.json").is_file():
            raise UsageError(
                f"--dataset_name {dataset_name} is one saved Dataset (Dataset.save_to_disk); a GLUE task needs its "
                "splits: save a DatasetDict with train and validation, or use --train_file/--validation_file."
            )
        try:
            return datasets.load_dataset(dataset_name, config, cache_dir=cache_dir)
        except (ConnectionError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(
                f"could not load {dataset_name} ({config}) through datasets: {first}; pass --glue_dir with the "
                "GLUE TSV files, or check the network and the dataset name."
            ) from None

    raw = fetch(task.name)
    wanted = [*(["train"] if need_train else []), *task.validation_splits, *(task.test_splits if need_test else [])]
    notes: list[str] = []
    splits = {}
    for split in wanted:
        if split not in raw:
            raise UsageError(f"{dataset_name} ({task.name}) has no split {split!r} (it has {', '.join(raw)}).")
        splits[split] = _normalise_hub_split(raw[split], task, split, split not in task.test_splits, drop_empty_texts, notes)
    if need_test and task.name == "mnli":
        ax = fetch("ax")["test"]
        splits[DIAGNOSTIC_SPLIT] = _normalise_hub_split(ax, task, DIAGNOSTIC_SPLIT, False, drop_empty_texts, notes)
    return _glue_task_data(task, splits, f"{dataset_name} ({task.name})", dataset_name, notes)


def _normalise_hub_split(ds, task: GlueTask, split: str, labelled: bool, drop_empty_texts: bool, notes: list[str]):
    source_columns = list(task.hub_text_columns)
    if split == DIAGNOSTIC_SPLIT:
        source_columns = ["premise", "hypothesis"]
    columns = {new: [str(t or "").strip() for t in ds[old]] for new, old in zip(TEXT_COLUMNS, source_columns)}
    columns["idx"] = [str(i) for i in ds["idx"]]
    if labelled:
        labels = list(ds["label"])
        low, high = task.regression_range or (-math.inf, math.inf)
        for row, label in enumerate(labels):
            ok = (low <= label <= high) if task.is_regression else (0 <= label < task.num_labels)
            if not ok:
                raise UsageError(
                    f"{split} row {row} of the Hub dataset has label {label!r}, outside the {task.name} label set; "
                    "use a labelled split."
                )
        columns["label"] = labels
    return _validated(columns, split, labelled, drop_empty_texts, notes, task.is_regression)


def _validated(columns: dict[str, list], where: str, labelled: bool, drop_empty_texts: bool, notes: list[str], regression: bool):
    """Empty-text policy shared by the Hub and custom-file loaders (the TSV reader applies it line by line)."""
    texts = [columns[c] for c in TEXT_COLUMNS if c in columns]
    empty = [i for i in range(len(columns["idx"])) if not all(t[i] for t in texts)]
    if empty:
        if labelled and not drop_empty_texts:
            raise UsageError(
                f"{where}: {len(empty)} rows have an empty text (first at row {empty[0]}); remove them, or pass "
                "--drop_empty_texts to skip them."
            )
        if labelled:
            drop = set(empty)
            columns = {k: [v for i, v in enumerate(col) if i not in drop] for k, col in columns.items()}
            notes.append(f"{where}: {len(empty)} rows with an empty text dropped")
        else:
            notes.append(f"{where}: {len(empty)} rows with an empty text kept (a submission needs every row)")
    if not columns["idx"]:
        raise UsageError(f"{where} has no usable rows.")
    return _dataset_from_columns(columns, regression)


# ----------------------------------------------------------------------------------------------------------
# Custom CSV / JSON files
# ----------------------------------------------------------------------------------------------------------
_BUILDERS = {".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"}), ".json": ("json", {}), ".jsonl": ("json", {})}
DEFAULT_TEXT_COLUMNS = (("sentence1", "sentence2"), ("sentence",), ("text",))


def _read_table(path: str, flag: str):
    import datasets

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {path} does not exist; give a CSV, TSV or JSON-lines file.")
    if p.suffix.lower() not in _BUILDERS:
        raise UsageError(f"{flag} {path}: unsupported extension {p.suffix!r}; use .csv, .tsv, .json or .jsonl.")
    builder, kwargs = _BUILDERS[p.suffix.lower()]
    try:
        return datasets.load_dataset(builder, data_files={"data": str(p)}, split="data", **kwargs)
    except Exception as err:  # datasets raises many kinds for malformed files; all mean the same to the user
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"{flag} {path} could not be read as {builder.upper()}: {first}") from None


def load_custom_files(
    *,
    train_file: str | None,
    validation_file: str,
    test_file: str | None = None,
    text_columns: list[str] | None = None,
    label_column: str = "label",
    label_type: str = "auto",
    drop_empty_texts: bool = False,
) -> TaskData:
    """Load your own train/validation(/test) files. Texts come from `text_columns` (one or two names; by
    default `sentence1`+`sentence2`, `sentence` or `text`), labels from `label_column`. Classification labels
    are the sorted distinct training labels; `label_type` forces classification or regression."""
    paths = {"train": train_file, "validation": validation_file, "test": test_file}
    tables = {"validation": _read_table(validation_file, "--validation_file")}
    if train_file:
        tables["train"] = _read_table(train_file, "--train_file")
    if test_file:
        tables["test"] = _read_table(test_file, "--test_file")
    reference = tables.get("train", tables["validation"])
    if text_columns:
        fields = list(text_columns)
    else:
        fields = next((list(c) for c in DEFAULT_TEXT_COLUMNS if all(x in reference.column_names for x in c)), None)
        if fields is None:
            raise UsageError(
                f"cannot tell which columns hold the text (columns: {', '.join(reference.column_names)}); pass "
                "--text_columns NAME [NAME2]."
            )
    if not 1 <= len(fields) <= 2:
        raise UsageError(f"--text_columns takes one or two column names, got {len(fields)}.")
    flags = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}
    for split, table in tables.items():
        needed = fields + ([label_column] if split != "test" else [])
        absent = [c for c in needed if c not in table.column_names]
        if absent:
            raise UsageError(
                f"{flags[split]} has no column {', '.join(repr(c) for c in absent)} (it has "
                f"{', '.join(table.column_names)}); pass --text_columns / --label_column with its names."
            )

    def labels_of(split):
        values = tables[split][label_column]
        missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and math.isnan(v))]
        if missing:
            raise UsageError(f"{flags[split]}: row {missing[0]} has no label ({len(missing)} such rows); fill or remove them.")
        return values

    source_labels = labels_of("train" if "train" in tables else "validation")
    if label_type == "auto":
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in source_labels)
        label_type = (
            "regression" if numeric and any(isinstance(v, float) and not float(v).is_integer() for v in source_labels)
            else "classification"
        )
    regression = label_type == "regression"
    if regression:
        label_values = None
    else:
        label_values = sorted({str(v) for v in source_labels}, key=lambda s: (_numeric_key(s), s))
        if len(label_values) < 2:
            raise UsageError(
                f"{flags['train' if 'train' in tables else 'validation']}: only one distinct label "
                f"({label_values[0]!r}); classification needs at least two (or pass --label_type regression)."
            )
    notes: list[str] = []
    splits = {}
    for split, table in tables.items():
        columns = {new: [str(v).strip() if v is not None else "" for v in table[old]] for new, old in zip(TEXT_COLUMNS, fields)}
        columns["idx"] = [str(i) for i in range(len(table))]
        labelled = split != "test"
        if labelled:
            raw = labels_of(split)
            if regression:
                try:
                    labels = [float(v) for v in raw]
                except (TypeError, ValueError):
                    raise UsageError(f"{flags[split]}: label column {label_column!r} is not numeric; drop --label_type regression.") from None
                bad = [i for i, v in enumerate(labels) if not math.isfinite(v)]
            else:
                index = {v: i for i, v in enumerate(label_values)}
                labels = [index.get(str(v), -1) for v in raw]
                bad = [i for i, v in enumerate(labels) if v < 0]
            if bad:
                allowed = "a finite number" if regression else "one of the training labels " + ", ".join(label_values)
                raise UsageError(
                    f"{flags[split]}: row {bad[0]} has label {raw[bad[0]]!r}, not {allowed} ({len(bad)} such rows); "
                    "fix the labels or add examples of that label to the training file."
                )
            columns["label"] = labels
        where = f"{flags[split]} {paths[split]}"
        splits[split] = _validated(columns, where, labelled, drop_empty_texts, notes, regression)
    return TaskData(
        name="custom",
        task=None,
        splits=splits,
        num_text_fields=len(fields),
        label_names=label_values,
        label_values=label_values,
        validation_splits=["validation"],
        test_splits=["test"] if "test" in splits else [],
        submission_files={"test": "predict_results.tsv"} if "test" in splits else {},
        metric_config="regression" if regression else "classification",
        score="pearson_spearman" if regression else "accuracy",
        source=f"custom files ({', '.join(Path(f).name for f in (train_file, validation_file, test_file) if f)})",
        notes=notes,
    )


def _numeric_key(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf


__all__ = [
    "HUB_DATASET",
    "TaskData",
    "find_task_folder",
    "read_glue_tsv",
    "load_glue_dir",
    "load_glue_hub",
    "load_custom_files",
]
