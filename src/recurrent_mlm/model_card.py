"""Model cards in the Hub format, filled with the numbers of the run that wrote them.

A card is a README.md: YAML metadata (`license`, `language`, `library_name: transformers`, `pipeline_tag`,
`tags` naming the variant, `datasets`, `base_model` for fine-tunes, `model-index` results) built with
huggingface_hub's `ModelCardData`/`EvalResult`, then markdown rendered from `CARD_TEMPLATE`.

The generated markdown sits between two HTML comments (invisible on the Hub). Writing a card into a folder
that already has one replaces only that block and merges the metadata: text outside the block, metadata
keys we do not generate, a hand-set license, and results for other tasks all survive. So a card can be
written after pretraining, extended by hand, and updated again by each fine-tuning run.

`model_cards/build_cards.py` renders the per-variant cards of the repository from the same template.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .variants import VARIANTS, variant_of

REPOSITORY_URL = "https://github.com/recurrent-mlm/recurrent-mlm"
BEGIN_MARKER = "<!-- recurrent-mlm:generated:begin (this block is rewritten when the card is regenerated; write outside it) -->"
BEGIN_PREFIX = "<!-- recurrent-mlm:generated:begin"
END_MARKER = "<!-- recurrent-mlm:generated:end -->"

PAPERS = {
    "bert": (
        "Devlin, Chang, Lee, Toutanova (2019). BERT: Pre-training of Deep Bidirectional Transformers for "
        "Language Understanding. NAACL.",
        "https://arxiv.org/abs/1810.04805",
    ),
    "recurrence": (
        "Lei, Tian, Bastings, Parikh (2022). Simple Recurrence Improves Masked Language Models.",
        "https://arxiv.org/abs/2205.11588",
    ),
    "sru": (
        "Lei, Zhang, Wang, Dai, Artzi (2018). Simple Recurrent Units for Highly Parallelizable Recurrence. EMNLP.",
        "https://arxiv.org/abs/1709.02755",
    ),
    "universal": (
        "Dehghani, Gouws, Vinyals, Uszkoreit, Kaiser (2019). Universal Transformers. ICLR.",
        "https://arxiv.org/abs/1807.03819",
    ),
    "albert": (
        "Lan, Chen, Goodman, Gimpel, Sharma, Soricut (2020). ALBERT: A Lite BERT for Self-supervised Learning "
        "of Language Representations. ICLR.",
        "https://arxiv.org/abs/1909.11942",
    ),
    "sequential": (
        "Abnar, Dehghani, Zuidema (2020). Transferring Inductive Biases through Knowledge Distillation.",
        "https://arxiv.org/abs/2006.00555",
    ),
    "stable": ("Miller, Hardt (2019). Stable Recurrent Models. ICLR.", "https://arxiv.org/abs/1805.10369"),
    "hybrid": (
        "Wen, Dang, Lyu (2024). RNNs are not Transformers (Yet): The Key Bottleneck on In-context Retrieval.",
        "https://arxiv.org/abs/2402.18510",
    ),
}

INTENDED_USE = (
    "Research on how recurrence changes masked language models: pretraining and fine-tuning comparisons "
    "between encoder variants at equal parameter counts, probing (e.g. subject-verb agreement) and "
    "fine-tuning stability studies. Like BERT, the model produces contextual token representations and "
    "fills masked tokens; it is fine-tuned for classification, tagging or extractive QA with the heads the "
    "code provides."
)
LIMITATIONS = (
    "These are research models. They are not instruction-tuned and do not generate text. They inherit the "
    "biases of their English pretraining text, and their scores should be read next to the BERT baseline "
    "trained with the same recipe, not against published BERT checkpoints trained for far longer. Inputs are "
    "limited to `max_position_embeddings` tokens."
)

# One template for the per-variant cards in model_cards/ and the cards the training scripts write. Jinja;
# rendered by huggingface_hub's `ModelCard.from_template`.
CARD_TEMPLATE = """{# The model-card template of recurrent-mlm: source in src/recurrent_mlm/model_card.py (CARD_TEMPLATE);
model_cards/template.md is a copy written by model_cards/build_cards.py. Jinja, rendered by
huggingface_hub's ModelCard.from_template. -#}
---
{{ card_data }}
---

# {{ title }}

{{ begin_marker }}
{{ summary }}
{% if foreign %}
- **Trained with:** the scripts of [recurrent-mlm]({{ repository_url }})
{%- else %}
- **Variant:** `{{ variant }}`{% if variant_title %} ({{ variant_title }}){% endif %}
- **Follows:** {% for paper in papers %}[{{ paper.text }}]({{ paper.url }}){% if not loop.last %}; {% endif %}{% endfor %}
- **Code:** [recurrent-mlm]({{ repository_url }}) (`model_type: recurrent_mlm`)
{%- endif %}
{%- if base_model %}
- **Fine-tuned from:** [{{ base_model }}](https://huggingface.co/{{ base_model }})
{%- endif %}

## Model description

{{ differences }}
{%- if architecture_caption %}

{{ architecture_caption }}
{%- endif %}

| | |
|---|---|
{%- for key, value in architecture %}
| {{ key }} | {{ value }} |
{%- endfor %}

## Intended uses and limitations

{{ intended_use }}

{{ limitations }}

## How to use
{% if foreign %}
```python
from transformers import {{ auto_class }}

model = {{ auto_class }}.from_pretrained("{{ repo_id }}", revision="{{ revision }}")
```
{% else %}
The modelling code ships with the weights, so `transformers` loads the model without `recurrent_mlm`
installed; `trust_remote_code=True` runs that code, so pin the revision you have reviewed:

```python
{%- if auto_class == "AutoModelForMaskedLM" %}
from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification

repo, revision = "{{ repo_id }}", "{{ revision }}"  # a commit id from the repo's history
model = AutoModelForMaskedLM.from_pretrained(repo, revision=revision, trust_remote_code=True)
# To fine-tune: the pretrained encoder under a new classification head.
classifier = AutoModelForSequenceClassification.from_pretrained(
    repo, revision=revision, trust_remote_code=True, num_labels=2
)
{%- else %}
from transformers import {{ auto_class }}

repo, revision = "{{ repo_id }}", "{{ revision }}"  # a commit id from the repo's history
model = {{ auto_class }}.from_pretrained(repo, revision=revision, trust_remote_code=True)
{%- endif %}
```

With `recurrent_mlm` installed, `import recurrent_mlm` first and its registered classes are used instead of
the copy in the repo (same code at the time of the push).
{%- endif %}

## Training data

{{ training_data }}

## Training procedure

{{ training_procedure }}
{%- if training_rows %}

| setting | value |
|---|---|
{%- for key, value in training_rows %}
| {{ key }} | {{ value }} |
{%- endfor %}
{%- endif %}

## Evaluation results

{{ results_intro }}
{%- if result_rows %}

| task | dataset | metric | value |
|---|---|---|---:|
{%- for row in result_rows %}
| {{ row.task }} | {{ row.dataset }} | {{ row.metric }} | {{ row.value }} |
{%- endfor %}
{%- endif %}
{%- if stability %}

## Stability across seeds

{{ stability }}
{%- endif %}
{%- for section_title, body in extra_sections %}

## {{ section_title }}

{{ body }}
{%- endfor %}

## Citation

```bibtex
{{ citation }}
```
{{ end_marker }}
"""

CITATIONS = {
    "recurrence": """@article{lei2022simple,
  title   = {Simple Recurrence Improves Masked Language Models},
  author  = {Lei, Tao and Tian, Ran and Bastings, Jasmijn and Parikh, Ankur P.},
  journal = {arXiv preprint arXiv:2205.11588},
  year    = {2022}
}""",
    "bert": """@inproceedings{devlin2019bert,
  title     = {{BERT}: Pre-training of Deep Bidirectional Transformers for Language Understanding},
  author    = {Devlin, Jacob and Chang, Ming-Wei and Lee, Kenton and Toutanova, Kristina},
  booktitle = {Proceedings of NAACL-HLT},
  year      = {2019}
}""",
}

GLUE_DATASETS = {"glue", "nyu-mll/glue"}
_AUTO_CLASSES = {
    "fill-mask": "AutoModelForMaskedLM",
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "multiple-choice": "AutoModelForMultipleChoice",
}
_PIPELINE_TASKS = {
    "fill-mask": "Masked Language Modeling",
    "text-classification": "Text Classification",
    "token-classification": "Token Classification",
    "question-answering": "Question Answering",
    "multiple-choice": "Multiple Choice",
    "feature-extraction": "Feature Extraction",
}


# ----------------------------------------------------------------------------------------------------------
# Reading the config
# ----------------------------------------------------------------------------------------------------------
def _field(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def _variant_docs(name: str | None) -> dict[str, Any] | None:
    """The card prose of a named variant (from `recurrent_mlm.variants`, the one table)."""
    if name is None or name not in VARIANTS:
        return None
    v = VARIANTS[name]
    return dict(title=v.title, papers=list(v.papers), summary=v.summary, differences=v.differences, limits=v.limits)


def model_type_of(config: Any) -> str:
    """`"recurrent_mlm"` for our configs (objects or dicts); the foreign model type (e.g. `"bert"`) otherwise."""
    return _field(config, "model_type", None) or "recurrent_mlm"


def variant_tags(config: Any) -> list[str]:
    """Tags that let Hub users find the model by project, variant and encoder settings."""
    if model_type_of(config) != "recurrent_mlm":  # e.g. a plain BERT fine-tuned with run_glue.py
        return [model_type_of(config), "recurrent-mlm-scripts"]
    variant = variant_of(config)
    tags = ["recurrent-mlm"]
    if variant:
        tags.append("recurrent-mlm-" + variant.replace("_", "-"))
    tags.append(f"encoder-{_field(config, 'encoder_type', 'transformer').replace('_', '-')}")
    if _field(config, "recurrence"):
        tags.append(f"recurrence-{_field(config, 'recurrence')}")
    if _field(config, "share_layers"):
        tags.append("shared-layers")
    tags.append("custom_code")
    return tags


def _architecture_rows(config: Any) -> list[tuple[str, str]]:
    if model_type_of(config) != "recurrent_mlm":
        rows = [("model type", f"`{model_type_of(config)}`")]
        for label, name in (("layers", "num_hidden_layers"), ("hidden size", "hidden_size"),
                            ("attention heads", "num_attention_heads"), ("vocabulary", "vocab_size")):
            if _field(config, name) is not None:
                rows.append((label, str(_field(config, name))))
        return rows
    rows = [
        ("encoder", f"`{_field(config, 'encoder_type', 'transformer')}`"),
        ("layers", str(_field(config, "num_hidden_layers"))),
        ("hidden size", str(_field(config, "hidden_size"))),
    ]
    encoder = _field(config, "encoder_type", "transformer")
    if encoder in ("transformer", "sequential_transformer") or _field(config, "num_attention_layers"):
        rows.append(("attention heads", str(_field(config, "num_attention_heads"))))
    if encoder in ("transformer", "sequential_transformer"):
        rows.append(("feed-forward size", str(_field(config, "intermediate_size"))))
    if _field(config, "num_attention_layers"):
        rows.append(("attention layers on top", str(_field(config, "num_attention_layers"))))
    if _field(config, "share_layers"):
        rows.append(("layers shared across depth", "yes"))
    if encoder == "lstm":
        rows.append(("LSTM size per direction", str(_field(config, "lstm_hidden_size"))))
    if _field(config, "recurrence"):
        layers = _field(config, "recurrence_layers")
        rows += [
            (
                "recurrence",
                f"`{_field(config, 'recurrence')}`, {_field(config, 'recurrence_direction') or 'per stack'}",
            ),
            ("recurrent width", str(_field(config, "recurrence_hidden_size"))),
            ("recurrence step (k)", str(_field(config, "recurrence_chunk_size", 1))),
            ("recurrent layers", "all" if layers is None else ", ".join(map(str, layers))),
        ]
    rows += [
        ("pooling", f"`{_field(config, 'pooling')}`"),
        ("vocabulary", str(_field(config, "vocab_size"))),
        ("max. sequence length", str(_field(config, "max_position_embeddings"))),
    ]
    parameters = _parameter_count(config)
    if parameters is not None:
        rows.append(
            ("parameters (base model: embeddings, encoder, pooler)", f"{parameters:,}" + (f" ({parameters / 1e6:.1f}M)" if parameters >= 1e6 else ""))
        )
    return rows


def _parameter_count(config: Any) -> int | None:
    from .models.configuration_recurrent_mlm import RecurrentMLMConfig
    from .presets import count_parameters

    try:
        if not isinstance(config, RecurrentMLMConfig):
            config = RecurrentMLMConfig(
                **{k: v for k, v in dict(config).items() if k not in ("auto_map", "architectures")}
            )
        return count_parameters(config)
    except Exception:  # noqa: BLE001 - a variant not built yet, or a foreign config: the card omits the count
        return None


# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metric_key(name: str) -> str:
    return name.removeprefix("eval_")


# Bookkeeping that training loops report next to metrics (HF-style `eval_results.json` has all of these).
NOT_METRICS = {
    "epoch",
    "step",
    "global_step",
    "runtime",
    "samples",
    "samples_per_second",
    "steps_per_second",
    "total_flos",
}


def _metrics_of(values: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        name = _metric_key(key)
        if _is_number(value) and name not in NOT_METRICS:
            out[name] = float(value)
    return out


def _pretty(name: str) -> str:
    special = {
        "mcc": "MCC",
        "f1": "F1",
        "matthews_correlation": "Matthews Correlation",
        "spearmanr": "Spearman",
    }
    if name.endswith("_mm"):  # MNLI's mismatched development set
        return f"{_pretty(name[: -len('_mm')])} (mismatched)"
    return special.get(name, name.replace("_", " ").title())


def _per_task(metrics: Mapping[str, Any] | None, task_name: str | None) -> dict[str | None, dict[str, float]]:
    """`{task: {metric: value}}` from either a flat `{metric: value}` (one task) or a nested mapping."""
    if not metrics:
        return {}
    if all(isinstance(v, Mapping) for v in metrics.values()):
        return {task: _metrics_of(values) for task, values in metrics.items()}
    return {task_name: _metrics_of(metrics)}


def _dataset_fields(dataset: str | None, task: str | None) -> dict[str, Any]:
    if dataset in GLUE_DATASETS:
        return dict(
            dataset_type="nyu-mll/glue",
            dataset_name=f"GLUE {task.upper()}" if task else "GLUE",
            dataset_config=task,
            dataset_split="validation",
        )
    name = dataset or "custom"
    return dict(
        dataset_type=name,
        dataset_name=name if task is None else f"{name} ({task})",
        dataset_config=task,
        dataset_split="validation",
    )


def eval_results(
    metrics: Mapping[str, Any] | None,
    *,
    pipeline_tag: str,
    dataset: str | None = None,
    task_name: str | None = None,
) -> list[EvalResult]:
    """`EvalResult`s for the model-index: one per (task, metric) with a finite number as value."""
    out = []
    for task, values in _per_task(metrics, task_name).items():
        for metric, value in values.items():
            out.append(
                EvalResult(
                    task_type=pipeline_tag,
                    task_name=_PIPELINE_TASKS.get(pipeline_tag, _pretty(pipeline_tag)),
                    metric_type=metric,
                    metric_name=_pretty(metric),
                    metric_value=round(value, 6),
                    **_dataset_fields(dataset, task),
                )
            )
    return out


def stability_summary(runs: Mapping[str, Any], task_name: str | None = None) -> str:
    """A markdown table of per-seed results: `{task: {metric: [value per seed]}}`, or `{metric: [...]}`
    for one task. Values may also be `{seed: value}` mappings. Reports n, mean ± sample std, median, range."""
    nested = all(
        isinstance(v, Mapping) and all(isinstance(x, (Mapping, Sequence)) for x in v.values())
        for v in runs.values()
    )
    per_task = runs if nested else {task_name: runs}
    lines = [
        "| task | metric | runs | mean ± std | median | min | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task, metrics in per_task.items():
        for metric, values in metrics.items():
            seeds = [
                float(v)
                for v in (values.values() if isinstance(values, Mapping) else values)
                if _is_number(v)
            ]
            if not seeds:
                continue
            std = statistics.stdev(seeds) if len(seeds) > 1 else 0.0
            lines.append(
                f"| {task.upper() if task else '-'} | {_pretty(_metric_key(metric))} | {len(seeds)} | "
                f"{statistics.mean(seeds):.4f} ± {std:.4f} | {statistics.median(seeds):.4f} | {min(seeds):.4f} | {max(seeds):.4f} |"
            )
    return "\n".join(lines)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return (
            f"{value:.4g}"
            if abs(value) < 1e-3 or abs(value) >= 1e5
            else f"{value:.4f}".rstrip("0").rstrip(".")
        )
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------------------------------------
# Rendering and merging
# ----------------------------------------------------------------------------------------------------------
def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _hub_dataset_id(name: str) -> str:
    return "nyu-mll/glue" if name in GLUE_DATASETS else name


def _dataset_link(name: str) -> str:
    if name in GLUE_DATASETS:
        return "[GLUE](https://huggingface.co/datasets/nyu-mll/glue)"
    return f"[{name}](https://huggingface.co/datasets/{name})" if "/" in name else f"`{name}`"


def render_card(
    *,
    config: Any,
    title: str,
    pipeline_tag: str = "fill-mask",
    metrics: Mapping[str, Any] | None = None,
    dataset: str | Sequence[str] | None = None,
    task_name: str | None = None,
    base_model: str | None = None,
    training: Mapping[str, Any] | None = None,
    extra_sections: Mapping[str, str] | None = None,
    stability: Mapping[str, Any] | str | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    language: str | Sequence[str] = "en",
    architecture_caption: str | None = None,
    training_data: str | None = None,
) -> ModelCard:
    """A complete card (metadata + markdown) for a model with `config`, from `CARD_TEMPLATE`."""
    variant = variant_of(config) if model_type_of(config) == "recurrent_mlm" else None
    foreign = model_type_of(config) != "recurrent_mlm"
    docs = dict(
        title=None,
        papers=["bert"] if model_type_of(config) == "bert" else [],
        summary=f"A `{model_type_of(config)}` model trained with the recurrent-mlm scripts; its architecture is "
        "not one of recurrent-mlm's (it loads with the transformers class of its model type).",
        differences="Not a recurrent-mlm architecture: see the base model's card.",
        limits="",
    ) if foreign else _variant_docs(variant) or dict(
        title=None,
        papers=["recurrence", "bert"],
        summary="A recurrent-mlm encoder with a custom combination of settings (see the table below).",
        differences="See the architecture table; each setting is described in `RecurrentMLMConfig`'s documentation.",
        limits="",
    )
    datasets = _as_list(dataset)
    primary_dataset = datasets[0] if datasets else None
    # A card written by a run reports that run; without one it describes the variant and says nothing is out.
    is_run = bool(metrics or datasets or training or base_model or stability or training_data)
    results = eval_results(metrics, pipeline_tag=pipeline_tag, dataset=primary_dataset, task_name=task_name)
    data = ModelCardData(
        license=license,
        language=language,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=variant_tags(config),
        datasets=list(dict.fromkeys(_hub_dataset_id(d) for d in datasets)) or None,
        base_model=base_model,
        model_name=title if results else None,
        eval_results=results or None,
    )
    if results:
        results_intro = "Measured by the run that wrote this card (development sets unless stated)."
        result_rows = [
            dict(
                task=r.dataset_config.upper() if r.dataset_config else r.task_name,
                dataset=r.dataset_name,
                metric=r.metric_name,
                value=f"{r.metric_value:.4f}",
            )
            for r in results
        ]
    elif is_run:
        results_intro = "The run that wrote this card recorded no evaluation results."
        result_rows = []
    else:
        results_intro = (
            "No evaluation results are published for this model yet, and none are reported here. When a "
            "checkpoint is released, the training scripts write its card with the numbers of that run."
        )
        result_rows = []
    if training:
        training_procedure = "The settings of the run that produced these weights:"
    elif is_run:
        training_procedure = "The run that wrote this card recorded no training settings."
    else:
        training_procedure = (
            "No pretrained weights of this variant are published yet. The project's pretraining script trains "
            "these models with masked language modelling (BERT's 80/10/10 replacement of the masked tokens), "
            "at the parameter count of the BERT of the same size (`recurrent_mlm.presets.preset_config`); the "
            "masking rate, optimiser, schedule and data of a released checkpoint are recorded here by the run "
            "that trained it."
        )
    if training_data:
        pass  # the run described its data itself (local files, subsets)
    elif datasets:
        training_data = ", ".join(_dataset_link(d) for d in datasets)
        fine_tuned = base_model or pipeline_tag != "fill-mask"  # a task head was trained on it
        training_data = f"{'Fine-tuned' if fine_tuned else 'Trained'} on {training_data}" + (
            f", task `{task_name}`." if task_name else "."
        )
    elif is_run:
        training_data = "Not recorded by the run that wrote this card."
    else:
        training_data = (
            "None yet: no checkpoint of this variant is published, so there is no training data to report."
        )
    if isinstance(stability, Mapping):
        stability = stability_summary(stability, task_name)
    paper_keys = docs["papers"]
    card = ModelCard.from_template(
        data,
        template_str=CARD_TEMPLATE,
        title=title,
        begin_marker=BEGIN_MARKER,
        end_marker=END_MARKER,
        summary=docs["summary"],
        variant=variant or "custom",
        foreign=foreign,
        variant_title=docs["title"],
        papers=[dict(text=PAPERS[k][0], url=PAPERS[k][1]) for k in paper_keys],
        repository_url=REPOSITORY_URL,
        base_model=base_model,
        differences=docs["differences"],
        architecture=_architecture_rows(config),
        architecture_caption=architecture_caption,
        intended_use=INTENDED_USE,
        limitations=" ".join(x for x in (LIMITATIONS, docs.get("limits")) if x),
        repo_id=repo_id or "<user>/<model>",
        auto_class=_AUTO_CLASSES.get(pipeline_tag, "AutoModel"),
        revision="<commit id>",
        training_data=training_data,
        training_procedure=training_procedure,
        training_rows=[(k, _format_value(v)) for k, v in (training or {}).items()],
        results_intro=results_intro,
        result_rows=result_rows,
        stability=stability,
        extra_sections=list((extra_sections or {}).items()),
        citation="\n\n".join(CITATIONS[k] for k in ("recurrence", "bert")),
    )
    return card


def _generated_block(text: str) -> str | None:
    start = text.find(BEGIN_PREFIX)
    end = text.find(END_MARKER, start)
    if start == -1 or end == -1:
        return None
    return text[start : end + len(END_MARKER)]


def _merge_metadata(
    existing: dict[str, Any], new: ModelCardData, *, keep_existing: Sequence[str]
) -> ModelCardData:
    merged = dict(existing)
    generated = new.to_dict()
    for key, value in generated.items():
        if key == "model-index":
            continue
        if key in ("tags", "datasets"):
            merged[key] = list(dict.fromkeys(_as_list(existing.get(key)) + _as_list(value)))
        elif key in keep_existing and existing.get(key) is not None:
            continue
        else:
            merged[key] = value
    old_results = ModelCardData(**existing).eval_results or [] if existing.get("model-index") else []
    new_results = new.eval_results or []
    kept = [old for old in old_results if not any(old.is_equal_except_value(n) for n in new_results)]
    results = kept + list(new_results)
    merged.pop("model-index", None)
    name = new.model_name or (ModelCardData(**existing).model_name if existing.get("model-index") else None)
    return ModelCardData(**merged, eval_results=results or None, model_name=name)


def write_model_card(
    output_dir: str | os.PathLike,
    *,
    config: Any = None,
    pipeline_tag: str = "fill-mask",
    metrics: Mapping[str, Any] | None = None,
    dataset: str | Sequence[str] | None = None,
    task_name: str | None = None,
    base_model: str | None = None,
    training: Mapping[str, Any] | None = None,
    extra_sections: Mapping[str, str] | None = None,
    stability: Mapping[str, Any] | str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    language: str | Sequence[str] | None = None,
    training_data: str | None = None,
) -> Path:
    """Write `output_dir/README.md` for the model saved there, or update the card already there; return its path.

    Args:
        config: the model's `RecurrentMLMConfig` (or its dict); read from `output_dir/config.json` if None.
        pipeline_tag: `"fill-mask"` after pretraining, `"text-classification"` after GLUE fine-tuning.
        metrics: this run's numbers, `{metric: value}` for one task (named by `task_name`) or
            `{task: {metric: value}}` for several; an `eval_` prefix is dropped. Non-numbers are ignored.
        dataset: the training data (a Hub dataset id or a short name; several as a list). `"glue"` gives
            GLUE's Hub id and task configs in the model-index.
        task_name: the task `metrics` belong to (e.g. `"rte"`).
        base_model: the Hub id of the model this one was fine-tuned from.
        training: run settings to list (learning rate, steps, masking rate, seed, ...).
        extra_sections: more sections, `{title: markdown}`.
        training_data: a sentence describing the training data (files, sizes, checksums, subsets), shown
            instead of the text derived from `dataset`.
        stability: per-seed results of a sweep, `{task: {metric: [values]}}` (or `{metric: [values]}` with
            `task_name`), rendered as a "Stability across seeds" table; or ready-made markdown.
        model_name: the card's title and model-index name; defaults to the folder name.
        repo_id: the Hub repo the card will live in, for the usage snippet.
        license, language: set them; when None, an existing card's values are kept (default apache-2.0, en).

    An existing card keeps everything outside the generated block, every metadata key this function does not
    set, its license and language unless given here, and model-index results of other tasks/metrics; tags and
    datasets are merged.
    """
    output_dir = Path(output_dir)
    if config is None:
        config_path = output_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{output_dir} has no config.json; pass config= or save the model there first."
            )
        config = json.loads(config_path.read_text())
    path = output_dir / "README.md"
    existing_card = ModelCard.load(path, ignore_metadata_errors=True) if path.is_file() else None
    existing_meta = existing_card.data.to_dict() if existing_card is not None else {}
    existing_name = existing_card.data.model_name if existing_card is not None else None
    title = model_name or existing_name or output_dir.resolve().name
    card = render_card(
        config=config,
        title=title,
        pipeline_tag=pipeline_tag,
        metrics=metrics,
        dataset=dataset,
        task_name=task_name,
        base_model=base_model,
        training=training,
        extra_sections=extra_sections,
        stability=stability,
        repo_id=repo_id,
        license=license or existing_meta.get("license") or "apache-2.0",
        language=language or existing_meta.get("language") or "en",
        training_data=training_data,
    )
    if existing_card is not None:
        block = _generated_block(card.text)
        old_block = _generated_block(existing_card.text)
        text = (
            existing_card.text.replace(old_block, block)
            if old_block
            else existing_card.text.rstrip() + "\n\n" + block + "\n"
        )
        keep = [k for k, given in (("license", license), ("language", language)) if given is None]
        data = _merge_metadata(existing_meta, card.data, keep_existing=keep)
        card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text.lstrip(chr(10))}")
    output_dir.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


__all__ = [
    "BEGIN_MARKER",
    "CARD_TEMPLATE",
    "END_MARKER",
    "PAPERS",
    "eval_results",
    "render_card",
    "stability_summary",
    "variant_of",
    "variant_tags",
    "write_model_card",
]
