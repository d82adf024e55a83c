"""GLUE fine-tuning and the learning-rate stability study behind `run_glue.py`.

- `tasks`: the nine GLUE tasks (layouts, labels, metrics, submission files);
- `data`: loading and validating official TSV folders, the `nyu-mll/glue` dataset, or custom CSV/JSON files;
- `glue_metric`, `ece_metric`: offline `evaluate` modules (official metrics; expected calibration error);
- `metrics`: computing them, and the majority-class baseline a run must beat;
- `finetune`: one fine-tuning run under Accelerate;
- `sweep`: the models x learning rates x seeds grid, resumable run by run;
- `report`: JSON/CSV of all runs, the markdown stability table and summary, the plot.
"""
