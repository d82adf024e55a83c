"""Reading pretraining text files into records: local files and folders of text, JSON lines or CSV, gzipped or
not, decoded robustly. (`corpus` turns a whole data source, files or a `datasets` dataset, into packed blocks.)

A *record* is `{"text": str, "doc_end": bool}`; `doc_end` marks the last record of a document, after which the
packer inserts a separator token (RoBERTa's FULL-SENTENCES packing). Documents are:

* a plain-text file (`.txt`, `.text`): the whole file. Its paragraphs (blocks of lines separated by blank
  lines) become records, so no line is ever one huge string, but no separator is placed between them;
* a JSON-lines / JSON-array / CSV file: one row (its `--text_column`).

Files may be gzip-compressed (`.gz`). Bytes that are not UTF-8 (Latin-1 files, broken downloads) never stop a
run: each such line is decoded with U+FFFD replacement characters and counted in a `DecodeStats`, which the
script reports.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cli import UsageError

TEXT_SUFFIXES = (".txt", ".text")
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSON_SUFFIXES + CSV_SUFFIXES
# Paragraphs longer than this are split into several records (a file without blank lines is still streamed).
MAX_RECORD_CHARS = 100_000
_CHUNK_BYTES = 8 << 20
_BOM = b"\xef\xbb\xbf"


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def file_kind(path: Path) -> str | None:
    """`"text"`, `"json"`, `"csv"`, or None for a file we do not read."""
    suffix = _base_suffix(path)
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in JSON_SUFFIXES:
        return "json"
    if suffix in CSV_SUFFIXES:
        return "csv"
    return None


def resolve_data_files(paths: Iterable[str | os.PathLike], flag: str) -> list[Path]:
    """Expand files and folders (recursively, sorted, hidden names skipped) into the files we read."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{flag} {path} does not exist; check the path.")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and file_kind(p) is not None
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UsageError(
                    f"{flag} {path} is a folder with no {'/'.join(SUPPORTED_SUFFIXES)} files (optionally .gz); "
                    "point it at a folder of text, JSON-lines or CSV files."
                )
            files.extend(found)
        else:
            if file_kind(path) is None:
                raise UsageError(
                    f"{flag} {path}: unsupported file type; use {', '.join(SUPPORTED_SUFFIXES)} (optionally .gz)."
                )
            files.append(path)
    return files


def files_fingerprint(files: Iterable[Path]) -> str:
    """Changes whenever a file is added, removed, resized or touched (keys the `datasets` cache)."""
    h = hashlib.sha256()
    for path in files:
        stat = path.stat()
        h.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


@dataclass
class DecodeStats:
    """Lines that were not valid UTF-8 (decoded with replacement characters), per file."""

    lines: int = 0
    replaced: dict[str, int] = field(default_factory=dict)

    @property
    def replaced_lines(self) -> int:
        return sum(self.replaced.values())

    def merge(self, other: DecodeStats) -> None:
        self.lines += other.lines
        for name, count in other.replaced.items():
            self.replaced[name] = self.replaced.get(name, 0) + count

    def summary(self, max_files: int = 5) -> str | None:
        """One line for the log, or None when every line was valid UTF-8."""
        if not self.replaced:
            return None
        worst = sorted(self.replaced.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{name} ({count} line{'s' if count != 1 else ''})" for name, count in worst[:max_files])
        more = f" and {len(worst) - max_files} more" if len(worst) > max_files else ""
        return (
            f"{self.replaced_lines} of {self.lines} lines in {len(self.replaced)} file(s) were not valid UTF-8 "
            f"and were read with U+FFFD replacement characters: {shown}{more}."
        )


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decoded_lines(path: Path, stats: DecodeStats | None = None) -> Iterator[str]:
    """Lines of `path` as text, line endings kept. Chunks that are valid UTF-8 decode in one call; a chunk that
    is not is decoded line by line so that only the bad lines get replacement characters (and are counted).
    A UTF-16 file (recognised by its byte-order mark) is decoded as such. A truncated or corrupt .gz file is a
    `UsageError` naming it."""
    import zlib

    name = str(path)
    try:
        with _open_binary(path) as handle:
            start = handle.read(2)
        if start in _UTF16_BOMS:
            yield from _utf16_lines(path)
            return
        yield from _utf8_lines(path, name, stats)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise UsageError(f"{path} is a damaged gzip file ({err}); download or compress it again.") from None


def _utf16_lines(path: Path) -> Iterator[str]:
    with _open_binary(path) as raw:
        import io

        with io.TextIOWrapper(raw, encoding="utf-16", errors="replace", newline="") as text:
            for line in text:
                yield line.replace("\r\n", "\n")


def _utf8_lines(path: Path, name: str, stats: DecodeStats | None) -> Iterator[str]:
    first = True
    carry = b""
    with _open_binary(path) as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            if not chunk:
                break
            chunk = carry + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: keep reading (a very long line)
                carry = chunk
                continue
            chunk, carry = chunk[:cut], chunk[cut:]
            if first:
                chunk = chunk.removeprefix(_BOM)
                first = False
            yield from _decode_chunk(chunk, name, stats)
        if carry:
            if first:
                carry = carry.removeprefix(_BOM)
            yield from _decode_chunk(carry, name, stats)


def _split_lines(text):
    """Split after each newline only. (`str.splitlines` also splits at form feeds, U+2028 and other
    separators that may legally sit inside a JSON string or a CSV field.)"""
    newline = "\n" if isinstance(text, str) else b"\n"
    parts = text.split(newline)
    lines = [part + newline for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _decode_chunk(chunk: bytes, name: str, stats: DecodeStats | None) -> Iterator[str]:
    try:
        lines = _split_lines(chunk.decode("utf-8"))
    except UnicodeDecodeError:
        lines = []
        for raw in _split_lines(chunk):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(raw.decode("utf-8", errors="replace"))
                if stats is not None:
                    stats.replaced[name] = stats.replaced.get(name, 0) + 1
    if stats is not None:
        stats.lines += len(lines)
    yield from lines


# --------------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------------
def _text_file_records(path: Path, stats: DecodeStats | None) -> Iterator[dict[str, Any]]:
    """Paragraphs of a plain-text file; the last one closes the document."""
    pending: str | None = None  # held back one record so the last one can be marked doc_end
    paragraph: list[str] = []
    size = 0

    def flush():
        nonlocal paragraph, size
        text = "\n".join(paragraph)
        paragraph, size = [], 0
        return text

    for line in decoded_lines(path, stats):
        line = line.rstrip("\r\n")
        if line.strip():
            paragraph.append(line)
            size += len(line) + 1
            if size < MAX_RECORD_CHARS:
                continue
        if paragraph:
            if pending is not None:
                yield {"text": pending, "doc_end": False}
            pending = flush()
    if paragraph:
        if pending is not None:
            yield {"text": pending, "doc_end": False}
        pending = flush()
    if pending is not None:
        yield {"text": pending, "doc_end": True}


def _json_rows(path: Path, stats: DecodeStats | None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for a JSON-lines file or a JSON array."""
    lines = decoded_lines(path, stats)
    head: list[str] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    if head and head[-1].lstrip().startswith("["):
        text = "".join(head) + "".join(lines)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}); fix the file.") from None
        if not isinstance(data, list):
            raise UsageError(f"{path} holds a JSON {type(data).__name__}; give a JSON array of objects or JSON lines.")
        yield from ((0, row) for row in data)
        return
    for number, line in enumerate(_chain(head, lines), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(
                f"{path} line {number} is not valid JSON ({err.msg}); fix that line, or give one JSON object per line."
            ) from None


def _chain(first: list[str], rest: Iterator[str]) -> Iterator[str]:
    yield from first
    yield from rest


def _csv_rows(path: Path, stats: DecodeStats | None) -> Iterator[tuple[int, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.DictReader(decoded_lines(path, stats))
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise UsageError(f"{path} line {reader.line_num} is not valid CSV ({err}); fix the file.") from None


def _row_text(path: Path, number: int, row: Any, text_column: str) -> str | None:
    where = f"{path} line {number}" if number else f"{path}"
    if not isinstance(row, dict):
        raise UsageError(f"{where} is a JSON {type(row).__name__}, not an object with a {text_column!r} field.")
    if text_column not in row:
        columns = ", ".join(sorted(map(str, row))) or "none"
        raise UsageError(
            f"{where} has no column {text_column!r} (it has: {columns}); pass --text_column with the right name."
        )
    value = row[text_column]
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(
            f"{where}: column {text_column!r} holds a {type(value).__name__}, not text; choose a text column "
            "with --text_column."
        )
    return value


def file_records(path: Path, text_column: str = "text", stats: DecodeStats | None = None) -> Iterator[dict[str, Any]]:
    """Records of one file (see the module docstring); raises `UsageError` on malformed files."""
    kind = file_kind(path)
    if kind == "text":
        yield from _text_file_records(path, stats)
        return
    rows = _json_rows(path, stats) if kind == "json" else _csv_rows(path, stats)
    for number, row in rows:
        text = _row_text(path, number, row, text_column)
        if text is not None and text.strip():
            yield {"text": text, "doc_end": True}


def generate_records(files: list[str], text_column: str = "text", fingerprint: str = "") -> Iterator[dict[str, Any]]:
    """Records of several files, in order. A plain function of picklable arguments, so that `datasets` can
    cache its output (keyed by `fingerprint`, which changes with the files) and shard it by file."""
    del fingerprint  # only part of the cache key
    for name in files:
        yield from file_records(Path(name), text_column)


@dataclass
class CorpusReport:
    files: int
    documents: int
    characters: int
    decode: DecodeStats

    def describe(self) -> str:
        return f"{self.files} file(s), {self.documents:,} documents, {self.characters:,} characters"


def scan_files(files: list[Path], text_column: str, flag: str, full: bool = True) -> CorpusReport:
    """Read every file once before anything is written: malformed files and a corpus without text stop the run
    here, and lines that are not UTF-8 are counted. With `full=False` (streaming) only the first record of each
    file is read, so a huge corpus is not read twice."""
    stats = DecodeStats()
    documents = characters = 0
    for path in files:
        try:
            for record in file_records(path, text_column, stats):
                characters += len(record["text"])
                documents += record["doc_end"]
                if not full:
                    break
        except OSError as err:  # unreadable, or a corrupt .gz
            raise UsageError(f"{flag}: cannot read {path} ({err}); fix or remove the file.") from None
    if characters == 0:
        shown = ", ".join(str(p) for p in files[:3]) + (" ..." if len(files) > 3 else "")
        raise UsageError(f"{flag}: the corpus is empty (no text in {shown}); give files that contain text.")
    return CorpusReport(files=len(files), documents=documents, characters=characters, decode=stats)


def iter_texts(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    for record in records:
        yield record["text"]


__all__ = [
    "SUPPORTED_SUFFIXES",
    "CorpusReport",
    "DecodeStats",
    "decoded_lines",
    "file_kind",
    "file_records",
    "files_fingerprint",
    "generate_records",
    "iter_texts",
    "resolve_data_files",
    "scan_files",
]
