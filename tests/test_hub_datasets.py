"""Dataset repos on the local Hub server (tests/hub_server.py), read by the real `datasets` client: GLUE from a
repo laid out like `nyu-mll/glue`, a pretraining corpus by name (map-style and streaming), a missing dataset.

Everything runs in this process against the shared server (`use_hub` points the already-imported
huggingface_hub and datasets at it, `isolate_hf_caches` puts their caches under tmp_path), except one run of
the real command line, whose fresh interpreter reads the same settings from its environment.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO_ROOT, subprocess_env
from tests.hub_server import DATASET_GITATTRIBUTES, client_env, isolate_hf_caches, shared_hub, use_hub
from tests.test_glue_run import QUICK, models  # noqa: F401  (the module-scoped tiny models)
from tests.test_glue_run import run as run_glue
from tests.test_glue_run import usage_error as glue_usage_error
from tests.test_pretraining_script import _fresh_accelerate_state, base_args, tokenizer_dir  # noqa: F401
from tests.test_pretraining_script import run as run_pretraining

# huggingface_hub's LFS upload hands httpx2 a file as `data=`, which httpx2 deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

GLUE = FIXTURES / "glue"
PRETRAINING = FIXTURES / "pretraining"
RTE_LABELS = ["entailment", "not_entailment"]
RTE_TRAIN = "rte/train-00000-of-00001.parquet"


# -- building dataset repos ---------------------------------------------------------------------------------------
def _parquet(rows: list[dict], features) -> tuple[bytes, int]:
    """A parquet file written by `datasets` (its features in the schema, as on the Hub) and the Arrow size."""
    from datasets import Dataset

    buffer = io.BytesIO()
    dataset = Dataset.from_list(rows, features=features)
    dataset.to_parquet(buffer)
    return buffer.getvalue(), dataset.data.nbytes


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"))) for line in lines]


def glue_repo_files() -> dict[str, bytes | str]:
    """The RTE and SST-2 fixtures as the real nyu-mll/glue holds them: one parquet file per config and split
    (labels as ClassLabel ids, -1 for the unlabelled test split) and a README whose YAML maps configs to files."""
    from datasets import ClassLabel, Features, Value

    layouts = {  # config: (fixture folder, text columns, label names)
        "rte": ("RTE", ("sentence1", "sentence2"), RTE_LABELS),
        "sst2": ("SST-2", ("sentence",), ["negative", "positive"]),
    }
    files: dict[str, bytes | str] = {}
    dataset_info, configs = [], []
    for config, (folder, text_columns, names) in layouts.items():
        features = Features(
            {**{c: Value("string") for c in text_columns}, "label": ClassLabel(names=names), "idx": Value("int32")}
        )
        splits = []
        for split, tsv in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
            rows = []
            for row in _tsv_rows(GLUE / folder / tsv):
                label = row.get("label")
                rows.append(
                    {
                        **{c: row[c] for c in text_columns},
                        "label": -1 if label is None else (names.index(label) if label in names else int(label)),
                        "idx": int(row["index"]) if "index" in row else len(rows),
                    }
                )
            files[f"{config}/{split}-00000-of-00001.parquet"], num_bytes = _parquet(rows, features)
            splits.append({"name": split, "num_bytes": num_bytes, "num_examples": len(rows)})
        feature_yaml = [{"name": c, "dtype": "string"} for c in text_columns]
        feature_yaml += [
            {"name": "label", "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}}},
            {"name": "idx", "dtype": "int32"},
        ]
        dataset_info.append({"config_name": config, "features": feature_yaml, "splits": splits})
        configs.append(
            {
                "config_name": config,
                "data_files": [{"split": s["name"], "path": f"{config}/{s['name']}-*"} for s in splits],
            }
        )
    import yaml

    metadata = {"language": ["en"], "task_categories": ["text-classification"], "pretty_name": "GLUE",
                "dataset_info": dataset_info, "configs": configs}  # fmt: skip
    files["README.md"] = f"---\n{yaml.safe_dump(metadata, sort_keys=False)}---\n\n# GLUE (test fixture rows)\n"
    return files


def corpus_repo_files() -> dict[str, str]:
    """A tiny pretraining corpus: the fixture speeches and novel excerpt (one paragraph a row) to train on, the
    Blake poems to evaluate on; JSON lines with a `text` column, split by file name as on the Hub."""
    paragraphs = []
    for path in sorted((PRETRAINING / "text").glob("*.txt")):
        text = path.read_bytes().decode("utf-8", errors="replace")
        paragraphs += [p.strip() for p in text.split("\n\n") if p.strip()]
    poems = [json.loads(line)["text"] for line in (PRETRAINING / "blake.jsonl").read_text().splitlines()]
    lines = lambda texts: "".join(json.dumps({"text": t}) + "\n" for t in texts)  # noqa: E731
    return {"data/train.jsonl": lines(paragraphs), "data/validation.jsonl": lines(poems)}


@pytest.fixture(scope="module")
def hub():
    """The shared server with the datasets of this module (names of their own: the server lives all session)."""
    server = shared_hub()
    if "nyu-mll/glue" not in server.state.datasets:
        server.state.add_dataset("nyu-mll/glue", glue_repo_files())
        server.state.add_dataset("corpora/tiny-corpus", corpus_repo_files())
    return server


@pytest.fixture
def online(hub, tmp_path, monkeypatch):
    """This test talks to the server (the rest of the suite stays offline) with caches under tmp_path."""
    use_hub(monkeypatch, hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    return isolate_hf_caches(monkeypatch, tmp_path / "hf-home")


# -- the server itself, through huggingface_hub ------------------------------------------------------------------
def test_dataset_repo_api(hub, online, tmp_path, monkeypatch):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi()
    glue_file = lambda path: hub.state.file("nyu-mll/glue", path, repo_type="dataset")  # noqa: E731
    info = api.dataset_info("nyu-mll/glue", files_metadata=True)
    siblings = {s.rfilename: s for s in info.siblings}
    assert {".gitattributes", "README.md", RTE_TRAIN, "sst2/test-00000-of-00001.parquet"} <= set(siblings)
    assert siblings[RTE_TRAIN].lfs is not None  # data files go to LFS, as on the Hub
    assert siblings["README.md"].lfs is None
    assert [c["config_name"] for c in info.card_data.configs] == ["rte", "sst2"]
    assert api.dataset_info("nyu-mll/glue", revision=info.sha).sha == info.sha
    tree = {e.path for e in api.list_repo_tree("nyu-mll/glue", repo_type="dataset", recursive=True)}
    assert {"rte", "sst2", "rte/validation-00000-of-00001.parquet"} <= tree
    assert {e.path for e in api.list_repo_tree("nyu-mll/glue", "rte", repo_type="dataset")} == {
        f"rte/{s}-00000-of-00001.parquet" for s in ("train", "validation", "test")
    }
    paths = api.get_paths_info("nyu-mll/glue", ["README.md", "rte", "nope"], repo_type="dataset")
    assert sorted(p.path for p in paths) == ["README.md", "rte"]
    readme = hf_hub_download("nyu-mll/glue", "README.md", repo_type="dataset")
    assert Path(readme).is_relative_to(online) and "config_name: rte" in Path(readme).read_text()
    parquet = hf_hub_download("nyu-mll/glue", "rte/test-00000-of-00001.parquet", repo_type="dataset")
    assert Path(parquet).read_bytes() == glue_file("rte/test-00000-of-00001.parquet")

    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("corpora/no-such-corpus")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nyu-mll/glue")  # datasets and models are separate namespaces
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info("nyu-mll/glue", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("nyu-mll/glue", "rte/missing.parquet", repo_type="dataset")

    # Dataset repos can also be created and pushed to with the real client (a token with write access).
    use_hub(monkeypatch, hub, hub.state.add_user("uploader"))
    folder = tmp_path / "upload"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.parquet").write_bytes(glue_file(RTE_TRAIN))
    (folder / "README.md").write_text("---\nlicense: mit\n---\nA copy.\n")
    api = HfApi()
    url = api.create_repo("uploader/copy", repo_type="dataset")
    assert url.endswith("/datasets/uploader/copy") and url.repo_type == "dataset"
    commit = api.upload_folder(folder_path=folder, repo_id="uploader/copy", repo_type="dataset")
    assert "/datasets/uploader/copy/commit/" in commit.commit_url
    files = set(api.list_repo_files("uploader/copy", repo_type="dataset"))
    assert files == {".gitattributes", "README.md", "data/train.parquet"}
    assert hub.state.file("uploader/copy", ".gitattributes", repo_type="dataset").decode() == DATASET_GITATTRIBUTES
    assert api.dataset_info("uploader/copy").card_data.license == "mit"
    assert "uploader/copy" not in hub.state.repos  # no model repo of that name appeared


# -- GLUE by name -------------------------------------------------------------------------------------------------
def test_glue_task_from_the_hub_equals_the_same_rows_from_glue_dir(models, online, tmp_path):  # noqa: F811
    """`run_glue.py --task_name rte` without --glue_dir reads nyu-mll/glue (config rte) through `datasets`; the
    run (3 steps, evaluation, test predictions) is the one on the same rows from the TSV folder."""
    common = ["--model_name_or_path", models["bert"], "--task_name", "rte", "--do_predict", *QUICK, "--seed", "3"]
    assert run_glue(*common, "--output_dir", tmp_path / "hub") == 0
    assert run_glue(*common, "--glue_dir", GLUE, "--output_dir", tmp_path / "dir") == 0

    hub_result = json.loads((tmp_path / "hub" / "all_results.json").read_text())
    dir_result = json.loads((tmp_path / "dir" / "all_results.json").read_text())
    assert hub_result["train_steps"] == dir_result["train_steps"] == 3
    assert hub_result["loss_curve"] == dir_result["loss_curve"]
    assert hub_result["final"]["splits"] == dir_result["final"]["splits"]
    predictions = (tmp_path / "hub" / "predictions" / "RTE.tsv").read_text()
    assert predictions == (tmp_path / "dir" / "predictions" / "RTE.tsv").read_text()
    predictions = predictions.splitlines()
    assert len(predictions) == 1 + len(_tsv_rows(GLUE / "RTE" / "test.tsv"))  # every test row, once
    train_rows = len(_tsv_rows(GLUE / "RTE" / "train.tsv"))
    assert hub_result["num_train_examples"] == dir_result["num_train_examples"] == train_rows
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "GLUE rte from the Hub dataset nyu-mll/glue (" in card and "Fine-tuned on [GLUE]" in card and "datasets:\n- nyu-mll/glue" in card
    # The files came from the server into this test's cache, nowhere else.
    assert list(online.rglob("rte/train-00000-of-00001.parquet"))


def test_glue_untrained_metrics_equal_and_example_counts(models, online, tmp_path, capsys):  # noqa: F811
    """With --max_train_steps 0 the evaluation of the same model is the same, row for row."""
    common = ["--model_name_or_path", models["rec"], "--task_name", "rte", "--max_train_steps", "0"]
    cache = tmp_path / "glue-cache"
    assert run_glue(*common, "--cache_dir", cache, "--output_dir", tmp_path / "hub") == 0
    assert list(cache.rglob("*.arrow"))  # --cache_dir holds the prepared dataset
    assert run_glue(*common, "--glue_dir", GLUE, "--output_dir", tmp_path / "dir") == 0
    sources = [json.loads((tmp_path / f / "all_results.json").read_text())["data_source"] for f in ("hub", "dir")]
    assert sources[0] == "nyu-mll/glue (rte)" and sources[1].startswith("GLUE RTE from ")
    hub_eval = json.loads((tmp_path / "hub" / "eval_results.json").read_text())
    dir_eval = json.loads((tmp_path / "dir" / "eval_results.json").read_text())
    assert hub_eval == dir_eval
    for folder in ("hub", "dir"):  # every validation row evaluated once: the reliability bins count them
        validation = json.loads((tmp_path / folder / "all_results.json").read_text())["final"]["splits"]["validation"]
        assert sum(b["count"] for b in validation["reliability"]) == len(_tsv_rows(GLUE / "RTE" / "dev.tsv"))


def test_missing_glue_dataset_is_one_line(models, online, tmp_path, capsys):  # noqa: F811
    message = glue_usage_error(capsys, "--model_name_or_path", models["rec"], "--task_name", "rte", "--dataset_name",
                               "nyu-mll/no-such-glue", "--output_dir", tmp_path / "out")  # fmt: skip
    assert "could not load nyu-mll/no-such-glue (rte)" in message and "doesn't exist on the Hub" in message
    assert not (tmp_path / "out").exists()


# -- pretraining corpus by name -----------------------------------------------------------------------------------
@pytest.mark.parametrize("streaming", [False, True], ids=["map-style", "streaming"])
def test_pretraining_on_a_hub_dataset(tmp_path, tokenizer_dir, online, streaming):  # noqa: F811
    out = tmp_path / "run"
    args = base_args(out, tokenizer_dir, "--dataset_name", "corpora/tiny-corpus", "--max_train_steps", "2")
    args += ["--dataset_validation_split", "validation", *(["--streaming"] if streaming else [])]
    assert run_pretraining(args) == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_steps"] == 2 and results["corpus"]["source"] == "corpora/tiny-corpus"
    assert results["corpus"]["validation_blocks"] > 0 and results["eval_loss"] > 0
    card = (out / "README.md").read_text()
    assert "corpora/tiny-corpus" in card.split("---")[1]  # in the card's metadata (datasets:)


def test_missing_pretraining_dataset_is_one_line(tmp_path, tokenizer_dir, online, capsys):  # noqa: F811
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_pretraining(base_args(out, tokenizer_dir, "--dataset_name", "corpora/no-such-corpus"))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "--dataset_name corpora/no-such-corpus: cannot load split 'train'" in errors[0], err
    assert "Traceback" not in "\n".join(err) and not out.exists()


def test_command_line_reads_the_hub_from_its_environment(hub, tmp_path, tokenizer_dir):  # noqa: F811
    """A fresh interpreter, which reads HF_ENDPOINT and HF_HUB_OFFLINE at import: a missing dataset exits 2 with
    one error line and no traceback."""
    env = subprocess_env(**client_env(hub), HF_HOME=str(tmp_path / "hf-home"))
    env.pop("HF_DATASETS_CACHE", None)
    command = [sys.executable, str(REPO_ROOT / "run_pretraining.py"), *base_args(tmp_path / "o", tokenizer_dir)]
    command += ["--dataset_name", "corpora/no-such-corpus"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --dataset_name corpora/no-such-corpus: cannot load split 'train'"), lines[-5:]
    assert "Traceback" not in done.stderr and not (tmp_path / "o").exists()
    assert any(r["path"] == "/datasets/corpora/no-such-corpus/resolve/main/README.md" for r in hub.state.requests)
