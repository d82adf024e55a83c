"""Upload an output folder to the Hugging Face Hub (model, tokenizer, code, card; never checkpoints or logs)."""

from __future__ import annotations

import os
from pathlib import Path

# Training state and tracker logs stay local: they are large, private to a run, and (optimizer states) pickled
# by some tools.
UPLOAD_IGNORE_PATTERNS = [
    "checkpoint-*",
    "checkpoint-*/**",
    "checkpoints/**",
    "runs/**",
    "logs/**",
    "tensorboard/**",
    "*.tmp",
    ".*",
    "**/.*",
]


def push_output_dir(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> str:
    """Create `repo_id` if needed and upload `folder` to it (on branch `revision`, created if missing).

    The token comes from `token`, else the usual places (`HF_TOKEN`, `huggingface-cli login`); it is never
    printed or written by us. Returns the commit URL.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} has no config.json; push a folder written by save_pretrained.")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} with recurrent-mlm",
        ignore_patterns=UPLOAD_IGNORE_PATTERNS,
    )
    return str(getattr(info, "commit_url", info))


__all__ = ["push_output_dir", "UPLOAD_IGNORE_PATTERNS"]
