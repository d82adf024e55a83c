"""Fast recurrence paths against the plain-loop references: outputs and gradients, float64 and float32.

float32 results are compared with the reference computed in float64 (tests/numerics.py), never with another
float32 computation, so the tests hold on any CPU.
"""

import pytest
import torch

from recurrent_mlm.models.recurrence import (
    gated_recurrence,
    linear_scan,
    reverse_linear_scan,
    simple_recurrence,
)
from recurrent_mlm.models.recurrence_naive import (
    gated_recurrence_naive,
    linear_recurrence_naive,
    simple_recurrence_naive,
)
from tests.numerics import assert_close_to_reference, max_magnitude

# Lengths on both sides of the blocked-scan threshold (48), odd and exact block multiples.
SHAPES = [(1, 1, 3), (2, 7, 5), (3, 47, 4), (2, 49, 6), (2, 130, 3), (1, 512, 2)]


def _shape_id(shape):
    return "B{}xL{}xD{}".format(*shape)


def _check(got, reference):
    """float64: the same formula to 1e-10; float32: within float32 rounding of the float64 reference."""
    if got.dtype == torch.float64:
        torch.testing.assert_close(got, reference, rtol=1e-10, atol=1e-10)
    else:
        assert_close_to_reference(got, reference)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("chunk", [1, 2, 5], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_simple_recurrence_matches_reference(shape, chunk, dtype):
    x64 = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(*shape, dtype=torch.float64)
    x = x64.detach().to(dtype).requires_grad_()
    fast = simple_recurrence(x, chunk)
    (g_fast,) = torch.autograd.grad(fast, x, grad_out.to(dtype))
    ref = simple_recurrence_naive(x64, chunk)
    (g_ref,) = torch.autograd.grad(ref, x64, grad_out)
    _check(fast, ref)
    _check(g_fast, g_ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("chunk", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_gated_recurrence_matches_reference(shape, chunk, dtype):
    z64 = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    f64 = torch.rand(*shape, dtype=torch.float64).requires_grad_()
    grad_out = torch.randn(*shape, dtype=torch.float64)
    z, f = (t.detach().to(dtype).requires_grad_() for t in (z64, f64))
    fast = gated_recurrence(z, f, chunk)
    g_fast = torch.autograd.grad(fast, (z, f), grad_out.to(dtype))
    ref = gated_recurrence_naive(z64, f64, chunk)
    g_ref = torch.autograd.grad(ref, (z64, f64), grad_out)
    _check(fast, ref)
    for a, b in zip(g_fast, g_ref):
        _check(a, b)


def test_simple_recurrence_gradcheck():
    x = torch.randn(2, 60, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: simple_recurrence(t, 2), (x,))
    z = torch.randn(2, 55, 3, dtype=torch.float64, requires_grad=True)
    f = torch.rand(2, 55, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gated_recurrence(a, b, 1), (z, f))


@pytest.mark.parametrize("n", [0, 1, 10, 48, 100, 1000])
def test_linear_scans(n):
    a = torch.rand(n, 4, dtype=torch.float64) * 1.2  # includes growing coefficients
    b = torch.randn(n, 4, dtype=torch.float64)
    torch.testing.assert_close(linear_scan(a, b), linear_recurrence_naive(a, b))
    expected = linear_recurrence_naive(
        torch.cat([a.new_zeros(1, 4), a[1:].flip(0)]) if n else a, b.flip(0)
    ).flip(0)
    torch.testing.assert_close(reverse_linear_scan(a, b), expected)


def test_chunked_form_depends_on_t_minus_k():
    # With k = 3 the recurrence is three interleaved chains: changing step 4 changes only 4, 7, 10, ...
    x = torch.randn(1, 12, 2, dtype=torch.float64)
    y = x.clone()
    y[0, 4] += 1.0
    changed = (simple_recurrence(x, 3) - simple_recurrence(y, 3)).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [4, 7, 10]


def test_simple_recurrence_is_a_smooth_running_max():
    x = torch.randn(3, 200, 8, dtype=torch.float64) * 3
    c = simple_recurrence(x)
    running_max = torch.cummax(x, dim=1).values.clamp(min=0)  # c_0 = 0 enters the max
    assert torch.all(c <= running_max + 1e-12)
    assert torch.all(c >= x - 0.2785)  # min of swish is about -0.2785


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("recurrence", ["simple", "gated"])
def test_sublayer_bounded_on_4096_tokens(recurrence, dtype, tiny_config):
    from recurrent_mlm.models.modeling_recurrent_mlm import RECURRENCE_CLASSES

    config = tiny_config(recurrence=recurrence, max_position_embeddings=4096)
    layer = RECURRENCE_CLASSES[recurrence](config, "bidirectional").to(dtype)
    with torch.no_grad():
        layer.in_proj.weight.normal_(0, 1.0)  # large projections: a recurrence that can explode would
    embeddings = torch.randn(2, 4096, config.hidden_size, dtype=dtype) * 4
    with torch.no_grad():
        out = layer(embeddings)
    projected = layer.in_proj(embeddings).float()
    assert out.dtype == dtype and torch.isfinite(out.float()).all()
    # Bounded by the inputs, not growing with length: |out| <= max |projection| + biases.
    bound = projected.abs().max() * (1 if recurrence == "gated" else 2) + 2
    assert out.float().abs().max() <= bound
    assert out[:, -100:].float().abs().max() <= bound  # the end of the sequence is no worse than the start


# ---------------------------------------------------------------------------------------------------------
# Triton kernels (the GPU path), run by Triton's CPU interpreter when there is no GPU.
# ---------------------------------------------------------------------------------------------------------
def _triton():
    from recurrent_mlm.models.recurrence import triton_available

    if not triton_available():
        pytest.skip("triton is not installed")
    return "cuda" if torch.cuda.is_available() else "cpu"


def _both_directions(fn, tensors, chunk, split):
    """Reference: channels [:split] forward in time, the rest backward (flip, run, flip back)."""
    forward = fn(*[t[..., :split] for t in tensors], chunk)
    backward = fn(*[t[..., split:].flip(1) for t in tensors], chunk).flip(1)
    return torch.cat([forward, backward], dim=-1)


@pytest.mark.parametrize("chunk", [1, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("split", ["all-forward", "all-backward", "half"])
@pytest.mark.parametrize("shape", [(2, 9, 6), (1, 23, 130)], ids=_shape_id)
def test_triton_kernels_match_reference(shape, split, chunk):
    from recurrent_mlm.models.recurrence_triton import gated_recurrence_triton, simple_recurrence_triton

    device = _triton()
    channels = shape[-1]
    split = {"all-forward": channels, "all-backward": 0, "half": channels // 2}[split]
    # float32 kernels (float32 state) against the float64 reference
    x64 = torch.randn(*shape, device=device, dtype=torch.float64, requires_grad=True)
    z64 = torch.randn(*shape, device=device, dtype=torch.float64, requires_grad=True)
    f64 = torch.rand(*shape, device=device, dtype=torch.float64).requires_grad_()
    grad_out = torch.randn(*shape, device=device, dtype=torch.float64)
    x, z, f = (t.detach().float().requires_grad_() for t in (x64, z64, f64))

    got = simple_recurrence_triton(x, chunk, split)
    ref = _both_directions(simple_recurrence_naive, [x64], chunk, split)
    assert_close_to_reference(got, ref)
    assert_close_to_reference(torch.autograd.grad(got, x, grad_out.float())[0], torch.autograd.grad(ref, x64, grad_out)[0])

    got = gated_recurrence_triton(z, f, chunk, split)
    ref = _both_directions(gated_recurrence_naive, [z64, f64], chunk, split)
    assert_close_to_reference(got, ref)
    grads = torch.autograd.grad(got, (z, f), grad_out.float())
    for a, b in zip(grads, torch.autograd.grad(ref, (z64, f64), grad_out)):
        assert_close_to_reference(a, b)


@pytest.mark.parametrize("recurrence", ["simple", "gated"])
def test_triton_model_matches_pytorch_model(recurrence, tiny_config):
    """Whole model, padded batch (reordering path) and unpadded (direction split inside the kernel): the Triton
    and the PyTorch fast paths (float32) both agree with the plain-loop model in float64, outputs and every
    parameter gradient under a random cotangent."""
    from recurrent_mlm import RecurrentMLMModel

    device = _triton()
    torch.manual_seed(0)
    fields = dict(recurrence=recurrence, recurrence_chunk_size=2)
    fast = RecurrentMLMModel(tiny_config(**fields), add_pooling_layer=False).to(device)
    models = {"fast": fast}
    for implementation in ("triton", "naive"):
        model = RecurrentMLMModel(tiny_config(**fields, recurrence_implementation=implementation), add_pooling_layer=False)
        model.load_state_dict(fast.state_dict())
        models[implementation] = model.to(device)
    reference = models.pop("naive").double()
    names = [name for name, _ in reference.named_parameters()]
    ids = torch.randint(5, 100, (2, 11), device=device)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    for kwargs in (dict(), dict(attention_mask=mask)):
        expected = reference(ids, **kwargs).last_hidden_state
        cotangent = torch.randn_like(expected)
        expected_grads = torch.autograd.grad(expected, list(reference.parameters()), cotangent)
        for label, model in models.items():
            out = model(ids, **kwargs).last_hidden_state
            assert_close_to_reference(out, expected, msg=label)
            grads = torch.autograd.grad(out, list(model.parameters()), cotangent.float())
            scale = max_magnitude(expected_grads)  # some gradients are zero in exact arithmetic (key biases)
            for name, got, want in zip(names, grads, expected_grads):
                assert_close_to_reference(got, want, scale=scale, msg=f"{label}: {name}")


def test_auto_uses_triton_only_on_cuda():
    from recurrent_mlm.models.recurrence import resolve_implementation

    assert resolve_implementation("auto", torch.zeros(1)) == "fast"
    assert resolve_implementation("naive", torch.zeros(1)) == "naive"


# ---------------------------------------------------------------------------------------------------------
# Fused sublayers (everything between the input and output projections) against their references.
# ---------------------------------------------------------------------------------------------------------
def _close_to_float64(got: torch.Tensor, reference: torch.Tensor) -> None:
    """float64: the same formula to 1e-10; float32: errors within 1e-4 of the reference's largest magnitude
    (room for any summation order, none for a wrong formula)."""
    if got.dtype == torch.float64:
        torch.testing.assert_close(got, reference, rtol=1e-10, atol=1e-10)
    else:
        scale = reference.abs().max().item() if reference.numel() else 0.0
        torch.testing.assert_close(got.double(), reference, rtol=1e-4, atol=1e-4 * scale + 1e-30)


# Lengths on both sides of the blocked-scan threshold (48) in chain steps (length / chunk).
SUBLAYER_SHAPES = [(2, 1, 4), (2, 6, 6), (3, 48, 10), (1, 150, 6)]
DIRECTIONS = [("forward", torch.float64), ("backward", torch.float64), ("bidirectional", torch.float64),
              ("bidirectional", torch.float32)]


@pytest.mark.parametrize(("split", "dtype"), DIRECTIONS, ids=lambda v: str(v).replace("torch.float", "f"))
@pytest.mark.parametrize("chunk", [1, 2, 3], ids=lambda k: f"k{k}")
@pytest.mark.parametrize("recurrence", ["simple", "gated"])
@pytest.mark.parametrize("shape", SUBLAYER_SHAPES, ids=_shape_id)
def test_fused_sublayer_matches_reference(shape, recurrence, chunk, split, dtype):
    from recurrent_mlm.models.recurrence import fused_sublayer_supported, gated_sublayer, simple_sublayer
    from recurrent_mlm.models.recurrence_naive import gated_sublayer_naive, simple_sublayer_naive

    batch, length, width = shape
    if not fused_sublayer_supported(length, chunk):
        pytest.skip("the chunk does not divide the length: the general path runs")
    split_at = {"forward": width, "backward": 0, "bidirectional": width // 2}[split]
    projections = torch.randn(batch, length, 2 * width, dtype=dtype, requires_grad=True)
    state_bias = torch.randn(width, dtype=dtype, requires_grad=True)
    other_bias = torch.randn(width, dtype=dtype, requires_grad=True)
    inputs = (projections, state_bias, other_bias)
    fused_fn, reference_fn = {
        "simple": (simple_sublayer, simple_sublayer_naive),
        "gated": (gated_sublayer, gated_sublayer_naive),
    }[recurrence]
    grad_out = torch.randn(batch, length, width, dtype=dtype)
    # The reference in float64 whatever the tested dtype: the fused path must match the definition.
    reference_inputs = tuple(t.detach().double().requires_grad_() for t in inputs)
    reference = reference_fn(*reference_inputs, chunk, split_at)
    reference_grads = torch.autograd.grad(reference, reference_inputs, grad_out.double())
    fused = fused_fn(*inputs, chunk, split_at)
    fused_grads = torch.autograd.grad(fused, inputs, grad_out)
    assert fused.dtype == dtype
    _close_to_float64(fused, reference)
    for got, want in zip(fused_grads, reference_grads):
        _close_to_float64(got, want)


@pytest.mark.parametrize("recurrence", ["simple", "gated"])
def test_fused_sublayer_bf16_matches_float32(recurrence):
    from recurrent_mlm.models.recurrence import gated_sublayer, simple_sublayer

    fn = simple_sublayer if recurrence == "simple" else gated_sublayer
    projections = torch.randn(2, 40, 12)
    bias_a, bias_b = torch.randn(6), torch.randn(6)
    exact = fn(projections, bias_a, bias_b, 1, 3)
    low = projections.bfloat16().requires_grad_()
    out = fn(low, bias_a.bfloat16(), bias_b.bfloat16(), 1, 3)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), exact, rtol=0.05, atol=0.05)
    out.backward(torch.randn_like(out))
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()


def test_fused_sublayer_gradcheck():
    from recurrent_mlm.models.recurrence import gated_sublayer, simple_sublayer

    p = torch.randn(2, 12, 6, dtype=torch.float64, requires_grad=True)
    a = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: simple_sublayer(*t, 2, 1), (p, a, b))
    assert torch.autograd.gradcheck(lambda *t: gated_sublayer(*t, 3, 2), (p, a, b))


@pytest.mark.parametrize("split", ["forward", "backward", "bidirectional"])
@pytest.mark.parametrize("recurrence", ["simple", "gated"])
def test_fused_sublayer_with_padding_matches_each_row_alone(recurrence, split):
    """With a padding mask (padding at the ends of rows), each row's real tokens get the outputs and
    gradients of the reference run on that row alone; padding gets no gradient through the scan."""
    from recurrent_mlm.models.recurrence import gated_sublayer, padding_only_at_ends, right_padded, simple_sublayer
    from recurrent_mlm.models.recurrence_naive import gated_sublayer_naive, simple_sublayer_naive

    fused_fn, reference_fn = {
        "simple": (simple_sublayer, simple_sublayer_naive),
        "gated": (gated_sublayer, gated_sublayer_naive),
    }[recurrence]
    batch, length, width = 4, 60, 6
    split_at = {"forward": width, "backward": 0, "bidirectional": width // 2}[split]
    keep = torch.ones(batch, length, dtype=torch.long)
    keep[0, 50:] = 0  # right padding
    keep[1, :7] = 0  # left padding
    keep[2, :3] = 0  # both ends
    keep[2, 40:] = 0
    assert padding_only_at_ends(keep) and not padding_only_at_ends(torch.tensor([[1, 0, 1]]))
    assert right_padded(torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])) and not right_padded(keep)
    projections = torch.randn(batch, length, 2 * width, dtype=torch.float64, requires_grad=True)
    biases = [torch.randn(width, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    cotangent = torch.randn(batch, length, width, dtype=torch.float64) * keep[..., None]
    fused = fused_fn(projections, *biases, 1, split_at, keep=keep)
    grads = torch.autograd.grad(fused, [projections, *biases], cotangent)
    expected = torch.zeros_like(fused)
    expected_grads = [torch.zeros_like(t) for t in (projections, *biases)]
    for row in range(batch):
        real = keep[row].nonzero().flatten()
        leaves = [projections[row : row + 1, real].detach().requires_grad_(), *(b.detach().requires_grad_() for b in biases)]
        out = reference_fn(*leaves, 1, split_at)
        row_grads = torch.autograd.grad(out, leaves, cotangent[row : row + 1, real])
        expected[row, real] = out[0].detach()
        expected_grads[0][row, real] = row_grads[0][0]
        expected_grads[1] += row_grads[1]
        expected_grads[2] += row_grads[2]
    real = keep.bool()
    torch.testing.assert_close(fused[real], expected[real], rtol=1e-10, atol=1e-10)
    grad_x, expected_x = grads[0][..., :width], expected_grads[0][..., :width]
    torch.testing.assert_close(grad_x, expected_x, rtol=1e-10, atol=1e-10)  # zero at padding
    for got, want in zip(grads[1:], expected_grads[1:]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grads[0][..., width:][real], expected_grads[0][..., width:][real], rtol=1e-10, atol=1e-10)
