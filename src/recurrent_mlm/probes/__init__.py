"""Probes of what the recurrent-inductive-bias papers claim, for any masked LM of ours or a plain BERT.

- `agreement`: zero-shot subject-verb agreement (Linzen et al. 2016, Gulordava et al. 2018, Marvin & Linzen
  2018): the masked verb's correct vs wrong form, with calibration, baselines and intervals;
- `agreement_train`: the trained probe of Abnar et al. (a classifier fine-tuned on Linzen's prefixes);
- `recall`: in-context associative recall for masked LMs (MQAR, Arora et al. 2023; Wen et al. 2024);
- `memory`: how much context a model uses (Miller & Hardt 2019): windowed MLM loss, prefix-change decay
  in the hidden states, LSTM recurrent spectral norms.

Every probe is a function taking a typed arguments object and returning its results; the command line
(`python -m recurrent_mlm.probes <probe> --model PATH ...`) prints a table and writes JSON, Markdown and a PNG.
"""

from .agreement import AgreementArgs, AgreementResult, score_agreement

__all__ = ["AgreementArgs", "AgreementResult", "score_agreement"]
