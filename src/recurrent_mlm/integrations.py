"""PEFT defaults for `model_type="recurrent_mlm"`: `LoraConfig()` without `target_modules` works on our models.

PEFT fills in a missing `target_modules` from a table keyed by the model type
(`peft.utils.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`; `"bert"` maps to `["query", "value"]`). It has no
registration function, so we add our entry to that table. Ours, `LORA_TARGET_MODULES`, names module suffixes:

* `query`, `value`: the self-attention projections, as for BERT (Hu et al.'s LoRA choice);
* `in_proj`: the fused input projections of the recurrent sublayers (`X W1 | X W2`, or `z | f`), the recurrence's
  counterpart of the attention projections;
* `projection`: the LSTM encoder's projection back to `hidden_size` (LoRA cannot adapt `nn.LSTM` itself).

A variant gets the ones it has (PEFT refuses only when none matches). Classification heads are trained and saved
in full by PEFT's task types (`modules_to_save`); the pooler is not, and loads identically every time (see
`RecurrentMLMPreTrainedModel._init_weights`), so an adapter reloads to the same outputs.

Importing PEFT takes seconds, so `import recurrent_mlm` does not: it registers at once when PEFT is already
imported and otherwise right after PEFT defines the table (a one-shot import hook).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MODEL_TYPE = "recurrent_mlm"
LORA_TARGET_MODULES = ("query", "value", "in_proj", "projection")
_PEFT_TABLE_MODULE = "peft.utils.constants"
_PEFT_TABLE = "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"


def _register(constants: ModuleType) -> bool:
    table = getattr(constants, _PEFT_TABLE, None)
    if not isinstance(table, dict):  # a PEFT without the table: nothing to do
        return False
    table.setdefault(MODEL_TYPE, list(LORA_TARGET_MODULES))  # a user's own entry wins
    return True


def register_peft_defaults() -> bool:
    """Register `LORA_TARGET_MODULES` for `model_type="recurrent_mlm"` with PEFT now (importing it).

    Returns False when PEFT is not installed. `import recurrent_mlm` arranges this already; call it only to
    force the import."""
    try:
        constants = importlib.import_module(_PEFT_TABLE_MODULE)
    except ImportError:
        return False
    return _register(constants)


class _RegisteringLoader(importlib.abc.Loader):
    """Runs PEFT's module, then adds our entry to its table."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _register(module)

    def __getattr__(self, name: str):  # get_source, get_filename, ... as the original loader
        return getattr(self._loader, name)


class _RegisterWhenImported(importlib.abc.MetaPathFinder):
    """Import hook: when `module_name` is imported, add our entry to its table (then step aside)."""

    def __init__(self, module_name: str = _PEFT_TABLE_MODULE):
        self.module_name = module_name

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != self.module_name:
            return None
        sys.meta_path.remove(self)  # one shot; returning a spec ends the import system's loop over finders
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def register_peft_defaults_when_imported(module_name: str = _PEFT_TABLE_MODULE) -> None:
    """Register now if PEFT is imported, else as soon as it is (without importing it here)."""
    constants = sys.modules.get(module_name)
    if constants is not None:
        _register(constants)
    elif not any(isinstance(f, _RegisterWhenImported) and f.module_name == module_name for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterWhenImported(module_name))


__all__ = ["LORA_TARGET_MODULES", "register_peft_defaults", "register_peft_defaults_when_imported"]
