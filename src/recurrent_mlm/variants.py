"""The named encoder variants: the one table that presets, the parameter table, model cards, the scripts'
`--variant` choices and the variant tests read.

A variant is a set of `RecurrentMLMConfig` fields plus its description. Adding one means writing its modeling
code (if it needs new code) and one entry here; `preset_config(size, name)` then solves its free width to
BERT's parameter count (see `presets.free_width`), and the generated README table
(`scripts/parameter_table.py --write`) and cards (`model_cards/build_cards.py`) pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One named encoder: its config fields and the prose its model card shows (the numbers come from the
    config). `papers` are keys of `model_card.PAPERS`."""

    name: str
    fields: dict[str, Any]
    title: str
    papers: list[str] = field(default_factory=list)
    summary: str = ""
    differences: str = ""
    limits: str = ""


RECURRENT_SUBLAYER = (
    "Lei et al. (2022)'s recurrent sublayer, `((C + b_c) * sigmoid(X W2 + b_s)) W3 + b3` with the running "
    "state `c_t = swish(c_{t-k} - x1_t) + x1_t` over `X1 = X W1` (a smooth running maximum)"
)

SCAN_LIMIT = (
    "The recurrent sublayers run a scan along the sequence (`ceil(L / k)` sequential steps), so long inputs "
    "cost more wall time than BERT's feed-forward layers."
)

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant(
        name="bert",
        fields=dict(encoder_type="transformer"),
        title="BERT (baseline)",
        papers=["bert"],
        summary="BERT's post-LayerNorm Transformer encoder, computed exactly as in `transformers`' BERT; the "
        "baseline every other variant is compared with at the same parameter count.",
        differences="None in the computation: with `recurrence=None` the encoder is BERT's, weight for weight "
        "(`RecurrentMLMForMaskedLM.from_bert` converts a BERT checkpoint). Only the training-time masked-LM head "
        "differs, computing vocabulary logits at labelled positions only.",
        limits="",
    ),
    Variant(
        name="recurrent_bert",
        fields=dict(encoder_type="transformer", recurrence="simple"),
        title="BERT with simple recurrence",
        papers=["recurrence", "bert"],
        summary=f"BERT in which every layer's feed-forward sublayer is replaced by {RECURRENT_SUBLAYER}. This "
        "is the model of the paper.",
        differences="The feed-forward sublayer of each chosen layer (all of them by default) becomes the "
        "recurrent sublayer, sized to BERT's feed-forward parameter count; attention, residual connections and "
        "LayerNorms are BERT's. The recurrence runs in both directions (half the channels each), and padding "
        "never reaches real tokens.",
        limits=SCAN_LIMIT,
    ),
    Variant(
        name="gated_bert",
        fields=dict(encoder_type="transformer", recurrence="gated"),
        title="BERT with gated (SRU-style) recurrence",
        papers=["recurrence", "sru", "bert"],
        summary="BERT in which the feed-forward sublayers are replaced by a gated linear recurrence in the style "
        "of the Simple Recurrent Unit, `c_t = f_t * c_{t-k} + (1 - f_t) * z_t` with `f = sigmoid(X W_f + b_f)`, "
        "in the place Lei et al. (2022) put their simple recurrence.",
        differences="As the simple-recurrence variant, with an input-dependent forget gate instead of the "
        "swish running maximum; same parameter count as the simple sublayer and as BERT's feed-forward "
        "sublayer. This gated form is this project's comparison point, not a model of the paper.",
        limits=SCAN_LIMIT,
    ),
    Variant(
        name="universal_transformer",
        fields=dict(encoder_type="transformer", share_layers=True),
        title="Universal Transformer (shared layers)",
        papers=["universal", "albert", "bert"],
        summary="One BERT layer applied at every depth (weights shared across layers, ALBERT-style), with its "
        "feed-forward width grown so the model keeps BERT's parameter count.",
        differences="A single layer's weights serve all `num_hidden_layers` applications, so compute per token "
        "is BERT's but the parameters of one layer are wider. There is no adaptive computation time: the "
        "depth is fixed.",
        limits="At equal parameter count the shared layer is much wider than a BERT layer and is applied at every "
        "depth, so a forward pass costs several times BERT's compute.",
    ),
    Variant(
        name="sequential_transformer",
        fields=dict(encoder_type="sequential_transformer"),
        title="Sequential Transformer",
        papers=["sequential", "bert"],
        summary="Two stacks of future-masked Transformer layers, one reading left to right and one right to "
        "left, whose outputs are combined at each position; a recurrence-like inductive bias built from "
        "attention, after the sequential Transformers of Abnar et al. (2020), made bidirectional for masked "
        "language modelling.",
        differences="Each stack only attends to one side of a position, so no token sees itself through the "
        "other direction; half of BERT's layers go to each direction to keep the parameter count. The pooler "
        "summarises the last real token of the left-to-right stack.",
        limits="A masked position is predicted from two one-sided contexts combined at the top, never from a "
        "joint bidirectional one.",
    ),
    Variant(
        name="sequential_transformer_tied",
        fields=dict(encoder_type="sequential_transformer", sequential_tie_directions=True),
        title="Sequential Transformer (one stack for both directions, BERT's depth)",
        papers=["sequential", "bert"],
        summary="The sequential Transformer with one stack of future-masked layers applied left to right and "
        "right to left, so each direction has BERT's full depth at BERT's parameter count.",
        differences="As the sequential Transformer, but the two directions share one stack of "
        "`num_hidden_layers` layers instead of each getting half of them: \"sequential\" is then not confounded "
        "with \"shallower\" when it is compared with BERT.",
        limits="A masked position is predicted from two one-sided contexts combined at the top; each token "
        "costs two passes through the full stack, twice BERT's compute.",
    ),
    Variant(
        name="sequential_universal_transformer",
        fields=dict(encoder_type="sequential_transformer", share_layers=True),
        title="Sequential Universal Transformer",
        papers=["sequential", "universal", "bert"],
        summary="The sequential Transformer with one shared layer per direction applied at every depth.",
        differences="As the sequential Transformer, with the weight sharing across depth of the Universal "
        "Transformer; the shared layer is widened to keep BERT's parameter count.",
        limits="A masked position is predicted from two one-sided contexts; the widened shared layers cost more "
        "compute than BERT at equal parameter count.",
    ),
    Variant(
        name="lstm",
        fields=dict(encoder_type="lstm"),
        title="Bidirectional LSTM",
        papers=["stable", "bert"],
        summary="A multi-layer bidirectional LSTM encoder with BERT's embeddings and masked-LM head, at BERT's "
        "parameter count.",
        differences="No attention at all: the LSTM's hidden size is solved so the encoder matches BERT's "
        "parameters. Optionally the recurrent matrices are projected after every optimiser step to a maximum "
        "spectral norm (Miller & Hardt's stable recurrence). The pooler uses the final states of both "
        "directions.",
        limits="The LSTM runs one step per token: long inputs take far more wall time than attention, and "
        "distant tokens interact only through the recurrent state.",
    ),
    Variant(
        name="hybrid_lstm",
        fields=dict(encoder_type="lstm", num_attention_layers=1),
        title="Bidirectional LSTM with an attention layer",
        papers=["hybrid", "stable", "bert"],
        summary="The bidirectional LSTM encoder topped with one bidirectional self-attention layer, the hybrid "
        "Wen et al. (2024) show closes recurrent models' in-context retrieval gap.",
        differences="As the LSTM variant plus one Transformer layer on top; the LSTM width is re-solved so the "
        "whole encoder keeps BERT's parameter count.",
        limits="The LSTM runs one step per token, so long inputs take far more wall time than attention.",
    ),
    Variant(
        name="recurrent",
        fields=dict(encoder_type="recurrent", recurrence="simple"),
        title="Attention-free simple-recurrence stack",
        papers=["recurrence", "bert"],
        summary=f"A stack of {RECURRENT_SUBLAYER}, with BERT's residual connections and LayerNorms and no "
        "attention.",
        differences="Every layer is a recurrent sublayer; nothing attends. The recurrent width is solved so the "
        "encoder keeps BERT's parameter count.",
        limits=SCAN_LIMIT + " Without attention, distant tokens interact only through the recurrent states.",
    ),
    Variant(
        name="hybrid_recurrent",
        fields=dict(encoder_type="recurrent", recurrence="simple", num_attention_layers=1),
        title="Simple-recurrence stack with an attention layer",
        papers=["recurrence", "hybrid", "bert"],
        summary="The attention-free simple-recurrence stack topped with one bidirectional self-attention layer "
        "(the hybrid of Wen et al. 2024).",
        differences="As the recurrent stack plus one Transformer layer on top, at BERT's parameter count.",
        limits=SCAN_LIMIT,
    ),
)}


def variant_names() -> list[str]:
    return list(VARIANTS)


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}.")
    return VARIANTS[name]


def variant_of(config: Any) -> str | None:
    """The variant whose fields `config` (a config object or a dict) has, or None for other settings. Every
    field that any variant sets is compared, with the config's default where a variant leaves it unset."""
    from .models.configuration_recurrent_mlm import RecurrentMLMConfig

    defaults = RecurrentMLMConfig()
    keys = sorted({k for v in VARIANTS.values() for k in v.fields})

    def normal(key: str, source: Any) -> Any:
        default = getattr(defaults, key, None)
        raw = source.get(key, default) if isinstance(source, dict) else getattr(source, key, default)
        if isinstance(default, bool):
            return bool(raw)
        if key == "num_attention_layers":
            return int(raw or 0)
        return raw

    wanted = {k: normal(k, config) for k in keys}
    for name, variant in VARIANTS.items():
        if all(normal(k, variant.fields) == wanted[k] for k in keys):
            return name
    return None


__all__ = ["Variant", "VARIANTS", "RECURRENT_SUBLAYER", "SCAN_LIMIT", "variant_names", "get_variant", "variant_of"]
