"""Probes of what the recurrent-inductive-bias papers claim, for any masked LM of ours or a plain BERT.

- `agreement`: zero-shot subject-verb agreement (Linzen et al. 2016, Gulordava et al. 2018, Marvin & Linzen
  2018): the masked verb's correct vs wrong form, with calibration, baselines and intervals;
- `agreement_train`: the trained probe of Abnar et al. (a classifier fine-tuned on Linzen's prefixes);
- `recall`: in-context associative recall for masked LMs (MQAR, Arora et al. 2023; Wen et al. 2024);
- `memory`: how much context a model uses (Miller & Hardt 2019): windowed MLM loss, prefix-change decay
  in the hidden states, LSTM recurrent spectral norms.

Every probe is a function taking a typed arguments object and returning its results; the command line
(`python -m recurrent_mlm.probes <probe> --model PATH ...`) prints a table and writes JSON, Markdown and a PNG.
See docs/probes.md.
"""

from .agreement import AgreementArgs, AgreementResult, score_agreement
from .agreement_data import AgreementItem, AgreementSets, load_agreement_sets
from .agreement_train import AgreementTrainArgs, AgreementTrainResult, analyse_runs, run_agreement_train, write_split
from .common import LoadedModel, load_model
from .memory import MemoryArgs, MemoryResult, probe_memory
from .recall import RecallArgs, RecallResult, generate_recall, run_recall, train_recall

__all__ = [
    "AgreementArgs",
    "AgreementItem",
    "AgreementResult",
    "AgreementSets",
    "AgreementTrainArgs",
    "AgreementTrainResult",
    "LoadedModel",
    "MemoryArgs",
    "MemoryResult",
    "RecallArgs",
    "RecallResult",
    "analyse_runs",
    "generate_recall",
    "load_agreement_sets",
    "load_model",
    "probe_memory",
    "run_agreement_train",
    "run_recall",
    "score_agreement",
    "train_recall",
    "write_split",
]
