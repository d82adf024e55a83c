"""What every probe shares: loading a checkpoint (and refusing one whose MLM head would be random), reading
vocabulary logits at masked positions without building full `(batch, seq, vocab)` logits, intervals and
calibration of binary choices, and writing a result as JSON + Markdown (+ a PNG drawn by the probe)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cli import UsageError
from ..files import atomic_write_json, atomic_write_text

# ----------------------------------------------------------------------------------------------------------
# Devices and loading
# ----------------------------------------------------------------------------------------------------------


def resolve_device(device: str | None) -> torch.device:
    """`None`/"auto": the GPU when there is one, else the CPU."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a torch device; use cpu, cuda, cuda:1 or auto.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available here; use --device cpu.")
    return resolved


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_tokenizer(model_path: str | os.PathLike, tokenizer_name: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = str(tokenizer_name or model_path)
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(
            f"could not load a tokenizer from {source} ({_first_line(err)}); save the tokenizer next to the model "
            "or pass --tokenizer_name."
        ) from None


@dataclass
class LoadedModel:
    """A checkpoint ready for probing: the model in eval mode, its tokenizer, and what loading found."""

    path: str
    model: torch.nn.Module
    tokenizer: Any
    has_mlm_head: bool
    missing_keys: list[str] = field(default_factory=list)
    model_type: str = ""

    @property
    def config(self):
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def max_length(self, requested: int | None = None) -> int:
        """Longest input the model takes (positions), capped by `requested`."""
        limits = [getattr(self.config, "max_position_embeddings", None), requested]
        model_max = getattr(self.tokenizer, "model_max_length", None)
        if model_max is not None and model_max < 1_000_000:
            limits.append(model_max)
        return int(min(v for v in limits if v))


def _check_path(path: str | os.PathLike) -> str:
    path = str(path)
    if not (Path(path).exists() or (path.count("/") == 1 and not path.startswith((".", "/")))):
        raise UsageError(f"--model {path} does not exist; give a model folder (or a Hub id).")
    return path


def _quiet_from_pretrained(auto_class, path: str, **kwargs):
    import transformers

    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        return auto_class.from_pretrained(path, output_loading_info=True, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        hint = "; pass --trust_remote_code if you trust its code" if "trust_remote_code" in str(err) else ""
        raise UsageError(f"could not load the model at {path}: {_first_line(err)}{hint}.") from None
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def load_model(
    path: str | os.PathLike,
    *,
    need_mlm_head: bool,
    tokenizer_name: str | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    probe: str = "this probe",
) -> LoadedModel:
    """Load a checkpoint in float32 and eval mode: its masked-LM head when it has a trained one, else the bare
    encoder. With `need_mlm_head`, a checkpoint whose MLM head would be freshly initialised (a sentence encoder
    such as all-MiniLM-L6-v2, a classifier) is refused with one line, since its "predictions" would be noise."""
    from transformers import AutoModel, AutoModelForMaskedLM

    import recurrent_mlm  # noqa: F401  (registers our model type with the Auto classes)

    path = _check_path(path)
    device = resolve_device(device) if not isinstance(device, torch.device) else device
    tokenizer = load_tokenizer(path, tokenizer_name, trust_remote_code)
    model, info = None, {}
    try:
        model, info = _quiet_from_pretrained(
            AutoModelForMaskedLM, path, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
    except UsageError:
        if need_mlm_head:
            raise
    missing = sorted(info.get("missing_keys", []) or []) if model is not None else ["<no masked-LM class>"]
    has_head = model is not None and not missing
    if need_mlm_head and not has_head:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UsageError(
            f"{path} has no trained masked-LM head (loading one would initialise {shown} at random), so {probe} "
            "cannot score it; use a checkpoint saved with its MLM head, or the probes that need none "
            "(agreement-train, memory)."
        )
    if not has_head:
        model, _ = _quiet_from_pretrained(AutoModel, path, dtype=torch.float32, trust_remote_code=trust_remote_code)
    model.to(device).eval()
    if tokenizer.mask_token_id is None and need_mlm_head:
        raise UsageError(f"the tokenizer of {path} has no mask token; {probe} needs one (pass --tokenizer_name).")
    vocab = getattr(model.config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise UsageError(
            f"the tokenizer of {tokenizer_name or path} has {len(tokenizer)} tokens but the model embeds only {vocab}; "
            "use the tokenizer it was trained with (--tokenizer_name)."
        )
    return LoadedModel(
        path=path,
        model=model,
        tokenizer=tokenizer,
        has_mlm_head=has_head,
        missing_keys=missing if not has_head else [],
        model_type=getattr(model.config, "model_type", ""),
    )


def encoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The bare encoder of a model with a head (or the model itself)."""
    base = getattr(model, "base_model", None)
    return base if base is not None else model


def _head_of(model: torch.nn.Module):
    """The module mapping final hidden states to vocabulary logits, when it is one module."""
    for name in ("cls", "lm_head"):
        head = getattr(model, name, None)
        if head is not None:
            return head
    return None


def masked_log_probs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    positions: torch.Tensor,
) -> torch.Tensor:
    """Log-probabilities over the vocabulary at one position per row: `(batch,)` positions -> `(batch, vocab)`.

    The vocabulary projection runs only at those positions (BERT-family and our heads), not over the whole
    sequence as `model(...).logits` would."""
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    head = _head_of(model)
    if head is not None and getattr(model, "base_model", None) is not None and model.base_model is not model:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = head(hidden[rows, positions])  # (batch, vocab)
    else:  # any other masked LM: full logits, then the rows we need
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, positions]
    return torch.log_softmax(logits.float(), dim=-1)


# ----------------------------------------------------------------------------------------------------------
# Statistics of binary outcomes
# ----------------------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); (nan, nan) when n = 0."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_summary(correct: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """`n`, `correct`, `accuracy` and its 95% Wilson interval `ci_low`, `ci_high`."""
    values = np.asarray(correct, dtype=bool)
    n, k = int(values.size), int(values.sum())
    low, high = wilson_interval(k, n)
    return {"n": n, "correct": k, "accuracy": (k / n) if n else math.nan, "ci_low": low, "ci_high": high}


def binary_calibration(p_correct: Sequence[float] | np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """Calibration of two-way choices from the probability each item gives its correct option.

    ECE (Guo et al.; 15 equal-width bins of the confidence max(p, 1-p), as for GLUE) and the Brier score
    ``mean((1 - p)^2)``, the squared error of the correct option's probability (the two-class sum of squared
    errors is twice this)."""
    from ..glue.ece_metric import expected_calibration_error

    p = np.asarray(p_correct, dtype=np.float64)
    if p.size == 0:
        return {"ece": math.nan, "brier": math.nan}
    probabilities = np.stack([p, 1.0 - p], axis=1)  # class 0: the correct option
    ece = expected_calibration_error(probabilities, np.zeros(len(p), dtype=np.int64), n_bins=n_bins)["ece"]
    return {"ece": float(ece), "brier": float(np.mean((1.0 - p) ** 2))}


# ----------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_accuracy(summary: dict[str, Any] | None) -> str:
    """`0.812 [0.790, 0.832]`, or `-` for no items."""
    if not summary or not summary.get("n"):
        return "-"
    return f"{summary['accuracy']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub table; `align` is one character per column (`l` or `r`, default: first left, rest right)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    marks = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


def write_result(output_dir: str | os.PathLike, name: str, data: dict[str, Any], markdown: str) -> dict[str, Path]:
    """`<name>.json` (NaN written as null) and `<name>.md` in `output_dir`; returns their paths."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / f"{name}.json", "markdown": folder / f"{name}.md"}
    atomic_write_json(paths["json"], _jsonable(data))
    atomic_write_text(paths["markdown"], markdown)
    return paths


def write_jsonl(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    atomic_write_text(path, "".join(json.dumps(_jsonable(row)) + "\n" for row in rows))
    return Path(path)


def pyplot():
    """matplotlib's pyplot on the file-only backend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


__all__ = [
    "LoadedModel",
    "UsageError",
    "accuracy_summary",
    "binary_calibration",
    "encoder_of",
    "fmt",
    "fmt_accuracy",
    "load_model",
    "load_tokenizer",
    "markdown_table",
    "masked_log_probs",
    "pyplot",
    "resolve_device",
    "wilson_interval",
    "write_jsonl",
    "write_result",
]


# ----------------------------------------------------------------------------------------------------------
# Command lines from argument dataclasses
# ----------------------------------------------------------------------------------------------------------
def arg(default: Any = None, help: str = "", **extra: Any):  # noqa: A002  (argparse's name)
    """A dataclass field with its command-line help (`metadata["help"]`); mutable defaults are copied."""
    from dataclasses import field as dc_field

    metadata = {"help": help, **extra}
    if isinstance(default, (list, dict, set)):
        return dc_field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dc_field(default=default, metadata=metadata)


def add_dataclass_arguments(parser, cls, skip: Sequence[str] = ()) -> None:
    """One `--field` per dataclass field of `cls` (types from the annotations; help from the metadata).
    Sequences take several values; a sequence that may be empty or None accepts the single value `none`."""
    import argparse
    import collections.abc
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else (None if required else f.default)
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", "")}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if hint is bool:
            kwargs.update(action=argparse.BooleanOptionalAction if default else "store_true", default=bool(default))
        elif typing.get_origin(hint) in (list, tuple, collections.abc.Sequence):
            element = (typing.get_args(hint) or (str,))[0]
            kwargs.update(nargs="+", type=_none_or(element), default=list(default) if default is not None else None)
        elif required:
            kwargs.update(type=hint, required=True)
        else:
            kwargs.update(type=hint, default=default)
        parser.add_argument(f"--{f.name}", **kwargs)


def _none_or(element):
    def convert(text: str):
        return None if text.lower() == "none" else element(text)

    convert.__name__ = getattr(element, "__name__", "value")
    return convert


def dataclass_from_namespace(cls, namespace) -> Any:
    """Build `cls` from parsed arguments; a sequence given as `none` becomes None."""
    import dataclasses

    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(namespace, f.name):
            continue
        value = getattr(namespace, f.name)
        if isinstance(value, list):
            value = None if all(v is None for v in value) else [v for v in value if v is not None]
        values[f.name] = value
    return cls(**values)
