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


__all__ = ["simple_recurrence_naive", "gated_recurrence_naive", "linear_recurrence_naive"]
