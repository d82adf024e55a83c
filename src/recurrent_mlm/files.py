"""Writing results safely: atomic text and JSON files (always valid JSON), JSON-lines logs, content hashes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash) never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should be readable like any file
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_tree(folder: Path) -> None:
    """Flush every file below `folder`, and the folder itself, to disk."""
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(folder)


def fsync_dir(folder: str | os.PathLike) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # platforms that cannot open folders (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def move_into(staging: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Move every entry of `staging` into `output_dir` (one rename each), config.json last, so that a folder
    with a config always has the weights beside it; then remove `staging`. Used to write a final model as
    atomically as a checkpoint: everything is first written (and flushed) into a staging folder inside
    `output_dir`, where a full disk or a kill leaves nothing that looks like a model."""
    import shutil

    staging, output_dir = Path(staging), Path(output_dir)
    fsync_tree(staging)
    names = sorted((p.name for p in staging.iterdir()), key=lambda n: (n == "config.json", n))
    for name in names:
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staging / name, target)
    staging.rmdir()
    fsync_dir(output_dir)


def json_safe(value: Any) -> Any:
    """NaN and infinities as null (JSON has no NaN: `json.dumps` would write an invalid file), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write `data` as strict JSON (non-finite numbers become null)."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


class JsonlLogger:
    """Appends one JSON object per line (metrics over time); safe to reopen when a run resumes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(json_safe(record), default=float, allow_nan=False) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def content_digest(path: str | os.PathLike, full_limit: int = 256 << 20) -> str:
    """sha256 of a file's bytes; for files over `full_limit`, of its size and three 1 MiB samples (start,
    middle, end), so that fingerprinting a large corpus stays cheap."""
    path = Path(path)
    size = path.stat().st_size
    if size <= full_limit:
        return sha256_file(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        for offset in (0, size // 2, max(0, size - (1 << 20))):
            handle.seek(offset)
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why a .safetensors file is not whole (empty, truncated, a broken header), or None when it is: its
    8-byte header length, JSON header and every tensor's byte range are checked against the file size,
    without reading the tensors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return f"{path.name} is empty or truncated ({size} bytes)"
            n = int.from_bytes(head, "little")
            if n <= 0 or 8 + n > size:
                return f"{path.name} is truncated or not a safetensors file (header of {n} bytes, file of {size})"
            header = json.loads(handle.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        return f"{path.name} has an unreadable header ({err})"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            return f"{path.name} has a malformed entry for {name!r}"
    if 8 + n + end != size:
        return f"{path.name} is truncated: its header describes {8 + n + end} bytes, the file has {size}"
    return None


def weights_fingerprint(folder: str | os.PathLike) -> str | None:
    """A hash of a model folder's weights (the safetensors/bin files' names, sizes and safetensors headers, or
    their bytes when small), so a resumed sweep notices weights that changed at the same path. None for a Hub
    id or a folder without weight files."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") and p.is_file())
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        size = path.stat().st_size
        digest.update(str(size).encode())
        if size <= 64 << 20:
            digest.update(sha256_file(path).encode())
        elif path.suffix == ".safetensors":  # the header holds every tensor's name, dtype, shape and offsets
            with open(path, "rb") as handle:
                n = int.from_bytes(handle.read(8), "little")
                digest.update(handle.read(min(n, 100 << 20)))
                handle.seek(max(8 + n, size - (1 << 20)))
                digest.update(handle.read())  # and the last MiB of data
    return digest.hexdigest()


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> dict[str, Any]:
    """Names, sizes and sha256 of files (what a model card and a resumed run record about the data)."""
    out = []
    for path in paths:
        path = Path(path)
        out.append({"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    return {"files": out}


__all__ = [
    "fsync_tree",
    "fsync_dir",
    "move_into",
    "atomic_write_text",
    "atomic_write_json",
    "json_safe",
    "JsonlLogger",
    "sha256_file",
    "content_digest",
    "weights_fingerprint",
    "safetensors_problem",
    "files_fingerprint",
]
