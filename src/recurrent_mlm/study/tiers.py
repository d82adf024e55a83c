"""Size tiers of the study: what each claim runs at `smoke` (the test suite, seconds), `demo` (the main job,
about 13 minutes on 2 CPU cores), `cpu` (a laptop: about an hour of two cores) and `gpu` (one accelerator).

A tier fixes every number that changes results (models, sizes, steps, seeds, data sizes, grids); the plan of
each claim records its tier, so a resumed study never mixes tiers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The study's models: a name -> (variant of recurrent_mlm.variants, extra config fields).
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("bert", {}),
    "recurrent_bert": ("recurrent_bert", {}),
    "sequential_transformer": ("sequential_transformer", {}),
    "sequential_universal_transformer": ("sequential_universal_transformer", {}),
    "lstm": ("lstm", {}),
    # Miller & Hardt's stable recurrent model: every gate's recurrent matrix projected to spectral norm <= 1
    # after each optimizer step (their condition for a tanh RNN; see docs/probes.md for the LSTM).
    "lstm_stable": ("lstm", {"lstm_max_singular_value": 1.0}),
    # BERT given recurrent BERT's compute: more steps, as many as a timing pilot says recurrent BERT's steps cost
    # (StudyContext.equal_compute); the tiers with `lei_equal_compute` add it to Lei et al.'s comparison.
    "bert_equal_compute": ("bert", {}),
}


@dataclass(frozen=True)
class PretrainSpec:
    size: str = "tiny"
    steps: int = 1000
    batch_size: int = 32
    max_seq_length: int = 128
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.06
    vocab_size: int = 4096
    eval_samples: int = 256
    checkpointing_steps: int = 200
    shape: dict[str, Any] = field(default_factory=dict)  # overrides of the size preset (smoke: hidden 32)


@dataclass(frozen=True)
class GlueSpec:
    tasks: tuple[str, ...] = ("sst2", "cola", "stsb")
    train_rows: int = 2000
    selection_rows: int = 500  # from the training file, never trained on: the learning rate is chosen here
    dev_rows: int | None = None  # None: the whole official dev set (the reported split)
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    seeds: tuple[int, ...] = (1, 2)
    epochs: float = 3.0
    batch_size: int = 32
    max_seq_length: int = 64


@dataclass(frozen=True)
class AgreementSpec:
    models: tuple[str, ...] = ("bert", "sequential_transformer", "sequential_universal_transformer", "lstm")
    train_items: int = 6000
    test_items: int = 2000
    seeds: tuple[int, ...] = (1, 2, 3)
    learning_rate: float = 1e-3
    epochs: float = 3.0
    batch_size: int = 32
    max_seq_length: int = 48
    zero_shot_items: int = 3000  # Linzen items scored zero-shot by each pretrained model (a fixed sample)


@dataclass(frozen=True)
class RecallSpec:
    models: tuple[str, ...] = ("bert", "recurrent", "lstm", "hybrid_recurrent", "hybrid_lstm")
    settings: dict[str, Any] = field(default_factory=dict)  # RecallArgs fields (the calibrated gate)
    seeds: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Tier:
    name: str
    pretrain: PretrainSpec
    glue: GlueSpec
    agreement: AgreementSpec
    recall: RecallSpec
    lei_seeds: tuple[int, ...] = (0, 1, 2)  # pretraining seeds of bert and recurrent_bert
    lstm_seeds: tuple[int, ...] = (0, 1, 2)  # pretraining seeds of lstm and lstm_stable
    abnar_seeds: tuple[int, ...] = (0,)  # pretraining seeds of the sequential models (zero-shot agreement)
    lei_equal_compute: bool = False  # also pretrain BERT with recurrent BERT's compute (more steps), reported beside L1
    memory_windows: tuple[int, ...] = (4, 8, 16, 32, 64)
    bootstrap_resamples: int = 10000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TIERS: dict[str, Tier] = {
    # Seconds, for the test suite: tiny widths, a few steps, a handful of rows. Checks the machinery and the
    # files, not any claim.
    "smoke": Tier(
        name="smoke",
        pretrain=PretrainSpec(
            steps=2, batch_size=4, max_seq_length=32, vocab_size=300, eval_samples=4, checkpointing_steps=1,
            shape=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                       max_position_embeddings=64),
        ),  # fmt: skip
        glue=GlueSpec(tasks=("sst2",), train_rows=24, selection_rows=8, dev_rows=16, learning_rates=(3e-3,),
                      seeds=(1, 2), epochs=1.0, batch_size=8, max_seq_length=32),  # fmt: skip
        agreement=AgreementSpec(train_items=24, test_items=16, seeds=(1, 2), epochs=1.0, batch_size=8,
                                max_seq_length=32, zero_shot_items=16),  # fmt: skip
        recall=RecallSpec(models=("bert", "recurrent", "hybrid_recurrent"), seeds=(1,),
                          settings=dict(steps=4, pairs=[2], eval_examples=8, hidden_size=32, batch_size=8)),  # fmt: skip
        lei_seeds=(0, 1),
        lstm_seeds=(0,),
        abnar_seeds=(0,),
        lei_equal_compute=True,
        memory_windows=(4, 8),
        bootstrap_resamples=500,
    ),
    # The main job: BERT and recurrent BERT side by side on the bundled corpus and SST-2 sample.
    "demo": Tier(
        name="demo",
        pretrain=PretrainSpec(steps=800, checkpointing_steps=200),
        glue=GlueSpec(tasks=("sst2",), train_rows=1500, selection_rows=500, dev_rows=None,
                      learning_rates=(3e-4, 1e-3, 3e-3), seeds=(1, 2), epochs=2.0),  # fmt: skip
        agreement=AgreementSpec(),
        recall=RecallSpec(),
        lei_seeds=(0,),
        bootstrap_resamples=5000,
    ),
    # A laptop CPU: every claim in about an hour of two cores (the claim groups run side by side, one thread
    # each: docs/RESULTS.md gives the commands). Small: tiny models, 600 pretraining steps, 3 pretraining seeds
    # for Lei's claims and 2 for Miller & Hardt's, 1,500 training rows per GLUE task. The recall settings are
    # the gate calibrated in docs/probes.md (alphabet 8, width 64, initial std 0.3, 4,000 steps).
    "cpu": Tier(
        name="cpu",
        pretrain=PretrainSpec(steps=600, checkpointing_steps=200),
        glue=GlueSpec(train_rows=1500, selection_rows=500, learning_rates=(3e-4, 1e-3, 3e-3), seeds=(1, 2), epochs=2.0),
        agreement=AgreementSpec(train_items=3000, test_items=1500, seeds=(1, 2, 3), epochs=2.0, zero_shot_items=1500),
        recall=RecallSpec(
            models=("bert", "recurrent", "hybrid_recurrent"), seeds=(1, 2),
            settings=dict(hidden_size=64, num_attention_heads=2, initializer_range=0.3, num_keys=8, num_values=8,
                          pairs=[2, 4], curriculum=False, learning_rates=[1e-3], steps=4000, batch_size=64,
                          eval_every=500),
        ),  # fmt: skip
        lei_seeds=(0, 1, 2),
        lstm_seeds=(0, 1),
        abnar_seeds=(0,),
    ),
    # One accelerator: BERT-mini size, longer pretraining, more seeds (fewer pretraining seeds make the
    # bootstrap too narrow: docs/statistics.md).
    "gpu": Tier(
        name="gpu",
        pretrain=PretrainSpec(size="mini", steps=20000, batch_size=128, max_seq_length=128, learning_rate=1e-3,
                              vocab_size=8192, eval_samples=1024, checkpointing_steps=2000),  # fmt: skip
        glue=GlueSpec(train_rows=8000, selection_rows=1000, learning_rates=(3e-5, 1e-4, 3e-4, 1e-3), seeds=(1, 2, 3)),
        agreement=AgreementSpec(train_items=40000, test_items=10000, seeds=(1, 2, 3, 4, 5), zero_shot_items=20000),
        recall=RecallSpec(seeds=(1, 2, 3)),
        lei_seeds=tuple(range(10)),
        lstm_seeds=tuple(range(5)),
        abnar_seeds=(0, 1, 2),
        lei_equal_compute=True,
    ),
}


def get_tier(name: str) -> Tier:
    if name not in TIERS:
        from ..cli import UsageError

        raise UsageError(f"--tier {name!r} is unknown; choose one of {', '.join(TIERS)}.")
    return TIERS[name]


__all__ = ["MODELS", "PretrainSpec", "GlueSpec", "AgreementSpec", "RecallSpec", "Tier", "TIERS", "get_tier"]
