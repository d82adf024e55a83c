"""The CPU allocator tuning is safe to call and can be turned off."""

import subprocess
import sys

from tests.conftest import REPO_ROOT, subprocess_env

CODE = "from recurrent_mlm.cpu import tune_cpu_allocator as t; import torch; r = t(); torch.randn(64 << 20).sum(); print(r, t())"


def test_tuning_applies_once_and_can_be_disabled():
    on = subprocess.run([sys.executable, "-c", CODE], env=subprocess_env(), cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=120)
    off = subprocess.run([sys.executable, "-c", CODE], env=subprocess_env(RMLM_MALLOC_TUNING="0"), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    if sys.platform.startswith("linux"):
        assert on.stdout.split() == ["True", "True"]
    assert off.stdout.split() == ["False", "False"]
