"""Triton kernels for the recurrences: the GPU fast path (optional; `triton` may be absent).

One program owns one batch row, one of the `k` interleaved chains of the chunked form and a block of
channels; it walks its chain through time with the state in registers (float32), reading and writing one
`(channels,)` slice per step. Directions are a compile-time flag and the chunk lag is index arithmetic, so no
input is flipped, padded or transposed. The backward kernels walk the chain the other way and carry the
adjoint ``G_t = g_t + (dc_{t'}/dc_t) G_{t'}`` (t' the next step of the chain) in registers as well.

Semantics are those of `recurrence_naive.py` (tests run these kernels in Triton's CPU interpreter against it,
outputs and gradients). Inputs: `(batch, seq, channels)` with unit channel stride; `split` channels run
forward in time and the rest backward (`split = channels`: all forward).
"""

from __future__ import annotations

import torch

try:  # optional kernel: without triton the PyTorch fast path in recurrence.py is used
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None
    HAS_TRITON = False

_BLOCK = 128

if HAS_TRITON:

    @triton.jit
    def _step_index(i, n_steps, chain, length, LAG: tl.constexpr, REVERSE: tl.constexpr, BACKWARD: tl.constexpr):
        # i-th step of the walk; the backward kernels walk each chain in the opposite order
        j = n_steps - 1 - i if BACKWARD else i
        if REVERSE:
            return length - 1 - chain - j * LAG, j
        return chain + j * LAG, j

    @triton.jit
    def _simple_forward_kernel(
        X, C, length, channels, stride_xb, stride_xt, stride_cb, stride_ct,
        LAG: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr,
    ):
        row, chain, block = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < channels
        state = tl.zeros([BLOCK], dtype=tl.float32)
        n_steps = (length - chain + LAG - 1) // LAG
        for i in range(0, n_steps):
            t, _ = _step_index(i, n_steps, chain, length, LAG, REVERSE, False)
            x = tl.load(X + row * stride_xb + t * stride_xt + offs, mask=mask, other=0.0).to(tl.float32)
            d = state - x
            state = d * tl.sigmoid(d) + x
            tl.store(C + row * stride_cb + t * stride_ct + offs, state, mask=mask)

    @triton.jit
    def _simple_backward_kernel(
        X, C, GC, GX, length, channels,
        stride_xb, stride_xt, stride_cb, stride_ct, stride_gb, stride_gt, stride_hb, stride_ht,
        LAG: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr,
    ):
        row, chain, block = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < channels
        carry = tl.zeros([BLOCK], dtype=tl.float32)  # dc_{next}/dc_t * G_{next}
        n_steps = (length - chain + LAG - 1) // LAG
        for i in range(0, n_steps):
            t, j = _step_index(i, n_steps, chain, length, LAG, REVERSE, True)
            prev_t = t + LAG if REVERSE else t - LAG  # the state this step read in the forward walk
            x = tl.load(X + row * stride_xb + t * stride_xt + offs, mask=mask, other=0.0).to(tl.float32)
            c_prev = tl.load(C + row * stride_cb + prev_t * stride_ct + offs, mask=mask & (tl.full([BLOCK], j, tl.int32) > 0), other=0.0)
            g = tl.load(GC + row * stride_gb + t * stride_gt + offs, mask=mask, other=0.0).to(tl.float32)
            d = c_prev - x
            s = tl.sigmoid(d)
            slope = s * (1.0 + d * (1.0 - s))  # silu'(d) = dc_t/dc_prev
            adjoint = g + carry
            tl.store(GX + row * stride_hb + t * stride_ht + offs, adjoint * (1.0 - slope), mask=mask)
            carry = slope * adjoint

    @triton.jit
    def _gated_forward_kernel(
        Z, F, C, length, channels, stride_zb, stride_zt, stride_fb, stride_ft, stride_cb, stride_ct,
        LAG: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr,
    ):
        row, chain, block = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < channels
        state = tl.zeros([BLOCK], dtype=tl.float32)
        n_steps = (length - chain + LAG - 1) // LAG
        for i in range(0, n_steps):
            t, _ = _step_index(i, n_steps, chain, length, LAG, REVERSE, False)
            z = tl.load(Z + row * stride_zb + t * stride_zt + offs, mask=mask, other=0.0).to(tl.float32)
            f = tl.load(F + row * stride_fb + t * stride_ft + offs, mask=mask, other=0.0).to(tl.float32)
            state = f * state + (1.0 - f) * z
            tl.store(C + row * stride_cb + t * stride_ct + offs, state, mask=mask)

    @triton.jit
    def _gated_backward_kernel(
        Z, F, C, GC, GZ, GF, length, channels,
        stride_zb, stride_zt, stride_fb, stride_ft, stride_cb, stride_ct, stride_gb, stride_gt,
        stride_hb, stride_ht,
        LAG: tl.constexpr, REVERSE: tl.constexpr, BLOCK: tl.constexpr,
    ):
        row, chain, block = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < channels
        carry = tl.zeros([BLOCK], dtype=tl.float32)
        n_steps = (length - chain + LAG - 1) // LAG
        for i in range(0, n_steps):
            t, j = _step_index(i, n_steps, chain, length, LAG, REVERSE, True)
            prev_t = t + LAG if REVERSE else t - LAG
            z = tl.load(Z + row * stride_zb + t * stride_zt + offs, mask=mask, other=0.0).to(tl.float32)
            f = tl.load(F + row * stride_fb + t * stride_ft + offs, mask=mask, other=0.0).to(tl.float32)
            c_prev = tl.load(C + row * stride_cb + prev_t * stride_ct + offs, mask=mask & (tl.full([BLOCK], j, tl.int32) > 0), other=0.0)
            g = tl.load(GC + row * stride_gb + t * stride_gt + offs, mask=mask, other=0.0).to(tl.float32)
            adjoint = g + carry
            tl.store(GZ + row * stride_hb + t * stride_ht + offs, adjoint * (1.0 - f), mask=mask)
            tl.store(GF + row * stride_hb + t * stride_ht + offs, adjoint * (c_prev - z), mask=mask)
            carry = f * adjoint


def _parts(channels: int, split: int):
    """(channel slice, reverse) for the forward-running and the backward-running channels."""
    parts = []
    if split > 0:
        parts.append((slice(0, split), False))
    if split < channels:
        parts.append((slice(split, channels), True))
    return parts


def _grid(batch: int, lag: int, channels: int):
    return (batch, lag, triton.cdiv(channels, _BLOCK))


def _unit_channel_stride(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class TritonSimpleRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lag: int, split: int) -> torch.Tensor:
        x = _unit_channel_stride(x)
        batch, length, channels = x.shape
        c = torch.empty(batch, length, channels, dtype=torch.float32, device=x.device)
        for part, reverse in _parts(channels, split):
            xs, cs = x[..., part], c[..., part]
            _simple_forward_kernel[_grid(batch, min(lag, max(length, 1)), xs.shape[-1])](
                xs, cs, length, xs.shape[-1], xs.stride(0), xs.stride(1), cs.stride(0), cs.stride(1),
                LAG=lag, REVERSE=reverse, BLOCK=_BLOCK,
            )
        ctx.lag, ctx.split = lag, split
        ctx.save_for_backward(x, c)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor):
        x, c = ctx.saved_tensors
        grad_c = _unit_channel_stride(grad_c)
        batch, length, channels = x.shape
        grad_x = torch.empty(batch, length, channels, dtype=torch.float32, device=x.device)
        for part, reverse in _parts(channels, ctx.split):
            xs, cs, gs, hs = x[..., part], c[..., part], grad_c[..., part], grad_x[..., part]
            _simple_backward_kernel[_grid(batch, min(ctx.lag, max(length, 1)), xs.shape[-1])](
                xs, cs, gs, hs, length, xs.shape[-1],
                xs.stride(0), xs.stride(1), cs.stride(0), cs.stride(1), gs.stride(0), gs.stride(1),
                hs.stride(0), hs.stride(1), LAG=ctx.lag, REVERSE=reverse, BLOCK=_BLOCK,
            )
        return grad_x.to(x.dtype), None, None


class TritonGatedRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, f: torch.Tensor, lag: int, split: int) -> torch.Tensor:
        z, f = _unit_channel_stride(z), _unit_channel_stride(f)
        batch, length, channels = z.shape
        c = torch.empty(batch, length, channels, dtype=torch.float32, device=z.device)
        for part, reverse in _parts(channels, split):
            zs, fs, cs = z[..., part], f[..., part], c[..., part]
            _gated_forward_kernel[_grid(batch, min(lag, max(length, 1)), zs.shape[-1])](
                zs, fs, cs, length, zs.shape[-1], zs.stride(0), zs.stride(1), fs.stride(0), fs.stride(1),
                cs.stride(0), cs.stride(1), LAG=lag, REVERSE=reverse, BLOCK=_BLOCK,
            )
        ctx.lag, ctx.split = lag, split
        ctx.save_for_backward(z, f, c)
        return c

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor):
        z, f, c = ctx.saved_tensors
        grad_c = _unit_channel_stride(grad_c)
        batch, length, channels = z.shape
        grad_z = torch.empty(batch, length, channels, dtype=torch.float32, device=z.device)
        grad_f = torch.empty_like(grad_z)
        for part, reverse in _parts(channels, ctx.split):
            zs, fs, cs, gs = z[..., part], f[..., part], c[..., part], grad_c[..., part]
            gz, gf = grad_z[..., part], grad_f[..., part]
            _gated_backward_kernel[_grid(batch, min(ctx.lag, max(length, 1)), zs.shape[-1])](
                zs, fs, cs, gs, gz, gf, length, zs.shape[-1],
                zs.stride(0), zs.stride(1), fs.stride(0), fs.stride(1), cs.stride(0), cs.stride(1),
                gs.stride(0), gs.stride(1), gz.stride(0), gz.stride(1),
                LAG=ctx.lag, REVERSE=reverse, BLOCK=_BLOCK,
            )
        return grad_z.to(z.dtype), grad_f.to(f.dtype), None, None


def simple_recurrence_triton(x: torch.Tensor, chunk_size: int = 1, split: int | None = None) -> torch.Tensor:
    """Simple recurrence on `(batch, seq, channels)`; channels `[:split]` forward in time, the rest backward."""
    return TritonSimpleRecurrence.apply(x, chunk_size, x.shape[-1] if split is None else split)


def gated_recurrence_triton(
    z: torch.Tensor, f: torch.Tensor, chunk_size: int = 1, split: int | None = None
) -> torch.Tensor:
    """Gated recurrence on `(batch, seq, channels)`; channels `[:split]` forward in time, the rest backward."""
    return TritonGatedRecurrence.apply(z, f, chunk_size, z.shape[-1] if split is None else split)


__all__ = ["HAS_TRITON", "simple_recurrence_triton", "gated_recurrence_triton"]
