"""Reading the corpus (formats, encodings, bad input), training the tokenizer, packing blocks, epoch order."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from recurrent_mlm.pretraining.corpus import build_datasets, resolve_source
from recurrent_mlm.pretraining.readers import DecodeStats, decoded_lines, file_records, resolve_data_files, scan_files
from recurrent_mlm.pretraining.packing import EpochSampler, PackedBlocks, StreamingBlocks, TokenStream
from recurrent_mlm.pretraining.tokenizer import train_wordpiece_tokenizer, word_start_table
from recurrent_mlm.cli import UsageError
from tests.conftest import FIXTURES, REPO_ROOT

TEXT = FIXTURES / "pretraining" / "text"
LATIN1 = TEXT / "1973-Nixon.txt"
JSONL = FIXTURES / "pretraining" / "blake.jsonl"
CSV = FIXTURES / "pretraining" / "blake.csv"


@pytest.fixture(scope="module")
def tokenizer():
    texts = (r["text"] for path in resolve_data_files([TEXT], "--train_file") for r in file_records(path))
    return train_wordpiece_tokenizer(texts, 400, model_max_length=64)


# -- reading -------------------------------------------------------------------------------------------------
def test_latin1_lines_are_replaced_and_counted():
    stats = DecodeStats()
    lines = list(decoded_lines(LATIN1, stats))
    raw = LATIN1.read_bytes().split(b"\n")
    bad = sum(1 for line in raw if not _is_utf8(line))
    assert bad == 15 and stats.replaced == {str(LATIN1): 15}
    assert stats.lines == len(lines)
    assert sum("\ufffd" in line for line in lines) == 15
    assert "15 of" in stats.summary() and "1973-Nixon.txt (15 lines)" in stats.summary()


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_broken_utf8_gzip_bom_and_crlf(tmp_path):
    path = tmp_path / "mixed.txt.gz"
    payload = b"\xef\xbb\xbffirst line\r\nbroken \xe9t\xe9 here\r\n\r\nnext paragraph \xff\n"
    with gzip.open(path, "wb") as handle:
        handle.write(payload)
    stats = DecodeStats()
    records = list(file_records(path, stats=stats))
    assert stats.replaced_lines == 2
    assert records == [
        {"text": "first line\nbroken \ufffdt\ufffd here", "doc_end": False},
        {"text": "next paragraph \ufffd", "doc_end": True},
    ]


def test_text_file_is_one_document_of_paragraph_records():
    records = list(file_records(TEXT / "1789-Washington.txt"))
    assert len(records) > 3
    assert [r["doc_end"] for r in records] == [False] * (len(records) - 1) + [True]
    assert all(r["text"].strip() for r in records)


def test_jsonl_and_csv_rows_are_documents():
    json_rows = list(file_records(JSONL))
    csv_rows = list(file_records(CSV))
    assert len(json_rows) == 12 and json_rows == csv_rows
    assert all(r["doc_end"] for r in json_rows)


def test_only_newlines_end_lines(tmp_path):
    """Form feeds (page breaks in Gutenberg texts) and U+2028 (legal inside JSON strings) do not split lines."""
    rows = tmp_path / "rows.jsonl"
    lines = [json.dumps({"text": "a\u2028b"}, ensure_ascii=False), json.dumps({"text": "c\fd"})]
    rows.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [r["text"] for r in file_records(rows)] == ["a\u2028b", "c\fd"]
    page = tmp_path / "page.txt"
    page.write_text("one\x0ctwo\nthree\n")
    assert [r["text"] for r in file_records(page)] == ["one\x0ctwo\nthree"]


def test_json_array_and_text_column(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"body": "one two"}, {"body": None}, {"body": "three"}]))
    assert [r["text"] for r in file_records(path, "body")] == ["one two", "three"]


@pytest.mark.parametrize(
    "content, name, message",
    [
        ('{"text": "ok"}\n{"text": broken\n', "bad.jsonl", "line 2 is not valid JSON"),
        ('{"body": "ok"}\n', "cols.jsonl", "has no column 'text' (it has: body); pass --text_column"),
        ('{"text": ["a", "list"]}\n', "types.jsonl", "holds a list, not text"),
        ("id,body\n1,hello\n", "cols.csv", "has no column 'text' (it has: body, id)"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scan_files([path], "text", "--train_file")


def test_missing_empty_and_unsupported_inputs(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_data_files([tmp_path / "nope.txt"], "--train_file")
    (tmp_path / "notes.md").write_text("# not a corpus file\n")
    with pytest.raises(UsageError, match="folder with no"):
        resolve_data_files([tmp_path], "--train_file")
    with pytest.raises(UsageError, match="unsupported file type"):
        resolve_data_files([tmp_path / "notes.md"], "--train_file")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n")
    with pytest.raises(UsageError, match="the corpus is empty"):
        scan_files(resolve_data_files([empty], "--train_file"), "text", "--train_file")


def test_folder_expansion_is_sorted_recursive_and_skips_hidden(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / ".cache").mkdir()
    for name in ("b/2.txt", "a.jsonl", "c.csv.gz", ".cache/x.txt", "b/readme.md"):
        (tmp_path / name).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in resolve_data_files([tmp_path], "--train_file")]
    assert found == ["a.jsonl", "b/2.txt", "c.csv.gz"]


def test_bundled_corpus_reads_with_its_latin1_files():
    files = resolve_data_files([REPO_ROOT / "data" / "corpus"], "--train_file")
    assert len(files) == 66  # README.md is not read
    report = scan_files(files, "text", "--train_file")
    assert report.documents == 66 and len(report.decode.replaced) == 7


# -- tokenizer -----------------------------------------------------------------------------------------------
def test_trained_tokenizer_saves_and_reloads(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    assert len(tokenizer) == 400
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "The Senate and the House of Representatives"
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    ids = reloaded(text)["input_ids"]
    assert ids[0] == reloaded.cls_token_id and ids[-1] == reloaded.sep_token_id
    assert reloaded.decode(ids, skip_special_tokens=True) == text.lower()


def test_trained_vocabulary_is_numbered_in_a_fixed_order(tokenizer):
    # The trainer numbers equal-frequency tokens in hash-map order; we renumber: specials, then sorted tokens.
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and tokens[5:] == sorted(tokens[5:])


def test_cased_tokenizer_keeps_case():
    cased = train_wordpiece_tokenizer(["Hello World hello world"] * 20, 60, lowercase=False, min_frequency=1)
    assert "Hello" in cased.tokenize("Hello world")


def test_word_start_table_for_wordpiece(tokenizer):
    table = word_start_table(tokenizer)
    vocab = tokenizer.get_vocab()
    assert all(table[i] == (not t.startswith("##")) for t, i in vocab.items())


# -- packing -------------------------------------------------------------------------------------------------
def test_blocks_hold_the_whole_stream_in_order(tokenizer):
    source = resolve_source(train_files=[str(TEXT)], validation_files=None, dataset_name=None)
    data = build_datasets(source, tokenizer, max_seq_length=64, validation_split_percentage=0)
    blocks = data.train
    assert isinstance(blocks, PackedBlocks) and data.validation is None
    content = np.concatenate([blocks[i]["input_ids"][1:-1] for i in range(len(blocks))])
    # The stream: every record's ids, a [SEP] after each document (file), cut into full blocks only.
    expected = []
    for path in source.train_files:
        for record in file_records(path):
            expected += tokenizer(record["text"], add_special_tokens=False)["input_ids"]
            if record["doc_end"]:
                expected.append(tokenizer.sep_token_id)
    assert len(expected) - len(content) < 62
    assert np.array_equal(content, expected[: len(content)])
    first = blocks[0]["input_ids"]
    assert first[0] == tokenizer.cls_token_id and first[-1] == tokenizer.sep_token_id and len(first) == 64
    assert (content == tokenizer.sep_token_id).sum() == 2  # two of the three document ends fit


def test_token_stream_slices_across_chunks():
    stream = TokenStream.from_arrays([np.arange(0, 5), np.arange(5, 7), np.arange(7, 20)])
    assert np.array_equal(stream.slice(3, 12), np.arange(3, 12))
    blocks = PackedBlocks(stream, 6, cls_id=-1, sep_id=-2)
    assert len(blocks) == 5
    keyed = blocks[(3, 2)]  # an (epoch, index) key from EpochSampler
    assert (keyed["index"], keyed["epoch"]) == (2, 3) and np.array_equal(keyed["input_ids"], blocks[2]["input_ids"])
    assert np.array_equal(blocks[2]["input_ids"], [-1, 8, 9, 10, 11, -2])


def test_validation_split_is_fixed_and_disjoint():
    stream = TokenStream.from_arrays([np.arange(10_000)])
    blocks = PackedBlocks(stream, 12, 0, 1)
    train_a, val_a = blocks.split(0.1)
    train_b, val_b = blocks.split(0.1)
    assert np.array_equal(val_a.block_ids, val_b.block_ids)
    assert len(val_a) == 100 and len(train_a) + len(val_a) == len(blocks)
    assert not set(train_a.block_ids) & set(val_a.block_ids)
    assert val_a.limit(7).block_ids.tolist() == val_a.block_ids[:7].tolist()


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    sampler = EpochSampler(50, seed=3)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(50)) and {e for e, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert [i for _, i in second] != [i for _, i in first] and {e for e, _ in second} == {1}
    assert [i for _, i in EpochSampler(50, 3, shuffle=False)] == list(range(50))


def test_streaming_packer_matches_the_map_style_blocks(tokenizer):
    source = resolve_source(train_files=[str(TEXT)], validation_files=None, dataset_name=None)
    mapped = build_datasets(source, tokenizer, max_seq_length=48, validation_split_percentage=0).train
    records = [r for path in source.train_files for r in file_records(path)]
    streamed = list(StreamingBlocks(records, tokenizer, 48, tokenize_batch_size=7))
    assert len(streamed) == len(mapped)
    for i in (0, 1, len(mapped) // 2, len(mapped) - 1):
        assert np.array_equal(streamed[i]["input_ids"], mapped[i]["input_ids"]) and streamed[i]["index"] == i


def test_validation_files_and_too_small_corpus(tokenizer, tmp_path):
    source = resolve_source(train_files=[str(TEXT)], validation_files=[str(JSONL)], dataset_name=None)
    data = build_datasets(source, tokenizer, max_seq_length=64, max_eval_samples=5)
    assert len(data.validation) == 5 and data.info["validation_blocks"] == 5
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("just a few words\n")
    small = resolve_source(train_files=[str(tiny)], validation_files=None, dataset_name=None)
    with pytest.raises(UsageError, match="fewer than one block of --max_seq_length 64"):
        build_datasets(small, tokenizer, max_seq_length=64)


def test_dataset_by_name_from_a_local_dataset_folder(tokenizer, tmp_path):
    """The `--dataset_name` code path (load_dataset), exercised offline with a local parquet folder."""
    from datasets import Dataset

    rows = [json.loads(line) for line in JSONL.read_text().splitlines()]
    folder = tmp_path / "blake"
    folder.mkdir()
    Dataset.from_list(rows).to_parquet(str(folder / "train.parquet"))
    source = resolve_source(train_files=None, validation_files=None, dataset_name=str(folder))
    data = build_datasets(source, tokenizer, max_seq_length=64, validation_split_percentage=10)
    assert len(data.train) > 50 and len(data.validation) >= 1
    with pytest.raises(UsageError, match="has no column 'body'"):
        resolve_source(train_files=None, validation_files=None, dataset_name=str(folder), text_column="body")
    with pytest.raises(UsageError, match="cannot load split"):
        resolve_source(train_files=None, validation_files=None, dataset_name=str(tmp_path / "missing"))
    assert Path(folder).exists()


def test_dataset_by_name_from_save_to_disk_folders(tokenizer, tmp_path):
    """`Dataset.save_to_disk` folders (one split, `train`) and `DatasetDict.save_to_disk` folders both load."""
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in JSONL.read_text().splitlines()]
    single, both = tmp_path / "single", tmp_path / "dict"
    Dataset.from_list(rows).save_to_disk(str(single))
    DatasetDict({"train": Dataset.from_list(rows[10:]), "validation": Dataset.from_list(rows[:10])}).save_to_disk(str(both))
    source = resolve_source(train_files=None, validation_files=None, dataset_name=str(single))
    assert len(build_datasets(source, tokenizer, max_seq_length=64, validation_split_percentage=10).train) > 50
    source = resolve_source(train_files=None, validation_files=None, dataset_name=str(both), dataset_validation_split="validation")
    assert build_datasets(source, tokenizer, max_seq_length=64).info["validation_blocks"] >= 1
    with pytest.raises(UsageError, match="holds one split, 'train'"):
        resolve_source(train_files=None, validation_files=None, dataset_name=str(single), dataset_split="test")
    streamed = resolve_source(train_files=None, validation_files=None, dataset_name=str(single), streaming=True)
    assert next(iter(streamed._hub["train"]))["text"]
