"""Reference implementations of the recurrences: a plain Python loop over time, autograd does the rest.

These are the definitions the fast paths in `recurrence.py` are tested against (outputs and gradients, in
float64). They are also usable as a fallback (`recurrence_implementation="naive"`). On CPU a loop over time is
cheap next to the matrix products of a layer; they are slower than the fast path mainly in the backward pass.

Shapes: inputs are batch-major `(batch, seq, channels)`. Step `t` depends on step `t - k` (`k` =
`chunk_size`); states before the start are zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def simple_recurrence_naive(x: torch.Tensor, chunk_size: int = 1) -> torch.Tensor:
    """Lei et al. (2022): ``c_t = swish(c_{t-k} - x_t) + x_t`` with ``c_{t-k} = 0`` for ``t < k``.

    A smooth running maximum: ``swish(d) = d * sigmoid(d)`` is close to ``max(d, 0)``, so ``c_t`` is close to
    ``max(c_{t-k}, x_t)``. It is bounded: ``x_t - 0.279 < c_t < max(0, max_{s <= t} x_s)``.
    """
    batch, length, channels = x.shape
    states: list[torch.Tensor] = []
    zero = x.new_zeros(batch, channels)
    for t in range(length):
        prev = states[t - chunk_size] if t >= chunk_size else zero
        states.append(F.silu(prev - x[:, t]) + x[:, t])
    return torch.stack(states, dim=1) if states else x.new_zeros(x.shape)


def gated_recurrence_naive(z: torch.Tensor, f: torch.Tensor, chunk_size: int = 1) -> torch.Tensor:
    """SRU-style gated linear recurrence: ``c_t = f_t * c_{t-k} + (1 - f_t) * z_t``, ``c = 0`` before the start.

    With ``f`` in (0, 1) each state is a convex combination of the previous state and the input, so
    ``|c_t| <= max_s |z_s|``.
    """
    batch, length, channels = z.shape
    states: list[torch.Tensor] = []
    zero = z.new_zeros(batch, channels)
    for t in range(length):
        prev = states[t - chunk_size] if t >= chunk_size else zero
        states.append(f[:, t] * prev + (1 - f[:, t]) * z[:, t])
    return torch.stack(states, dim=1) if states else z.new_zeros(z.shape)


def linear_recurrence_naive(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` along dim 0 with ``h_{-1} = 0`` (time-major)."""
    out = []
    h = torch.zeros_like(b[0]) if b.shape[0] else None
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out) if out else b.clone()


def _directional(fn, inputs: list[torch.Tensor], chunk_size: int, split: int) -> torch.Tensor:
    """Channels `[:split]` read left to right, the rest right to left (flip, run, flip back)."""
    forward = fn(*[x[..., :split] for x in inputs], chunk_size)
    backward = fn(*[x[..., split:].flip(1) for x in inputs], chunk_size).flip(1)
    return torch.cat([forward, backward], dim=-1)


def simple_sublayer_naive(
    projections: torch.Tensor, state_bias: torch.Tensor, gate_bias: torch.Tensor, chunk_size: int = 1, split=None
) -> torch.Tensor:
    """Lei et al.'s sublayer between its input and output projections: ``(C + b_c) * sigmoid(X2 + b_s)``.

    `projections` is ``[X1, X2]``, `(batch, seq, 2d)`; ``C`` is the simple recurrence of ``X1``, channels
    `[:split]` left to right and the rest right to left (default: all left to right). The state is float32
    for low-precision inputs.
    """
    width = projections.shape[-1] // 2
    x1, x2 = projections.to(torch.promote_types(projections.dtype, torch.float32)).split(width, dim=-1)
    c = _directional(simple_recurrence_naive, [x1], chunk_size, width if split is None else split)
    return ((c + state_bias) * torch.sigmoid(x2 + gate_bias)).to(projections.dtype)


def gated_sublayer_naive(
    projections: torch.Tensor, state_bias: torch.Tensor, forget_bias: torch.Tensor, chunk_size: int = 1, split=None
) -> torch.Tensor:
    """The gated sublayer between its projections: ``C + b_c`` with ``f = sigmoid(F + b_f)``,
    ``c_t = f_t c_{t-k} + (1 - f_t) z_t``; `projections` is ``[Z, F]``, `(batch, seq, 2d)`."""
    width = projections.shape[-1] // 2
    z, f_logits = projections.to(torch.promote_types(projections.dtype, torch.float32)).split(width, dim=-1)
    f = torch.sigmoid(f_logits + forget_bias)
    c = _directional(gated_recurrence_naive, [z, f], chunk_size, width if split is None else split)
    return (c + state_bias).to(projections.dtype)


__all__ = [
    "simple_recurrence_naive",
    "gated_recurrence_naive",
    "linear_recurrence_naive",
    "simple_sublayer_naive",
    "gated_sublayer_naive",
]
