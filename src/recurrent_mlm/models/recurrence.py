"""Fast paths for the recurrences, checked against the loops in `recurrence_naive.py`.

Tensors are batch-major `(rows, steps, channels)` and scanned along dim 1 in place, without transposing to
time-major: a step's slice `x[:, t]` has contiguous channel rows, which elementwise kernels handle at full
speed, and every layout copy of a `(batch, seq, width)` tensor costs as much as a step of the loop (on a CPU
most of it in first-touch page faults). The chunked form (step `t` depends on `t - k`) is `k` interleaved
recurrences: the forward loop runs over `ceil(L / k)` slices of `k` steps, the scans over a `(rows, L/k, k*D)`
view.

* `simple`: ``c_t = silu(c_{t-k} - x_t) + x_t`` is non-linear, so the forward pass is a loop; it runs without
  autograd (three in-place ops per step, no graph of `L` nodes). With autograd the backward pass is where the
  time goes: here the local derivatives ``silu'(c_{t-k} - x_t)`` are computed for all steps at once and the
  adjoint ``G_t = g_t + silu'_{t+k} G_{t+k}`` is a *linear* recurrence, solved by the blocked scan.
* `gated`: ``c_t = f_t c_{t-k} + (1 - f_t) z_t`` is linear; forward and backward both use the blocked scan.

The blocked scan splits the steps into blocks of about ``sqrt(n)``, scans all blocks at once, then carries
block boundary states across blocks: ``~2 sqrt(n)`` sequential ops instead of ``n``. It multiplies at most one
block's coefficients together (no logarithms, no division), so float32 neither overflows nor loses the
precision that log-space cumulative sums lose.

The recurrent state is float32 whatever the autocast dtype (callers cast). The public functions are excluded
from `torch.compile` tracing (one graph break) so compile time does not grow with the sequence length.

On CUDA tensors, `implementation="auto"` uses the Triton kernels of `recurrence_triton.py` when Triton is
installed (one program per row, chain and channel block walks time with the state in registers).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from .recurrence_naive import gated_recurrence_naive, simple_recurrence_naive

# Below this many steps a plain loop is cheaper than the two-level blocked scan.
_BLOCKED_SCAN_MIN_STEPS = 48


def _blocks(n: int) -> tuple[int, int]:
    block = max(2, math.isqrt(n))
    return block, n // block


def linear_scan_(h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """In place on `h` (holding `b`): ``h_t = a_t * h_{t-1} + b_t`` along dim 1 of `(rows, n, width)`."""
    n = h.shape[1]
    if n < _BLOCKED_SCAN_MIN_STEPS:
        for t in range(1, n):
            h[:, t].addcmul_(a[:, t], h[:, t - 1])
        return h
    block, num_blocks = _blocks(n)
    main = block * num_blocks  # blocks cover steps [0, main); the rest follows sequentially
    hb = h[:, :main].unflatten(1, (num_blocks, block))  # (rows, blocks, block, width) views
    ab = a[:, :main].unflatten(1, (num_blocks, block))
    for j in range(1, block):  # local scans of every block at once, each from a zero state
        hb[:, :, j].addcmul_(ab[:, :, j], hb[:, :, j - 1])
    decay = torch.cumprod(ab, dim=2)  # decay[:, i, j] = a[i, 0] * ... * a[i, j]
    ends = hb[:, :, -1].clone()
    for i in range(1, num_blocks):  # true end state of each block
        ends[:, i].addcmul_(decay[:, i, -1], ends[:, i - 1])
    hb[:, 1:].addcmul_(decay[:, 1:], ends[:, :-1].unsqueeze(2))
    for t in range(main, n):
        h[:, t].addcmul_(a[:, t], h[:, t - 1])
    return h


def reverse_linear_scan_(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """In place on `g`: ``G_t = g_t + a_{t+1} * G_{t+1}`` along dim 1 (the adjoint of `linear_scan_`)."""
    n = g.shape[1]
    if n < _BLOCKED_SCAN_MIN_STEPS:
        for t in range(n - 2, -1, -1):
            g[:, t].addcmul_(a[:, t + 1], g[:, t + 1])
        return g
    block, num_blocks = _blocks(n)
    head = n - block * num_blocks  # blocks cover steps [head, n); the head is done last
    gb = g[:, head:].unflatten(1, (num_blocks, block))
    ab = a[:, head:].unflatten(1, (num_blocks, block))
    for j in range(block - 2, -1, -1):  # local reverse scans, each block from a zero state after it
        gb[:, :, j].addcmul_(ab[:, :, j + 1], gb[:, :, j + 1])
    # carry[:, i, j] = a[i, j+1] * ... * a[i, block-1] * a[next block, 0]: how G at the next block's start
    # reaches step j of block i.
    carry = torch.empty_like(ab[:, :-1])
    carry[:, :, -1] = ab[:, 1:, 0]
    for j in range(block - 2, -1, -1):
        torch.mul(carry[:, :, j + 1], ab[:, :-1, j + 1], out=carry[:, :, j])
    starts = gb[:, :, 0].clone()
    for i in range(num_blocks - 2, -1, -1):  # true start state of each block
        starts[:, i].addcmul_(carry[:, i, 0], starts[:, i + 1])
    gb[:, :-1].addcmul_(carry, starts[:, 1:].unsqueeze(2))
    for t in range(head - 1, -1, -1):
        g[:, t].addcmul_(a[:, t + 1], g[:, t + 1])
    return g


def _lagged(x: torch.Tensor, lag: int) -> torch.Tensor:
    """`(rows, L, D)` -> `(rows, ceil(L/lag), lag*D)`: step j holds steps j*lag .. j*lag+lag-1, so a
    recurrence with lag `lag` becomes one with lag 1. A view when possible; zero-padded at the end otherwise."""
    if lag == 1:
        return x
    rows, length, width = x.shape
    pad = -length % lag
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.contiguous().view(rows, (length + pad) // lag, lag * width)


def _unlagged(y: torch.Tensor, length: int, width: int) -> torch.Tensor:
    return y.reshape(y.shape[0], -1, width)[:, :length]


def _adjoint(grad: torch.Tensor, coefficients: torch.Tensor, lag: int) -> torch.Tensor:
    """``G_t = grad_t + coefficients_{t+k} G_{t+k}`` in a fresh buffer (the incoming gradient is not ours)."""
    length, width = grad.shape[1], grad.shape[2]
    buffer = grad.clone(memory_format=torch.contiguous_format)
    lagged = _lagged(buffer, lag)  # a view of `buffer`, or a padded copy when k does not divide L
    reverse_linear_scan_(lagged, _lagged(coefficients, lag))
    return _unlagged(lagged, length, width)


class SimpleRecurrenceFunction(torch.autograd.Function):
    """``c_t = silu(c_{t-k} - x_t) + x_t`` along dim 1 of a `(rows, L, D)` float tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lag: int) -> torch.Tensor:
        rows, length, width = x.shape
        c = torch.empty(rows, length, width, dtype=x.dtype, device=x.device)
        if length:
            diff = torch.empty(rows, min(lag, length), width, dtype=x.dtype, device=x.device)
            prev = torch.zeros_like(diff)
            for start in range(0, length, lag):  # a slice of `lag` steps depends on the slice before it
                stop = min(start + lag, length)
                n = stop - start
                torch.sub(prev[:, :n], x[:, start:stop], out=diff[:, :n])
                F.silu(diff[:, :n], inplace=True)
                torch.add(diff[:, :n], x[:, start:stop], out=c[:, start:stop])
                prev = c[:, start:stop]
        ctx.lag = lag
        ctx.save_for_backward(x, c)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor):
        x, c = ctx.saved_tensors
        lag = ctx.lag
        slope = torch.empty_like(c)  # d = c_{t-k} - x_t for every step at once, then silu'(d) in place
        torch.neg(x[:, :lag], out=slope[:, :lag])
        torch.sub(c[:, :-lag], x[:, lag:], out=slope[:, lag:])
        s = torch.sigmoid(slope)
        # silu'(d) = s * (1 + d * (1 - s)) = dc_t/dc_{t-k}; dc_t/dx_t = 1 - silu'(d)
        slope.mul_(1 - s).add_(1).mul_(s)
        del s
        adjoint = _adjoint(grad_c, slope, lag)
        return adjoint * slope.neg_().add_(1), None


class GatedRecurrenceFunction(torch.autograd.Function):
    """``c_t = f_t * c_{t-k} + (1 - f_t) * z_t`` along dim 1 of `(rows, L, D)` float tensors."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, f: torch.Tensor, lag: int) -> torch.Tensor:
        length, width = z.shape[1], z.shape[2]
        h = torch.mul(1 - f, z).contiguous()  # b_t, scanned in place into c
        lagged = _lagged(h, lag)
        linear_scan_(lagged, _lagged(f, lag))
        c = _unlagged(lagged, length, width)
        ctx.lag = lag
        ctx.save_for_backward(z, f, c)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor):
        z, f, c = ctx.saved_tensors
        lag = ctx.lag
        adjoint = _adjoint(grad_c, f, lag)  # dc_t/dc_{t-k} = f_t
        grad_z = adjoint * (1 - f) if ctx.needs_input_grad[0] else None
        grad_f = None
        if ctx.needs_input_grad[1]:  # dc_t/df_t = c_{t-k} - z_t
            grad_f = torch.neg(z)
            grad_f[:, lag:].add_(c[:, :-lag])
            grad_f.mul_(adjoint)
        return grad_z, grad_f, None


_warned_no_triton = False


def capturing_graph() -> bool:
    """True while the forward is captured as a graph (`torch.compile`, `torch.export`, both ONNX exporters,
    `torch.jit.trace`): a Python branch on a tensor's values would break the graph or be frozen into it."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def exporting() -> bool:
    """True while `torch.export`, the ONNX exporters or `torch.jit.trace` capture the forward to run it elsewhere."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return torch.jit.is_tracing() or (is_exporting is not None and is_exporting())


def resolve_implementation(requested: str, x: torch.Tensor) -> str:
    """`"auto"` -> `"triton"` for CUDA tensors when Triton is installed, else `"fast"` (one warning on a GPU
    without Triton); explicit choices are returned as they are.

    While exporting (see `exporting`) every choice becomes `"naive"`: the fast paths' autograd functions fill
    preallocated buffers in place, which the legacy ONNX exporter records wrongly, and Triton kernels cannot
    leave this process. The plain loop exports as ordinary operations (one per step, so an exported graph has
    a fixed sequence length)."""
    global _warned_no_triton
    if exporting():
        return "naive"
    if requested in ("fast", "naive", "triton"):
        return requested
    if x.is_cuda:
        if triton_available():
            return "triton"
        if not _warned_no_triton:
            _warned_no_triton = True
            warnings.warn(
                "recurrent-mlm: Triton is not installed, so the recurrences run the PyTorch fast path on the GPU "
                "(correct, but slower); `pip install triton` for the fused kernels.",
                stacklevel=3,
            )
    return "fast"


def triton_available() -> bool:
    try:
        from .recurrence_triton import HAS_TRITON
    except ImportError:  # pragma: no cover
        return False
    return HAS_TRITON


@torch.compiler.disable
def simple_recurrence(
    x: torch.Tensor, chunk_size: int = 1, implementation: str = "fast", split: int | None = None
) -> torch.Tensor:
    """`(batch, seq, channels)` simple recurrence; see `simple_recurrence_naive` for the definition.

    `split` (Triton only): channels `[:split]` run forward in time, the rest backward; default all forward.
    """
    if implementation == "triton":
        from .recurrence_triton import simple_recurrence_triton

        return simple_recurrence_triton(x, chunk_size, split)
    if split is not None and split != x.shape[-1]:
        raise ValueError("split directions are only handled by the Triton kernels")
    if implementation == "naive":
        return simple_recurrence_naive(x, chunk_size)
    return SimpleRecurrenceFunction.apply(x, chunk_size)


@torch.compiler.disable
def gated_recurrence(
    z: torch.Tensor, f: torch.Tensor, chunk_size: int = 1, implementation: str = "fast", split: int | None = None
) -> torch.Tensor:
    """`(batch, seq, channels)` gated recurrence; see `gated_recurrence_naive` for the definition."""
    if implementation == "triton":
        from .recurrence_triton import gated_recurrence_triton

        return gated_recurrence_triton(z, f, chunk_size, split)
    if split is not None and split != z.shape[-1]:
        raise ValueError("split directions are only handled by the Triton kernels")
    if implementation == "naive":
        return gated_recurrence_naive(z, f, chunk_size)
    return GatedRecurrenceFunction.apply(z, f, chunk_size)


def linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` along dim 0 (time-major), out of place: a reference-friendly wrapper."""
    if b.shape[0] == 0:
        return b.clone()
    flat = lambda t: t.reshape(t.shape[0], -1).T.unsqueeze(-1)  # noqa: E731  (n, ...) -> (rest, n, 1)
    h = flat(b).contiguous().clone()
    linear_scan_(h, flat(a).contiguous())
    return h.squeeze(-1).T.reshape(b.shape)


def reverse_linear_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``G_t = b_t + a_{t+1} * G_{t+1}`` along dim 0 (time-major), out of place."""
    if b.shape[0] == 0:
        return b.clone()
    flat = lambda t: t.reshape(t.shape[0], -1).T.unsqueeze(-1)  # noqa: E731
    g = flat(b).contiguous().clone()
    reverse_linear_scan_(g, flat(a).contiguous())
    return g.squeeze(-1).T.reshape(b.shape)


__all__ = [
    "linear_scan_",
    "reverse_linear_scan_",
    "linear_scan",
    "reverse_linear_scan",
    "SimpleRecurrenceFunction",
    "GatedRecurrenceFunction",
    "simple_recurrence",
    "gated_recurrence",
    "resolve_implementation",
    "capturing_graph",
    "exporting",
    "triton_available",
]
