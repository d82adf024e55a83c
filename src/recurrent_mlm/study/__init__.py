"""The study: re-test the papers' claims at small scale, with error bars, and publish what held.

Statistical core and reporting machinery (numpy, scipy and matplotlib only; nothing here imports torch):

- `stats`: descriptive statistics over seeds, Wilson intervals, the paired hierarchical bootstrap (pretraining
  seeds, then fine-tuning seeds within them, then evaluation items), exact McNemar and sign-flip tests, Holm,
  Page's trend test for a predicted order, ECE and Brier score, and the two divergence definitions;
- `decision`: the plan written before any run (`plan.json`) and the decision rule that turns evidence into
  "reproduced", "contradicted", "inconclusive" or "not tested";
- `report`: per-claim `report.md` and the generated sections of `docs/RESULTS.md` from `summary.json` files;
- `plots`: the study's figures (PNG, matplotlib Agg);
- `planted`: planted data with known effects, for tests and for measuring the methods' error rates.

The methods, formulas and reasons are in `docs/statistics.md`.
"""
