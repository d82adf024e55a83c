"""Model cards in the Hub format, filled with the numbers of the run that wrote them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

PAPERS = {
    "recurrence": "Lei, Tian, Bastings, Parikh (2022), Simple Recurrence Improves Masked Language Models, arXiv:2205.11588",
}


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    config: Any,
    pipeline_tag: str = "fill-mask",
    metrics: dict[str, float] | None = None,
    dataset: str | None = None,
    task_name: str | None = None,
    base_model: str | None = None,
    training: dict[str, Any] | None = None,
    extra_sections: dict[str, str] | None = None,
) -> Path:
    """Write (or update) `output_dir/README.md` for a model saved there. Returns the card's path."""
    output_dir = Path(output_dir)
    tags = ["recurrent-mlm", f"encoder-{config.encoder_type}"]
    if getattr(config, "recurrence", None):
        tags.append(f"recurrence-{config.recurrence}")
    eval_results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=dataset or "custom",
            dataset_name=dataset or "custom",
            metric_type=name,
            metric_value=float(value),
        )
        for name, value in (metrics or {}).items()
    ]
    data = ModelCardData(
        license="apache-2.0",
        language="en",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=[dataset] if dataset else None,
        base_model=base_model,
        model_name=output_dir.name,
        eval_results=eval_results or None,
    )
    lines = [f"# {output_dir.name}", "", "A recurrent-mlm model.", ""]
    if metrics:
        lines += ["## Results", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {float(v):.4f} |" for k, v in metrics.items()]
        lines.append("")
    if training:
        lines += ["## Training", "", *[f"- {k}: {v}" for k, v in training.items()], ""]
    for title, body in (extra_sections or {}).items():
        lines += [f"## {title}", "", body, ""]
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))
    path = output_dir / "README.md"
    card.save(path)
    return path


__all__ = ["write_model_card"]
