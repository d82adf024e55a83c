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

from .recurrence_naive import (
    gated_recurrence_naive,
    gated_sublayer_naive,
    simple_recurrence_naive,
    simple_sublayer_naive,
)

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


# ----------------------------------------------------------------------------------------------------------
# Fused sublayers: everything between a sublayer's input projection and its output projection in one
# autograd function, both directions without flipping, and the simple recurrence in its difference form.
# ----------------------------------------------------------------------------------------------------------
def _state_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for the low-precision dtypes of autocast, float64 stays float64 (the tests' reference)."""
    return torch.promote_types(t.dtype, torch.float32)


def _direction_parts(width: int, split: int | None) -> list[tuple[slice, bool]]:
    """`(channel slice, reverse)` pairs: channels `[:split]` read left to right, the rest right to left."""
    split = width if split is None else split
    parts = []
    if split > 0:
        parts.append((slice(0, split), False))
    if split < width:
        parts.append((slice(split, width), True))
    return parts


def _chains(t: torch.Tensor, lag: int) -> torch.Tensor:
    """`(rows, L, w)` -> `(rows, L/lag, lag, w)` view (`lag` divides `L`): step `j` of the lag-1 recurrence
    over chunks is one slice, whatever the channel stride (no copy, unlike `_lagged`)."""
    return t.unflatten(1, (t.shape[1] // lag, lag))


def _keep_mask(keep: torch.Tensor | None, lag: int, like: torch.Tensor) -> torch.Tensor | None:
    """`(batch, L)` mask of real tokens -> `(batch, L, 1)` multiplier in the state dtype."""
    if keep is None:
        return None
    if lag != 1:
        raise ValueError("the fused sublayers take padding masks only with chunk_size 1")
    return keep.to(like.dtype).unsqueeze(-1)


def padding_only_at_ends(attention_mask: torch.Tensor) -> bool:
    """Whether each row's real tokens are one contiguous run (padding on the left and/or right only)."""
    mask = attention_mask != 0
    positions = torch.arange(mask.shape[1], device=mask.device)
    first = torch.where(mask, positions, mask.shape[1]).amin(dim=1, keepdim=True)
    count = mask.sum(dim=1, keepdim=True)
    return bool(((positions >= first) & (positions < first + count) == mask).all())


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether each row's real tokens come first (padding only on the right, as BERT's tokenizers pad)."""
    mask = attention_mask != 0
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


def fused_sublayer_supported(length: int, chunk_size: int) -> bool:
    """The fused sublayers need whole chunks (`chunk_size` divides the length); others take the general path."""
    return length % chunk_size == 0


def _simple_scan_difference_(x: torch.Tensor, diff: torch.Tensor, state: torch.Tensor, reverse: bool) -> None:
    """Simple recurrence over chain views `(rows, n, lag, w)`, in its difference form.

    With ``D_t = c_{t-k} - x_t`` the recurrence reads ``D_{t+k} = silu(D_t) + (x_t - x_{t+k})``: the
    differences are computed for all steps at once, leaving two ops per step (``c_t = silu(D_t) + x_t``
    directly needs three). ``D`` (kept for the backward pass) is written to `diff`, ``c`` to `state`;
    ``c_t = D_{t+k} + x_{t+k}``, except at the last step. `reverse` reads right to left.
    """
    if reverse:  # step j depends on step j + 1
        torch.neg(x[:, -1], out=diff[:, -1])
        torch.sub(x[:, 1:], x[:, :-1], out=diff[:, :-1])
        steps = diff.unbind(1)
        for j in range(len(steps) - 2, -1, -1):
            steps[j].add_(F.silu(steps[j + 1]))
        torch.add(diff[:, :-1], x[:, :-1], out=state[:, 1:])
        torch.add(F.silu(diff[:, 0]), x[:, 0], out=state[:, 0])
    else:
        torch.neg(x[:, 0], out=diff[:, 0])
        torch.sub(x[:, :-1], x[:, 1:], out=diff[:, 1:])
        steps = diff.unbind(1)
        for j in range(1, len(steps)):
            steps[j].add_(F.silu(steps[j - 1]))
        torch.add(diff[:, 1:], x[:, 1:], out=state[:, :-1])
        torch.add(F.silu(diff[:, -1]), x[:, -1], out=state[:, -1])


class SimpleSublayerFunction(torch.autograd.Function):
    """``(C + b_c) * sigmoid(X2 + b_s)`` from the projections ``[X1, X2]`` `(batch, L, 2d)`, ``C`` the simple
    recurrence of ``X1`` (channels `[:split]` left to right, the rest right to left), in float32.

    Reference: `simple_sublayer_naive`. Each direction runs in its own time order on its own contiguous
    buffers (no flipped or concatenated copies of the input; the scans are several times slower on strided
    views); the forward pass saves ``D`` (see `_simple_scan_difference_`), ``C + b_c`` and the gate, and the
    backward pass solves the adjoint ``G_t = g_t + silu'(D_{t+k}) G_{t+k}`` with the blocked scan, writing
    the projections' gradient in place.
    """

    @staticmethod
    def forward(ctx, projections, state_bias, gate_bias, lag: int, split: int | None, keep=None):
        batch, length, width = projections.shape[0], projections.shape[1], projections.shape[2] // 2
        p = projections.to(_state_dtype(projections))  # (batch, L, 2d); no copy for float32
        x, gate_logits = p[..., :width], p[..., width:]
        keep = _keep_mask(keep, lag, p)
        out = torch.empty(batch, length, width, dtype=projections.dtype, device=p.device)
        saved = []
        for part, reverse in _direction_parts(width, split):
            diff = p.new_empty((batch, length, part.stop - part.start))  # D_t = c_{t-k} - x_t
            state = torch.empty_like(diff)  # C, then C + b_c
            inputs = x[..., part] if keep is None else x[..., part] * keep  # padding: x = 0 keeps c = 0
            if length:
                _simple_scan_difference_(_chains(inputs, lag), _chains(diff, lag), _chains(state, lag), reverse)
            state.add_(state_bias[part])
            gate = torch.add(gate_logits[..., part], gate_bias[part]).sigmoid_()
            torch.mul(state, gate, out=out[..., part])
            saved += [diff, state, gate]
        ctx.lag, ctx.split, ctx.dtype, ctx.keep = lag, split, projections.dtype, keep
        ctx.bias_dtypes = (state_bias.dtype, gate_bias.dtype)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        saved = ctx.saved_tensors
        lag = ctx.lag
        batch, length = grad_out.shape[:2]
        width = grad_out.shape[2]
        dtype = saved[0].dtype
        g = grad_out.to(dtype)
        grad_p = g.new_empty((batch, length, 2 * width))
        grad_x, grad_gate = grad_p[..., :width], grad_p[..., width:]
        grad_state_bias, grad_gate_bias = g.new_empty(width), g.new_empty(width)
        one = g.new_ones(())
        for i, (part, reverse) in enumerate(_direction_parts(width, ctx.split)):
            diff, state, gate = saved[3 * i : 3 * i + 3]
            adjoint = g[..., part] * gate  # dL/dC (contiguous, ours): scanned in place into G
            torch.sum(adjoint, (0, 1), out=grad_state_bias[part])
            torch.ops.aten.sigmoid_backward.grad_input(g[..., part] * state, gate, grad_input=grad_gate[..., part])
            torch.sum(grad_gate[..., part], (0, 1), out=grad_gate_bias[part])
            # silu'(D_t) = dc_t/dc_{t-k}. Right-to-left channels keep theirs `lag` steps later, so that the
            # coefficient view `slope[:, :L]` holds at t what the scan needs there: silu'(D_{t-k}) for the
            # forward scan of a right-to-left chain; a left-to-right chain's reverse scan reads one step ahead.
            extra = lag if reverse else 0
            slope = diff.new_empty((batch, length + extra, diff.shape[2]))
            own = slope[:, extra:]
            torch.ops.aten.silu_backward.grad_input(one.expand_as(own), diff, grad_input=own)
            if reverse:
                slope[:, :extra].zero_()
            if length:
                scan = linear_scan_ if reverse else reverse_linear_scan_
                scan(_chains(adjoint, lag), _chains(slope[:, :length], lag))
            # dc_t/dx_t = 1 - silu'(D_t)
            torch.addcmul(adjoint, adjoint, own, value=-1, out=grad_x[..., part])
            if ctx.keep is not None:
                grad_x[..., part].mul_(ctx.keep)
        return (
            grad_p.to(ctx.dtype),
            grad_state_bias.to(ctx.bias_dtypes[0]),
            grad_gate_bias.to(ctx.bias_dtypes[1]),
            None,
            None,
            None,
        )


class GatedSublayerFunction(torch.autograd.Function):
    """``C + b_c`` from the projections ``[Z, F]`` `(batch, L, 2d)`: ``f = sigmoid(F + b_f)``,
    ``c_t = f_t c_{t-k} + (1 - f_t) z_t`` (channels `[:split]` left to right, the rest right to left).

    Reference: `gated_sublayer_naive`. Forward and backward are blocked scans on contiguous per-direction
    buffers; the forget gates of right-to-left channels are stored `lag` steps later so that the same
    coefficient view serves the scans of both passes (see `SimpleSublayerFunction.backward`).
    """

    @staticmethod
    def forward(ctx, projections, state_bias, forget_bias, lag: int, split: int | None, keep=None):
        batch, length, width = projections.shape[0], projections.shape[1], projections.shape[2] // 2
        p = projections.to(_state_dtype(projections))
        z, f_logits = p[..., :width], p[..., width:]
        keep = _keep_mask(keep, lag, p)
        out = torch.empty(batch, length, width, dtype=projections.dtype, device=p.device)
        saved = [p]
        for part, reverse in _direction_parts(width, split):
            extra = lag if reverse else 0
            forget = p.new_empty((batch, length + extra, part.stop - part.start))
            own = forget[:, extra:]
            torch.add(f_logits[..., part], forget_bias[part], out=own).sigmoid_()
            if reverse:
                forget[:, :extra].zero_()
            state = torch.addcmul(z[..., part], own, z[..., part], value=-1)  # (1 - f_t) z_t, scanned into c
            if keep is not None:
                state.mul_(keep)  # padding: z = 0 keeps c = 0
            if length:
                # left to right: c_t = f_t c_{t-k} + b_t; right to left: c_t = f_t c_{t+k} + b_t, whose
                # coefficient the reverse scan reads at t + k, where `forget` keeps it.
                scan = reverse_linear_scan_ if reverse else linear_scan_
                scan(_chains(state, lag), _chains(forget[:, :length], lag))
            torch.add(state, state_bias[part], out=out[..., part])
            saved += [forget, state]
        ctx.lag, ctx.split, ctx.dtype, ctx.keep = lag, split, projections.dtype, keep
        ctx.bias_dtypes = (state_bias.dtype, forget_bias.dtype)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        p, *saved = ctx.saved_tensors
        lag = ctx.lag
        batch, length, width = grad_out.shape
        z = p[..., :width]
        grad_p = p.new_empty((batch, length, 2 * width))
        grad_z, grad_f = grad_p[..., :width], grad_p[..., width:]
        grad_state_bias, grad_forget_bias = p.new_empty(width), p.new_empty(width)
        for i, (part, reverse) in enumerate(_direction_parts(width, ctx.split)):
            forget, state = saved[2 * i : 2 * i + 2]
            extra = lag if reverse else 0
            own = forget[:, extra:]
            adjoint = torch.empty_like(state)  # dL/dc (ours, contiguous): scanned in place into G
            adjoint.copy_(grad_out[..., part])
            torch.sum(adjoint, (0, 1), out=grad_state_bias[part])
            if length:
                scan = linear_scan_ if reverse else reverse_linear_scan_
                scan(_chains(adjoint, lag), _chains(forget[:, :length], lag))
            torch.addcmul(adjoint, adjoint, own, value=-1, out=grad_z[..., part])  # dc_t/dz_t = 1 - f_t
            # dc_t/df_t = c_prev - z_t, with c_prev = c_{t-k} (c_{t+k} right to left), 0 before the start
            slope = torch.neg(z[..., part])
            if ctx.keep is not None:  # padding entered as z = 0
                grad_z[..., part].mul_(ctx.keep)
                slope.mul_(ctx.keep)
            if reverse:
                slope[:, : length - lag].add_(state[:, lag:])
            else:
                slope[:, lag:].add_(state[:, : max(length - lag, 0)])
            slope.mul_(adjoint)
            torch.ops.aten.sigmoid_backward.grad_input(slope, own, grad_input=grad_f[..., part])
            torch.sum(grad_f[..., part], (0, 1), out=grad_forget_bias[part])
        return (
            grad_p.to(ctx.dtype),
            grad_state_bias.to(ctx.bias_dtypes[0]),
            grad_forget_bias.to(ctx.bias_dtypes[1]),
            None,
            None,
            None,
        )


@torch.compiler.disable
def simple_sublayer(
    projections: torch.Tensor,
    state_bias: torch.Tensor,
    gate_bias: torch.Tensor,
    chunk_size: int = 1,
    split: int | None = None,
    implementation: str = "fast",
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lei et al.'s sublayer between its projections, `(batch, L, 2d)` -> `(batch, L, d)`; see
    `simple_sublayer_naive` for the definition. `implementation="naive"` runs that reference.

    `keep` (`(batch, L)`, 1 at real tokens; `chunk_size` 1, padding only at the ends of each row, see
    `padding_only_at_ends`): padding enters the scan as zeros, which leave the zero state unchanged, so real
    tokens read exactly the state of their row alone; outputs at padding are arbitrary.
    """
    if implementation == "naive":
        if keep is not None:
            raise ValueError("the reference sublayer takes no padding mask: run it on each row's real tokens")
        return simple_sublayer_naive(projections, state_bias, gate_bias, chunk_size, split)
    if not fused_sublayer_supported(projections.shape[1], chunk_size):
        raise ValueError(f"the fused sublayer needs chunk_size ({chunk_size}) to divide the length")
    return SimpleSublayerFunction.apply(projections, state_bias, gate_bias, chunk_size, split, keep)


@torch.compiler.disable
def gated_sublayer(
    projections: torch.Tensor,
    state_bias: torch.Tensor,
    forget_bias: torch.Tensor,
    chunk_size: int = 1,
    split: int | None = None,
    implementation: str = "fast",
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The gated sublayer between its projections, `(batch, L, 2d)` -> `(batch, L, d)`; see
    `gated_sublayer_naive` for the definition. `implementation="naive"` runs that reference. `keep`: as in
    `simple_sublayer` (padding enters as ``z = 0``, which keeps the zero state)."""
    if implementation == "naive":
        if keep is not None:
            raise ValueError("the reference sublayer takes no padding mask: run it on each row's real tokens")
        return gated_sublayer_naive(projections, state_bias, forget_bias, chunk_size, split)
    if not fused_sublayer_supported(projections.shape[1], chunk_size):
        raise ValueError(f"the fused sublayer needs chunk_size ({chunk_size}) to divide the length")
    return GatedSublayerFunction.apply(projections, state_bias, forget_bias, chunk_size, split, keep)


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
    "SimpleSublayerFunction",
    "GatedSublayerFunction",
    "simple_sublayer",
    "gated_sublayer",
    "fused_sublayer_supported",
    "padding_only_at_ends",
    "right_padded",
    "resolve_implementation",
    "capturing_graph",
    "exporting",
    "triton_available",
]
