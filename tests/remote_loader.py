"""Child process: load saved models with trust_remote_code while `recurrent_mlm` cannot be imported.

Usage: python -m tests.remote_loader FOLDER [FOLDER ...]; each FOLDER holds a saved model and expected.safetensors
(input ids, mask and the float64 logits the saving process computed). Exits non-zero on any mismatch.
"""

import importlib.abc
import sys


class BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "recurrent_mlm" or name.startswith("recurrent_mlm."):
            raise ImportError(f"{name} is blocked: this process must load models from their Hub code")


sys.meta_path.insert(0, BlockPackage())


def main(folders):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    failures = 0
    for folder in folders:
        expected = load_file(f"{folder}/expected.safetensors")
        model = AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True).eval()
        module = type(model).__module__
        with torch.no_grad():
            logits = model.double()(expected["input_ids"], attention_mask=expected["attention_mask"]).logits
        diff = (logits - expected["logits"]).abs().max().item()
        ok = module.startswith("transformers_modules.") and diff <= 1e-10
        failures += not ok
        print(f"{folder}: {type(model).__name__} from {module}, max diff {diff:.2e} {'ok' if ok else 'FAIL'}")
    assert not any(m == "recurrent_mlm" or m.startswith("recurrent_mlm.") for m in sys.modules)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
