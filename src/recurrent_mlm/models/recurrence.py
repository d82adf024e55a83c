"""Fast paths for the recurrences, checked against the loops in `recurrence_naive.py`.

Both recurrences run time-major on `(steps, batch * k, channels)` tensors: the chunked form (step `t`
depends on `t - k`) is `k` interleaved recurrences, so it folds into the batch and needs `ceil(L / k)`
sequential steps.

* `simple`: ``c_t = silu(c_{t-1} - x_t) + x_t`` is non-linear, so the forward pass is a loop; it runs without
  autograd (three fused in-place ops per step, no graph of `L` nodes). The backward pass is where the time
  goes with autograd: here the local derivatives ``silu'(c_{t-1} - x_t)`` are computed for all steps at once
  and the adjoint ``G_t = g_t + silu'_{t+1} G_{t+1}`` is a *linear* recurrence, solved by the blocked scan.
* `gated`: ``c_t = f_t c_{t-1} + (1 - f_t) z_t`` is linear, forward and backward both use the blocked scan.

The blocked scan (`linear_scan`) splits the steps into blocks of about ``sqrt(n)``, scans all blocks at once,
then carries block end states across blocks: ``~2 sqrt(n)`` sequential ops instead of ``n``. It uses only
products of at most one block's coefficients (no logarithms, no division), so float32 neither overflows nor
loses the precision that log-space cumulative sums lose.

The recurrent state is float32 whatever the autocast dtype (callers cast); the functions are excluded from
`torch.compile` tracing (a graph break) so compile time does not grow with the sequence length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .recurrence_naive import gated_recurrence_naive, simple_recurrence_naive

# Below this many steps a plain loop is cheaper than the two-level blocked scan.
_BLOCKED_SCAN_MIN_STEPS = 48


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` along dim 0 with ``h_{-1} = 0``. No autograd; returns a new tensor."""
    n = b.shape[0]
    if n < _BLOCKED_SCAN_MIN_STEPS:
        h = b.clone()
        for t in range(1, n):
            h[t].addcmul_(a[t], h[t - 1])
        return h
    block = math.isqrt(n - 1) + 1  # ceil(sqrt(n))
    num_blocks = -(-n // block)
    pad = num_blocks * block - n
    if pad:  # padded steps come last, so they change nothing before them
        a = torch.cat([a, a.new_zeros(pad, *a.shape[1:])])
        b = torch.cat([b, b.new_zeros(pad, *b.shape[1:])])
    a = a.reshape(num_blocks, block, *a.shape[1:])
    h = b.reshape(num_blocks, block, *b.shape[1:]).clone()
    for j in range(1, block):  # local scans of every block at once, from a zero state
        h[:, j].addcmul_(a[:, j], h[:, j - 1])
    decay = torch.cumprod(a, dim=1)  # decay[i, j] = a[i, 0] * ... * a[i, j]
    ends = h[:, -1].clone()
    for i in range(1, num_blocks):  # true end state of each block
        ends[i].addcmul_(decay[i, -1], ends[i - 1])
    h[1:].addcmul_(decay[1:], ends[:-1].unsqueeze(1))
    return h.reshape(num_blocks * block, *h.shape[2:])[:n]


def reverse_linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``G_t = b_t + a_{t+1} * G_{t+1}`` along dim 0 with ``G_{n-1} = b_{n-1}`` (an adjoint recurrence)."""
    if b.shape[0] == 0:
        return b.clone()
    coeff = torch.cat([a.new_zeros(1, *a.shape[1:]), a[1:].flip(0)])
    return linear_scan(coeff, b.flip(0)).flip(0)


def _shift_one(h: torch.Tensor) -> torch.Tensor:
    """`h` delayed by one step along dim 0, zero first."""
    return torch.cat([h.new_zeros(1, *h.shape[1:]), h[:-1]])


class SimpleRecurrenceFunction(torch.autograd.Function):
    """``c_t = silu(c_{t-1} - x_t) + x_t`` on a contiguous time-major `(steps, batch, channels)` tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        c = torch.empty_like(x)
        if x.shape[0]:
            diff = torch.empty_like(x[0])
            prev = torch.zeros_like(x[0])
            for t in range(x.shape[0]):
                torch.sub(prev, x[t], out=diff)
                F.silu(diff, inplace=True)
                torch.add(diff, x[t], out=c[t])
                prev = c[t]
        ctx.save_for_backward(x, c)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor) -> torch.Tensor:
        x, c = ctx.saved_tensors
        d = _shift_one(c).sub_(x)
        s = torch.sigmoid(d)
        # silu'(d) = s * (1 + d * (1 - s)): dc_t/dc_{t-1}; dc_t/dx_t = 1 - silu'(d)
        slope = s.mul_(1 + d * (1 - s))
        adjoint = reverse_linear_scan(slope, grad_c.contiguous())
        return adjoint.mul_(1 - slope)


class LinearRecurrenceFunction(torch.autograd.Function):
    """``h_t = a_t * h_{t-1} + b_t`` on contiguous time-major tensors, with the adjoint scan as backward."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = linear_scan(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h = ctx.saved_tensors
        adjoint = reverse_linear_scan(a, grad_h.contiguous())
        grad_a = adjoint * _shift_one(h) if ctx.needs_input_grad[0] else None
        return grad_a, adjoint


def to_time_major(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """`(B, L, D)` -> contiguous `(ceil(L / k), B * k, D)`, zero-padded at the end."""
    batch, length, channels = x.shape
    steps = -(-length // chunk_size)
    pad = steps * chunk_size - length
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    x = x.reshape(batch, steps, chunk_size, channels).transpose(0, 1)
    return x.reshape(steps, batch * chunk_size, channels)


def from_time_major(y: torch.Tensor, batch: int, length: int, chunk_size: int) -> torch.Tensor:
    steps, _, channels = y.shape
    y = y.reshape(steps, batch, chunk_size, channels).transpose(0, 1)
    return y.reshape(batch, steps * chunk_size, channels)[:, :length]


@torch.compiler.disable
def simple_recurrence(x: torch.Tensor, chunk_size: int = 1, implementation: str = "fast") -> torch.Tensor:
    """Batch-major `(B, L, D)` simple recurrence; see `simple_recurrence_naive` for the definition."""
    if implementation == "naive":
        return simple_recurrence_naive(x, chunk_size)
    batch, length, _ = x.shape
    c = SimpleRecurrenceFunction.apply(to_time_major(x, chunk_size))
    return from_time_major(c, batch, length, chunk_size)


@torch.compiler.disable
def gated_recurrence(
    z: torch.Tensor, f: torch.Tensor, chunk_size: int = 1, implementation: str = "fast"
) -> torch.Tensor:
    """Batch-major `(B, L, D)` gated recurrence; see `gated_recurrence_naive` for the definition."""
    if implementation == "naive":
        return gated_recurrence_naive(z, f, chunk_size)
    batch, length, _ = z.shape
    f_tm = to_time_major(f, chunk_size)
    z_tm = to_time_major(z, chunk_size)
    h = LinearRecurrenceFunction.apply(f_tm, (1 - f_tm) * z_tm)
    return from_time_major(h, batch, length, chunk_size)


__all__ = [
    "linear_scan",
    "reverse_linear_scan",
    "SimpleRecurrenceFunction",
    "LinearRecurrenceFunction",
    "simple_recurrence",
    "gated_recurrence",
]
