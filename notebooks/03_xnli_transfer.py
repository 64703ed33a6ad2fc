# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python (xnli-study)
#     language: python
#     name: xnli-study
# ---

# %% [markdown]
# # 3. English MultiNLI fine-tuning and zero-shot XNLI transfer
#
# For each condition and seed: the encoder of I_t (P for `none`) gets a fresh 3-way head and is
# fine-tuned on English MultiNLI. The checkpoint is selected on **English** XNLI dev only; the
# model never sees a non-English NLI label. It is then evaluated on every XNLI language.
# Per-example predictions are kept (`tables/predictions.parquet`).

# %% [markdown] tags=["hide-in-report"]
# **Needs:** stages 1 and 2. If they have not run, the next code cell says so; run
# `xnli-study run --params params/smoke.yaml --stages data intermediate` first (or `make study`).
#
# On a run folder where this stage is complete, the notebook shows its results from the run folder
# without computing them again; `recompute = True` computes them (and replaces the run folder's copy
# of this notebook, so the report never shows a notebook older than its tables).

# %% tags=["parameters"]
params_path: str = "../params/smoke.yaml"  # the study profile (YAML); relative to notebooks/
run_dir: str = ""  # the run folder; empty means output_dir/run_name from the params
recompute: bool = False  # compute the stage again even when the run folder holds it complete (its units too)
overrides: str = ""  # params overrides as xnli-study run --set takes them, a YAML list (see the README)
update_run_copy: bool = True  # a stage computed here also replaces the run folder's executed copy of this notebook

# %%
from IPython.display import Markdown, display

from xnli_study import narrative, plots, study
from xnli_study.environment import setup_notebook
from xnli_study.stages import StageRun

setup_notebook()
run = StageRun("transfer", params_path=params_path, run_dir=run_dir, recompute=recompute, overrides=overrides,
               update_run_copy=update_run_copy)

# %%
tables = study.train_and_evaluate_transfer(run)

# %% [markdown]
# ## Accuracy by language (mean over seeds)

# %%
display(Markdown(narrative.describe_transfer(tables["transfer_summary"])))
narrative.show_table(narrative.accuracy_table(tables["accuracy_mean"]), saved_as="accuracy_mean")

# %%
fig = plots.accuracy_by_language(tables["accuracy"])
_ = run.show_figure("xnli_accuracy_by_seed", fig)
display(Markdown("Bars: mean accuracy over seeds; whiskers: one sd over seeds (none with one seed); "
                 "dashed line: chance (1/3)."))

# %% [markdown]
# ## Which label does each model predict?
# A model that answers one label for most items of a language reaches that label's share of the
# gold labels without reading the pair. Bars: the share of each predicted label per language
# (over seeds); black ticks: the gold shares. The report names a language where one label takes
# more than 70% of the predictions.

# %%
fig = plots.label_shares(tables["predictions"])
_ = run.show_figure("predicted_labels", fig)

# %% [markdown]
# Intervals and the comparisons with the baseline are computed from the per-example predictions
# in the results section (the first section of the report, `05_report`).

# %% [markdown]
# ## Transfer summary per seed
# `transfer_gap` = accuracy on English minus the mean over the other languages.

# %%
narrative.show_table(tables["transfer_summary"], saved_as="transfer_summary", digits=4)

# %% [markdown]
# ## Model selection on English dev

# %%
narrative.show_table(tables["selection"], saved_as="selection")

# %%
fig = plots.training_curves(tables["mnli_log"], title="MNLI")
_ = run.show_figure("mnli_training", fig)
display(Markdown("One line per condition and seed. Left: training loss per logged step. Right: English "
                 "XNLI dev accuracy at each evaluation; the best one is the checkpoint kept."))

# %%
record = run.finish()
