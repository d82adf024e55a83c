"""Export: `torch.export` (every variant), ONNX through onnxruntime (legacy and dynamo exporters),
`torch.compile(fullgraph=True)`. A captured graph must equal eager PyTorch on padded and unpadded batches, whatever
batch it was captured on (the model has no Python branch on the mask's values while a graph is captured, and the
recurrences export as their reference loops). See docs/export.md.
"""

import io
import warnings

import pytest
import torch

from recurrent_mlm import RecurrentMLMModel
from tests.numerics import assert_close_to_reference
from tests.variants import VARIANTS, variant_config

LENGTH = 6  # the recurrences export as one step per token: short sequences keep export fast


def _export_config(name):
    # One layer keeps tracing fast; the LSTM keeps two (its layers are reordered one by one when padded).
    if VARIANTS[name].get("encoder_type") == "lstm":
        return variant_config(name)
    overrides = {"num_hidden_layers": 1}
    if "recurrence_layers" in VARIANTS[name]:
        overrides["recurrence_layers"] = [0]
    return variant_config(name, **overrides)


def _batch():
    ids = torch.randint(5, 100, (3, LENGTH))
    padded = torch.ones_like(ids)
    padded[1, 4:] = 0  # right padding
    padded[2, :2] = 0  # left padding
    return ids, padded, torch.ones_like(ids)


def _compare(got_hidden, got_pooled, expected, mask, check):
    real = mask.bool()  # padded positions' outputs are unspecified
    check(got_hidden[real], expected.last_hidden_state[real])
    check(got_pooled, expected.pooler_output)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_torch_export_equals_eager_on_padded_and_unpadded_batches(variant):
    model = RecurrentMLMModel(_export_config(variant)).double().eval()  # float64: compare the logic, not rounding
    ids, padded, unpadded = _batch()
    # Captured on an unpadded batch with its all-ones mask: in eager mode that mask is dropped as a shortcut, which
    # a captured graph must not freeze in.
    program = torch.export.export(model, (ids,), {"attention_mask": unpadded})
    with torch.no_grad():
        for mask in (padded, unpadded):
            got = program.module()(ids, attention_mask=mask)
            _compare(got.last_hidden_state, got.pooler_output, model(ids, attention_mask=mask), mask,
                     torch.testing.assert_close)


MAIN_VARIANTS = ["bert", "recurrent_bert", "lstm"]


@pytest.mark.slow
@pytest.mark.parametrize("variant", MAIN_VARIANTS)
def test_torch_export_with_a_free_batch_size(variant):
    """The batch dimension can stay symbolic (the sequence length is fixed except for BERT: see the docs)."""
    model = RecurrentMLMModel(_export_config(variant)).double().eval()
    ids, padded, _ = _batch()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        model, (), {"input_ids": ids[1:], "attention_mask": padded[1:]},
        dynamic_shapes={"input_ids": {0: batch}, "attention_mask": {0: batch}},
    )
    with torch.no_grad():
        got = program.module()(input_ids=ids, attention_mask=padded)
        _compare(got.last_hidden_state, got.pooler_output, model(ids, attention_mask=padded), padded,
                 torch.testing.assert_close)


def _onnx_runtime():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _run_onnx(ort, model_bytes, ids, mask):
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["input_ids", "attention_mask"], names
    hidden, pooled = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[:2]
    return torch.from_numpy(hidden), torch.from_numpy(pooled)


@pytest.mark.parametrize("variant", MAIN_VARIANTS)
def test_legacy_onnx_export_round_trip(variant):
    """`torch.onnx.export(dynamo=False)` traces the model (`torch.jit.trace`); the fast recurrence used to record
    wrong numbers there, and a trace on an unpadded batch used to ignore padding."""
    ort = _onnx_runtime()
    model = RecurrentMLMModel(_export_config(variant)).eval()
    reference = RecurrentMLMModel(_export_config(variant)).double().eval()
    reference.load_state_dict(model.state_dict())
    ids, padded, unpadded = _batch()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the legacy exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, unpadded), buffer, dynamo=False, input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state", "pooler_output"],
        )
    with torch.no_grad():
        for mask in (padded, unpadded):
            hidden, pooled = _run_onnx(ort, buffer.getvalue(), ids, mask)
            _compare(hidden, pooled, reference(ids, attention_mask=mask), mask, assert_close_to_reference)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["recurrent_bert"])  # the LSTM converts too (checked by hand: ~6 s more)
def test_dynamo_onnx_export_round_trip(variant, tmp_path):
    """`torch.onnx.export(dynamo=True)` (the default exporter) from a `torch.export` program."""
    ort = _onnx_runtime()
    pytest.importorskip("onnxscript")
    model = RecurrentMLMModel(_export_config(variant)).eval()
    reference = RecurrentMLMModel(_export_config(variant)).double().eval()
    reference.load_state_dict(model.state_dict())
    ids, padded, unpadded = _batch()
    program = torch.export.export(model, (ids,), {"attention_mask": padded})
    torch.onnx.export(program, dynamo=True).save(str(tmp_path / "model.onnx"))
    with torch.no_grad():
        for mask in (padded, unpadded):
            hidden, pooled = _run_onnx(ort, str(tmp_path / "model.onnx"), ids, mask)
            _compare(hidden, pooled, reference(ids, attention_mask=mask), mask, assert_close_to_reference)


@pytest.mark.slow
def test_compile_fullgraph_has_no_data_dependent_branch():
    """No graph break in a model without recurrence (the recurrences and `nn.LSTM` are opaque calls to
    `torch.compile` by design): the padding check no longer branches on the mask's values."""
    model = RecurrentMLMModel(variant_config("bert")).double().eval()
    ids, padded, unpadded = _batch()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        for mask in (padded, unpadded):
            got = compiled(ids, attention_mask=mask)
            _compare(got.last_hidden_state, got.pooler_output, model(ids, attention_mask=mask), mask,
                     torch.testing.assert_close)
