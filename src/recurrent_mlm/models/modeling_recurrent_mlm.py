"""BERT-style masked language models with recurrence.

How this differs from BERT (`transformers/models/bert/modeling_bert.py`):

* `recurrence="simple"` replaces the feed-forward sublayer of the chosen layers with Lei et al. (2022)'s
  recurrent sublayer ``((C + b_c) * sigmoid(X W2 + b_s)) W3 + b3`` where ``c_t = swish(c_{t-k} - x1_t) + x1_t``
  and ``X1 = X W1``; `recurrence="gated"` uses an SRU-style gated linear recurrence in the same place. The
  residual connection and LayerNorm around it are BERT's. Padding never reaches real tokens: in each direction
  the real tokens are gathered to the front of the sequence before the scan and scattered back after it.
* The encoder is a swappable part: BERT's stack, a sequential Transformer (future-masked left-to-right and
  right-to-left stacks, Abnar et al.), a bidirectional LSTM, or an attention-free recurrent stack, the last two
  optionally topped with bidirectional attention layers (Wen et al. 2024's hybrid). `share_layers` applies one
  layer at every depth (Universal Transformer, ALBERT-style: one module, many applications).
* The masked-LM head computes vocabulary logits only at positions with a label while training.

With `recurrence=None` and `encoder_type="transformer"` the computation is BERT's, weight for weight
(`RecurrentMLMPreTrainedModel.from_bert` converts a checkpoint).

This file travels to the Hub with the model (``trust_remote_code``): it imports only torch, transformers'
public API and its sibling files.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GradientCheckpointingLayer, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import logging

from .recurrence import fused_sublayer_supported, gated_sublayer, right_padded, simple_sublayer
from .configuration_recurrent_mlm import RecurrentMLMConfig
from .recurrence import capturing_graph, exporting, gated_recurrence, resolve_implementation, simple_recurrence

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------
# Padding and attention masks
# ----------------------------------------------------------------------------------------------------------
class SequenceContext:
    """What every layer needs to know about padding, computed once per forward pass and cached.

    `attention_mask` is the usual `(batch, seq)` 1/0 mask or `None` (no padding). Orders are `None` (the
    identity), `"flip"`, or a pair `(index, inverse)` of `(batch, seq)` gathers that put the real tokens first
    in the wanted reading order; recurrences run on the reordered sequence, so padding never feeds a real token.

    In eager mode a mask without padding is dropped (no masks to build, nothing to reorder). While a graph is
    captured (`torch.compile`, `torch.export`, ONNX, `jit.trace`) that check on the mask's values would break the
    graph or be frozen into it, so the general path runs instead: the same outputs, with or without padding.
    """

    def __init__(self, attention_mask: torch.Tensor | None, dtype: torch.dtype, attn_implementation: str | None):
        if attention_mask is not None and not capturing_graph() and bool(attention_mask.all()):
            attention_mask = None
        self.attention_mask = attention_mask
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.eager = attn_implementation in (None, "eager")
        self._cache: dict[str, object] = {}

    def _cached(self, key: str, build: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def flipped(self) -> SequenceContext:
        """Context of the sequence read right to left (for a right-to-left stack run on flipped input)."""

        def build():
            mask = None if self.attention_mask is None else self.attention_mask.flip(1)
            ctx = SequenceContext.__new__(SequenceContext)
            ctx.attention_mask, ctx.dtype, ctx._cache = mask, self.dtype, {}
            ctx.attn_implementation, ctx.eager = self.attn_implementation, self.eager
            return ctx

        return self._cached("flipped", build)

    # -- attention ---------------------------------------------------------------------------------------
    def attention_bias(self, length: int, device: torch.device, causal: bool) -> torch.Tensor | None:
        """4-D mask for the attention interface: additive float (eager) or boolean (SDPA), or `None`."""
        return self._cached(f"attn-{causal}", lambda: self._build_attention_bias(length, device, causal))

    def _build_attention_bias(self, length: int, device: torch.device, causal: bool) -> torch.Tensor | None:
        mask = self.attention_mask
        if mask is None and not causal:
            return None
        if mask is None and causal and not self.eager:
            return None  # SDPA's own causal path (is_causal=True), which fast kernels support
        allowed = torch.ones(1, 1, length, length, dtype=torch.bool, device=device)
        if mask is not None:
            allowed = allowed & mask[:, None, None, :].bool()
        positions = torch.arange(length, device=device)
        if causal:
            allowed = allowed & (positions[None, :] <= positions[:, None])
        # A query whose row would be empty (a padded query before any real token in a causal stack, or an
        # all-padding sequence) sees itself instead: no NaN from SDPA, and no effect on real tokens, whose own
        # position is always real. Other rows are left exactly as BERT builds them. (A comparison, not
        # `torch.eye`: ONNX Runtime has no boolean EyeLike.)
        empty_row = ~allowed.any(dim=-1, keepdim=True)
        allowed = allowed | (empty_row & (positions[:, None] == positions[None, :]))
        if not self.eager:
            return allowed
        return torch.zeros(allowed.shape, dtype=self.dtype, device=device).masked_fill(
            ~allowed, torch.finfo(self.dtype).min
        )

    # -- recurrences -------------------------------------------------------------------------------------
    def order(self, reverse: bool):
        """How to reorder a `(batch, seq, ...)` tensor so the real tokens come first in reading order."""
        return self._cached(f"order-{reverse}", lambda: self._build_order(reverse))

    def _build_order(self, reverse: bool):
        mask = self.attention_mask
        if mask is None:
            return "flip" if reverse else None
        length = mask.shape[1]
        positions = torch.arange(length, device=mask.device)
        key = (length - 1 - positions) if reverse else positions
        key = key[None, :] + (mask == 0).long() * length  # real tokens first, each group in reading order
        index = key.argsort(dim=1)
        if not reverse and not capturing_graph() and bool((index == positions).all()):
            return None  # right padding read left to right: nothing to move
        return index, index.argsort(dim=1)

    def last_token_index(self) -> torch.Tensor | None:
        """Index of the last real token of each sequence (`None` when there is no padding)."""
        if self.attention_mask is None:
            return None
        positions = torch.arange(self.attention_mask.shape[1], device=self.attention_mask.device)
        return (positions * (self.attention_mask != 0)).argmax(dim=1)


def apply_order(x: torch.Tensor, order) -> torch.Tensor:
    if order is None:
        return x
    if isinstance(order, str):
        return x.flip(1)
    index = order[0].view(*order[0].shape, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def undo_order(x: torch.Tensor, order) -> torch.Tensor:
    if order is None or isinstance(order, str):
        return apply_order(x, order)
    return apply_order(x, (order[1], order[0]))


def _full(x: torch.Tensor) -> torch.Tensor:
    """At least float32: recurrent states and losses stay float32 under bf16/fp16, float64 in a float64 model."""
    return x if x.dtype == torch.float64 else x.float()


# ----------------------------------------------------------------------------------------------------------
# Embeddings and attention (BERT's)
# ----------------------------------------------------------------------------------------------------------
class RecurrentMLMEmbeddings(nn.Module):
    """Word + learned absolute position + token type embeddings, LayerNorm, dropout (BERT's)."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:-1]
        length = shape[1]
        if length > self.position_ids.shape[1]:
            raise ValueError(
                f"Sequence length {length} exceeds max_position_embeddings={self.position_ids.shape[1]}; "
                "truncate the input (e.g. tokenizer(..., truncation=True, max_length=...))."
            )
        if position_ids is None:
            position_ids = self.position_ids[:, :length]
        if token_type_ids is None:
            token_type_ids = torch.zeros(shape, dtype=torch.long, device=position_ids.device)
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    # (batch, heads, seq, head_dim) inputs; an additive mask
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class RecurrentMLMSelfAttention(nn.Module):
    def __init__(self, config: RecurrentMLMConfig, is_causal: bool):
        super().__init__()
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        # Set on purpose: under SDPA an unset flag with no mask would silently become causal.
        self.is_causal = is_causal

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        attn_implementation: str | None = None,
    ):
        shape = (*hidden_states.shape[:-1], -1, self.attention_head_size)
        query = self.query(hidden_states).view(shape).transpose(1, 2)  # (batch, heads, seq, head_dim)
        key = self.key(hidden_states).view(shape).transpose(1, 2)
        value = self.value(hidden_states).view(shape).transpose(1, 2)
        # Per call: the model switches to eager for a call that asks for the attention weights.
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            attn_implementation or self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
            is_causal=self.is_causal,
        )
        return attn_output.reshape(*hidden_states.shape[:-1], -1).contiguous(), attn_weights


class RecurrentMLMSelfOutput(nn.Module):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class RecurrentMLMAttention(nn.Module):
    def __init__(self, config: RecurrentMLMConfig, is_causal: bool):
        super().__init__()
        self.self = RecurrentMLMSelfAttention(config, is_causal=is_causal)
        self.output = RecurrentMLMSelfOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        attn_implementation: str | None = None,
    ):
        attn_output, attn_weights = self.self(hidden_states, attention_mask, attn_implementation)
        return self.output(attn_output, hidden_states), attn_weights


class RecurrentMLMIntermediate(nn.Module):
    """BERT's feed-forward expansion: `act(X W_in + b_in)`."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act

    def forward(self, hidden_states: torch.Tensor, context: SequenceContext | None = None) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class RecurrentMLMOutput(nn.Module):
    """Projection back to `hidden_size`, dropout, residual and LayerNorm; shared by the FFN and recurrences."""

    def __init__(self, config: RecurrentMLMConfig, inner_size: int):
        super().__init__()
        self.dense = nn.Linear(inner_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


# ----------------------------------------------------------------------------------------------------------
# Recurrent sublayers
# ----------------------------------------------------------------------------------------------------------
class _RecurrentSublayer(nn.Module):
    """Shared plumbing: projections, direction handling, padding-safe reordering, float32 state."""

    num_inputs = 2  # how many d-wide projections of X the sublayer needs

    def __init__(self, config: RecurrentMLMConfig, direction: str):
        super().__init__()
        self.hidden_size = config.recurrence_hidden_size
        self.chunk_size = config.recurrence_chunk_size
        self.implementation = config.recurrence_implementation
        self.direction = direction
        # One fused matmul for all input projections (no bias: the formula adds its biases elsewhere).
        self.in_proj = nn.Linear(config.hidden_size, self.num_inputs * self.hidden_size, bias=False)

    def scan(self, *inputs: torch.Tensor, implementation: str, split: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def fused(self, projections: torch.Tensor, split: int, keep: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def fused_forward(self, hidden_states: torch.Tensor, context: SequenceContext | None) -> torch.Tensor | None:
        """The sublayer from its input projection to its output projection as one autograd node
        (`simple_sublayer` / `gated_sublayer` in recurrence.py) when that applies: the fast implementation, whole
        chunks, and no padding or, with chunk size 1, right padding (masked instead of moved: every output that
        reads real tokens only is the general path's; left padding is left to the general path because a `cls`
        pooler would read a padding position there, whose value depends on the path). `None` otherwise: the
        caller takes the general path through `directional_scan`."""
        if torch.jit.is_tracing() or torch.compiler.is_exporting():  # custom autograd nodes do not export
            return None
        return self._fused_forward(hidden_states, context)

    # Outside graph capture (one graph break, as the scans have anyway): the choice looks at the mask's
    # values, and torch.compile then takes the path eager mode takes, with the same outputs at padding too.
    @torch.compiler.disable
    def _fused_forward(self, hidden_states: torch.Tensor, context: SequenceContext | None) -> torch.Tensor | None:
        if resolve_implementation(self.implementation, hidden_states) != "fast":
            return None
        if not fused_sublayer_supported(hidden_states.shape[1], self.chunk_size):
            return None
        keep = None if context is None else context.attention_mask
        if keep is not None and (
            self.chunk_size != 1 or not context._cached("right-padded", lambda: right_padded(keep))
        ):
            return None
        split = {"forward": self.hidden_size, "backward": 0, "bidirectional": self.hidden_size // 2}[self.direction]
        return self.fused(self.in_proj(hidden_states), split, keep)

    def directional_scan(self, inputs: list[torch.Tensor], context: SequenceContext | None) -> torch.Tensor:
        """Run `scan` over `inputs` (each `(batch, seq, d)`, float32) in the configured direction(s)."""
        implementation = resolve_implementation(self.implementation, inputs[0])
        half = self.hidden_size // 2
        fwd = context.order(reverse=False) if context is not None else None
        bwd = context.order(reverse=True) if context is not None else "flip"
        if implementation == "triton" and fwd is None and bwd == "flip":
            # The kernels walk time either way themselves: no copies. Padded inputs take the path below.
            split = {"forward": self.hidden_size, "backward": 0, "bidirectional": half}[self.direction]
            return self.scan(*inputs, implementation=implementation, split=split)
        if self.direction != "bidirectional":
            order = fwd if self.direction == "forward" else bwd
            return undo_order(self.scan(*[apply_order(x, order) for x in inputs], implementation=implementation), order)
        # Both directions in one scan: stack them along the batch (half the sequential steps of two scans).
        stacked = [torch.cat([apply_order(x[..., :half], fwd), apply_order(x[..., half:], bwd)], dim=0) for x in inputs]
        out = self.scan(*stacked, implementation=implementation)
        batch = inputs[0].shape[0]  # (slices, not chunk(2): an exported graph keeps a symbolic batch size)
        out_fwd, out_bwd = out[:batch], out[batch:]
        return torch.cat([undo_order(out_fwd, fwd), undo_order(out_bwd, bwd)], dim=-1)


class RecurrentMLMSimpleRecurrence(_RecurrentSublayer):
    """Lei et al. (2022): ``h = (C + b_c) * sigmoid(X W2 + b_s)`` with ``c_t = swish(c_{t-k} - x1_t) + x1_t``.

    Returns the `(batch, seq, d)` inner activations; `RecurrentMLMOutput` applies ``W3, b3``, the residual
    and the LayerNorm.
    """

    def __init__(self, config: RecurrentMLMConfig, direction: str):
        super().__init__(config, direction)
        self.state_bias = nn.Parameter(torch.zeros(self.hidden_size))  # b_c
        self.gate_bias = nn.Parameter(torch.zeros(self.hidden_size))  # b_s

    def scan(self, x1: torch.Tensor, implementation: str, split: int | None = None) -> torch.Tensor:
        return simple_recurrence(x1, self.chunk_size, implementation, split)

    def fused(self, projections: torch.Tensor, split: int, keep: torch.Tensor | None) -> torch.Tensor:
        return simple_sublayer(projections, self.state_bias, self.gate_bias, self.chunk_size, split, keep=keep)

    def forward(self, hidden_states: torch.Tensor, context: SequenceContext | None = None) -> torch.Tensor:
        fused = self.fused_forward(hidden_states, context)
        if fused is not None:
            return fused
        x1, x2 = self.in_proj(hidden_states).split(self.hidden_size, dim=-1)  # (batch, seq, d) each
        # The state is kept in float32 (float64 in a float64 model) whatever the autocast dtype.
        c = self.directional_scan([_full(x1)], context)
        h = (c + _full(self.state_bias)) * torch.sigmoid(_full(x2) + _full(self.gate_bias))
        return h.to(x1.dtype)


class RecurrentMLMGatedRecurrence(_RecurrentSublayer):
    """SRU-style gated linear recurrence: ``f = sigmoid(X W_f + b_f)``, ``c_t = f_t c_{t-k} + (1 - f_t) z_t``,
    ``z = X W``; returns ``C + b_c`` for the output projection. Same parameter count as the simple sublayer."""

    def __init__(self, config: RecurrentMLMConfig, direction: str):
        super().__init__(config, direction)
        self.state_bias = nn.Parameter(torch.zeros(self.hidden_size))  # b_c
        self.forget_bias = nn.Parameter(torch.full((self.hidden_size,), float(config.recurrence_forget_bias)))

    def scan(self, z: torch.Tensor, f: torch.Tensor, implementation: str, split: int | None = None) -> torch.Tensor:
        return gated_recurrence(z, f, self.chunk_size, implementation, split)

    def fused(self, projections: torch.Tensor, split: int, keep: torch.Tensor | None) -> torch.Tensor:
        return gated_sublayer(projections, self.state_bias, self.forget_bias, self.chunk_size, split, keep=keep)

    def forward(self, hidden_states: torch.Tensor, context: SequenceContext | None = None) -> torch.Tensor:
        fused = self.fused_forward(hidden_states, context)
        if fused is not None:
            return fused
        z, f_logits = self.in_proj(hidden_states).split(self.hidden_size, dim=-1)
        f = torch.sigmoid(_full(f_logits) + _full(self.forget_bias))
        c = self.directional_scan([_full(z), f], context)
        return (c + _full(self.state_bias)).to(z.dtype)


RECURRENCE_CLASSES = {"simple": RecurrentMLMSimpleRecurrence, "gated": RecurrentMLMGatedRecurrence}


# ----------------------------------------------------------------------------------------------------------
# Layers and encoders
# ----------------------------------------------------------------------------------------------------------
class RecurrentMLMLayer(GradientCheckpointingLayer):
    """One encoder layer: optional self-attention, then BERT's FFN or a recurrent sublayer, each post-LN.

    `is_causal` makes the attention future-masked and the recurrence left-to-right (sequential stacks).
    """

    def __init__(
        self,
        config: RecurrentMLMConfig,
        layer_idx: int = 0,
        is_causal: bool = False,
        has_attention: bool = True,
        use_recurrence: bool | None = None,
    ):
        super().__init__()
        self.is_causal = is_causal
        self.attention = RecurrentMLMAttention(config, is_causal=is_causal) if has_attention else None
        if use_recurrence is None:
            use_recurrence = config.layer_uses_recurrence(layer_idx)
        if use_recurrence:
            direction = "forward" if is_causal else config.recurrence_direction
            self.recurrence = RECURRENCE_CLASSES[config.recurrence](config, direction)
            self.output = RecurrentMLMOutput(config, config.recurrence_hidden_size)
        else:
            self.intermediate = RecurrentMLMIntermediate(config)
            self.output = RecurrentMLMOutput(config, config.intermediate_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        context: SequenceContext | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_weights = None
        if self.attention is not None:
            attn_implementation = context.attn_implementation if context is not None else None
            hidden_states, attn_weights = self.attention(hidden_states, attention_mask, attn_implementation)
        mixer = self.recurrence if hasattr(self, "recurrence") else self.intermediate
        return self.output(mixer(hidden_states, context), hidden_states), attn_weights


@dataclass
class EncoderOutput:
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor | None, ...] | None = None
    # A `(batch, hidden)` summary for the pooler, when the encoder has its own (LSTM final states,
    # last real token of a left-to-right stack); `None` lets the pooler use `last_hidden_state`.
    pooled_features: torch.Tensor | None = None


class RecurrentMLMLayerStack(nn.Module):
    """`num_layers` layers applied in order, or one layer applied `num_layers` times (`share_layers`)."""

    def __init__(
        self,
        config: RecurrentMLMConfig,
        num_layers: int,
        is_causal: bool = False,
        share_layers: bool | None = None,
        **layer_kwargs,
    ):
        super().__init__()
        self.num_layers = num_layers
        self.share_layers = config.share_layers if share_layers is None else share_layers
        count = 1 if self.share_layers else num_layers
        # ALBERT-style sharing: one module applied many times, never one module placed many times in a list
        # (aliased tensors cannot be saved with safetensors).
        self.layer = nn.ModuleList(
            [RecurrentMLMLayer(config, layer_idx=i, is_causal=is_causal, **layer_kwargs) for i in range(count)]
        )
        self.is_causal = is_causal
        self.has_attention = layer_kwargs.get("has_attention", True)

    def forward(
        self,
        hidden_states: torch.Tensor,
        context: SequenceContext,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        mask = None
        if self.has_attention:
            mask = context.attention_bias(hidden_states.shape[1], hidden_states.device, causal=self.is_causal)
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for i in range(self.num_layers):
            layer = self.layer[0 if self.share_layers else i]
            hidden_states, attn = layer(hidden_states, mask, context=context)
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions and attn is not None:
                all_attn += (attn,)
        return EncoderOutput(hidden_states, all_hidden, all_attn)


class RecurrentMLMEncoder(RecurrentMLMLayerStack):
    """BERT's encoder (`encoder_type="transformer"`), with recurrent sublayers where configured.

    Named after the model family, not after recurrence: every encoder type of this package has a
    `RecurrentMLM*` class, as BERT's is `BertEncoder`. Without `recurrence` it is BERT's encoder exactly (the
    same weights give the same outputs as `BertModel`'s)."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config, config.num_hidden_layers)


class RecurrentMLMSequentialEncoder(nn.Module):
    """Sequential Transformer (Abnar et al.): future-masked layers, run left to right and right to left.

    A masked-LM needs both sides of a masked position, so two causal stacks read the sequence in opposite
    directions and their outputs are combined (`sequential_combine`: `"sum"`, parameter-free, or `"concat"`
    then a projection). The right-to-left stack runs on the flipped sequence with ordinary causal masks, so
    both stacks use the same (fast, `is_causal`) attention path. `sequential_tie_directions` uses one stack for
    both directions; with `share_layers` as well this is a one-layer Sequential Universal Transformer.
    """

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.forward_stack = RecurrentMLMLayerStack(config, config.num_hidden_layers, is_causal=True)
        self.backward_stack = (
            None
            if config.sequential_tie_directions
            else RecurrentMLMLayerStack(config, config.num_hidden_layers, is_causal=True)
        )
        self.combine = (
            nn.Linear(2 * config.hidden_size, config.hidden_size) if config.sequential_combine == "concat" else None
        )
        self.pooling = config.pooling

    def _combine(self, left_to_right: torch.Tensor, right_to_left: torch.Tensor) -> torch.Tensor:
        if self.combine is None:
            return left_to_right + right_to_left
        return self.combine(torch.cat([left_to_right, right_to_left], dim=-1))

    def directional_outputs(
        self,
        hidden_states: torch.Tensor,
        context: SequenceContext,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> tuple[EncoderOutput, EncoderOutput]:
        """Outputs of the left-to-right stack and of the right-to-left stack (in the original order)."""
        l2r = self.forward_stack(hidden_states, context, output_hidden_states, output_attentions)
        stack = self.backward_stack if self.backward_stack is not None else self.forward_stack
        r2l = stack(hidden_states.flip(1), context.flipped(), output_hidden_states, output_attentions)
        r2l.last_hidden_state = r2l.last_hidden_state.flip(1)
        if r2l.hidden_states is not None:
            r2l.hidden_states = tuple(h.flip(1) for h in r2l.hidden_states)
        if r2l.attentions is not None:  # (batch, heads, query, key) -> back to original positions
            r2l.attentions = tuple(a.flip(-1).flip(-2) if a is not None else None for a in r2l.attentions)
        return l2r, r2l

    def forward(
        self,
        hidden_states: torch.Tensor,
        context: SequenceContext,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        l2r, r2l = self.directional_outputs(hidden_states, context, output_hidden_states, output_attentions)
        combined = self._combine(l2r.last_hidden_state, r2l.last_hidden_state)
        all_hidden = None
        if output_hidden_states:  # depth i: the two directions' depth-i states, combined
            all_hidden = (hidden_states,) + tuple(
                self._combine(a, b) for a, b in zip(l2r.hidden_states[1:], r2l.hidden_states[1:])
            )
        pooled = None
        if self.pooling == "last":  # last real token of the left-to-right stack (Abnar et al.)
            index = context.last_token_index()
            states = l2r.last_hidden_state
            pooled = states[:, -1] if index is None else states[torch.arange(states.shape[0]), index]
        attentions = (l2r.attentions or ()) + (r2l.attentions or ()) if output_attentions else None
        return EncoderOutput(combined, all_hidden, attentions, pooled)


class _AttentionTop(nn.Module):
    """Bidirectional Transformer layers on top of a recurrent encoder (`num_attention_layers`)."""

    def _build_attention_stack(self, config: RecurrentMLMConfig) -> None:
        self.attention_stack = None
        if config.num_attention_layers:
            self.attention_stack = RecurrentMLMLayerStack(
                config, config.num_attention_layers, share_layers=False, use_recurrence=False
            )

    def _apply_attention_stack(
        self, output: EncoderOutput, context: SequenceContext, output_hidden_states: bool, output_attentions: bool
    ) -> EncoderOutput:
        if self.attention_stack is None:
            return output
        top = self.attention_stack(output.last_hidden_state, context, output_hidden_states, output_attentions)
        hidden = output.hidden_states + top.hidden_states[1:] if output_hidden_states else None
        attentions = (output.attentions or ()) + (top.attentions or ()) if output_attentions else None
        return EncoderOutput(top.last_hidden_state, hidden, attentions, output.pooled_features)


class RecurrentMLMRecurrentEncoder(_AttentionTop):
    """Attention-free stack of recurrent sublayers (`encoder_type="recurrent"`), each with BERT's residual and
    LayerNorm, optionally topped with bidirectional attention layers (Wen et al. 2024's hybrid)."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.layer_stack = RecurrentMLMLayerStack(
            config, config.num_hidden_layers, has_attention=False, use_recurrence=True
        )
        self._build_attention_stack(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        context: SequenceContext,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        output = self.layer_stack(hidden_states, context, output_hidden_states, output_attentions)
        return self._apply_attention_stack(output, context, output_hidden_states, output_attentions)


class RecurrentMLMLSTMEncoder(_AttentionTop):
    """Multi-layer bidirectional LSTM (`encoder_type="lstm"`), projected back to `hidden_size`.

    In each layer the forward direction gives a position its left context and the backward direction its
    right context; as in PyTorch's stacked bidirectional LSTM (unlike ELMo's two separate stacks) each layer
    reads both directions of the layer below. The input at a masked position is `[MASK]`, so nothing leaks.
    With `lstm_bidirectional=False` there is only the forward direction: a causal encoder (a control for
    probes of what bidirectional recurrence adds).
    Padding is packed away (real tokens are first gathered to the front, so left padding works too). The LSTM
    runs in float32 under autocast, like the other recurrences. Optionally topped with attention layers.
    """

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.lstm_hidden_size = config.lstm_hidden_size
        self.lstm = nn.LSTM(
            input_size=config.hidden_size,
            hidden_size=config.lstm_hidden_size,
            num_layers=config.num_hidden_layers,
            batch_first=True,
            bidirectional=config.lstm_bidirectional,
            dropout=config.hidden_dropout_prob if config.num_hidden_layers > 1 else 0.0,
        )
        directions = 2 if config.lstm_bidirectional else 1
        self.projection = nn.Linear(directions * config.lstm_hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.pooling = config.pooling
        self._build_attention_stack(config)

    def _project(self, states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.LayerNorm(self.projection(states.to(self.projection.weight.dtype))))

    def forward(
        self,
        hidden_states: torch.Tensor,
        context: SequenceContext,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput:
        batch, length, _ = hidden_states.shape
        mask = context.attention_mask
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            x = hidden_states.float() if self.lstm.weight_ih_l0.dtype == torch.float32 else hidden_states
            if exporting():  # (torch.compile runs nn.LSTM as an opaque call: packing is fine there)
                states, h_n = self._run_unpacked(x, context)
            elif mask is None:
                # cuDNN wants one contiguous weight buffer; after .to(), DDP wrapping or loading it may not be.
                self.lstm.flatten_parameters()
                states, (h_n, _) = self.lstm(x)
            else:
                self.lstm.flatten_parameters()
                order = context.order(reverse=False)
                lengths = mask.sum(dim=1).clamp(min=1).cpu()
                packed = nn.utils.rnn.pack_padded_sequence(
                    apply_order(x, order), lengths, batch_first=True, enforce_sorted=False
                )
                packed_states, (h_n, _) = self.lstm(packed)
                states, _ = nn.utils.rnn.pad_packed_sequence(packed_states, batch_first=True, total_length=length)
                states = undo_order(states, order)
        output = self._project(states)  # (batch, seq, hidden)
        pooled = None
        if self.pooling == "final":  # top layer's final forward state (and final backward state)
            final = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.lstm.bidirectional else h_n[-1]
            pooled = self._project(final)
        hidden = (hidden_states, output) if output_hidden_states else None
        encoder_output = EncoderOutput(output, hidden, () if output_attentions else None, pooled)
        return self._apply_attention_stack(encoder_output, context, output_hidden_states, output_attentions)

    def _run_unpacked(self, x: torch.Tensor, context: SequenceContext) -> tuple[torch.Tensor, torch.Tensor]:
        """What the packed LSTM computes, as operations an exported graph can hold (packing needs the lengths on
        the host): `(states, h_n)` as `nn.LSTM` returns them, from the same weights.

        With padding, each layer runs each direction on its own reordering of the sequence (real tokens first in
        that direction's reading order), so padding never reaches a real token, exactly as with packing."""
        lstm = self.lstm
        directions = 2 if lstm.bidirectional else 1
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)  # initial state of one layer and direction
        if context.attention_mask is None:
            weights = [w for layer_weights in lstm.all_weights for w in layer_weights]
            start = zeros.expand(directions * lstm.num_layers, -1, -1).contiguous()
            states, h_n, _ = torch.lstm(
                x, (start, start), weights, True, lstm.num_layers, lstm.dropout, self.training, lstm.bidirectional, True
            )
            return states, h_n
        lengths = context.attention_mask.sum(dim=1).clamp(min=1)  # (batch,)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, lstm.hidden_size)
        layer_input, finals = x, []
        for layer in range(lstm.num_layers):
            outputs, finals = [], []
            for direction, reverse in enumerate((False, True)[:directions]):
                order = context.order(reverse)
                weights = lstm.all_weights[directions * layer + direction]
                states, _, _ = torch.lstm(
                    apply_order(layer_input, order), (zeros, zeros), weights, True, 1, 0.0, False, False, True
                )
                finals.append(states.gather(1, last).squeeze(1))  # state after the last real token read
                outputs.append(undo_order(states, order))
            layer_input = torch.cat(outputs, dim=-1)  # (batch, seq, directions * hidden)
            if layer < lstm.num_layers - 1:
                layer_input = F.dropout(layer_input, lstm.dropout, self.training)
        return layer_input, torch.stack(finals)

    @torch.no_grad()
    def project_recurrent_weights(self, max_singular_value: float) -> None:
        """Rescale each gate's recurrent matrix to spectral norm <= `max_singular_value` (Miller & Hardt)."""
        for name, weight in self.lstm.named_parameters():
            if name.startswith("weight_hh"):
                for gate in weight.chunk(4, dim=0):  # PyTorch's gate order: input, forget, cell, output
                    norm = torch.linalg.matrix_norm(gate.float(), ord=2)
                    if norm > max_singular_value:
                        gate.mul_(max_singular_value / norm)


def _build_encoder(config: RecurrentMLMConfig) -> nn.Module:
    encoders = {
        "transformer": RecurrentMLMEncoder,
        "sequential_transformer": RecurrentMLMSequentialEncoder,
        "lstm": RecurrentMLMLSTMEncoder,
        "recurrent": RecurrentMLMRecurrentEncoder,
    }
    return encoders[config.encoder_type](config)


class RecurrentMLMPooler(nn.Module):
    """Dense + tanh over a sequence summary chosen by `config.pooling` (BERT: the first token)."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.pooling = config.pooling
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dense.fixed_init_seed = 0  # initial weights: a fixed draw (see `_init_weights`)
        self.activation = nn.Tanh()

    def forward(self, encoder_output: EncoderOutput, context: SequenceContext) -> torch.Tensor:
        hidden = encoder_output.last_hidden_state
        if encoder_output.pooled_features is not None:
            summary = encoder_output.pooled_features
        elif self.pooling == "mean":
            if context.attention_mask is None:
                summary = hidden.mean(dim=1)
            else:
                weights = context.attention_mask.to(hidden.dtype).unsqueeze(-1)
                summary = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        elif self.pooling == "last":
            index = context.last_token_index()
            summary = hidden[:, -1] if index is None else hidden[torch.arange(hidden.shape[0]), index]
        else:
            summary = hidden[:, 0]
        return self.activation(self.dense(summary))


# ----------------------------------------------------------------------------------------------------------
# Pretrained model base, conversion from BERT
# ----------------------------------------------------------------------------------------------------------
# Every class the config's auto_map names, so a checkpoint saved from any head loads through any Auto class.
AUTO_MAP = {
    "AutoConfig": "configuration_recurrent_mlm.RecurrentMLMConfig",
    "AutoModel": "modeling_recurrent_mlm.RecurrentMLMModel",
    "AutoModelForMaskedLM": "modeling_recurrent_mlm.RecurrentMLMForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_recurrent_mlm.RecurrentMLMForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_recurrent_mlm.RecurrentMLMForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_recurrent_mlm.RecurrentMLMForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_recurrent_mlm.RecurrentMLMForMultipleChoice",
}

_BERT_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "classifier_dropout",
    "tie_word_embeddings",
    "id2label",
    "label2id",
    "problem_type",
)


class RecurrentMLMPreTrainedModel(PreTrainedModel):
    config_class = RecurrentMLMConfig
    config: RecurrentMLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["RecurrentMLMEmbeddings", "RecurrentMLMLayer"]
    _supports_sdpa = True  # attention goes through ALL_ATTENTION_FUNCTIONS with eager as the fallback
    _supports_flash_attn = False  # our masks are 4-D (causal stacks, padding-safe diagonals)
    _supports_flex_attn = False
    # The recurrences carry a state along the sequence: it cannot be split across devices.
    _supports_context_parallel = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)  # Linear/Embedding normal(initializer_range), LayerNorm ones/zeros
        if isinstance(module, RecurrentMLMEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, RecurrentMLMSimpleRecurrence):
            init.zeros_(module.state_bias)
            init.zeros_(module.gate_bias)
        elif isinstance(module, RecurrentMLMGatedRecurrence):
            init.zeros_(module.state_bias)
            init.constant_(module.forget_bias, float(self.config.recurrence_forget_bias))
        elif isinstance(module, nn.Linear) and getattr(module, "fixed_init_seed", None) is not None:
            # The pooler's dense layer. Masked-LM pretraining trains no pooler, so our MLM checkpoints hold none
            # and a classification head loaded from one starts it fresh. A fixed draw from BERT's initial
            # distribution makes every load of a checkpoint the same model (PEFT adapters, which do not save
            # the pooler, reload to the same outputs; runs from one checkpoint differ only in what their seed
            # changes). Drawn on the CPU, so it is the same on every device; a loaded pooler is left as it is.
            generator = torch.Generator().manual_seed(module.fixed_init_seed)
            weight = torch.empty(module.weight.shape, device="cpu").normal_(
                0.0, self.config.initializer_range, generator=generator
            )
            init.copy_(module.weight, weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.LSTM):
            # After the generic xavier/zeros init: forget-gate bias 1 (gate order i, f, g, o) so that early
            # training keeps memory, the usual LSTM recipe.
            size = module.hidden_size
            for name, param in module.named_parameters():
                if name.startswith("bias_ih"):
                    value = torch.zeros_like(param)
                    value[size : 2 * size] = 1.0
                    init.copy_(param, value)

    def _set_gradient_checkpointing(self, enable: bool = True, *args, **kwargs):
        # Reached from activation_checkpointing_enable() (and the deprecated gradient_checkpointing_enable()):
        # refuse with our reason instead of transformers' generic "not compatible" message.
        if enable:
            self.config.check_gradient_checkpointing()
        return super()._set_gradient_checkpointing(enable, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records only the saving class in auto_map; record every head so that, e.g., an MLM
        # checkpoint loads with AutoModelForSequenceClassification and trust_remote_code.
        self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    # -- conversion from BERT ----------------------------------------------------------------------------
    @classmethod
    def from_bert(
        cls, bert, recurrence: str | None = None, *, ignore_mismatched_sizes: bool = False, **config_overrides
    ):
        """Build this model from a transformers BERT checkpoint.

        `bert` is a folder or Hub id of a BERT checkpoint, or a `BertModel` / `BertFor*` instance. With
        `recurrence=None` the result computes exactly what the BERT model computes. With `"simple"` or
        `"gated"` ("upcycling") the embeddings, attention, every LayerNorm, the pooler and the MLM head
        transform are reused, and the recurrent sublayers that replace the feed-forward sublayers start
        fresh; their output LayerNorms are BERT's FFN LayerNorms. Extra keyword arguments override config
        fields (e.g. `recurrence_layers=[10, 11]`, `num_labels=3`). Loads in float32.

        A BERT tensor whose shape differs from ours (an override such as `intermediate_size=96`, another
        `num_labels` for a classifier) is an error that lists them, unless `ignore_mismatched_sizes=True`
        asks to initialise those tensors afresh (as in transformers' `from_pretrained`).
        """
        import transformers

        if isinstance(bert, (str, os.PathLike)):
            bert_config = transformers.BertConfig.from_pretrained(bert)
            architectures = bert_config.architectures or []
            head = architectures[0] if architectures else ""
            source_class = getattr(transformers, head, None) if head.startswith("Bert") else None
            if source_class is None or head in ("BertForMaskedLM", "BertLMHeadModel", "BertForNextSentencePrediction"):
                source_class = transformers.BertForPreTraining  # encoder, pooler and MLM head
            # The source's own load report would list the heads it lacks (we start those fresh); stay quiet.
            verbosity = transformers.logging.get_verbosity()
            transformers.logging.set_verbosity_error()
            try:
                source, info = source_class.from_pretrained(bert, dtype=torch.float32, output_loading_info=True)
            finally:
                transformers.logging.set_verbosity(verbosity)
            absent = set(info.get("missing_keys", ()))
        elif isinstance(bert, PreTrainedModel) and getattr(bert.config, "model_type", None) == "bert":
            source, absent = bert, set()
        else:
            raise TypeError(
                f"from_bert expects a BERT checkpoint path/Hub id or a transformers BERT model, got {type(bert)!r}."
            )
        bert_config = source.config
        fields = {name: getattr(bert_config, name) for name in _BERT_CONFIG_FIELDS if hasattr(bert_config, name)}
        if fields.get("classifier_dropout") is None:
            fields.pop("classifier_dropout", None)
        if getattr(bert_config, "position_embedding_type", "absolute") not in ("absolute", None):
            raise ValueError(
                "from_bert: only BERT checkpoints with absolute position embeddings convert exactly "
                f"(this one uses {bert_config.position_embedding_type!r})."
            )
        if getattr(bert_config, "is_decoder", False):
            raise ValueError("from_bert: this BERT checkpoint is a decoder (is_decoder=True); use an encoder.")
        if "num_labels" in config_overrides:  # BERT's label names belong to its own number of labels
            fields.pop("id2label", None)
            fields.pop("label2id", None)
        fields.update(config_overrides)
        config = RecurrentMLMConfig(recurrence=recurrence, **fields)
        if config.encoder_type != "transformer":
            raise ValueError("from_bert converts into encoder_type='transformer' only (BERT's layer layout).")
        model = cls(config).to(torch.float32)

        bert_prefix = getattr(source, "base_model_prefix", "bert")
        ours_prefix = "" if isinstance(model, RecurrentMLMModel) else "model."
        state = {}
        for key, tensor in source.state_dict().items():
            if key in absent:
                continue
            base = key[len(bert_prefix) + 1 :] if key.startswith(bert_prefix + ".") else key
            target = _map_bert_key(base, config, ours_prefix)
            if target is not None:
                state[target] = tensor
        own = model.state_dict()
        mismatched = {k: (v.shape, own[k].shape) for k, v in state.items() if k in own and own[k].shape != v.shape}
        if mismatched:
            listing = _describe_mismatches(mismatched)
            if not ignore_mismatched_sizes:
                raise ValueError(
                    f"from_bert: {len(mismatched)} BERT tensors do not fit this configuration (name: BERT shape -> "
                    f"ours): {listing}; change the config overrides to match, or pass ignore_mismatched_sizes=True "
                    "(recurrent-mlm-convert-bert --ignore_mismatched_sizes) to initialise them afresh."
                )
            logger.warning(f"from_bert: initialised afresh (ignore_mismatched_sizes=True): {listing}")
        state = {k: v for k, v in state.items() if k in own and k not in mismatched}
        result = model.load_state_dict(state, strict=False)
        reused = len(state)
        fresh = [k for k in result.missing_keys if not k.endswith("decoder.weight")]  # tied to the embeddings
        logger.info(f"from_bert: reused {reused} tensors from BERT; initialised fresh: {fresh}")
        model.tie_weights()
        model.eval()
        return model

    # -- stability ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def project_recurrent_weights(self) -> None:
        """Keep recurrences stable after an optimizer step; training scripts call it after every step.

        With `config.lstm_max_singular_value` set, every LSTM recurrent gate matrix is rescaled to that spectral
        norm at most (Miller & Hardt 2019's projection onto stable recurrent models). A no-op otherwise: the
        simple and gated recurrences are bounded by construction.
        """
        bound = getattr(self.config, "lstm_max_singular_value", None)
        if bound is None:
            return
        for module in self.modules():
            if isinstance(module, RecurrentMLMLSTMEncoder):
                module.project_recurrent_weights(bound)


def _describe_mismatches(mismatched: dict[str, tuple[torch.Size, torch.Size]]) -> str:
    """`name: (a, b) -> (c, d)` per tensor, one entry for the same tensor in several layers (`layer.{0,1,2}`)."""
    groups: dict[tuple[str, tuple, tuple], list[str]] = {}
    for key, (theirs, ours) in mismatched.items():
        parts = key.split(".")
        index = next((i + 1 for i, part in enumerate(parts[:-1]) if part == "layer" and parts[i + 1].isdigit()), None)
        layer = parts[index] if index is not None else ""
        if index is not None:
            parts[index] = "{}"
        groups.setdefault((".".join(parts), tuple(theirs), tuple(ours)), []).append(layer)
    entries = []
    for (pattern, theirs, ours), layers in groups.items():
        name = pattern.replace("{}", "{" + ",".join(layers) + "}" if len(layers) > 1 else layers[0])
        entries.append(f"{name}: {theirs} -> {ours}")
    return "; ".join(entries)


def _map_bert_key(key: str, config: RecurrentMLMConfig, prefix: str) -> str | None:
    """Name of BERT tensor `key` (without the `bert.` prefix) in our model, or None if it has no place."""
    if key.startswith("cls.predictions."):
        rest = key[len("cls.predictions.") :]
        if prefix == "":
            return None
        if rest in ("bias", "decoder.bias"):
            return "cls.predictions.decoder.bias"
        if rest == "decoder.weight":
            return None  # tied to the word embeddings
        return "cls.predictions." + rest
    if key.startswith(("cls.seq_relationship", "position_ids", "embeddings.position_ids")):
        return None
    if key.startswith(("classifier.", "qa_outputs.")):
        return key if prefix else None
    if key.startswith("encoder.layer."):
        idx = int(key.split(".")[2])
        if config.layer_uses_recurrence(idx) and (".intermediate." in key or ".output.dense." in key):
            if ".attention.output." not in key:
                return None  # the FFN is replaced by a fresh recurrent sublayer
        return prefix + key
    if key.startswith(("embeddings.", "pooler.")):
        return prefix + key
    return None


# ----------------------------------------------------------------------------------------------------------
# Base model and heads
# ----------------------------------------------------------------------------------------------------------
def _has_attention(config: RecurrentMLMConfig) -> bool:
    return config.encoder_type in ("transformer", "sequential_transformer") or bool(config.num_attention_layers)


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _check_inputs(
    config: RecurrentMLMConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
) -> None:
    """Refuse inputs of the wrong shape with one line naming the tensor and the fix, before any computation.

    `input_ids` is `(batch, seq)` (or `inputs_embeds` `(batch, seq, hidden_size)`) with `batch, seq >= 1`;
    `attention_mask` has the same `(batch, seq)`; `token_type_ids` and `position_ids` are `(batch, seq)` or
    `(1, seq)` (broadcast over the batch, as in BERT). Only shapes are checked (no device sync, nothing a
    captured graph cannot hold)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
    if input_ids is not None:
        name = "input_ids"
        if input_ids.dim() != 2:
            hint = " (one sequence: add a batch dimension, e.g. input_ids[None])" if input_ids.dim() == 1 else ""
            raise ValueError(f"input_ids must be (batch, seq), got shape {_shape(input_ids)}{hint}.")
        shape = _shape(input_ids)
    else:
        name = "inputs_embeds"
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
            raise ValueError(
                f"inputs_embeds must be (batch, seq, hidden_size={config.hidden_size}), got shape "
                f"{_shape(inputs_embeds)}."
            )
        shape = _shape(inputs_embeds)[:2]
    batch, length = shape
    if batch == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); pass at least one sequence.")
    if length == 0:
        raise ValueError(
            f"{name} holds zero-length sequences (shape {shape}); every sequence needs at least one token "
            "(the tokenizer adds [CLS] and [SEP])."
        )
    if attention_mask is not None and _shape(attention_mask) != shape:
        raise ValueError(
            f"attention_mask has shape {_shape(attention_mask)} but {name} is (batch, seq) = {shape}: pass one "
            "1/0 per token, e.g. the tokenizer's attention_mask for the same batch."
        )
    for other_name, other in (("token_type_ids", token_type_ids), ("position_ids", position_ids)):
        if other is not None and (other.dim() != 2 or other.shape[0] not in (1, batch) or other.shape[1] != length):
            raise ValueError(
                f"{other_name} has shape {_shape(other)} but {name} is (batch, seq) = {shape}: pass (batch, seq) "
                f"or (1, seq), or leave {other_name} out."
            )


class RecurrentMLMModel(RecurrentMLMPreTrainedModel):
    """Embeddings, an encoder chosen by `config.encoder_type`, and an optional pooler."""

    def __init__(self, config: RecurrentMLMConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = RecurrentMLMEmbeddings(config)
        self.encoder = _build_encoder(config)
        self.pooler = RecurrentMLMPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | BaseModelOutputWithPooling:
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        attn_implementation = self.config._attn_implementation
        if output_attentions and attn_implementation not in (None, "eager") and _has_attention(self.config):
            # Fused kernels (SDPA) do not return the weights: compute them with eager attention for this call.
            warnings.warn(
                f"output_attentions=True: {attn_implementation!r} attention does not return attention weights, so "
                "calls that ask for them run eager attention (same outputs, slower); load the model with "
                "attn_implementation='eager' to make that the default.",
                stacklevel=2,
            )
            attn_implementation = "eager"
        # No mask means attend everywhere, as in BERT.
        embedding_output = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )
        context = SequenceContext(attention_mask, embedding_output.dtype, attn_implementation)
        encoder_output = self.encoder(
            embedding_output,
            context,
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
        )
        pooled = self.pooler(encoder_output, context) if self.pooler is not None else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=encoder_output.last_hidden_state,
            pooler_output=pooled,
            hidden_states=encoder_output.hidden_states,
            attentions=encoder_output.attentions if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class RecurrentMLMPredictionHeadTransform(nn.Module):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act] if isinstance(config.hidden_act, str) else config.hidden_act
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class RecurrentMLMLMPredictionHead(nn.Module):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.transform = RecurrentMLMPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)  # weight tied to embeddings

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class RecurrentMLMOnlyMLMHead(nn.Module):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__()
        self.predictions = RecurrentMLMLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


def _return(output, return_dict: bool | None, config):
    return_dict = return_dict if return_dict is not None else config.return_dict
    return output if return_dict else output.to_tuple()


class RecurrentMLMForMaskedLM(RecurrentMLMPreTrainedModel):
    """Masked-LM head. While training with labels (and `config.sparse_prediction`), vocabulary logits are
    computed only where `labels != -100` and `logits` has shape `(num_labelled, vocab)`; otherwise `logits`
    is `(batch, seq, vocab)`. Pass `sparse_logits=True/False` to choose explicitly."""

    _tied_weights_keys = {"cls.predictions.decoder.weight": "model.embeddings.word_embeddings.weight"}

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config)
        self.model = RecurrentMLMModel(config, add_pooling_layer=False)
        self.cls = RecurrentMLMOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        sparse_logits: bool | None = None,
        **kwargs,
    ) -> tuple | MaskedLMOutput:
        outputs = self.model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        sequence_output = outputs.last_hidden_state  # (batch, seq, hidden)
        if sparse_logits is None:
            sparse_logits = labels is not None and self.training and self.config.sparse_prediction
        loss = None
        if sparse_logits:
            if labels is None:
                raise ValueError("sparse_logits=True needs labels (the positions to predict are labels != -100).")
            selected = labels != -100
            logits = self.cls(sequence_output[selected])  # (num_labelled, vocab)
            target = labels[selected]
        else:
            logits = self.cls(sequence_output)  # (batch, seq, vocab)
            target = labels
        if labels is not None:
            loss = F.cross_entropy(_full(logits.reshape(-1, logits.shape[-1])), target.reshape(-1), ignore_index=-100)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
        return _return(output, return_dict, self.config)


def _classification_loss(config, logits: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """transformers' sequence-classification loss: regression, single- or multi-label."""
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    logits = _full(logits)
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class RecurrentMLMForSequenceClassification(RecurrentMLMPreTrainedModel):
    """Pooled output (see `config.pooling`) -> dropout -> linear; regression when `num_labels == 1`."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentMLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | SequenceClassifierOutput:
        outputs = self.model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = _classification_loss(self.config, logits, labels, self.num_labels) if labels is not None else None
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return _return(output, return_dict, self.config)


class RecurrentMLMForTokenClassification(RecurrentMLMPreTrainedModel):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentMLMModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | TokenClassifierOutput:
        outputs = self.model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(_full(logits.view(-1, self.num_labels)), labels.view(-1), ignore_index=-100)
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return _return(output, return_dict, self.config)


class RecurrentMLMForQuestionAnswering(RecurrentMLMPreTrainedModel):
    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RecurrentMLMModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | QuestionAnsweringModelOutput:
        outputs = self.model(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]  # positions outside the sequence are ignored, as in BERT
            start = start_positions.view(-1).clamp(0, ignored)
            end = end_positions.view(-1).clamp(0, ignored)
            loss = (
                F.cross_entropy(_full(start_logits), start, ignore_index=ignored)
                + F.cross_entropy(_full(end_logits), end, ignore_index=ignored)
            ) / 2
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return _return(output, return_dict, self.config)


class RecurrentMLMForMultipleChoice(RecurrentMLMPreTrainedModel):
    """Inputs are `(batch, num_choices, seq)`; one score per choice from the pooled output."""

    def __init__(self, config: RecurrentMLMConfig):
        super().__init__(config)
        self.model = RecurrentMLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> tuple | MultipleChoiceModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        name, main = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
        expected = "(batch, num_choices, seq)" if input_ids is not None else "(batch, num_choices, seq, hidden)"
        if main.dim() != len(expected.split(",")):
            raise ValueError(f"Multiple choice: {name} must be {expected}, got shape {_shape(main)}.")
        choices = _shape(main)[:3]
        for other_name, other in (
            ("attention_mask", attention_mask), ("token_type_ids", token_type_ids), ("position_ids", position_ids)
        ):
            if other is not None and _shape(other) != choices:
                raise ValueError(
                    f"Multiple choice: {other_name} has shape {_shape(other)} but {name} is (batch, num_choices, "
                    f"seq) = {choices}: pass one value per token of every choice."
                )
        num_choices = main.shape[1]

        def flat(t):
            return None if t is None else t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])

        outputs = self.model(
            flat(input_ids),
            attention_mask=flat(attention_mask),
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)
        loss = F.cross_entropy(_full(logits), labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return _return(output, return_dict, self.config)


__all__ = [
    "RecurrentMLMPreTrainedModel",
    "RecurrentMLMModel",
    "RecurrentMLMForMaskedLM",
    "RecurrentMLMForSequenceClassification",
    "RecurrentMLMForTokenClassification",
    "RecurrentMLMForQuestionAnswering",
    "RecurrentMLMForMultipleChoice",
    "RecurrentMLMLayer",
    "SequenceContext",
]
