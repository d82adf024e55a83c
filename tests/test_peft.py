"""PEFT: default LoRA target modules for `recurrent_mlm`, and adapters that reload to the same outputs."""

import sys

import pytest
import torch

from recurrent_mlm import RecurrentMLMForMaskedLM, RecurrentMLMForSequenceClassification
from recurrent_mlm.integrations import LORA_TARGET_MODULES
from tests.variants import variant_config

# Which default targets each variant has (PEFT adapts the ones present).
ADAPTED = {
    "bert": {"query", "value"},
    "recurrent_bert": {"query", "value", "in_proj"},
    "lstm": {"projection"},
}


# PEFT 0.21 still calls transformers' deprecated `is_gradient_checkpointing` (PEFT's to update, not ours).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("variant", list(ADAPTED))
def test_lora_adapter_reloads_to_the_same_logits(variant, tmp_path):
    """The scenario of a user: pretrain (an MLM checkpoint: no pooler), fine-tune a LoRA adapter for
    classification, save it, load base + adapter in a fresh session (another RNG state)."""
    peft = pytest.importorskip("peft")
    RecurrentMLMForMaskedLM(variant_config(variant)).save_pretrained(tmp_path / "base")
    torch.manual_seed(1)
    base = RecurrentMLMForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=3)
    model = peft.get_peft_model(base, peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=4))  # default targets
    adapted = {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert adapted == ADAPTED[variant]
    with torch.no_grad():  # stand-in for training: LoRA's B starts at zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    model.save_pretrained(tmp_path / "adapter")
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():  # float64: the same weights must give the same numbers, rounding aside
        expected = model.double().eval()(input_ids=ids, attention_mask=mask).logits

    torch.manual_seed(2)
    base = RecurrentMLMForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=3)
    reloaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").double().eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, attention_mask=mask).logits, expected)


def test_default_targets_are_registered_with_peft():
    peft = pytest.importorskip("peft")
    assert peft.utils.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["recurrent_mlm"] == list(LORA_TARGET_MODULES)


def test_registration_waits_for_the_import(tmp_path, monkeypatch):
    """`import recurrent_mlm` must not import PEFT (seconds): a hook adds the entry when PEFT's table module is
    imported. Checked on a stand-in package (the real PEFT is imported once per process)."""
    from recurrent_mlm.integrations import register_peft_defaults_when_imported

    package = tmp_path / "fake_peft_rmlm" / "utils"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "constants.py").write_text(
        "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING = {'bert': ['query', 'value']}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    register_peft_defaults_when_imported("fake_peft_rmlm.utils.constants")
    assert "fake_peft_rmlm" not in sys.modules
    try:
        from fake_peft_rmlm.utils import constants

        table = constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
        assert table == {"bert": ["query", "value"], "recurrent_mlm": list(LORA_TARGET_MODULES)}
    finally:
        for name in [n for n in sys.modules if n.startswith("fake_peft_rmlm")]:
            del sys.modules[name]
