"""GLUE fine-tuning and the learning-rate stability study: `run_glue(GlueArguments(...))` runs what
`run_glue.py` does (one run, or a resumable sweep of models x learning rates x seeds).

- `arguments`: the run's arguments (one dataclass; the script's flags and a recipe's keys);
- `runner`: a run or a sweep from its arguments (outputs, cards, Hub push);
- `finetune`: one fine-tuning run under Accelerate;
- `sweep`: the models x learning rates x seeds grid, resumable run by run;
- `tasks`: the nine GLUE tasks (layouts, labels, metrics, submission files);
- `data`: loading and validating official TSV folders, the `nyu-mll/glue` dataset, or custom CSV/JSON files;
- `glue_metric`, `ece_metric`: offline `evaluate` modules (official metrics; expected calibration error);
- `metrics`: computing them, and the majority-class baseline a run must beat;
- `report`: JSON/CSV of all runs, the markdown stability table and summary, the plot.
"""

from .arguments import GlueArguments
from .runner import GlueResult, run_glue

__all__ = ["GlueArguments", "GlueResult", "run_glue"]
