"""Push an output folder to the Hugging Face Hub: model, tokenizer, code and card; never training state or logs.

    from recurrent_mlm.hub import push_output_dir
    push_output_dir("outputs/mini-recurrent", "my-user/mini-recurrent", revision="v1", private=True)

or from a shell:

    python -m recurrent_mlm.hub push outputs/mini-recurrent --hub_model_id my-user/mini-recurrent \
        [--hub_revision v1] [--hub_private] [--commit_message "..."] [--dry_run]

The token comes from the usual places, in huggingface_hub's order: `HF_TOKEN`, then the token stored by
`hf auth login`. We never print it, log it or write it anywhere (this CLI deliberately has no `--hub_token`
flag: command lines end up in shell histories and `ps` listings; the training scripts accept one for users
of transformers' examples, and warn about it in its help). Every problem is reported as a
`HubPushError` whose message is one line saying what is wrong and how to fix it; the CLI prints that line
and exits with status 1 (2 for a malformed command line).

A push is one commit: the Hub moves the branch only once every file has arrived, so a push that fails or
is interrupted leaves the repo's previous revision exactly as it was. Pushing the same folder again is a
no-op; pushing a changed folder replaces the weight files and deletes weight files the folder no longer
has (a stale shard index would otherwise make the model unloadable).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# Never uploaded. Training state is large, specific to one machine and mostly pickled; tracker logs are
# private to a run. Pickle-based formats (.bin, .pt, .pth, .pkl, .ckpt) are left out altogether: weights go
# to the Hub as safetensors only, which load without executing code. Patterns are fnmatch-style on paths
# relative to the folder ("*" also matches "/"), as huggingface_hub's `filter_repo_objects` applies them.
UPLOAD_IGNORE_PATTERNS = [
    # training state: Trainer checkpoints, accelerate `save_state` folders, optimizer/scheduler/RNG files
    "checkpoint-*",
    "*/checkpoint-*",
    "checkpoints/*",
    "step_*/*",
    "epoch_*/*",
    "training_args.bin",
    "optimizer.*",
    "scheduler.*",
    "scaler.*",
    "rng_state*",
    "random_states_*",
    # pickled files of any kind
    "*.bin",
    "*.pt",
    "*.pth",
    "*.pkl",
    "*.pickle",
    "*.ckpt",
    # tracker logs
    "runs/*",
    "*/runs/*",
    "logs/*",
    "tensorboard/*",
    "wandb/*",
    "mlruns/*",
    "*tfevents*",
    "*.log",
    # hidden files, caches, temporaries
    ".*",
    "*/.*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.pyc",
    "*.tmp",
    "*.lock",
]

# Weight files transformers reads. When a push does not contain one that the repo has (say the model went
# from sharded to a single file), the old one is deleted in the same commit.
STALE_WEIGHT_PATTERNS = [
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-*-of-*.bin",
    "pytorch_model.bin.index.json",
]

_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


class HubPushError(RuntimeError):
    """A push that cannot go ahead; the message says what is wrong and how to fix it, in one line."""


# ----------------------------------------------------------------------------------------------------------
# What goes up
# ----------------------------------------------------------------------------------------------------------
def files_to_upload(folder: str | os.PathLike) -> list[str]:
    """The files of `folder` a push uploads (POSIX paths relative to it), sorted."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    paths = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(filter_repo_objects(paths, ignore_patterns=UPLOAD_IGNORE_PATTERNS))


def check_push_folder(folder: str | os.PathLike) -> list[str]:
    """Check that `folder` holds a model that loads from the Hub without this package; return its files.

    That needs `config.json`, safetensors weights, and the code files its `auto_map` names together with
    the files they import relatively (transformers downloads exactly those).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubPushError(
            f"{folder} is not a folder; pass the output folder a training script or save_pretrained wrote."
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise HubPushError(
            f"{folder} has no config.json; push a folder written by save_pretrained (model.save_pretrained(folder))."
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HubPushError(
            f"{config_path} is not valid JSON ({err}); save the model again with save_pretrained."
        ) from None
    files = files_to_upload(folder)
    if not any(f in files for f in ("model.safetensors", "model.safetensors.index.json")):
        raise HubPushError(
            f"{folder} has no safetensors weights (model.safetensors or model.safetensors.index.json); "
            "save the model with save_pretrained, which writes them."
        )
    from .files import safetensors_problem

    for name in sorted(f for f in files if f.endswith(".safetensors")):
        problem = safetensors_problem(folder / name)
        if problem:
            raise HubPushError(f"{folder}: {problem}; save the model again (save_pretrained) before pushing.")
    if config.get("model_type") == "recurrent_mlm" and not config.get("auto_map"):
        raise HubPushError(
            f"{config_path} has no auto_map, so the model would not load without recurrent_mlm; save it again with "
            "recurrent_mlm imported (import recurrent_mlm; model.save_pretrained(...))."
        )
    if "README.md" in files:
        _check_card(folder / "README.md")
    code_files = _code_files(folder, config)
    missing = sorted(f for f in code_files if f not in files)
    if missing:
        raise HubPushError(
            f"{folder} lacks the model code {', '.join(missing)} that config.json's auto_map needs to load without "
            "recurrent_mlm; save the model with recurrent_mlm installed (import recurrent_mlm; model.save_pretrained(...))."
        )
    return files


def _check_card(path: Path) -> None:
    # The Hub rejects a commit whose README metadata does not parse; catch that before creating anything.
    from huggingface_hub import ModelCard

    try:
        ModelCard.load(path)
    except Exception as err:  # noqa: BLE001 - YAML and model-index errors come as several types
        # huggingface_hub suggests ignore_metadata_errors=True, which would only hide the problem from the Hub.
        detail = " ".join(str(err).split()).split(" Pass `ignore_metadata_errors")[0].rstrip(".")
        raise HubPushError(
            f"{path}'s metadata block is invalid ({detail}); fix the YAML at the top of the card "
            "(recurrent_mlm.model_card.write_model_card writes a valid one)."
        ) from None


def _code_files(folder: Path, config: dict) -> set[str]:
    from transformers.dynamic_module_utils import get_relative_imports

    modules = {
        ref.split("--")[-1].rsplit(".", 1)[0]
        for ref in (config.get("auto_map") or {}).values()
        # "other/repo--module.Class" lives in another repo: transformers fetches it from there.
        if isinstance(ref, str) and "--" not in ref
    }
    needed: set[str] = set()
    todo = [f"{m.replace('.', '/')}.py" for m in modules]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if (folder / name).is_file():
            todo += [f"{m.replace('.', '/')}.py" for m in get_relative_imports(str(folder / name))]
    return needed


# ----------------------------------------------------------------------------------------------------------
# Tokens and access
# ----------------------------------------------------------------------------------------------------------
def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _token_source(token_argument: str | None) -> str:
    if token_argument:
        return "the token passed to this call"
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "the token in HF_TOKEN"
    return "the token saved by `hf auth login`"


def _resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    resolved = token or get_token()
    if not resolved:
        raise HubPushError(
            "no Hugging Face token found; set HF_TOKEN to a token with write access or run `hf auth login` "
            f"(tokens: {_endpoint()}/settings/tokens)."
        )
    return resolved


def _validate_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if not isinstance(repo_id, str) or not repo_id:
            raise HFValidationError("empty")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubPushError(
            f"{repo_id!r} is not a valid repo id; use 'user-or-org/model-name' (letters, digits, '-', '_', '.'; "
            "no '--' or '..'; at most 96 characters)."
        ) from None


def _validate_branch(revision: str | None) -> None:
    if revision is None:
        return
    if _COMMIT_ID.fullmatch(revision):
        raise HubPushError(
            f"--hub_revision {revision} looks like a commit id; pushes go to a branch: give a branch name."
        )
    if (
        not revision
        or revision.startswith(("/", "-", "refs/"))
        or any(c in revision for c in " ~^:?*[\\")
        or ".." in revision
    ):
        raise HubPushError(
            f"{revision!r} is not a valid branch name; use letters, digits, '-', '_', '.' or '/'."
        )


def _explain(err: Exception, action: str, token_argument: str | None) -> HubPushError:
    """One actionable line for an error raised by huggingface_hub or the network."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    endpoint = _endpoint()
    if isinstance(err, OfflineModeIsEnabled):
        return HubPushError(
            f"cannot {action}: HF_HUB_OFFLINE is set; unset it (or set HF_HUB_OFFLINE=0) to push."
        )
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        server = (err.server_message or "").strip().splitlines()
        detail = f" ({server[0]})" if server else ""
        if status == 401:
            return HubPushError(
                f"the Hub at {endpoint} rejected {_token_source(token_argument)} (401 Unauthorized): it is invalid, "
                f"expired or revoked; create a write token at {endpoint}/settings/tokens and set HF_TOKEN "
                "or run `hf auth login --force`."
            )
        if status == 403:
            return HubPushError(
                f"cannot {action}: the Hub refused with 403 Forbidden{detail}; use a token with write access to that "
                "namespace (a write token of the user or of a member of the organization)."
            )
        return HubPushError(
            f"cannot {action}: the Hub answered {status}{detail}; the repo's previous revision is unchanged."
        )
    if _is_connection_error(err):
        return HubPushError(
            f"cannot {action}: the Hub at {endpoint} is unreachable ({err}); check the network or HF_ENDPOINT."
        )
    return HubPushError(f"cannot {action}: {type(err).__name__}: {err}".splitlines()[0])


def _is_connection_error(err: Exception) -> bool:
    try:
        import httpx2 as httpx
    except ImportError:  # older huggingface_hub releases use httpx
        import httpx
    return isinstance(err, (httpx.TransportError, ConnectionError))


def check_push_access(repo_id: str, *, token: str | None = None) -> str:
    """Check, before any training starts, that a later push to `repo_id` can work; return the full repo id.

    Validates the repo id and the token (present, accepted by the Hub, not read-only) without creating
    anything. A training script calls this first when `--push_to_hub` is set, so a typo or an expired
    token fails in a second instead of after the run.
    """
    from huggingface_hub import HfApi

    _validate_repo_id(repo_id)
    api = HfApi(token=_resolve_token(token))
    try:
        me = api.whoami()
    except Exception as err:  # noqa: BLE001 - every failure becomes one actionable line
        raise _explain(err, "check the token", token) from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise HubPushError(
            f"{_token_source(token)} is read-only; pushing needs a token with the write role "
            f"({_endpoint()}/settings/tokens)."
        )
    return repo_id if "/" in repo_id else f"{me['name']}/{repo_id}"


# ----------------------------------------------------------------------------------------------------------
# Push
# ----------------------------------------------------------------------------------------------------------
def push_output_dir(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload the model in `folder` to `repo_id` (created if missing) on branch `revision`; return the commit URL.

    `revision` is a branch, created from `main` if it does not exist (default: `main`). `private=True`
    creates a private repo, or makes an existing public one private; `private=False` creates a public repo
    but never publishes an existing private one (do that on the Hub, deliberately). `private=None` keeps
    the Hub's default for new repos. The token comes from `token`, else `HF_TOKEN`, else `hf auth login`.

    Raises `HubPushError` with a one-line explanation when the folder, repo id, branch name or token is
    wrong, or the Hub refuses; nothing is changed on the Hub in that case.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    files = check_push_folder(folder)
    _validate_branch(revision)
    repo_id = check_push_access(repo_id, token=token)
    api = HfApi(token=_resolve_token(token))
    action = f"push {folder} to {repo_id}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private is not None:
            _apply_visibility(api, repo_id, private)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        if "README.md" not in files:
            logger.warning(
                "%s has no model card (README.md); write one with recurrent_mlm.model_card.write_model_card.",
                folder,
            )
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with recurrent-mlm",
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
            delete_patterns=STALE_WEIGHT_PATTERNS,
        )
    except HubPushError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure becomes one actionable line
        raise _explain(err, action, token) from None
    logger.info(
        "Pushed %d files from %s to %s (revision %s).", len(files), folder, repo_id, revision or "main"
    )
    return str(getattr(info, "commit_url", info))


def _apply_visibility(api, repo_id: str, private: bool) -> None:
    is_private = bool(api.repo_info(repo_id).private)
    if private and not is_private:
        logger.warning("%s was public; making it private as requested.", repo_id)
        api.update_repo_settings(repo_id, private=True)
    elif not private and is_private:
        logger.warning(
            "%s is private and stays private: publish it on the Hub if that is what you want.", repo_id
        )


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def add_hub_arguments(
    parser: argparse.ArgumentParser, *, with_push_flag: bool = True, with_token_flag: bool = False
) -> None:
    """The Hub flags shared by the training scripts and `python -m recurrent_mlm.hub push`.

    `with_token_flag` adds `--hub_token` (the training scripts' users expect it, as in transformers'
    examples); its help steers them to HF_TOKEN, which stays out of shell histories and `ps`.
    """
    if with_push_flag:
        parser.add_argument(
            "--push_to_hub", action="store_true", help="Push the output folder to the Hub at the end."
        )
    parser.add_argument(
        "--hub_model_id", type=str, default=None, help="Repo to push to: 'user-or-org/model-name'."
    )
    parser.add_argument(
        "--hub_revision",
        type=str,
        default=None,
        help="Branch to push to (created from main if missing; default main).",
    )
    parser.add_argument(
        "--hub_private",
        "--hub_private_repo",  # transformers' TrainingArguments spelling
        dest="hub_private",
        action="store_true",
        help="Create the repo private (or make an existing public repo private).",
    )
    if with_token_flag:
        parser.add_argument(
            "--hub_token",
            type=str,
            default=None,
            help="Hub token with write access. Prefer the HF_TOKEN variable or `hf auth login`: a token on "
            "the command line ends up in shell histories and process listings.",
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recurrent_mlm.hub",
        description="Upload a recurrent-mlm output folder (model, tokenizer, code, card) to the Hugging Face Hub. "
        "The token comes from HF_TOKEN or `hf auth login`; it is never printed or written.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="Upload an output folder.")
    push.add_argument("output_dir", help="Folder written by save_pretrained or a training script.")
    add_hub_arguments(push, with_push_flag=False)
    push.add_argument(
        "--commit_message", type=str, default=None, help="Commit message (default names the folder)."
    )
    push.add_argument(
        "--dry_run", action="store_true", help="List the files that would be uploaded and stop."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Our progress lines only: at INFO, the HTTP libraries would log every request.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    try:
        if args.dry_run:
            for name in check_push_folder(args.output_dir):
                print(name)
            return 0
        if not args.hub_model_id:
            raise HubPushError(
                "--hub_model_id is required: the repo to push to, as 'user-or-org/model-name'."
            )
        url = push_output_dir(
            args.output_dir,
            args.hub_model_id,
            revision=args.hub_revision,
            private=True if args.hub_private else None,
            commit_message=args.commit_message,
        )
    except HubPushError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(url)
    return 0


__all__ = [
    "STALE_WEIGHT_PATTERNS",
    "UPLOAD_IGNORE_PATTERNS",
    "HubPushError",
    "add_hub_arguments",
    "check_push_folder",
    "check_push_access",
    "files_to_upload",
    "main",
    "push_output_dir",
]

if __name__ == "__main__":
    raise SystemExit(main())
