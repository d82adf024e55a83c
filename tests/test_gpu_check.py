"""`benchmarks/gpu_check.py` is ready to run on a GPU: its CPU dry run exercises everything but the kernels,
without `datasets` or `evaluate` (the GPU machines have neither)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

# Runs the script with `datasets` and `evaluate` unimportable, as on the GPU machine.
BLOCKED_RUN = """
import importlib.abc, runpy, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("datasets", "evaluate"):
            raise ImportError(f"{name} is not installed on the GPU machine")
        return None

sys.meta_path.insert(0, Block())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_gpu_check_dry_run_without_datasets_or_evaluate(tmp_path):
    script = REPO_ROOT / "benchmarks" / "gpu_check.py"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(script), str(tmp_path / "out"), "--dry-run"],
        env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert record["setup"]["dry_run"] and record["setup"]["implementation"] == "fast"
    assert not record["errors"]
    assert record["kernels"] and all(row["ok"] for row in record["kernels"])
    assert {row["what"] for row in record["kernels"]} == {"kernel", "model"}
    assert {row["dtype"] for row in record["kernels"]} == {"fp32", "bf16"}
    models = {row["model"] for row in record["training"]}
    assert models == {"transformers.BertForMaskedLM", "bert", "recurrent_bert", "gated_bert"}
    assert all(row["step_ms"] > 0 for row in record["training"])
    assert {(row["recurrence"], row["pass"]) for row in record["bandwidth"]["kernels"]} == {
        (r, p) for r in ("simple", "gated") for p in ("forward", "backward")
    }
    assert record["bandwidth"]["copy_bandwidth"] > 0
    markdown = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "DRY RUN" in markdown and "## 3. Memory bandwidth" in markdown


def test_gpu_check_refuses_to_run_without_a_gpu(tmp_path, capsys):
    import importlib.util

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--dry-run" in capsys.readouterr().err.splitlines()[-1]
