"""Numeric comparisons that hold on any CPU: float32 results against a float64 reference.

Two float32 computations of the same value differ by rounding that depends on summation order, i.e. on the
CPU's vector width, the thread count and the tensors' shapes; a test comparing them at a tight tolerance
tests this machine. So: compute the reference in float64, and allow the float32 result an error relative to
the scale of the reference tensor (an absolute error of `rtol * max|reference|`), far above float32 rounding
(eps = 1.2e-7) and far below any real mistake. Cotangents for gradients are random: the gradient of
`out.sum()` or `out.square().sum()` of a LayerNorm output is zero in exact arithmetic (the LayerNorm removes
mean and scale), so such a test would compare round-off.
"""

from __future__ import annotations

import torch

# ~1000 float32 ulps of the largest element: room for any summation order, none for a wrong formula.
FLOAT32_RTOL = 1e-4


def assert_close_to_reference(
    got: torch.Tensor, reference: torch.Tensor, rtol: float = FLOAT32_RTOL, scale: float | None = None, msg=None
):
    """`got` (float32) against a float64 `reference` of the same quantity.

    `scale` (default: the reference's largest magnitude) sets the absolute tolerance `rtol * scale`. Pass the
    scale of the computation when the reference is small for a structural reason: e.g. the gradient of an
    attention key bias is zero in exact arithmetic (softmax ignores a per-row constant), so in float32 it is
    round-off of the other gradients' size (see `max_magnitude`)."""
    assert reference.dtype == torch.float64, "the reference must be float64"
    if scale is None:
        scale = max_magnitude([reference])
    torch.testing.assert_close(
        got.double(), reference, rtol=rtol, atol=rtol * scale + 1e-30, check_device=False, msg=msg
    )


def max_magnitude(tensors) -> float:
    """Largest absolute value over `tensors` (`None` entries skipped)."""
    return max((t.abs().max().item() for t in tensors if t is not None and t.numel()), default=0.0)
