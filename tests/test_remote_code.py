"""Saved models load through trust_remote_code in a process where `recurrent_mlm` cannot be imported."""

import subprocess
import sys

import torch
from safetensors.torch import save_file

from recurrent_mlm import RecurrentMLMForMaskedLM
from tests.conftest import REPO_ROOT, subprocess_env
from tests.variants import VARIANTS, variant_config


def test_every_variant_loads_without_the_package(tmp_path):
    folders = []
    for name in VARIANTS:
        model = RecurrentMLMForMaskedLM(variant_config(name)).eval()
        ids = torch.randint(5, 100, (2, 10))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        folder = tmp_path / name
        model.save_pretrained(folder)
        with torch.no_grad():  # float64 (the loader too): the comparison cannot see rounding differences
            logits = model.double()(ids, attention_mask=mask).logits
        save_file({"input_ids": ids, "attention_mask": mask, "logits": logits}, folder / "expected.safetensors")
        folders.append(str(folder))
    env = subprocess_env()
    env["PYTHONPATH"] = str(REPO_ROOT)  # tests/ importable, src/ not: the package must not be found
    done = subprocess.run(
        [sys.executable, "-m", "tests.remote_loader", *folders],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" ok") == len(VARIANTS), done.stdout


def test_hub_code_is_the_package_code(tmp_path):
    RecurrentMLMForMaskedLM(variant_config("recurrent_bert")).save_pretrained(tmp_path)
    package = REPO_ROOT / "src" / "recurrent_mlm" / "models"
    names = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py")
    assert names == sorted(p.name for p in tmp_path.glob("*.py"))  # every model file travels, nothing else
    for name in names:
        assert (tmp_path / name).read_bytes() == (package / name).read_bytes(), name


def test_hub_code_imports_only_torch_transformers_and_siblings():
    """Unguarded imports must be installed wherever the model loads; optional kernels sit in try blocks."""
    import ast

    allowed_roots = {"torch", "transformers", "__future__", "collections", "dataclasses", "math", "os", "typing",
                     "warnings"}
    for path in (REPO_ROOT / "src" / "recurrent_mlm" / "models").glob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(node) for block in ast.walk(tree) if isinstance(block, ast.Try)
                   for stmt in block.body for node in ast.walk(stmt)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: a sibling file
                    continue
                roots = {node.module.split(".")[0]}
            else:
                continue
            if id(node) in guarded:
                assert roots <= allowed_roots | {"triton"}, f"{path.name} imports {roots} (guarded)"
                continue
            assert roots <= allowed_roots, f"{path.name} imports {roots - allowed_roots} unguarded"
