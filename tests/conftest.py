"""Shared test set-up: offline, hermetic Hugging Face caches, tiny configs, subprocess environments."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before transformers / huggingface_hub are imported anywhere: no network, no Xet, caches in a throw-away folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="rmlm-hf-home-"))
# Tiny models gain nothing from intra-op threads, and spinning OpenMP threads on a busy 2-core host cost
# minutes: one thread, here and in every child process (set before torch is imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Without a GPU, Triton kernels run in Triton's CPU interpreter (read when kernels are defined, so before the
# package imports recurrence_triton); on a GPU machine the compiled kernels are tested.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that must use this checkout's code, offline."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT / "src"), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def tiny_config_kwargs(**overrides):
    """Fields of a tiny model (hidden 32, 2 layers, vocab 100) for fast tests."""
    base = dict(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    base.update(overrides)
    return base


@pytest.fixture
def tiny_config():
    from recurrent_mlm import RecurrentMLMConfig

    def make(**overrides):
        return RecurrentMLMConfig(**tiny_config_kwargs(**overrides))

    return make


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
