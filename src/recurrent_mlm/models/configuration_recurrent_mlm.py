"""Configuration of the recurrent-mlm encoders.

One configuration describes every encoder of the project. It has all of BERT's fields, so a BERT checkpoint
maps onto it one to one, plus the fields that choose the encoder (`encoder_type`, `share_layers`,
`num_attention_layers`) and the recurrent sublayer of Lei et al. (2022) (`recurrence*`).

This file travels to the Hub with the model (``trust_remote_code``): it imports only transformers' public API.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

ENCODER_TYPES = ("transformer", "sequential_transformer", "lstm", "recurrent")
RECURRENCE_TYPES = (None, "simple", "gated")
RECURRENCE_DIRECTIONS = ("forward", "backward", "bidirectional")
RECURRENCE_IMPLEMENTATIONS = ("auto", "fast", "naive", "triton")
POOLING_TYPES = ("cls", "mean", "last", "final")
SEQUENTIAL_COMBINE = ("sum", "concat")


def solve_recurrence_hidden_size(hidden_size: int, intermediate_size: int, even: bool = True) -> int:
    """Inner width `d` of a recurrent sublayer with the parameter count of BERT's feed-forward sublayer.

    BERT's FFN has ``2*H*I + I + H`` parameters (two matrices and their biases). The recurrent sublayer has
    ``W1, W2: H x d`` (no biases), ``b_c, b_s: d`` and ``W3: d x H`` with bias ``b3: H``, i.e.
    ``3*H*d + 2*d + H``. Equal counts give ``d = (2*H*I + I) / (3*H + 2)``; we round to the nearest integer
    (to an even one when the channels are split between two directions). At BERT-base this is 2048.
    """
    exact = (2 * hidden_size * intermediate_size + intermediate_size) / (3 * hidden_size + 2)
    if even:
        return max(2, 2 * round(exact / 2))
    return max(1, round(exact))


class RecurrentMLMConfig(PreTrainedConfig):
    r"""Configuration for [`RecurrentMLMModel`] and its heads.

    The BERT fields (`vocab_size` … `tie_word_embeddings`) mean what they mean in `BertConfig`; with the
    defaults below and `recurrence=None` the model is exactly BERT-base.

    Args:
        encoder_type (`str`, defaults to `"transformer"`):
            `"transformer"`: BERT's post-LN encoder. `"sequential_transformer"`: a left-to-right and a
            right-to-left stack of future-masked Transformer layers whose outputs are combined (Abnar et al.).
            `"lstm"`: a multi-layer LSTM, bidirectional unless `lstm_bidirectional=False`. `"recurrent"`: a stack of recurrent sublayers without
            attention (needs `recurrence`).
        share_layers (`bool`, defaults to `False`):
            Apply one layer's weights at every depth (a Universal Transformer; ALBERT-style sharing).
        num_attention_layers (`int`, defaults to 0):
            Bidirectional self-attention layers added on top of an `"lstm"` or `"recurrent"` encoder
            (1 gives the hybrid of Wen et al. 2024).
        sequential_combine (`str`, defaults to `"sum"`):
            How a sequential Transformer combines its two directions: `"sum"` adds them (no parameters),
            `"concat"` concatenates them and projects back to `hidden_size`.
        sequential_tie_directions (`bool`, defaults to `False`):
            Use one stack of causal layers for both reading directions (the right-to-left pass runs it on the
            flipped sequence). With `share_layers=True` too, the encoder is a single layer.
        lstm_hidden_size (`int`, *optional*):
            Hidden size of each LSTM direction; defaults to `hidden_size // 2` (`hidden_size` for a
            forward-only LSTM).
        lstm_bidirectional (`bool`, defaults to `True`):
            `False` runs the LSTM left to right only: every position then sees only itself and what precedes
            it (a causal control for probes, not a masked LM that can use right context).
        lstm_max_singular_value (`float`, *optional*):
            If set, `RecurrentMLMPreTrainedModel.project_recurrent_weights()` (called by the training scripts
            after every optimizer step) rescales each LSTM recurrent matrix so that its spectral norm is at
            most this value (Miller & Hardt 2019's stable-recurrence projection).
        pooling (`str`, *optional*):
            What the pooler summarises: `"cls"` (first token, BERT), `"mean"` (mean over real tokens),
            `"last"` (last real token of the left-to-right stack, Abnar et al.), `"final"` (LSTM final states
            of both directions). Defaults to `"last"` for the sequential Transformer (its right-to-left stack
            then serves masked-LM pretraining only and gets no gradient from a classification loss), `"final"`
            for the LSTM (`"mean"` when attention layers sit on top) and `"cls"` otherwise.
        recurrence (`str`, *optional*):
            `None` for plain BERT feed-forward sublayers; `"simple"` for Lei et al.'s recurrence
            `c_t = swish(c_{t-k} - x_t) + x_t`; `"gated"` for an SRU-style gated linear recurrence
            `c_t = f_t * c_{t-k} + (1 - f_t) * z_t`.
        recurrence_layers (`list[int]`, *optional*):
            Indices of the layers whose feed-forward sublayer is replaced; all layers when unset.
        recurrence_hidden_size (`int`, *optional*):
            Inner width of the recurrent sublayer. Defaults to the width that gives the same parameter count
            as BERT's feed-forward sublayer (see `solve_recurrence_hidden_size`).
        recurrence_chunk_size (`int`, defaults to 1):
            The lag `k` of the recurrence `c_t = f(c_{t-k}, x_t)`: each state reads the state `k` positions
            back. `k = 1` is the paper's per-token form; a larger `k` runs `k` interleaved recurrences (one per
            residue of `t mod k`) and needs `ceil(L / k)` sequential steps instead of `L`.
        recurrence_direction (`str`, *optional*):
            `"forward"`, `"backward"` or `"bidirectional"` (half the channels each way). Defaults to
            `"bidirectional"`; inside a sequential Transformer each stack uses its own direction.
        recurrence_forget_bias (`float`, defaults to 1.0):
            Initial forget-gate bias of the gated recurrence (larger keeps more memory at the start).
        recurrence_implementation (`str`, defaults to `"auto"`):
            `"fast"` (PyTorch: custom autograd functions with blocked scans), `"triton"` (fused GPU kernels;
            needs `triton`), `"naive"` (plain loop over time, the reference) or `"auto"` (Triton for CUDA
            tensors when installed, else fast).
        sparse_prediction (`bool`, defaults to `True`):
            In training mode with labels, compute vocabulary logits only where `labels != -100`.
    """

    model_type = "recurrent_mlm"

    def __init__(
        self,
        *,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int | None = 0,
        classifier_dropout: float | None = None,
        tie_word_embeddings: bool = True,
        encoder_type: str = "transformer",
        share_layers: bool = False,
        num_attention_layers: int = 0,
        sequential_combine: str = "sum",
        sequential_tie_directions: bool = False,
        lstm_hidden_size: int | None = None,
        lstm_bidirectional: bool = True,
        lstm_max_singular_value: float | None = None,
        pooling: str | None = None,
        recurrence: str | None = None,
        recurrence_layers: list[int] | None = None,
        recurrence_hidden_size: int | None = None,
        recurrence_chunk_size: int = 1,
        recurrence_direction: str | None = None,
        recurrence_forget_bias: float = 1.0,
        recurrence_implementation: str = "auto",
        sparse_prediction: bool = True,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.classifier_dropout = classifier_dropout
        self.encoder_type = encoder_type
        self.share_layers = share_layers
        self.num_attention_layers = num_attention_layers
        self.sequential_combine = sequential_combine
        self.sequential_tie_directions = sequential_tie_directions
        self.lstm_hidden_size = lstm_hidden_size
        self.lstm_bidirectional = lstm_bidirectional
        self.lstm_max_singular_value = lstm_max_singular_value
        self.pooling = pooling
        self.recurrence = recurrence
        self.recurrence_layers = list(recurrence_layers) if recurrence_layers is not None else None
        self.recurrence_hidden_size = recurrence_hidden_size
        self.recurrence_chunk_size = recurrence_chunk_size
        self.recurrence_direction = recurrence_direction
        self.recurrence_forget_bias = recurrence_forget_bias
        self.recurrence_implementation = recurrence_implementation
        self.sparse_prediction = sparse_prediction
        # BERT keys that older or foreign configs carry; accepted and dropped so BERT configs convert cleanly.
        for legacy in ("position_embedding_type", "gradient_checkpointing", "use_cache", "is_decoder"):
            kwargs.pop(legacy, None)
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)
        self._resolve_defaults()
        self._validate()

    # ------------------------------------------------------------------------------------------------------
    def _resolve_defaults(self) -> None:
        if self.pooling is None:
            self.pooling = {"sequential_transformer": "last", "lstm": "final"}.get(self.encoder_type, "cls")
            if self.encoder_type == "lstm" and self.num_attention_layers:
                self.pooling = "mean"  # the final LSTM states would bypass the attention layers on top
        if self.recurrence is not None:
            if self.recurrence_direction is None and self.encoder_type != "sequential_transformer":
                self.recurrence_direction = "bidirectional"
            if self.recurrence_hidden_size is None:
                self.recurrence_hidden_size = solve_recurrence_hidden_size(
                    self.hidden_size, self.intermediate_size, even=self.recurrence_direction == "bidirectional"
                )
        if self.encoder_type == "lstm" and self.lstm_hidden_size is None:
            self.lstm_hidden_size = max(1, self.hidden_size // (2 if self.lstm_bidirectional else 1))

    def _validate(self) -> None:
        def bad(field: str, message: str):
            raise ValueError(f"RecurrentMLMConfig.{field}: {message}")

        if self.encoder_type not in ENCODER_TYPES:
            bad("encoder_type", f"{self.encoder_type!r} is not one of {', '.join(ENCODER_TYPES)}.")
        if self.recurrence not in RECURRENCE_TYPES:
            bad("recurrence", f"{self.recurrence!r} is not one of None, 'simple', 'gated'.")
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "max_position_embeddings"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                bad(field, f"must be a positive integer, got {value!r}.")
        uses_attention = self.encoder_type in ("transformer", "sequential_transformer") or self.num_attention_layers
        if uses_attention and (self.num_attention_heads < 1 or self.hidden_size % self.num_attention_heads):
            bad(
                "num_attention_heads",
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}).",
            )
        if not isinstance(self.num_attention_layers, int) or self.num_attention_layers < 0:
            bad("num_attention_layers", f"must be an integer >= 0, got {self.num_attention_layers!r}.")
        if self.num_attention_layers and self.encoder_type not in ("lstm", "recurrent"):
            bad(
                "num_attention_layers",
                "adds attention on top of an 'lstm' or 'recurrent' encoder; "
                f"encoder_type={self.encoder_type!r} has attention in every layer already.",
            )
        if self.pooling not in POOLING_TYPES:
            bad("pooling", f"{self.pooling!r} is not one of {', '.join(POOLING_TYPES)}.")
        if self.pooling == "last" and self.encoder_type not in ("sequential_transformer", "lstm", "recurrent"):
            bad("pooling", "'last' (last real token) only makes sense for a left-to-right encoder.")
        if self.pooling == "final" and self.encoder_type != "lstm":
            bad("pooling", "'final' (final LSTM states) needs encoder_type='lstm'.")
        if self.pooling == "final" and self.num_attention_layers:
            bad(
                "pooling",
                "'final' pools the LSTM states below the attention layers, which classification would then "
                "never use; choose 'mean' or 'cls'.",
            )
        if self.sequential_combine not in SEQUENTIAL_COMBINE:
            bad("sequential_combine", f"{self.sequential_combine!r} is not one of 'sum', 'concat'.")
        if self.sequential_tie_directions and self.encoder_type != "sequential_transformer":
            bad("sequential_tie_directions", "only applies to encoder_type='sequential_transformer'.")
        if self.share_layers and self.encoder_type == "lstm":
            bad("share_layers", "weight sharing across depth applies to layer stacks, not to the LSTM.")
        if not isinstance(self.lstm_bidirectional, bool):
            bad("lstm_bidirectional", f"must be True or False, got {self.lstm_bidirectional!r}.")
        if not self.lstm_bidirectional and self.encoder_type != "lstm":
            bad("lstm_bidirectional", "only applies to encoder_type='lstm'.")
        if self.lstm_max_singular_value is not None:
            if self.encoder_type != "lstm":
                bad("lstm_max_singular_value", "only applies to encoder_type='lstm'.")
            if not self.lstm_max_singular_value > 0:
                bad("lstm_max_singular_value", f"must be > 0, got {self.lstm_max_singular_value!r}.")
        if self.lstm_hidden_size is not None and (not isinstance(self.lstm_hidden_size, int) or self.lstm_hidden_size < 1):
            bad("lstm_hidden_size", f"must be a positive integer, got {self.lstm_hidden_size!r}.")

        if self.recurrence is None:
            if self.encoder_type == "recurrent":
                bad("recurrence", "encoder_type='recurrent' is a stack of recurrent sublayers: set 'simple' or 'gated'.")
            if self.recurrence_layers is not None:
                bad("recurrence_layers", "is set but recurrence is None; set recurrence='simple' or 'gated'.")
            return
        if self.encoder_type == "lstm":
            bad("recurrence", "the LSTM encoder has no feed-forward sublayer to replace; use encoder_type='recurrent'.")
        if not isinstance(self.recurrence_chunk_size, int) or self.recurrence_chunk_size < 1:
            bad("recurrence_chunk_size", f"must be an integer >= 1, got {self.recurrence_chunk_size!r}.")
        if self.recurrence_implementation not in RECURRENCE_IMPLEMENTATIONS:
            bad(
                "recurrence_implementation",
                f"{self.recurrence_implementation!r} is not one of auto, fast, naive, triton.",
            )
        if self.encoder_type == "sequential_transformer":
            if self.recurrence_direction is not None:
                bad(
                    "recurrence_direction",
                    "leave it unset for a sequential Transformer: each stack runs its recurrence in its own "
                    "direction so no position sees the future.",
                )
        elif self.recurrence_direction not in RECURRENCE_DIRECTIONS:
            bad("recurrence_direction", f"{self.recurrence_direction!r} is not one of {', '.join(RECURRENCE_DIRECTIONS)}.")
        d = self.recurrence_hidden_size
        if not isinstance(d, int) or d < 1:
            bad("recurrence_hidden_size", f"must be a positive integer, got {d!r}.")
        if self.recurrence_direction == "bidirectional" and d % 2:
            bad("recurrence_hidden_size", f"must be even for a bidirectional recurrence (half each way), got {d}.")
        if self.recurrence_layers is not None:
            n = self.num_hidden_layers
            if self.share_layers:
                bad("recurrence_layers", "with share_layers=True every depth applies the same layer; leave it unset.")
            if self.encoder_type == "recurrent":
                bad("recurrence_layers", "every layer of a 'recurrent' encoder is recurrent; leave it unset.")
            if not all(isinstance(i, int) for i in self.recurrence_layers):
                bad("recurrence_layers", f"must be a list of layer indices, got {self.recurrence_layers!r}.")
            bad_ids = [i for i in self.recurrence_layers if not 0 <= i < n]
            if bad_ids:
                bad("recurrence_layers", f"indices {bad_ids} are outside 0..{n - 1} (num_hidden_layers={n}).")
            if len(set(self.recurrence_layers)) != len(self.recurrence_layers):
                bad("recurrence_layers", f"has repeated indices: {self.recurrence_layers}.")

    def layer_uses_recurrence(self, layer_idx: int) -> bool:
        """Whether layer `layer_idx` has the recurrent sublayer in place of the feed-forward one."""
        if self.recurrence is None:
            return False
        return self.recurrence_layers is None or layer_idx in self.recurrence_layers

    def check_gradient_checkpointing(self) -> None:
        """Raise a `ValueError` if this encoder has nothing to checkpoint (the model's
        `activation_checkpointing_enable()` calls it; scripts can call it before building anything).

        Checkpointed are the Transformer layers (with or without recurrent sublayers), the recurrent layers and
        the attention layers on top of an LSTM; the LSTM itself runs normally: `nn.LSTM` runs all its layers in
        one call, and recomputing it whole would save little memory (its backward needs all of its
        activations at once)."""
        if self.encoder_type == "lstm" and not self.num_attention_layers:
            raise ValueError(
                "Gradient checkpointing has nothing to checkpoint in the LSTM encoder (encoder_type='lstm' without "
                "attention layers): nn.LSTM runs all its layers in one call; train without gradient "
                "checkpointing, or add attention layers on top (num_attention_layers), which are checkpointed."
            )


__all__ = ["RecurrentMLMConfig", "solve_recurrence_hidden_size"]
